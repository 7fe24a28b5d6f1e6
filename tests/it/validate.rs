//! The decision pipeline end to end: real CSRs from openssl, a real server with real TLS,
//! real SQLite. Every rejection is a 404 with a reason code, recorded, consuming nothing.

use crate::support::*;
use autosign_proxy::domain::certname::Certname;
use autosign_proxy::domain::event::{kind, Actor, EventFilter, NewEvent};
use autosign_proxy::domain::token::{TokenHash, TokenRequest};
use autosign_proxy::store::{EventStore, TokenStore};

fn reason(resp: &autosign_policy::Response) -> String {
    json(resp)["reason"].as_str().unwrap_or("").to_string()
}

fn live_tokens(svc: &Service, certname: &str) -> usize {
    let store = svc.store();
    block_on(store.list_tokens(Some(certname), Some(autosign_proxy::time::now())))
        .unwrap()
        .len()
}

#[test]
fn right_token_signs_once_and_replay_is_refused() {
    let svc = Service::start("token-once");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "web01.example.com");
    assert_eq!(token.len(), 43);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));

    let listed = json(&c.foreman().autosign_list());
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "web01.example.com"),
        "{listed}"
    );

    let csr = openssl_csr(&CsrOpts::new("web01.example.com").challenge(&token));
    let first = validate(&mut c, Some("web01.example.com"), &csr);
    assert_eq!(first.status, 200, "{}", first.text());
    let body = json(&first);
    assert_eq!(body["decision"], "approved");
    assert_eq!(body["reason"], "token");

    // Without Accept: application/json the answer is Foreman's: empty bodies.
    let replay = c
        .foreman()
        .plain()
        .validate(Some("web01.example.com"), &csr);
    assert_eq!(replay.status, 404);
    assert!(replay.body.is_empty());
    let replay = validate(&mut c, Some("web01.example.com"), &csr);
    assert_eq!(reason(&replay), "token_used");

    // The used token no longer shows in Foreman's list, and DELETE says it is gone.
    let listed = json(&c.foreman().autosign_list());
    assert!(!listed
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "web01.example.com"));
    let del = c.foreman().delete_autosign("web01.example.com");
    assert_eq!(del.status, 404);

    // Every decision is recorded with the client, the fingerprint and the token id.
    let store = svc.store();
    let events = block_on(store.list_events(&EventFilter {
        certname: Some("web01.example.com".into()),
        kind: Some(kind::DECISION.into()),
        limit: 10,
        ..Default::default()
    }))
    .unwrap();
    let reasons: Vec<_> = events.iter().map(|e| e.reason.clone().unwrap()).collect();
    assert_eq!(reasons, ["token_used", "token_used", "token"]);
    let approved = &events[2];
    assert_eq!(approved.actor, "autosign-proxy-local-client");
    assert!(approved.token_id.is_some());
    let fp = approved.csr_fingerprint.clone().unwrap();
    assert_eq!(fp.len(), 95, "SHA-256 as colon-separated hex: {fp}");

    // The token value is stored nowhere: only its hash.
    let db = std::fs::read(svc.dir.root.join("autosign-proxy.db")).unwrap();
    let wal = std::fs::read(svc.dir.root.join("autosign-proxy.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "token value found in the database"
        );
    }
}

#[test]
fn token_of_another_host_is_refused_and_not_consumed() {
    let svc = Service::start("wrong-host");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "db01.example.com");
    let csr = openssl_csr(&CsrOpts::new("web01.example.com").challenge(&token));
    let resp = validate(&mut c, Some("web01.example.com"), &csr);
    assert_eq!(resp.status, 404);
    assert_eq!(reason(&resp), "token_wrong_host");
    // Not consumed, but exposed (the refused CSR is readable where it is stored): revoked
    // with the rejection, which says so.
    assert_eq!(live_tokens(&svc, "db01.example.com"), 0);
    let tokens = block_on(svc.store().list_tokens(Some("db01.example.com"), None)).unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].used_at.is_none(), "not consumed");
    assert!(tokens[0].revoked_at.is_some(), "revoked");
    assert!(
        json(&resp)["message"]
            .as_str()
            .unwrap()
            .contains("was revoked"),
        "{}",
        resp.text()
    );
    // Even with an allow-list entry for the CSR's host, a wrong token never falls through.
    let add = c.api().add_entry(br#"{"pattern":"*.example.com"}"#);
    assert_eq!(add.status, 201, "{}", add.text());
    assert_eq!(
        reason(&validate(&mut c, Some("web01.example.com"), &csr)),
        "token_wrong_host"
    );
    let own = openssl_csr(&CsrOpts::new("db01.example.com").challenge(&token));
    assert_eq!(
        reason(&validate(&mut c, Some("db01.example.com"), &own)),
        "token_revoked"
    );
}

#[test]
fn unknown_expired_and_revoked_tokens_are_refused() {
    let svc = Service::start("token-states");
    let mut c = svc.client();
    let csr = openssl_csr(&CsrOpts::new("a.example.com").challenge("NotATokenWeIssued123"));
    assert_eq!(
        reason(&validate(&mut c, Some("a.example.com"), &csr)),
        "token_unknown"
    );

    // An expired token: issued 7 hours ago with the default 6 hour lifetime.
    let store = svc.store();
    let secret = "ExpiredTokenValue0000000000000000000000000a";
    let request = TokenRequest::new(
        Certname::parse("b.example.com").unwrap(),
        vec![],
        None,
        None,
    )
    .unwrap();
    let then = autosign_proxy::time::now() - 7 * 3600;
    let actor = Actor::new("test", None);
    block_on(store.issue_token(
        &request,
        &TokenHash::of(secret),
        then,
        NewEvent::new(then, kind::TOKEN_ISSUED, &actor),
    ))
    .unwrap();
    let csr = openssl_csr(&CsrOpts::new("b.example.com").challenge(secret));
    assert_eq!(
        reason(&validate(&mut c, Some("b.example.com"), &csr)),
        "token_expired"
    );

    // Revoked through the native API.
    let resp = c
        .api()
        .create_token(br#"{"certname":"c.example.com","ttl":"2h"}"#);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let issued = json(&resp);
    let id = issued["id"].as_i64().unwrap();
    let token = issued["token"].as_str().unwrap().to_string();
    let del = c.api().revoke_token(id);
    assert_eq!(del.status, 200, "{}", del.text());
    let again = c.api().revoke_token(id);
    assert_eq!(again.status, 404);
    let csr = openssl_csr(&CsrOpts::new("c.example.com").challenge(&token));
    assert_eq!(
        reason(&validate(&mut c, Some("c.example.com"), &csr)),
        "token_revoked"
    );
}

#[test]
fn a_new_token_leaves_the_one_the_host_carries_valid() {
    // Foreman re-posts the autosign entry while the host is being built: the token it
    // already rendered into the host must still work (as with Foreman's smart proxy).
    let svc = Service::start("supersede");
    let mut c = svc.client();
    let old = foreman_token(&mut c, "web.example.com");
    let new = foreman_token(&mut c, "web.example.com");
    assert_ne!(old, new);
    let csr = openssl_csr(&CsrOpts::new("web.example.com").challenge(&old));
    assert_eq!(
        validate(&mut c, None, &csr).status,
        200,
        "without ?certname the CN is used"
    );
    assert_eq!(
        live_tokens(&svc, "web.example.com"),
        1,
        "the other stays listed"
    );
    // Foreman's DELETE revokes what is left.
    assert_eq!(c.foreman().delete_autosign("web.example.com").status, 200);
    let csr = openssl_csr(&CsrOpts::new("web.example.com").challenge(&new));
    assert_eq!(reason(&validate(&mut c, None, &csr)), "token_revoked");
}

#[test]
fn allow_list_entries_follow_autosign_conf_semantics() {
    let svc = Service::start("allow-list");
    let mut c = svc.client();
    let csr = openssl_csr(&CsrOpts::new("a.lab.example.com"));
    assert_eq!(reason(&validate(&mut c, None, &csr)), "not_authorized");

    // Foreman's POST of a glob becomes an entry.
    let resp = c.foreman().create_autosign("*.lab.example.com", None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.body.is_empty());
    let resp = validate(&mut c, None, &csr);
    assert_eq!(
        (resp.status, reason(&resp)),
        (200, "allow_list".to_string())
    );
    let bare = openssl_csr(&CsrOpts::new("lab.example.com"));
    assert_eq!(
        validate(&mut c, None, &bare).status,
        200,
        "*.domain matches the bare domain"
    );
    let other = openssl_csr(&CsrOpts::new("lab.example.com.evil"));
    assert_eq!(reason(&validate(&mut c, None, &other)), "not_authorized");
    // Allow-list approvals do not allow extra SANs unless the entry says so.
    let alt = openssl_csr(
        &CsrOpts::new("b.lab.example.com")
            .ext(&["subjectAltName = DNS:b.lab.example.com,DNS:puppet"]),
    );
    assert_eq!(
        reason(&validate(&mut c, None, &alt)),
        "alt_name_not_allowed"
    );

    let del = c.foreman().delete_autosign("*.lab.example.com");
    assert_eq!(del.status, 200);
    assert_eq!(reason(&validate(&mut c, None, &csr)), "not_authorized");

    // Import reports every line it cannot use.
    let conf = b"# site list\nweb01.example.com\nbad entry\n*.ok.example.com\n*foo.example.com\nUPPER.example.com\n";
    let resp = c.api().import_entries(conf);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let report = json(&resp);
    assert_eq!(
        report["added"],
        serde_json::json!(["web01.example.com", "*.ok.example.com"])
    );
    let skipped: Vec<i64> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["line_number"].as_i64().unwrap())
        .collect();
    assert_eq!(skipped, [3, 5, 6]);
}

#[test]
fn alt_names_need_the_token_to_allow_them() {
    let svc = Service::start("sans");
    let mut c = svc.client();
    let resp = c.api().create_token(
        br#"{"certname":"puppet01.example.com","alt_names":["DNS:puppet","IP:10.0.0.5"],"metadata":{"build_id":"42"}}"#,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    // Each refusal exposes (and so revokes) the token it carried: a fresh one per case.
    let mut fresh = || {
        let resp = c.api().create_token(
            br#"{"certname":"puppet01.example.com","alt_names":["DNS:puppet","IP:10.0.0.5"]}"#,
        );
        assert_eq!(resp.status, 201, "{}", resp.text());
        json(&resp)["token"].as_str().unwrap().to_string()
    };
    let _ = resp;

    let cases: [(&[&str], &str); 5] = [
        (
            &["subjectAltName = DNS:puppet01.example.com,DNS:other"],
            "alt_name_not_allowed",
        ),
        (
            &["subjectAltName = DNS:*.example.com"],
            "forbidden_alt_name",
        ),
        (
            &["subjectAltName = URI:https://evil.example.com"],
            "forbidden_alt_name",
        ),
        (
            &["subjectAltName = email:root@example.com"],
            "forbidden_alt_name",
        ),
        (&["subjectAltName = IP:10.0.0.6"], "alt_name_not_allowed"),
    ];
    for (ext, expected) in cases {
        let token = fresh();
        let csr = openssl_csr(
            &CsrOpts::new("puppet01.example.com")
                .challenge(&token)
                .ext(ext),
        );
        let resp = validate(&mut svc.client(), None, &csr);
        assert_eq!(
            (resp.status, reason(&resp)),
            (404, expected.to_string()),
            "{ext:?}"
        );
    }
    assert_eq!(
        live_tokens(&svc, "puppet01.example.com"),
        1,
        "every refused request revoked the token it exposed; the first, never presented, stays"
    );
    let tokens = block_on(svc.store().list_tokens(Some("puppet01.example.com"), None)).unwrap();
    assert!(
        tokens.iter().all(|t| t.used_at.is_none()),
        "refusals consume nothing"
    );
    let token = fresh();
    let csr = openssl_csr(
        &CsrOpts::new("puppet01.example.com")
            .challenge(&token)
            .ext(&["subjectAltName = DNS:puppet,DNS:puppet01.example.com,IP:10.0.0.5"]),
    );
    let resp = validate(&mut c, None, &csr);
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn extension_rules() {
    let svc = Service::start("extensions");
    let mut c = svc.client();
    let _ = foreman_token(&mut c, "ext.example.com");
    let cases: [(&[&str], &str); 4] = [
        (
            &["1.3.6.1.4.1.34380.1.3.39 = ASN1:UTF8String:true"],
            "forbidden_extension",
        ),
        (
            &["1.3.6.1.4.1.34380.1.3.1 = ASN1:UTF8String:x"],
            "forbidden_extension",
        ),
        (
            &["1.2.3.4.5 = critical,ASN1:UTF8String:x"],
            "unknown_critical_extension",
        ),
        (
            &["basicConstraints = critical,CA:TRUE"],
            "forbidden_extension",
        ),
    ];
    for (ext, expected) in cases {
        // A refusal revokes the token it exposed: a fresh one per case.
        let token = foreman_token(&mut c, "ext.example.com");
        let csr = openssl_csr(&CsrOpts::new("ext.example.com").challenge(&token).ext(ext));
        assert_eq!(reason(&validate(&mut c, None, &csr)), expected, "{ext:?}");
    }
    let token = foreman_token(&mut c, "ext.example.com");
    // Puppet's registered and private extensions are fine.
    let csr = openssl_csr(&CsrOpts::new("ext.example.com").challenge(&token).ext(&[
        "1.3.6.1.4.1.34380.1.1.1 = ASN1:UTF8String:ED8B6D2A",
        "1.3.6.1.4.1.34380.1.2.1 = ASN1:UTF8String:private",
    ]));
    let resp = validate(&mut c, None, &csr);
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn bad_input_is_refused_recorded_and_consumes_nothing() {
    let svc = Service::start("bad-input");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "victim.example.com");
    let good = openssl_csr(&CsrOpts::new("victim.example.com").challenge(&token));
    let good_text = String::from_utf8(good.clone()).unwrap();

    let mut tampered = good_text.clone();
    // Flip one base64 character near the end (inside the signature).
    let pos = tampered.rfind("-----END").unwrap() - 10;
    let flipped = if &tampered[pos..pos + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(pos..pos + 1, flipped);
    let truncated = good_text[..good_text.len() / 2].to_string();
    let wrong_label = good_text.replace("CERTIFICATE REQUEST", "CERTIFICATE");
    let oversized = vec![b'A'; 70 * 1024];

    let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
        (
            b"garbage".to_vec(),
            Some("victim.example.com"),
            "malformed_csr",
        ),
        (Vec::new(), Some("victim.example.com"), "malformed_csr"),
        (
            truncated.into_bytes(),
            Some("victim.example.com"),
            "malformed_csr",
        ),
        (oversized, Some("victim.example.com"), "csr_too_large"),
        (
            wrong_label.into_bytes(),
            Some("victim.example.com"),
            "wrong_pem_label",
        ),
        (
            tampered.into_bytes(),
            Some("victim.example.com"),
            "bad_signature",
        ),
        (good.clone(), Some("other.example.com"), "certname_mismatch"),
        (good.clone(), Some("Victim.example.com"), "invalid_certname"),
        (good.clone(), Some("*.example.com"), "invalid_certname"),
    ];
    for (body, certname, expected) in cases {
        let resp = validate(&mut c, certname, &body);
        assert_eq!(resp.status, 404, "{expected}: {}", resp.text());
        assert_eq!(reason(&resp), expected);
        assert!(json(&resp)["event_id"].as_i64().unwrap() > 0, "recorded");
    }
    let upper = openssl_csr(&CsrOpts::new("UPPER.example.com").challenge(&token));
    assert_eq!(reason(&validate(&mut c, None, &upper)), "invalid_certname");
    let two_cns = openssl_csr(&CsrOpts::new("victim.example.com\nO = Evil Corp").challenge(&token));
    assert_eq!(reason(&validate(&mut c, None, &two_cns)), "invalid_subject");

    // The first refusal of a readable CSR (bad_signature) revoked the token it exposed;
    // unreadable bodies expose nothing. None consumed it.
    let tokens = block_on(svc.store().list_tokens(Some("victim.example.com"), None)).unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].used_at.is_none(), "nothing consumed");
    assert!(tokens[0].revoked_at.is_some(), "exposed, so revoked");
    let store = svc.store();
    let rejected = block_on(store.list_events(&EventFilter {
        decision: Some(autosign_proxy::domain::decision::Verdict::Rejected),
        limit: 100,
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(rejected.len(), 11);
    // Still signable after all that, with a new token.
    let token = foreman_token(&mut c, "victim.example.com");
    let good = openssl_csr(&CsrOpts::new("victim.example.com").challenge(&token));
    assert_eq!(validate(&mut c, None, &good).status, 200);
}

#[test]
fn csr_encodings_key_types_and_line_widths() {
    let svc = Service::start("encodings");
    let mut c = svc.client();
    let cases = [
        ("rsa2048-printable.example.com", KeyType::Rsa2048, "nombstr"),
        ("rsa4096-utf8.example.com", KeyType::Rsa4096, "utf8only"),
        ("ec-p256.example.com", KeyType::EcP256, "nombstr"),
    ];
    for (name, key, mask) in cases {
        let token = foreman_token(&mut c, name);
        let csr = openssl_csr(&CsrOpts::new(name).challenge(&token).key(key).mask(mask));
        let resp = validate(&mut c, Some(name), &csr);
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
    }
    // The same CSR as DER and re-wrapped at other line widths.
    let token = foreman_token(&mut c, "wrap.example.com");
    let pem = String::from_utf8(openssl_csr(
        &CsrOpts::new("wrap.example.com").challenge(&token),
    ))
    .unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let rewrapped = |width: usize| {
        let lines: Vec<String> = b64
            .as_bytes()
            .chunks(width)
            .map(|ch| String::from_utf8(ch.to_vec()).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\r\n{}\r\n-----END CERTIFICATE REQUEST-----\r\n",
            lines.join("\r\n")
        )
    };
    let dir = temp_dir("der");
    std::fs::write(dir.join("csr.pem"), &pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-in"])
        .arg(dir.join("csr.pem"))
        .args(["-outform", "DER", "-out"])
        .arg(dir.join("csr.der"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let der = std::fs::read(dir.join("csr.der")).unwrap();
    let wide = rewrapped(1000);
    let narrow = rewrapped(17);
    // Each form is a valid CSR that reaches the token step; the first one consumes it.
    let first = validate(&mut c, None, narrow.as_bytes());
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        reason(&validate(&mut c, None, wide.as_bytes())),
        "token_used"
    );
    assert_eq!(reason(&validate(&mut c, None, &der)), "token_used");
}

#[test]
fn sixty_four_concurrent_validations_of_one_token_approve_exactly_once() {
    let svc = Service::start("race");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "race.example.com");
    let csr = openssl_csr(&CsrOpts::new("race.example.com").challenge(&token));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let mut conn = svc.client();
            let csr = csr.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let resp = validate(&mut conn, Some("race.example.com"), &csr);
                (resp.status, reason(&resp))
            })
        })
        .collect();
    let results: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let approvals = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(approvals, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, r)| *s == 404 && r == "token_used"),
        "{results:?}"
    );
}

/// DER of a PEM CSR.
fn der_of(pem: &[u8]) -> Vec<u8> {
    autosign_proxy::x509::pem_blocks(std::str::from_utf8(pem).unwrap())
        .unwrap()
        .remove(0)
        .1
}

#[test]
fn hostile_encodings_of_a_valid_request_are_refused_and_consume_nothing() {
    use autosign_proxy::ca::issue::utf8_extension;
    use autosign_proxy::ca::request::{build_csr, CsrSpec};
    use autosign_proxy::ca::signer::{KeyAlgorithm, SoftwareKey};
    use autosign_proxy::domain::csr::StringKind;

    let svc = Service::start("hostile-encodings");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "victim.example.com");
    let good = der_of(&openssl_csr(
        &CsrOpts::new("victim.example.com").challenge(&token),
    ));
    // The outer header is 30 82 LL LL for a CSR of this size.
    assert_eq!(&good[..2], &[0x30, 0x82]);

    let mut trailing = good.clone();
    trailing.push(0);
    let mut non_minimal = vec![0x30, 0x83, 0x00];
    non_minimal.extend_from_slice(&good[2..]);
    let mut indefinite = vec![0x30, 0x80];
    indefinite.extend_from_slice(&good[4..]);
    indefinite.extend_from_slice(&[0, 0]);
    // Correctly signed by its own key, but asks for pp_uuid twice with two values.
    let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
    let twice = build_csr(
        &key,
        &CsrSpec {
            common_name: "victim.example.com",
            challenge_password: Some((&token, StringKind::Utf8)),
            subject_alt_names: &[],
            extensions: &[
                utf8_extension("1.3.6.1.4.1.34380.1.1.1", "first"),
                utf8_extension("1.3.6.1.4.1.34380.1.1.1", "second"),
            ],
            version: 0,
        },
    )
    .unwrap();

    for (what, body, says) in [
        ("trailing bytes", trailing, "trailing"),
        ("a non-minimal length", non_minimal, ""),
        ("an indefinite length", indefinite, ""),
        ("one extension twice", twice.clone(), "twice"),
    ] {
        let resp = validate(&mut c, Some("victim.example.com"), &body);
        assert_eq!(resp.status, 404, "{what}: {}", resp.text());
        assert_eq!(reason(&resp), "malformed_csr", "{what}");
        let message = json(&resp)["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.to_lowercase().contains(says),
            "{what}: the reason says {message:?}"
        );
        // The CA API refuses it too, and stores nothing.
        let put = c.ca().submit("victim.example.com", &body);
        assert_eq!(put.status, 400, "{what}: {}", put.text());
        assert_eq!(c.ca().request("victim.example.com").status, 404, "{what}");
    }
    assert_eq!(
        live_tokens(&svc, "victim.example.com"),
        1,
        "nothing consumed"
    );
    // The well-formed request still signs with the same token.
    assert_eq!(validate(&mut c, None, &good).status, 200);
}
