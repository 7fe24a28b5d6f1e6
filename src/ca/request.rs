//! Building PKCS#10 certificate requests, for `ca generate`, tests and load benchmarks.

use der::asn1::{Any, BitString, SetOfVec};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::Attribute;
use x509_cert::name::Name;

use super::signer::Signer;
use super::CaError;
use crate::domain::csr::{CsrExtension, GeneralName, StringKind};
use crate::oid;
use crate::x509;

#[derive(Debug, Clone, Copy)]
pub struct CsrSpec<'a> {
    pub common_name: &'a str,
    /// Written with the given string tag even when the content is not valid for it, to
    /// reproduce Puppet's PrintableString holding `_`.
    pub challenge_password: Option<(&'a str, StringKind)>,
    /// Written as a subjectAltName extension request, before `extensions`.
    pub subject_alt_names: &'a [GeneralName],
    pub extensions: &'a [CsrExtension],
    /// 0 normally; 2 reproduces `puppetserver ca generate`.
    pub version: u64,
}

/// CertificationRequestInfo with any version (x509-cert's allows only v1).
#[derive(Sequence)]
struct InfoOut {
    version: u64,
    subject: Name,
    public_key: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true")]
    attributes: SetOfVec<Attribute>,
}

#[derive(Sequence)]
struct CsrOut {
    info: InfoOut,
    algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

fn encoding(e: impl std::fmt::Display) -> CaError {
    CaError::Encoding(e.to_string())
}

fn attribute(oid: &str, value: Any) -> Result<Attribute, CaError> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(encoding)?;
    Ok(Attribute {
        oid: x509::oid_of(oid).map_err(encoding)?,
        values,
    })
}

/// A signed CSR, DER.
pub fn build_csr(key: &dyn Signer, spec: &CsrSpec) -> Result<Vec<u8>, CaError> {
    let mut attributes = SetOfVec::new();
    if let Some((password, kind)) = spec.challenge_password {
        let value = Any::new(kind.tag(), password.as_bytes()).map_err(encoding)?;
        attributes
            .insert(attribute(oid::CHALLENGE_PASSWORD, value)?)
            .map_err(encoding)?;
    }
    let mut extensions = Vec::new();
    if !spec.subject_alt_names.is_empty() {
        let value = x509::general_names_der(spec.subject_alt_names).map_err(encoding)?;
        extensions.push(x509::extension(oid::SUBJECT_ALT_NAME, false, value).map_err(encoding)?);
    }
    for ext in spec.extensions {
        extensions.push(
            x509::extension(&ext.oid, ext.critical, ext.value.clone())
                .map_err(|e| CaError::Encoding(format!("extension OID {:?}: {e}", ext.oid)))?,
        );
    }
    if !extensions.is_empty() {
        let value = Any::encode_from(&extensions).map_err(encoding)?;
        attributes
            .insert(attribute(oid::EXTENSION_REQUEST, value)?)
            .map_err(encoding)?;
    }
    let info = InfoOut {
        version: spec.version,
        subject: x509::cn_name(spec.common_name).map_err(encoding)?,
        public_key: SubjectPublicKeyInfoOwned::from_der(key.spki_der()).map_err(encoding)?,
        attributes,
    };
    let signature = key.sign(&info.to_der().map_err(encoding)?)?;
    CsrOut {
        info,
        algorithm: AlgorithmIdentifierOwned::from_der(&key.signature_algorithm_der())
            .map_err(encoding)?,
        signature: BitString::from_bytes(&signature).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::issue::utf8_extension;
    use crate::ca::signer::{KeyAlgorithm, SoftwareKey};
    use crate::ca::testutil::{openssl, TempDir};
    use crate::domain::csr::Csr;
    use crate::x509;

    #[test]
    fn puppet_style_csr_parses_verifies_and_openssl_accepts_it() {
        let dir = TempDir::new("request");
        for alg in [
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384,
        ] {
            let key = SoftwareKey::generate(alg).unwrap();
            let sans = [
                GeneralName::Dns("agent7.example.com".into()),
                GeneralName::Dns("puppet".into()),
            ];
            let pp = [utf8_extension("1.3.6.1.4.1.34380.1.1.4", "web")];
            for version in [0, 2] {
                let der_bytes = build_csr(
                    &key,
                    &CsrSpec {
                        common_name: "agent7.example.com",
                        challenge_password: Some(("build_token_123", StringKind::Printable)),
                        subject_alt_names: &sans,
                        extensions: &pp,
                        version,
                    },
                )
                .unwrap();
                let csr = Csr::parse(&der_bytes).unwrap();
                csr.verify_signature().unwrap();
                assert_eq!(csr.version(), version);
                assert_eq!(
                    csr.challenge_password(),
                    Some(("build_token_123".to_string(), StringKind::Printable))
                );
                assert_eq!(
                    csr.subject_common_names(),
                    vec!["agent7.example.com".to_string()]
                );
                assert_eq!(csr.subject_alt_names().unwrap(), sans.to_vec());
                assert_eq!(&csr.extensions()[1..], &pp);
                assert_eq!(csr.public_key_spki_der().unwrap(), key.spki_der());

                let path = dir.file(&format!("{alg}-{version}.csr"));
                std::fs::write(&path, x509::pem_encode("CERTIFICATE REQUEST", &der_bytes)).unwrap();
                let out = openssl(&["req", "-verify", "-noout", "-in", &path, "-text"]);
                assert!(out.contains("build_token_123"), "{out}");
                assert!(out.contains("DNS:agent7.example.com, DNS:puppet"), "{out}");
            }
        }
    }

    #[test]
    fn minimal_csr_has_empty_attributes() {
        let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let der_bytes = build_csr(
            &key,
            &CsrSpec {
                common_name: "bare",
                challenge_password: Some(("pw", StringKind::Utf8)),
                subject_alt_names: &[],
                extensions: &[],
                version: 0,
            },
        )
        .unwrap();
        let csr = Csr::parse(&der_bytes).unwrap();
        csr.verify_signature().unwrap();
        assert!(csr.extensions().is_empty());
        assert_eq!(
            csr.challenge_password(),
            Some(("pw".to_string(), StringKind::Utf8))
        );
        assert!(build_csr(
            &key,
            &CsrSpec {
                common_name: "x",
                challenge_password: None,
                subject_alt_names: &[GeneralName::Other { tag: 0xa0 }],
                extensions: &[],
                version: 0,
            },
        )
        .is_err());
    }
}
