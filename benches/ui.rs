//! The operator's page at fleet size: 100,000 certificates and 1,000,000 events (over 30
//! days), 1,000 live tokens, 20 allow-list entries and 20 pending requests; p50/p95 of
//! each page over real HTTPS, signed in by the admin client certificate. Target: every
//! page <= 50 ms at p95.
//!
//! Run: `cargo bench --bench ui` (CERTS=100000 EVENTS=1000000 ROUNDS=100)

mod common;

use std::time::{Duration, Instant};

use autosign_proxy::ca::signer::KeyAlgorithm;
use rusqlite::params;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let certs = env("CERTS", 100_000);
    let events = env("EVENTS", 1_000_000);
    let rounds = env("ROUNDS", 100);
    let bench = common::start("ui");
    let now = autosign_proxy::time::now();

    // Seed straight into the database, in one transaction.
    let fill = Instant::now();
    let mut db = rusqlite::Connection::open(bench.dir.root.join("autosign-proxy.db")).expect("db");
    db.busy_timeout(Duration::from_secs(30)).expect("busy");
    // Any real certificate will do for the pages that parse one.
    let pem = std::fs::read_to_string(bench.dir.client_cert()).expect("client cert");
    let tx = db.transaction().expect("tx");
    {
        let mut cert = tx
            .prepare("INSERT INTO ca_certificates (serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason) VALUES (?1, ?2, ?8, ?3, ?4, ?5, ?4, ?6, ?7)")
            .expect("prepare");
        for i in 0..certs {
            let serial = 1_000_000 + i as i64;
            let not_after = now - 10 * 86_400 + (i as i64 * 7919) % (5 * 365 * 86_400);
            let revoked = (i % 50 == 0).then_some(now - 3600);
            cert.execute(params![
                serial,
                format!("host-{i}.example.com"),
                format!("FP:{i:08X}"),
                now - 400 * 86_400,
                not_after,
                revoked,
                revoked.map(|_| 4),
                pem
            ])
            .expect("cert");
        }
        let mut event = tx
            .prepare("INSERT INTO events (at, kind, certname, decision, reason, message, csr_fingerprint, actor) VALUES (?1, 'decision', ?2, ?3, ?4, 'bench', 'AA:BB', 'bench')")
            .expect("prepare");
        let reasons = [
            "token_used",
            "token_unknown",
            "not_authorized",
            "token_expired",
        ];
        let span = 30 * 86_400;
        for i in 0..events {
            let at = now - span + (i as i64 * span) / events as i64;
            let rejected = i % 3 == 0;
            event
                .execute(params![
                    at,
                    format!("host-{}.example.com", i % certs.max(1)),
                    if rejected { "rejected" } else { "approved" },
                    if rejected { reasons[i % 4] } else { "token" }
                ])
                .expect("event");
        }
        let mut token = tx
            .prepare("INSERT INTO build_tokens (token_hash, certname, created_at, expires_at, created_by) VALUES (?1, ?2, ?3, ?4, 'bench')")
            .expect("prepare");
        for i in 0..1000 {
            token
                .execute(params![
                    format!("hash{i}"),
                    format!("new-{i}.example.com"),
                    now,
                    now + 6 * 3600
                ])
                .expect("token");
        }
        for i in 0..20 {
            tx.execute(
                "INSERT INTO allow_entries (pattern, created_at, created_by) VALUES (?1, ?2, 'bench')",
                params![if i == 0 { "*.example.net".to_string() } else { format!("*.site{i}.example.org") }, now],
            )
            .expect("entry");
        }
    }
    tx.commit().expect("commit");
    drop(db);
    let mut c = bench.connect();
    for (name, csr) in common::plain_csrs("pending", 20, KeyAlgorithm::EcP256) {
        let resp = c
            .request(
                "PUT",
                &format!("/puppet-ca/v1/certificate_request/{name}"),
                &[("Content-Type", "text/plain")],
                &csr,
            )
            .expect("submit");
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    println!(
        "seeded {certs} certificates, {events} events, 1000 tokens, 20 entries, 20 pending in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    // Signed in by the admin client certificate (the local client carries pp_cli_auth).
    let login = c.request("GET", "/ui/login", &[], b"").expect("login");
    assert_eq!(login.status, 303);
    let cookie = login
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .and_then(|(_, v)| v.split(';').next())
        .expect("a session cookie")
        .to_string();

    let pages = [
        "/ui/",
        "/ui/pending",
        "/ui/allowed",
        "/ui/rejections",
        "/ui/rejections?reason=token_expired",
        "/ui/rejections?certname=host-77.example.com",
        "/ui/rejections?since=2020-01-01&until=2020-01-02",
        "/ui/certificates",
        "/ui/certificates?name=host-5&state=valid",
        "/ui/certificates?state=expired",
        "/ui/certificates?within=30",
        "/ui/certificates?after=host-5.example.com",
        "/ui/hosts/host-77.example.com",
    ];
    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        "page", "p50 ms", "p95 ms", "bytes"
    );
    let mut worst = Duration::ZERO;
    for page in pages {
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for round in 0..rounds + 5 {
            let started = Instant::now();
            let resp = c
                .request("GET", page, &[("Cookie", &cookie)], b"")
                .expect("page");
            let took = started.elapsed();
            assert_eq!(resp.status, 200, "{page}: {}", resp.text());
            bytes = resp.body.len();
            if round >= 5 {
                times.push(took);
            }
        }
        times.sort();
        let p95 = common::quantile(&times, 0.95);
        worst = worst.max(p95);
        println!(
            "{page:<52} {:>9.2} {:>9.2} {bytes:>9}",
            common::quantile(&times, 0.5).as_secs_f64() * 1e3,
            p95.as_secs_f64() * 1e3
        );
    }
    println!(
        "worst p95: {:.2} ms (target <= 50 ms): {}",
        worst.as_secs_f64() * 1e3,
        if worst <= Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = std::fs::remove_dir_all(&bench.dir.root);
}
