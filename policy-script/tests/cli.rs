//! End-to-end tests: the `autosign-policy` binary and the library client against a real
//! rustls server started in-process, with certificates made by the `openssl` CLI.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use autosign_policy::{client_config, Connection, Error, TlsFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

const CSR: &[u8] =
    b"-----BEGIN CERTIFICATE REQUEST-----\nMIIBtest\n-----END CERTIFICATE REQUEST-----\n";

// ---------------------------------------------------------------- certificates

struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A config file naming the right CA and client credentials.
    config: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One PKI per test binary: a CA (PKCS#8 EC key), a server cert for 127.0.0.1/localhost
/// (SEC1 EC key), a client cert with a PKCS#1 RSA key as puppet writes them, and an
/// unrelated CA.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("autosign-policy-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, cn) in [("ca", "Test CA"), ("other-ca", "Other CA")] {
            openssl(&dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &format!("{name}.key")]);
            openssl(&dir, &[
                "req", "-x509", "-new", "-key", &format!("{name}.key"), "-subj", &format!("/CN={cn}"),
                "-days", "2", "-out", &format!("{name}.pem"),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("client.ext"),
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"]);
        openssl(&dir, &["genrsa", "-traditional", "-out", "client.key", "2048"]);
        for (name, cn) in [("server", "localhost"), ("client", "puppet.example.com")] {
            openssl(&dir, &["req", "-new", "-key", &format!("{name}.key"), "-subj", &format!("/CN={cn}"), "-out", &format!("{name}.csr")]);
            openssl(&dir, &[
                "x509", "-req", "-in", &format!("{name}.csr"), "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", &format!("{name}.ext"), "-out", &format!("{name}.pem"),
            ]);
        }
        let key_pem = std::fs::read_to_string(dir.join("client.key")).unwrap();
        assert!(key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "want PKCS#1");
        let p = |n: &str| dir.join(n);
        let config = p("policy.toml");
        std::fs::write(
            &config,
            format!(
                "# test config\nca_file = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\ntimeout = 5\n",
                p("ca.pem").display(),
                p("client.pem").display(),
                p("client.key").display()
            ),
        )
        .unwrap();
        Pki {
            ca: p("ca.pem"),
            other_ca: p("other-ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
            config,
            dir,
        }
    })
}

// ---------------------------------------------------------------- test server

#[derive(Clone, Copy)]
enum Mode {
    /// Answers every request with what the function returns.
    Respond(fn(&Received) -> Vec<u8>),
    /// Completes TLS, reads the request, never answers.
    Silent,
    /// Accepts TCP and never starts TLS.
    NoTls,
    /// Answers one byte every 100 ms, forever.
    Trickle,
}

#[derive(Debug, Clone)]
struct Received {
    head: String,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

struct Server {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

fn server_config() -> Arc<ServerConfig> {
    let pki = pki();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let chain = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

fn serve(mode: Mode) -> Server {
    let config = server_config();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = Server {
        addr: listener.local_addr().unwrap(),
        accepts: Arc::default(),
        received: Arc::default(),
    };
    let (accepts, received) = (server.accepts.clone(), server.received.clone());
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            // As actix does; without it Nagle and delayed ACKs add 40 ms to every answer.
            let _ = sock.set_nodelay(true);
            accepts.fetch_add(1, Ordering::SeqCst);
            let (config, received) = (config.clone(), received.clone());
            thread::spawn(move || handle(sock, mode, config, received));
        }
    });
    server
}

fn handle(
    sock: TcpStream,
    mode: Mode,
    config: Arc<ServerConfig>,
    received: Arc<Mutex<Vec<Received>>>,
) {
    if let Mode::NoTls = mode {
        thread::sleep(Duration::from_secs(10));
        return;
    }
    let conn = ServerConnection::new(config).unwrap();
    let mut stream = BufReader::new(StreamOwned::new(conn, sock));
    loop {
        let Some(request) = read_request(&mut stream) else {
            return;
        };
        received.lock().unwrap().push(request.clone());
        let tls = stream.get_mut();
        match mode {
            Mode::Respond(answer) => {
                let response = answer(&request);
                if tls.write_all(&response).and_then(|()| tls.flush()).is_err() {
                    return;
                }
                let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
                let client_close = request
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if client_close || text.contains("\r\nconnection: close\r\n") {
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    return;
                }
            }
            Mode::Silent => {
                thread::sleep(Duration::from_secs(10));
                return;
            }
            Mode::Trickle => {
                for b in b"HTTP/1.1 200 OK\r\n".iter().cycle() {
                    if tls.write_all(&[*b]).and_then(|()| tls.flush()).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
            Mode::NoTls => unreachable!(),
        }
    }
}

fn read_request<R: BufRead>(r: &mut R) -> Option<Received> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut request = Received {
        head,
        body: Vec::new(),
    };
    let len: usize = request
        .header("content-length")
        .map_or(Ok(0), str::parse)
        .ok()?;
    request.body = vec![0; len];
    r.read_exact(&mut request.body).ok()?;
    Some(request)
}

/// The service's approval, for the certname the request asked about.
fn ok_200(request: &Received) -> Vec<u8> {
    let certname = request
        .head
        .split(' ')
        .nth(1)
        .and_then(|t| t.split_once("certname="))
        .map(|(_, n)| n.to_string())
        .unwrap_or_default();
    let body = format!(
        r#"{{"decision":"approved","reason":"token","message":"approved","certname":"{certname}","event_id":7}}"#
    );
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn empty_200(_: &Received) -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()
}

fn other_host_200(_: &Received) -> Vec<u8> {
    let body = r#"{"decision":"approved","certname":"db01.example.com"}"#;
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn rejected_200(_: &Received) -> Vec<u8> {
    let body = r#"{"decision":"rejected","certname":"web01.example.com"}"#;
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn rejected_404(_: &Received) -> Vec<u8> {
    let body = r#"{"decision":"rejected","reason":"token_used","message":"the build token was already used","event_id":42}"#;
    format!(
        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn plain_404(_: &Received) -> Vec<u8> {
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_vec()
}

fn error_500(_: &Received) -> Vec<u8> {
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops".to_vec()
}

/// Echoes the request target back, chunked as actix does for streamed bodies.
fn chunked_echo(request: &Received) -> Vec<u8> {
    let target = request
        .head
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let (a, b) = target.split_at(target.len() / 2);
    format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------- running the binary

struct Run {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
}

fn run(args: &[&str], stdin: &[u8]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_autosign-policy"))
        .args(args)
        .env_remove("AUTOSIGN_POLICY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // The binary may refuse before reading everything; a broken pipe is expected then.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Run {
        code: out.status.code(),
        stderr,
        elapsed,
    }
}

/// Runs against `url` with the test config plus `extra` flags.
fn policy(url: &str, extra: &[&str], certname: &str, stdin: &[u8]) -> Run {
    let pki = pki();
    let config = pki.config.to_str().unwrap();
    let mut args = vec!["--config", config, "--url", url];
    args.extend_from_slice(extra);
    args.push(certname);
    run(&args, stdin)
}

fn assert_one_pending_line(r: &Run) {
    assert_eq!(r.stderr.lines().count(), 1, "stderr: {:?}", r.stderr);
    assert!(r.stderr.starts_with("autosign-policy: "), "{}", r.stderr);
    assert!(r.stderr.contains("pending"), "{}", r.stderr);
}

// ---------------------------------------------------------------- binary tests

#[test]
fn approves_on_200_and_sends_the_documented_request() {
    let server = serve(Mode::Respond(ok_200));
    let r = policy(&server.url(), &[], "web01.example.com", CSR);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    assert_eq!(r.stderr, "");
    let got = server.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert!(
        req.head
            .starts_with("POST /puppet/ca/validate?certname=web01.example.com HTTP/1.1\r\n"),
        "{}",
        req.head
    );
    assert_eq!(req.header("host"), Some(server.addr.to_string().as_str()));
    assert_eq!(req.header("content-type"), Some("text/plain"));
    assert_eq!(req.header("accept"), Some("application/json"));
    assert_eq!(req.header("connection"), Some("close"));
    assert_eq!(
        req.header("content-length"),
        Some(CSR.len().to_string().as_str())
    );
    assert!(req
        .header("user-agent")
        .is_some_and(|v| v.starts_with("autosign-policy/")));
    assert_eq!(req.body, CSR);
}

#[test]
fn a_200_signs_only_when_it_approves_this_certname() {
    for (respond, why) in [
        (
            empty_200 as fn(&Received) -> Vec<u8>,
            "not the service's JSON decision",
        ),
        (other_host_200, "the approval is for db01.example.com"),
        (rejected_200, "the decision is rejected"),
    ] {
        let server = serve(Mode::Respond(respond));
        let r = policy(&server.url(), &[], "web01.example.com", CSR);
        assert_eq!(r.code, Some(2), "must not sign; stderr: {}", r.stderr);
        assert!(r.stderr.contains(why), "{}", r.stderr);
        assert!(r.stderr.contains("not signing"), "{}", r.stderr);
    }
}

#[test]
fn certname_is_percent_encoded_and_never_a_flag() {
    let server = serve(Mode::Respond(plain_404));
    let r = policy(&server.url(), &[], "--url=https://a b", CSR);
    assert_eq!(r.code, Some(1), "stderr: {}", r.stderr);
    let got = server.received.lock().unwrap().clone();
    assert!(
        got[0]
            .head
            .starts_with("POST /puppet/ca/validate?certname=--url%3Dhttps%3A%2F%2Fa%20b HTTP/1.1"),
        "{}",
        got[0].head
    );
}

#[test]
fn rejection_404_prints_the_reason() {
    let server = serve(Mode::Respond(rejected_404));
    let r = policy(&server.url(), &[], "web01.example.com", CSR);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr,
        "autosign-policy: not signing web01.example.com: token_used: the build token was already used (event 42)\n"
    );
}

#[test]
fn rejection_404_without_json_prints_status_and_body() {
    let server = serve(Mode::Respond(plain_404));
    let r = policy(&server.url(), &[], "web01.example.com", CSR);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr,
        "autosign-policy: not signing web01.example.com: HTTP 404: not found\n"
    );
}

#[test]
fn server_error_leaves_pending() {
    let server = serve(Mode::Respond(error_500));
    let r = policy(&server.url(), &[], "web01.example.com", CSR);
    assert_eq!(r.code, Some(2));
    assert_one_pending_line(&r);
    assert!(r.stderr.contains("HTTP 500: oops"), "{}", r.stderr);
}

fn assert_times_out(server: &Server) {
    let r = policy(
        &server.url(),
        &["--timeout", "0.5"],
        "web01.example.com",
        CSR,
    );
    assert_ne!(r.code, Some(0));
    assert!(r.code.is_some(), "killed by a signal");
    assert!(r.elapsed >= Duration::from_millis(450), "{:?}", r.elapsed);
    assert!(
        r.elapsed < Duration::from_millis(800),
        "took {:?}",
        r.elapsed
    );
    assert_one_pending_line(&r);
    assert!(r.stderr.contains("timeout"), "{}", r.stderr);
}

#[test]
fn silent_server_times_out() {
    let server = serve(Mode::Silent);
    assert_times_out(&server);
}

#[test]
fn server_that_never_starts_tls_times_out() {
    let server = serve(Mode::NoTls);
    assert_times_out(&server);
}

#[test]
fn trickling_server_times_out() {
    let server = serve(Mode::Trickle);
    assert_times_out(&server);
}

#[test]
fn connection_refused_fails_fast() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = policy(
        &format!("https://127.0.0.1:{port}"),
        &[],
        "web01.example.com",
        CSR,
    );
    assert_eq!(r.code, Some(2));
    assert!(r.elapsed < Duration::from_millis(500), "{:?}", r.elapsed);
    assert_one_pending_line(&r);
    assert!(r.stderr.contains("connecting to 127.0.0.1"), "{}", r.stderr);
}

#[test]
fn wrong_ca_flag_overrides_file_and_fails_tls() {
    let server = serve(Mode::Respond(ok_200));
    let other = pki().other_ca.to_str().unwrap();
    let r = policy(
        &server.url(),
        &["--ca-file", other],
        "web01.example.com",
        CSR,
    );
    assert_eq!(r.code, Some(2));
    assert_one_pending_line(&r);
    assert!(r.stderr.contains("TLS error"), "{}", r.stderr);
    assert!(r.stderr.contains("UnknownIssuer"), "{}", r.stderr);
    assert!(server.received.lock().unwrap().is_empty());
}

#[test]
fn empty_or_oversized_stdin_is_refused_without_connecting() {
    let server = serve(Mode::Respond(ok_200));
    for stdin in [Vec::new(), b" \n".to_vec(), vec![b'A'; 1024 * 1024 + 1]] {
        let r = policy(&server.url(), &[], "web01.example.com", &stdin);
        assert_eq!(r.code, Some(2));
        assert_one_pending_line(&r);
        assert!(r.stderr.contains("not sent"), "{}", r.stderr);
    }
    thread::sleep(Duration::from_millis(50));
    assert_eq!(server.accepts(), 0);
}

#[test]
fn configuration_errors_leave_pending() {
    let pki = pki();
    let missing = pki.dir.join("missing.toml");
    let bad = pki.dir.join("bad.toml");
    std::fs::write(&bad, "url = \"https://127.0.0.1:1\"\nverbose = true\n").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--config", missing.to_str().unwrap(), "web01"],
            "missing.toml",
        ),
        (
            &["--config", bad.to_str().unwrap(), "web01"],
            "line 2: unknown key \"verbose\"",
        ),
        (
            &[
                "--config",
                pki.config.to_str().unwrap(),
                "--url",
                "http://127.0.0.1:1",
                "web01",
            ],
            "only https",
        ),
        (
            &[
                "--config",
                pki.config.to_str().unwrap(),
                "--cert",
                "/nonexistent.pem",
                "--url",
                "https://127.0.0.1:1",
                "web01",
            ],
            "/nonexistent.pem",
        ),
        (&[], "bad arguments: missing CERTNAME"),
    ];
    for (args, needle) in cases {
        let r = run(args, CSR);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert_one_pending_line(&r);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}

// ---------------------------------------------------------------- library client tests

fn tls_files(with_client_cert: bool) -> TlsFiles {
    let pki = pki();
    TlsFiles {
        ca_file: pki.ca.clone(),
        cert: with_client_cert.then(|| pki.client_cert.clone()),
        key: with_client_cert.then(|| pki.client_key.clone()),
    }
}

#[test]
fn chunked_response_is_parsed() {
    let server = serve(Mode::Respond(chunked_echo));
    let config = client_config(&tls_files(true)).unwrap();
    let mut conn = Connection::connect(&server.url(), config, Duration::from_secs(5)).unwrap();
    let r = conn.request("GET", "/echo/this?x=1", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(r.text(), "/echo/this?x=1");
}

#[test]
fn keep_alive_reuses_the_socket_and_reconnects_after_close() {
    let server = serve(Mode::Respond(chunked_echo));
    let config = client_config(&tls_files(true)).unwrap();
    let mut conn = Connection::connect(&server.url(), config, Duration::from_secs(5)).unwrap();
    for path in ["/one", "/two"] {
        let r = conn
            .request("POST", path, &[("Accept", "application/json")], b"{}")
            .unwrap();
        assert_eq!(r.text(), path);
    }
    assert_eq!(server.accepts(), 1);
    let r = conn
        .request("GET", "/three", &[("Connection", "close")], b"")
        .unwrap();
    assert_eq!(r.text(), "/three");
    let r = conn.request("GET", "/four", &[], b"").unwrap();
    assert_eq!(r.text(), "/four");
    assert_eq!(server.accepts(), 2);
    let got = server.received.lock().unwrap().clone();
    assert_eq!(got[0].body, b"{}");
    assert_eq!(got[0].header("content-length"), Some("2"));
}

#[test]
fn hostname_verification_uses_the_url_host() {
    let server = serve(Mode::Respond(ok_200));
    let config = client_config(&tls_files(true)).unwrap();
    let url = format!("https://localhost:{}", server.addr.port());
    let mut conn = Connection::connect(&url, config, Duration::from_secs(5)).unwrap();
    assert_eq!(conn.request("GET", "/", &[], b"").unwrap().status, 200);
}

#[test]
fn server_refuses_a_client_without_certificate() {
    let server = serve(Mode::Respond(ok_200));
    let config = client_config(&tls_files(false)).unwrap();
    // With TLS 1.3 the client finishes its handshake first; the refusal arrives as an alert.
    let result = Connection::connect(&server.url(), config, Duration::from_secs(5))
        .and_then(|mut c| c.request("GET", "/", &[], b""));
    assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
}

#[test]
fn client_config_reports_bad_files() {
    let pki = pki();
    let e = client_config(&TlsFiles {
        ca_file: pki.client_key.clone(),
        cert: None,
        key: None,
    })
    .unwrap_err();
    assert!(
        matches!(&e, Error::Config(m) if m.contains("ca_file") && m.contains("no PEM certificates")),
        "{e}"
    );
    let e = client_config(&TlsFiles {
        ca_file: pki.ca.clone(),
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.server_key.clone()),
    })
    .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}
