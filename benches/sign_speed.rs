//! The physical limit the signing benchmarks must stay under: how many signatures the
//! CA's own crypto (aws-lc-rs, through our `Signer`) makes per second on this machine, on
//! one thread and on one thread per core. Compare with `openssl speed [-multi N] rsa4096`.
//!
//! Run: `cargo bench --bench sign_speed` (KEY=rsa-4096|rsa-2048|ec-p384, SECONDS=3).

use std::time::{Duration, Instant};

use autosign_proxy::ca::signer::{KeyAlgorithm, Signer, SoftwareKey};

fn rate(key: &SoftwareKey, seconds: f64) -> f64 {
    let message = [7u8; 1200]; // about a TBSCertificate
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        key.sign(&message).expect("sign");
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let algorithm: KeyAlgorithm = std::env::var("KEY")
        .unwrap_or_else(|_| "rsa-4096".into())
        .parse()
        .expect("KEY: a key algorithm");
    let seconds: f64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let key = std::sync::Arc::new(SoftwareKey::generate(algorithm).expect("key"));
    let one = rate(&key, seconds);
    let all: f64 = (0..threads)
        .map(|_| {
            let key = key.clone();
            std::thread::spawn(move || rate(&key, seconds))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .sum();
    println!("{algorithm} signatures with aws-lc-rs: {one:.0}/s on one thread, {all:.0}/s on {threads} threads");
}
