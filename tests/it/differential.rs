//! Differential tests: on the fuzz corpus (real Puppet 7 and 8 agent CSRs, openssl's), what
//! we read equals what `openssl req -text` reads; what we issue (certificates and CRLs)
//! OpenSSL reads and writes back byte for byte, i.e. it is canonical DER.

use std::path::{Path, PathBuf};
use std::process::Command;

use autosign_proxy::ca::crl::{build_crl, CrlReason, CrlSpec, RevokedEntry};
use autosign_proxy::ca::issue::{issue_leaf, self_signed_ca, utf8_extension, CaCertSpec, LeafSpec};
use autosign_proxy::ca::signer::{KeyAlgorithm, Signer, SoftwareKey};
use autosign_proxy::domain::csr::{Csr, GeneralName};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn openssl(args: &[&str], input: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    if let Some(path) = input {
        cmd.arg("-in").arg(path);
    }
    let out = cmd.output().expect("openssl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The text after `label` on its line, trimmed.
fn field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
}

#[test]
fn what_we_read_from_the_corpus_is_what_openssl_reads() {
    let files = corpus("csr");
    let mut compared = 0;
    for path in &files {
        let inform = if path.extension().is_some_and(|e| e == "der") {
            "DER"
        } else {
            "PEM"
        };
        let (ok, text) = openssl(&["req", "-noout", "-text", "-inform", inform], Some(path));
        let ours = Csr::parse(&std::fs::read(path).unwrap());
        if !ok {
            // A fuzzer's find: what openssl cannot read, we refuse too.
            assert!(
                ours.is_err(),
                "{}: openssl refuses it, we read it",
                path.display()
            );
            continue;
        }
        let csr = ours.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.display();

        // Subject: one CN, as openssl prints it.
        let subject = field(&text, "Subject:").unwrap();
        assert_eq!(
            subject
                .strip_prefix("CN = ")
                .or(subject.strip_prefix("CN=")),
            csr.subject_common_names().first().map(String::as_str),
            "{name}: subject"
        );

        // Key type and size.
        let desc = csr.key_description();
        if let Some(bits) = field(&text, "Public-Key:") {
            let bits = bits.trim_start_matches('(').trim_end_matches(" bit)");
            if desc.starts_with("RSA") {
                assert_eq!(desc, format!("RSA {bits}"), "{name}");
            } else {
                let curve = field(&text, "NIST CURVE:").unwrap();
                assert_eq!(desc, format!("EC {curve}"), "{name}");
            }
        } else {
            assert!(text.contains("ED25519 Public-Key"), "{name}: {text}");
            assert_eq!(desc, "Ed25519", "{name}");
        }

        // challengePassword, as text.
        assert_eq!(
            field(&text, "challengePassword").map(|v| v.trim_start_matches(':').trim()),
            csr.challenge_password().as_ref().map(|(v, _)| v.as_str()),
            "{name}: challengePassword"
        );

        // SANs: the same names in the same order, in openssl's notation.
        let sans = csr.subject_alt_names().unwrap();
        let ours: Vec<String> = sans
            .iter()
            .map(|n| match n {
                GeneralName::Ip(ip) => format!("IP Address:{ip}"),
                other => other.to_string(),
            })
            .collect();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let theirs: Vec<String> = lines
            .iter()
            .position(|l| l.starts_with("X509v3 Subject Alternative Name"))
            .map(|i| lines[i + 1].split(", ").map(str::to_string).collect())
            .unwrap_or_default();
        assert_eq!(ours, theirs, "{name}: subjectAltName");

        // Every extension: openssl lists the same ones (Puppet's by dotted OID, with the
        // value we read as text).
        for ext in csr.extensions() {
            if ext.oid.starts_with("1.3.6.1.4.1.34380.") {
                let at = lines
                    .iter()
                    .position(|l| l.starts_with(&format!("{}:", ext.oid)))
                    .unwrap_or_else(|| panic!("{name}: openssl does not list {}", ext.oid));
                let value = ext.string_value().unwrap();
                // openssl dumps an unknown extension's raw bytes, non-printables as '.',
                // so a length byte may break the value's line.
                let block: String = lines[at + 1..]
                    .iter()
                    .take_while(|l| !l.ends_with(':') && !l.ends_with(": critical"))
                    .copied()
                    .collect::<Vec<_>>()
                    .join("\n");
                assert!(
                    block.contains(&value),
                    "{name}: {} is {value:?} to us, {block:?} to openssl",
                    ext.oid
                );
            }
        }
        let requested = lines
            .iter()
            .skip_while(|l| !l.starts_with("Requested Extensions:"))
            .skip(1)
            .take_while(|l| !l.starts_with("Signature Algorithm"))
            .filter(|l| l.ends_with(':') || l.ends_with(": critical"))
            .count();
        assert_eq!(requested, csr.extensions().len(), "{name}: extension count");
        compared += 1;
    }
    // Real Puppet 7 and 8 agents' CSRs and openssl's are all there.
    assert!(compared >= 15, "only {compared} CSRs compared");
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().contains("puppet8-agent")));
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().contains("puppet7-agent")));
}

/// OpenSSL parses the DER and writes it back; canonical DER comes back unchanged.
fn round_trips(kind: &str, der: &[u8], dir: &Path, name: &str) {
    let input = dir.join(format!("{name}.der"));
    let output = dir.join(format!("{name}.out.der"));
    std::fs::write(&input, der).unwrap();
    let (ok, _) = openssl(
        &[
            kind,
            "-inform",
            "DER",
            "-outform",
            "DER",
            "-out",
            output.to_str().unwrap(),
        ],
        Some(&input),
    );
    assert!(ok, "openssl {kind} cannot read our {name}");
    assert_eq!(
        std::fs::read(&output).unwrap(),
        der,
        "openssl re-encodes our {name} differently: not canonical DER"
    );
}

#[test]
fn what_we_issue_is_canonical_der_to_openssl() {
    let dir = std::env::temp_dir().join(format!("differential-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let now = autosign_proxy::time::now();
    for alg in [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::EcP256,
        KeyAlgorithm::EcP384,
    ] {
        let key = SoftwareKey::generate(alg).unwrap();
        let ca = self_signed_ca(
            &key,
            &CaCertSpec {
                common_name: "Puppet CA: differential",
                serial: 1,
                not_before: now - 86_400,
                not_after: now + 40 * 365 * 86_400,
            },
        )
        .unwrap();
        round_trips("x509", &ca, &dir, &format!("ca-{alg}"));
        let leaf_key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let sans = [
            GeneralName::Dns("puppet".into()),
            GeneralName::Ip("10.0.0.1".parse().unwrap()),
            GeneralName::Ip("::1".parse().unwrap()),
        ];
        let leaf = issue_leaf(
            &key,
            &ca,
            &LeafSpec {
                common_name: "agent1.example.com",
                subject_spki_der: leaf_key.spki_der(),
                serial: 0xff_ff,
                not_before: now - 86_400,
                not_after: now + 5 * 365 * 86_400,
                subject_alt_names: &sans,
                extra_extensions: &[utf8_extension("1.3.6.1.4.1.34380.1.1.1", "uuid")],
            },
        )
        .unwrap();
        round_trips("x509", &leaf, &dir, &format!("leaf-{alg}"));
        for revoked in [
            Vec::new(),
            vec![
                RevokedEntry {
                    serial: vec![0x80],
                    revoked_at: now,
                    reason: Some(CrlReason::KeyCompromise),
                },
                RevokedEntry {
                    serial: vec![0x01, 0x00],
                    revoked_at: now,
                    reason: None,
                },
            ],
        ] {
            let crl = build_crl(
                &key,
                &ca,
                &CrlSpec {
                    number: 0x80,
                    this_update: now,
                    next_update: now + 30 * 365 * 86_400,
                    revoked: &revoked,
                },
            )
            .unwrap();
            round_trips("crl", &crl, &dir, &format!("crl-{alg}-{}", revoked.len()));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
