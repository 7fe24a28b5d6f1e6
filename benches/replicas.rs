//! Signing throughput by deployment, same machine, same load: SQLite (one process), one
//! replica on PostgreSQL, and two replicas on one PostgreSQL database with the clients
//! spread over both. Each request is PUT certificate_request (autosigned) then GET
//! certificate, distinct pre-generated RSA-2048 CSRs, keep-alive HTTPS clients.
//!
//! Run: `cargo bench --bench replicas` (CA=ec-p384|rsa-4096 CSRS=2000 CLIENTS=8;
//! AUTOSIGN_TEST_POSTGRES names the server, default the local one).

mod common;

use std::sync::Arc;

use autosign_proxy::ca::signer::KeyAlgorithm;
use autosign_proxy::store::scratch::ScratchDatabase;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let ca: String = env("CA", "ec-p384".to_string());
    let count: usize = env("CSRS", 2000);
    let clients: usize = env("CLIENTS", 8);
    let csrs = Arc::new(common::plain_csrs("r", count, KeyAlgorithm::Rsa2048));
    let settings = |c: &mut autosign_proxy::config::Config, url: &str| {
        c.ca.key_algorithm = ca.parse().expect("CA: a key algorithm");
        c.ca.autosign = autosign_proxy::config::AutosignMode::Always;
        c.database_url = url.to_string();
    };
    println!("{count} CSRs (RSA-2048), {clients} keep-alive clients, {ca} CA, 2 HTTP workers per replica");

    let sqlite = common::start_with("replicas-sqlite", |c| settings(c, ""));
    let rate = common::sign_all((0..clients).map(|_| sqlite.connect()).collect(), &csrs);
    println!("SQLite, one process:              {rate:>8.0} signed/s");

    let db = ScratchDatabase::create("bench_one").expect("scratch database");
    let one = common::start_with("replicas-pg-one", |c| settings(c, &db.url));
    let rate = common::sign_all((0..clients).map(|_| one.connect()).collect(), &csrs);
    println!("PostgreSQL, one replica:          {rate:>8.0} signed/s");

    let db = ScratchDatabase::create("bench_two").expect("scratch database");
    let a = common::start_with("replicas-pg-a", |c| settings(c, &db.url));
    let b_dir = std::env::temp_dir().join(format!(
        "autosign-bench-{}-replicas-pg-b",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&b_dir);
    std::fs::create_dir_all(b_dir.join("ca")).expect("mkdir");
    for file in ["ca_key.pem", "ca_crt.pem"] {
        std::fs::copy(
            a.dir.root.join("ca").join(file),
            b_dir.join("ca").join(file),
        )
        .expect("copy");
    }
    let b = common::start_in(b_dir, |c| settings(c, &db.url));
    let connections = (0..clients)
        .map(|i| if i % 2 == 0 { a.connect() } else { b.connect() })
        .collect();
    let rate = common::sign_all(connections, &csrs);
    println!("PostgreSQL, two replicas:         {rate:>8.0} signed/s");
}
