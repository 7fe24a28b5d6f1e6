//! TLS for the listener: rustls on aws-lc-rs, client certificates requested but not
//! required, and the verified client's identity read once per connection — and checked
//! again against the current CRLs on every request, because a kept-alive connection or a
//! resumed TLS session never runs the handshake verifier again.

use crate::oid;
use std::any::Any;
use std::sync::Arc;

use actix_web::dev::Extensions;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::ca::issue::cert_info;
use crate::ca::signer::SoftwareKey;

/// What the HTTPS server needs, read from the data directory (or configured files).
pub struct TlsMaterial {
    /// Leaf first, as DER.
    pub server_chain: Vec<Vec<u8>>,
    pub server_key_pem: String,
    /// CA certificates whose client certificates are accepted, as DER.
    pub client_roots: Vec<Vec<u8>>,
}

/// Who is on the other end of a connection, from a client certificate rustls verified.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub common_name: String,
    /// The certificate carries pp_cli_auth = "true" (a Puppet CA administrator).
    pub cli_auth: bool,
    /// SHA-256 of the certificate, in Puppet's fingerprint format: trust in a particular
    /// certificate (the local client) is bound to this, never to the CN.
    pub fingerprint: String,
    /// The chain as presented, to check again when the CRLs change.
    chain: Arc<Vec<CertificateDer<'static>>>,
    /// The CRL generation this chain was last found valid under.
    checked: Arc<AtomicU64>,
}

/// The client verifier, with CRLs that can be replaced while the server runs: a revoked
/// agent or admin certificate is refused from the next handshake on.
#[derive(Debug)]
pub struct ClientVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    hints: Vec<DistinguishedName>,
    inner: RwLock<Arc<dyn ClientCertVerifier>>,
    /// Bumped at every `set_crls`, so connections re-check their certificate once.
    generation: AtomicU64,
}

impl ClientVerifier {
    fn new(
        roots: RootCertStore,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<ClientVerifier, String> {
        let roots = Arc::new(roots);
        let hints = roots.subjects();
        let inner = build_verifier(&roots, &provider, Vec::new())?;
        Ok(ClientVerifier {
            roots,
            provider,
            hints,
            inner: RwLock::new(inner),
            generation: AtomicU64::new(1),
        })
    }

    /// Check client certificates against these CRLs (DER) from now on. Certificates
    /// of CAs that have no CRL here (a configured client CA) are not revocation-checked.
    pub fn set_crls(&self, crls: Vec<Vec<u8>>) -> Result<(), String> {
        let crls = crls
            .into_iter()
            .map(CertificateRevocationListDer::from)
            .collect();
        let verifier = build_verifier(&self.roots, &self.provider, crls)?;
        match self.inner.write() {
            Ok(mut inner) => {
                *inner = verifier;
                self.generation.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Err(_) => Err("client verifier lock poisoned".into()),
        }
    }

    /// Whether the connection's certificate is still valid under the current CRLs (and
    /// still within its validity period). Verified again only when the CRLs changed since
    /// the last check of this connection, so the common case costs one atomic load.
    pub fn still_valid(&self, id: &ClientIdentity) -> Result<(), String> {
        let generation = self.generation.load(Ordering::SeqCst);
        if id.checked.load(Ordering::SeqCst) == generation {
            return Ok(());
        }
        let Some((leaf, intermediates)) = id.chain.split_first() else {
            return Err("no certificate".into());
        };
        let verifier = self.current().map_err(|e| e.to_string())?;
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| e.to_string())?;
        id.checked.store(generation, Ordering::SeqCst);
        Ok(())
    }

    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.inner
            .read()
            .map(|v| v.clone())
            .map_err(|_| rustls::Error::General("client verifier lock poisoned".into()))
    }
}

fn build_verifier(
    roots: &Arc<RootCertStore>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .with_crls(crls)
        .allow_unknown_revocation_status()
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client verifier: {e}"))
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .current()?
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(e) = &verified {
            // Say whose certificate and which issuer, so a failing setup step (Foreman's
            // certificate from a CA not in tls.client_ca) is found in the log.
            let info = cert_info(end_entity.as_ref()).ok();
            tracing::warn!(
                client = %info.as_ref().and_then(|i| i.common_name.as_deref()).unwrap_or("?").escape_debug(),
                issuer = %info.as_ref().and_then(|i| i.issuer_common_name.as_deref()).unwrap_or("?").escape_debug(),
                error = %e,
                "client certificate refused at the TLS handshake (an unknown issuer belongs in tls.client_ca)"
            );
        }
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current()
            .map(|v| v.supported_verify_schemes())
            .unwrap_or_default()
    }
}

pub fn server_config(
    material: &TlsMaterial,
) -> Result<(ServerConfig, Arc<ClientVerifier>), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for der in &material.client_roots {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("client CA certificate: {e}"))?;
    }
    let verifier = Arc::new(ClientVerifier::new(roots, provider.clone())?);
    let chain: Vec<CertificateDer<'static>> = material
        .server_chain
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    let key = private_key(&material.server_key_pem)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(chain, key)
        .map_err(|e| format!("service certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, verifier))
}

/// Any key format puppet or openssl writes (PKCS#8, PKCS#1, SEC1), as PKCS#8 for rustls.
fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    let key = SoftwareKey::from_pem(pem).map_err(|e| format!("service key: {e}"))?;
    let pkcs8 = key
        .to_pkcs8_pem()
        .map_err(|e| format!("service key: {e}"))?;
    let der = crate::x509::pem_blocks(&pkcs8)
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
    let Some(chain) = session.peer_certificates() else {
        return;
    };
    let Some(leaf) = chain.first() else {
        return;
    };
    match cert_info(leaf.as_ref()) {
        Ok(info) => {
            let Some(common_name) = info.common_name else {
                return;
            };
            let cli_auth = info.extensions.iter().any(|e| {
                e.oid == oid::PP_CLI_AUTH && utf8_value(&e.value).as_deref() == Some("true")
            });
            ext.insert(ClientIdentity {
                common_name,
                cli_auth,
                fingerprint: crate::domain::csr::fingerprint_sha256(leaf.as_ref()),
                chain: Arc::new(chain.iter().map(|c| c.clone().into_owned()).collect()),
                // The handshake verified it under the CRLs current then: check once more
                // on the first request, which closes the gap of a resumed session.
                checked: Arc::new(AtomicU64::new(0)),
            });
        }
        Err(e) => tracing::warn!(error = %e, "verified client certificate could not be read"),
    }
}

/// The value of a DER UTF8String (or other string type, read leniently).
fn utf8_value(der: &[u8]) -> Option<String> {
    crate::x509::string_value(der)
}
