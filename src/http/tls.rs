//! TLS for the listener: rustls on aws-lc-rs, client certificates requested but not
//! required, and the verified client's identity read once per connection.

use std::any::Any;
use std::sync::Arc;

use actix_web::dev::Extensions;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::ca::issue::cert_info;
use crate::ca::signer::SoftwareKey;
use crate::ca::PP_CLI_AUTH_OID;
use crate::state::TlsMaterial;

/// Who is on the other end of a connection, from a client certificate rustls verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub common_name: String,
    /// The certificate carries pp_cli_auth = "true" (a Puppet CA administrator).
    pub cli_auth: bool,
}

pub fn server_config(material: &TlsMaterial) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for der in &material.client_roots {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("client CA certificate: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let chain: Vec<CertificateDer<'static>> = material
        .server_chain
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    let key = private_key(&material.server_key_pem)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("service certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Any key format puppet or openssl writes (PKCS#8, PKCS#1, SEC1), as PKCS#8 for rustls.
fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    let key = SoftwareKey::from_pem(pem).map_err(|e| format!("service key: {e}"))?;
    let pkcs8 = key
        .to_pkcs8_pem()
        .map_err(|e| format!("service key: {e}"))?;
    let der = crate::pem::decode_all(&pkcs8)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .map(|(_, der)| der)
        .ok_or("service key: empty")?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))
}

/// Runs once per accepted connection: rustls has already verified any certificate the
/// client sent against the accepted CAs, so what is read here can be trusted.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(stream) = conn.downcast_ref::<Tls>() else {
        return;
    };
    let (_, session) = stream.get_ref();
    let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) else {
        return;
    };
    match cert_info(leaf.as_ref()) {
        Ok(info) => {
            let Some(common_name) = info.common_name else {
                return;
            };
            let cli_auth = info.extensions.iter().any(|e| {
                e.oid == PP_CLI_AUTH_OID && utf8_value(&e.value).as_deref() == Some("true")
            });
            ext.insert(ClientIdentity {
                common_name,
                cli_auth,
            });
        }
        Err(e) => tracing::warn!(error = %e, "verified client certificate could not be read"),
    }
}

/// The value of a DER UTF8String (or other string type, read leniently).
fn utf8_value(der: &[u8]) -> Option<String> {
    let mut reader = crate::der::Reader::new(der);
    let tlv = reader.read().ok()?;
    String::from_utf8(tlv.value.to_vec()).ok()
}
