//! The operator's page in a real browser: Debian's chromium driven headless by
//! playwright-core (installed under target/ on first use), through sign-in, a token, an
//! agent's rejected attempt, signing a request with alt names, the allow-list, a forged
//! form and sign-out. Screenshots of each page land in target/ui-screenshots/.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use autosign_proxy::domain::event::EventFilter;
use autosign_proxy::store::EventStore;

use crate::support::{
    block_on, openssl_csr, submit, target_dir, temp_dir, validate, CsrOpts, Service,
};

const PASSWORD: &str = "correct horse battery staple";

/// The directory holding playwright-core, installed with npm under target/ once.
fn playwright_core() -> PathBuf {
    let root = target_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(target_dir);
    let prefix = root.join("ui-browser");
    let module = prefix.join("node_modules").join("playwright-core");
    if !module.join("package.json").exists() {
        std::fs::create_dir_all(&prefix).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg("playwright-core@1")
            .output()
            .expect("npm is needed for the browser test (scripts/test installs it)");
        assert!(
            out.status.success(),
            "npm install playwright-core: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    module
}

fn screenshots_dir() -> PathBuf {
    let root = target_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(target_dir);
    let dir = root.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_operator_works_the_page_in_a_real_browser() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed for the browser test (scripts/test installs it)"
    );
    let svc = Service::start("ui");
    let mut c = svc.client();

    // An operator account, made as an operator would: the CLI, password on stdin.
    let mut add = Command::new(crate::support::proxy_bin())
        .arg("--data-dir")
        .arg(&svc.dir.root)
        .args(["operator", "add", "alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A request with alt names, pending (no token, no entry).
    let csr = openssl_csr(
        &CsrOpts::new("alt.example.com")
            .ext(&["subjectAltName = DNS:alt.example.com, DNS:alias.example.com"]),
    );
    submit(&mut c, "alt.example.com", &csr);

    let user_data = temp_dir("chromium-profile");
    let mut node = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/ui/flow.js"))
        .env("PLAYWRIGHT_CORE", playwright_core())
        .env("UI_URL", svc.url())
        .env("SHOTS_DIR", screenshots_dir())
        .env("UI_USER", "alice")
        .env("UI_PASSWORD", PASSWORD)
        .env("USER_DATA_DIR", &user_data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node is needed for the browser test");
    let mut to_node = node.stdin.take().unwrap();
    let from_node = BufReader::new(node.stdout.take().unwrap());
    let mut done = false;
    for line in from_node.lines() {
        let line = line.unwrap();
        println!("browser: {line}");
        if let Some(need) = line.strip_prefix("NEED rejected-attempt ") {
            // The agent's attempt: a CSR with a token nobody issued.
            let csr = openssl_csr(&CsrOpts::new(need).challenge("NotTheTokenThatWasIssued123"));
            let resp = validate(&mut c, Some(need), &csr);
            assert!(resp.text().contains("token_unknown"), "{}", resp.text());
            writeln!(to_node, "done").unwrap();
        } else if line == "DONE" {
            done = true;
        }
        if done {
            // Nothing more to ask: let the script's stdin close.
            let _ = to_node.flush();
        }
    }
    drop(to_node);
    let status = node.wait().unwrap();
    assert!(
        status.success() && done,
        "the browser flow failed (see its output above)"
    );

    // Every action is an event by operator:alice.
    let store = svc.store();
    let events = block_on(store.list_events(&EventFilter {
        limit: 200,
        ..Default::default()
    }))
    .unwrap();
    let by_alice: Vec<&str> = events
        .iter()
        .filter(|e| e.actor == "operator:alice")
        .map(|e| e.kind.as_str())
        .collect();
    for kind in [
        "operator_signed_in",
        "token_issued",
        "certificate_signed",
        "allow_entry_added",
        "allow_entry_removed",
        "operator_signed_out",
    ] {
        assert!(
            by_alice.contains(&kind),
            "{kind} by operator:alice in {by_alice:?}"
        );
    }
    assert!(events.iter().any(|e| e.kind == "operator_sign_in_failed"));
    assert!(
        !events.iter().any(|e| e
            .details
            .as_ref()
            .is_some_and(|d| d.to_string().contains(PASSWORD))),
        "the password is recorded nowhere"
    );
}
