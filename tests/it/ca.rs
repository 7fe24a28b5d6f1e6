//! The built-in CA with real Puppet agents (Debian's puppet-agent 7, stock settings):
//! bootstrap with a token, manual signing, alt-name gating, and everything we issue
//! checked by openssl.

use std::process::Command;
use std::time::Duration;

use crate::puppet;
use crate::support::*;

fn token_yaml(token: &str) -> String {
    format!("custom_attributes:\n  1.2.840.113549.1.9.7: \"{token}\"\n")
}

fn status(c: &mut autosign_policy::Connection, name: &str) -> serde_json::Value {
    let resp = c
        .request(
            "GET",
            &format!("/puppet-ca/v1/certificate_status/{name}"),
            &[],
            b"",
        )
        .unwrap();
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
    let svc = Service::start_with("ca-manual", |c| c.ca.autosign = "false".into());
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
    let body = br#"{"desired_state":"signed"}"#;
    let ct = [("Content-Type", "application/json")];
    let resp = c
        .request(
            "PUT",
            "/puppet-ca/v1/certificate_status/manual.example.com",
            &ct,
            body,
        )
        .unwrap();
    assert_eq!(resp.status, 204, "{}", resp.text());
    let resp = c
        .request(
            "PUT",
            "/puppet-ca/v1/certificate_status/alts.example.com",
            &ct,
            body,
        )
        .unwrap();
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

    // Revocation: the CRL names the certificate and openssl refuses it.
    let resp = c
        .request(
            "PUT",
            "/puppet-ca/v1/certificate_status/manual.example.com",
            &ct,
            br#"{"desired_state":"revoked"}"#,
        )
        .unwrap();
    assert_eq!(resp.status, 204, "{}", resp.text());
    let crl = c
        .request(
            "GET",
            "/puppet-ca/v1/certificate_revocation_list/ca",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(crl.status, 200);
    std::fs::write(second.ssldir.join("crl.pem"), &crl.body).unwrap();
    let (ok, out) = openssl_verify(&second.ssldir, "manual.example.com");
    assert!(!ok && out.contains("revoked"), "{out}");
    assert_eq!(status(&mut c, "manual.example.com")["state"], "revoked");
}
