//! The built-in CA under load, end to end: PUT certificate_request (autosigned), then GET
//! certificate, distinct pre-generated RSA-2048 CSRs, keep-alive HTTPS clients. Then the
//! bulk figures: certificate_statuses over 100,000 certificates and a CRL rebuild with
//! 100,000 revocations.
//!
//! Targets on this 2-core machine: RSA-4096 CA >= 250 signed/s, EC P-384 CA >= 2,000/s;
//! statuses and CRL rebuild <= 1 s each.
//!
//! Run: `cargo bench --bench ca` (CA=rsa-4096|ec-p384 CSRS=2000 CLIENTS=8 BULK=100000)

mod common;

use std::sync::Arc;
use std::time::Instant;

use autosign_proxy::ca::signer::KeyAlgorithm;
use autosign_proxy::domain::event::{Actor, NewEvent};
use autosign_proxy::store::CaCertificate;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let ca: String = env("CA", "rsa-4096".to_string());
    let count: usize = env("CSRS", 2000);
    let clients: usize = env("CLIENTS", 8);
    let bulk: usize = env("BULK", 100_000);
    let bench = common::start_with(&format!("ca-{ca}"), |c| {
        c.ca.key_algorithm = ca.parse().expect("CA: a key algorithm");
        c.ca.autosign = autosign_proxy::config::AutosignMode::Always;
    });
    let csrs = Arc::new(common::plain_csrs("s", count, KeyAlgorithm::Rsa2048));
    let rate = common::sign_all((0..clients).map(|_| bench.connect()).collect(), &csrs);
    println!(
        "CA {ca}: {count} certificates signed end to end (PUT + autosign + GET), {clients} keep-alive clients: {rate:.0} signed/s"
    );

    // Bulk: certificates straight into the store (copies of a real one), then the
    // statuses call and a CRL rebuild with every one of them revoked.
    let sample = actix_web::rt::System::new()
        .block_on(bench.store.ca_certificate("s-0.example.com"))
        .expect("store")
        .expect("a signed certificate");
    // A real status object (fingerprints, names, dates), as every signed certificate has.
    let status = actix_web::rt::System::new()
        .block_on(bench.authority.status("s-0.example.com"))
        .expect("status")
        .expect("present");
    let template = serde_json::to_string(&status).expect("json");
    let actor = Actor::new("bench", None);
    let store = bench.store.clone();
    let fill = Instant::now();
    actix_web::rt::System::new().block_on(async {
        let mut pending = Vec::new();
        for i in 0..bulk {
            let cert = CaCertificate {
                serial: 1_000_000 + i as u64,
                certname: format!("bulk-{i}.example.com"),
                revoked_at: Some(sample.issued_at),
                revocation_reason: Some(1),
                ..sample.clone()
            };
            let store = store.clone();
            let event = NewEvent::new(0, "bench", &actor);
            let json = Some(template.replace("s-0.example.com", &cert.certname));
            pending.push(async move { store.ca_add_certificate(&cert, json, false, event).await });
            if pending.len() == 512 {
                for r in futures_join(std::mem::take(&mut pending)).await {
                    r.expect("insert");
                }
            }
        }
        for r in futures_join(pending).await {
            r.expect("insert");
        }
    });
    eprintln!(
        "stored {bulk} certificates in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    let mut conn = bench.connect();
    conn.set_max_body(1 << 30);
    let t = Instant::now();
    let resp = conn
        .request("GET", "/puppet-ca/v1/certificate_statuses/any", &[], b"")
        .expect("statuses");
    let statuses_s = t.elapsed().as_secs_f64();
    assert_eq!(resp.status, 200);
    let listed = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .expect("json")
        .as_array()
        .map_or(0, Vec::len);
    println!(
        "certificate_statuses over {listed} certificates: {statuses_s:.3} s ({} bytes)",
        resp.body.len()
    );

    let authority = bench.authority.clone();
    let t = Instant::now();
    let der = actix_web::rt::System::new()
        .block_on(authority.rebuild_crl())
        .expect("crl");
    println!(
        "CRL rebuild with {} revocations: {:.3} s ({} bytes)",
        bulk,
        t.elapsed().as_secs_f64(),
        der.len()
    );
}

/// Await a batch of futures concurrently (the store's writer commits them together).
async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    let mut handles = Vec::with_capacity(futures.len());
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            for f in futures {
                handles.push(tokio::task::spawn_local(f));
            }
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(h.await.expect("task"));
            }
            out
        })
        .await
}
