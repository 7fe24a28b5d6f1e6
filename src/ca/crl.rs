//! Certificate revocation lists as puppetserver and OpenSSL expect them: building the CA's
//! v2 CRL, reading CRLs (ours and imported chains) back, and checking their signatures.
//!
//! Puppet agents check the whole chain with OpenSSL (`certificate_revocation = chain`), so
//! the CRL must carry what OpenSSL matches on: the issuer Name exactly as in the CA
//! certificate, an authorityKeyIdentifier equal to the CA's subjectKeyIdentifier, and a
//! cRLNumber. A CA revokes many certificates over its life, so the encoder writes every
//! entry straight into one buffer and signs once.

use crate::oid;
use aws_lc_rs::signature::UnparsedPublicKey;

use super::issue::{cert_info, key_identifier};
use super::signer::Signer;
use super::CaError;
use crate::der::{self, Reader, Tlv};
use crate::domain::csr::{read_extensions, read_name, read_wrapped_extensions, PublicKeyKind};
use crate::pem;

/// PEM label of a CRL.
pub const CRL_PEM_LABEL: &str = "X509 CRL";

const ENUMERATED: u8 = 0x0a;

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
        match self {
            CrlReason::Unspecified => 0,
            CrlReason::KeyCompromise => 1,
            CrlReason::CaCompromise => 2,
            CrlReason::AffiliationChanged => 3,
            CrlReason::Superseded => 4,
            CrlReason::CessationOfOperation => 5,
            CrlReason::CertificateHold => 6,
            CrlReason::RemoveFromCrl => 8,
            CrlReason::PrivilegeWithdrawn => 9,
            CrlReason::AaCompromise => 10,
        }
    }

    pub fn from_code(code: u8) -> Option<CrlReason> {
        CrlReason::ALL.into_iter().find(|r| r.code() == code)
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
        let digits = strip_leading_zeros(&self.serial);
        if digits.len() > 8 {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        )
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

/// A v2 CRL signed by the CA, DER.
///
/// issuer = the CA certificate's subject bytes, signature algorithm from the Signer,
/// thisUpdate/nextUpdate as [`der::time`] writes them, revokedCertificates omitted entirely
/// when empty (RFC 5280 5.1.2.6), a reasonCode entry extension for entries that have a
/// reason, and crlExtensions authorityKeyIdentifier (the CA's SKI, or the key identifier of
/// its key) and cRLNumber.
pub fn build_crl(
    ca_key: &dyn Signer,
    ca_cert_der: &[u8],
    spec: &CrlSpec,
) -> Result<Vec<u8>, CaError> {
    let ca = parse_cert(ca_cert_der)?;
    // A CRL signed by another key would be refused by every agent: fail here instead.
    if spki_key_bits(ca.spki.raw)? != spki_key_bits(ca_key.spki_der())? {
        return Err(CaError::Key(
            "the CA key does not match the CA certificate's public key".into(),
        ));
    }
    if spec.next_update <= spec.this_update {
        return Err(CaError::Encoding(format!(
            "CRL nextUpdate ({}) is not after thisUpdate ({})",
            spec.next_update, spec.this_update
        )));
    }
    let key_id = match cert_info(ca_cert_der)?.subject_key_id {
        Some(ski) => ski,
        None => key_identifier(ca.spki.raw)?,
    };
    let sig_alg = ca_key.signature_algorithm_der();

    // All entries go into one buffer; `entry` is reused so the loop allocates nothing
    // beyond the time encoding.
    let mut revoked = Vec::with_capacity(spec.revoked.len().saturating_mul(40));
    let mut entry = Vec::with_capacity(64);
    for (i, e) in spec.revoked.iter().enumerate() {
        if e.serial.is_empty() {
            return Err(CaError::Encoding(format!(
                "revoked entry {i} has an empty serial number"
            )));
        }
        entry.clear();
        push_integer_unsigned(&mut entry, &e.serial);
        entry.extend_from_slice(&der::time(e.revoked_at));
        if let Some(reason) = e.reason {
            entry.extend_from_slice(&reason_code_extensions(reason));
        }
        push_tlv(&mut revoked, der::SEQUENCE, &entry);
    }

    let crl_extensions = der::constructed(
        der::context_constructed(0),
        &[&der::seq(&[
            &der::seq(&[
                &der::oid(oid::AUTHORITY_KEY_ID),
                &der::octet_string(&der::seq(&[&der::tlv(der::context_primitive(0), &key_id)])),
            ]),
            &der::seq(&[
                &der::oid(oid::CRL_NUMBER),
                &der::octet_string(&der::integer_u64(spec.number)),
            ]),
        ])],
    );

    let mut tbs_body = Vec::with_capacity(revoked.len() + 512);
    tbs_body.extend_from_slice(&der::integer_u64(1)); // v2
    tbs_body.extend_from_slice(&sig_alg);
    tbs_body.extend_from_slice(ca.subject.raw);
    tbs_body.extend_from_slice(&der::time(spec.this_update));
    tbs_body.extend_from_slice(&der::time(spec.next_update));
    if !spec.revoked.is_empty() {
        push_tlv(&mut tbs_body, der::SEQUENCE, &revoked);
    }
    drop(revoked);
    tbs_body.extend_from_slice(&crl_extensions);
    let mut tbs = Vec::with_capacity(tbs_body.len() + 8);
    push_tlv(&mut tbs, der::SEQUENCE, &tbs_body);
    drop(tbs_body);

    let signature = der::bit_string(&ca_key.sign(&tbs)?);
    let mut out = Vec::with_capacity(tbs.len() + sig_alg.len() + signature.len() + 8);
    push_header(
        &mut out,
        der::SEQUENCE,
        tbs.len() + sig_alg.len() + signature.len(),
    );
    out.extend_from_slice(&tbs);
    out.extend_from_slice(&sig_alg);
    out.extend_from_slice(&signature);
    Ok(out)
}

/// `crlEntryExtensions` holding only reasonCode: fixed bytes per reason.
fn reason_code_extensions(reason: CrlReason) -> [u8; 14] {
    const EXTENSIONS: [u8; 2] = [0x30, 0x0c];
    const EXTENSION: [u8; 2] = [0x30, 0x0a];
    const OID_REASON: [u8; 5] = [0x06, 0x03, 0x55, 0x1d, 0x15]; // 2.5.29.21
    const EXTN_VALUE: [u8; 2] = [0x04, 0x03];
    let [a, b] = EXTENSIONS;
    let [c, d] = EXTENSION;
    let [e, f, g, h, i] = OID_REASON;
    let [j, k] = EXTN_VALUE;
    [
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        h,
        i,
        j,
        k,
        ENUMERATED,
        0x01,
        reason.code(),
    ]
}

fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        // Fits in 7 bits.
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let digits = strip_leading_zeros(&bytes);
    // At most size_of::<usize>() digits, so the count fits in 7 bits.
    out.push(0x80 | digits.len() as u8);
    out.extend_from_slice(digits);
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    push_header(out, tag, value.len());
    out.extend_from_slice(value);
}

/// INTEGER from a big-endian magnitude, minimal and positive, as [`der::integer_unsigned`].
fn push_integer_unsigned(out: &mut Vec<u8>, magnitude: &[u8]) {
    let digits = strip_leading_zeros(magnitude);
    // Zero is one 0x00 byte; a set high bit needs a 0x00 in front to stay positive.
    let pad = !matches!(digits.first(), Some(b) if b & 0x80 == 0);
    push_header(out, der::INTEGER, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// What the service needs from a CRL.
#[derive(Debug, Clone)]
pub struct CrlInfo {
    pub issuer_common_name: Option<String>,
    /// The issuer Name TLV, as in the CRL.
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

/// Reads a CRL leniently (PEM — the first X509 CRL block — or DER): v1 CRLs, unknown
/// extensions and unknown reason codes are accepted, for served CRL chains and imported
/// `ca_crl.pem` files. Does not check the signature (see [`verify_crl`]).
/// The CRL's thisUpdate, without reading its revoked entries (every agent fetches the
/// CRL; this is what Last-Modified needs).
pub fn crl_this_update(der_or_pem: &[u8]) -> Result<i64, CaError> {
    let der_bytes = first_crl_der(der_or_pem)?;
    Ok(parse_crl(&der_bytes)?.this_update)
}

pub fn crl_info(der_or_pem: &[u8]) -> Result<CrlInfo, CaError> {
    let der_bytes = first_crl_der(der_or_pem)?;
    let crl = parse_crl(&der_bytes)?;
    let (issuer_cns, _) = read_name(&crl.issuer)?;
    let mut number = None;
    let mut authority_key_id = None;
    for ext in &crl.extensions {
        match ext.oid.as_str() {
            oid::CRL_NUMBER => {
                let mut r = Reader::new(&ext.value);
                let n = r.expect(der::INTEGER)?;
                r.finish()?;
                number = n.as_u64().ok();
            }
            oid::AUTHORITY_KEY_ID => authority_key_id = read_aki_key_id(&ext.value)?,
            _ => {}
        }
    }
    let mut revoked = Vec::new();
    if let Some(list) = crl.revoked {
        let mut r = list.reader();
        while !r.is_empty() {
            revoked.push(read_revoked_entry(&r.expect(der::SEQUENCE)?)?);
        }
    }
    Ok(CrlInfo {
        issuer_common_name: issuer_cns.into_iter().next(),
        issuer_der: crl.issuer.raw.to_vec(),
        number,
        this_update: crl.this_update,
        next_update: crl.next_update,
        revoked,
        authority_key_id,
    })
}

fn read_revoked_entry(entry: &Tlv<'_>) -> Result<RevokedEntry, CaError> {
    let mut r = entry.reader();
    let serial = r.expect(der::INTEGER)?;
    let revoked_at = der::parse_time(&r.read()?)?;
    let mut reason = None;
    if let Some(exts) = r.read_optional(der::SEQUENCE)? {
        for ext in read_extensions(&exts)? {
            if ext.oid == oid::CRL_REASON {
                let mut er = Reader::new(&ext.value);
                let code = er.expect(ENUMERATED)?;
                er.finish()?;
                reason = match code.value {
                    [c] => CrlReason::from_code(*c),
                    _ => None,
                };
            }
        }
    }
    r.finish()?;
    let serial = match serial.value.split_first() {
        Some((0, rest)) if !rest.is_empty() => rest.to_vec(),
        _ => serial.value.to_vec(),
    };
    Ok(RevokedEntry {
        serial,
        revoked_at,
        reason,
    })
}

fn read_aki_key_id(value: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
    let mut outer = Reader::new(value);
    let seq = outer.expect(der::SEQUENCE)?;
    outer.finish()?;
    let mut r = seq.reader();
    Ok(r.read_optional(der::context_primitive(0))?
        .map(|t| t.value.to_vec()))
}

/// Every CRL in a PEM text (a CRL chain such as `ca_crl.pem`), DER, in order.
pub fn decode_crl_chain(pem_text: &str) -> Result<Vec<Vec<u8>>, CaError> {
    let crls: Vec<Vec<u8>> = pem::decode_all(pem_text)?
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
        .map(|crl| pem::encode(CRL_PEM_LABEL, crl))
        .collect()
}

fn first_crl_der(der_or_pem: &[u8]) -> Result<Vec<u8>, CaError> {
    if der_or_pem.first() == Some(&der::SEQUENCE) {
        return Ok(der_or_pem.to_vec());
    }
    let text = std::str::from_utf8(der_or_pem)
        .map_err(|_| CaError::Encoding("CRL is neither DER nor PEM".into()))?;
    decode_crl_chain(text)?
        .into_iter()
        .next()
        .ok_or_else(|| CaError::Encoding("no X509 CRL block in the PEM".into()))
}

/// Checks that the CRL (DER, or PEM: its first CRL) is signed by the key of `issuer_cert_der`
/// (RSA PKCS#1 with SHA-256, -384 or -512, or ECDSA on P-256/P-384), names that
/// certificate's subject as its issuer, and, when both carry key identifiers, points at that
/// certificate's key. Used to check an imported CRL chain.
pub fn verify_crl(crl_der: &[u8], issuer_cert_der: &[u8]) -> Result<(), CaError> {
    let crl_bytes = first_crl_der(crl_der)?;
    let crl = parse_crl(&crl_bytes)?;
    if crl.inner_alg.raw != crl.outer_alg.raw {
        return Err(CaError::Encoding(
            "the CRL's two signature algorithm fields differ".into(),
        ));
    }
    let issuer = parse_cert(issuer_cert_der)?;
    if !names_match(&crl.issuer, &issuer.subject) {
        return Err(CaError::Key(format!(
            "the CRL is issued by {}, not by {}",
            name_for_messages(&crl.issuer),
            name_for_messages(&issuer.subject)
        )));
    }
    let issuer_info = cert_info(issuer_cert_der)?;
    let crl_aki = crl
        .extensions
        .iter()
        .find(|e| e.oid == oid::AUTHORITY_KEY_ID)
        .map(|e| read_aki_key_id(&e.value))
        .transpose()?
        .flatten();
    if let (Some(aki), Some(ski)) = (crl_aki, issuer_info.subject_key_id) {
        if aki != ski {
            return Err(CaError::Key(format!(
                "the CRL's authority key identifier {} is not the subject key identifier {} of {}",
                der::hex(&aki),
                der::hex(&ski),
                name_for_messages(&issuer.subject)
            )));
        }
    }
    verify_signed(&crl_bytes, issuer.spki.raw).map_err(|e| match e {
        CaError::Key(m) => CaError::Key(format!("CRL: {m}")),
        other => other,
    })
}

/// Checks that `cert_der` names `issuer_cert_der`'s subject as its issuer and carries a
/// signature made by that certificate's key. No validity or extension checks.
pub fn verify_certificate(cert_der: &[u8], issuer_cert_der: &[u8]) -> Result<(), CaError> {
    let cert = parse_cert(cert_der)?;
    if cert.inner_alg.raw != cert.outer_alg.raw {
        return Err(CaError::Encoding(
            "the certificate's two signature algorithm fields differ".into(),
        ));
    }
    let issuer = parse_cert(issuer_cert_der)?;
    if !names_match(&cert.issuer, &issuer.subject) {
        return Err(CaError::Key(format!(
            "the certificate is issued by {}, not by {}",
            name_for_messages(&cert.issuer),
            name_for_messages(&issuer.subject)
        )));
    }
    verify_signed(cert_der, issuer.spki.raw)
}

/// Verifies any X.509 SIGNED{} object (Certificate, CertificateList: `SEQUENCE { tbs,
/// signatureAlgorithm, signature BIT STRING }`) against a SubjectPublicKeyInfo, over the tbs
/// bytes exactly as received.
pub fn verify_signed(signed_der: &[u8], issuer_spki_der: &[u8]) -> Result<(), CaError> {
    let mut top = Reader::new(signed_der);
    let outer = top.expect(der::SEQUENCE)?;
    top.finish()?;
    let mut r = outer.reader();
    let tbs = r.expect(der::SEQUENCE)?;
    let alg = r.expect(der::SEQUENCE)?;
    let signature = r.expect(der::BIT_STRING)?.bit_string_bytes()?;
    r.finish()?;

    let mut ar = alg.reader();
    let alg_oid = ar.expect(der::OID)?;
    let alg_oid = der::oid_to_string(alg_oid.value)
        .ok_or(CaError::Encoding("invalid signature algorithm OID".into()))?;
    let params = if ar.is_empty() {
        None
    } else {
        Some(ar.read()?)
    };
    ar.finish()?;

    let key = PublicKeyKind::from_spki(issuer_spki_der)?;
    let (verify_alg, key_bytes) =
        crate::domain::csr::verifier_for(&key, &alg_oid, params.map(|p| p.raw))
            .map_err(|what| CaError::Key(format!("unsupported signature: {what}")))?;
    UnparsedPublicKey::new(verify_alg, key_bytes)
        .verify(tbs.raw, signature)
        .map_err(|_| {
            CaError::Key("the signature does not verify under the issuer's public key".into())
        })
}

struct ParsedCrl<'a> {
    inner_alg: Tlv<'a>,
    outer_alg: Tlv<'a>,
    issuer: Tlv<'a>,
    this_update: i64,
    next_update: Option<i64>,
    revoked: Option<Tlv<'a>>,
    extensions: Vec<crate::domain::csr::CsrExtension>,
}

fn parse_crl(crl_der: &[u8]) -> Result<ParsedCrl<'_>, CaError> {
    let mut top = Reader::new(crl_der);
    let outer = top.expect(der::SEQUENCE)?;
    top.finish()?;
    let mut cr = outer.reader();
    let tbs = cr.expect(der::SEQUENCE)?;
    let outer_alg = cr.expect(der::SEQUENCE)?;
    cr.expect(der::BIT_STRING)?;
    cr.finish()?;

    let mut r = tbs.reader();
    // v1 CRLs omit the version.
    if let Some(version) = r.read_optional(der::INTEGER)? {
        let v = version.as_u64()?;
        if v > 1 {
            return Err(CaError::Encoding(format!("CRL version {v} is not 1 or 2")));
        }
    }
    let inner_alg = r.expect(der::SEQUENCE)?;
    let issuer = r.expect(der::SEQUENCE)?;
    let this_update = der::parse_time(&r.read()?)?;
    let next_update = match r.peek_tag() {
        Some(der::UTC_TIME | der::GENERALIZED_TIME) => Some(der::parse_time(&r.read()?)?),
        _ => None,
    };
    let revoked = r.read_optional(der::SEQUENCE)?;
    let extensions = read_wrapped_extensions(&mut r, der::context_constructed(0))?;
    r.finish()?;
    Ok(ParsedCrl {
        inner_alg,
        outer_alg,
        issuer,
        this_update,
        next_update,
        revoked,
        extensions,
    })
}

struct CertParts<'a> {
    inner_alg: Tlv<'a>,
    outer_alg: Tlv<'a>,
    issuer: Tlv<'a>,
    subject: Tlv<'a>,
    spki: Tlv<'a>,
}

fn parse_cert(cert_der: &[u8]) -> Result<CertParts<'_>, CaError> {
    let mut top = Reader::new(cert_der);
    let cert = top.expect(der::SEQUENCE)?;
    top.finish()?;
    let mut cr = cert.reader();
    let tbs = cr.expect(der::SEQUENCE)?;
    let outer_alg = cr.expect(der::SEQUENCE)?;
    cr.expect(der::BIT_STRING)?;
    cr.finish()?;
    let mut r = tbs.reader();
    r.read_optional(der::context_constructed(0))?;
    r.expect(der::INTEGER)?;
    let inner_alg = r.expect(der::SEQUENCE)?;
    let issuer = r.expect(der::SEQUENCE)?;
    r.expect(der::SEQUENCE)?; // validity
    let subject = r.expect(der::SEQUENCE)?;
    let spki = r.expect(der::SEQUENCE)?;
    Ok(CertParts {
        inner_alg,
        outer_alg,
        issuer,
        subject,
        spki,
    })
}

fn spki_key_bits(spki_der: &[u8]) -> Result<&[u8], CaError> {
    let mut outer = Reader::new(spki_der);
    let spki = outer.expect(der::SEQUENCE)?;
    outer.finish()?;
    let mut r = spki.reader();
    r.expect(der::SEQUENCE)?;
    Ok(r.expect(der::BIT_STRING)?.bit_string_bytes()?)
}

/// Do two SubjectPublicKeyInfos hold the same key? Compares the key bits, so the same key
/// written with and without optional algorithm parameters still matches.
pub fn same_public_key(a_spki_der: &[u8], b_spki_der: &[u8]) -> Result<bool, CaError> {
    Ok(spki_key_bits(a_spki_der)? == spki_key_bits(b_spki_der)?)
}

/// Name equality as X.509 path validation needs it: the same bytes, or the same attributes
/// in the same order with string values equal after RFC 5280 7.1-style folding (case and
/// runs of spaces), whatever string type each side used.
fn names_match(a: &Tlv<'_>, b: &Tlv<'_>) -> bool {
    if a.raw == b.raw {
        return true;
    }
    match (folded_name(a), folded_name(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

type FoldedName = Vec<Vec<(Vec<u8>, String)>>;

fn folded_name(name: &Tlv<'_>) -> Option<FoldedName> {
    let mut rdns = name.reader();
    let mut out = Vec::new();
    while !rdns.is_empty() {
        let rdn = rdns.expect(der::SET).ok()?;
        let mut atvs = rdn.reader();
        let mut folded = Vec::new();
        while !atvs.is_empty() {
            let atv = atvs.expect(der::SEQUENCE).ok()?;
            let mut r = atv.reader();
            let oid = r.expect(der::OID).ok()?;
            let value = r.read().ok()?;
            let text = if der::is_string_tag(value.tag) {
                der::string_lossy(value.tag, value.value)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            } else {
                der::hex(value.raw)
            };
            folded.push((oid.value.to_vec(), text));
        }
        folded.sort();
        out.push(folded);
    }
    Some(out)
}

fn name_for_messages(name: &Tlv<'_>) -> String {
    match read_name(name) {
        Ok((cns, _)) if !cns.is_empty() => format!("CN={}", cns.join(",CN=")),
        _ => "an unreadable name".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::issue::{issue_leaf, self_signed_ca, CaCertSpec, LeafSpec};
    use crate::ca::signer::{KeyAlgorithm, SoftwareKey};
    use crate::ca::testutil::{openssl, TempDir};
    use std::process::Command;

    const YEAR: i64 = 365 * 86_400;
    const NOW: i64 = 1_714_564_800; // 2024-05-01T12:00:00Z

    fn now() -> i64 {
        crate::timefmt::now()
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
        std::fs::write(dir.file("ca.pem"), pem::encode("CERTIFICATE", &ca.cert)).unwrap();
        std::fs::write(dir.file("good.pem"), pem::encode("CERTIFICATE", &good)).unwrap();
        std::fs::write(dir.file("bad.pem"), pem::encode("CERTIFICATE", &bad)).unwrap();
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
        assert_eq!(info.issuer_der, parse_cert(&ca.cert).unwrap().subject.raw);
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
        let next = der::time(now + 5 * YEAR);
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
        let outer = Reader::new(&crl).read().unwrap();
        let tbs = outer.reader().read().unwrap();
        let tags: Vec<u8> = {
            let mut r = tbs.reader();
            let mut tags = Vec::new();
            while !r.is_empty() {
                tags.push(r.read().unwrap().tag);
            }
            tags
        };
        assert_eq!(
            tags,
            vec![
                der::INTEGER,
                der::SEQUENCE,
                der::SEQUENCE,
                der::UTC_TIME,
                der::UTC_TIME,
                0xa0
            ]
        );
        std::fs::write(dir.file("ca.pem"), pem::encode("CERTIFICATE", &ca.cert)).unwrap();
        std::fs::write(dir.file("good.pem"), pem::encode("CERTIFICATE", &good)).unwrap();
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
            let ext = der::seq(&[&der::seq(&[
                &der::oid(oid::CRL_REASON),
                &der::octet_string(&der::tlv(ENUMERATED, &[r.code()])),
            ])]);
            assert_eq!(reason_code_extensions(r).to_vec(), ext);
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
        let ca_der = pem::decode_all(&std::fs::read_to_string(p("ca.pem")).unwrap())
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
