//! Decisions you can see: webhooks from the outbox (signed, retried, surviving a kill -9),
//! suspicious-request alerts, a host's history, Prometheus metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// What a receiver got: (idempotency key, kind, signature verified, body).
type Got = Arc<Mutex<Vec<(String, String, bool, serde_json::Value)>>>;

/// A real HTTP receiver on a loopback port, checking each body's HMAC-SHA256.
fn receiver(listener: TcpListener, secret: &'static str) -> Got {
    let got: Got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                headers.push(line.trim_end().to_string());
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find_map(|h| {
                        h.split_once(": ")
                            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.to_string())
                    })
                    .unwrap_or_default()
            };
            let len: usize = header("Content-Length").parse().unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
            let expected: String = aws_lc_rs::hmac::sign(&key, &body)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let verified = header("X-Autosign-Signature") == format!("sha256={expected}");
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            sink.lock().unwrap().push((
                header("Idempotency-Key"),
                header("X-Autosign-Event"),
                verified,
                json,
            ));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    got
}

fn wait_for(
    got: &Got,
    what: impl Fn(&[(String, String, bool, serde_json::Value)]) -> bool,
    limit: Duration,
) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if what(&got.lock().unwrap()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn webhook_config(port: u16) -> autosign_proxy::config::WebhookConfig {
    autosign_proxy::config::WebhookConfig {
        name: "recv".into(),
        url: format!("http://127.0.0.1:{port}/hooks/autosign"),
        secret: Some("s3cret".into()),
        ..Default::default()
    }
}

#[test]
fn every_event_reaches_the_receiver_signed_with_its_idempotency_key() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = receiver(listener, "s3cret");
    let svc = Service::start_with("webhooks", |c| c.webhooks = vec![webhook_config(port)]);
    let mut c = svc.client();
    let token = foreman_token(&mut c, "hooked.example.com");
    let csr = openssl_csr(&CsrOpts::new("hooked.example.com").challenge(&token));
    assert_eq!(validate(&mut c, None, &csr).status, 200);
    assert_eq!(validate(&mut c, None, &csr).status, 404);
    assert!(
        wait_for(&got, |g| g.len() >= 5, Duration::from_secs(10)),
        "{:?}",
        got.lock().unwrap()
    );
    let got = got.lock().unwrap();
    let kinds: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
    // First the service's own TLS and local client certificates, issued at start.
    assert_eq!(
        kinds,
        [
            "certificate_signed",
            "certificate_signed",
            "token_issued",
            "decision",
            "decision"
        ]
    );
    assert!(got.iter().all(|g| g.2), "every signature verifies");
    let keys: std::collections::HashSet<&String> = got.iter().map(|g| &g.0).collect();
    assert_eq!(keys.len(), 5, "one key per event");
    assert!(got.iter().all(|g| g.0.starts_with("autosign-")
        && g.0.ends_with("-recv")
        && g.3["idempotency_key"] == g.0.as_str()));
    assert_eq!(got[3].3["event"]["decision"], "approved");
    assert_eq!(got[4].3["event"]["reason"], "token_used");
    assert!(
        !serde_json::to_string(&got.iter().map(|g| &g.3).collect::<Vec<_>>())
            .unwrap()
            .contains(&token),
        "never a token value"
    );
}

#[test]
fn events_queue_while_the_receiver_is_down_and_survive_kill_dash_nine() {
    let data = temp_dir("outbox");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = data.join("config.toml");
    std::fs::write(
        &conf,
        format!("[[webhooks]]\nname = \"recv\"\nurl = \"http://127.0.0.1:{hook_port}/x\"\nsecret = \"s3cret\"\ntimeout_seconds = 2\n"),
    )
    .unwrap();
    let conf = conf.to_str().unwrap().to_string();
    let (mut child, _) = crate::cli::spawn_serve(&data, port, &["--config", &conf]);
    // Events while nobody listens: the CLI records them, with their outbox rows.
    for name in ["q1.example.com", "q2.example.com", "q3.example.com"] {
        let out = std::process::Command::new(proxy_bin())
            .args([
                "--config",
                &conf,
                "--data-dir",
                data.to_str().unwrap(),
                "token",
                "issue",
                name,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let files = autosign_policy::TlsFiles {
        ca_file: data.join("tls/ca.pem"),
        cert: Some(data.join("tls/client.pem")),
        key: Some(data.join("tls/client.key")),
    };
    let mut c = autosign_policy::Connection::connect(
        &format!("https://127.0.0.1:{port}"),
        autosign_policy::client_config(&files).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let metrics = c.api().metrics().text();
    // Three tokens, and the service's own two certificates issued at its first start.
    assert!(metrics.contains("autosign_webhook_backlog 5"), "{metrics}");
    assert!(
        metrics.contains("autosign_webhook_failures_total"),
        "{metrics}"
    );
    drop(c);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The receiver comes back, then the service: the backlog is delivered.
    let got = receiver(
        TcpListener::bind(("127.0.0.1", hook_port)).unwrap(),
        "s3cret",
    );
    let (mut child, _) = crate::cli::spawn_serve(&data, port, &["--config", &conf]);
    let ok = wait_for(
        &got,
        |g| g.iter().filter(|e| e.1 == "token_issued").count() >= 3,
        Duration::from_secs(30),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "backlog not delivered: {:?}", got.lock().unwrap());
    let got = got.lock().unwrap();
    assert!(got.iter().all(|g| g.2 && !g.0.is_empty()));
    let names: std::collections::HashSet<&str> = got
        .iter()
        .filter_map(|g| g.3["event"]["certname"].as_str())
        .collect();
    assert!(["q1.example.com", "q2.example.com", "q3.example.com"]
        .iter()
        .all(|n| names.contains(n)));
}

#[test]
fn suspicious_requests_raise_alerts_and_history_tells_the_story() {
    let svc = Service::start("alerts");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "owner.example.com");
    let stolen = openssl_csr(&CsrOpts::new("thief.example.com").challenge(&token));
    assert_eq!(validate(&mut c, None, &stolen).status, 404);
    for _ in 0..6 {
        let csr = openssl_csr(&CsrOpts::new("noisy.example.com"));
        assert_eq!(validate(&mut c, None, &csr).status, 404);
    }
    let alerts = json(&c.api().events(&[("kind", "suspicious_request")]));
    let alerts = alerts["events"].as_array().unwrap();
    let certnames: Vec<&str> = alerts
        .iter()
        .map(|a| a["certname"].as_str().unwrap())
        .collect();
    assert_eq!(
        certnames
            .iter()
            .filter(|n| **n == "thief.example.com")
            .count(),
        1,
        "{certnames:?}"
    );
    assert_eq!(
        certnames
            .iter()
            .filter(|n| **n == "noisy.example.com")
            .count(),
        1,
        "one alert per burst: {certnames:?}"
    );

    // The stolen token was revoked when the thief's request exposed it: the owner's
    // build gets a new one.
    let csr = openssl_csr(&CsrOpts::new("owner.example.com").challenge(&token));
    assert_eq!(validate(&mut c, None, &csr).status, 404);
    let token = foreman_token(&mut c, "owner.example.com");
    let csr = openssl_csr(&CsrOpts::new("owner.example.com").challenge(&token));
    assert_eq!(validate(&mut c, None, &csr).status, 200);
    let history = json(&c.api().history("owner.example.com"));
    let kinds: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "token_issued",
            "token_revoked", // exposed by the thief's refused request
            "decision",
            "token_issued",
            "decision"
        ],
        "oldest first"
    );
    let since = json(&c.api().events(&[("since", "2999-01-01T00:00:00Z")]));
    assert_eq!(since["events"].as_array().unwrap().len(), 0);
    assert_eq!(c.api().events(&[("since", "yesterday")]).status, 400);

    let metrics = c.api().metrics().text();
    assert!(
        metrics.contains("autosign_decisions_total{decision=\"approved\",reason=\"token\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("autosign_decision_seconds_bucket{le=\"+Inf\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("autosign_live_tokens 0"), "{metrics}");
}
