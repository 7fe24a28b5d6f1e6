//! X.509 certificates as puppetserver issues them: the self-signed CA and agent leaves, plus
//! reading back the fields the rest of the service needs. The structures are
//! `x509-cert`'s; this module chooses their contents and signs the TBS DER.

use crate::oid;
use aws_lc_rs::digest;
use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use super::signer::Signer;
use super::CaError;
use crate::domain::csr::{CsrExtension, GeneralName, PublicKeyKind};
use crate::x509::{self, CnStrictness};

/// The nsComment puppetserver puts in every certificate it issues.
pub const NS_COMMENT: &str = "Puppet Server Internal Certificate";

/// Extensions the CA writes itself; a caller may not supply them in `extra_extensions`.
const CA_OWNED_EXTENSIONS: [&str; 7] = [
    oid::BASIC_CONSTRAINTS,
    oid::KEY_USAGE,
    oid::EXT_KEY_USAGE,
    oid::SUBJECT_KEY_ID,
    oid::AUTHORITY_KEY_ID,
    oid::NS_COMMENT,
    oid::SUBJECT_ALT_NAME,
];

#[derive(Debug, Clone, Copy)]
pub struct CaCertSpec<'a> {
    pub common_name: &'a str,
    pub serial: u64,
    pub not_before: i64,
    pub not_after: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct LeafSpec<'a> {
    pub common_name: &'a str,
    /// The key to certify; it is parsed and written anew, never copied.
    pub subject_spki_der: &'a [u8],
    pub serial: u64,
    pub not_before: i64,
    pub not_after: i64,
    /// DNS:<common_name> is always added first if absent.
    pub subject_alt_names: &'a [GeneralName],
    /// Copied as given (pp_* requested extensions, pp_cli_auth). Must not repeat an
    /// extension the CA writes itself (SAN included: pass SANs in `subject_alt_names`).
    pub extra_extensions: &'a [CsrExtension],
}

/// What the rest of the service needs from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub common_name: Option<String>,
    /// Big-endian magnitude of the serial number (no sign padding byte).
    pub serial: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub subject_alt_names: Vec<GeneralName>,
    pub extensions: Vec<CsrExtension>,
    pub spki_der: Vec<u8>,
    /// The subjectKeyIdentifier extension's key id, if present.
    pub subject_key_id: Option<Vec<u8>>,
    pub issuer_common_name: Option<String>,
    /// True when basicConstraints says CA:TRUE.
    pub is_ca: bool,
}

impl CertInfo {
    /// The serial as a number, when it fits (puppetserver's are small counters).
    pub fn serial_u64(&self) -> Option<u64> {
        serial_u64(&self.serial)
    }
}

/// A big-endian magnitude as a u64, when it fits.
pub fn serial_u64(magnitude: &[u8]) -> Option<u64> {
    let digits = strip_leading_zeros(magnitude);
    if digits.len() > 8 {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    )
}

pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// A serial number from a big-endian magnitude. Positive; up to 20 octets of magnitude,
/// which with the sign byte may encode as 21 (RFC 5280 is read that way by `x509-cert`
/// when decoding, and an imported CA's random 160-bit serials must still fit a CRL).
pub fn serial_number(magnitude: &[u8]) -> Result<SerialNumber, CaError> {
    let digits = strip_leading_zeros(magnitude);
    if digits.is_empty() {
        return Err(CaError::Encoding("serial number must be positive".into()));
    }
    der::asn1::Uint::new(digits)
        .and_then(|n| n.to_der())
        .and_then(|encoded| SerialNumber::from_der(&encoded))
        .map_err(|e| CaError::Encoding(format!("serial number: {e}")))
}

/// A non-critical extension whose value is a DER UTF8String, as Puppet encodes pp_* ones.
pub fn utf8_extension(oid: &str, value: &str) -> CsrExtension {
    CsrExtension {
        oid: oid.to_string(),
        critical: false,
        value: x509::utf8_string_der(value),
    }
}

fn encoding(e: impl std::fmt::Display) -> CaError {
    CaError::Encoding(e.to_string())
}

fn ext<T: Encode>(oid: &str, critical: bool, value: &T) -> Result<Extension, CaError> {
    x509::extension(oid, critical, value.to_der().map_err(encoding)?).map_err(encoding)
}

/// RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>, CaError> {
    let bits = spki_key_bits(spki_der)?;
    Ok(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &bits)
        .as_ref()
        .to_vec())
}

/// The subjectPublicKey bits of a SubjectPublicKeyInfo.
pub(crate) fn spki_key_bits(spki_der: &[u8]) -> Result<Vec<u8>, CaError> {
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(spki_der)
        .map_err(|e| CaError::Encoding(format!("public key: {e}")))?;
    Ok(spki.subject_public_key.raw_bytes().to_vec())
}

/// The CA signature algorithm as `x509-cert` wants it.
pub(crate) fn signature_algorithm(key: &dyn Signer) -> Result<AlgorithmIdentifierOwned, CaError> {
    AlgorithmIdentifierOwned::from_der(&key.signature_algorithm_der()).map_err(encoding)
}

fn check_validity(not_before: i64, not_after: i64) -> Result<(), CaError> {
    if not_after <= not_before {
        return Err(CaError::Encoding(format!(
            "notAfter ({not_after}) is not after notBefore ({not_before})"
        )));
    }
    Ok(())
}

struct Tbs {
    serial: u64,
    issuer: Name,
    not_before: i64,
    not_after: i64,
    subject: Name,
    spki_der: Vec<u8>,
    extensions: Vec<Extension>,
}

fn sign_certificate(key: &dyn Signer, tbs: Tbs) -> Result<Vec<u8>, CaError> {
    check_validity(tbs.not_before, tbs.not_after)?;
    let signature_algorithm = signature_algorithm(key)?;
    let tbs_certificate = TbsCertificate {
        version: Version::V3,
        serial_number: serial_number(&tbs.serial.to_be_bytes())?,
        signature: signature_algorithm.clone(),
        issuer: tbs.issuer,
        validity: Validity {
            not_before: x509::time(tbs.not_before).map_err(encoding)?,
            not_after: x509::time(tbs.not_after).map_err(encoding)?,
        },
        subject: tbs.subject,
        subject_public_key_info: spki::SubjectPublicKeyInfoOwned::from_der(&tbs.spki_der)
            .map_err(encoding)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(tbs.extensions),
    };
    let tbs_der = tbs_certificate.to_der().map_err(encoding)?;
    let signature = key.sign(&tbs_der)?;
    Certificate {
        tbs_certificate,
        signature_algorithm,
        signature: BitString::from_bytes(&signature).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)
}

fn authority_key_id(key_id: &[u8]) -> Result<AuthorityKeyIdentifier, CaError> {
    Ok(AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_id).map_err(encoding)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    })
}

fn ns_comment() -> Result<der::asn1::Ia5String, CaError> {
    der::asn1::Ia5String::new(NS_COMMENT).map_err(encoding)
}

fn cn_name(common_name: &str) -> Result<Name, CaError> {
    x509::cn_name(common_name).map_err(encoding)
}

/// Self-signed CA: v3, subject = issuer = CN=<name>, basicConstraints CA:TRUE critical,
/// keyUsage keyCertSign+cRLSign critical, SKI, AKI keyid, nsComment, like puppetserver.
pub fn self_signed_ca(key: &dyn Signer, spec: &CaCertSpec) -> Result<Vec<u8>, CaError> {
    let name = cn_name(spec.common_name)?;
    let ski = key_identifier(key.spki_der())?;
    let extensions = vec![
        ext(
            oid::BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
        )?,
        ext(
            oid::KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
        )?,
        ext(
            oid::SUBJECT_KEY_ID,
            false,
            &SubjectKeyIdentifier(OctetString::new(ski.clone()).map_err(encoding)?),
        )?,
        ext(oid::AUTHORITY_KEY_ID, false, &authority_key_id(&ski)?)?,
        ext(oid::NS_COMMENT, false, &ns_comment()?)?,
    ];
    sign_certificate(
        key,
        Tbs {
            serial: spec.serial,
            issuer: name.clone(),
            not_before: spec.not_before,
            not_after: spec.not_after,
            subject: name,
            spki_der: key.spki_der().to_vec(),
            extensions,
        },
    )
}

/// The CA certificate and its SubjectPublicKeyInfo DER, once `ca_key` is shown to be its
/// key: whatever is signed with another key (a certificate, a CRL) nobody could verify.
pub(crate) fn signing_ca(
    ca_key: &dyn Signer,
    ca_cert_der: &[u8],
) -> Result<(Certificate, Vec<u8>), CaError> {
    let ca = Certificate::from_der(ca_cert_der)
        .map_err(|e| CaError::Encoding(format!("CA certificate: {e}")))?;
    let ca_spki = ca
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(encoding)?;
    if spki_key_bits(&ca_spki)? != spki_key_bits(ca_key.spki_der())? {
        return Err(CaError::Key(
            "the CA key does not match the CA certificate's public key".into(),
        ));
    }
    Ok((ca, ca_spki))
}

/// Leaf: v3, issuer = the CA cert's subject, basicConstraints CA:FALSE critical,
/// keyUsage digitalSignature+keyEncipherment critical, extKeyUsage serverAuth+clientAuth
/// critical, SKI, AKI (the CA's SKI), nsComment, SAN, then `extra_extensions`.
pub fn issue_leaf(
    ca_key: &dyn Signer,
    ca_cert_der: &[u8],
    spec: &LeafSpec,
) -> Result<Vec<u8>, CaError> {
    let (ca, ca_spki) = signing_ca(ca_key, ca_cert_der)?;
    let ca_extensions =
        x509::extensions(ca.tbs_certificate.extensions.as_ref()).map_err(encoding)?;
    let issuer_key_id = match ca_extensions.iter().find(|e| e.oid == oid::SUBJECT_KEY_ID) {
        Some(e) => OctetString::from_der(&e.value)
            .map_err(encoding)?
            .as_bytes()
            .to_vec(),
        None => key_identifier(&ca_spki)?,
    };
    let subject_spki = PublicKeyKind::from_spki(spec.subject_spki_der)
        .and_then(|k| k.to_spki_der())
        .map_err(|e| CaError::Encoding(format!("subject public key: {e}")))?;
    let subject_ski = key_identifier(&subject_spki)?;

    let has_cn = spec.subject_alt_names.iter().any(|n| match n {
        GeneralName::Dns(d) => d.eq_ignore_ascii_case(spec.common_name),
        _ => false,
    });
    let mut sans = Vec::with_capacity(spec.subject_alt_names.len() + 1);
    if !has_cn {
        sans.push(GeneralName::Dns(spec.common_name.to_string()));
    }
    sans.extend_from_slice(spec.subject_alt_names);
    let san_der = x509::general_names_der(&sans).map_err(encoding)?;

    let mut extensions = vec![
        ext(
            oid::BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?,
        ext(
            oid::KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
        )?,
        ext(
            oid::EXT_KEY_USAGE,
            true,
            &ExtendedKeyUsage(vec![
                x509::oid_of(oid::SERVER_AUTH).map_err(encoding)?,
                x509::oid_of(oid::CLIENT_AUTH).map_err(encoding)?,
            ]),
        )?,
        ext(
            oid::SUBJECT_KEY_ID,
            false,
            &SubjectKeyIdentifier(OctetString::new(subject_ski).map_err(encoding)?),
        )?,
        ext(
            oid::AUTHORITY_KEY_ID,
            false,
            &authority_key_id(&issuer_key_id)?,
        )?,
        ext(oid::NS_COMMENT, false, &ns_comment()?)?,
        x509::extension(oid::SUBJECT_ALT_NAME, false, san_der).map_err(encoding)?,
    ];
    let mut seen: Vec<&str> = Vec::new();
    for extra in spec.extra_extensions {
        if CA_OWNED_EXTENSIONS.contains(&extra.oid.as_str()) {
            return Err(CaError::Encoding(format!(
                "extension {} is written by the CA and cannot be copied from the request",
                extra.oid
            )));
        }
        if seen.contains(&extra.oid.as_str()) {
            return Err(CaError::Encoding(format!(
                "extension {} given twice",
                extra.oid
            )));
        }
        seen.push(&extra.oid);
        extensions.push(
            x509::extension(&extra.oid, extra.critical, extra.value.clone())
                .map_err(|e| CaError::Encoding(format!("extension {:?}: {e}", extra.oid)))?,
        );
    }

    sign_certificate(
        ca_key,
        Tbs {
            serial: spec.serial,
            issuer: ca.tbs_certificate.subject,
            not_before: spec.not_before,
            not_after: spec.not_after,
            subject: cn_name(spec.common_name)?,
            spki_der: subject_spki,
            extensions,
        },
    )
}

/// Reads a certificate (PEM, first CERTIFICATE block, or DER), strictly.
pub fn cert_info(der_or_pem: &[u8]) -> Result<CertInfo, CaError> {
    let cert_der = x509::der_or_pem(der_or_pem, "CERTIFICATE", "certificate").map_err(encoding)?;
    let cert = Certificate::from_der(&cert_der)
        .map_err(|e| CaError::Encoding(format!("certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    let (subject_cns, _) =
        x509::common_names(&tbs.subject, CnStrictness::Signed).map_err(encoding)?;
    let (issuer_cns, _) =
        x509::common_names(&tbs.issuer, CnStrictness::Signed).map_err(encoding)?;
    let extensions = x509::extensions(tbs.extensions.as_ref()).map_err(encoding)?;
    let find = |oid: &str| extensions.iter().find(|e| e.oid == oid);
    let subject_alt_names = match find(oid::SUBJECT_ALT_NAME) {
        Some(e) => x509::general_names(&e.value).map_err(encoding)?,
        None => Vec::new(),
    };
    let subject_key_id = match find(oid::SUBJECT_KEY_ID) {
        Some(e) => Some(
            OctetString::from_der(&e.value)
                .map_err(|e| CaError::Encoding(format!("subjectKeyIdentifier: {e}")))?
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    let is_ca = match find(oid::BASIC_CONSTRAINTS) {
        Some(e) => {
            BasicConstraints::from_der(&e.value)
                .map_err(|e| CaError::Encoding(format!("basicConstraints: {e}")))?
                .ca
        }
        None => false,
    };
    Ok(CertInfo {
        common_name: subject_cns.into_iter().next(),
        serial: strip_leading_zeros(tbs.serial_number.as_bytes()).to_vec(),
        not_before: x509::unix(&tbs.validity.not_before),
        not_after: x509::unix(&tbs.validity.not_after),
        subject_alt_names,
        spki_der: tbs.subject_public_key_info.to_der().map_err(encoding)?,
        subject_key_id,
        issuer_common_name: issuer_cns.into_iter().next(),
        is_ca,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::signer::{KeyAlgorithm, SoftwareKey};
    use crate::ca::testutil::{openssl, TempDir};

    const YEAR: i64 = 365 * 86_400;

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn issue_and_verify(ca_alg: KeyAlgorithm, leaf_alg: KeyAlgorithm) {
        let dir = TempDir::new(&format!("issue-{ca_alg}"));
        let now = now();
        let ca_key = SoftwareKey::generate(ca_alg).unwrap();
        let ca = self_signed_ca(
            &ca_key,
            &CaCertSpec {
                common_name: "Puppet CA: puppet.example.com",
                serial: 1,
                not_before: now - 86_400,
                // Past 2050, to exercise GeneralizedTime with a real verifier.
                not_after: now + 30 * YEAR,
            },
        )
        .unwrap();
        let leaf_key = SoftwareKey::generate(leaf_alg).unwrap();
        let pp_uuid = utf8_extension(
            "1.3.6.1.4.1.34380.1.1.1",
            "ED803750-E3C7-44F5-BB08-41A04433FE2E",
        );
        let cli_auth = utf8_extension(oid::PP_CLI_AUTH, "true");
        let sans = [
            GeneralName::Dns("puppet".into()),
            GeneralName::Ip("10.0.0.1".parse().unwrap()),
            GeneralName::Ip("::1".parse().unwrap()),
        ];
        let leaf = issue_leaf(
            &ca_key,
            &ca,
            &LeafSpec {
                common_name: "agent1.example.com",
                subject_spki_der: leaf_key.spki_der(),
                serial: 0x1234,
                not_before: now - 86_400,
                not_after: now + 5 * YEAR,
                subject_alt_names: &sans,
                extra_extensions: &[pp_uuid.clone(), cli_auth.clone()],
            },
        )
        .unwrap();

        let ca_pem = dir.file("ca.pem");
        let leaf_pem = dir.file("leaf.pem");
        std::fs::write(&ca_pem, x509::pem_encode("CERTIFICATE", &ca)).unwrap();
        std::fs::write(&leaf_pem, x509::pem_encode("CERTIFICATE", &leaf)).unwrap();
        let out = openssl(&["verify", "-x509_strict", "-CAfile", &ca_pem, &leaf_pem]);
        assert!(out.contains("OK"), "{out}");
        let out = openssl(&[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            &ca_pem,
            &leaf_pem,
        ]);
        assert!(out.contains("OK"), "{out}");

        let ca_text = openssl(&["x509", "-in", &ca_pem, "-noout", "-text"]);
        for needle in [
            "Version: 3 (0x2)",
            "Issuer: CN = Puppet CA: puppet.example.com",
            "Subject: CN = Puppet CA: puppet.example.com",
            "X509v3 Basic Constraints: critical",
            "CA:TRUE",
            "X509v3 Key Usage: critical",
            "Certificate Sign, CRL Sign",
            "X509v3 Subject Key Identifier",
            "X509v3 Authority Key Identifier",
            "Puppet Server Internal Certificate",
        ] {
            assert!(
                ca_text.contains(needle),
                "CA missing {needle:?}:\n{ca_text}"
            );
        }
        let leaf_text = openssl(&["x509", "-in", &leaf_pem, "-noout", "-text"]);
        for needle in [
            "Serial Number: 4660 (0x1234)",
            "Subject: CN = agent1.example.com",
            "CA:FALSE",
            "Digital Signature, Key Encipherment",
            "X509v3 Extended Key Usage: critical",
            "TLS Web Server Authentication, TLS Web Client Authentication",
            "DNS:agent1.example.com, DNS:puppet, IP Address:10.0.0.1, IP Address:0:0:0:0:0:0:0:1",
            "1.3.6.1.4.1.34380.1.1.1:",
            "ED803750-E3C7-44F5-BB08-41A04433FE2E",
            "1.3.6.1.4.1.34380.1.3.39:",
            "Puppet Server Internal Certificate",
        ] {
            assert!(
                leaf_text.contains(needle),
                "leaf missing {needle:?}:\n{leaf_text}"
            );
        }

        let info = cert_info(&leaf).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("agent1.example.com"));
        assert_eq!(
            info.issuer_common_name.as_deref(),
            Some("Puppet CA: puppet.example.com")
        );
        assert_eq!(info.serial, vec![0x12, 0x34]);
        assert_eq!(info.serial_u64(), Some(0x1234));
        assert_eq!(info.not_before, now - 86_400);
        assert_eq!(info.not_after, now + 5 * YEAR);
        assert_eq!(info.spki_der, leaf_key.spki_der());
        assert_eq!(
            info.subject_key_id,
            Some(key_identifier(leaf_key.spki_der()).unwrap())
        );
        assert!(!info.is_ca);
        assert_eq!(
            info.subject_alt_names[0],
            GeneralName::Dns("agent1.example.com".into())
        );
        assert_eq!(&info.subject_alt_names[1..], &sans);
        assert!(info.extensions.contains(&pp_uuid));
        assert!(info.extensions.contains(&cli_auth));
        let ca_info = cert_info(std::fs::read(&ca_pem).unwrap().as_slice()).unwrap();
        assert!(ca_info.is_ca);
        assert_eq!(ca_info.not_after, now + 30 * YEAR);
        assert_eq!(ca_info.serial_u64(), Some(1));
    }

    #[test]
    fn rsa_ca_issues_leaf_openssl_verifies() {
        issue_and_verify(KeyAlgorithm::Rsa2048, KeyAlgorithm::Rsa2048);
    }

    #[test]
    fn ec_p256_ca_issues_leaf_openssl_verifies() {
        issue_and_verify(KeyAlgorithm::EcP256, KeyAlgorithm::EcP256);
    }

    #[test]
    fn ec_p384_ca_issues_leaf_openssl_verifies() {
        issue_and_verify(KeyAlgorithm::EcP384, KeyAlgorithm::Rsa2048);
    }

    #[test]
    fn rsa_4096_generation() {
        let key = SoftwareKey::generate(KeyAlgorithm::Rsa4096).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::Rsa4096);
        let ca = self_signed_ca(
            &key,
            &CaCertSpec {
                common_name: "ca",
                serial: 1,
                not_before: 0,
                not_after: YEAR,
            },
        )
        .unwrap();
        assert_eq!(cert_info(&ca).unwrap().spki_der, key.spki_der());
    }

    #[test]
    fn refuses_bad_specs() {
        let ca_key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let other = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let ca_spec = CaCertSpec {
            common_name: "ca",
            serial: 1,
            not_before: 0,
            not_after: YEAR,
        };
        let ca = self_signed_ca(&ca_key, &ca_spec).unwrap();
        assert!(self_signed_ca(
            &ca_key,
            &CaCertSpec {
                serial: 0,
                ..ca_spec
            }
        )
        .is_err());
        let spec = |extra: &'static [CsrExtension]| LeafSpec {
            common_name: "a",
            subject_spki_der: other.spki_der(),
            serial: 2,
            not_before: 0,
            not_after: YEAR,
            subject_alt_names: &[],
            extra_extensions: extra,
        };
        assert!(issue_leaf(&ca_key, &ca, &spec(&[])).is_ok());
        assert!(matches!(
            issue_leaf(&other, &ca, &spec(&[])),
            Err(CaError::Key(_))
        ));
        let san = Box::leak(Box::new([CsrExtension {
            oid: oid::SUBJECT_ALT_NAME.into(),
            critical: false,
            value: vec![0x30, 0x00],
        }]));
        assert!(issue_leaf(&ca_key, &ca, &spec(san)).is_err());
        let bad_oid = Box::leak(Box::new([utf8_extension("1.x", "v")]));
        assert!(issue_leaf(&ca_key, &ca, &spec(bad_oid)).is_err());
        let mut backwards = spec(&[]);
        backwards.not_after = -1;
        assert!(issue_leaf(&ca_key, &ca, &backwards).is_err());
        assert!(cert_info(b"garbage").is_err());
        assert!(cert_info(&ca[..ca.len() - 1]).is_err());
    }
}
