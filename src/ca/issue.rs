//! X.509 certificates as puppetserver issues them: the self-signed CA and agent leaves, plus
//! reading back the fields the rest of the service needs.

use crate::oid;
use aws_lc_rs::digest;

use super::signer::Signer;
use super::CaError;
use crate::der::{self, Reader, Tlv};
use crate::domain::csr::{
    parse_general_names, read_name, read_wrapped_extensions, CsrExtension, GeneralName,
};
use crate::pem;

/// The nsComment puppetserver puts in every certificate it issues.
pub const NS_COMMENT: &str = "Puppet Server Internal Certificate";

// keyUsage bit numbers (RFC 5280 4.2.1.3).
const KU_DIGITAL_SIGNATURE: u8 = 0;
const KU_KEY_ENCIPHERMENT: u8 = 2;
const KU_KEY_CERT_SIGN: u8 = 5;
const KU_CRL_SIGN: u8 = 6;

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
        der::uint_from_be(&self.serial).ok().or_else(|| {
            // uint_from_be reads the high bit as a sign; our magnitude has none.
            let mut padded = vec![0u8];
            padded.extend_from_slice(&self.serial);
            der::uint_from_be(&padded).ok()
        })
    }
}

/// A non-critical extension whose value is a DER UTF8String, as Puppet encodes pp_* ones.
pub fn utf8_extension(oid: &str, value: &str) -> CsrExtension {
    CsrExtension {
        oid: oid.to_string(),
        critical: false,
        value: der::utf8_string(value),
    }
}

fn extension_der(oid: &str, critical: bool, value: &[u8]) -> Result<Vec<u8>, CaError> {
    let oid =
        der::try_oid(oid).map_err(|e| CaError::Encoding(format!("extension OID {oid:?}: {e}")))?;
    let value = der::octet_string(value);
    Ok(if critical {
        der::seq(&[&oid, &der::boolean(true), &value])
    } else {
        der::seq(&[&oid, &value])
    })
}

fn cn_name(common_name: &str) -> Vec<u8> {
    der::seq(&[&der::set(&[&der::seq(&[
        &der::oid(oid::COMMON_NAME),
        &der::utf8_string(common_name),
    ])])])
}

/// RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>, CaError> {
    let bits = spki_key_bits(spki_der)?;
    Ok(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, bits)
        .as_ref()
        .to_vec())
}

fn spki_key_bits(spki_der: &[u8]) -> Result<&[u8], CaError> {
    let mut outer = Reader::new(spki_der);
    let spki = outer.expect(der::SEQUENCE)?;
    outer.finish()?;
    let mut r = spki.reader();
    r.expect(der::SEQUENCE)?;
    Ok(r.expect(der::BIT_STRING)?.bit_string_bytes()?)
}

fn check_validity(not_before: i64, not_after: i64) -> Result<(), CaError> {
    if not_after <= not_before {
        return Err(CaError::Encoding(format!(
            "notAfter ({not_after}) is not after notBefore ({not_before})"
        )));
    }
    Ok(())
}

fn check_serial(serial: u64) -> Result<(), CaError> {
    if serial == 0 {
        return Err(CaError::Encoding("serial number must be positive".into()));
    }
    Ok(())
}

struct Tbs<'a> {
    serial: u64,
    issuer: &'a [u8],
    not_before: i64,
    not_after: i64,
    subject: &'a [u8],
    spki: &'a [u8],
    extensions: Vec<Vec<u8>>,
}

fn sign_certificate(key: &dyn Signer, tbs: &Tbs<'_>) -> Result<Vec<u8>, CaError> {
    check_serial(tbs.serial)?;
    check_validity(tbs.not_before, tbs.not_after)?;
    let sig_alg = key.signature_algorithm_der();
    let ext_refs: Vec<&[u8]> = tbs.extensions.iter().map(Vec::as_slice).collect();
    let version = der::constructed(der::context_constructed(0), &[&der::integer_u64(2)]);
    let extensions = der::constructed(der::context_constructed(3), &[&der::seq(&ext_refs)]);
    let tbs_der = der::seq(&[
        &version,
        &der::integer_u64(tbs.serial),
        &sig_alg,
        tbs.issuer,
        &der::seq(&[&der::time(tbs.not_before), &der::time(tbs.not_after)]),
        tbs.subject,
        tbs.spki,
        &extensions,
    ]);
    let signature = key.sign(&tbs_der)?;
    Ok(der::seq(&[
        &tbs_der,
        &sig_alg,
        &der::bit_string(&signature),
    ]))
}

fn authority_key_id(key_id: &[u8]) -> Vec<u8> {
    der::seq(&[&der::tlv(der::context_primitive(0), key_id)])
}

/// Self-signed CA: v3, subject = issuer = CN=<name>, basicConstraints CA:TRUE critical,
/// keyUsage keyCertSign+cRLSign critical, SKI, AKI keyid, nsComment, like puppetserver.
pub fn self_signed_ca(key: &dyn Signer, spec: &CaCertSpec) -> Result<Vec<u8>, CaError> {
    let name = cn_name(spec.common_name);
    let ski = key_identifier(key.spki_der())?;
    let extensions = vec![
        extension_der(
            oid::BASIC_CONSTRAINTS,
            true,
            &der::seq(&[&der::boolean(true)]),
        )?,
        extension_der(
            oid::KEY_USAGE,
            true,
            &der::named_bits(&[KU_KEY_CERT_SIGN, KU_CRL_SIGN]),
        )?,
        extension_der(oid::SUBJECT_KEY_ID, false, &der::octet_string(&ski))?,
        extension_der(oid::AUTHORITY_KEY_ID, false, &authority_key_id(&ski))?,
        extension_der(oid::NS_COMMENT, false, &der::ia5_string(NS_COMMENT))?,
    ];
    sign_certificate(
        key,
        &Tbs {
            serial: spec.serial,
            issuer: &name,
            not_before: spec.not_before,
            not_after: spec.not_after,
            subject: &name,
            spki: key.spki_der(),
            extensions,
        },
    )
}

/// The parts of the CA certificate a leaf needs: its subject bytes, key bits and key id.
struct Issuer<'a> {
    subject: &'a [u8],
    spki: &'a [u8],
    key_id: Vec<u8>,
}

fn read_issuer(ca_cert_der: &[u8]) -> Result<Issuer<'_>, CaError> {
    let parsed = parse_certificate(ca_cert_der)?;
    let key_id = match parsed
        .extensions
        .iter()
        .find(|e| e.oid == oid::SUBJECT_KEY_ID)
    {
        Some(ext) => read_octet_string(&ext.value)?,
        None => key_identifier(parsed.spki.raw)?,
    };
    Ok(Issuer {
        subject: parsed.subject.raw,
        spki: parsed.spki.raw,
        key_id,
    })
}

fn read_octet_string(value: &[u8]) -> Result<Vec<u8>, CaError> {
    let mut r = Reader::new(value);
    let t = r.expect(der::OCTET_STRING)?;
    r.finish()?;
    Ok(t.value.to_vec())
}

/// Leaf: v3, issuer = the CA cert's subject bytes, basicConstraints CA:FALSE critical,
/// keyUsage digitalSignature+keyEncipherment critical, extKeyUsage serverAuth+clientAuth
/// critical, SKI, AKI (the CA's SKI), nsComment, SAN, then `extra_extensions`.
pub fn issue_leaf(
    ca_key: &dyn Signer,
    ca_cert_der: &[u8],
    spec: &LeafSpec,
) -> Result<Vec<u8>, CaError> {
    let issuer = read_issuer(ca_cert_der)?;
    // Signing with a key that is not the certificate's would issue certs nobody can verify.
    if spki_key_bits(issuer.spki)? != spki_key_bits(ca_key.spki_der())? {
        return Err(CaError::Key(
            "the CA key does not match the CA certificate's public key".into(),
        ));
    }
    let subject_ski = key_identifier(spec.subject_spki_der)?;

    let cn_san = GeneralName::Dns(spec.common_name.to_string());
    let has_cn = spec.subject_alt_names.iter().any(|n| match n {
        GeneralName::Dns(d) => d.eq_ignore_ascii_case(spec.common_name),
        _ => false,
    });
    let mut san_parts = Vec::new();
    if !has_cn {
        san_parts.push(cn_san.to_der().unwrap_or_default());
    }
    for name in spec.subject_alt_names {
        san_parts.push(name.to_der().ok_or_else(|| {
            CaError::Encoding(format!("cannot write subject alternative name {name}"))
        })?);
    }
    let san_refs: Vec<&[u8]> = san_parts.iter().map(Vec::as_slice).collect();

    let mut extensions = vec![
        extension_der(oid::BASIC_CONSTRAINTS, true, &der::seq(&[]))?,
        extension_der(
            oid::KEY_USAGE,
            true,
            &der::named_bits(&[KU_DIGITAL_SIGNATURE, KU_KEY_ENCIPHERMENT]),
        )?,
        extension_der(
            oid::EXT_KEY_USAGE,
            true,
            &der::seq(&[&der::oid(oid::SERVER_AUTH), &der::oid(oid::CLIENT_AUTH)]),
        )?,
        extension_der(oid::SUBJECT_KEY_ID, false, &der::octet_string(&subject_ski))?,
        extension_der(
            oid::AUTHORITY_KEY_ID,
            false,
            &authority_key_id(&issuer.key_id),
        )?,
        extension_der(oid::NS_COMMENT, false, &der::ia5_string(NS_COMMENT))?,
        extension_der(oid::SUBJECT_ALT_NAME, false, &der::seq(&san_refs))?,
    ];
    let mut seen: Vec<&str> = Vec::new();
    for ext in spec.extra_extensions {
        if CA_OWNED_EXTENSIONS.contains(&ext.oid.as_str()) {
            return Err(CaError::Encoding(format!(
                "extension {} is written by the CA and cannot be copied from the request",
                ext.oid
            )));
        }
        if seen.contains(&ext.oid.as_str()) {
            return Err(CaError::Encoding(format!(
                "extension {} given twice",
                ext.oid
            )));
        }
        seen.push(&ext.oid);
        extensions.push(extension_der(&ext.oid, ext.critical, &ext.value)?);
    }

    sign_certificate(
        ca_key,
        &Tbs {
            serial: spec.serial,
            issuer: issuer.subject,
            not_before: spec.not_before,
            not_after: spec.not_after,
            subject: &cn_name(spec.common_name),
            spki: spec.subject_spki_der,
            extensions,
        },
    )
}

struct ParsedCert<'a> {
    serial: Tlv<'a>,
    issuer: Tlv<'a>,
    not_before: i64,
    not_after: i64,
    subject: Tlv<'a>,
    spki: Tlv<'a>,
    extensions: Vec<CsrExtension>,
}

fn parse_certificate(cert_der: &[u8]) -> Result<ParsedCert<'_>, CaError> {
    let mut top = Reader::new(cert_der);
    let cert = top.expect(der::SEQUENCE)?;
    top.finish()?;
    let mut cr = cert.reader();
    let tbs = cr.expect(der::SEQUENCE)?;
    cr.expect(der::SEQUENCE)?;
    cr.expect(der::BIT_STRING)?;
    cr.finish()?;

    let mut r = tbs.reader();
    r.read_optional(der::context_constructed(0))?;
    let serial = r.expect(der::INTEGER)?;
    r.expect(der::SEQUENCE)?;
    let issuer = r.expect(der::SEQUENCE)?;
    let validity = r.expect(der::SEQUENCE)?;
    let subject = r.expect(der::SEQUENCE)?;
    let spki = r.expect(der::SEQUENCE)?;
    r.read_optional(der::context_primitive(1))?;
    r.read_optional(der::context_primitive(2))?;
    let extensions = read_wrapped_extensions(&mut r, der::context_constructed(3))?;
    r.finish()?;

    let mut vr = validity.reader();
    let not_before = der::parse_time(&vr.read()?)?;
    let not_after = der::parse_time(&vr.read()?)?;
    vr.finish()?;
    Ok(ParsedCert {
        serial,
        issuer,
        not_before,
        not_after,
        subject,
        spki,
        extensions,
    })
}

/// Reads a certificate (PEM, first CERTIFICATE block, or DER).
pub fn cert_info(der_or_pem: &[u8]) -> Result<CertInfo, CaError> {
    let owned;
    let cert_der = if der_or_pem.first() == Some(&der::SEQUENCE) {
        der_or_pem
    } else {
        let text = std::str::from_utf8(der_or_pem)
            .map_err(|_| CaError::Encoding("certificate is neither DER nor PEM".into()))?;
        owned = pem::decode_all(text)?
            .into_iter()
            .find(|(label, _)| label == "CERTIFICATE")
            .map(|(_, d)| d)
            .ok_or_else(|| CaError::Encoding("no CERTIFICATE block in the PEM".into()))?;
        &owned
    };
    let parsed = parse_certificate(cert_der)?;
    let (subject_cns, _) = read_name(&parsed.subject)?;
    let (issuer_cns, _) = read_name(&parsed.issuer)?;
    let subject_alt_names = match parsed
        .extensions
        .iter()
        .find(|e| e.oid == oid::SUBJECT_ALT_NAME)
    {
        Some(ext) => parse_general_names(&ext.value)?,
        None => Vec::new(),
    };
    let subject_key_id = match parsed
        .extensions
        .iter()
        .find(|e| e.oid == oid::SUBJECT_KEY_ID)
    {
        Some(ext) => Some(read_octet_string(&ext.value)?),
        None => None,
    };
    let is_ca = match parsed
        .extensions
        .iter()
        .find(|e| e.oid == oid::BASIC_CONSTRAINTS)
    {
        Some(ext) => {
            let mut r = Reader::new(&ext.value);
            let seq = r.expect(der::SEQUENCE)?;
            let mut sr = seq.reader();
            sr.read_optional(der::BOOLEAN)?
                .is_some_and(|b| b.value.first().is_some_and(|v| *v != 0))
        }
        None => false,
    };
    let serial_value = parsed.serial.value;
    let serial = match serial_value.split_first() {
        Some((0, rest)) if !rest.is_empty() => rest.to_vec(),
        _ => serial_value.to_vec(),
    };
    Ok(CertInfo {
        common_name: subject_cns.into_iter().next(),
        serial,
        not_before: parsed.not_before,
        not_after: parsed.not_after,
        subject_alt_names,
        extensions: parsed.extensions,
        spki_der: parsed.spki.raw.to_vec(),
        subject_key_id,
        issuer_common_name: issuer_cns.into_iter().next(),
        is_ca,
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
        std::fs::write(&ca_pem, pem::encode("CERTIFICATE", &ca)).unwrap();
        std::fs::write(&leaf_pem, pem::encode("CERTIFICATE", &leaf)).unwrap();
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
            value: der::seq(&[]),
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
