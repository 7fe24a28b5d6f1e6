//! Foreman's view: proxy registration, and a host's whole lifecycle replayed with
//! Foreman's exact requests over mutual TLS, with a real Debian puppet agent in between.

use crate::client::{path, Call, Foreman};
use crate::puppet;
use crate::support::*;
use autosign_policy::Connection;
use autosign_proxy::config::AutosignMode;

/// Foreman's headers on every call: `Accept: application/json`, a request id, a session.
fn foreman<'a>(c: &'a mut Connection, request_id: &str) -> Foreman<'a> {
    c.foreman()
        .request_id(request_id)
        .header("X-Session-Id", "session-1")
}

fn token_yaml(token: &str) -> String {
    format!("custom_attributes:\n  1.2.840.113549.1.9.7: \"{token}\"\n")
}

#[test]
fn registration_answers_as_a_smart_proxy() {
    let svc = Service::start_with("foreman-features", |c| {
        c.tls.server_names = vec!["proxy.example.com".into()]
    });
    let mut anon = svc.client_with(None);
    let resp = anon.foreman().features();
    assert_eq!(
        (resp.status, json(&resp)),
        (200, serde_json::json!(["logs", "puppetca"]))
    );
    let resp = anon.foreman().version();
    assert_eq!(
        json(&resp)["modules"]["puppetca"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        anon.foreman().features_v2().status,
        403,
        "v2 is for trusted hosts"
    );
    let mut c = svc.client();
    let v2 = json(&foreman(&mut c, "r0").features_v2());
    assert_eq!(v2["puppetca"]["state"], "running");
    assert_eq!(v2["puppetca"]["https_enabled"], true);
    assert_eq!(
        v2["puppetca"]["settings"]["puppet_url"],
        format!("https://proxy.example.com:{}", svc.port)
    );
}

#[test]
fn every_puppet_ca_route_refuses_untrusted_clients() {
    let svc = Service::start("foreman-403");
    let mut anon = svc.client_with(None);
    let calls: [(&str, Call); 8] = [
        ("list", |c| c.foreman().list()),
        ("sign", |c| c.foreman().sign("web.example.com")),
        ("clean", |c| c.foreman().clean("web.example.com")),
        ("autosign_list", |c| c.foreman().autosign_list()),
        ("create_autosign", |c| {
            c.foreman().create_autosign("web.example.com", None)
        }),
        ("delete_autosign", |c| {
            c.foreman().delete_autosign("web.example.com")
        }),
        ("validate", |c| c.foreman().validate(None, b"")),
        ("sign autosign", |c| c.foreman().sign("autosign")),
    ];
    for (call, send) in calls {
        assert_eq!(send(&mut anon).status, 403, "{call}");
    }
    // Plain HTTP on the port gets nothing: the service speaks only TLS.
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path::FOREMAN_CA).as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "{answer:?}"
    );
}

#[test]
fn a_host_lifecycle_as_foreman_drives_it() {
    if !puppet::require_puppet("a_host_lifecycle_as_foreman_drives_it") {
        return;
    }
    let svc = Service::start("foreman-lifecycle");
    let mut c = svc.client();
    let host = "lifecycle.example.com";
    let dir = temp_dir("foreman-lifecycle");

    // Host created: clean any old certificate (404 = nothing there), get a token.
    assert_eq!(foreman(&mut c, "create-1").clean(host).status, 404);
    let resp = foreman(&mut c, "create-2").create_autosign(host, None);
    assert_eq!(resp.status, 200);
    let token = json(&resp)["generated_token"].as_str().unwrap().to_string();
    let listed = json(&foreman(&mut c, "list").autosign_list());
    assert!(listed.as_array().unwrap().iter().any(|v| v == host));

    // The host builds: its agent gets a certificate with the token.
    let run = puppet::agent_bootstrap(
        &dir.join("build-1"),
        host,
        svc.port,
        Some(&token_yaml(&token)),
        None,
    );
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let mut c = svc.client();
    let certs = json(&foreman(&mut c, "list-2").list());
    assert_eq!(certs[host]["state"], "valid", "{certs}");
    let first_serial = certs[host]["serial"].as_u64().unwrap();
    assert!(certs[host]["fingerprint"].as_str().unwrap().contains(':'));

    // Build finished: the token is gone already (used), which Foreman accepts as 404.
    assert_eq!(foreman(&mut c, "built").delete_autosign(host).status, 404);

    // Rebuild: old certificate cleaned (revoked then deleted), new token, new bootstrap.
    assert_eq!(
        foreman(&mut c, "rebuild-1").delete_autosign(host).status,
        404
    );
    assert_eq!(foreman(&mut c, "rebuild-2").clean(host).status, 200);
    let resp = foreman(&mut c, "rebuild-3").create_autosign(host, None);
    let token = json(&resp)["generated_token"].as_str().unwrap().to_string();
    let run = puppet::agent_bootstrap(
        &dir.join("build-2"),
        host,
        svc.port,
        Some(&token_yaml(&token)),
        None,
    );
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let mut c = svc.client();
    let certs = json(&foreman(&mut c, "list-3").list());
    assert_eq!(certs[host]["state"], "valid");
    assert!(certs[host]["serial"].as_u64().unwrap() > first_serial);
    let crl = c.ca().crl();
    let revoked = autosign_proxy::ca::crl::crl_info(&crl.body).unwrap();
    assert_eq!(
        revoked.revoked.len(),
        1,
        "the first certificate was revoked on rebuild"
    );

    // Destroyed.
    assert_eq!(
        foreman(&mut c, "destroy-1").delete_autosign(host).status,
        404
    );
    assert_eq!(foreman(&mut c, "destroy-2").clean(host).status, 200);
    let certs = json(&foreman(&mut c, "list-4").list());
    assert!(certs.get(host).is_none(), "{certs}");

    // Foreman's request ids are in the recorded events.
    let events = json(&c.api().events(&[("certname", host), ("limit", "100")]));
    let ids: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["request_id"].as_str())
        .collect();
    for id in ["create-2", "rebuild-2", "rebuild-3", "destroy-2"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

#[test]
fn hosts_named_validate_and_autosign_can_be_signed_and_cleaned() {
    let svc = Service::start_with("foreman-names", |c| c.ca.autosign = AutosignMode::Never);
    let mut c = svc.client();
    for name in ["validate", "autosign"] {
        let csr = openssl_csr(&CsrOpts::new(name));
        let resp = c.ca().submit(name, &csr);
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert_eq!(foreman(&mut c, "s1").sign("validate").status, 200);
    assert_eq!(foreman(&mut c, "s2").sign("autosign").status, 200);
    let certs = json(&foreman(&mut c, "l").list());
    assert_eq!(certs["validate"]["state"], "valid");
    assert_eq!(certs["autosign"]["state"], "valid");
    assert_eq!(foreman(&mut c, "d1").clean("validate").status, 200);
    assert_eq!(foreman(&mut c, "d2").clean("autosign").status, 200);
    let left = json(&foreman(&mut c, "l2").list());
    let names: Vec<&String> = left.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        ["autosign-proxy", "autosign-proxy-local-client"],
        "only the service's own certificates are left: {left}"
    );
    // Signing a host with nothing pending is a 404 Foreman reports.
    assert_eq!(foreman(&mut c, "s3").sign("nobody.example.com").status, 404);
}
