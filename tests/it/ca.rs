//! The built-in CA with real Puppet agents (Debian's puppet-agent 7, stock settings):
//! bootstrap with a token, manual signing, alt-name gating, and everything we issue
//! checked by openssl.

use autosign_proxy::config::AutosignMode;
use std::process::Command;
use std::time::Duration;

use crate::puppet;
use crate::support::*;

fn token_yaml(token: &str) -> String {
    format!("custom_attributes:\n  1.2.840.113549.1.9.7: \"{token}\"\n")
}

fn status(c: &mut autosign_policy::Connection, name: &str) -> serde_json::Value {
    let resp = c.ca().status(name);
    assert_eq!(resp.status, 200, "{}", resp.text());
    json(&resp)
}

/// `openssl verify -crl_check` of the agent's certificate against the CA and CRL the
/// agent itself downloaded.
fn openssl_verify(ssldir: &std::path::Path, certname: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["verify", "-crl_check", "-CAfile"])
        .arg(ssldir.join("certs/ca.pem"))
        .arg("-CRLfile")
        .arg(ssldir.join("crl.pem"))
        .arg(ssldir.join(format!("certs/{certname}.pem")))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_stock_agent_bootstraps_with_a_token_and_without_stalling() {
    if !puppet::require_puppet("a_stock_agent_bootstraps_with_a_token_and_without_stalling") {
        return;
    }
    let svc = Service::start("ca-agent");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "agent1.example.com");
    let dir = temp_dir("ca-agent");
    let run = puppet::agent_bootstrap(
        &dir,
        "agent1.example.com",
        svc.port,
        Some(&token_yaml(&token)),
        None,
    );
    assert!(
        run.success,
        "agent bootstrap failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    // puppetserver makes stock agents wait ~30 s on a stalled keep-alive connection.
    assert!(
        run.elapsed < Duration::from_secs(20),
        "agent took {:?}",
        run.elapsed
    );
    eprintln!("stock agent bootstrap against our CA: {:?}", run.elapsed);
    let (ok, out) = openssl_verify(&run.ssldir, "agent1.example.com");
    assert!(ok, "{out}");
    let st = status(&mut c, "agent1.example.com");
    assert_eq!(st["state"], "signed");
    assert_eq!(
        st["dns_alt_names"],
        serde_json::json!(["DNS:agent1.example.com"])
    );
    assert!(st["serial_number"].as_u64().unwrap() > 0);

    // A second run finds its certificate and succeeds (the agent re-PUTs, gets 400).
    let again = puppet::agent_bootstrap(
        &dir,
        "agent1.example.com",
        svc.port,
        Some(&token_yaml(&token)),
        None,
    );
    assert!(again.success, "{}", again.stderr);
}

#[test]
fn under_autosign_false_an_operator_signs_and_alt_names_are_gated() {
    if !puppet::require_puppet("under_autosign_false_an_operator_signs_and_alt_names_are_gated") {
        return;
    }
    let svc = Service::start_with("ca-manual", |c| c.ca.autosign = AutosignMode::Never);
    let dir = temp_dir("ca-manual");
    let first = puppet::agent_bootstrap(&dir.join("a"), "manual.example.com", svc.port, None, None);
    assert!(!first.success, "nothing signs under autosign=false");
    let alts = puppet::agent_bootstrap(
        &dir.join("b"),
        "alts.example.com",
        svc.port,
        None,
        Some("puppet,puppet.example.com"),
    );
    assert!(!alts.success);

    let mut c = svc.client();
    let st = status(&mut c, "manual.example.com");
    assert_eq!(st["state"], "requested");
    let resp = c.ca().set_status("manual.example.com", "signed", None);
    assert_eq!(resp.status, 204, "{}", resp.text());
    let resp = c.ca().set_status("alts.example.com", "signed", None);
    assert_eq!(
        resp.status,
        409,
        "alt names need an explicit allowance: {}",
        resp.text()
    );
    assert!(resp.text().contains("DNS:puppet"), "{}", resp.text());

    let second =
        puppet::agent_bootstrap(&dir.join("a"), "manual.example.com", svc.port, None, None);
    assert!(second.success, "{}\n{}", second.stdout, second.stderr);
    let (ok, out) = openssl_verify(&second.ssldir, "manual.example.com");
    assert!(ok, "{out}");

    // The agent's own certificate opens verified connections until it is revoked.
    let agent_cert = Some((
        second.ssldir.join("certs/manual.example.com.pem"),
        second.ssldir.join("private_keys/manual.example.com.pem"),
    ));
    let mut as_agent = svc.client_with(agent_cert.clone());
    let resp = as_agent.ca().expirations();
    assert_eq!(resp.status, 200, "{}", resp.text());

    // Revocation: the CRL names the certificate and openssl refuses it.
    let resp = c.ca().set_status("manual.example.com", "revoked", None);
    assert_eq!(resp.status, 204, "{}", resp.text());
    let crl = c.ca().crl();
    assert_eq!(crl.status, 200);
    std::fs::write(second.ssldir.join("crl.pem"), &crl.body).unwrap();
    let (ok, out) = openssl_verify(&second.ssldir, "manual.example.com");
    assert!(!ok && out.contains("revoked"), "{out}");
    assert_eq!(status(&mut c, "manual.example.com")["state"], "revoked");
    // The server follows the CRL: the revoked certificate no longer gets through TLS.
    std::thread::sleep(Duration::from_millis(1500));
    let files = autosign_policy::TlsFiles {
        ca_file: svc.dir.ca_bundle(),
        cert: agent_cert.as_ref().map(|c| c.0.clone()),
        key: agent_cert.map(|c| c.1),
    };
    let refused = autosign_policy::Connection::connect(
        &svc.url(),
        autosign_policy::client_config(&files).unwrap(),
        Duration::from_secs(5),
    )
    .and_then(|mut conn| conn.try_ca().expirations());
    assert!(
        refused.is_err(),
        "a revoked certificate must not get through: {:?}",
        refused.map(|r| r.status)
    );
}

/// An ssldir for `puppetserver ca`, holding the service's local admin client certificate.
pub(crate) fn admin_ssldir(svc: &Service, dir: &std::path::Path) -> std::path::PathBuf {
    let ssl = dir.join("ssl");
    std::fs::create_dir_all(ssl.join("certs")).unwrap();
    std::fs::create_dir_all(ssl.join("private_keys")).unwrap();
    std::fs::copy(svc.dir.ca_bundle(), ssl.join("certs/ca.pem")).unwrap();
    std::fs::copy(
        svc.dir.client_cert(),
        ssl.join("certs/autosign-proxy-local-client.pem"),
    )
    .unwrap();
    std::fs::copy(
        svc.dir.client_key(),
        ssl.join("private_keys/autosign-proxy-local-client.pem"),
    )
    .unwrap();
    let crl = svc.client().ca().crl();
    std::fs::write(ssl.join("crl.pem"), &crl.body).unwrap();
    ssl
}

#[test]
fn debians_puppetserver_ca_cli_drives_our_ca() {
    if !puppet::require_puppet("debians_puppetserver_ca_cli_drives_our_ca") {
        return;
    }
    let svc = Service::start_with("ca-cli", |c| c.ca.autosign = AutosignMode::Never);
    let dir = temp_dir("ca-cli");
    let ssl = admin_ssldir(&svc, &dir);
    let mut c = svc.client();
    for name in ["one.example.com", "two.example.com"] {
        submit(&mut c, name, &openssl_csr(&CsrOpts::new(name)));
    }
    let cli = |args: &[&str]| {
        puppet::puppetserver_ca(&dir, svc.port, &ssl, "autosign-proxy-local-client", args)
    };

    let (ok, out) = cli(&["list"]);
    assert!(
        ok && out.contains("one.example.com") && out.contains("two.example.com"),
        "{out}"
    );
    let (ok, out) = cli(&["sign", "--certname", "one.example.com"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&["sign", "--all"]);
    assert!(ok, "{out}");
    assert_eq!(status(&mut c, "two.example.com")["state"], "signed");
    let (ok, out) = cli(&["list", "--all"]);
    assert!(ok && out.contains("one.example.com"), "{out}");
    let (ok, out) = cli(&["revoke", "--certname", "one.example.com"]);
    assert!(ok, "{out}");
    assert_eq!(status(&mut c, "one.example.com")["state"], "revoked");
    let (ok, out) = cli(&["clean", "--certname", "two.example.com"]);
    assert!(ok, "{out}");
    let resp = c.ca().status("two.example.com");
    assert_eq!(resp.status, 404);
    // clean revoked it first: its serial is on the CRL.
    let crl = c.ca().crl();
    let info = autosign_proxy::ca::crl::crl_info(&crl.body).unwrap();
    assert_eq!(info.revoked.len(), 2);
}

fn proxy(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(proxy_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn the_operator_cli_lists_signs_revokes_cleans_and_generates() {
    let svc = Service::start_with("ca-ops", |c| c.ca.autosign = AutosignMode::Never);
    let mut c = svc.client();
    submit(
        &mut c,
        "plain.example.com",
        &openssl_csr(&CsrOpts::new("plain.example.com")),
    );
    let alts = openssl_csr(
        &CsrOpts::new("server.example.com")
            .ext(&["subjectAltName = DNS:puppet,DNS:server.example.com"]),
    );
    submit(&mut c, "server.example.com", &alts);
    let data = svc.dir.root.clone();

    let out = proxy(&data, &["ca", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains("\"plain.example.com\"") && listing.contains("(SHA256)"),
        "{listing}"
    );
    assert!(listing.contains("alt names: \"DNS:puppet\""), "{listing}");

    let out = proxy(&data, &["ca", "sign", "--certname", "server.example.com"]);
    assert!(
        !out.status.success(),
        "alt names need --allow-dns-alt-names"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("DNS:puppet"));
    let out = proxy(&data, &["ca", "sign", "--all", "--allow-dns-alt-names"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("[2/2]"));
    let st = status(&mut c, "server.example.com");
    assert_eq!(
        st["dns_alt_names"],
        serde_json::json!(["DNS:puppet", "DNS:server.example.com"])
    );

    let out = proxy(&data, &["ca", "list", "--all", "--json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The two agents, and the service's own TLS and local client certificates.
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l["state"] == "signed"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("autosign-proxy")))
            .count(),
        2
    );

    let out = proxy(&data, &["ca", "revoke", "--certname", "plain.example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = proxy(&data, &["ca", "revoke", "--certname", "nobody.example.com"]);
    assert!(!out.status.success());
    // The running service serves the CRL the CLI published.
    let crl = c.ca().crl();
    assert_eq!(
        autosign_proxy::ca::crl::crl_info(&crl.body)
            .unwrap()
            .revoked
            .len(),
        1
    );

    let out_dir = temp_dir("generated");
    let out = proxy(
        &data,
        &[
            "ca",
            "generate",
            "--certname",
            "puppetdb.example.com",
            "--dns-alt-names",
            "puppetdb,IP:10.0.0.5",
            "--key-type",
            "ec-p256",
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out_dir.join("puppetdb.example.com.key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(out_dir.join("ca.pem"))
        .arg(out_dir.join("puppetdb.example.com.cert.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let st = status(&mut c, "puppetdb.example.com");
    assert_eq!(
        st["subject_alt_names"],
        serde_json::json!(["IP:10.0.0.5", "DNS:puppetdb", "DNS:puppetdb.example.com"])
    );

    let out = proxy(
        &data,
        &["ca", "clean", "--certname", "puppetdb.example.com"],
    );
    assert!(out.status.success());
    let resp = c.ca().certificate("puppetdb.example.com");
    assert_eq!(resp.status, 404);
}

#[test]
fn ca_api_error_paths_follow_puppetserver() {
    let svc = Service::start_with("ca-errors", |c| c.ca.autosign = AutosignMode::Never);
    let mut c = svc.client();
    let mut anon = svc.client_with(None);
    let csr = openssl_csr(&CsrOpts::new("dup.example.com"));
    submit(&mut anon, "dup.example.com", &csr);
    let put =
        |c: &mut autosign_policy::Connection, name: &str, body: &[u8]| c.ca().submit(name, body);
    let dup = put(&mut anon, "dup.example.com", &csr);
    assert_eq!(dup.status, 400);
    assert_eq!(
        dup.text(),
        "dup.example.com already has a requested certificate; ignoring certificate request"
    );
    assert!(dup.header("X-Puppet-Version").is_some());
    let mismatch = put(&mut anon, "other.example.com", &csr);
    assert_eq!(
        (mismatch.status, mismatch.text()),
        (
            400,
            "Instance name \"dup.example.com\" does not match requested key \"other.example.com\""
                .to_string()
        )
    );
    let upper = put(&mut anon, "Upper.example.com", &csr);
    assert_eq!(
        (upper.status, upper.text()),
        (400, "Certificate names must be lower case.".to_string())
    );
    assert_eq!(
        put(&mut anon, "garbage.example.com", b"garbage").status,
        400
    );

    // Admin endpoints refuse clients without pp_cli_auth.
    let admin_calls: [(&str, crate::client::Call); 3] = [
        ("ca().status", |c| c.ca().status("dup.example.com")),
        ("ca().statuses", |c| c.ca().statuses(None)),
        ("ca().delete_request", |c| {
            c.ca().delete_request("dup.example.com")
        }),
    ];
    for (call, send) in admin_calls {
        assert_eq!(send(&mut anon).status, 403, "{call}");
    }
    let name = "dup.example.com";
    let json_ct = "application/json";
    assert_eq!(c.ca().put_status(name, json_ct, b"").status, 400);
    assert_eq!(
        c.ca().put_status(name, json_ct, b"{nope").text(),
        "Request body is not JSON."
    );
    assert_eq!(c.ca().set_status(name, "maybe", None).status, 400);
    assert_eq!(
        c.ca()
            .put_status(
                name,
                json_ct,
                br#"{"desired_state":"signed","cert_ttl":"long"}"#
            )
            .status,
        400
    );
    assert_eq!(
        c.ca()
            .put_status(name, "text/xml", br#"{"desired_state":"signed"}"#)
            .status,
        415
    );
    assert_eq!(
        c.ca().set_status(name, "revoked", None).status,
        409,
        "revoke without a cert"
    );
    assert_eq!(
        c.ca()
            .set_status("nobody.example.com", "signed", None)
            .status,
        404
    );
    assert_eq!(c.ca().set_status(name, "signed", Some(3600)).status, 204);
    let st = status(&mut c, "dup.example.com");
    let (nb, na) = (
        st["not_before"].as_str().unwrap(),
        st["not_after"].as_str().unwrap(),
    );
    let span = autosign_proxy::time::parse_rfc3339(na).unwrap()
        - autosign_proxy::time::parse_rfc3339(nb).unwrap();
    assert_eq!(span, 86_400 + 3600, "backdated one day, cert_ttl honoured");
    assert_eq!(c.ca().set_status(name, "revoked", None).status, 204);
    assert_eq!(
        c.ca().set_status(name, "revoked", None).status,
        204,
        "revoking twice is fine"
    );
    assert_eq!(
        put(&mut anon, "dup.example.com", &csr).text(),
        "dup.example.com already has a revoked certificate; ignoring certificate request"
    );
    // Raw: the key segment puppetserver requires is missing, which no client sends.
    assert_eq!(
        c.raw("GET", "/puppet-ca/v1/certificate_statuses/", &[], b"")
            .status,
        400
    );
    let revoked = json(&c.ca().statuses(Some("revoked")));
    assert_eq!(revoked.as_array().unwrap().len(), 1);

    // If-Modified-Since on the CA certificate and the CRL.
    let ca = anon.ca().ca_bundle();
    let modified = ca.header("Last-Modified").unwrap().to_string();
    let again = anon.ca().ca_bundle_if_modified_since(&modified);
    assert_eq!(again.status, 304);
    let crl = anon.ca().crl();
    let modified = crl.header("Last-Modified").unwrap().to_string();
    let again = anon.ca().crl_if_modified_since(&modified);
    assert_eq!(again.status, 304);
    assert_eq!(anon.ca().simple_status_of("ca").text(), "running");
    let services = json(&anon.ca().services());
    assert_eq!(services["ca"]["service_version"], "8.7.0");
}

#[test]
fn export_then_import_round_trips_and_bad_directories_change_nothing() {
    let svc = Service::start_with("ca-export", |c| c.ca.autosign = AutosignMode::Always);
    let mut c = svc.client();
    for name in ["a.example.com", "b.example.com"] {
        submit(&mut c, name, &openssl_csr(&CsrOpts::new(name)));
    }
    submit(
        &mut c,
        "alt.example.com",
        &openssl_csr(&CsrOpts::new("alt.example.com").ext(&["subjectAltName = DNS:x"])),
    );
    let resp = c.ca().set_status("b.example.com", "revoked", None);
    assert_eq!(resp.status, 204);
    let a_cert = c.ca().certificate("a.example.com").body;

    let out_dir = temp_dir("exported");
    let cadir = out_dir.join("ca");
    let out = proxy(
        &svc.dir.root,
        &["ca", "export", "--cadir", cadir.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca_crt.pem",
        "ca_key.pem",
        "ca_crl.pem",
        "serial",
        "inventory.txt",
        "signed/a.example.com.pem",
        "requests/alt.example.com.pem",
    ] {
        assert!(cadir.join(f).exists(), "{f}");
    }

    // Refusals: a partial directory, a corrupt inventory; the target stays untouched.
    let target = temp_dir("import-target");
    let broken = out_dir.join("broken");
    copy_dir(&cadir, &broken);
    std::fs::remove_file(broken.join("ca_key.pem")).unwrap();
    let out = proxy(
        &target,
        &["ca", "import", "--cadir", broken.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ca_key.pem"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    copy_dir(&cadir, &broken);
    std::fs::write(
        broken.join("inventory.txt"),
        "0x0002 yesterday tomorrow /CN=a.example.com\n",
    )
    .unwrap();
    let out = proxy(
        &target,
        &["ca", "import", "--cadir", broken.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("inventory.txt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !target.join("ca/ca_key.pem").exists(),
        "nothing half-imported"
    );

    let out = proxy(
        &target,
        &["ca", "import", "--cadir", cadir.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        // The two agents and the exporting service's own two certificates.
        said.contains("imported 4 certificates (1 revoked) and 1 pending requests"),
        "{said}"
    );
    let imported = Service::start_with("ca-imported", |c| c.data_dir = target.clone());
    let mut c2 = imported.client();
    assert_eq!(c2.ca().certificate("a.example.com").body, a_cert);
    assert_eq!(status(&mut c2, "b.example.com")["state"], "revoked");
    assert_eq!(status(&mut c2, "alt.example.com")["state"], "requested");
    let crl = c2.ca().crl();
    let info = autosign_proxy::ca::crl::crl_info(&crl.body).unwrap();
    assert_eq!(info.revoked.len(), 1);
    // Importing again on top of a CA that has issued certificates is refused.
    let out = proxy(
        &target,
        &["ca", "import", "--cadir", cadir.to_str().unwrap()],
    );
    assert!(!out.status.success());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn kill_dash_nine_during_signing_loses_nothing_and_reuses_no_serial() {
    let data = temp_dir("kill9");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut child, _) = crate::cli::spawn_serve(&data, port, &["--autosign", "true"]);
    let csrs: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| {
            let name = format!("k{i}.example.com");
            let csr = quick_csr(&name);
            (name, csr)
        })
        .collect();
    let csrs = std::sync::Arc::new(csrs);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = format!("https://127.0.0.1:{port}");
    let files = autosign_policy::TlsFiles {
        ca_file: data.join("tls/ca.pem"),
        cert: Some(data.join("tls/client.pem")),
        key: Some(data.join("tls/client.key")),
    };
    let config = autosign_policy::client_config(&files).unwrap();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (csrs, next, url, config) =
                (csrs.clone(), next.clone(), url.clone(), config.clone());
            std::thread::spawn(move || {
                let mut received = Vec::new();
                let Ok(mut conn) =
                    autosign_policy::Connection::connect(&url, config, Duration::from_secs(5))
                else {
                    return received;
                };
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((name, csr)) = csrs.get(i) else {
                        break;
                    };
                    let put = conn.try_ca().submit(name, csr);
                    if put.is_err() {
                        break;
                    }
                    match conn.try_ca().certificate(name) {
                        Ok(r) if r.status == 200 => received.push((name.clone(), r.body)),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                received
            })
        })
        .collect();
    // Kill once the clients are well into the load, whatever this machine's speed.
    let started = std::time::Instant::now();
    while next.load(std::sync::atomic::Ordering::SeqCst) < 120
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let received: Vec<(String, Vec<u8>)> = clients
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(!received.is_empty(), "the load ran before the kill");
    assert!(
        received.len() < 400,
        "the kill happened mid-load ({} signed)",
        received.len()
    );

    let (mut child, _) = crate::cli::spawn_serve(&data, port, &["--autosign", "true"]);
    let files = autosign_policy::TlsFiles {
        ca_file: data.join("tls/ca.pem"),
        cert: Some(data.join("tls/client.pem")),
        key: Some(data.join("tls/client.key")),
    };
    let mut c = autosign_policy::Connection::connect(
        &url,
        autosign_policy::client_config(&files).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    c.set_max_body(64 << 20);
    for (name, pem) in &received {
        let served = c.ca().certificate(name);
        assert_eq!(
            &served.body, pem,
            "{name}: a certificate a client received must survive"
        );
    }
    // One more signature after the restart: its serial is new.
    let (name, csr) = &csrs[399];
    let resp = c.ca().submit(name, csr);
    assert!(resp.status == 200 || resp.status == 400, "{}", resp.text());
    let statuses = json(&c.ca().statuses(Some("signed")));
    let serials: Vec<u64> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["serial_number"].as_u64().unwrap())
        .collect();
    let unique: std::collections::HashSet<&u64> = serials.iter().collect();
    assert_eq!(unique.len(), serials.len(), "no serial is used twice");
    assert!(serials.len() > received.len());
    let _ = child.kill();
    let _ = child.wait();
}

/// A CSR quickly: one EC key for all, built by our own builder (openssl per CSR is slow).
fn quick_csr(name: &str) -> Vec<u8> {
    use autosign_proxy::ca::request::{build_csr, CsrSpec};
    use autosign_proxy::ca::signer::{KeyAlgorithm, SoftwareKey};
    static KEY: std::sync::OnceLock<SoftwareKey> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap());
    let spec = CsrSpec {
        common_name: name,
        challenge_password: None,
        subject_alt_names: &[],
        extensions: &[],
        version: 0,
    };
    autosign_proxy::x509::pem_encode("CERTIFICATE REQUEST", &build_csr(key, &spec).unwrap())
        .into_bytes()
}

#[test]
fn regenerate_backs_up_everything_and_starts_a_new_ca() {
    let data = temp_dir("regen");
    let out = proxy(&data, &["token", "issue", "keep.example.com"]);
    assert!(out.status.success());
    let svc = Service::start_with("regen", |c| {
        c.data_dir = data.clone();
        c.ca.autosign = AutosignMode::Always;
    });
    let mut c = svc.client();
    submit(
        &mut c,
        "old.example.com",
        &openssl_csr(&CsrOpts::new("old.example.com")),
    );
    let old_ca = std::fs::read(svc.dir.ca_cert()).unwrap();
    drop(c);
    drop(svc);

    let out = proxy(&data, &["ca", "regenerate"]);
    assert!(!out.status.success(), "needs --yes");
    let out = proxy(&data, &["ca", "regenerate", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("- old.example.com") && said.contains("rm -rf"),
        "{said}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[4/4]"),
        "progress is shown"
    );
    let backup = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("backup-before-regenerate")
        })
        .unwrap();
    assert_eq!(std::fs::read(backup.join("ca_crt.pem")).unwrap(), old_ca);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(backup.join("ca_key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(backup.join("autosign-proxy.db").exists());

    let svc = Service::start_with("regen-after", |c| c.data_dir = data.clone());
    assert_ne!(
        std::fs::read(svc.dir.ca_cert()).unwrap(),
        old_ca,
        "a new CA"
    );
    let mut c = svc.client();
    assert_eq!(c.ca().certificate("old.example.com").status, 404);
    let tokens = json(&c.api().tokens());
    assert_eq!(
        tokens["tokens"].as_array().unwrap().len(),
        1,
        "tokens survive a CA regeneration"
    );
}

#[test]
fn authorization_extensions_the_site_allows_reach_the_certificate() {
    let svc = Service::start_with("ca-auth-ext", |c| {
        c.policy.allowed_auth_extensions = vec!["1.3.6.1.4.1.34380.1.3.13".into()];
    });
    let mut c = svc.client();
    let token = foreman_token(&mut c, "role.example.com");
    let csr = openssl_csr(&CsrOpts::new("role.example.com").challenge(&token).ext(&[
        "1.3.6.1.4.1.34380.1.3.13 = ASN1:UTF8String:webserver",
        "1.3.6.1.4.1.34380.1.1.1 = ASN1:UTF8String:abc",
    ]));
    submit(&mut c, "role.example.com", &csr);
    let st = status(&mut c, "role.example.com");
    assert_eq!(st["state"], "signed");
    assert_eq!(
        st["authorization_extensions"]["pp_auth_role"], "webserver",
        "{st}"
    );
    // pp_cli_auth is still refused, whatever is allowed: the request stays pending.
    let token = foreman_token(&mut c, "admin.example.com");
    let csr = openssl_csr(
        &CsrOpts::new("admin.example.com")
            .challenge(&token)
            .ext(&["1.3.6.1.4.1.34380.1.3.39 = ASN1:UTF8String:true"]),
    );
    submit(&mut c, "admin.example.com", &csr);
    let st = status(&mut c, "admin.example.com");
    assert_eq!(st["state"], "requested");
    assert!(
        st["pending_reason"]
            .as_str()
            .unwrap()
            .starts_with("forbidden_extension"),
        "{st}"
    );
}
