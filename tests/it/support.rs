//! Test support: a real service on a loopback port with real TLS and a real SQLite file,
//! clients that present real certificates, and CSRs made by `openssl req`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use autosign_policy::{client_config, Connection, Response, TlsFiles};

pub use crate::client::ServiceClient;
use autosign_proxy::config::Config;
use autosign_proxy::startup;
use autosign_proxy::startup::datadir::DataDir;
use autosign_proxy::store::sqlite::SqliteStore;

/// A fresh, empty directory under the system temp dir, unique to this test run. It is
/// removed when the thread that asked for it ends: for a test's own thread (the harness
/// runs each test on a thread of its own), when the test has finished, passed or failed,
/// after its locals (services, served processes, puppetserver) were dropped and stopped.
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("autosign-it-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    MADE_BY_THIS_THREAD.with(|made| made.0.borrow_mut().push(dir.clone()));
    dir
}

/// The directories [`temp_dir`] made on this thread, removed on Drop (at thread exit).
struct RemoveOnDrop(std::cell::RefCell<Vec<PathBuf>>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for dir in self.0.borrow().iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

thread_local! {
    static MADE_BY_THIS_THREAD: RemoveOnDrop = const { RemoveOnDrop(std::cell::RefCell::new(Vec::new())) };
}

/// A service running in-process on 127.0.0.1:<random port>, on its own data directory.
pub struct Service {
    pub port: u16,
    pub dir: DataDir,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    pub fn start(name: &str) -> Service {
        Service::start_with(name, |_| {})
    }

    pub fn start_with(name: &str, adjust: impl FnOnce(&mut Config)) -> Service {
        let mut config = Config::load(None, std::iter::empty()).unwrap();
        config.data_dir = temp_dir(name);
        // EC keeps test start-up fast; RSA-4096 CA generation is covered by the binary test.
        config.ca.key_algorithm = autosign_proxy::ca::signer::KeyAlgorithm::EcP256;
        config.listen = "127.0.0.1:0".into();
        adjust(&mut config);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let started = startup::start(config, 2, &mut |_| {}).await.unwrap();
                let server = started.server;
                tx.send((server.port, started.dir, server.handle.clone()))
                    .unwrap();
                let _ = server.server.await;
            })
        });
        let (port, dir, handle) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("service did not start");
        Service {
            port,
            dir,
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A client presenting the local client certificate, which the service trusts.
    pub fn client(&self) -> Connection {
        self.client_with(Some((self.dir.client_cert(), self.dir.client_key())))
    }

    /// A client presenting the given certificate and key, or none.
    pub fn client_with(&self, cert: Option<(PathBuf, PathBuf)>) -> Connection {
        let files = TlsFiles {
            ca_file: self.dir.ca_bundle(),
            cert: cert.as_ref().map(|c| c.0.clone()),
            key: cert.map(|c| c.1),
        };
        Connection::connect(
            &self.url(),
            client_config(&files).unwrap(),
            Duration::from_secs(10),
        )
        .unwrap()
    }

    /// Open the service's database from the test, as a second process would.
    pub fn store(&self) -> SqliteStore {
        let path = self.dir.root.join("autosign-proxy.db");
        actix_web::rt::System::new().block_on(async { SqliteStore::open(&path).await.unwrap() })
    }

    pub fn stop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::System::new().block_on(handle.stop(true));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

/// Run a store call from a sync test.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    actix_web::rt::System::new().block_on(f)
}

pub fn json(resp: &Response) -> serde_json::Value {
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", resp.text()))
}

/// Validate a CSR asking for the JSON explanation ([`Foreman::validate`]).
///
/// [`Foreman::validate`]: crate::client::Foreman::validate
pub fn validate(conn: &mut Connection, certname: Option<&str>, csr: &[u8]) -> Response {
    conn.foreman().validate(certname, csr)
}

/// Issue a token through the Foreman route, as Foreman does ([`Foreman::token`]).
///
/// [`Foreman::token`]: crate::client::Foreman::token
pub fn foreman_token(conn: &mut Connection, certname: &str) -> String {
    conn.foreman().token(certname)
}

/// Key types the tests make CSRs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa2048,
    Rsa4096,
    EcP256,
}

/// A key file of this type, in a temp dir of the caller's (see [`key_pem`]).
pub fn key_file(kind: KeyType) -> PathBuf {
    let path = temp_dir("key").join("key.pem");
    std::fs::write(&path, key_pem(kind)).unwrap();
    path
}

/// One key per type per test run, kept in memory (key generation is the slow part, and
/// CSRs made with the same key are still distinct requests).
pub fn key_pem(kind: KeyType) -> Vec<u8> {
    static KEYS: std::sync::Mutex<Vec<(KeyType, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());
    let mut keys = KEYS.lock().unwrap();
    if let Some((_, pem)) = keys.iter().find(|(k, _)| *k == kind) {
        return pem.clone();
    }
    let dir = temp_dir("keys");
    let path = dir.join("key.pem");
    let mut cmd = Command::new("openssl");
    match kind {
        KeyType::Rsa2048 => cmd.args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ]),
        KeyType::Rsa4096 => cmd.args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:4096",
        ]),
        KeyType::EcP256 => cmd.args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ]),
    };
    let out = cmd.arg("-out").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "openssl genpkey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    keys.push((kind, pem.clone()));
    pem
}

/// How `openssl req` should build a CSR.
pub struct CsrOpts<'a> {
    pub cn: &'a str,
    pub key: KeyType,
    pub challenge: Option<&'a str>,
    /// `nombstr` gives PrintableString where the characters allow, `utf8only` UTF8String.
    pub string_mask: &'a str,
    /// Lines for the `[ext]` section, e.g. `subjectAltName = DNS:a`.
    pub extensions: &'a [&'a str],
}

impl<'a> CsrOpts<'a> {
    pub fn new(cn: &'a str) -> CsrOpts<'a> {
        CsrOpts {
            cn,
            key: KeyType::Rsa2048,
            challenge: None,
            string_mask: "nombstr",
            extensions: &[],
        }
    }
    pub fn challenge(mut self, token: &'a str) -> Self {
        self.challenge = Some(token);
        self
    }
    pub fn key(mut self, key: KeyType) -> Self {
        self.key = key;
        self
    }
    pub fn ext(mut self, lines: &'a [&'a str]) -> Self {
        self.extensions = lines;
        self
    }
    pub fn mask(mut self, mask: &'a str) -> Self {
        self.string_mask = mask;
        self
    }
}

/// A real CSR from `openssl req`, PEM.
pub fn openssl_csr(opts: &CsrOpts) -> Vec<u8> {
    let dir = temp_dir("csr");
    let mut conf = format!(
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\nstring_mask = {}\n{}\n[dn]\nCN = {}\n[attrs]\n",
        opts.string_mask,
        if opts.extensions.is_empty() { "" } else { "req_extensions = ext" },
        opts.cn
    );
    if let Some(token) = opts.challenge {
        conf.push_str(&format!("challengePassword = {token}\n"));
    }
    if !opts.extensions.is_empty() {
        conf.push_str("[ext]\n");
        for line in opts.extensions {
            conf.push_str(line);
            conf.push('\n');
        }
    }
    let conf_path = dir.join("req.cnf");
    std::fs::write(&conf_path, conf).unwrap();
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, key_pem(opts.key)).unwrap();
    let out_path = dir.join("req.pem");
    let out = Command::new("openssl")
        .args(["req", "-new", "-sha256", "-key"])
        .arg(&key_path)
        .arg("-config")
        .arg(&conf_path)
        .arg("-out")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read(&out_path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    pem
}

/// The `target/<profile>` directory this test binary was built into.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

pub fn proxy_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_autosign-proxy"))
}

pub fn policy_bin() -> PathBuf {
    let path = target_dir().join("autosign-policy");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (the test script does)",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// PUT a CSR to the CA API, as an agent does; it must be accepted.
pub fn submit(c: &mut Connection, name: &str, csr: &[u8]) {
    let resp = c.ca().submit(name, csr);
    assert_eq!(resp.status, 200, "{}", resp.text());
}
