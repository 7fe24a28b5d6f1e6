//! Taking over an existing puppetserver CA directory, so agents keep the certificates
//! they have: everything is read and checked first, the database takes the CA's state in
//! one transaction, and only then do the CA files move into place.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest;

use crate::app::authority::cert_status_json;
use crate::app::App;
use crate::ca::cadir::read_cadir;
use crate::ca::crl::{crl_info, encode_crl_chain};
use crate::ca::issue::cert_info;
use crate::ca::signer::SoftwareKey;
use crate::config::Config;
use crate::domain::csr::{fingerprint, Csr};
use crate::domain::event::{Actor, NewEvent};
use crate::startup::datadir::{self, DataDir, LOCAL_CLIENT_CN, SERVICE_CN};
use crate::store::{CaCertificate, CaImport, CaRequest, Revocation};
use crate::time;
use crate::x509;

/// What an import brought over.
#[derive(Debug)]
pub struct ImportSummary {
    pub certificates: usize,
    pub revoked: usize,
    pub requests: usize,
    pub next_serial: u64,
    pub backup: std::path::PathBuf,
}

/// Import `cadir` into the data directory of `config`. Refused, with nothing changed,
/// when the directory is partial or inconsistent, or when this CA already issued
/// certificates to anything but the service itself.
pub async fn import_cadir(
    config: &Config,
    cadir: &Path,
    actor: &Actor,
    say: &mut dyn FnMut(&str),
) -> Result<ImportSummary, String> {
    say(&format!("reading {}", cadir.display()));
    let imported = read_cadir(cadir).map_err(|e| e.to_string())?;
    SoftwareKey::from_pem(&imported.key_pem).map_err(|e| format!("ca_key.pem: {e}"))?;
    let own_crl = imported
        .crl_chain
        .first()
        .ok_or("ca_crl.pem holds no CRL")
        .and_then(|der| crl_info(der).map_err(|_| "ca_crl.pem: unreadable CRL"))
        .map_err(str::to_string)?;
    let revoked: Vec<Revocation> = own_crl
        .revoked
        .iter()
        .filter_map(|r| {
            r.serial_u64().map(|serial| Revocation {
                serial,
                revoked_at: r.revoked_at,
                reason: r.reason.map(|c| c.code()),
            })
        })
        .collect();
    let total = imported.signed.len();
    let mut certificates = Vec::with_capacity(total);
    let mut serials = HashSet::new();
    for (i, (certname, der)) in imported.signed.iter().enumerate() {
        let info = cert_info(der).map_err(|e| format!("signed/{certname}.pem: {e}"))?;
        let serial = info
            .serial_u64()
            .ok_or(format!("signed/{certname}.pem: serial too large"))?;
        serials.insert(serial);
        let revocation = revoked.iter().find(|r| r.serial == serial);
        let cert = CaCertificate {
            serial,
            certname: certname.clone(),
            cert_pem: x509::pem_encode("CERTIFICATE", der),
            fingerprint: fingerprint(&digest::SHA256, der),
            not_before: info.not_before,
            not_after: info.not_after,
            issued_at: info.not_before + 86_400,
            revoked_at: revocation.map(|r| r.revoked_at),
            revocation_reason: revocation.and_then(|r| r.reason),
        };
        let json = cert_status_json(&cert);
        certificates.push((cert, json));
        if (i + 1) % 1000 == 0 || i + 1 == total {
            say(&format!("read {}/{total} certificates", i + 1));
        }
    }
    let orphan_revocations: Vec<Revocation> = revoked
        .iter()
        .filter(|r| !serials.contains(&r.serial))
        .cloned()
        .collect();
    let mut requests = Vec::new();
    for (certname, der) in &imported.requests {
        let csr = Csr::parse(der).map_err(|e| format!("requests/{certname}.pem: {e}"))?;
        requests.push(CaRequest {
            certname: certname.clone(),
            csr_pem: csr.to_pem(),
            fingerprint: csr.fingerprint_sha256(),
            received_at: time::now(),
            reason: Some("imported".into()),
            message: Some(format!(
                "pending in {} when it was imported",
                cadir.display()
            )),
        });
    }
    let summary_counts = (certificates.len(), revoked.len(), requests.len());

    // New CA files beside the old ones first, so a failure here changes nothing.
    let dir = DataDir::new(&config.data_dir);
    fs::create_dir_all(dir.root.join("ca")).map_err(|e| e.to_string())?;
    let staged_key = dir.root.join("ca/ca_key.pem.import");
    let staged_cert = dir.root.join("ca/ca_crt.pem.import");
    let _ = fs::remove_file(&staged_key);
    datadir::write_file(&staged_key, imported.key_pem.as_bytes(), 0o600)
        .map_err(|e| e.to_string())?;
    let bundle_pem: String = imported
        .bundle
        .iter()
        .map(|d| x509::pem_encode("CERTIFICATE", d))
        .collect();
    datadir::write_file(&staged_cert, bundle_pem.as_bytes(), 0o644).map_err(|e| e.to_string())?;

    let store = crate::startup::open_store(config).await?;
    let import = CaImport {
        certificates,
        requests,
        orphan_revocations,
        next_serial: imported.next_serial,
        crl_number: own_crl.number.unwrap_or(0),
    };
    let event = NewEvent::new(time::now(), "ca_imported", actor)
        .message(format!("CA imported from {}", cadir.display()))
        .details(serde_json::json!({
            "certificates": summary_counts.0,
            "revoked": summary_counts.1,
            "requests": summary_counts.2,
            "next_serial": imported.next_serial,
        }));
    let allowed = vec![SERVICE_CN.to_string(), LOCAL_CLIENT_CN.to_string()];
    if let Err(e) = store.ca_import(import, allowed, event).await {
        let _ = fs::remove_file(&staged_key);
        let _ = fs::remove_file(&staged_cert);
        return Err(e.to_string());
    }

    // The database is the imported CA's now: move the files in, keeping the old ones.
    let backup = dir
        .root
        .join(format!("backup-before-import-{}", time::now()));
    fs::create_dir_all(&backup).map_err(|e| e.to_string())?;
    dir.move_ca_files_to(&backup)?;
    fs::rename(&staged_key, dir.ca_key()).map_err(|e| e.to_string())?;
    fs::rename(&staged_cert, dir.ca_cert()).map_err(|e| e.to_string())?;
    if imported.crl_chain.len() > 1 {
        let parents = encode_crl_chain(imported.crl_chain.get(1..).unwrap_or(&[]));
        datadir::write_file(&dir.parent_crls(), parents.as_bytes(), 0o644)
            .map_err(|e| e.to_string())?;
    }
    say(&format!(
        "old CA and TLS files moved to {}",
        backup.display()
    ));

    // The service's own TLS identity is reissued by the imported CA, and the CRL is
    // re-signed with the next number, carrying every imported revocation.
    datadir::initialize(config, store.as_ref(), say)
        .await
        .map_err(|e| e.to_string())?;
    let app = Arc::new(App::new(
        store.clone(),
        config.clone(),
        crate::startup::datadir::reserved_names(config),
    ));
    let authority = crate::startup::authority(config, &dir, app, store.clone())?;
    authority.rebuild_crl().await.map_err(|e| e.to_string())?;
    let next_serial = store.next_serial().await.map_err(|e| e.to_string())?;
    Ok(ImportSummary {
        certificates: summary_counts.0,
        revoked: summary_counts.1,
        requests: summary_counts.2,
        next_serial,
        backup,
    })
}
