//! Puppet 8 as Debian trixie ships it — puppet-agent 8.10, puppetserver 8.7 and
//! `puppetserver ca` 2.7 — run in the trixie root scripts/trixie-root builds (see
//! [`puppet::in_trixie`]), against our CA and beside it, as the Puppet 7 tests do with
//! the host's bookworm packages.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::puppet::{self, AgentOptions, AgentRun, PuppetServer};
use crate::support::*;
use autosign_proxy::ca::crl::crl_info;
use autosign_proxy::ca::issue::{cert_info, CertInfo};
use autosign_proxy::config::AutosignMode;
use autosign_proxy::domain::event::{kind, EventFilter};
use autosign_proxy::store::EventStore;

/// The Puppet 8 tests share one trixie root and run Java and Ruby inside it: one at a
/// time, so a loaded machine does not turn their timing assertions into guesses.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn token_yaml(token: &str) -> String {
    format!("custom_attributes:\n  1.2.840.113549.1.9.7: \"{token}\"\n")
}

/// A Puppet 8 agent run (`puppet ssl bootstrap` unless `command` says otherwise) with
/// stock settings plus `extra`.
fn agent8(dir: &Path, name: &str, port: u16, yaml: Option<&str>, extra: &[&str]) -> AgentRun {
    puppet::agent_bootstrap_with(
        dir,
        name,
        port,
        &AgentOptions {
            csr_attributes_yaml: yaml,
            extra_args: extra.to_vec(),
            puppet8: true,
            ..Default::default()
        },
    )
}

fn output(run: &AgentRun) -> String {
    format!("{}\n{}", run.stdout, run.stderr)
}

fn status(c: &mut autosign_policy::Connection, name: &str) -> serde_json::Value {
    let resp = c.ca().status(name);
    assert_eq!(resp.status, 200, "{}", resp.text());
    json(&resp)
}

fn cert_of(ssldir: &Path, name: &str) -> CertInfo {
    let pem = std::fs::read(ssldir.join(format!("certs/{name}.pem"))).unwrap();
    cert_info(&pem).unwrap()
}

fn signed_messages(svc: &Service, certname: &str) -> Vec<String> {
    block_on(svc.store().list_events(&EventFilter {
        certname: Some(certname.into()),
        kind: Some("certificate_signed".into()),
        limit: 50,
        ..Default::default()
    }))
    .unwrap()
    .into_iter()
    .filter_map(|e| e.message)
    .collect()
}

fn decision_reasons(svc: &Service, certname: &str) -> Vec<String> {
    block_on(svc.store().list_events(&EventFilter {
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

/// `openssl s_server` presenting `cert`/`key` on 127.0.0.1: a peer for an agent to
/// connect to. Killed on Drop.
struct Peer {
    port: u16,
    child: Child,
}

impl Peer {
    fn start(cert: &Path, key: &Path) -> Peer {
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "s_server did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Peer { port, child }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Puppet 8 agent run (`puppet agent --test`) whose server is `server_port`: what it
/// says about the server's certificate.
fn agent8_against(dir: &Path, name: &str, ca_port: u16, server_port: u16) -> String {
    let run = puppet::agent_bootstrap_with(
        dir,
        name,
        ca_port,
        &AgentOptions {
            command: vec!["agent", "--test"],
            server_port: Some(server_port),
            puppet8: true,
            timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        },
    );
    output(&run)
}

/// Stock settings but for the refresh intervals: 1 s instead of a day, so a refresh
/// happens in a test. The refresh itself is the stock one (conditional GETs).
const REFRESH_NOW: [&str; 5] = [
    "--ca_refresh_interval",
    "1",
    "--crl_refresh_interval",
    "1",
    "--verbose",
];

#[test]
fn puppet8_agent_bootstraps_refreshes_the_crl_and_renews() {
    if !puppet::require_puppet8("puppet8_agent_bootstraps_refreshes_the_crl_and_renews") {
        return;
    }
    let _serial = one_at_a_time();
    let svc = Service::start("p8-agent");
    let mut c = svc.client();
    let dir = temp_dir("p8-agent");
    // The agent dates its copy of the CRL by its file's time, to the second: a CRL built
    // in the same second as the first fetch would look newer on the next refresh.
    std::thread::sleep(Duration::from_millis(1100));

    // Bootstrap with a build token, stock settings.
    let token = foreman_token(&mut c, "a8.example.com");
    let a = agent8(
        &dir.join("a8"),
        "a8.example.com",
        svc.port,
        Some(&token_yaml(&token)),
        &[],
    );
    assert!(a.success, "agent 8 bootstrap failed:\n{}", output(&a));
    assert!(a.elapsed < Duration::from_secs(30), "took {:?}", a.elapsed);
    eprintln!("puppet 8 agent bootstrap against our CA: {:?}", a.elapsed);
    assert_eq!(status(&mut c, "a8.example.com")["state"], "signed");
    let token = foreman_token(&mut c, "peer8.example.com");
    let peer = agent8(
        &dir.join("peer8"),
        "peer8.example.com",
        svc.port,
        Some(&token_yaml(&token)),
        &[],
    );
    assert!(peer.success, "{}", output(&peer));

    // Nothing changed: the refresh gets 304 for the CA bundle and for the CRL.
    let crl_path = a.ssldir.join("crl.pem");
    let crl_before = std::fs::read(&crl_path).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let again = agent8(
        &dir.join("a8"),
        "a8.example.com",
        svc.port,
        None,
        &REFRESH_NOW,
    );
    let out = output(&again);
    assert!(again.success, "{out}");
    assert!(out.contains("CRL is unmodified"), "{out}");
    assert!(out.contains("CA certificate is unmodified"), "{out}");
    assert_eq!(std::fs::read(&crl_path).unwrap(), crl_before);

    // Before the revocation the agent accepts the peer's certificate (the run fails
    // later: s_server is no puppetserver).
    let peer_tls = Peer::start(
        &peer.ssldir.join("certs/peer8.example.com.pem"),
        &peer.ssldir.join("private_keys/peer8.example.com.pem"),
    );
    let before = agent8_against(&dir.join("a8"), "a8.example.com", svc.port, peer_tls.port);
    assert!(!before.contains("revoked"), "{before}");

    // A revocation right after the agent's last fetch (the same second, even): its next
    // refresh gets the new CRL, and it refuses the revoked peer.
    let resp = c.ca().set_status("peer8.example.com", "revoked", None);
    assert_eq!(resp.status, 204, "{}", resp.text());
    std::thread::sleep(Duration::from_secs(2));
    let refreshed = agent8(
        &dir.join("a8"),
        "a8.example.com",
        svc.port,
        None,
        &REFRESH_NOW,
    );
    let out = output(&refreshed);
    assert!(refreshed.success, "{out}");
    assert!(out.contains("Refreshed CRL"), "{out}");
    let peer_serial = cert_of(&peer.ssldir, "peer8.example.com").serial;
    let crl = crl_info(&std::fs::read(&crl_path).unwrap()).unwrap();
    assert!(
        crl.revoked.iter().any(|r| r.serial == peer_serial),
        "the agent's CRL lists the revoked peer"
    );
    let after = agent8_against(&dir.join("a8"), "a8.example.com", svc.port, peer_tls.port);
    assert!(after.contains("certificate revoked"), "{after}");
    drop(peer_tls);

    // Renewal: a certificate signed for 10 days (inside hostcert_renewal_interval, 30 d)
    // is renewed by the agent's next run: same key, same extensions, a new serial.
    let renew_yaml = "extension_requests:\n  pp_role: \"web\"\n";
    let r = dir.join("renew8");
    let pending = agent8(&r, "renew8.example.com", svc.port, Some(renew_yaml), &[]);
    assert!(!pending.success, "no token: pending");
    let admin = crate::ca::admin_ssldir(&svc, &dir.join("cli"));
    let cli = |args: &[&str]| {
        puppet::puppetserver_ca_with(
            true,
            &dir.join("cli"),
            svc.port,
            &admin,
            "autosign-proxy-local-client",
            args,
        )
    };
    let (ok, out) = cli(&["sign", "--certname", "renew8.example.com", "--ttl", "10d"]);
    assert!(ok, "{out}");
    let fetched = agent8(&r, "renew8.example.com", svc.port, None, &[]);
    assert!(fetched.success, "{}", output(&fetched));
    let short = cert_of(&fetched.ssldir, "renew8.example.com");
    assert!(short.not_after - short.not_before <= 11 * 86_400);
    let renewed = agent8(&r, "renew8.example.com", svc.port, None, &["--verbose"]);
    let out = output(&renewed);
    assert!(renewed.success, "{out}");
    assert!(out.contains("Renewed client certificate"), "{out}");
    let long = cert_of(&renewed.ssldir, "renew8.example.com");
    assert_ne!(long.serial, short.serial);
    assert_eq!(long.spki_der, short.spki_der, "same key");
    assert_eq!(long.extensions, short.extensions, "same extensions");
    assert_eq!(long.subject_alt_names, short.subject_alt_names);
    assert!(long.not_after - long.not_before > 365 * 86_400);
    let messages = signed_messages(&svc, "renew8.example.com");
    assert!(
        messages.iter().any(|m| m.contains("renewed")),
        "{messages:?}"
    );
    assert_eq!(
        status(&mut c, "renew8.example.com")["serial_number"]
            .as_u64()
            .map(|s| s
                .to_be_bytes()
                .iter()
                .copied()
                .skip_while(|b| *b == 0)
                .collect::<Vec<u8>>()),
        Some(long.serial.clone())
    );
    // The renewed certificate works: the next run needs nothing.
    let quiet = agent8(&r, "renew8.example.com", svc.port, None, &["--verbose"]);
    assert!(
        quiet.success && !output(&quiet).contains("Renewed"),
        "{}",
        output(&quiet)
    );

    // A revoked agent cannot renew. With stock refresh intervals it still holds the CRL
    // from before its revocation, so it asks, and is refused.
    let g = dir.join("gone8");
    assert!(!agent8(&g, "gone8.example.com", svc.port, None, &[]).success);
    let (ok, out) = cli(&["sign", "--certname", "gone8.example.com", "--ttl", "10d"]);
    assert!(ok, "{out}");
    let got = agent8(&g, "gone8.example.com", svc.port, None, &[]);
    assert!(got.success, "{}", output(&got));
    let (ok, out) = cli(&["revoke", "--certname", "gone8.example.com"]);
    assert!(ok, "{out}");
    // The service re-reads its CRL for handshakes within a second.
    std::thread::sleep(Duration::from_millis(1500));
    let cert_before = std::fs::read(got.ssldir.join("certs/gone8.example.com.pem")).unwrap();
    let refused = agent8(&g, "gone8.example.com", svc.port, None, &["--verbose"]);
    let out = output(&refused);
    assert!(out.contains("automatically renew certificate"), "{out}");
    assert_eq!(
        std::fs::read(got.ssldir.join("certs/gone8.example.com.pem")).unwrap(),
        cert_before
    );
    assert!(
        !signed_messages(&svc, "gone8.example.com")
            .iter()
            .any(|m| m.contains("renewed")),
        "no renewal recorded"
    );
    assert_eq!(status(&mut c, "gone8.example.com")["state"], "revoked");
}

#[test]
fn puppetserver_ca_2_7_drives_our_ca() {
    if !puppet::require_puppet8("puppetserver_ca_2_7_drives_our_ca") {
        return;
    }
    let _serial = one_at_a_time();
    let svc = Service::start_with("p8-cli", |c| c.ca.autosign = AutosignMode::Never);
    let dir = temp_dir("p8-cli");
    let ssl = crate::ca::admin_ssldir(&svc, &dir);
    let mut c = svc.client();
    for name in ["one.example.com", "two.example.com", "three.example.com"] {
        submit(&mut c, name, &openssl_csr(&CsrOpts::new(name)));
    }
    let cli = |args: &[&str]| {
        puppet::puppetserver_ca_with(
            true,
            &dir,
            svc.port,
            &ssl,
            "autosign-proxy-local-client",
            args,
        )
    };

    let (ok, out) = cli(&["list"]);
    assert!(ok && out.contains("one.example.com"), "{out}");
    let (ok, out) = cli(&["list", "--format", "json"]);
    assert!(ok, "{out}");
    let listed: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let names = |v: &serde_json::Value| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            // The service's own certificates (server, local client) are listed too.
            .filter(|n| n.ends_with(".example.com"))
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&listed["requested"]),
        ["one.example.com", "three.example.com", "two.example.com"]
    );

    // 2.7 asks /status/v1/services and signs in bulk (POST /sign, /sign/all) from 8.4.0.
    let (ok, out) = cli(&["sign", "--certname", "one.example.com", "--verbose"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("POST request at") && out.contains("/puppet-ca/v1/sign"),
        "{out}"
    );
    assert!(out.contains("one.example.com"), "{out}");
    let (ok, out) = cli(&["sign", "--all", "--verbose"]);
    assert!(ok, "{out}");
    assert!(out.contains("/puppet-ca/v1/sign/all"), "{out}");
    assert_eq!(status(&mut c, "three.example.com")["state"], "signed");
    let (ok, out) = cli(&["sign", "--all"]);
    assert!(
        !ok && out.contains("No waiting certificate requests to sign"),
        "{out}"
    );
    let (ok, out) = cli(&["sign", "--certname", "nosuch.example.com"]);
    assert!(!ok && out.contains("No certificate request found"), "{out}");
    assert!(out.contains("nosuch.example.com"), "{out}");

    // --ttl signs one by one (PUT certificate_status with cert_ttl).
    submit(
        &mut c,
        "four.example.com",
        &openssl_csr(&CsrOpts::new("four.example.com")),
    );
    let (ok, out) = cli(&["sign", "--certname", "four.example.com", "--ttl", "2d"]);
    assert!(ok, "{out}");
    let four = status(&mut c, "four.example.com");
    let lifetime = |s: &serde_json::Value| {
        let t = |k: &str| {
            let text = s[k].as_str().unwrap().replace("UTC", "Z");
            autosign_proxy::time::parse_rfc3339(&text).unwrap()
        };
        t("not_after") - t("not_before")
    };
    assert_eq!(lifetime(&four), 3 * 86_400, "2 days, backdated one: {four}");

    let (ok, out) = cli(&["list", "--all", "--format", "json"]);
    assert!(ok, "{out}");
    let all: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        names(&all["signed"]),
        [
            "four.example.com",
            "one.example.com",
            "three.example.com",
            "two.example.com"
        ]
    );
    // A name that is not there: listed as missing, exit 1.
    let (ok, out) = cli(&["list", "--certname", "one.example.com,missing.example.com"]);
    assert!(
        !ok && out.contains("Missing Certificates:") && out.contains("missing.example.com"),
        "{ok} {out}"
    );

    let (ok, out) = cli(&["revoke", "--certname", "one.example.com"]);
    assert!(ok, "{out}");
    assert_eq!(status(&mut c, "one.example.com")["state"], "revoked");
    let (ok, out) = cli(&["list", "--all", "--format", "json"]);
    assert!(ok, "{out}");
    let all: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(names(&all["revoked"]), ["one.example.com"]);
    let (ok, out) = cli(&["clean", "--certname", "two.example.com"]);
    assert!(ok, "{out}");
    let resp = c.ca().status("two.example.com");
    assert_eq!(resp.status, 404);
    let crl = c.ca().crl();
    assert_eq!(crl_info(&crl.body).unwrap().revoked.len(), 2);

    // generate: a key made by the CLI, the CSR submitted and signed online.
    let (ok, out) = cli(&["generate", "--certname", "gen8.example.com"]);
    assert!(ok, "{out}");
    assert_eq!(status(&mut c, "gen8.example.com")["state"], "signed");

    // The on-disk commands refuse while the CA answers "running" (2.7's new delete too).
    let (ok, out) = cli(&["delete", "--expired"]);
    assert!(!ok && out.contains("is running"), "{out}");
    let (ok, out) = cli(&["prune"]);
    assert!(!ok && out.contains("is running"), "{out}");
}

/// The policy executable, copied where the trixie root sees it (the temp directory).
fn policy_in(dir: &Path) -> PathBuf {
    let to = dir.join("autosign-policy");
    std::fs::copy(policy_bin(), &to).unwrap();
    to
}

fn write_policy_config(path: &Path, url: &str, svc: &Service, ps: &PuppetServer) {
    let (_, cert, key) = ps.host_cert_files();
    // The service's CA bundle, where the trixie root sees it.
    let ca = path.with_file_name("service-ca.pem");
    std::fs::copy(svc.dir.ca_bundle(), &ca).unwrap();
    std::fs::write(
        path,
        format!(
            "url = \"{url}\"\nca_file = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\ntimeout = 5\n",
            ca.display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
}

#[test]
fn puppetserver_8_signs_only_what_autosign_proxy_approves_and_its_ca_imports() {
    if !puppet::require_puppet8(
        "puppetserver_8_signs_only_what_autosign_proxy_approves_and_its_ca_imports",
    ) {
        return;
    }
    let _serial = one_at_a_time();
    let dir = temp_dir("p8-server");
    let policy_conf = dir.join("policy.toml");
    let policy = policy_in(&dir);
    let mut ps = PuppetServer::start_with(
        true,
        &dir.join("puppetserver"),
        policy.to_str().unwrap(),
        &[("AUTOSIGN_POLICY_CONFIG", policy_conf.to_str().unwrap())],
    )
    .unwrap_or_else(|e| panic!("puppetserver 8 did not start: {e}"));
    eprintln!("puppetserver 8 started in {:?}", ps.startup);

    let (ps_ca, _, _) = ps.host_cert_files();
    let ps_name = ps.certname.clone();
    let svc = Service::start_with("p8-server-svc", |c| {
        c.tls.client_ca = vec![ps_ca.clone()];
        c.trusted_hosts = vec![ps_name.clone()];
    });
    write_policy_config(&policy_conf, &svc.url(), &svc, &ps);
    let mut c = svc.client();

    let good = foreman_token(&mut c, "good8.example.com");
    let replay = foreman_token(&mut c, "replay8.example.com");
    let owner = foreman_token(&mut c, "owner8.example.com");
    let alts = foreman_token(&mut c, "alts8.example.com");
    let run = |name: &str, token: &str, dns_alt_names: Option<&str>| {
        puppet::agent_bootstrap_with(
            &dir.join(format!("agent-{name}")),
            name,
            ps.port,
            &AgentOptions {
                csr_attributes_yaml: Some(&token_yaml(token)),
                dns_alt_names,
                puppet8: true,
                ..Default::default()
            },
        )
    };
    let a = run("good8.example.com", &good, None);
    assert!(a.success, "right token must be signed: {}", output(&a));
    assert!(ps.is_signed("good8.example.com"));
    let b = run("replay8.example.com", &replay, None);
    assert!(b.success, "{}", output(&b));
    let d = run("thief8.example.com", &owner, None);
    assert!(!d.success, "another host's token must not sign");
    assert!(ps.is_pending("thief8.example.com"));
    assert_eq!(
        decision_reasons(&svc, "thief8.example.com"),
        ["token_wrong_host"]
    );
    let e = run(
        "alts8.example.com",
        &alts,
        Some("puppet,puppet.example.com"),
    );
    assert!(!e.success, "unrequested alt names must not sign");
    assert!(ps.is_pending("alts8.example.com"));
    assert_eq!(
        decision_reasons(&svc, "alts8.example.com"),
        ["alt_name_not_allowed"]
    );
    let (ok, out) = ps.ca_cli(&["clean", "--certname", "replay8.example.com"]);
    assert!(ok, "{out}");
    let again = puppet::agent_bootstrap_with(
        &dir.join("agent-replay-2"),
        "replay8.example.com",
        ps.port,
        &AgentOptions {
            csr_attributes_yaml: Some(&token_yaml(&replay)),
            puppet8: true,
            ..Default::default()
        },
    );
    assert!(
        !again.success,
        "a replayed token must leave the CSR pending"
    );
    assert!(ps.is_pending("replay8.example.com"));
    assert_eq!(
        decision_reasons(&svc, "replay8.example.com"),
        ["token_used", "token"]
    );

    // What puppetserver 8.7 wrote: list the CA directory for the record, then take it over.
    let listing: Vec<String> = std::fs::read_dir(ps.ca_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    eprintln!("puppetserver 8 cadir: {listing:?}");
    ps.stop();
    let data = dir.join("imported");
    let out = Command::new(proxy_bin())
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "ca",
            "import",
            "--cadir",
        ])
        .arg(ps.ca_dir())
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let took_over = Service::start_with("p8-took-over", |c| c.data_dir = data.clone());
    let mut c2 = took_over.client();
    let statuses = json(&c2.ca().statuses(None));
    let state_of = |name: &str| {
        statuses
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["state"].clone())
    };
    assert_eq!(state_of("good8.example.com"), Some("signed".into()));
    assert_eq!(state_of("thief8.example.com"), Some("requested".into()));
    // puppetserver's own agents keep working without re-issuing: a stock Puppet 8 run
    // with its certificate from puppetserver refreshes CA and CRL from us and renews.
    let kept = agent8(
        &dir.join("agent-good8.example.com"),
        "good8.example.com",
        took_over.port,
        None,
        &REFRESH_NOW,
    );
    let out = output(&kept);
    assert!(kept.success, "{out}");
    assert!(!out.contains("Creating a new"), "no new key: {out}");
    let (ps_ca_file, _, _) = ps.host_cert_files();
    let mut as_agent = took_over.client_with(Some((
        a.ssldir.join("certs/good8.example.com.pem"),
        a.ssldir.join("private_keys/good8.example.com.pem"),
    )));
    assert_eq!(as_agent.ca().expirations().status, 200);
    // A new Puppet 8 agent gets a certificate that verifies against puppetserver's CA file.
    let token = foreman_token(&mut c2, "after8.example.com");
    let fresh = agent8(
        &dir.join("agent-after8"),
        "after8.example.com",
        took_over.port,
        Some(&token_yaml(&token)),
        &[],
    );
    assert!(fresh.success, "{}", output(&fresh));
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&ps_ca_file)
        .arg(fresh.ssldir.join("certs/after8.example.com.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// `puppetserver ca setup` (2.7, offline) makes the layout puppetserver 8 sites get from it:
/// a root and an intermediate CA (ca_crt.pem and ca_crl.pem hold two each, root_key.pem),
/// and a host certificate issued by the intermediate. We import it, and that host keeps
/// working with its certificate: a stock Puppet 8 run refreshes CA and CRL from us.
#[test]
fn a_puppetserver_ca_2_7_intermediate_ca_imports_and_its_hosts_keep_working() {
    if !puppet::require_puppet8(
        "a_puppetserver_ca_2_7_intermediate_ca_imports_and_its_hosts_keep_working",
    ) {
        return;
    }
    let _serial = one_at_a_time();
    let dir = temp_dir("p8-setup");
    let host = dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let conf = dir.join("puppet.conf");
    // Nothing listens on ca_port: the CLI sees the CA offline, as `setup` requires.
    std::fs::write(
        &conf,
        format!(
            "[main]\ncertname = ca8.example.com\nca_server = 127.0.0.1\nca_port = {}\nssldir = {}\n[server]\ncadir = {}\n",
            free_port(),
            host.join("ssl").display(),
            dir.join("ca").display()
        ),
    )
    .unwrap();
    let (ok, so, se) = puppet::run_in_trixie(
        puppet::PUPPETSERVER_BIN,
        &["ca", "setup", "--config", conf.to_str().unwrap()],
        &dir,
        Duration::from_secs(120),
    );
    assert!(ok, "{so}{se}");
    let bundle = std::fs::read_to_string(dir.join("ca/ca_crt.pem")).unwrap();
    assert_eq!(
        bundle.matches("BEGIN CERTIFICATE").count(),
        2,
        "root and intermediate"
    );
    assert!(dir.join("ca/root_key.pem").is_file());

    let data = dir.join("imported");
    let out = Command::new(proxy_bin())
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "ca",
            "import",
            "--cadir",
        ])
        .arg(dir.join("ca"))
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let svc = Service::start_with("p8-setup-svc", |c| c.data_dir = data.clone());
    let mut c = svc.client();
    assert_eq!(status(&mut c, "ca8.example.com")["state"], "signed");

    // The host's own ssldir, as `setup` left it: a stock agent 8 run against us, past its
    // (1 s) refresh interval so it fetches both CRLs.
    std::thread::sleep(Duration::from_secs(2));
    let kept = agent8(&host, "ca8.example.com", svc.port, None, &REFRESH_NOW);
    let out = output(&kept);
    assert!(kept.success, "{out}");
    assert!(!out.contains("Creating a new"), "no new key: {out}");
    assert!(
        out.contains("Refreshed CRL") || out.contains("CRL is unmodified"),
        "{out}"
    );
    let crls = std::fs::read_to_string(host.join("ssl/crl.pem")).unwrap();
    assert_eq!(crls.matches("BEGIN X509 CRL").count(), 2, "a CRL per CA");

    // A new agent's certificate chains to the imported root through the intermediate.
    let token = foreman_token(&mut c, "new8.example.com");
    let fresh = agent8(
        &dir.join("new8"),
        "new8.example.com",
        svc.port,
        Some(&token_yaml(&token)),
        &[],
    );
    assert!(fresh.success, "{}", output(&fresh));
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("ca/ca_crt.pem"))
        .arg(fresh.ssldir.join("certs/new8.example.com.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
