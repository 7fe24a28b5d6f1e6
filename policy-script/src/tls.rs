//! Builds the rustls client configuration from PEM files: our CA bundle as the only
//! roots, and optionally a client certificate for mutual TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::Error;

/// Where the TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM bundle of the CA certificates that may sign the server's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate chain, leaf first. Needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key: PKCS#8, PKCS#1 (`RSA PRIVATE KEY`, what puppet writes) or SEC1.
    pub key: Option<PathBuf>,
}

/// A client configuration trusting only `files.ca_file`, with the aws-lc-rs provider.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&files.ca_file, "ca_file")? {
        roots.add(ca).map_err(|e| {
            Error::Config(format!(
                "ca_file {}: unusable CA certificate: {e}",
                files.ca_file.display()
            ))
        })?;
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(format!("no usable protocol versions: {e}")))?
    .with_root_certificates(roots);
    let mut config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert, "cert")?, load_key(key)?)
            .map_err(|e| {
                Error::Config(format!(
                    "client certificate {} with key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?,
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(Error::Config(
                "a client certificate needs its key: set key as well as cert".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(Error::Config(
                "a client key needs its certificate: set cert as well as key".into(),
            ))
        }
    };
    // Offering http/1.1 keeps ALPN-enabled servers (actix offers h2 too) on HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_certs(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bad =
        |e: &dyn std::fmt::Display| Error::Config(format!("{setting} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no PEM certificates in the file"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let e = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (PKCS#8, RSA or EC) in the file".to_owned()
            }
            other => other.to_string(),
        };
        Error::Config(format!("key {}: {e}", path.display()))
    })
}
