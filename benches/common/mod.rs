//! Shared by the load benchmarks: an in-process service on a loopback port, tokens issued
//! through the real use case, and CSRs signed with aws-lc-rs.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use autosign_policy::{client_config, Connection, TlsFiles};
use autosign_proxy::app::authority::Authority;
use autosign_proxy::app::App;
use autosign_proxy::ca::request::{build_csr, CsrSpec};
use autosign_proxy::ca::signer::{KeyAlgorithm, SoftwareKey};
use autosign_proxy::config::Config;
use autosign_proxy::domain::csr::StringKind;
use autosign_proxy::domain::event::Actor;
use autosign_proxy::startup;
use autosign_proxy::startup::datadir::DataDir;
use autosign_proxy::x509;

pub struct Bench {
    pub port: u16,
    pub dir: DataDir,
    pub app: Arc<App>,
    pub authority: Arc<Authority>,
    pub store: Arc<dyn autosign_proxy::store::Store>,
}

/// Start the service in its own thread (two HTTP workers, as on this machine).
pub fn start(name: &str) -> Bench {
    start_with(name, |_| {})
}

pub fn start_with(name: &str, adjust: impl FnOnce(&mut Config)) -> Bench {
    let dir = std::env::temp_dir().join(format!("autosign-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    start_in(dir, adjust)
}

/// Start on `data_dir` as it is (e.g. holding another replica's CA files).
pub fn start_in(data_dir: std::path::PathBuf, adjust: impl FnOnce(&mut Config)) -> Bench {
    let mut config = Config::load(None, std::iter::empty()).expect("config");
    config.data_dir = data_dir;
    config.listen = "127.0.0.1:0".into();
    config.ca.key_algorithm = autosign_proxy::ca::signer::KeyAlgorithm::EcP256;
    config.log_level = "warn".into();
    adjust(&mut config);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let started = startup::start(config, 2, &mut |_| {})
                .await
                .expect("service start");
            let server = started.server;
            tx.send((
                server.port,
                started.dir,
                started.app,
                started.authority,
                started.store,
            ))
            .expect("send");
            let _ = server.server.await;
        })
    });
    let (port, dir, app, authority, store) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("service did not start");
    Bench {
        port,
        dir,
        app,
        authority,
        store,
    }
}

impl Bench {
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn connect(&self) -> Connection {
        let files = TlsFiles {
            ca_file: self.dir.ca_bundle(),
            cert: Some(self.dir.client_cert()),
            key: Some(self.dir.client_key()),
        };
        Connection::connect(
            &self.url(),
            client_config(&files).expect("tls"),
            Duration::from_secs(30),
        )
        .expect("connect")
    }

    /// `count` fresh tokens for `prefix-N.example.com`, and a CSR carrying each, signed
    /// with one agent key of `algorithm` (using `threads` threads: RSA-4096 signing is slow).
    pub fn fresh_csrs(
        &self,
        prefix: &str,
        count: usize,
        algorithm: KeyAlgorithm,
        threads: usize,
    ) -> Vec<(String, String)> {
        let actor = Actor::new("bench", None);
        let tokens: Vec<(String, String)> = actix_web::rt::System::new().block_on(async {
            let mut out = Vec::with_capacity(count);
            for i in 0..count {
                let name = format!("{prefix}-{i}.example.com");
                let issued = self
                    .app
                    .issue_token(&name, Vec::new(), None, None, &actor)
                    .await
                    .expect("issue");
                out.push((name, issued.token));
            }
            out
        });
        let key = Arc::new(SoftwareKey::generate(algorithm).expect("key"));
        let chunks: Vec<Vec<(String, String)>> = tokens
            .chunks(count.div_ceil(threads).max(1))
            .map(<[_]>::to_vec)
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let key = key.clone();
                std::thread::spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(name, token)| {
                            let spec = CsrSpec {
                                common_name: &name,
                                challenge_password: Some((&token, StringKind::Printable)),
                                subject_alt_names: &[],
                                extensions: &[],
                                version: 0,
                            };
                            let der = build_csr(key.as_ref(), &spec).expect("csr");
                            (name, x509::pem_encode("CERTIFICATE REQUEST", &der))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    }
}

/// The value at quantile `q` (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// CSRs without tokens, `count` distinct names, one key.
pub fn plain_csrs(prefix: &str, count: usize, algorithm: KeyAlgorithm) -> Vec<(String, Vec<u8>)> {
    let key = SoftwareKey::generate(algorithm).expect("key");
    (0..count)
        .map(|i| {
            let name = format!("{prefix}-{i}.example.com");
            let spec = CsrSpec {
                common_name: &name,
                challenge_password: None,
                subject_alt_names: &[],
                extensions: &[],
                version: 0,
            };
            let der = build_csr(&key, &spec).expect("csr");
            (
                name,
                x509::pem_encode("CERTIFICATE REQUEST", &der).into_bytes(),
            )
        })
        .collect()
}

/// Sign every CSR end to end (PUT certificate_request under autosign, then GET
/// certificate) through `connections`, one client thread each; returns signed/s.
pub fn sign_all(connections: Vec<Connection>, csrs: &Arc<Vec<(String, Vec<u8>)>>) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let signed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let threads: Vec<_> = connections
        .into_iter()
        .map(|mut conn| {
            let (csrs, next, signed) = (csrs.clone(), next.clone(), signed.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((name, csr)) = csrs.get(i) else {
                    break;
                };
                let put = conn
                    .request(
                        "PUT",
                        &format!("/puppet-ca/v1/certificate_request/{name}"),
                        &[("Content-Type", "text/plain")],
                        csr,
                    )
                    .expect("put");
                assert_eq!(put.status, 200, "{}", put.text());
                let get = conn
                    .request(
                        "GET",
                        &format!("/puppet-ca/v1/certificate/{name}"),
                        &[],
                        b"",
                    )
                    .expect("get");
                assert_eq!(get.status, 200, "{}", get.text());
                signed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    let elapsed = started.elapsed();
    signed.load(std::sync::atomic::Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}
