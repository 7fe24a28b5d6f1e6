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
    let bench = common::start("validate");
    let prep = Instant::now();
    let csrs = Arc::new(bench.fresh_csrs("v", count, KeyAlgorithm::Rsa4096, 2));
    eprintln!(
        "prepared {count} RSA-4096 CSRs with fresh tokens in {:.1} s",
        prep.elapsed().as_secs_f64()
    );

    let next = Arc::new(AtomicUsize::new(0));
    let approved = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let mut conn = bench.connect();
            let (csrs, next, approved) = (csrs.clone(), next.clone(), approved.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, csr)) = csrs.get(i) else {
                    break;
                };
                let path = format!("/puppet/ca/validate?certname={name}");
                let resp = conn
                    .request("POST", &path, &[], csr.as_bytes())
                    .expect("request");
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
    println!(
        "/validate: {count} RSA-4096 CSRs, {clients} keep-alive clients: {:.0} decisions/s ({approved} approved, {:.2} s)",
        count as f64 / elapsed,
        elapsed
    );
    assert_eq!(approved, count, "every fresh token must be approved");
}
