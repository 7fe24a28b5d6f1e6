//! The trust core, tried as an attacker would: names the service trusts, certificates
//! signed for them, revoked certificates on kept-alive and resumed connections.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autosign_policy::Connection;
use autosign_proxy::config::AutosignMode;

use crate::client::{path, Call};
use crate::support::*;

/// PUT a CSR as an agent; returns the status and body.
fn put_csr(c: &mut Connection, name: &str, csr: &[u8]) -> (u16, String) {
    let resp = c.ca().submit(name, csr);
    (resp.status, resp.text())
}

fn certificate(c: &mut Connection, name: &str) -> Option<String> {
    let resp = c.ca().certificate(name);
    (resp.status == 200).then(|| resp.text())
}

fn status(c: &mut Connection, name: &str) -> serde_json::Value {
    let resp = c.ca().status(name);
    assert_eq!(resp.status, 200, "{}", resp.text());
    json(&resp)
}

fn cli(svc: &Service, args: &[&str]) -> std::process::Output {
    Command::new(proxy_bin())
        .arg("--data-dir")
        .arg(&svc.dir.root)
        .args(args)
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap()
}

/// The CLI with `[ca] allow_duplicate_certs = true`, as the service's config would say.
fn cli_allowing_duplicates(svc: &Service, args: &[&str]) -> std::process::Output {
    let conf = svc.dir.root.join("duplicates.toml");
    std::fs::write(&conf, "[ca]\nallow_duplicate_certs = true\n").unwrap();
    Command::new(proxy_bin())
        .arg("--config")
        .arg(&conf)
        .arg("--data-dir")
        .arg(&svc.dir.root)
        .args(args)
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap()
}

/// Write an agent's certificate next to the shared EC test key, for a client to present.
fn agent_files(dir: &Path, name: &str, cert_pem: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    std::fs::write(&cert, cert_pem).unwrap();
    (cert, key_file(KeyType::EcP256))
}

fn ec_csr(name: &str) -> Vec<u8> {
    openssl_csr(&CsrOpts::new(name).key(KeyType::EcP256))
}

#[test]
fn reserved_names_are_never_autosigned_and_need_an_explicit_operator_flag() {
    let svc = Service::start_with("trust-reserved", |c| {
        c.ca.autosign = AutosignMode::Always;
        c.ca.allow_subject_alt_names = true;
        c.trusted_hosts = vec!["Foreman.Example.com".into()];
        c.ca.admin_hosts = vec!["ops.example.com".into()];
        c.tls.server_names = vec!["ca.example.com".into()];
    });
    let mut c = svc.client();
    for name in [
        "autosign-proxy-local-client",
        "autosign-proxy",
        "localhost",
        "foreman.example.com",
        "ops.example.com",
        "ca.example.com",
    ] {
        let (code, body) = put_csr(&mut c, name, &ec_csr(name));
        assert!(
            code == 200 || code == 400,
            "{name}: refused or left pending: {code} {body}"
        );
        let issued = certificate(&mut c, name);
        // The service's own two names have certificates already: they must be the
        // service's, not one for the test key.
        if let Some(pem) = issued {
            assert!(
                name.starts_with("autosign-proxy"),
                "{name} was signed automatically: {pem}"
            );
            let st = status(&mut c, name);
            assert_ne!(
                st["serial_number"], 0,
                "the service's own certificate stays"
            );
        }
        if code == 200 {
            let st = status(&mut c, name);
            assert_eq!(st["state"], "requested", "{name}: {st}");
            assert!(
                st["pending_reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("reserved"),
                "{name}: the rejection says why: {st}"
            );
        }
    }
    // A reserved name, or the service's address, as an alt name of an innocent certname:
    // a certificate to stand in for the service.
    for (name, san, said) in [
        (
            "innocent.example.com",
            "DNS:LocalHost",
            "'localhost' is reserved",
        ),
        (
            "innocent2.example.com",
            "IP:127.0.0.1",
            "'127.0.0.1' is reserved",
        ),
    ] {
        let line = format!("subjectAltName = DNS:{name},{san}");
        let csr = openssl_csr(&CsrOpts::new(name).key(KeyType::EcP256).ext(&[&line]));
        assert_eq!(put_csr(&mut c, name, &csr).0, 200);
        assert!(certificate(&mut c, name).is_none(), "{name} was signed");
        let st = status(&mut c, name);
        assert!(
            st["pending_reason"].as_str().unwrap_or("").contains(said),
            "{name}: {st}"
        );
    }

    // By hand: refused without the flag, signed with it (the CLI reads no config
    // here, so a name reserved by the service itself).
    let out = cli(&svc, &["ca", "sign", "--certname", "localhost"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reserved"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        &svc,
        &[
            "ca",
            "sign",
            "--certname",
            "localhost",
            "--allow-reserved-name",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(certificate(&mut c, "localhost").is_some());

    // Foreman's sign (POST /puppet/ca/<host>) is an automatic path: never reserved.
    let resp = c.foreman().sign("ops.example.com");
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert!(resp.text().contains("reserved"), "{}", resp.text());
}

#[test]
fn the_policy_path_refuses_reserved_names_even_under_an_allow_all_entry() {
    let svc = Service::start_with("trust-policy", |c| {
        c.trusted_hosts = vec!["foreman.example.com".into()];
    });
    let mut c = svc.client();
    let resp = c.api().add_entry(br#"{"pattern":"*"}"#);
    assert!(resp.status == 200 || resp.status == 201, "{}", resp.text());
    for name in [
        "autosign-proxy-local-client",
        "localhost",
        "foreman.example.com",
    ] {
        let resp = validate(&mut c, Some(name), &ec_csr(name));
        assert_eq!(resp.status, 404, "{name}: {}", resp.text());
        assert_eq!(json(&resp)["reason"], "reserved_name", "{name}");
    }
    let resp = validate(
        &mut c,
        Some("web01.example.com"),
        &ec_csr("web01.example.com"),
    );
    assert_eq!(resp.status, 200, "an ordinary name still passes");
}

#[test]
fn the_local_client_is_a_certificate_not_a_name() {
    let svc = Service::start_with("trust-local", |c| {
        c.ca.autosign = AutosignMode::Never;
        c.ca.allow_duplicate_certs = true;
    });
    let mut c = svc.client();
    // An operator signs a second certificate for the local client's CN (explicitly).
    let name = "autosign-proxy-local-client";
    assert_eq!(put_csr(&mut c, name, &ec_csr(name)).0, 200);
    let out = cli_allowing_duplicates(
        &svc,
        &["ca", "sign", "--certname", name, "--allow-reserved-name"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = certificate(&mut c, name).unwrap();
    let dir = temp_dir("trust-local-files");
    let files = agent_files(&dir, name, &pem);
    let mut impostor = svc.client_with(Some(files));
    let calls: [(&str, Call); 3] = [
        ("foreman().create_autosign", |c| {
            c.foreman().create_autosign("victim.example.com", None)
        }),
        ("api().tokens", |c| c.api().tokens()),
        ("foreman().list", |c| c.foreman().list()),
    ];
    for (call, send) in calls {
        let resp = send(&mut impostor);
        assert_eq!(resp.status, 403, "{call}: {}", resp.text());
    }
    // The real local client still works.
    let resp = c.api().tokens();
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn trusted_hosts_match_case_insensitively() {
    let svc = Service::start_with("trust-case", |c| {
        c.ca.autosign = AutosignMode::Never;
        c.trusted_hosts = vec!["Foreman.Example.COM".into()];
    });
    let mut c = svc.client();
    let name = "foreman.example.com";
    assert_eq!(put_csr(&mut c, name, &ec_csr(name)).0, 200);
    let out = cli(
        &svc,
        &["ca", "sign", "--certname", name, "--allow-reserved-name"],
    );
    assert!(out.status.success());
    let pem = certificate(&mut c, name).unwrap();
    let dir = temp_dir("trust-case-files");
    let mut foreman = svc.client_with(Some(agent_files(&dir, name, &pem)));
    let resp = foreman.foreman().autosign_list();
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn the_services_own_certificates_are_in_the_inventory() {
    let svc = Service::start_with("trust-inventory", |c| c.ca.autosign = AutosignMode::Always);
    let mut c = svc.client();
    let resp = c.ca().statuses(None);
    let listed: Vec<String> = json(&resp)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(listed.contains(&"autosign-proxy".to_string()), "{listed:?}");
    assert!(
        listed.contains(&"autosign-proxy-local-client".to_string()),
        "{listed:?}"
    );
    let foreman = json(&c.foreman().list());
    assert_eq!(foreman["autosign-proxy"]["state"], "valid", "{foreman}");
    // The duplicate rule holds their names.
    let (code, body) = put_csr(&mut c, "autosign-proxy", &ec_csr("autosign-proxy"));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("already has a signed certificate"), "{body}");
}

/// An agent certificate signed by the CA, and the files to present it.
/// `flags`: more `ca sign` flags (`--allow-reserved-name`).
fn signed_agent(
    svc: &Service,
    c: &mut Connection,
    name: &str,
    flags: &[&str],
) -> (PathBuf, PathBuf) {
    assert_eq!(put_csr(c, name, &ec_csr(name)).0, 200);
    let mut args = vec!["ca", "sign", "--certname", name];
    args.extend_from_slice(flags);
    let out = cli(svc, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = certificate(c, name).unwrap();
    agent_files(&temp_dir(&format!("agent-{name}")), name, &pem)
}

#[test]
fn a_revoked_certificate_is_refused_on_a_kept_alive_connection() {
    let svc = Service::start_with("trust-keepalive", |c| {
        c.ca.autosign = AutosignMode::Never;
        c.ca.admin_hosts = vec!["ops.example.com".into()];
    });
    let mut c = svc.client();
    let name = "ops.example.com";
    let files = signed_agent(&svc, &mut c, name, &["--allow-reserved-name"]);
    let mut admin = svc.client_with(Some(files));
    assert_eq!(admin.ca().status(name).status, 200);
    // Revoked by the CLI, another process: the same connection is refused within 1 s.
    assert!(cli(&svc, &["ca", "revoke", "--certname", name])
        .status
        .success());
    let revoked_at = Instant::now();
    loop {
        match admin.try_ca().status(name) {
            Ok(resp) if resp.status == 403 => break,
            Ok(resp) => assert_eq!(resp.status, 200, "{}", resp.text()),
            Err(e) => panic!("the connection itself must stay up: {e}"),
        }
        assert!(
            revoked_at.elapsed() < Duration::from_millis(1500),
            "still accepted {:?} after the revocation",
            revoked_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Open routes too: a revoked certificate is refused everywhere.
    let resp = admin.ca().ca_bundle();
    assert_eq!(resp.status, 403);
}

/// One HTTP request through `openssl s_client`, saving or resuming a TLS session.
/// Returns (session reused, response text).
fn s_client(
    port: u16,
    ca: &Path,
    cert: &Path,
    key: &Path,
    session: (&str, &Path),
    request: &str,
) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .arg("-CAfile")
        .arg(ca)
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg(session.0)
        .arg(session.1)
        .args(["-ign_eof", "-servername", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // Give the server time to send its session tickets before the request.
        std::thread::sleep(Duration::from_millis(300));
        stdin.write_all(request.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (text.contains("Reused, TLS"), text)
}

#[test]
fn a_revoked_certificate_is_refused_on_a_resumed_tls_session() {
    let svc = Service::start_with("trust-resume", |c| {
        c.ca.autosign = AutosignMode::Never;
        c.ca.admin_hosts = vec!["ops.example.com".into()];
    });
    let mut c = svc.client();
    let (cert, key) = signed_agent(&svc, &mut c, "ops.example.com", &["--allow-reserved-name"]);
    let dir = temp_dir("trust-resume-session");
    let session = dir.join("session.pem");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        path::certificate_status("ops.example.com")
    );
    let (_, first) = s_client(
        svc.port,
        &svc.dir.ca_bundle(),
        &cert,
        &key,
        ("-sess_out", &session),
        &request,
    );
    assert!(first.contains("HTTP/1.1 200"), "{first}");
    assert!(
        cli(&svc, &["ca", "revoke", "--certname", "ops.example.com"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_millis(1200));
    let (reused, second) = s_client(
        svc.port,
        &svc.dir.ca_bundle(),
        &cert,
        &key,
        ("-sess_in", &session),
        &request,
    );
    // The session must really have been resumed (the handshake verifier did not run),
    // and the request on it refused.
    assert!(reused, "the TLS session was not resumed: {second}");
    assert!(
        second.contains("HTTP/1.1 403") && !second.contains("HTTP/1.1 200"),
        "a resumed session must not bring a revoked certificate back: {second}"
    );
}

#[test]
fn an_operator_can_no_longer_issue_pp_cli_auth_second_in_line() {
    // pp_auth_role first, pp_cli_auth second: every authorization extension is checked.
    let svc = Service::start_with("trust-cli-auth", |c| c.ca.autosign = AutosignMode::Never);
    let mut c = svc.client();
    let name = "sneaky.example.com";
    let csr = openssl_csr(&CsrOpts::new(name).key(KeyType::EcP256).ext(&[
        "1.3.6.1.4.1.34380.1.3.13 = ASN1:UTF8String:admin",
        "1.3.6.1.4.1.34380.1.3.39 = ASN1:UTF8String:true",
    ]));
    assert_eq!(put_csr(&mut c, name, &csr).0, 200);
    let out = cli(
        &svc,
        &[
            "ca",
            "sign",
            "--certname",
            name,
            "--allow-authorization-extensions",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pp_cli_auth"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(certificate(&mut c, name).is_none());
    let _ = signed_agent(&svc, &mut c, "plain.example.com", &[]);
}

#[test]
fn what_the_rules_allowed_is_what_the_certificate_gets() {
    // allow_subject_alt_names lets `puppetserver ca sign` (no flag) keep DNS:puppet;
    // an upper-case SAN equal to the certname is issued once, in lower case.
    let svc = Service::start_with("trust-sans", |c| {
        c.ca.autosign = AutosignMode::Never;
        c.ca.allow_subject_alt_names = true;
    });
    let mut c = svc.client();
    let name = "compile01.example.com";
    let csr = openssl_csr(
        &CsrOpts::new(name)
            .key(KeyType::EcP256)
            .ext(&["subjectAltName = DNS:COMPILE01.example.com,DNS:puppet,IP:10.0.0.7"]),
    );
    assert_eq!(put_csr(&mut c, name, &csr).0, 200);
    let resp = c.ca().set_status(name, "signed", None);
    assert_eq!(resp.status, 204, "{}", resp.text());
    let st = status(&mut c, name);
    assert_eq!(
        st["subject_alt_names"],
        serde_json::json!(["IP:10.0.0.7", "DNS:compile01.example.com", "DNS:puppet"]),
        "{st}"
    );
    // A wildcard or a NUL never, whoever signs.
    for (n, san) in [
        ("wild.example.com", "DNS:*.example.com"),
        ("empty.example.com", "DNS:bad..label.example.com"),
    ] {
        let line = format!("subjectAltName = {san}");
        let csr = openssl_csr(&CsrOpts::new(n).key(KeyType::EcP256).ext(&[&line]));
        assert_eq!(put_csr(&mut c, n, &csr).0, 200);
        let out = cli(
            &svc,
            &["ca", "sign", "--certname", n, "--allow-dns-alt-names"],
        );
        assert!(!out.status.success(), "{n} signed with {san}");
        assert!(certificate(&mut c, n).is_none());
    }
}

/// A CSR for `name` with a key of its own (so concurrent requests are distinct).
fn own_key_csr(name: &str) -> Vec<u8> {
    use autosign_proxy::ca::request::{build_csr, CsrSpec};
    use autosign_proxy::ca::signer::{KeyAlgorithm, SoftwareKey};
    let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
    let spec = CsrSpec {
        common_name: name,
        challenge_password: None,
        subject_alt_names: &[],
        extensions: &[],
        version: 0,
    };
    autosign_proxy::x509::pem_encode("CERTIFICATE REQUEST", &build_csr(&key, &spec).unwrap())
        .into_bytes()
}

#[test]
fn simultaneous_requests_for_one_name_get_one_certificate() {
    let svc = Service::start_with("trust-dup", |c| c.ca.autosign = AutosignMode::Always);
    let name = "twin.example.com";
    let csrs: Vec<Vec<u8>> = (0..8).map(|_| own_key_csr(name)).collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = csrs
        .into_iter()
        .map(|csr| {
            let mut c = svc.client();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                put_csr(&mut c, name, &csr)
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, b)| *s == 400 && b.contains("already has a")),
        "the others get puppetserver's refusal: {answers:?}"
    );
    let store = svc.store();
    use autosign_proxy::store::CaStore;
    let live: Vec<_> = block_on(store.ca_certificates())
        .unwrap()
        .into_iter()
        .filter(|c| c.certname == name)
        .collect();
    assert_eq!(live.len(), 1, "one certificate for the name");
}

#[test]
fn revoking_a_name_revokes_every_certificate_it_ever_had() {
    // allow_duplicate_certs: a second certificate supersedes the first, which stays valid
    // until the name is revoked; then both are on the CRL and both refused.
    let svc = Service::start_with("trust-revoke-all", |c| {
        c.ca.autosign = AutosignMode::Always;
        c.ca.allow_duplicate_certs = true;
    });
    let mut c = svc.client();
    let name = "dup.example.com";
    let dir = temp_dir("trust-revoke-all-files");
    let mut holders = Vec::new();
    for i in 0..2 {
        let key = dir.join(format!("{i}.key"));
        assert!(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out"
            ])
            .arg(&key)
            .status()
            .unwrap()
            .success());
        let out = Command::new("openssl")
            .args(["req", "-new", "-subj", &format!("/CN={name}"), "-key"])
            .arg(&key)
            .output()
            .unwrap();
        assert_eq!(put_csr(&mut c, name, &out.stdout).0, 200);
        let pem = certificate(&mut c, name).unwrap();
        let cert = dir.join(format!("{i}.pem"));
        std::fs::write(&cert, &pem).unwrap();
        holders.push((cert, key));
    }
    assert_ne!(
        std::fs::read(&holders[0].0).unwrap(),
        std::fs::read(&holders[1].0).unwrap(),
        "two certificates"
    );
    for h in &holders {
        let mut holder = svc.client_with(Some(h.clone()));
        assert_eq!(holder.ca().ca_bundle().status, 200);
    }
    assert!(cli(&svc, &["ca", "clean", "--certname", name])
        .status
        .success());
    std::thread::sleep(Duration::from_millis(1500));
    for h in &holders {
        let files = autosign_policy::TlsFiles {
            ca_file: svc.dir.ca_bundle(),
            cert: Some(h.0.clone()),
            key: Some(h.1.clone()),
        };
        let conn = Connection::connect(
            &svc.url(),
            autosign_policy::client_config(&files).unwrap(),
            Duration::from_secs(5),
        );
        let refused = match conn {
            Err(_) => true,
            Ok(mut conn) => match conn.try_ca().ca_bundle() {
                Ok(resp) => resp.status == 403,
                Err(_) => true,
            },
        };
        assert!(refused, "{} still authenticates", h.0.display());
    }
}

#[test]
fn a_revocation_recorded_without_its_crl_is_published_anyway() {
    // As a process that died between committing a revocation and publishing the CRL:
    // the revocation is written to the store directly, no CRL is built.
    let svc = Service::start_with("trust-crl-reconcile", |c| {
        c.ca.autosign = AutosignMode::Never;
    });
    let mut c = svc.client();
    let name = "crashed.example.com";
    let _files = signed_agent(&svc, &mut c, name, &[]);
    let serial = status(&mut c, name)["serial_number"].as_u64().unwrap();
    let store = svc.store();
    use autosign_proxy::store::CaStore;
    let event = autosign_proxy::domain::event::NewEvent::new(
        autosign_proxy::time::now(),
        "certificate_revoked",
        &autosign_proxy::domain::event::Actor::new("crashed-process", None),
    );
    block_on(store.ca_revoke(name, autosign_proxy::time::now(), 1, event)).unwrap();
    let started = Instant::now();
    loop {
        let crl = c.ca().crl();
        let info = autosign_proxy::ca::crl::crl_info(
            &autosign_proxy::ca::crl::decode_crl_chain(&crl.text()).unwrap()[0],
        )
        .unwrap();
        let serials: Vec<u64> = info
            .revoked
            .iter()
            .map(|r| r.serial.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
            .collect();
        if serials.contains(&serial) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "serial {serial} not published: {serials:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_token_lifetime_is_exact_to_the_second() {
    let svc = Service::start("trust-ttl");
    let mut c = svc.client();
    let resp = c
        .api()
        .create_token(br#"{"certname":"quick.example.com","ttl":"1s"}"#);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let token = json(&resp)["token"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let csr = openssl_csr(&CsrOpts::new("quick.example.com").challenge(&token));
    let resp = validate(&mut c, None, &csr);
    assert_eq!(json(&resp)["reason"], "token_expired", "{}", resp.text());
    // Overflowing lifetimes are a clear 400.
    for ttl in [r#""9223372036854775807d""#, "9223372036854775807"] {
        let body = format!(r#"{{"certname":"quick.example.com","ttl":{ttl}}}"#);
        let resp = c.api().create_token(body.as_bytes());
        assert_eq!(resp.status, 400, "{ttl}: {}", resp.text());
    }
    let resp = c
        .foreman()
        .create_autosign("quick.example.com", Some("9223372036854775807"));
    assert_eq!(resp.status, 400, "{}", resp.text());
}

#[test]
fn weak_and_unsupported_keys_are_refused_for_what_they_are() {
    let svc = Service::start_with("trust-keys", |c| c.ca.autosign = AutosignMode::Always);
    let mut c = svc.client();
    let dir = temp_dir("trust-keys-files");
    for (name, genpkey) in [
        (
            "rsa1024.example.com",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"][..],
        ),
        ("ed25519.example.com", &["-algorithm", "ED25519"][..]),
    ] {
        let key = dir.join(format!("{name}.key"));
        assert!(Command::new("openssl")
            .arg("genpkey")
            .args(genpkey)
            .arg("-out")
            .arg(&key)
            .status()
            .unwrap()
            .success());
        let out = Command::new("openssl")
            .args(["req", "-new", "-subj", &format!("/CN={name}"), "-key"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success());
        let (code, body) = put_csr(&mut c, name, &out.stdout);
        assert_eq!(code, 400, "{name}: {body}");
        assert!(
            !body.contains("does not correspond"),
            "{name}: the real reason, not a mismatch: {body}"
        );
        assert!(
            body.contains("1024") || body.to_lowercase().contains("ed25519"),
            "{name}: {body}"
        );
    }
}

#[test]
fn hostile_strings_stay_on_their_log_line() {
    let dir = temp_dir("trust-log");
    let port = free_port();
    let log_path = dir.join("serve.log");
    let mut child = Command::new(proxy_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .env("AUTOSIGN_PROXY_CA_KEY_ALGORITHM", "ec-p256")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let data = dir.join("data");
    let started = Instant::now();
    // A connection touches the network only at its first request: wait for the listener.
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve is not listening"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let files = autosign_policy::TlsFiles {
        ca_file: data.join("tls/ca.pem"),
        cert: Some(data.join("tls/client.pem")),
        key: Some(data.join("tls/client.key")),
    };
    let mut c = Connection::connect(
        &format!("https://127.0.0.1:{port}"),
        autosign_policy::client_config(&files).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let csr = ec_csr("web01.example.com");
    // Raw: the certname is hostile bytes, spelled out here exactly as they go on the wire.
    let resp = c.raw(
        "POST",
        "/puppet/ca/validate?certname=web01%0AFORGED%20decision%3Dapproved",
        &[("Accept", "application/json")],
        &csr,
    );
    assert_eq!(resp.status, 404);
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("FORGED"), "the attempt is logged: {log}");
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a client's newline never starts a log line: {log}"
    );
}

#[test]
fn anonymous_submissions_are_limited_per_address() {
    let svc = Service::start_with("trust-limit", |c| {
        c.ca.autosign = AutosignMode::Never;
        c.ca.anonymous_requests_per_minute = 5;
    });
    let mut agent = svc.client_with(None);
    for i in 0..5 {
        let name = format!("flood{i}.example.com");
        assert_eq!(put_csr(&mut agent, &name, &ec_csr(&name)).0, 200);
    }
    let resp = agent
        .ca()
        .submit("flood5.example.com", &ec_csr("flood5.example.com"));
    assert_eq!(resp.status, 429, "{}", resp.text());
    let retry: u64 = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.parse().unwrap())
        .expect("Retry-After");
    assert!((1..=12).contains(&retry), "{retry}");
    // Nothing was stored for the refused one; an authenticated client is not limited.
    let mut c = svc.client();
    let resp = c.ca().request("flood5.example.com");
    assert_eq!(resp.status, 404);
    assert_eq!(
        put_csr(&mut c, "flood6.example.com", &ec_csr("flood6.example.com")).0,
        200
    );
}

#[test]
fn a_squatters_request_gives_way_to_the_host_with_its_token() {
    let svc = Service::start("trust-squat");
    let mut c = svc.client();
    let name = "web42.example.com";
    // Someone submits the predictable name first, without a token (or with a bogus one).
    let mut squatter = svc.client_with(None);
    let bogus = openssl_csr(
        &CsrOpts::new(name)
            .key(KeyType::EcP256)
            .challenge("NotARealToken0000"),
    );
    assert_eq!(put_csr(&mut squatter, name, &bogus).0, 200);
    assert_eq!(status(&mut c, name)["state"], "requested");
    // The host arrives with the token Foreman made for it.
    let token = foreman_token(&mut c, name);
    let csr = openssl_csr(&CsrOpts::new(name).key(KeyType::Rsa2048).challenge(&token));
    let mut host = svc.client_with(None);
    let (code, body) = put_csr(&mut host, name, &csr);
    assert_eq!(code, 200, "{body}");
    let pem = certificate(&mut host, name).expect("the host got its certificate");
    assert!(pem.contains("BEGIN CERTIFICATE"));
    let events = json(&c.api().events(&[("kind", "certificate_request_replaced")]));
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    // Without a live token nobody replaces anybody.
    let other = "web43.example.com";
    assert_eq!(put_csr(&mut squatter, other, &ec_csr(other)).0, 200);
    let (code, body) = put_csr(&mut host, other, &openssl_csr(&CsrOpts::new(other)));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("already has a requested certificate"),
        "{body}"
    );
}

/// A CA of another PKI (say, the site's puppetserver CA) made with `openssl ca`, able to
/// issue a client certificate, revoke it and write its CRL.
struct ForeignCa {
    dir: PathBuf,
}

impl ForeignCa {
    fn new() -> ForeignCa {
        let dir = temp_dir("foreign-ca");
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = foreign\n[foreign]\ndir = {}\ndatabase = $dir/index.txt\nserial = $dir/serial\ncrlnumber = $dir/crlnumber\nnew_certs_dir = $dir\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\ndefault_md = sha256\ndefault_days = 30\ndefault_crl_days = 30\npolicy = any\ncopy_extensions = none\n[any]\ncommonName = supplied\n[client]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n",
                dir.display()
            ),
        )
        .unwrap();
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=Foreign Puppet CA",
                "-keyout",
            ])
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(dir.join("ca.pem"))
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let ca = ForeignCa { dir };
        ca.write_crl();
        ca
    }

    fn openssl_ca(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .arg("ca")
            .arg("-config")
            .arg(self.dir.join("ca.cnf"))
            .args(["-batch"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A client certificate for `cn`: (cert, key).
    fn issue(&self, cn: &str) -> (PathBuf, PathBuf) {
        let key = self.dir.join(format!("{cn}.key"));
        let csr = self.dir.join(format!("{cn}.csr"));
        let cert = self.dir.join(format!("{cn}.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.openssl_ca(&[
            "-extensions",
            "client",
            "-in",
            csr.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        (cert, key)
    }

    fn revoke(&self, cert: &Path) {
        self.openssl_ca(&["-revoke", cert.to_str().unwrap()]);
        self.write_crl();
    }

    fn write_crl(&self) {
        let tmp = self.dir.join("crl.tmp");
        self.openssl_ca(&["-gencrl", "-out", tmp.to_str().unwrap()]);
        std::fs::rename(&tmp, self.crl()).unwrap();
    }

    fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

#[test]
fn client_certificates_of_other_cas_are_checked_against_their_crls() {
    let foreign = ForeignCa::new();
    let (cert, key) = foreign.issue("foreman.example.com");
    let svc = Service::start_with("trust-client-crl", |c| {
        c.trusted_hosts = vec!["foreman.example.com".into()];
        c.tls.client_ca = vec![foreign.cert()];
        c.tls.client_crl = vec![foreign.crl()];
    });
    let mut foreman = svc.client_with(Some((cert.clone(), key.clone())));
    assert_eq!(foreman.foreman().autosign_list().status, 200);
    // The other CA revokes the certificate and rewrites its CRL file.
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime, to the second
    foreign.revoke(&cert);
    let revoked_at = Instant::now();
    loop {
        let resp = foreman.foreman().autosign_list();
        if resp.status == 403 {
            break;
        }
        assert_eq!(resp.status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(3),
            "the reloaded CRL is in force within a second or two"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new connection is refused at the handshake or on its first request.
    let files = autosign_policy::TlsFiles {
        ca_file: svc.dir.ca_bundle(),
        cert: Some(cert),
        key: Some(key),
    };
    let refused = match Connection::connect(
        &svc.url(),
        autosign_policy::client_config(&files).unwrap(),
        Duration::from_secs(5),
    ) {
        Err(_) => true,
        Ok(mut conn) => conn
            .try_foreman()
            .autosign_list()
            .map(|r| r.status == 403)
            .unwrap_or(true),
    };
    assert!(refused);
}

#[test]
fn hostile_if_modified_since_dates_are_ignored_not_overflowed() {
    let svc = Service::start("trust-ims");
    let mut anyone = svc.client_with(None);
    for date in [
        "Sun, 06 Nov 99999999999999999 08:49:37 GMT",
        "Sun, 06 Nov -5 08:49:37 GMT",
        "garbage",
        "Thu, 01 Jan 1970 00:00:00 GMT",
    ] {
        let resp = anyone.ca().crl_if_modified_since(date);
        assert_eq!(resp.status, 200, "{date}: the CRL, as if unconditional");
    }
    let far = "Fri, 31 Dec 9999 23:59:59 GMT";
    let resp = anyone.ca().crl_if_modified_since(far);
    assert_eq!(resp.status, 304);
}
