//! The data directory: creates on first start, and reuses afterwards, the CA key and
//! certificate, the service's TLS certificate issued by that CA, and the local client
//! certificate that the CLI and a local autosign-policy present.

use crate::domain::policy::ReservedNames;
use crate::oid;
use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::app::authority::cert_status_json;
use crate::ca::issue::{self, CaCertSpec, LeafSpec};
use crate::ca::signer::{KeyAlgorithm, Signer, SoftwareKey};
use crate::config::Config;
use crate::domain::csr::GeneralName;
use crate::domain::event::{Actor, NewEvent};
use crate::store::{CaCertificate, CaIdentity, Store};
use crate::time;
use crate::x509;

pub use crate::domain::certname::{LOCAL_CLIENT_CN, SERVICE_CN};
pub use crate::http::tls::TlsMaterial;

const DAY: i64 = 86_400;
/// puppetserver's defaults: CA 15 years, agents 5 years, all backdated one day.
const CA_TTL: i64 = 15 * 365 * DAY;
const LEAF_TTL: i64 = 5 * 365 * DAY;
/// Reissue the generated service certificate when it has less than this left.
const RENEW_BEFORE: i64 = 30 * DAY;

/// Where everything lives under the data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> DataDir {
        DataDir {
            root: root.to_path_buf(),
        }
    }
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca/ca_key.pem")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca/ca_crt.pem")
    }
    /// CRLs of the CAs above an imported intermediate CA.
    pub fn parent_crls(&self) -> PathBuf {
        self.root.join("ca/parent_crls.pem")
    }
    /// The bundle clients verify the service with.
    pub fn ca_bundle(&self) -> PathBuf {
        self.root.join("tls/ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("tls/server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.root.join("tls/server.key")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.root.join("tls/client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.root.join("tls/client.key")
    }

    /// Move every CA and TLS file that exists into `backup` (a CA being replaced by an
    /// import or a regeneration); the key keeps its 0600 mode.
    pub fn move_ca_files_to(&self, backup: &Path) -> Result<(), String> {
        for old in [
            self.ca_key(),
            self.ca_cert(),
            self.parent_crls(),
            self.ca_bundle(),
            self.server_cert(),
            self.server_key(),
            self.client_cert(),
            self.client_key(),
        ] {
            if let (true, Some(name)) = (old.exists(), old.file_name()) {
                fs::rename(&old, backup.join(name))
                    .map_err(|e| format!("cannot move {} aside: {e}", old.display()))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct StateError(pub String);

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

fn err(context: &str, e: impl fmt::Display) -> StateError {
    StateError(format!("{context}: {e}"))
}

/// Create what is missing, reuse what is there, and say what is being generated.
/// Refuses a half-present CA (a key without its certificate or the reverse) rather than
/// overwriting anything.
pub async fn initialize(
    config: &Config,
    store: &dyn Store,
    say: &mut dyn FnMut(&str),
) -> Result<DataDir, StateError> {
    let dir = DataDir::new(&config.data_dir);
    for sub in ["", "ca", "tls"] {
        let path = dir.root.join(sub);
        if !path.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(&path)
                .map_err(|e| err(&format!("cannot create {}", path.display()), e))?;
        }
    }
    let now = time::now();
    let ca_key = ensure_ca(config, &dir, store, now, say).await?;
    let ca_der = read_first_cert(&dir.ca_cert())?;
    claim_ca(&dir, store, &ca_der, now).await?;
    if !dir.ca_bundle().exists() {
        write_file(
            &dir.ca_bundle(),
            x509::pem_encode("CERTIFICATE", &ca_der).as_bytes(),
            0o644,
        )?;
    }
    let mut ca_key = ca_key;
    let server_names = service_names(config);
    if config.tls.cert.is_none() && needs_service_cert(&dir.server_cert(), &server_names, now) {
        let key = match ca_key.take() {
            Some(key) => key,
            None => load_key(&dir.ca_key())?,
        };
        say(&format!(
            "generating the service TLS certificate ({}) in {}",
            server_names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            dir.server_cert().display()
        ));
        issue_local_cert(
            &key,
            &ca_der,
            store,
            SERVICE_CN,
            &server_names,
            &dir.server_cert(),
            &dir.server_key(),
            now,
        )
        .await?;
        ca_key = Some(key);
    }
    if !dir.client_cert().exists() || !dir.client_key().exists() {
        let key = match ca_key.take() {
            Some(key) => key,
            None => load_key(&dir.ca_key())?,
        };
        say(&format!(
            "generating the local client certificate in {}",
            dir.client_cert().display()
        ));
        issue_local_cert(
            &key,
            &ca_der,
            store,
            LOCAL_CLIENT_CN,
            &[],
            &dir.client_cert(),
            &dir.client_key(),
            now,
        )
        .await?;
    }
    Ok(dir)
}

/// The CA key is loaded only when something has to be signed, so later starts stay fast.
async fn ensure_ca(
    config: &Config,
    dir: &DataDir,
    store: &dyn Store,
    now: i64,
    say: &mut dyn FnMut(&str),
) -> Result<Option<SoftwareKey>, StateError> {
    match (dir.ca_key().exists(), dir.ca_cert().exists()) {
        (true, true) => Ok(None),
        (false, false) => {
            if let Some(owner) = store.ca_identity().await.map_err(|e| err("the database", e))? {
                return Err(StateError(format!(
                    "the database already belongs to the CA '{}' (SHA-256 {}), but {} holds no CA: \
                     copy ca_key.pem (mode 0600) and ca_crt.pem of that CA there from another replica, \
                     or use a database of its own",
                    owner.subject,
                    owner.fingerprint,
                    dir.ca_key().parent().unwrap_or(&dir.root).display()
                )));
            }
            let algorithm: KeyAlgorithm = config.ca.key_algorithm;
            say(&format!("generating the CA key ({algorithm}) in {}", dir.ca_key().display()));
            let key = SoftwareKey::generate(algorithm).map_err(|e| err("CA key generation failed", e))?;
            key.save_new(&dir.ca_key()).map_err(|e| err("cannot write the CA key", e))?;
            let serial = store.next_serial().await.map_err(|e| err("serial allocation", e))?;
            let spec = CaCertSpec {
                common_name: &config.ca.common_name,
                serial,
                not_before: now - DAY,
                not_after: now + CA_TTL,
            };
            say(&format!("generating the CA certificate '{}' in {}", config.ca.common_name, dir.ca_cert().display()));
            let der = issue::self_signed_ca(&key, &spec).map_err(|e| err("CA certificate", e))?;
            write_file(&dir.ca_cert(), x509::pem_encode("CERTIFICATE", &der).as_bytes(), 0o644)?;
            Ok(Some(key))
        }
        (true, false) => Err(StateError(format!(
            "{} exists but {} does not: refusing to guess; restore the CA certificate or move the key away",
            dir.ca_key().display(),
            dir.ca_cert().display()
        ))),
        (false, true) => Err(StateError(format!(
            "{} exists but its key {} does not: refusing to create a new CA over an old one",
            dir.ca_cert().display(),
            dir.ca_key().display()
        ))),
    }
}

/// The identity of a CA certificate as the store records it.
pub fn ca_identity_of(ca_der: &[u8]) -> CaIdentity {
    let subject = issue::cert_info(ca_der)
        .ok()
        .and_then(|info| info.common_name)
        .unwrap_or_default();
    CaIdentity {
        fingerprint: crate::domain::csr::fingerprint_sha256(ca_der),
        subject,
    }
}

/// Bind the store to this CA, or refuse: replicas sharing a database must sign with one
/// CA, and a process holding another CA's files must not sign into this state.
async fn claim_ca(
    dir: &DataDir,
    store: &dyn Store,
    ca_der: &[u8],
    now: i64,
) -> Result<(), StateError> {
    let ours = ca_identity_of(ca_der);
    let owner = store
        .claim_ca_identity(&ours, now)
        .await
        .map_err(|e| err("the database", e))?;
    if owner != ours {
        return Err(StateError(format!(
            "{} is the CA '{}' (SHA-256 {}), but the database belongs to the CA '{}' (SHA-256 {}): \
             refusing to sign with another CA's key; copy that CA's ca_key.pem and ca_crt.pem into {}",
            dir.ca_cert().display(),
            ours.subject,
            ours.fingerprint,
            owner.subject,
            owner.fingerprint,
            dir.ca_cert().parent().unwrap_or(&dir.root).display()
        )));
    }
    Ok(())
}

/// The names no automatic path signs: the service's own TLS names and CN, its local
/// client, the trusted and admin hosts of the config, and the names of a configured
/// server certificate.
pub fn reserved_names(config: &Config) -> ReservedNames {
    let mut names: Vec<String> = service_names(config)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::Dns(d) => Some(d),
            GeneralName::Ip(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect();
    names.push(SERVICE_CN.to_string());
    names.push(LOCAL_CLIENT_CN.to_string());
    names.extend(config.trusted_hosts.iter().cloned());
    names.extend(config.ca.admin_hosts.iter().cloned());
    if let Some(path) = &config.tls.cert {
        if let Ok(der) = read_first_cert(path) {
            if let Ok(info) = issue::cert_info(&der) {
                names.extend(info.common_name);
                names.extend(info.subject_alt_names.into_iter().filter_map(|n| match n {
                    GeneralName::Dns(d) => Some(d),
                    GeneralName::Ip(ip) => Some(ip.to_string()),
                    _ => None,
                }));
            }
        }
    }
    ReservedNames::new(names)
}

/// localhost, the loopback addresses, this host's name, and what the config adds.
fn service_names(config: &Config) -> Vec<GeneralName> {
    let mut names = vec![
        GeneralName::Dns("localhost".into()),
        GeneralName::Ip(IpAddr::from([127, 0, 0, 1])),
        GeneralName::Ip("::1".parse().unwrap_or(IpAddr::from([0u8; 16]))),
    ];
    if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim().to_ascii_lowercase();
        if !host.is_empty() && host != "localhost" {
            names.push(GeneralName::Dns(host));
        }
    }
    for extra in &config.tls.server_names {
        let name = match extra.parse::<IpAddr>() {
            Ok(ip) => GeneralName::Ip(ip),
            Err(_) => GeneralName::Dns(extra.to_ascii_lowercase()),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn needs_service_cert(path: &Path, names: &[GeneralName], now: i64) -> bool {
    let Ok(der) = read_first_cert(path) else {
        return true;
    };
    let Ok(info) = issue::cert_info(&der) else {
        return true;
    };
    info.not_after - now < RENEW_BEFORE || names.iter().any(|n| !info.subject_alt_names.contains(n))
}

#[allow(clippy::too_many_arguments)]
async fn issue_local_cert(
    ca_key: &SoftwareKey,
    ca_der: &[u8],
    store: &dyn Store,
    cn: &str,
    names: &[GeneralName],
    cert_path: &Path,
    key_path: &Path,
    now: i64,
) -> Result<(), StateError> {
    // P-256: the service and its local clients handshake on every policy call.
    let key = SoftwareKey::generate(KeyAlgorithm::EcP256).map_err(|e| err("key generation", e))?;
    let serial = store
        .next_serial()
        .await
        .map_err(|e| err("serial allocation", e))?;
    let extensions = [issue::utf8_extension(oid::PP_CLI_AUTH, "true")];
    let spec = LeafSpec {
        common_name: cn,
        subject_spki_der: key.spki_der(),
        serial,
        not_before: now - DAY,
        not_after: now + LEAF_TTL,
        subject_alt_names: names,
        extra_extensions: &extensions,
    };
    let der = issue::issue_leaf(ca_key, ca_der, &spec)
        .map_err(|e| err(&format!("certificate for {cn}"), e))?;
    let key_pem = key.to_pkcs8_pem().map_err(|e| err("key encoding", e))?;
    // The service's own certificates are in the CA's inventory like any other: listed,
    // revocable, and holding their name against a second certificate.
    let cert = CaCertificate {
        serial,
        certname: cn.to_string(),
        cert_pem: x509::pem_encode("CERTIFICATE", &der),
        fingerprint: crate::domain::csr::fingerprint_sha256(&der),
        not_before: now - DAY,
        not_after: now + LEAF_TTL,
        issued_at: now,
        revoked_at: None,
        revocation_reason: None,
    };
    let event = NewEvent::new(now, "certificate_signed", &Actor::new(SERVICE_CN, None))
        .certname(cn)
        .message(format!(
            "certificate serial {serial} issued (the service's own {})",
            if cn == SERVICE_CN {
                "TLS certificate"
            } else {
                "local client certificate"
            }
        ))
        .details(serde_json::json!({ "serial": serial, "fingerprint": cert.fingerprint }));
    store
        .ca_add_certificate(&cert, cert_status_json(&cert), true, event)
        .await
        .map_err(|e| err(&format!("recording the certificate of {cn}"), e))?;
    write_file(key_path, key_pem.as_bytes(), 0o600)?;
    write_file(
        cert_path,
        x509::pem_encode("CERTIFICATE", &der).as_bytes(),
        0o644,
    )?;
    Ok(())
}

fn load_key(path: &Path) -> Result<SoftwareKey, StateError> {
    SoftwareKey::load(path).map_err(|e| err(&format!("cannot load {}", path.display()), e))
}

/// Every certificate in a PEM file, as DER.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, StateError> {
    let text =
        fs::read_to_string(path).map_err(|e| err(&format!("cannot read {}", path.display()), e))?;
    let certs: Vec<Vec<u8>> = x509::pem_blocks(&text)
        .map_err(|e| err(&format!("{}", path.display()), e))?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der)
        .collect();
    if certs.is_empty() {
        return Err(StateError(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The SHA-256 fingerprint (Puppet's format) of the first certificate in a PEM file.
pub fn fingerprint_of(path: &Path) -> Result<String, StateError> {
    Ok(crate::domain::csr::fingerprint_sha256(&read_first_cert(
        path,
    )?))
}

fn read_first_cert(path: &Path) -> Result<Vec<u8>, StateError> {
    read_certs(path)?
        .into_iter()
        .next()
        .ok_or_else(|| StateError(format!("{} holds no certificate", path.display())))
}

/// Write via a temporary file and rename, so a crash never leaves half a file; the mode
/// is set at creation, so a key is never readable by others, even briefly.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), StateError> {
    crate::files::write_atomic(path, contents, mode)
        .map_err(|e| err(&format!("cannot write {}", path.display()), e))
}

/// The server's certificate chain, key and accepted client CAs, from the data directory
/// or from the files the config names.
pub fn tls_material(config: &Config, dir: &DataDir) -> Result<TlsMaterial, StateError> {
    let (cert_path, key_path) = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => (dir.server_cert(), dir.server_key()),
    };
    let server_chain = read_certs(&cert_path)?;
    let server_key_pem = fs::read_to_string(&key_path)
        .map_err(|e| err(&format!("cannot read {}", key_path.display()), e))?;
    let mut client_roots = read_certs(&dir.ca_cert())?;
    for bundle in &config.tls.client_ca {
        client_roots.extend(read_certs(bundle)?);
    }
    Ok(TlsMaterial {
        server_chain,
        server_key_pem,
        client_roots,
    })
}
