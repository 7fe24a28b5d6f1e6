//! Building PKCS#10 certificate requests, for `ca generate`, tests and load benchmarks.

use super::signer::Signer;
use super::CaError;
use crate::der;
use crate::domain::csr::{CsrExtension, GeneralName, StringKind};
use crate::oid;

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

fn extension_der(ext: &CsrExtension) -> Result<Vec<u8>, CaError> {
    let oid = der::try_oid(&ext.oid)
        .map_err(|e| CaError::Encoding(format!("extension OID {:?}: {e}", ext.oid)))?;
    let value = der::octet_string(&ext.value);
    Ok(if ext.critical {
        der::seq(&[&oid, &der::boolean(true), &value])
    } else {
        der::seq(&[&oid, &value])
    })
}

/// A signed CSR, DER.
pub fn build_csr(key: &dyn Signer, spec: &CsrSpec) -> Result<Vec<u8>, CaError> {
    let subject = der::seq(&[&der::set(&[&der::seq(&[
        &der::oid(oid::COMMON_NAME),
        &der::utf8_string(spec.common_name),
    ])])]);

    let mut attributes: Vec<Vec<u8>> = Vec::new();
    if let Some((password, kind)) = spec.challenge_password {
        attributes.push(der::seq(&[
            &der::oid(oid::CHALLENGE_PASSWORD),
            &der::set(&[&der::tlv(kind.tag(), password.as_bytes())]),
        ]));
    }
    let mut extensions: Vec<Vec<u8>> = Vec::new();
    if !spec.subject_alt_names.is_empty() {
        let mut names = Vec::new();
        for name in spec.subject_alt_names {
            names.push(name.to_der().ok_or_else(|| {
                CaError::Encoding(format!("cannot write subject alternative name {name}"))
            })?);
        }
        let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        extensions.push(extension_der(&CsrExtension {
            oid: oid::SUBJECT_ALT_NAME.to_string(),
            critical: false,
            value: der::seq(&refs),
        })?);
    }
    for ext in spec.extensions {
        extensions.push(extension_der(ext)?);
    }
    if !extensions.is_empty() {
        let refs: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();
        attributes.push(der::seq(&[
            &der::oid(oid::EXTENSION_REQUEST),
            &der::set(&[&der::seq(&refs)]),
        ]));
    }
    let attr_refs: Vec<&[u8]> = attributes.iter().map(Vec::as_slice).collect();

    let info = der::seq(&[
        &der::integer_u64(spec.version),
        &subject,
        key.spki_der(),
        &der::set_with_tag(der::context_constructed(0), &attr_refs),
    ]);
    let signature = key.sign(&info)?;
    Ok(der::seq(&[
        &info,
        &key.signature_algorithm_der(),
        &der::bit_string(&signature),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::issue::utf8_extension;
    use crate::ca::signer::{KeyAlgorithm, SoftwareKey};
    use crate::ca::testutil::{openssl, TempDir};
    use crate::domain::csr::Csr;
    use crate::pem;

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
                assert_eq!(csr.public_key_spki_der(), key.spki_der());

                let path = dir.file(&format!("{alg}-{version}.csr"));
                std::fs::write(&path, pem::encode("CERTIFICATE REQUEST", &der_bytes)).unwrap();
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
