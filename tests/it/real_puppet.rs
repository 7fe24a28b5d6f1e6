//! Real Puppet: Debian's puppetserver 7 with `autosign = autosign-policy`, stock Debian
//! agents bootstrapping with a build token in csr_attributes.yaml, and CSRs built by
//! Puppet's own Ruby code.

use std::time::Duration;

use crate::puppet::{self, PuppetServer};
use crate::support::*;
use autosign_proxy::domain::certname::Certname;
use autosign_proxy::domain::event::{kind, Actor, EventFilter, NewEvent};
use autosign_proxy::domain::token::{TokenHash, TokenRequest};
use autosign_proxy::store::{EventStore, TokenStore};

fn token_yaml(token: &str) -> String {
    format!("custom_attributes:\n  1.2.840.113549.1.9.7: \"{token}\"\n")
}

fn write_policy_config(
    path: &std::path::Path,
    url: &str,
    svc: &Service,
    ps: &PuppetServer,
    timeout: &str,
) {
    let (_, cert, key) = ps.host_cert_files();
    std::fs::write(
        path,
        format!(
            "url = \"{url}\"\nca_file = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\ntimeout = {timeout}\n",
            svc.dir.ca_bundle().display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
}

fn decision_reasons(svc: &Service, certname: &str) -> Vec<String> {
    let store = svc.store();
    block_on(store.list_events(&EventFilter {
        certname: Some(certname.into()),
        kind: Some(kind::DECISION.into()),
        limit: 20,
        ..Default::default()
    }))
    .unwrap()
    .into_iter()
    .filter_map(|e| e.reason)
    .collect()
}

#[test]
fn puppetserver_signs_only_what_autosign_proxy_approves() {
    if !puppet::require_puppet("puppetserver_signs_only_what_autosign_proxy_approves") {
        return;
    }
    let dir = temp_dir("real-puppet");
    let policy_conf = dir.join("policy.toml");
    let ps = PuppetServer::start(
        &dir.join("puppetserver"),
        policy_bin().to_str().unwrap(),
        &[("AUTOSIGN_POLICY_CONFIG", policy_conf.to_str().unwrap())],
    )
    .unwrap_or_else(|e| panic!("puppetserver did not start: {e}"));
    eprintln!("puppetserver started in {:?}", ps.startup);

    // The service trusts puppetserver's CA and its certname, as a real deployment would.
    let (ps_ca, _, _) = ps.host_cert_files();
    let ps_name = ps.certname.clone();
    let mut svc = Service::start_with("real-puppet-svc", |c| {
        c.tls.client_ca = vec![ps_ca.clone()];
        c.trusted_hosts = vec![ps_name.clone()];
    });
    write_policy_config(&policy_conf, &svc.url(), &svc, &ps, "5");
    let mut c = svc.client();

    let good = foreman_token(&mut c, "good.example.com");
    let replay = foreman_token(&mut c, "replay.example.com");
    let owner = foreman_token(&mut c, "owner.example.com");

    // Three stock agents at once: a right token, one that will be replayed, another host's.
    let run = |name: &'static str, token: String| {
        let dir = dir.join(format!("agent-{name}"));
        let port = ps.port;
        std::thread::spawn(move || {
            puppet::agent_bootstrap(&dir, name, port, Some(&token_yaml(&token)), None)
        })
    };
    let a = run("good.example.com", good);
    let b = run("replay.example.com", replay.clone());
    let d = run("thief.example.com", owner);
    let (a, b, d) = (a.join().unwrap(), b.join().unwrap(), d.join().unwrap());
    assert!(
        a.success,
        "right token must be signed: {}\n{}",
        a.stdout, a.stderr
    );
    assert!(ps.is_signed("good.example.com"));
    assert!(b.success, "{}", b.stderr);
    assert!(!d.success, "another host's token must not sign");
    assert!(ps.is_pending("thief.example.com"));
    assert_eq!(
        decision_reasons(&svc, "thief.example.com"),
        ["token_wrong_host"]
    );
    assert!(
        ps.log_text().contains("token_wrong_host"),
        "the policy's stderr reaches puppetserver's log"
    );

    // Replay: the host is cleaned on puppetserver, and a new agent presents the used token.
    let (ok, out) = ps.ca_cli(&["clean", "--certname", "replay.example.com"]);
    assert!(ok, "{out}");
    let again = puppet::agent_bootstrap(
        &dir.join("agent-replay-2"),
        "replay.example.com",
        ps.port,
        Some(&token_yaml(&replay)),
        None,
    );
    assert!(
        !again.success,
        "a replayed token must leave the CSR pending"
    );
    assert!(ps.is_pending("replay.example.com"));
    assert_eq!(
        decision_reasons(&svc, "replay.example.com"),
        ["token_used", "token"]
    );

    // A service that accepts and never answers: the policy's timeout leaves it pending.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let hold = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(10));
        drop(conns);
    });
    write_policy_config(&policy_conf, &silent_url, &svc, &ps, "2");
    // Fresh connections: an idle keep-alive connection is closed by the server after 30 s.
    let token = foreman_token(&mut svc.client(), "slow.example.com");
    let slow = puppet::agent_bootstrap(
        &dir.join("agent-slow"),
        "slow.example.com",
        ps.port,
        Some(&token_yaml(&token)),
        None,
    );
    assert!(!slow.success);
    assert!(ps.is_pending("slow.example.com"));
    assert!(
        ps.log_text().contains("slow.example.com pending"),
        "the timeout is logged"
    );
    hold.join().unwrap();

    // The service down: pending too, at once.
    write_policy_config(&policy_conf, &svc.url(), &svc, &ps, "5");
    let token = foreman_token(&mut svc.client(), "down.example.com");
    drop(c);
    svc.stop();
    let down = puppet::agent_bootstrap(
        &dir.join("agent-down"),
        "down.example.com",
        ps.port,
        Some(&token_yaml(&token)),
        None,
    );
    assert!(!down.success);
    assert!(ps.is_pending("down.example.com"));
    // Take over the real puppetserver's CA: what it signed stays valid and listed, its
    // pending requests come along, and new certificates chain to the same CA.
    let data = dir.join("imported");
    let out = std::process::Command::new(proxy_bin())
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "ca",
            "import",
            "--cadir",
            ps.ca_dir().to_str().unwrap(),
        ])
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took_over = Service::start_with("took-over", |c| c.data_dir = data.clone());
    let mut c2 = took_over.client();
    let ours = c2.ca().certificate("good.example.com");
    assert_eq!(ours.status, 200);
    let theirs = std::fs::read(ps.ca_dir().join("signed/good.example.com.pem")).unwrap();
    let der = |pem: &[u8]| {
        autosign_proxy::x509::pem_blocks(std::str::from_utf8(pem).unwrap())
            .unwrap()
            .remove(0)
            .1
    };
    assert_eq!(
        der(&ours.body),
        der(&theirs),
        "the certificate puppetserver signed is served unchanged"
    );
    let statuses = json(&c2.ca().statuses(None));
    let state_of = |name: &str| {
        statuses
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["state"].clone())
    };
    assert_eq!(state_of("good.example.com"), Some("signed".into()));
    assert_eq!(state_of("thief.example.com"), Some("requested".into()));
    // The agent puppetserver signed can talk to us with its certificate.
    let agent_ssl = dir.join("agent-good.example.com/ssl");
    let mut as_agent = took_over.client_with(Some((
        agent_ssl.join("certs/good.example.com.pem"),
        agent_ssl.join("private_keys/good.example.com.pem"),
    )));
    assert_eq!(as_agent.ca().expirations().status, 200);
    // A new agent gets a certificate that verifies against puppetserver's own CA file.
    let token = foreman_token(&mut c2, "after-import.example.com");
    let fresh = puppet::agent_bootstrap(
        &dir.join("agent-after"),
        "after-import.example.com",
        took_over.port,
        Some(&token_yaml(&token)),
        None,
    );
    assert!(fresh.success, "{}\n{}", fresh.stdout, fresh.stderr);
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ps.ca_dir().join("ca_crt.pem"))
        .arg(fresh.ssldir.join("certs/after-import.example.com.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // Foreman's routes beside puppetserver's CA (smart_proxy.ca = "puppetserver"): list,
    // sign and clean go to puppetserver, with its own pp_cli_auth host certificate.
    let (ps_ca_file, ps_cert, ps_key) = ps.host_cert_files();
    let beside = Service::start_with("beside-puppetserver", |c| {
        c.smart_proxy.ca = autosign_proxy::config::SmartProxyCa::Puppetserver;
        c.smart_proxy.puppet_url = format!("https://127.0.0.1:{}", ps.port);
        c.smart_proxy.puppet_ssl_ca = Some(ps_ca_file.clone());
        c.smart_proxy.puppet_ssl_cert = Some(ps_cert.clone());
        c.smart_proxy.puppet_ssl_key = Some(ps_key.clone());
    });
    let mut fm = beside.client();
    let listing = json(&fm.foreman().list());
    assert_eq!(listing["good.example.com"]["state"], "valid", "{listing}");
    assert_eq!(listing["slow.example.com"]["state"], "pending", "{listing}");
    let v2 = json(&fm.foreman().features_v2());
    assert_eq!(
        v2["puppetca"]["settings"]["puppet_url"],
        format!("https://127.0.0.1:{}", ps.port)
    );
    assert_eq!(fm.foreman().sign("slow.example.com").status, 200);
    assert!(ps.is_signed("slow.example.com"), "signed on puppetserver");
    assert_eq!(fm.foreman().clean("good.example.com").status, 200);
    assert!(!ps.is_signed("good.example.com"), "cleaned on puppetserver");
    // As Foreman's proxy does: revoke, then delete, so a pending request goes too.
    assert!(ps.is_pending("thief.example.com"));
    assert_eq!(fm.foreman().clean("thief.example.com").status, 200);
    assert!(
        !ps.is_pending("thief.example.com"),
        "the pending request is removed on puppetserver"
    );
    assert_eq!(fm.foreman().clean("never.example.com").status, 404);
    assert_eq!(fm.foreman().sign("never.example.com").status, 404);

    eprintln!(
        "agent bootstrap times: signed {:?}, wrong host {:?}, replay {:?}, policy timeout {:?}, service down {:?}",
        a.elapsed, d.elapsed, again.elapsed, slow.elapsed, down.elapsed
    );
}

#[test]
fn csrs_built_by_puppets_ruby_code_are_read_as_puppet_writes_them() {
    if !puppet::require_puppet("csrs_built_by_puppets_ruby_code_are_read_as_puppet_writes_them") {
        return;
    }
    let svc = Service::start("ruby-csr");
    // Puppet writes custom attributes as PrintableString even with '_' in them.
    let secret = "abc_DEF_123";
    let store = svc.store();
    let now = autosign_proxy::time::now();
    let request = TokenRequest::new(
        Certname::parse("ruby.example.com").unwrap(),
        vec![],
        None,
        None,
    )
    .unwrap();
    let actor = Actor::new("test", None);
    block_on(store.issue_token(
        &request,
        &TokenHash::of(secret),
        now,
        NewEvent::new(now, kind::TOKEN_ISSUED, &actor),
    ))
    .unwrap();

    let dir = temp_dir("ruby-csr");
    let csr = puppet::puppet_ruby_csr(
        &dir,
        "ruby.example.com",
        Some(secret),
        None,
        &[("pp_uuid", "ED8B6D2A")],
    )
    .unwrap();
    let mut c = svc.client();
    let resp = validate(&mut c, Some("ruby.example.com"), csr.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());

    // dns_alt_names the token does not allow are refused.
    let token = foreman_token(&mut c, "alts.example.com");
    let csr = puppet::puppet_ruby_csr(
        &dir,
        "alts.example.com",
        Some(&token),
        Some("puppet,puppet.example.com"),
        &[],
    )
    .unwrap();
    let resp = validate(&mut c, Some("alts.example.com"), csr.as_bytes());
    assert_eq!(json(&resp)["reason"], "alt_name_not_allowed");
    // The refused CSR exposed the token (pending CSRs are readable): it was revoked.
    assert!(json(&resp)["message"]
        .as_str()
        .unwrap()
        .contains("was revoked"));
    let token = foreman_token(&mut c, "alts.example.com");

    // puppetserver hands the policy the raw request body: text around the PEM, CRLF.
    let csr = puppet::puppet_ruby_csr(&dir, "alts.example.com", Some(&token), None, &[]).unwrap();
    let body = format!(
        "junk before\r\n{}\r\ntrailing junk\r\n",
        csr.replace('\n', "\r\n")
    );
    let resp = validate(&mut c, Some("alts.example.com"), body.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
}
