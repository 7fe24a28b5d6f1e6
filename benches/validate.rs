//! `/puppet/ca/validate` decisions per second: keep-alive HTTPS clients, RSA-4096 CSRs,
//! each with a fresh token (the approve path: verify, look up, consume, record).
//! Target on this 2-core machine: >= 3,000 decisions/s.
//!
//! Run: `cargo bench --bench validate` (CSRS=6000 CLIENTS=8 to change the load)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use autosign_proxy::ca::signer::KeyAlgorithm;

fn main() {
    let count: usize = std::env::var("CSRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let clients: usize = std::env::var("CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    // HANG=1: a webhook receiver that accepts and never answers gets every event; the
    // decisions must not notice.
    let hang = std::env::var("HANG").is_ok_and(|v| v == "1");
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hang_port = hanging.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hanging.incoming() {
            held.push(conn);
        }
    });
    let bench = common::start_with("validate", |c| {
        if hang {
            c.webhooks = vec![autosign_proxy::config::WebhookConfig {
                name: "hanging".into(),
                url: format!("http://127.0.0.1:{hang_port}/"),
                timeout_seconds: 30,
                ..Default::default()
            }];
        }
    });
    let prep = Instant::now();
    let csrs = Arc::new(bench.fresh_csrs("v", count, KeyAlgorithm::Rsa4096, 2));
    eprintln!(
        "prepared {count} RSA-4096 CSRs with fresh tokens in {:.1} s",
        prep.elapsed().as_secs_f64()
    );

    let next = Arc::new(AtomicUsize::new(0));
    let approved = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let mut conn = bench.connect();
            let (csrs, next, approved, latencies) = (
                csrs.clone(),
                next.clone(),
                approved.clone(),
                latencies.clone(),
            );
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, csr)) = csrs.get(i) else {
                    break;
                };
                let path = format!("/puppet/ca/validate?certname={name}");
                let sent = Instant::now();
                let resp = conn
                    .request("POST", &path, &[], csr.as_bytes())
                    .expect("request");
                latencies.lock().expect("lock").push(sent.elapsed());
                if resp.status == 200 {
                    approved.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let approved = approved.load(Ordering::Relaxed);
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!(
        "/validate{}: {count} RSA-4096 CSRs, {clients} keep-alive clients: {:.0} decisions/s ({approved} approved, {:.2} s), latency p50 {:.2} ms, p99 {:.2} ms",
        if hang { " with a hanging webhook receiver" } else { "" },
        count as f64 / elapsed,
        elapsed,
        ms(common::quantile(&lat, 0.5)),
        ms(common::quantile(&lat, 0.99)),
    );
    assert_eq!(approved, count, "every fresh token must be approved");
}
