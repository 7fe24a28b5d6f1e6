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
    // A reserved name as an alt name of an innocent certname.
    let csr = openssl_csr(
        &CsrOpts::new("innocent.example.com")
            .key(KeyType::EcP256)
            .ext(&["subjectAltName = DNS:innocent.example.com,DNS:LocalHost"]),
    );
    assert_eq!(put_csr(&mut c, "innocent.example.com", &csr).0, 200);
    assert!(certificate(&mut c, "innocent.example.com").is_none());
    let st = status(&mut c, "innocent.example.com");
    assert!(
        st["pending_reason"]
            .as_str()
            .unwrap_or("")
            .contains("'localhost' is reserved"),
        "{st}"
    );

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
    let out = cli(
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
fn signed_agent(svc: &Service, c: &mut Connection, name: &str) -> (PathBuf, PathBuf) {
    assert_eq!(put_csr(c, name, &ec_csr(name)).0, 200);
    let out = cli(svc, &["ca", "sign", "--certname", name]);
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
    assert_eq!(put_csr(&mut c, name, &ec_csr(name)).0, 200);
    assert!(cli(
        &svc,
        &["ca", "sign", "--certname", name, "--allow-reserved-name"]
    )
    .status
    .success());
    let pem = certificate(&mut c, name).unwrap();
    let files = agent_files(&temp_dir("trust-keepalive-files"), name, &pem);
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
    let (cert, key) = signed_agent_reserved(&svc, &mut c, "ops.example.com");
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

fn signed_agent_reserved(svc: &Service, c: &mut Connection, name: &str) -> (PathBuf, PathBuf) {
    assert_eq!(put_csr(c, name, &ec_csr(name)).0, 200);
    let out = cli(
        svc,
        &["ca", "sign", "--certname", name, "--allow-reserved-name"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = certificate(c, name).unwrap();
    agent_files(&temp_dir(&format!("agent-{name}")), name, &pem)
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
    let _ = signed_agent(&svc, &mut c, "plain.example.com");
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
