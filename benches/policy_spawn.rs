//! autosign-policy spawn-to-exit against a running service, approve path, fresh tokens.
//! Target: p50 <= 5 ms, p99 <= 20 ms over 1,000 runs.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench --bench policy_spawn`

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autosign_proxy::ca::signer::KeyAlgorithm;

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let exe = std::env::current_exe().expect("exe");
    let policy = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("autosign-policy");
    assert!(
        policy.exists(),
        "{} missing: cargo build --release --workspace --bins",
        policy.display()
    );
    let bench = common::start("policy-spawn");
    let csrs = bench.fresh_csrs("spawn", runs, KeyAlgorithm::Rsa2048, 2);
    let url = bench.url();
    let (ca, cert, key) = (
        bench.dir.ca_bundle(),
        bench.dir.client_cert(),
        bench.dir.client_key(),
    );
    let mut times = Vec::with_capacity(runs);
    let mut approved = 0;
    for (name, csr) in &csrs {
        let started = Instant::now();
        let mut child = Command::new(&policy)
            .args(["--url", &url, "--ca-file"])
            .arg(&ca)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg(name)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(csr.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        times.push(started.elapsed());
        if out.status.success() {
            approved += 1;
        } else {
            eprintln!("{name}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "autosign-policy spawn-to-exit, approve path, {runs} runs ({approved} approved): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(common::quantile(&times, 0.5)),
        ms(common::quantile(&times, 0.9)),
        ms(common::quantile(&times, 0.99)),
        ms(common::quantile(&times, 1.0)),
    );
    assert_eq!(approved, runs, "every fresh token must be approved");
}
