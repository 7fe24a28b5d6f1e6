//! Request ids: every response carries `X-Request-Id` (the caller's, sanitised, or a fresh
//! UUID) on every API and on errors, and the events a request causes record the same id.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use autosign_policy::{client_config, Response, TlsFiles};

use crate::client::path;
use crate::support::*;

/// The response's request id, which every response must have.
fn id_of(resp: &Response) -> String {
    resp.header("X-Request-Id")
        .unwrap_or_else(|| {
            panic!(
                "no X-Request-Id on a {} response: {:?}",
                resp.status, resp.headers
            )
        })
        .to_string()
}

/// Whether `id` is a version 4 UUID as the service writes them (lower-case hex).
fn is_uuid_v4(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'4'
        && b"89ab".contains(&b[19])
}

/// The request id of the one event of `kind` for `certname`, as the events API lists it.
fn event_request_id(c: &mut autosign_policy::Connection, certname: &str, kind: &str) -> String {
    let events = json(&c.api().events(&[("certname", certname), ("kind", kind)]));
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    events[0]["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request_id on {}", events[0]))
        .to_string()
}

#[test]
fn a_request_without_an_id_gets_one_and_its_events_record_it() {
    let svc = Service::start("request-id-generated");
    let mut c = svc.client();
    let host = "web01.example.com";
    let resp = c.foreman().create_autosign(host, None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = id_of(&resp);
    assert!(is_uuid_v4(&id), "{id}");
    assert_eq!(event_request_id(&mut c, host, "token_issued"), id);

    // The decision of the agent's request, whose id is new too.
    let token = json(&resp)["generated_token"].as_str().unwrap().to_string();
    let csr = openssl_csr(&CsrOpts::new(host).challenge(&token));
    let resp = c.foreman().validate(None, &csr);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let decided = id_of(&resp);
    assert!(is_uuid_v4(&decided) && decided != id, "{decided}");
    assert_eq!(event_request_id(&mut c, host, "decision"), decided);

    // The CLI lists the same ids.
    let out = Command::new(proxy_bin())
        .arg("--data-dir")
        .arg(&svc.dir.root)
        .args(["events", "--certname", host, "--json"])
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (kind, want) in [("token_issued", &id), ("decision", &decided)] {
        let event = listed.iter().find(|e| e["kind"] == kind).unwrap();
        assert_eq!(event["request_id"], want.as_str(), "{event}");
    }
}

#[test]
fn a_supplied_id_is_echoed_and_recorded() {
    let svc = Service::start("request-id-supplied");
    let mut c = svc.client();
    let foreman_id = "5a3e4f0c-1b2d-4c6e-8f90-a1b2c3d4e5f6";
    let resp = c
        .foreman()
        .request_id(foreman_id)
        .create_autosign("db01.example.com", None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(id_of(&resp), foreman_id);
    assert_eq!(
        event_request_id(&mut c, "db01.example.com", "token_issued"),
        foreman_id
    );
    // Any id made of printable ASCII is kept as sent, also on a refusal.
    let resp = c
        .foreman()
        .request_id("job:42/step=3")
        .sign("nobody.example.com");
    assert_eq!(resp.status, 404, "{}", resp.text());
    assert_eq!(id_of(&resp), "job:42/step=3");
}

#[test]
fn two_requests_without_ids_get_different_ones() {
    let svc = Service::start("request-id-distinct");
    let mut c = svc.client();
    let ids: Vec<String> = (0..2).map(|_| id_of(&c.ca().simple_status())).collect();
    assert!(ids.iter().all(|id| is_uuid_v4(id)), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn every_api_and_every_error_answers_with_an_id() {
    let svc = Service::start("request-id-everywhere");
    let mut c = svc.client();
    let mut anonymous = svc.client_with(None);
    let answers = [
        ("CA API", c.ca().simple_status(), 200),
        ("smart-proxy API", c.foreman().features(), 200),
        ("native API", c.api().tokens(), 200),
        ("metrics", c.api().metrics(), 200),
        ("refused: no certificate", anonymous.api().tokens(), 403),
        ("refused: bad JSON", c.api().create_token(b"{"), 400),
        ("not found", c.ca().certificate("missing.example.com"), 404),
        // Routes no client offers: the operator's page, signed out, and an unknown path.
        (
            "operator's page",
            anonymous.raw("GET", "/ui/login", &[], b""),
            200,
        ),
        (
            "no such route",
            c.raw("GET", "/no/such/route", &[], b""),
            404,
        ),
    ];
    for (what, resp, status) in answers {
        assert_eq!(resp.status, status, "{what}: {}", resp.text());
        assert!(is_uuid_v4(&id_of(&resp)), "{what}: {:?}", id_of(&resp));
    }
}

#[test]
fn the_operators_page_records_its_request_ids() {
    let svc = Service::start("request-id-ui");
    let mut c = svc.client();
    // A failed sign-in is an event; no account is needed to cause one.
    let resp = c.raw(
        "POST",
        "/ui/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Request-Id", "browser-7"),
        ],
        b"username=mallory&password=guess",
    );
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(id_of(&resp), "browser-7");
    let events = json(&c.api().events(&[("kind", "operator_sign_in_failed")]));
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["request_id"], "browser-7");
    assert_eq!(events[0]["actor"], "operator:mallory");
    // The address the attempt came from is in the message.
    assert!(
        events[0]["message"]
            .as_str()
            .unwrap()
            .contains("from 127.0.0.1"),
        "{}",
        events[0]
    );

    // An admin client certificate is signed in at once, by a request whose id the
    // sign-in event records.
    let resp = c.raw("GET", "/ui/login", &[], b"");
    assert_eq!(resp.status, 303, "{}", resp.text());
    let signed_in = id_of(&resp);
    let events = json(&c.api().events(&[("kind", "operator_signed_in")]));
    assert_eq!(events["events"][0]["request_id"], signed_in.as_str());
    let cookie = resp
        .header("Set-Cookie")
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();

    // What the operator then does is recorded with that request's id.
    let page = c.raw("GET", "/ui/allowed", &[("Cookie", &cookie)], b"");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field: {html}"));
    let form = format!("csrf={csrf}&certname=ui.example.com");
    let resp = c.raw(
        "POST",
        "/ui/tokens",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form.as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let issued = id_of(&resp);
    assert!(is_uuid_v4(&issued) && issued != signed_in, "{issued}");
    assert_eq!(
        event_request_id(&mut c, "ui.example.com", "token_issued"),
        issued
    );
}

#[test]
fn a_refused_revoked_client_certificate_is_answered_with_an_id() {
    let svc = Service::start("request-id-revoked");
    let mut c = svc.client();
    let name = "revoked-client.example.com";
    let csr = openssl_csr(&CsrOpts::new(name).key(KeyType::EcP256));
    submit(&mut c, name, &csr);
    let signed = c.ca().set_status(name, "signed", None);
    assert_eq!(signed.status, 204, "{}", signed.text());
    let cert = c.ca().certificate(name);
    assert_eq!(cert.status, 200, "{}", cert.text());
    let cert_path = temp_dir("revoked-client").join("cert.pem");
    std::fs::write(&cert_path, &cert.body).unwrap();
    let mut agent = svc.client_with(Some((cert_path, key_file(KeyType::EcP256))));
    assert_eq!(agent.ca().ca_bundle().status, 200);

    let revoked = c.ca().set_status(name, "revoked", None);
    assert_eq!(revoked.status, 204, "{}", revoked.text());
    // The per-request revocation check refuses the kept-alive connection within a second;
    // its refusal, made before any route, says its request's id too.
    let revoked_at = Instant::now();
    let refused = loop {
        let resp = agent.ca().ca_bundle();
        if resp.status == 403 {
            break resp;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "still accepted"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(is_uuid_v4(&id_of(&refused)), "{:?}", refused.headers);
}

/// The status and `X-Request-Id` values of the answer to exactly these request bytes,
/// sent over TLS with the local client certificate: the typed client refuses to send
/// control characters and cannot send bytes that are not UTF-8.
fn raw_exchange(svc: &Service, request: &[u8]) -> (u16, Vec<Vec<u8>>) {
    let config = client_config(&TlsFiles {
        ca_file: svc.dir.ca_bundle(),
        cert: Some(svc.dir.client_cert()),
        key: Some(svc.dir.client_key()),
    })
    .unwrap();
    let server_name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, server_name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request).unwrap();
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&head)));
    let mut lines = head[..end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = String::from_utf8_lossy(lines.next().unwrap()).into_owned();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let ids = lines
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            line[..colon]
                .eq_ignore_ascii_case(b"x-request-id")
                .then(|| line[colon + 1..].trim_ascii().to_vec())
        })
        .collect();
    (status, ids)
}

fn get_with_id(id: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Request-Id: ",
        path::SIMPLE_STATUS
    )
    .into_bytes();
    request.extend_from_slice(id);
    request.extend_from_slice(b"\r\n\r\n");
    request
}

#[test]
fn a_hostile_id_is_cleaned_or_replaced_never_echoed_raw() {
    let svc = Service::start("request-id-hostile");
    let mut c = svc.client();

    // Tabs and spaces are dropped, the printable rest is kept.
    let resp = c.foreman().request_id("\tweb 01\t").version();
    assert_eq!(id_of(&resp), "web01");
    // 10 KB: cut to 128 characters.
    let long = "x".repeat(10 * 1024);
    let resp = c.foreman().request_id(&long).version();
    assert_eq!(resp.status, 200);
    assert_eq!(id_of(&resp), "x".repeat(128));
    // Nothing printable left: replaced by a new id.
    let resp = c.foreman().request_id("é\u{a0}ü").version();
    assert!(is_uuid_v4(&id_of(&resp)), "{}", id_of(&resp));

    // Bytes that are not UTF-8: dropped, or the whole id replaced.
    let (status, ids) = raw_exchange(&svc, &get_with_id(b"ab\xff\xfecd"));
    assert_eq!((status, ids), (200, vec![b"abcd".to_vec()]));
    let (status, ids) = raw_exchange(&svc, &get_with_id(b"\xff\xfe\x80"));
    assert_eq!(status, 200);
    assert_eq!(ids.len(), 1);
    assert!(is_uuid_v4(std::str::from_utf8(&ids[0]).unwrap()), "{ids:?}");

    // Control characters never reach the service: the HTTP parser refuses the request,
    // and nothing of the id comes back.
    for hostile in [&b"evil\x1b[2J"[..], b"evil\x00id", b"evil\x7fid"] {
        let (status, ids) = raw_exchange(&svc, &get_with_id(hostile));
        assert_eq!(status, 400, "{hostile:?}");
        assert!(ids.is_empty(), "{hostile:?}: {ids:?}");
    }

    // What the events record is the cleaned id, never the raw one.
    let resp = c
        .foreman()
        .request_id("\tnew host\t")
        .create_autosign("hostile.example.com", None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        event_request_id(&mut c, "hostile.example.com", "token_issued"),
        "newhost"
    );
}
