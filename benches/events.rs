//! Event pages over 1,000,000 recorded events: newest page, a deep cursor page, and the
//! filters the API offers (certname, decision, kind, time range). Target: each page
//! <= 50 ms.
//!
//! Run: `cargo bench --bench events` (EVENTS=1000000)

mod common;

use std::time::{Duration, Instant};

use autosign_proxy::domain::decision::Verdict;
use autosign_proxy::domain::event::{Actor, NewEvent};

fn main() {
    let total: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let bench = common::start("events");
    let store = bench.store.clone();
    let actor = Actor::new("bench", Some("req".into()));
    let fill = Instant::now();
    let now = autosign_proxy::time::now();
    actix_web::rt::System::new().block_on(async {
        let mut pending = Vec::new();
        for i in 0..total {
            let rejected = i % 3 == 0;
            let event = NewEvent {
                certname: Some(format!("host-{}.example.com", i % 20_000)),
                decision: Some(if rejected {
                    Verdict::Rejected
                } else {
                    Verdict::Approved
                }),
                reason: Some(if rejected { "token_used" } else { "token" }.into()),
                message: Some("bench".into()),
                csr_fingerprint: Some("AA:BB".into()),
                ..NewEvent::new(now - (total - i) as i64, "decision", &actor)
            };
            let store = store.clone();
            pending.push(actix_web::rt::spawn(async move {
                store.record_event(event).await
            }));
            if pending.len() == 2048 {
                for p in std::mem::take(&mut pending) {
                    p.await.expect("task").expect("insert");
                }
            }
        }
        for p in pending {
            p.await.expect("task").expect("insert");
        }
    });
    eprintln!(
        "recorded {total} events in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    let mut conn = bench.connect();
    let since = autosign_proxy::time::rfc3339(now - (total as i64) / 2);
    let pages = [
        ("newest page", "/api/v1/events?limit=100".to_string()),
        (
            "deep cursor page",
            format!("/api/v1/events?limit=100&before={}", total / 2),
        ),
        (
            "certname",
            "/api/v1/events?certname=host-1234.example.com&limit=100".to_string(),
        ),
        (
            "decision=rejected",
            "/api/v1/events?decision=rejected&limit=100".to_string(),
        ),
        (
            "kind + deep cursor",
            format!(
                "/api/v1/events?kind=decision&limit=100&before={}",
                total / 10
            ),
        ),
        (
            "time range",
            format!("/api/v1/events?since={since}&limit=100"),
        ),
        (
            "host history",
            "/api/v1/hosts/host-77.example.com/history?limit=100".to_string(),
        ),
    ];
    let mut worst = Duration::ZERO;
    for (what, path) in pages {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let resp = conn.request("GET", &path, &[], b"").expect("page");
            times.push(t.elapsed());
            assert_eq!(resp.status, 200, "{}", resp.text());
        }
        times.sort();
        let median = times[2];
        worst = worst.max(times[4]);
        println!(
            "events page over {total} rows, {what}: median {:.2} ms, max {:.2} ms",
            median.as_secs_f64() * 1000.0,
            times[4].as_secs_f64() * 1000.0
        );
    }
    println!("worst page: {:.2} ms", worst.as_secs_f64() * 1000.0);
}
