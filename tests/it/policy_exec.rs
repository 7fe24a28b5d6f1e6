//! The autosign-policy executable against the real service, called the way puppetserver
//! calls it: certname in argv[1], CSR on stdin, exit 0 only on approval.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

pub fn run_policy(args: &[&str], env: &[(&str, &str)], csr: &[u8]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(policy_bin())
        .args(args)
        .env_remove("AUTOSIGN_POLICY_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(csr);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (out, started.elapsed())
}

fn flags(svc: &Service) -> Vec<String> {
    vec![
        "--url".into(),
        svc.url(),
        "--ca-file".into(),
        svc.dir.ca_bundle().display().to_string(),
        "--cert".into(),
        svc.dir.client_cert().display().to_string(),
        "--key".into(),
        svc.dir.client_key().display().to_string(),
    ]
}

#[test]
fn approves_once_then_refuses_the_replay() {
    let svc = Service::start("policy-exec");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "agent01.example.com");
    let csr = openssl_csr(&CsrOpts::new("agent01.example.com").challenge(&token));
    let mut args = flags(&svc);
    args.push("agent01.example.com".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let (out, _) = run_policy(&args, &[], &csr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "approval is silent");

    let (out, _) = run_policy(&args, &[], &csr);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("autosign-policy:") && stderr.contains("token_used"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line for puppetserver's WARN log: {stderr}"
    );
}

#[test]
fn reads_its_settings_from_the_config_file_puppetserver_cannot_pass_flags() {
    let svc = Service::start("policy-config");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "agent02.example.com");
    let csr = openssl_csr(&CsrOpts::new("agent02.example.com").challenge(&token));
    let dir = temp_dir("policy-config");
    let conf = dir.join("policy.toml");
    std::fs::write(
        &conf,
        format!(
            "# as deploy/policy.toml\nurl = \"{}\"\nca_file = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\ntimeout = 5\n",
            svc.url(),
            svc.dir.ca_bundle().display(),
            svc.dir.client_cert().display(),
            svc.dir.client_key().display()
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    // A CSR for another name than argv[1] is refused: the certname is checked, not trusted.
    let (out, _) = run_policy(
        &["evil.example.com"],
        &[("AUTOSIGN_POLICY_CONFIG", &conf)],
        &csr,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("certname_mismatch"));
    // That refusal exposed the token, so it was revoked: the agent gets a new one.
    assert!(String::from_utf8_lossy(&out.stderr).contains("was revoked"));
    let token = foreman_token(&mut c, "agent02.example.com");
    let csr = openssl_csr(&CsrOpts::new("agent02.example.com").challenge(&token));
    let (out, _) = run_policy(
        &["agent02.example.com"],
        &[("AUTOSIGN_POLICY_CONFIG", &conf)],
        &csr,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fails_closed_when_the_service_is_down_or_silent() {
    let mut svc = Service::start("policy-down");
    let mut c = svc.client();
    let token = foreman_token(&mut c, "agent03.example.com");
    let csr = openssl_csr(&CsrOpts::new("agent03.example.com").challenge(&token));
    let mut args = flags(&svc);
    args.push("agent03.example.com".into());
    drop(c);
    svc.stop();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, elapsed) = run_policy(&argv, &[], &csr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        elapsed < Duration::from_secs(2),
        "connection refused is immediate: {elapsed:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pending"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A server that accepts and never answers: the timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(3));
        drop(conns);
    });
    args[1] = format!("https://127.0.0.1:{port}");
    let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
    argv.splice(0..0, ["--timeout", "1"]);
    let (out, elapsed) = run_policy(&argv, &[], &csr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2000),
        "{elapsed:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("timed out")
            || String::from_utf8_lossy(&out.stderr).contains("timeout"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hold.join().unwrap();
}

#[test]
fn a_service_certificate_from_another_ca_is_not_trusted() {
    let svc = Service::start("policy-tls");
    let other = Service::start("policy-tls-other");
    let csr = openssl_csr(&CsrOpts::new("agent04.example.com"));
    let mut args = flags(&svc);
    args[3] = other.dir.ca_bundle().display().to_string();
    args.push("agent04.example.com".into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, _) = run_policy(&argv, &[], &csr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
