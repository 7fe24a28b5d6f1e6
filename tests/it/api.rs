//! Authentication on every route, the native API's error paths, and the event log API.

use crate::client::Call;
use crate::support::*;
use autosign_proxy::ca::issue::{self, LeafSpec};
use autosign_proxy::ca::signer::{KeyAlgorithm, Signer, SoftwareKey};
use autosign_proxy::x509;

/// A client certificate from the service's own CA, but with a CN nobody trusted.
fn untrusted_cert(svc: &Service) -> (std::path::PathBuf, std::path::PathBuf) {
    let ca_key = SoftwareKey::load(&svc.dir.ca_key()).unwrap();
    let ca_pem = std::fs::read(svc.dir.ca_cert()).unwrap();
    let ca_der = x509::pem_blocks(std::str::from_utf8(&ca_pem).unwrap())
        .unwrap()
        .remove(0)
        .1;
    let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
    let now = autosign_proxy::time::now();
    let der = issue::issue_leaf(
        &ca_key,
        &ca_der,
        &LeafSpec {
            common_name: "stranger.example.com",
            subject_spki_der: key.spki_der(),
            serial: 9999,
            not_before: now - 60,
            not_after: now + 3600,
            subject_alt_names: &[],
            extra_extensions: &[],
        },
    )
    .unwrap();
    let dir = temp_dir("stranger");
    let (cert, keyf) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, x509::pem_encode("CERTIFICATE", &der)).unwrap();
    std::fs::write(&keyf, key.to_pkcs8_pem().unwrap()).unwrap();
    (cert, keyf)
}

/// Every trusted route, named by its client call.
const ROUTES: [(&str, Call); 9] = [
    ("foreman().validate", |c| c.foreman().validate(None, b"{}")),
    ("foreman().autosign_list", |c| c.foreman().autosign_list()),
    ("foreman().create_autosign", |c| {
        c.foreman().create_autosign("web01.example.com", None)
    }),
    ("foreman().delete_autosign", |c| {
        c.foreman().delete_autosign("web01.example.com")
    }),
    ("api().create_token", |c| c.api().create_token(b"{}")),
    ("api().tokens", |c| c.api().tokens()),
    ("api().revoke_token", |c| c.api().revoke_token(1)),
    ("api().entries", |c| c.api().entries()),
    ("api().events", |c| c.api().events(&[])),
];

#[test]
fn every_route_needs_a_trusted_client_certificate() {
    let svc = Service::start("auth");
    let mut anonymous = svc.client_with(None);
    let mut stranger = svc.client_with(Some(untrusted_cert(&svc)));
    for (call, send) in ROUTES {
        let resp = send(&mut anonymous);
        assert_eq!(
            resp.status,
            403,
            "{call} without a certificate: {}",
            resp.text()
        );
        let resp = send(&mut stranger);
        assert_eq!(resp.status, 403, "{call} untrusted: {}", resp.text());
        assert!(
            resp.text()
                .contains("Untrusted client stranger.example.com"),
            "{}",
            resp.text()
        );
    }
    // Nothing was created by the refused calls.
    let mut trusted = svc.client();
    let tokens = json(&trusted.api().all_tokens());
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 0);
}

#[test]
fn trusted_hosts_from_config_are_accepted() {
    let svc = Service::start_with("trusted", |c| {
        c.trusted_hosts = vec!["stranger.example.com".into()]
    });
    let mut stranger = svc.client_with(Some(untrusted_cert(&svc)));
    let resp = stranger.foreman().autosign_list();
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn a_certificate_from_a_foreign_ca_cannot_even_connect() {
    let svc = Service::start("foreign");
    let other = Service::start("foreign-other");
    let files = autosign_policy::TlsFiles {
        ca_file: svc.dir.ca_bundle(),
        cert: Some(other.dir.client_cert()),
        key: Some(other.dir.client_key()),
    };
    let config = autosign_policy::client_config(&files).unwrap();
    let result =
        autosign_policy::Connection::connect(&svc.url(), config, std::time::Duration::from_secs(5))
            .and_then(|mut c| c.try_foreman().autosign_list());
    assert!(
        result.is_err(),
        "a foreign client certificate must fail the handshake: {:?}",
        result.map(|r| r.status)
    );
}

#[test]
fn native_api_error_paths() {
    let svc = Service::start("api-errors");
    let mut c = svc.client();
    let cases: [(&[u8], &str); 8] = [
        (b"not json", "invalid JSON"),
        (
            br#"{"certname":"a.example.com","colour":"red"}"#,
            "unknown field",
        ),
        (br#"{"certname":"A.example.com"}"#, "lower case"),
        (br#"{"certname":"*.example.com"}"#, "wildcard"),
        (br#"{"certname":"a.example.com","ttl":0}"#, "lifetime"),
        (
            br#"{"certname":"a.example.com","ttl":"6 weeks"}"#,
            "6 weeks",
        ),
        (
            br#"{"certname":"a.example.com","alt_names":["URI:x"]}"#,
            "URI:x",
        ),
        (
            br#"{"certname":"a.example.com","metadata":[1]}"#,
            "JSON object",
        ),
    ];
    for (body, needle) in cases {
        let resp = c.api().create_token(body);
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(body));
        assert!(
            resp.text().contains(needle),
            "{} lacks {needle}",
            resp.text()
        );
    }
    let resp = c.api().revoke_token("abc");
    assert_eq!(resp.status, 400);
    let resp = c.foreman().create_autosign("web.example.com", Some("soon"));
    assert_eq!(resp.status, 400);
    let resp = c.api().events(&[("decision", "maybe")]);
    assert_eq!(resp.status, 400);
    let resp = c.api().remove_entry("nothing.example.com");
    assert_eq!(resp.status, 404);
    let resp = c.api().add_entry(br#"{"pattern":"bad entry"}"#);
    assert_eq!(resp.status, 400);
    // Raw: a route that does not exist, which no client call names.
    let resp = c.raw("GET", "/no/such/route", &[], b"");
    assert_eq!(resp.status, 404);
}

#[test]
fn tokens_are_listed_without_values_and_ttl_is_honoured() {
    let svc = Service::start("token-list");
    let mut c = svc.client();
    let resp = c.api().create_token(
        br#"{"certname":"a.example.com","ttl":90,"alt_names":["dns:Puppet"],"metadata":{"build":"7"}}"#,
    );
    assert_eq!(resp.status, 201);
    let issued = json(&resp);
    let token = issued["token"].as_str().unwrap();
    let ttl = issued["expires_at"].as_i64().unwrap() - autosign_proxy::time::now();
    assert!((89 * 60..=90 * 60).contains(&ttl), "{ttl}");
    assert_eq!(issued["alt_names"], serde_json::json!(["DNS:puppet"]));
    // Foreman's token_ttl, in minutes.
    let resp = c.foreman().create_autosign("b.example.com", Some("15"));
    assert_eq!(resp.status, 200);
    let listed = c.api().tokens();
    assert!(
        !listed.text().contains(token),
        "token values are never listed"
    );
    let listed = json(&listed);
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    let b = tokens
        .iter()
        .find(|t| t["certname"] == "b.example.com")
        .unwrap();
    let ttl = b["expires_at"].as_i64().unwrap() - b["created_at"].as_i64().unwrap();
    assert_eq!(ttl, 15 * 60);
    assert_eq!(
        tokens
            .iter()
            .find(|t| t["certname"] == "a.example.com")
            .unwrap()["metadata"]["build"],
        "7"
    );
    assert!(tokens.iter().all(|t| t["state"] == "live"));
}

#[test]
fn events_filter_and_page() {
    let svc = Service::start("events");
    let mut c = svc.client();
    for i in 0..5 {
        let csr = openssl_csr(&CsrOpts::new(&format!("h{i}.example.com")));
        assert_eq!(validate(&mut c, None, &csr).status, 404);
    }
    let token = foreman_token(&mut c, "ok.example.com");
    let csr = openssl_csr(&CsrOpts::new("ok.example.com").challenge(&token));
    let resp = c.foreman().request_id("req-42").validate(None, &csr);
    assert_eq!(resp.status, 200);

    let rejected = json(&c.api().events(&[("decision", "rejected"), ("limit", "2")]));
    let page1 = rejected["events"].as_array().unwrap();
    assert_eq!(page1.len(), 2);
    assert!(page1.iter().all(|e| e["reason"] == "not_authorized"));
    let cursor = rejected["next_before"].as_i64().unwrap();
    let page2 = json(&c.api().events(&[
        ("decision", "rejected"),
        ("limit", "10"),
        ("before", &cursor.to_string()),
    ]));
    let page2 = page2["events"].as_array().unwrap();
    assert_eq!(page2.len(), 3);
    assert!(page2.iter().all(|e| e["id"].as_i64().unwrap() < cursor));

    let host = json(&c.api().events(&[("certname", "ok.example.com")]));
    let host = host["events"].as_array().unwrap();
    let kinds: Vec<&str> = host.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["decision", "token_issued"]);
    assert_eq!(host[0]["request_id"], "req-42");
    assert_eq!(host[0]["decision"], "approved");
    assert!(!serde_json::to_string(host).unwrap().contains(&token));
}

/// Sites that give the service a certificate from their puppetserver CA, as smart proxies
/// use: the configured files are served instead of the generated ones.
#[test]
fn configured_tls_files_are_served_instead_of_the_generated_ones() {
    let dir = temp_dir("site-ca");
    let sh = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=Site Puppet CA",
        "-days",
        "30",
    ]);
    sh(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "proxy.key",
        "-out",
        "proxy.csr",
        "-subj",
        "/CN=proxy.example.com",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName = IP:127.0.0.1, DNS:proxy.example.com\n",
    )
    .unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "proxy.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "proxy.pem",
        "-days",
        "30",
        "-extfile",
        "ext.cnf",
    ]);
    let (cert, key, site_ca) = (
        dir.join("proxy.pem"),
        dir.join("proxy.key"),
        dir.join("ca.pem"),
    );
    let svc = Service::start_with("site-tls", |c| {
        c.tls.cert = Some(cert.clone());
        c.tls.key = Some(key.clone());
    });
    // Verified against the site CA, the service answers; against its own CA it cannot.
    let files = |ca: std::path::PathBuf| autosign_policy::TlsFiles {
        ca_file: ca,
        cert: Some(svc.dir.client_cert()),
        key: Some(svc.dir.client_key()),
    };
    let config = autosign_policy::client_config(&files(site_ca)).unwrap();
    let mut conn =
        autosign_policy::Connection::connect(&svc.url(), config, std::time::Duration::from_secs(5))
            .unwrap();
    assert_eq!(conn.foreman().autosign_list().status, 200);
    let config = autosign_policy::client_config(&files(svc.dir.ca_bundle())).unwrap();
    let other =
        autosign_policy::Connection::connect(&svc.url(), config, std::time::Duration::from_secs(5))
            .and_then(|mut c| c.try_foreman().autosign_list());
    assert!(other.is_err());
}
