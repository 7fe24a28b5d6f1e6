//! Several `autosign-proxy serve` processes on one real PostgreSQL database: a token is
//! approved once whichever replica is asked, serials stay unique, a revocation on one
//! replica reaches the other's CRL and TLS verifier, a killed replica loses nothing, and
//! a database restart means 503s, then recovery without restarting the service.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use autosign_policy::{client_config, Connection, TlsFiles};
use autosign_proxy::domain::decision::Verdict;
use autosign_proxy::domain::event::EventFilter;
use autosign_proxy::store::postgres::PostgresStore;
use autosign_proxy::store::scratch::ScratchDatabase;
use autosign_proxy::store::EventStore;

use crate::cli::{spawn_serve, Served};
use crate::support::*;

struct Replica {
    served: Served,
    port: u16,
    dir: PathBuf,
}

impl Replica {
    /// A replica on `database_url` with a data directory of its own; `ca_from` gives it
    /// the CA files of a replica already running (as an operator copies them).
    fn start(name: &str, database_url: &str, autosign: &str, ca_from: Option<&Path>) -> Replica {
        let dir = temp_dir(name);
        if let Some(from) = ca_from {
            std::fs::create_dir_all(dir.join("ca")).unwrap();
            for file in ["ca_key.pem", "ca_crt.pem"] {
                std::fs::copy(from.join("ca").join(file), dir.join("ca").join(file)).unwrap();
            }
        }
        write_config(&dir, database_url, autosign);
        let port = free_port();
        let config = dir.join("config.toml");
        let (served, _) = spawn_serve(&dir, port, &["--config", config.to_str().unwrap()]);
        Replica { served, port, dir }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn client(&self) -> Connection {
        self.try_client().unwrap()
    }

    fn try_client(&self) -> Result<Connection, String> {
        connect(&self.url(), &self.dir)
    }

    fn kill(&mut self) {
        self.served.kill().unwrap(); // SIGKILL
        self.served.wait().unwrap();
    }
}

fn write_config(dir: &Path, database_url: &str, autosign: &str) {
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "database_url = \"{database_url}\"\n\
             database_max_connections = 8\n\
             [ca]\nkey_algorithm = \"ec-p256\"\nautosign = \"{autosign}\"\n"
        ),
    )
    .unwrap();
}

/// A client of the replica at `url` presenting the local client certificate of `dir`.
fn connect(url: &str, dir: &Path) -> Result<Connection, String> {
    let files = TlsFiles {
        ca_file: dir.join("tls/ca.pem"),
        cert: Some(dir.join("tls/client.pem")),
        key: Some(dir.join("tls/client.key")),
    };
    Connection::connect(
        url,
        client_config(&files).map_err(|e| e.to_string())?,
        Duration::from_secs(15),
    )
    .map_err(|e| e.to_string())
}

fn issue_token(conn: &mut Connection, certname: &str) -> String {
    foreman_token(conn, certname)
}

fn store_of(url: &str) -> PostgresStore {
    block_on(async { PostgresStore::open(url, 2).await.unwrap() })
}

fn approvals(store: &PostgresStore) -> Vec<String> {
    block_on(store.list_events(&EventFilter {
        decision: Some(Verdict::Approved),
        limit: 1000,
        ..Default::default()
    }))
    .unwrap()
    .into_iter()
    .filter_map(|e| e.certname)
    .collect()
}

fn sign(conn: &mut Connection, name: &str, csr: &[u8]) -> Vec<u8> {
    submit(conn, name, csr);
    let get = conn.ca().certificate(name);
    assert_eq!(get.status, 200, "{}", get.text());
    get.body
}

fn serial_of(pem: &[u8]) -> Vec<u8> {
    autosign_proxy::ca::issue::cert_info(pem).unwrap().serial
}

#[test]
fn sixty_four_validations_of_one_token_over_two_replicas_approve_once() {
    let db = ScratchDatabase::create("replicas_race").unwrap();
    let a = Replica::start("replica-a", &db.url, "policy", None);
    let b = Replica::start("replica-b", &db.url, "policy", Some(&a.dir));
    let token = issue_token(&mut b.client(), "race.example.com");
    let csr = openssl_csr(&CsrOpts::new("race.example.com").challenge(&token));
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (url, dir) = if i % 2 == 0 {
                (a.url(), a.dir.clone())
            } else {
                (b.url(), b.dir.clone())
            };
            let (csr, barrier) = (csr.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut conn = connect(&url, &dir).unwrap();
                barrier.wait();
                validate(&mut conn, Some("race.example.com"), &csr).status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        63,
        "{statuses:?}"
    );
    let store = store_of(&db.url);
    assert_eq!(approvals(&store), ["race.example.com"]);
    let rejected = block_on(store.list_events(&EventFilter {
        decision: Some(Verdict::Rejected),
        limit: 1000,
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(rejected.len(), 63);
    assert!(
        rejected
            .iter()
            .all(|e| e.reason.as_deref() == Some("token_used")),
        "{rejected:?}"
    );
}

#[test]
fn replicas_sign_with_unique_serials_and_follow_each_others_revocations() {
    let db = ScratchDatabase::create("replicas_ca").unwrap();
    let a = Replica::start("replica-ca-a", &db.url, "true", None);
    let b = Replica::start("replica-ca-b", &db.url, "true", Some(&a.dir));

    // Concurrent signing on both: every certificate gets a serial of its own.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (url, dir) = if t % 2 == 0 {
                (a.url(), a.dir.clone())
            } else {
                (b.url(), b.dir.clone())
            };
            std::thread::spawn(move || {
                let mut conn = connect(&url, &dir).unwrap();
                (0..10)
                    .map(|i| {
                        let name = format!("node{t}-{i}.example.com");
                        let csr = openssl_csr(&CsrOpts::new(&name).key(KeyType::EcP256));
                        (name.clone(), serial_of(&sign(&mut conn, &name, &csr)))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let signed: Vec<(String, Vec<u8>)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let mut serials: Vec<&Vec<u8>> = signed.iter().map(|(_, s)| s).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 80, "every serial unique");
    // Each replica serves what the other signed.
    let (name, serial) = &signed[1];
    let got = a.client().ca().certificate(name);
    assert_eq!(serial_of(&got.body), *serial);

    // A client certificate of the CA, revoked on B, stops working on A within a second.
    let key = key_file(KeyType::EcP256);
    let csr = openssl_csr(&CsrOpts::new("revoked.example.com").key(KeyType::EcP256));
    let cert = sign(&mut a.client(), "revoked.example.com", &csr);
    let cert_path = temp_dir("revoked-client").join("cert.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    let files = TlsFiles {
        ca_file: a.dir.join("tls/ca.pem"),
        cert: Some(cert_path),
        key: Some(key),
    };
    let as_agent = || -> Result<u16, String> {
        let mut conn = Connection::connect(
            &a.url(),
            client_config(&files).map_err(|e| e.to_string())?,
            Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())?;
        conn.try_ca()
            .ca_bundle()
            .map(|r| r.status)
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        as_agent(),
        Ok(200),
        "the certificate works before its revocation"
    );
    let revoke = b
        .client()
        .ca()
        .set_status("revoked.example.com", "revoked", None);
    assert_eq!(revoke.status, 204, "{}", revoke.text());
    let revoked_at = Instant::now();
    let crl = a.client().ca().crl();
    let info = autosign_proxy::ca::crl::crl_info(&crl.body).unwrap();
    let revoked_serial = serial_of(&cert);
    assert!(
        info.revoked.iter().any(|r| r.serial == revoked_serial),
        "A serves B's CRL at once"
    );
    let refused_after = loop {
        if as_agent() != Ok(200) {
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "A still accepts it"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        refused_after <= Duration::from_millis(1500),
        "A's TLS verifier followed the revocation after {refused_after:?}"
    );
}

#[test]
fn a_replica_killed_mid_load_loses_nothing() {
    let db = ScratchDatabase::create("replicas_kill").unwrap();
    let a = Replica::start("replica-kill-a", &db.url, "policy", None);
    let mut b = Replica::start("replica-kill-b", &db.url, "policy", Some(&a.dir));
    let hosts: Vec<(String, Vec<u8>)> = {
        let mut conn = a.client();
        (0..240)
            .map(|i| {
                let name = format!("kill{i}.example.com");
                let token = issue_token(&mut conn, &name);
                let csr = openssl_csr(&CsrOpts::new(&name).challenge(&token));
                (name, csr)
            })
            .collect()
    };
    let hosts = Arc::new(hosts);
    let next = Arc::new(AtomicUsize::new(0));
    let answered_by_b = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (hosts, next, answered_by_b) = (hosts.clone(), next.clone(), answered_by_b.clone());
            let (a_url, a_dir, b_url, b_dir) = (a.url(), a.dir.clone(), b.url(), b.dir.clone());
            std::thread::spawn(move || {
                let mut to_a = connect(&a_url, &a_dir).unwrap();
                let mut to_b = connect(&b_url, &b_dir).ok();
                let mut outcomes = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((name, csr)) = hosts.get(i) else {
                        break;
                    };
                    // Like a load balancer: half go to B while it lives; a failed
                    // request is retried on A.
                    let mut status = None;
                    if i % 2 == 1 {
                        if let Some(conn) = to_b.as_mut() {
                            match conn.try_foreman().plain().validate(Some(name), csr) {
                                Ok(r) => {
                                    answered_by_b.fetch_add(1, Ordering::SeqCst);
                                    status = Some(("b", r.status));
                                }
                                Err(_) => to_b = None,
                            }
                        }
                    }
                    let status = match status {
                        Some(s) => s,
                        None => ("a", validate(&mut to_a, Some(name), csr).status),
                    };
                    outcomes.push((name.clone(), status));
                    std::thread::sleep(Duration::from_millis(5));
                }
                outcomes
            })
        })
        .collect();
    while answered_by_b.load(Ordering::SeqCst) < 30 {
        std::thread::sleep(Duration::from_millis(5));
    }
    b.kill();
    let outcomes: Vec<(String, (&str, u16))> = clients
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 240);
    let after_kill = outcomes.iter().filter(|(_, (who, _))| *who == "a").count();
    assert!(
        after_kill > 120,
        "A took over B's share ({after_kill} answered by A)"
    );

    // Nothing lost: every token was approved exactly once, and every 200 a client saw
    // is an approval in the database.
    let store = store_of(&db.url);
    let mut approved = approvals(&store);
    approved.sort();
    let before = approved.len();
    approved.dedup();
    assert_eq!(approved.len(), before, "no token approved twice");
    assert_eq!(approved.len(), 240, "every token approved once");
    for (name, (who, status)) in &outcomes {
        // A 404 is only possible for a request B approved whose answer the kill lost.
        assert!(
            *status == 200 || (*who == "a" && *status == 404),
            "{name}: {who} answered {status}"
        );
    }
    // A still answers.
    let token = issue_token(&mut a.client(), "after.example.com");
    let csr = openssl_csr(&CsrOpts::new("after.example.com").challenge(&token));
    assert_eq!(
        validate(&mut a.client(), Some("after.example.com"), &csr).status,
        200
    );
}

#[test]
fn a_replica_with_another_ca_or_none_refuses_to_share_the_database() {
    let db = ScratchDatabase::create("replicas_identity").unwrap();
    let a = Replica::start("replica-id-a", &db.url, "policy", None);
    let run = |dir: &Path| {
        write_config(dir, &db.url, "policy");
        Command::new(proxy_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env_remove("AUTOSIGN_PROXY_CONFIG")
            .output()
            .unwrap()
    };
    // No CA files: it must not generate a second CA into a shared state.
    let empty = temp_dir("replica-id-empty");
    let out = run(&empty);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("already belongs to the CA"), "{stderr}");
    assert!(
        !empty.join("ca/ca_key.pem").exists(),
        "no key was generated"
    );
    // Another CA's files: refused before anything is signed with them.
    let other = temp_dir("replica-id-other");
    let foreign = Service::start("replica-id-foreign-ca");
    std::fs::create_dir_all(other.join("ca")).unwrap();
    for file in ["ca_key.pem", "ca_crt.pem"] {
        std::fs::copy(
            foreign.dir.root.join("ca").join(file),
            other.join("ca").join(file),
        )
        .unwrap();
    }
    let out = Command::new(proxy_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&other)
        .args(["--database-url", &db.url])
        .env("AUTOSIGN_PROXY_CA_KEY_ALGORITHM", "ec-p256")
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("refusing to sign with another CA's key"),
        "{stderr}"
    );
    // The first replica is untouched.
    assert_eq!(a.client().ca().ca_bundle().status, 200);

    // The CA regenerated from another (stopped) replica's directory: A, still running
    // with the old key, stops signing within a second or two instead of issuing
    // certificates nobody trusts any more.
    let operator_sign = |name: &str| {
        let mut c = a.client();
        submit(&mut c, name, &openssl_csr(&CsrOpts::new(name)));
        c.ca().set_status(name, "signed", None).status
    };
    assert_eq!(operator_sign("before-regen.example.com"), 204);
    let c_dir = temp_dir("replica-id-c");
    std::fs::create_dir_all(c_dir.join("ca")).unwrap();
    for file in ["ca_key.pem", "ca_crt.pem"] {
        std::fs::copy(a.dir.join("ca").join(file), c_dir.join("ca").join(file)).unwrap();
    }
    let regen = Command::new(proxy_bin())
        .args(["ca", "regenerate", "--yes", "--data-dir"])
        .arg(&c_dir)
        .args(["--database-url", &db.url])
        .env("AUTOSIGN_PROXY_CA_KEY_ALGORITHM", "ec-p256")
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap();
    assert!(
        regen.status.success(),
        "{}",
        String::from_utf8_lossy(&regen.stderr)
    );
    let backups: Vec<_> = std::fs::read_dir(&c_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("backup-before-regenerate")
        })
        .collect();
    assert_eq!(backups.len(), 1);
    assert!(
        backups[0].path().join("autosign-proxy.db").exists(),
        "the PostgreSQL state was backed up as an SQLite file first"
    );
    let regenerated = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let status = operator_sign(&format!("after-regen-{n}.example.com"));
        if status == 503 {
            break;
        }
        assert_eq!(status, 204);
        assert!(
            regenerated.elapsed() < Duration::from_secs(3),
            "A kept signing with the old key"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A PostgreSQL server of this test's own (scripts/private-postgres), which it can stop
/// and start without disturbing the other tests' server.
struct PrivatePostgres {
    port: u16,
}

impl PrivatePostgres {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/private-postgres")
    }

    fn run(&self, action: &str) -> String {
        let out = Command::new(Self::script())
            .arg(action)
            .env("AUTOSIGN_PRIVATE_POSTGRES_PORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "private-postgres {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn data_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("autosign-test-postgres-{}", self.port))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .env("AUTOSIGN_PRIVATE_POSTGRES_PORT", self.port.to_string())
            .output();
        let _ = std::fs::remove_dir_all(self.data_dir());
    }
}

#[test]
fn a_database_restart_under_load_gives_503s_then_recovers_without_a_restart() {
    let pg = PrivatePostgres { port: free_port() };
    let _ = std::fs::remove_dir_all(pg.data_dir());
    let admin = pg.run("start");
    let url = admin.clone();
    let svc = Replica::start("replica-restart", &url, "policy", None);
    let token = issue_token(&mut svc.client(), "before.example.com");
    let csr = openssl_csr(&CsrOpts::new("before.example.com").challenge(&token));
    assert_eq!(
        validate(&mut svc.client(), Some("before.example.com"), &csr).status,
        200
    );

    // Load: decisions on unknown tokens, each of which reads and writes the database.
    let stop = Arc::new(AtomicBool::new(false));
    let unknown = openssl_csr(&CsrOpts::new("load.example.com").challenge("not-a-token"));
    let load = {
        let (stop, url, dir, unknown) = (stop.clone(), svc.url(), svc.dir.clone(), unknown.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut conn = connect(&url, &dir).unwrap();
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let status = match conn
                    .try_foreman()
                    .plain()
                    .validate(Some("load.example.com"), &unknown)
                {
                    Ok(r) => r.status,
                    Err(_) => {
                        conn = connect(&url, &dir).unwrap();
                        0
                    }
                };
                seen.push((Instant::now(), status, started.elapsed()));
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    let health = || {
        let r = svc.client().ca().simple_status();
        (r.status, r.text())
    };
    assert_eq!(health(), (200, "running".to_string()));
    std::thread::sleep(Duration::from_millis(500));
    let down_at = Instant::now();
    pg.run("stop");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        health(),
        (503, "error".to_string()),
        "the health check tells"
    );
    let up_at = Instant::now();
    pg.run("start");
    // Recovery: the same process answers decisions again.
    let recovered = loop {
        let status = validate(&mut svc.client(), Some("load.example.com"), &unknown).status;
        if status == 404 {
            break up_at.elapsed();
        }
        assert_eq!(status, 503, "only 503 while the database is away");
        assert!(up_at.elapsed() < Duration::from_secs(20), "no recovery");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let seen = load.join().unwrap();

    let during: Vec<u16> = seen
        .iter()
        .filter(|(at, _, _)| *at > down_at + Duration::from_millis(300) && *at < up_at)
        .map(|(_, s, _)| *s)
        .collect();
    assert!(!during.is_empty());
    assert!(during.iter().all(|s| *s == 503), "while down: {during:?}");
    assert!(
        seen.iter().all(|(_, s, _)| *s == 404 || *s == 503),
        "{:?}",
        seen.iter().map(|s| s.1).collect::<Vec<_>>()
    );
    let slowest = seen.iter().map(|(_, _, took)| *took).max().unwrap();
    assert!(
        slowest < Duration::from_secs(11),
        "a request hung for {slowest:?}"
    );
    assert_eq!(
        seen.last().map(|s| s.1),
        Some(404),
        "the load recovered too"
    );
    assert!(recovered < Duration::from_secs(20));

    assert_eq!(health(), (200, "running".to_string()));
    // The state survived: the used token stays used, a new one works.
    assert_eq!(
        validate(&mut svc.client(), Some("before.example.com"), &csr).status,
        404
    );
    let token = issue_token(&mut svc.client(), "after.example.com");
    let csr = openssl_csr(&CsrOpts::new("after.example.com").challenge(&token));
    assert_eq!(
        validate(&mut svc.client(), Some("after.example.com"), &csr).status,
        200
    );
}

#[test]
fn thirty_two_requests_for_one_name_over_two_replicas_get_one_certificate() {
    let db = ScratchDatabase::create("replicas_twins").unwrap();
    let a = Replica::start("twins-a", &db.url, "true", None);
    let b = Replica::start("twins-b", &db.url, "true", Some(&a.dir));
    let name = "twin.example.com";
    let barrier = Arc::new(Barrier::new(32));
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let (url, dir) = if i % 2 == 0 {
                (a.url(), a.dir.clone())
            } else {
                (b.url(), b.dir.clone())
            };
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                // A key of its own per request, made before the start line.
                use autosign_proxy::ca::request::{build_csr, CsrSpec};
                use autosign_proxy::ca::signer::{KeyAlgorithm, SoftwareKey};
                let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
                let spec = CsrSpec {
                    common_name: name,
                    challenge_password: None,
                    subject_alt_names: &[],
                    extensions: &[],
                    version: 0,
                };
                let csr = autosign_proxy::x509::pem_encode(
                    "CERTIFICATE REQUEST",
                    &build_csr(&key, &spec).unwrap(),
                );
                let mut conn = connect(&url, &dir).unwrap();
                barrier.wait();
                let resp = conn.ca().submit(name, csr.as_bytes());
                (resp.status, resp.text())
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, t)| *s == 400 && t.contains("already has a")),
        "puppetserver's refusal for the rest: {answers:?}"
    );
    use autosign_proxy::store::CaStore;
    let store = store_of(&db.url);
    let live: Vec<_> = block_on(store.ca_certificates())
        .unwrap()
        .into_iter()
        .filter(|c| c.certname == name && c.revoked_at.is_none())
        .collect();
    assert_eq!(
        live.len(),
        1,
        "one certificate for the name in the database"
    );
}
