//! The `autosign-proxy` binary itself: zero-configuration start, the interface other
//! tools rely on, and the local CLI working on the same data directory.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A served process that is killed when the test lets go of it, also when it panics (a
/// survivor would hold the test harness's output open).
pub struct Served(pub Child);

impl std::ops::Deref for Served {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `autosign-proxy serve` and wait for its "listening" line; returns the child and
/// every line it printed before.
pub fn spawn_serve(dir: &std::path::Path, port: u16, extra: &[&str]) -> (Served, Vec<String>) {
    let mut child = Command::new(proxy_bin())
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("serve exited before listening: {lines:#?}");
        }
        let done = line.contains("listening on https://");
        lines.push(line.trim_end().to_string());
        if done {
            break;
        }
    }
    // Keep draining stderr so the service never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (Served(child), lines)
}

fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(proxy_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("AUTOSIGN_PROXY_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn serve_with_zero_configuration_then_restart_fast() {
    let dir = temp_dir("serve");
    let data = dir.join("data");
    let port = free_port();
    let (mut child, lines) = spawn_serve(&data, port, &[]);
    let said = lines.join("\n");
    assert!(said.contains("generating the CA key (rsa-4096)"), "{said}");
    assert!(
        said.contains("generating the service TLS certificate"),
        "{said}"
    );
    let key_mode = std::fs::metadata(data.join("ca/ca_key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    for f in [
        "tls/ca.pem",
        "tls/server.pem",
        "tls/client.pem",
        "tls/client.key",
        "autosign-proxy.db",
    ] {
        assert!(data.join(f).exists(), "{f} missing");
    }
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(data.join("tls/ca.pem"))
        .arg(data.join("tls/server.pem"))
        .arg(data.join("tls/client.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // The local CLI and the service share the data directory.
    let out = cli(
        &data,
        &[
            "token",
            "issue",
            "web01.example.com",
            "--ttl",
            "6h",
            "--alt-name",
            "DNS:web",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        token.trim_end().len(),
        43,
        "the token alone on stdout: {token:?}"
    );
    let csr = openssl_csr(
        &CsrOpts::new("web01.example.com")
            .challenge(token.trim_end())
            .ext(&["subjectAltName = DNS:web"]),
    );
    let files = autosign_policy::TlsFiles {
        ca_file: data.join("tls/ca.pem"),
        cert: Some(data.join("tls/client.pem")),
        key: Some(data.join("tls/client.key")),
    };
    let mut conn = autosign_policy::Connection::connect(
        &format!("https://127.0.0.1:{port}"),
        autosign_policy::client_config(&files).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        validate(&mut conn, Some("web01.example.com"), &csr).status,
        200
    );
    assert_eq!(
        validate(&mut conn, Some("web01.example.com"), &csr).status,
        404
    );

    let out = cli(&data, &["events", "--rejected", "--json"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reason"], "token_used");
    assert_eq!(lines[0]["certname"], "web01.example.com");
    let out = cli(&data, &["events"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("decision approved (token)") && text.contains("token_issued"),
        "{text}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    // A later start reuses everything and says nothing about generating.
    let started = Instant::now();
    let (mut child, lines) = spawn_serve(&data, port, &[]);
    let elapsed = started.elapsed();
    assert!(!lines.join("\n").contains("generating"), "{lines:?}");
    eprintln!("restart to listening: {elapsed:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cli_token_and_allow_list_commands() {
    let data = temp_dir("cli");
    let out = cli(
        &data,
        &[
            "token",
            "issue",
            "a.example.com",
            "--json",
            "--meta",
            "build=9",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let issued: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = issued["id"].as_i64().unwrap();
    let out = cli(&data, &["token", "list"]);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains("a.example.com") && listing.contains("live"),
        "{listing}"
    );
    assert!(!listing.contains(issued["token"].as_str().unwrap()));
    let out = cli(&data, &["token", "revoke", &id.to_string()]);
    assert!(out.status.success());
    let out = cli(&data, &["token", "revoke", &id.to_string()]);
    assert!(!out.status.success(), "revoking twice says so");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no live build token"));

    for bad in [
        &["token", "issue", "A.example.com"][..],
        &["token", "issue", "a.example.com", "--ttl", "soon"],
        &["token", "issue", "a.example.com", "--alt-name", "URI:x"],
    ] {
        let out = cli(&data, bad);
        assert!(!out.status.success(), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("autosign-proxy: "),
            "{bad:?}"
        );
    }

    let conf = data.join("autosign.conf");
    std::fs::write(&conf, "# lab\n*.lab.example.com\nweb 01\n*\n").unwrap();
    let out = cli(&data, &["autosign", "import", conf.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(":3: skipped 'web 01'"), "{stderr}");
    let out = cli(&data, &["autosign", "list"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "*\n*.lab.example.com\n"
    );
    assert!(cli(&data, &["autosign", "remove", "*"]).status.success());
    assert!(!cli(&data, &["autosign", "remove", "*"]).status.success());
}

#[test]
fn bad_configuration_is_refused_clearly() {
    let dir = temp_dir("badconf");
    let conf = dir.join("config.toml");
    std::fs::write(&conf, "listen = \"127.0.0.1:0\"\nlisten_port = 5\n").unwrap();
    let out = Command::new(proxy_bin())
        .args([
            "--config",
            conf.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
            "serve",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen_port"), "{stderr}");
    let out = Command::new(proxy_bin())
        .args(["--data-dir", dir.to_str().unwrap(), "serve"])
        .env("AUTOSIGN_PROXY_TOKENS_DEFAULT_TTL", "5")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("default_ttl"));
}

#[test]
fn a_half_present_ca_is_refused() {
    let dir = temp_dir("halfca");
    std::fs::create_dir_all(dir.join("ca")).unwrap();
    std::fs::write(dir.join("ca/ca_key.pem"), "not really").unwrap();
    let out = Command::new(proxy_bin())
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
