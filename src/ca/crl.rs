//! Certificate revocation lists as puppetserver and OpenSSL expect them: building the CA's
//! v2 CRL, reading CRLs (ours and imported chains) back, and checking their signatures.
//!
//! Puppet agents check the whole chain with OpenSSL (`certificate_revocation = chain`), so
//! the CRL must carry what OpenSSL matches on: the issuer Name exactly as in the CA
//! certificate, an authorityKeyIdentifier equal to the CA's subjectKeyIdentifier, and a
//! cRLNumber. The CRL is `x509-cert`'s structure, filled here and signed once.

use crate::oid;
use aws_lc_rs::signature::UnparsedPublicKey;
use der::asn1::{AnyRef, BitString, OctetString, Uint};
use der::{Decode, Encode, Reader as _, Sequence, SliceReader};
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
use x509_cert::certificate::Certificate;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::CrlReason as X509CrlReason;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber};
use x509_cert::ext::Extensions;
use x509_cert::name::Name;
use x509_cert::time::Time;
use x509_cert::Version;

use super::issue::{
    cert_info, key_identifier, serial_number, signature_algorithm, signing_ca, spki_key_bits,
    strip_leading_zeros,
};
use super::signer::Signer;
use super::CaError;
use crate::domain::csr::PublicKeyKind;
use crate::x509::{self, CnStrictness};

/// PEM label of a CRL.
pub const CRL_PEM_LABEL: &str = "X509 CRL";

/// CRLReason (RFC 5280 5.3.1). Code 7 is unassigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrlReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    RemoveFromCrl,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl CrlReason {
    pub const ALL: [CrlReason; 10] = [
        CrlReason::Unspecified,
        CrlReason::KeyCompromise,
        CrlReason::CaCompromise,
        CrlReason::AffiliationChanged,
        CrlReason::Superseded,
        CrlReason::CessationOfOperation,
        CrlReason::CertificateHold,
        CrlReason::RemoveFromCrl,
        CrlReason::PrivilegeWithdrawn,
        CrlReason::AaCompromise,
    ];

    /// The ENUMERATED value RFC 5280 gives this reason.
    pub fn code(self) -> u8 {
        self.x509() as u8
    }

    pub fn from_code(code: u8) -> Option<CrlReason> {
        CrlReason::ALL.into_iter().find(|r| r.code() == code)
    }

    fn x509(self) -> X509CrlReason {
        match self {
            CrlReason::Unspecified => X509CrlReason::Unspecified,
            CrlReason::KeyCompromise => X509CrlReason::KeyCompromise,
            CrlReason::CaCompromise => X509CrlReason::CaCompromise,
            CrlReason::AffiliationChanged => X509CrlReason::AffiliationChanged,
            CrlReason::Superseded => X509CrlReason::Superseded,
            CrlReason::CessationOfOperation => X509CrlReason::CessationOfOperation,
            CrlReason::CertificateHold => X509CrlReason::CertificateHold,
            CrlReason::RemoveFromCrl => X509CrlReason::RemoveFromCRL,
            CrlReason::PrivilegeWithdrawn => X509CrlReason::PrivilegeWithdrawn,
            CrlReason::AaCompromise => X509CrlReason::AaCompromise,
        }
    }
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Big-endian unsigned magnitude, as stored (no sign padding byte).
    pub serial: Vec<u8>,
    pub revoked_at: i64,
    pub reason: Option<CrlReason>,
}

impl RevokedEntry {
    /// The serial as a number, when it fits (puppetserver's are small counters).
    pub fn serial_u64(&self) -> Option<u64> {
        super::issue::serial_u64(&self.serial)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CrlSpec<'a> {
    /// cRLNumber; must grow with every CRL the CA issues.
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub revoked: &'a [RevokedEntry],
}

fn encoding(e: impl std::fmt::Display) -> CaError {
    CaError::Encoding(e.to_string())
}

/// A v2 CRL signed by the CA, DER.
///
/// issuer = the CA certificate's subject, signature algorithm from the Signer,
/// thisUpdate/nextUpdate as [`x509::time`] writes them, revokedCertificates omitted entirely
/// when empty (RFC 5280 5.1.2.6), a reasonCode entry extension for entries that have a
/// reason, and crlExtensions authorityKeyIdentifier (the CA's SKI, or the key identifier of
/// its key) and cRLNumber.
pub fn build_crl(
    ca_key: &dyn Signer,
    ca_cert_der: &[u8],
    spec: &CrlSpec,
) -> Result<Vec<u8>, CaError> {
    let (ca, ca_spki) = signing_ca(ca_key, ca_cert_der)?;
    if spec.next_update <= spec.this_update {
        return Err(CaError::Encoding(format!(
            "CRL nextUpdate ({}) is not after thisUpdate ({})",
            spec.next_update, spec.this_update
        )));
    }
    let key_id = match cert_info(ca_cert_der)?.subject_key_id {
        Some(ski) => ski,
        None => key_identifier(&ca_spki)?,
    };
    let signature = signature_algorithm(ca_key)?;

    let mut revoked = Vec::with_capacity(spec.revoked.len());
    for (i, e) in spec.revoked.iter().enumerate() {
        if strip_leading_zeros(&e.serial).is_empty() {
            return Err(CaError::Encoding(format!(
                "revoked entry {i} has an empty serial number"
            )));
        }
        let crl_entry_extensions = match e.reason {
            Some(reason) => Some(vec![x509::extension(
                oid::CRL_REASON,
                false,
                reason.x509().to_der().map_err(encoding)?,
            )
            .map_err(encoding)?]),
            None => None,
        };
        revoked.push(RevokedCert {
            serial_number: serial_number(&e.serial)?,
            revocation_date: x509::time(e.revoked_at).map_err(encoding)?,
            crl_entry_extensions,
        });
    }
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_id).map_err(encoding)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let number = CrlNumber(Uint::new(&spec.number.to_be_bytes()).map_err(encoding)?);
    let crl_extensions = vec![
        x509::extension(
            oid::AUTHORITY_KEY_ID,
            false,
            aki.to_der().map_err(encoding)?,
        )
        .map_err(encoding)?,
        x509::extension(oid::CRL_NUMBER, false, number.to_der().map_err(encoding)?)
            .map_err(encoding)?,
    ];
    let tbs_cert_list = TbsCertList {
        version: Version::V2,
        signature: signature.clone(),
        issuer: ca.tbs_certificate.subject,
        this_update: x509::time(spec.this_update).map_err(encoding)?,
        next_update: Some(x509::time(spec.next_update).map_err(encoding)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(crl_extensions),
    };
    let tbs = tbs_cert_list.to_der().map_err(encoding)?;
    let sig = ca_key.sign(&tbs)?;
    CertificateList {
        tbs_cert_list,
        signature_algorithm: signature,
        signature: BitString::from_bytes(&sig).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)
}

/// What the service needs from a CRL.
#[derive(Debug, Clone)]
pub struct CrlInfo {
    pub issuer_common_name: Option<String>,
    /// The issuer Name, DER, as in the CRL.
    pub issuer_der: Vec<u8>,
    /// cRLNumber, when present and no larger than a u64.
    pub number: Option<u64>,
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub revoked: Vec<RevokedEntry>,
    /// The keyIdentifier of the authorityKeyIdentifier extension, if any.
    pub authority_key_id: Option<Vec<u8>>,
}

impl CrlInfo {
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        let wanted = strip_leading_zeros(serial);
        self.revoked
            .iter()
            .any(|e| strip_leading_zeros(&e.serial) == wanted)
    }
}

/// Any X.509 SIGNED{} object with its to-be-signed part kept as received.
#[derive(Sequence)]
struct SignedRef<'a> {
    tbs: AnyRef<'a>,
    algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// TBSCertList as CAs write it: unlike `x509-cert`'s, a v1 CRL (no version) is accepted,
/// because imported chains (an `openssl ca -gencrl` without extensions) hold them.
#[derive(Sequence)]
struct TbsCrlDer {
    #[asn1(optional = "true")]
    version: Option<Version>,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    this_update: Time,
    #[asn1(optional = "true")]
    next_update: Option<Time>,
    #[asn1(optional = "true")]
    revoked: Option<Vec<RevokedCert>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Extensions>,
}

#[derive(Sequence)]
struct CrlDer {
    tbs: TbsCrlDer,
    algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

fn parse_crl(crl_der: &[u8]) -> Result<CrlDer, CaError> {
    let crl = CrlDer::from_der(crl_der).map_err(|e| CaError::Encoding(format!("CRL: {e}")))?;
    if let Some(v) = crl.tbs.version {
        if v != Version::V2 {
            return Err(CaError::Encoding(format!(
                "CRL version {} is not 1 or 2",
                v as u8 + 1
            )));
        }
    }
    Ok(crl)
}

/// The CRL's thisUpdate, without decoding its revoked entries (every agent fetches the
/// CRL; this is what Last-Modified needs).
pub fn crl_this_update(der_or_pem: &[u8]) -> Result<i64, CaError> {
    let der_bytes = first_crl_der(der_or_pem)?;
    let read = || -> der::Result<Time> {
        let outer = SignedRef::from_der(&der_bytes)?;
        let mut r = SliceReader::new(outer.tbs.value())?;
        let _version: Option<Version> = r.decode()?;
        let _signature: AlgorithmIdentifierRef<'_> = r.decode()?;
        let _issuer: Name = r.decode()?;
        r.decode()
    };
    read()
        .map(|t| x509::unix(&t))
        .map_err(|e| CaError::Encoding(format!("CRL: {e}")))
}

/// Reads a CRL (PEM — the first X509 CRL block — or DER), strict DER: v1 CRLs, unknown
/// extensions and unknown reason codes are accepted, for served CRL chains and imported
/// `ca_crl.pem` files. Does not check the signature (see [`verify_crl`]).
pub fn crl_info(der_or_pem: &[u8]) -> Result<CrlInfo, CaError> {
    let der_bytes = first_crl_der(der_or_pem)?;
    let crl = parse_crl(&der_bytes)?;
    let tbs = crl.tbs;
    let (issuer_cns, _) =
        x509::common_names(&tbs.issuer, CnStrictness::Signed).map_err(encoding)?;
    let mut number = None;
    let mut authority_key_id = None;
    for ext in x509::extensions(tbs.extensions.as_ref()).map_err(encoding)? {
        match ext.oid.as_str() {
            oid::CRL_NUMBER => {
                let n = CrlNumber::from_der(&ext.value)
                    .map_err(|e| CaError::Encoding(format!("cRLNumber: {e}")))?;
                number = super::issue::serial_u64(n.0.as_bytes());
            }
            oid::AUTHORITY_KEY_ID => authority_key_id = read_aki_key_id(&ext.value)?,
            _ => {}
        }
    }
    let mut revoked = Vec::with_capacity(tbs.revoked.as_ref().map_or(0, Vec::len));
    for entry in tbs.revoked.iter().flatten() {
        let mut reason = None;
        for ext in x509::extensions(entry.crl_entry_extensions.as_ref()).map_err(encoding)? {
            if ext.oid == oid::CRL_REASON {
                reason = X509CrlReason::from_der(&ext.value)
                    .ok()
                    .and_then(|r| CrlReason::from_code(r as u8));
            }
        }
        revoked.push(RevokedEntry {
            serial: strip_leading_zeros(entry.serial_number.as_bytes()).to_vec(),
            revoked_at: x509::unix(&entry.revocation_date),
            reason,
        });
    }
    Ok(CrlInfo {
        issuer_common_name: issuer_cns.into_iter().next(),
        issuer_der: tbs.issuer.to_der().map_err(encoding)?,
        number,
        this_update: x509::unix(&tbs.this_update),
        next_update: tbs.next_update.as_ref().map(x509::unix),
        revoked,
        authority_key_id,
    })
}

fn read_aki_key_id(value: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
    let aki = AuthorityKeyIdentifier::from_der(value)
        .map_err(|e| CaError::Encoding(format!("authorityKeyIdentifier: {e}")))?;
    Ok(aki.key_identifier.map(|k| k.as_bytes().to_vec()))
}

/// Every CRL in a PEM text (a CRL chain such as `ca_crl.pem`), DER, in order.
pub fn decode_crl_chain(pem_text: &str) -> Result<Vec<Vec<u8>>, CaError> {
    let crls: Vec<Vec<u8>> = x509::pem_blocks(pem_text)
        .map_err(encoding)?
        .into_iter()
        .filter(|(label, _)| label == CRL_PEM_LABEL)
        .map(|(_, d)| d)
        .collect();
    if crls.is_empty() {
        return Err(CaError::Encoding("no X509 CRL block in the PEM".into()));
    }
    Ok(crls)
}

/// A CRL chain as PEM, in the given order (the signing CA's first, as puppetserver serves it).
pub fn encode_crl_chain(chain: &[Vec<u8>]) -> String {
    chain
        .iter()
        .map(|crl| x509::pem_encode(CRL_PEM_LABEL, crl))
        .collect()
}

fn first_crl_der(der_or_pem: &[u8]) -> Result<Vec<u8>, CaError> {
    x509::der_or_pem(der_or_pem, CRL_PEM_LABEL, "CRL").map_err(encoding)
}

/// Checks that the CRL (DER, or PEM: its first CRL) is signed by the key of `issuer_cert_der`
/// (RSA PKCS#1 with SHA-256, -384 or -512, or ECDSA on P-256/P-384), names that
/// certificate's subject as its issuer, and, when both carry key identifiers, points at that
/// certificate's key. Used to check an imported CRL chain.
pub fn verify_crl(crl_der: &[u8], issuer_cert_der: &[u8]) -> Result<(), CaError> {
    let crl_bytes = first_crl_der(crl_der)?;
    let crl = parse_crl(&crl_bytes)?;
    if crl.tbs.signature != crl.algorithm {
        return Err(CaError::Encoding(
            "the CRL's two signature algorithm fields differ".into(),
        ));
    }
    let issuer = parse_cert(issuer_cert_der)?;
    let issuer_subject = &issuer.tbs_certificate.subject;
    if !names_match(&crl.tbs.issuer, issuer_subject) {
        return Err(CaError::Key(format!(
            "the CRL is issued by {}, not by {}",
            name_for_messages(&crl.tbs.issuer),
            name_for_messages(issuer_subject)
        )));
    }
    let issuer_info = cert_info(issuer_cert_der)?;
    let crl_aki = x509::extensions(crl.tbs.extensions.as_ref())
        .map_err(encoding)?
        .iter()
        .find(|e| e.oid == oid::AUTHORITY_KEY_ID)
        .map(|e| read_aki_key_id(&e.value))
        .transpose()?
        .flatten();
    if let (Some(aki), Some(ski)) = (crl_aki, issuer_info.subject_key_id) {
        if aki != ski {
            return Err(CaError::Key(format!(
                "the CRL's authority key identifier {} is not the subject key identifier {} of {}",
                x509::hex(&aki),
                x509::hex(&ski),
                name_for_messages(issuer_subject)
            )));
        }
    }
    verify_signed(&crl_bytes, &issuer_info.spki_der).map_err(|e| match e {
        CaError::Key(m) => CaError::Key(format!("CRL: {m}")),
        other => other,
    })
}

fn parse_cert(cert_der: &[u8]) -> Result<Certificate, CaError> {
    Certificate::from_der(cert_der).map_err(|e| CaError::Encoding(format!("certificate: {e}")))
}

/// Checks that `cert_der` names `issuer_cert_der`'s subject as its issuer and carries a
/// signature made by that certificate's key. No validity or extension checks.
pub fn verify_certificate(cert_der: &[u8], issuer_cert_der: &[u8]) -> Result<(), CaError> {
    let cert = parse_cert(cert_der)?;
    if cert.tbs_certificate.signature != cert.signature_algorithm {
        return Err(CaError::Encoding(
            "the certificate's two signature algorithm fields differ".into(),
        ));
    }
    let issuer = parse_cert(issuer_cert_der)?;
    let issuer_subject = &issuer.tbs_certificate.subject;
    if !names_match(&cert.tbs_certificate.issuer, issuer_subject) {
        return Err(CaError::Key(format!(
            "the certificate is issued by {}, not by {}",
            name_for_messages(&cert.tbs_certificate.issuer),
            name_for_messages(issuer_subject)
        )));
    }
    let issuer_spki = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(encoding)?;
    verify_signed(cert_der, &issuer_spki)
}

/// Verifies any X.509 SIGNED{} object (Certificate, CertificateList: `SEQUENCE { tbs,
/// signatureAlgorithm, signature BIT STRING }`) against a SubjectPublicKeyInfo, over the tbs
/// bytes exactly as received.
pub fn verify_signed(signed_der: &[u8], issuer_spki_der: &[u8]) -> Result<(), CaError> {
    let signed = SignedRef::from_der(signed_der)
        .map_err(|e| CaError::Encoding(format!("signed object: {e}")))?;
    let tbs = signed.tbs.to_der().map_err(encoding)?;
    let signature = signed
        .signature
        .as_bytes()
        .ok_or_else(|| CaError::Encoding("signature BIT STRING has unused bits".into()))?;
    let key = PublicKeyKind::from_spki(issuer_spki_der).map_err(encoding)?;
    let (verify_alg, key_bytes) = crate::domain::csr::verifier_for(
        &key,
        &x509::dotted(&signed.algorithm.oid).map_err(encoding)?,
        signed.algorithm.parameters.as_ref(),
    )
    .map_err(|what| CaError::Key(format!("unsupported signature: {what}")))?;
    UnparsedPublicKey::new(verify_alg, key_bytes)
        .verify(&tbs, signature)
        .map_err(|_| {
            CaError::Key("the signature does not verify under the issuer's public key".into())
        })
}

/// Do two SubjectPublicKeyInfos hold the same key? Compares the key bits, so the same key
/// written with and without optional algorithm parameters still matches.
pub fn same_public_key(a_spki_der: &[u8], b_spki_der: &[u8]) -> Result<bool, CaError> {
    Ok(spki_key_bits(a_spki_der)? == spki_key_bits(b_spki_der)?)
}

/// Name equality as X.509 path validation needs it: the same encoding, or the same
/// attributes in the same order with string values equal after RFC 5280 7.1-style folding
/// (case and runs of spaces), whatever string type each side used.
fn names_match(a: &Name, b: &Name) -> bool {
    a == b || folded_name(a) == folded_name(b)
}

type FoldedName = Vec<Vec<(String, String)>>;

fn folded_name(name: &Name) -> FoldedName {
    name.0
        .iter()
        .map(|rdn| {
            let mut folded: Vec<(String, String)> = rdn
                .0
                .iter()
                .map(|atv| {
                    let text = if x509::is_string_tag(der::Tagged::tag(&atv.value)) {
                        x509::string_lossy(&atv.value)
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                            .to_lowercase()
                    } else {
                        format!("#{}", x509::hex(atv.value.value()))
                    };
                    (atv.oid.to_string(), text)
                })
                .collect();
            folded.sort();
            folded
        })
        .collect()
}

fn name_for_messages(name: &Name) -> String {
    match x509::common_names(name, CnStrictness::Signed) {
        Ok((cns, _)) if !cns.is_empty() => format!("CN={}", cns.join(",CN=")),
        _ => "an unreadable name".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::issue::{issue_leaf, self_signed_ca, CaCertSpec, LeafSpec};
    use crate::ca::rawder;
    use crate::ca::signer::{KeyAlgorithm, SoftwareKey};
    use crate::ca::testutil::{openssl, TempDir};
    use std::process::Command;

    const YEAR: i64 = 365 * 86_400;
    const NOW: i64 = 1_714_564_800; // 2024-05-01T12:00:00Z

    fn now() -> i64 {
        crate::time::now()
    }

    struct TestCa {
        key: SoftwareKey,
        cert: Vec<u8>,
    }

    fn test_ca(alg: KeyAlgorithm, name: &str) -> TestCa {
        let key = SoftwareKey::generate(alg).unwrap();
        let now = now();
        let cert = self_signed_ca(
            &key,
            &CaCertSpec {
                common_name: name,
                serial: 1,
                not_before: now - 86_400,
                not_after: now + 10 * YEAR,
            },
        )
        .unwrap();
        TestCa { key, cert }
    }

    fn leaf(ca: &TestCa, name: &str, serial: u64) -> Vec<u8> {
        let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let now = now();
        issue_leaf(
            &ca.key,
            &ca.cert,
            &LeafSpec {
                common_name: name,
                subject_spki_der: key.spki_der(),
                serial,
                not_before: now - 86_400,
                not_after: now + 5 * YEAR,
                subject_alt_names: &[],
                extra_extensions: &[],
            },
        )
        .unwrap()
    }

    /// `openssl verify` output and success, without panicking on failure.
    fn openssl_verify(dir: &TempDir, ca: &str, crl: &str, cert: &str) -> (bool, String) {
        let out = Command::new("openssl")
            .args(["verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, cert])
            .current_dir(&dir.path)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn revoke_one_and_verify(alg: KeyAlgorithm) {
        let dir = TempDir::new(&format!("crl-{alg}"));
        let ca = test_ca(alg, "Puppet CA: puppet.example.com");
        let good = leaf(&ca, "good.example.com", 2);
        let bad = leaf(&ca, "bad.example.com", 0x83); // high bit: serial needs a pad byte
        let now = now();
        let revoked = [RevokedEntry {
            serial: vec![0x83],
            revoked_at: now - 60,
            reason: Some(CrlReason::KeyCompromise),
        }];
        let crl = build_crl(
            &ca.key,
            &ca.cert,
            &CrlSpec {
                number: 7,
                this_update: now - 60,
                next_update: now + 5 * YEAR,
                revoked: &revoked,
            },
        )
        .unwrap();
        std::fs::write(
            dir.file("ca.pem"),
            x509::pem_encode("CERTIFICATE", &ca.cert),
        )
        .unwrap();
        std::fs::write(dir.file("good.pem"), x509::pem_encode("CERTIFICATE", &good)).unwrap();
        std::fs::write(dir.file("bad.pem"), x509::pem_encode("CERTIFICATE", &bad)).unwrap();
        std::fs::write(
            dir.file("crl.pem"),
            encode_crl_chain(std::slice::from_ref(&crl)),
        )
        .unwrap();

        let (ok, out) = openssl_verify(&dir, "ca.pem", "crl.pem", "good.pem");
        assert!(ok && out.contains("OK"), "{out}");
        let (ok, out) = openssl_verify(&dir, "ca.pem", "crl.pem", "bad.pem");
        assert!(!ok && out.contains("certificate revoked"), "{out}");

        let text = openssl(&["crl", "-in", &dir.file("crl.pem"), "-noout", "-text"]);
        for needle in [
            "Version 2 (0x1)",
            "Issuer: CN = Puppet CA: puppet.example.com",
            "X509v3 CRL Number:",
            "7",
            "X509v3 Authority Key Identifier:",
            "Serial Number: 83",
            "X509v3 CRL Reason Code:",
            "Key Compromise",
        ] {
            assert!(text.contains(needle), "missing {needle:?}:\n{text}");
        }

        let info = crl_info(&crl).unwrap();
        assert_eq!(
            info.issuer_common_name.as_deref(),
            Some("Puppet CA: puppet.example.com")
        );
        assert_eq!(info.number, Some(7));
        assert_eq!(info.this_update, now - 60);
        assert_eq!(info.next_update, Some(now + 5 * YEAR));
        assert_eq!(info.revoked, revoked.to_vec());
        assert!(info.is_revoked(&[0x83]));
        assert!(!info.is_revoked(&[0x02]));
        let ca_info = cert_info(&ca.cert).unwrap();
        assert_eq!(info.authority_key_id, ca_info.subject_key_id);
        assert_eq!(
            info.issuer_der,
            parse_cert(&ca.cert)
                .unwrap()
                .tbs_certificate
                .subject
                .to_der()
                .unwrap()
        );
        // PEM input reads the same.
        let from_pem = crl_info(std::fs::read(dir.file("crl.pem")).unwrap().as_slice()).unwrap();
        assert_eq!(from_pem.revoked, info.revoked);

        verify_crl(&crl, &ca.cert).unwrap();
        let other = test_ca(alg, "Puppet CA: puppet.example.com");
        assert!(matches!(
            verify_crl(&crl, &other.cert),
            Err(CaError::Key(_))
        ));
        let other_name = test_ca(alg, "Another CA");
        assert!(verify_crl(&crl, &other_name.cert).is_err());
        // Flip a byte inside the tbs (in the nextUpdate time digits: still parses).
        let mut tampered = crl.clone();
        let next = rawder::time(now + 5 * YEAR);
        let at = crl
            .windows(next.len())
            .position(|w| w == next.as_slice())
            .unwrap()
            + next.len()
            - 2;
        tampered[at] = if tampered[at] == b'1' { b'2' } else { b'1' };
        assert!(crl_info(&tampered).is_ok());
        assert!(matches!(
            verify_crl(&tampered, &ca.cert),
            Err(CaError::Key(_))
        ));

        verify_certificate(&good, &ca.cert).unwrap();
        assert!(verify_certificate(&good, &other.cert).is_err());
    }

    #[test]
    fn ec_p256_crl_revokes_for_openssl() {
        revoke_one_and_verify(KeyAlgorithm::EcP256);
    }

    #[test]
    fn rsa_2048_crl_revokes_for_openssl() {
        revoke_one_and_verify(KeyAlgorithm::Rsa2048);
    }

    #[test]
    fn empty_crl_omits_revoked_certificates_and_verifies() {
        let dir = TempDir::new("crl-empty");
        let ca = test_ca(KeyAlgorithm::EcP384, "Puppet CA: empty");
        let good = leaf(&ca, "good", 2);
        let now = now();
        let crl = build_crl(
            &ca.key,
            &ca.cert,
            &CrlSpec {
                number: 1,
                this_update: now,
                next_update: now + 5 * YEAR,
                revoked: &[],
            },
        )
        .unwrap();
        // tbs: version, algorithm, issuer, thisUpdate, nextUpdate, then straight to [0].
        let outer = der::asn1::Any::from_der(&crl).unwrap();
        let first: der::asn1::Any = SliceReader::new(outer.value()).unwrap().decode().unwrap();
        let tags: Vec<u8> = {
            let mut r = SliceReader::new(first.value()).unwrap();
            let mut tags = Vec::new();
            while !r.is_finished() {
                let a: der::asn1::Any = r.decode().unwrap();
                tags.push(u8::from(der::Tagged::tag(&a)));
            }
            tags
        };
        assert_eq!(
            tags,
            vec![
                rawder::INTEGER,
                rawder::SEQUENCE,
                rawder::SEQUENCE,
                rawder::UTC_TIME,
                rawder::UTC_TIME,
                0xa0
            ]
        );
        std::fs::write(
            dir.file("ca.pem"),
            x509::pem_encode("CERTIFICATE", &ca.cert),
        )
        .unwrap();
        std::fs::write(dir.file("good.pem"), x509::pem_encode("CERTIFICATE", &good)).unwrap();
        std::fs::write(
            dir.file("crl.pem"),
            encode_crl_chain(std::slice::from_ref(&crl)),
        )
        .unwrap();
        let (ok, out) = openssl_verify(&dir, "ca.pem", "crl.pem", "good.pem");
        assert!(ok, "{out}");
        let text = openssl(&["crl", "-in", &dir.file("crl.pem"), "-noout", "-text"]);
        assert!(text.contains("No Revoked Certificates."), "{text}");
        let info = crl_info(&crl).unwrap();
        assert!(info.revoked.is_empty());
        assert_eq!(info.number, Some(1));
        verify_crl(&crl, &ca.cert).unwrap();
    }

    #[test]
    fn every_reason_and_far_future_times_round_trip() {
        let ca = test_ca(KeyAlgorithm::EcP256, "ca");
        let revoked: Vec<RevokedEntry> = CrlReason::ALL
            .iter()
            .enumerate()
            .map(|(i, r)| RevokedEntry {
                serial: vec![0, 0, i as u8 + 1],
                revoked_at: NOW + i as i64,
                reason: Some(*r),
            })
            .chain([RevokedEntry {
                serial: vec![0xff; 20],
                revoked_at: NOW,
                reason: None,
            }])
            .collect();
        let crl = build_crl(
            &ca.key,
            &ca.cert,
            &CrlSpec {
                number: u64::MAX,
                this_update: NOW,
                // Past 2050: GeneralizedTime.
                next_update: NOW + 40 * YEAR,
                revoked: &revoked,
            },
        )
        .unwrap();
        let info = crl_info(&crl).unwrap();
        assert_eq!(info.number, Some(u64::MAX));
        assert_eq!(info.next_update, Some(NOW + 40 * YEAR));
        let mut expected = revoked.clone();
        for e in &mut expected {
            e.serial = strip_leading_zeros(&e.serial).to_vec();
        }
        assert_eq!(info.revoked, expected);
        assert_eq!(info.revoked[3].serial_u64(), Some(4));
        assert_eq!(info.revoked[10].serial_u64(), None);
        for r in CrlReason::ALL {
            assert_eq!(CrlReason::from_code(r.code()), Some(r));
            let ext = rawder::seq(&[
                &rawder::oid(oid::CRL_REASON),
                &rawder::octet_string(&rawder::tlv(rawder::ENUMERATED, &[r.code()])),
            ]);
            let ours = x509::extension(oid::CRL_REASON, false, r.x509().to_der().unwrap()).unwrap();
            assert_eq!(ours.to_der().unwrap(), ext);
        }
        assert_eq!(CrlReason::from_code(7), None);
        verify_crl(&crl, &ca.cert).unwrap();
    }

    #[test]
    fn refuses_bad_input() {
        let ca = test_ca(KeyAlgorithm::EcP256, "ca");
        let other = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let spec = CrlSpec {
            number: 1,
            this_update: NOW,
            next_update: NOW + YEAR,
            revoked: &[],
        };
        assert!(matches!(
            build_crl(&other, &ca.cert, &spec),
            Err(CaError::Key(_))
        ));
        assert!(build_crl(
            &ca.key,
            &ca.cert,
            &CrlSpec {
                next_update: NOW,
                ..spec
            }
        )
        .is_err());
        let empty_serial = [RevokedEntry {
            serial: vec![],
            revoked_at: NOW,
            reason: None,
        }];
        assert!(build_crl(
            &ca.key,
            &ca.cert,
            &CrlSpec {
                revoked: &empty_serial,
                ..spec
            }
        )
        .is_err());
        assert!(crl_info(b"garbage").is_err());
        assert!(crl_info(&[0x30, 0x00]).is_err());
        let crl = build_crl(&ca.key, &ca.cert, &spec).unwrap();
        assert!(crl_info(&crl[..crl.len() - 1]).is_err());
        assert!(verify_crl(&crl[..crl.len() - 1], &ca.cert).is_err());
    }

    #[test]
    fn reads_a_crl_openssl_made() {
        // An independent encoder: openssl ca -gencrl with a revoked entry.
        let dir = TempDir::new("crl-openssl");
        let p = |f: &str| dir.file(f);
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=Other CA",
            "-days",
            "30",
            "-keyout",
            &p("key.pem"),
            "-out",
            &p("ca.pem"),
        ]);
        std::fs::write(
            p("index.txt"),
            "R\t300101000000Z\t240501120000Z,keyCompromise\t0A\tunknown\t/CN=x\n",
        )
        .unwrap();
        std::fs::write(p("crlnumber"), "1F\n").unwrap();
        std::fs::write(
            p("ca.cnf"),
            format!(
                "[ca]\ndefault_ca=d\n[d]\ndatabase={}\ncrlnumber={}\ndefault_md=sha256\ndefault_crl_days=30\ncrl_extensions=ext\n[ext]\nauthorityKeyIdentifier=keyid\n",
                p("index.txt"),
                p("crlnumber")
            ),
        )
        .unwrap();
        openssl(&[
            "ca",
            "-gencrl",
            "-config",
            &p("ca.cnf"),
            "-keyfile",
            &p("key.pem"),
            "-cert",
            &p("ca.pem"),
            "-out",
            &p("crl.pem"),
        ]);
        let pem_bytes = std::fs::read(p("crl.pem")).unwrap();
        let info = crl_info(&pem_bytes).unwrap();
        assert_eq!(info.issuer_common_name.as_deref(), Some("Other CA"));
        assert_eq!(info.number, Some(0x1f));
        assert_eq!(
            info.revoked,
            vec![RevokedEntry {
                serial: vec![0x0a],
                revoked_at: NOW,
                reason: Some(CrlReason::KeyCompromise),
            }]
        );
        let ca_der = x509::pem_blocks(&std::fs::read_to_string(p("ca.pem")).unwrap())
            .unwrap()
            .remove(0)
            .1;
        assert_eq!(
            info.authority_key_id,
            cert_info(&ca_der).unwrap().subject_key_id
        );
        verify_crl(&pem_bytes, &ca_der).unwrap();
    }

    #[test]
    fn twenty_thousand_entries_are_fast() {
        let ca = test_ca(KeyAlgorithm::Rsa2048, "Puppet CA: big");
        let revoked: Vec<RevokedEntry> = (1..=20_000u64)
            .map(|s| RevokedEntry {
                serial: s.to_be_bytes().to_vec(),
                revoked_at: NOW + s as i64,
                reason: Some(CrlReason::KeyCompromise),
            })
            .collect();
        let spec = CrlSpec {
            number: 2,
            this_update: NOW,
            next_update: NOW + 5 * YEAR,
            revoked: &revoked,
        };
        let started = std::time::Instant::now();
        let crl = build_crl(&ca.key, &ca.cert, &spec).unwrap();
        let elapsed = started.elapsed();
        println!(
            "build_crl: {} entries, {} bytes in {elapsed:?}",
            revoked.len(),
            crl.len()
        );
        // Generous even for an unoptimised build on a busy machine; a quadratic encoder
        // would take minutes here.
        assert!(elapsed.as_secs() < 5, "build_crl took {elapsed:?}");
        let started = std::time::Instant::now();
        let info = crl_info(&crl).unwrap();
        println!(
            "crl_info: {} entries in {:?}",
            info.revoked.len(),
            started.elapsed()
        );
        assert_eq!(info.revoked.len(), 20_000);
        assert_eq!(info.revoked[19_999].serial_u64(), Some(20_000));
        verify_crl(&crl, &ca.cert).unwrap();
    }
}
