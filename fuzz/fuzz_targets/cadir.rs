//! Importing a puppetserver CA directory: the bundle, CRL chain, serial, inventory and a
//! signed certificate come from the input (split on a marker line); the key is the
//! fixture's, so inputs that keep the fixture's certificate reach every later check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

const KEY: &[u8] = include_bytes!("../fixtures/ca_key.pem");
const MARK: &[u8] = b"\n==>8==\n";

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // scripts/fuzz points FUZZ_SCRATCH at a directory it removes afterwards.
        let base = match std::env::var_os("FUZZ_SCRATCH") {
            Some(dir) => std::path::PathBuf::from(dir),
            None if std::path::Path::new("/dev/shm").is_dir() => {
                std::path::PathBuf::from("/dev/shm")
            }
            None => std::env::temp_dir(),
        };
        let d = base.join(format!("cadir-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(d.join("signed")).expect("fuzz dir");
        std::fs::write(d.join("ca_key.pem"), KEY).expect("fuzz key");
        d
    })
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(MARK.len()).position(|w| w == MARK) {
        parts.push(&rest[..at]);
        rest = &rest[at + MARK.len()..];
    }
    parts.push(rest);
    parts
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let parts = split(data);
    let files = ["ca_crt.pem", "ca_crl.pem", "serial", "inventory.txt"];
    for (i, name) in files.iter().enumerate() {
        std::fs::write(d.join(name), parts.get(i).copied().unwrap_or_default()).expect("write");
    }
    let signed = d.join("signed").join("agent1.example.com.pem");
    match parts.get(4) {
        Some(cert) => std::fs::write(&signed, cert).expect("write"),
        None => {
            let _ = std::fs::remove_file(&signed);
        }
    }
    let _ = autosign_proxy::ca::cadir::read_cadir(d);
    if let Ok(text) = std::str::from_utf8(parts.get(3).copied().unwrap_or_default()) {
        let _ = autosign_proxy::ca::cadir::parse_inventory(text);
    }
    if let Ok(text) = std::str::from_utf8(parts.get(2).copied().unwrap_or_default()) {
        let _ = autosign_proxy::ca::cadir::parse_serial(text);
    }
});
