//! Certificate signing requests (PKCS#10) as Puppet agents send them: parsed once, then trusted.
//!
//! Parsing is strict about structure and lenient about string contents, because Puppet writes
//! custom attributes as PrintableStrings holding `_`. Parsing does not check the signature:
//! callers ask for [`Csr::verify_signature`] explicitly, as the proof-of-possession step.

use crate::oid;
use std::fmt;
use std::net::IpAddr;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

use crate::der::{self, DerError, Reader, Tlv};
use crate::pem;

/// Largest CSR we look at; real ones are 1–4 KiB.
pub const MAX_CSR_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrError {
    TooLarge { size: usize },
    WrongPemLabel(String),
    Malformed(String),
    UnsupportedAlgorithm(String),
    BadSignature,
    UnsupportedVersion(u64),
}

impl fmt::Display for CsrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsrError::TooLarge { size } => write!(
                f,
                "certificate request is {size} bytes, more than the {MAX_CSR_BYTES} allowed"
            ),
            CsrError::WrongPemLabel(label) => write!(
                f,
                "expected a PEM block labelled CERTIFICATE REQUEST, got {label:?}"
            ),
            CsrError::Malformed(why) => write!(f, "certificate request is malformed: {why}"),
            CsrError::UnsupportedAlgorithm(what) => {
                write!(f, "certificate request uses an unsupported algorithm: {what}")
            }
            CsrError::BadSignature => f.write_str(
                "certificate request signature is invalid: the CSR was altered or was not signed by the key it contains",
            ),
            CsrError::UnsupportedVersion(v) => write!(
                f,
                "certificate request version field is {v}; only 0 (and 2, as `puppetserver ca generate` writes) are accepted"
            ),
        }
    }
}

impl std::error::Error for CsrError {}

impl From<DerError> for CsrError {
    fn from(e: DerError) -> Self {
        CsrError::Malformed(e.0.to_string())
    }
}

/// Which ASN.1 string type a value was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StringKind {
    Printable,
    Utf8,
    Ia5,
    Other(u8),
}

impl StringKind {
    pub fn from_tag(tag: u8) -> Self {
        match tag {
            der::PRINTABLE_STRING => StringKind::Printable,
            der::UTF8_STRING => StringKind::Utf8,
            der::IA5_STRING => StringKind::Ia5,
            t => StringKind::Other(t),
        }
    }

    pub fn tag(self) -> u8 {
        match self {
            StringKind::Printable => der::PRINTABLE_STRING,
            StringKind::Utf8 => der::UTF8_STRING,
            StringKind::Ia5 => der::IA5_STRING,
            StringKind::Other(t) => t,
        }
    }
}

/// An X.509 extension, as requested in a CSR or found in a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CsrExtension {
    /// Dotted OID.
    pub oid: String,
    pub critical: bool,
    /// Contents of extnValue (the DER of the extension's own value).
    pub value: Vec<u8>,
}

impl CsrExtension {
    /// The value read leniently as a string when it is one DER string (how Puppet encodes
    /// pp_* extensions), else None.
    pub fn string_value(&self) -> Option<String> {
        let mut r = Reader::new(&self.value);
        let t = r.read().ok()?;
        if r.is_empty() && der::is_string_tag(t.tag) {
            Some(der::string_lossy(t.tag, t.value))
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GeneralName {
    Dns(String),
    Ip(IpAddr),
    Email(String),
    Uri(String),
    /// A form we do not interpret (otherName, directoryName, ...); tag as received.
    Other {
        tag: u8,
    },
}

impl GeneralName {
    /// DER of this name inside a GeneralNames SEQUENCE; None for `Other`, whose contents we
    /// did not keep.
    pub fn to_der(&self) -> Option<Vec<u8>> {
        Some(match self {
            GeneralName::Email(s) => der::tlv(der::context_primitive(1), s.as_bytes()),
            GeneralName::Dns(s) => der::tlv(der::context_primitive(2), s.as_bytes()),
            GeneralName::Uri(s) => der::tlv(der::context_primitive(6), s.as_bytes()),
            GeneralName::Ip(IpAddr::V4(ip)) => der::tlv(der::context_primitive(7), &ip.octets()),
            GeneralName::Ip(IpAddr::V6(ip)) => der::tlv(der::context_primitive(7), &ip.octets()),
            GeneralName::Other { .. } => return None,
        })
    }
}

/// OpenSSL / Puppet notation: `DNS:name`, `IP:10.0.0.1`.
impl fmt::Display for GeneralName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeneralName::Dns(s) => write!(f, "DNS:{s}"),
            GeneralName::Ip(ip) => write!(f, "IP:{ip}"),
            GeneralName::Email(s) => write!(f, "email:{s}"),
            GeneralName::Uri(s) => write!(f, "URI:{s}"),
            GeneralName::Other { tag } => write!(f, "othername:<tag 0x{tag:02x}>"),
        }
    }
}

/// Reads a GeneralNames SEQUENCE (the SAN extension's value).
pub fn parse_general_names(value: &[u8]) -> Result<Vec<GeneralName>, DerError> {
    let mut outer = Reader::new(value);
    let seq = outer.expect(der::SEQUENCE)?;
    outer.finish()?;
    let mut r = seq.reader();
    let mut names = Vec::new();
    while !r.is_empty() {
        let t = r.read()?;
        let text = || der::string_lossy(der::IA5_STRING, t.value);
        names.push(match t.tag {
            0x81 => GeneralName::Email(text()),
            0x82 => GeneralName::Dns(text()),
            0x86 => GeneralName::Uri(text()),
            0x87 => match t.value.len() {
                4 => {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(t.value);
                    GeneralName::Ip(IpAddr::from(b))
                }
                16 => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(t.value);
                    GeneralName::Ip(IpAddr::from(b))
                }
                _ => {
                    return Err(DerError(
                        "IP address in subjectAltName is not 4 or 16 bytes",
                    ))
                }
            },
            tag => GeneralName::Other { tag },
        });
    }
    Ok(names)
}

/// The public key in a SubjectPublicKeyInfo, as far as we need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyKind {
    /// `der` is the RSAPublicKey inside the BIT STRING.
    Rsa {
        bits: usize,
        der: Vec<u8>,
    },
    /// `curve` is the named-curve OID, `point` the encoded point.
    Ec {
        curve: String,
        point: Vec<u8>,
    },
    Other {
        oid: String,
    },
}

impl PublicKeyKind {
    /// Reads a SubjectPublicKeyInfo TLV.
    pub fn from_spki(spki: &[u8]) -> Result<Self, DerError> {
        let mut outer = Reader::new(spki);
        let seq = outer.expect(der::SEQUENCE)?;
        outer.finish()?;
        let mut r = seq.reader();
        let alg = r.expect(der::SEQUENCE)?;
        let key = r.expect(der::BIT_STRING)?;
        r.finish()?;
        let mut ar = alg.reader();
        let alg_oid = read_oid(&mut ar)?;
        let params = if ar.is_empty() {
            None
        } else {
            Some(ar.read()?)
        };
        let key_bytes = key.bit_string_bytes()?;
        Ok(match alg_oid.as_str() {
            oid::RSA_ENCRYPTION => PublicKeyKind::Rsa {
                bits: rsa_modulus_bits(key_bytes)?,
                der: key_bytes.to_vec(),
            },
            oid::EC_PUBLIC_KEY => {
                let curve = match params {
                    Some(p) if p.tag == der::OID => {
                        der::oid_to_string(p.value).ok_or(DerError("bad curve OID"))?
                    }
                    _ => return Err(DerError("EC key without a named curve")),
                };
                PublicKeyKind::Ec {
                    curve,
                    point: key_bytes.to_vec(),
                }
            }
            _ => PublicKeyKind::Other { oid: alg_oid },
        })
    }

    /// "RSA 4096", "EC P-256", ...
    pub fn description(&self) -> String {
        match self {
            PublicKeyKind::Rsa { bits, .. } => format!("RSA {bits}"),
            PublicKeyKind::Ec { curve, .. } => format!("EC {}", curve_name(curve)),
            PublicKeyKind::Other { oid } => match oid.as_str() {
                oid::ED25519 => "Ed25519".to_string(),
                oid::ED448 => "Ed448".to_string(),
                oid::RSA_PSS => "RSA-PSS".to_string(),
                other => format!("unknown key type {other}"),
            },
        }
    }
}

fn curve_name(oid: &str) -> String {
    match oid {
        oid::P256 => "P-256".to_string(),
        oid::P384 => "P-384".to_string(),
        oid::P521 => "P-521".to_string(),
        other => format!("curve {other}"),
    }
}

fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Result<usize, DerError> {
    let mut outer = Reader::new(rsa_public_key);
    let seq = outer.expect(der::SEQUENCE)?;
    let mut r = seq.reader();
    let modulus = r.expect(der::INTEGER)?;
    let digits: &[u8] = {
        let start = modulus
            .value
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(modulus.value.len());
        modulus.value.get(start..).unwrap_or_default()
    };
    let Some(first) = digits.first() else {
        return Ok(0);
    };
    Ok(digits.len() * 8 - first.leading_zeros() as usize)
}

fn read_oid(r: &mut Reader<'_>) -> Result<String, DerError> {
    let t = r.expect(der::OID)?;
    der::oid_to_string(t.value).ok_or(DerError("invalid OBJECT IDENTIFIER"))
}

/// Reads a Name: every CN (in order) and whether anything else is present.
pub fn read_name(name: &Tlv<'_>) -> Result<(Vec<String>, bool), DerError> {
    if name.tag != der::SEQUENCE {
        return Err(DerError("name is not a SEQUENCE"));
    }
    let mut cns = Vec::new();
    let mut other = false;
    let mut rdns = name.reader();
    while !rdns.is_empty() {
        let rdn = rdns.expect(der::SET)?;
        let mut atvs = rdn.reader();
        while !atvs.is_empty() {
            let atv = atvs.expect(der::SEQUENCE)?;
            let mut r = atv.reader();
            let oid = read_oid(&mut r)?;
            let value = r.read()?;
            r.finish()?;
            if oid == oid::COMMON_NAME {
                cns.push(der::string_lossy(value.tag, value.value));
            } else {
                other = true;
            }
        }
    }
    Ok((cns, other))
}

/// Reads `SEQUENCE OF Extension` (the content of extensionRequest or a certificate's [3]).
/// The Extensions inside an optional explicit `[tag]` wrapper (a certificate's `[3]`, a
/// CRL's `[0]`); none when the wrapper is absent.
pub fn read_wrapped_extensions(r: &mut Reader<'_>, tag: u8) -> Result<Vec<CsrExtension>, DerError> {
    match r.read_optional(tag)? {
        Some(wrapper) => {
            let mut wr = wrapper.reader();
            let seq = wr.expect(der::SEQUENCE)?;
            wr.finish()?;
            read_extensions(&seq)
        }
        None => Ok(Vec::new()),
    }
}

pub fn read_extensions(seq: &Tlv<'_>) -> Result<Vec<CsrExtension>, DerError> {
    if seq.tag != der::SEQUENCE {
        return Err(DerError("extensions are not a SEQUENCE"));
    }
    let mut out: Vec<CsrExtension> = Vec::new();
    // Linear, not quadratic: a hostile 64 KiB request holds thousands of extensions.
    let mut seen = std::collections::HashSet::new();
    let mut r = seq.reader();
    while !r.is_empty() {
        let ext = r.expect(der::SEQUENCE)?;
        let mut er = ext.reader();
        let oid = read_oid(&mut er)?;
        let critical = match er.read_optional(der::BOOLEAN)? {
            Some(b) => b.value.first().is_some_and(|v| *v != 0),
            None => false,
        };
        let value = er.expect(der::OCTET_STRING)?;
        er.finish()?;
        // Two values for one extension would let a policy check one and the signer copy
        // the other; RFC 5280 forbids it, so refuse rather than pick one.
        if !seen.insert(oid.clone()) {
            return Err(DerError("the same extension appears twice"));
        }
        out.push(CsrExtension {
            oid,
            critical,
            value: value.value.to_vec(),
        });
    }
    Ok(out)
}

/// A parsed certificate request. Owns its DER; every accessor reads from what was parsed.
/// Its `Debug` never shows the challengePassword (a build token) nor the raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Csr {
    der: Vec<u8>,
    info: Vec<u8>,
    version: u64,
    subject_cns: Vec<String>,
    subject_other: bool,
    spki: Vec<u8>,
    key: PublicKeyKind,
    challenge: Option<(String, StringKind)>,
    extensions: Vec<CsrExtension>,
    custom: Vec<(String, String)>,
    signature_algorithm: String,
    signature_params: Option<Vec<u8>>,
    signature: Vec<u8>,
}

impl fmt::Debug for Csr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csr")
            .field("version", &self.version)
            .field("subject_cns", &self.subject_cns)
            .field("key", &self.key)
            .field(
                "challenge_password",
                &self.challenge.as_ref().map(|_| "<redacted>"),
            )
            .field("extensions", &self.extensions.len())
            .field("fingerprint", &self.fingerprint_sha256())
            .finish_non_exhaustive()
    }
}

impl Csr {
    /// PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST", any line width) or raw DER.
    /// Anything over MAX_CSR_BYTES is TooLarge before any parsing. A PEM with another label
    /// is WrongPemLabel. Trailing garbage after the DER SEQUENCE is Malformed.
    pub fn parse(input: &[u8]) -> Result<Csr, CsrError> {
        if input.len() > MAX_CSR_BYTES {
            return Err(CsrError::TooLarge { size: input.len() });
        }
        let der = if input.first() == Some(&der::SEQUENCE) {
            input.to_vec()
        } else {
            pem_csr_der(input)?
        };
        Csr::parse_der(der)
    }

    fn parse_der(der: Vec<u8>) -> Result<Csr, CsrError> {
        let mut top = Reader::new(&der);
        let outer = top.expect(der::SEQUENCE)?;
        if !top.is_empty() {
            return Err(CsrError::Malformed(
                "unexpected data after the certificate request".to_string(),
            ));
        }
        let mut r = outer.reader();
        let info = r.expect(der::SEQUENCE)?;
        let sig_alg = r.expect(der::SEQUENCE)?;
        let sig = r.expect(der::BIT_STRING)?;
        r.finish()?;

        let mut ir = info.reader();
        let version = ir.expect(der::INTEGER)?.as_u64()?;
        if version != 0 && version != 2 {
            return Err(CsrError::UnsupportedVersion(version));
        }
        let subject = ir.expect(der::SEQUENCE)?;
        let spki = ir.expect(der::SEQUENCE)?;
        // Some encoders omit an empty attribute set; treat it as empty.
        let attributes = ir.read_optional(der::context_constructed(0))?;
        ir.finish()?;

        let (subject_cns, subject_other) = read_name(&subject)?;
        let key = PublicKeyKind::from_spki(spki.raw)?;

        let mut challenge = None;
        let mut extensions = Vec::new();
        let mut extension_oids = std::collections::HashSet::new();
        let mut custom = Vec::new();
        let mut attrs = attributes.map(|a| a.reader()).unwrap_or(Reader::new(&[]));
        while !attrs.is_empty() {
            let attr = attrs.expect(der::SEQUENCE)?;
            let mut ar = attr.reader();
            let oid = read_oid(&mut ar)?;
            let values = ar.expect(der::SET)?;
            ar.finish()?;
            let mut vr = values.reader();
            match oid.as_str() {
                oid::CHALLENGE_PASSWORD => {
                    let v = vr.read()?;
                    // The password is the build token: an ambiguous one must not reach policy.
                    if !vr.is_empty() || challenge.is_some() {
                        return Err(CsrError::Malformed(
                            "more than one challengePassword".to_string(),
                        ));
                    }
                    challenge = Some((
                        der::string_lossy(v.tag, v.value),
                        StringKind::from_tag(v.tag),
                    ));
                }
                oid::EXTENSION_REQUEST | oid::MS_EXTENSION_REQUEST => {
                    while !vr.is_empty() {
                        let seq = vr.read()?;
                        for ext in read_extensions(&seq)? {
                            if !extension_oids.insert(ext.oid.clone()) {
                                return Err(CsrError::Malformed(format!(
                                    "extension {} is requested twice",
                                    ext.oid
                                )));
                            }
                            extensions.push(ext);
                        }
                    }
                }
                _ => {
                    while !vr.is_empty() {
                        let v = vr.read()?;
                        let text = if der::is_string_tag(v.tag) {
                            der::string_lossy(v.tag, v.value)
                        } else {
                            format!("#{}", der::hex(v.raw))
                        };
                        custom.push((oid.clone(), text));
                    }
                }
            }
        }

        let mut sr = sig_alg.reader();
        let signature_algorithm = read_oid(&mut sr)?;
        let signature_params = if sr.is_empty() {
            None
        } else {
            Some(sr.read()?.raw.to_vec())
        };
        sr.finish()?;
        let signature = sig.bit_string_bytes()?.to_vec();
        let info = info.raw.to_vec();
        let spki = spki.raw.to_vec();

        Ok(Csr {
            der,
            info,
            version,
            subject_cns,
            subject_other,
            spki,
            key,
            challenge,
            extensions,
            custom,
            signature_algorithm,
            signature_params,
            signature,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The CSR as PEM, as puppetserver stores and serves it.
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE REQUEST", &self.der)
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn subject_common_names(&self) -> Vec<String> {
        self.subject_cns.clone()
    }

    pub fn subject_has_other_attributes(&self) -> bool {
        self.subject_other
    }

    pub fn public_key_spki_der(&self) -> &[u8] {
        &self.spki
    }

    pub fn public_key(&self) -> &PublicKeyKind {
        &self.key
    }

    pub fn key_description(&self) -> String {
        self.key.description()
    }

    pub fn challenge_password(&self) -> Option<(String, StringKind)> {
        self.challenge.clone()
    }

    pub fn extensions(&self) -> &[CsrExtension] {
        &self.extensions
    }

    pub fn custom_attributes(&self) -> Vec<(String, String)> {
        self.custom.clone()
    }

    pub fn subject_alt_names(&self) -> Result<Vec<GeneralName>, CsrError> {
        match self
            .extensions
            .iter()
            .find(|e| e.oid == oid::SUBJECT_ALT_NAME)
        {
            Some(ext) => parse_general_names(&ext.value)
                .map_err(|e| CsrError::Malformed(format!("subjectAltName extension: {e}"))),
            None => Ok(Vec::new()),
        }
    }

    /// Proof of possession: the signature over the CertificationRequestInfo bytes exactly as
    /// received, never a re-encoding.
    pub fn verify_signature(&self) -> Result<(), CsrError> {
        let (alg, key) = verifier_for(
            &self.key,
            &self.signature_algorithm,
            self.signature_params.as_deref(),
        )
        .map_err(CsrError::UnsupportedAlgorithm)?;
        UnparsedPublicKey::new(alg, key)
            .verify(&self.info, &self.signature)
            .map_err(|_| CsrError::BadSignature)
    }

    pub fn fingerprint_sha256(&self) -> String {
        fingerprint_sha256(&self.der)
    }
}

/// The one place that decides which signatures the service accepts, for CSRs,
/// certificates and CRLs alike: RSA PKCS#1 v1.5 with SHA-256/384/512 on keys of at least
/// 2048 bits, and ECDSA on P-256/P-384. Returns the aws-lc-rs algorithm and the key bytes
/// it verifies with; `params` are the raw AlgorithmIdentifier parameters, if any.
pub fn verifier_for<'k>(
    key: &'k PublicKeyKind,
    sig_oid: &str,
    params: Option<&[u8]>,
) -> Result<(&'static dyn VerificationAlgorithm, &'k [u8]), String> {
    match (key, sig_oid) {
        (_, oid::SHA1_RSA | oid::ECDSA_SHA1) => Err("SHA-1 signatures (use SHA-256)".into()),
        (_, oid::MD5_RSA) => Err("MD5 signatures (use SHA-256)".into()),
        (_, oid::RSA_PSS) => Err("RSA-PSS signatures".into()),
        (PublicKeyKind::Rsa { bits, .. }, _) if *bits < 2048 => {
            Err(format!("RSA {bits} keys (at least 2048 bits)"))
        }
        (PublicKeyKind::Rsa { der, .. }, oid::SHA256_RSA | oid::SHA384_RSA | oid::SHA512_RSA) => {
            // RFC 4055: parameters are NULL or absent; anything else is not this algorithm.
            if !matches!(params, None | Some([der::NULL, 0])) {
                return Err("RSA signature with unexpected parameters".into());
            }
            let alg: &'static dyn VerificationAlgorithm = match sig_oid {
                oid::SHA256_RSA => &signature::RSA_PKCS1_2048_8192_SHA256,
                oid::SHA384_RSA => &signature::RSA_PKCS1_2048_8192_SHA384,
                _ => &signature::RSA_PKCS1_2048_8192_SHA512,
            };
            Ok((alg, der))
        }
        (
            PublicKeyKind::Ec { curve, point },
            oid::ECDSA_SHA256 | oid::ECDSA_SHA384 | oid::ECDSA_SHA512,
        ) => {
            if params.is_some() {
                return Err("ECDSA signature with parameters".into());
            }
            let alg: &'static dyn VerificationAlgorithm = match (curve.as_str(), sig_oid) {
                (oid::P256, oid::ECDSA_SHA256) => &signature::ECDSA_P256_SHA256_ASN1,
                (oid::P256, oid::ECDSA_SHA384) => &signature::ECDSA_P256_SHA384_ASN1,
                (oid::P256, _) => &signature::ECDSA_P256_SHA512_ASN1,
                (oid::P384, oid::ECDSA_SHA256) => &signature::ECDSA_P384_SHA256_ASN1,
                (oid::P384, oid::ECDSA_SHA384) => &signature::ECDSA_P384_SHA384_ASN1,
                (oid::P384, _) => &signature::ECDSA_P384_SHA512_ASN1,
                (other, _) => {
                    return Err(format!(
                        "EC {} keys (P-256 and P-384 are supported)",
                        curve_name(other)
                    ))
                }
            };
            Ok((alg, point))
        }
        (PublicKeyKind::Other { .. }, _) => Err(key.description()),
        (_, other) => Err(format!(
            "signature algorithm {other} with an {} key",
            key.description()
        )),
    }
}

/// The DER inside a CSR PEM; tells a wrong label apart from unreadable armour.
fn pem_csr_der(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    let text = std::str::from_utf8(input)
        .map_err(|_| CsrError::Malformed("neither DER nor PEM text (not UTF-8)".to_string()))?;
    let blocks = pem::decode_all(text).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let mut csrs = blocks
        .iter()
        .filter(|(label, _)| label == "CERTIFICATE REQUEST" || label == "NEW CERTIFICATE REQUEST");
    match (csrs.next(), csrs.next()) {
        (Some((_, der)), None) => Ok(der.clone()),
        (Some(_), Some(_)) => Err(CsrError::Malformed(
            "more than one certificate request in the PEM".to_string(),
        )),
        (None, _) => Err(CsrError::WrongPemLabel(
            blocks
                .first()
                .map(|(label, _)| label.clone())
                .unwrap_or_default(),
        )),
    }
}

/// SHA-256 of DER bytes, uppercase colon-separated hex (Puppet's fingerprint format).
pub fn fingerprint_sha256(der: &[u8]) -> String {
    fingerprint(&digest::SHA256, der)
}

/// Any digest in Puppet's fingerprint format (the status object also lists SHA1 and SHA512).
pub fn fingerprint(alg: &'static digest::Algorithm, der: &[u8]) -> String {
    digest::digest(alg, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::testutil::{openssl, TempDir};

    const PP_UUID: &str = "1.3.6.1.4.1.34380.1.1.1";

    #[test]
    fn debug_never_shows_the_challenge_password() {
        let dir = TempDir::new("csr-debug");
        let cnf = config(&dir, "SecretBuildToken123", "nombstr");
        let pem = openssl_csr(
            &dir,
            "debug",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &["-config", &cnf],
        );
        let csr = Csr::parse(&pem).unwrap();
        assert_eq!(csr.challenge_password().unwrap().0, "SecretBuildToken123");
        let shown = format!("{csr:?} {csr:#?}");
        assert!(!shown.contains("SecretBuildToken123"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    /// The subject comes from the config: openssl drops the attributes section with -subj.
    fn config(dir: &TempDir, password: &str, string_mask: &str) -> String {
        let path = dir.path.join(format!("req-{string_mask}.cnf"));
        std::fs::write(
            &path,
            format!(
                "[req]\ndistinguished_name = dn\nattributes = req_attributes\nprompt = no\n\
                 string_mask = {string_mask}\n[dn]\nCN = agent1.example.com\n\
                 [req_attributes]\nchallengePassword = {password}\n"
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    }

    /// `openssl req -new` with a fresh key of the given -newkey spec; returns the PEM bytes.
    fn openssl_csr(dir: &TempDir, name: &str, newkey: &[&str], extra: &[&str]) -> Vec<u8> {
        let out = dir.path.join(format!("{name}.csr"));
        let key = dir.path.join(format!("{name}.key"));
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend_from_slice(newkey);
        let (key_s, out_s) = (key.to_string_lossy(), out.to_string_lossy());
        args.extend_from_slice(&["-keyout", &key_s, "-out", &out_s]);
        args.extend_from_slice(extra);
        openssl(&args);
        std::fs::read(&out).unwrap()
    }

    fn rewrap(pem_text: &[u8], width: usize) -> Vec<u8> {
        let blocks = pem::decode_all(std::str::from_utf8(pem_text).unwrap()).unwrap();
        let b64 = pem::base64_encode(&blocks[0].1);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(width)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\r\n{}\r\n-----END CERTIFICATE REQUEST-----\r\n",
            lines.join("\r\n")
        )
        .into_bytes()
    }

    fn check_full_csr(pem_bytes: &[u8], key_desc: &str, password: &str, kind: StringKind) {
        let csr = Csr::parse(pem_bytes).unwrap();
        assert_eq!(csr.version(), 0);
        assert_eq!(
            csr.subject_common_names(),
            vec!["agent1.example.com".to_string()]
        );
        assert!(!csr.subject_has_other_attributes());
        assert_eq!(csr.key_description(), key_desc);
        assert_eq!(csr.challenge_password(), Some((password.to_string(), kind)));
        assert!(csr.custom_attributes().is_empty());
        assert_eq!(
            csr.subject_alt_names().unwrap(),
            vec![
                GeneralName::Dns("a".into()),
                GeneralName::Ip("10.0.0.1".parse().unwrap())
            ]
        );
        let pp = csr.extensions().iter().find(|e| e.oid == PP_UUID).unwrap();
        assert!(!pp.critical);
        assert_eq!(pp.value, der::utf8_string("abc"));
        assert_eq!(pp.string_value().as_deref(), Some("abc"));
        csr.verify_signature().unwrap();
        assert_eq!(csr.fingerprint_sha256().len(), 32 * 3 - 1);
        assert_eq!(Csr::parse(&csr.to_pem().into_bytes()).unwrap(), csr);

        // Tampering with the signature or the signed info must break verification.
        let mut bad_sig = csr.der().to_vec();
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 0x01;
        assert_eq!(
            Csr::parse(&bad_sig).unwrap().verify_signature(),
            Err(CsrError::BadSignature)
        );
        let mut bad_info = csr.der().to_vec();
        let at = bad_info.windows(6).position(|w| w == b"agent1").unwrap();
        bad_info[at + 5] = b'2';
        let altered = Csr::parse(&bad_info).unwrap();
        assert_eq!(
            altered.subject_common_names(),
            vec!["agent2.example.com".to_string()]
        );
        assert_eq!(altered.verify_signature(), Err(CsrError::BadSignature));

        // Any line width, CRLF, and raw DER.
        for width in [40, 76] {
            assert_eq!(Csr::parse(&rewrap(pem_bytes, width)).unwrap(), csr);
        }
        assert_eq!(Csr::parse(csr.der()).unwrap(), csr);
        let new_label = pem::encode("NEW CERTIFICATE REQUEST", csr.der());
        assert_eq!(Csr::parse(new_label.as_bytes()).unwrap(), csr);

        // Rejections.
        let wrong = pem::encode("CERTIFICATE", csr.der());
        assert_eq!(
            Csr::parse(wrong.as_bytes()),
            Err(CsrError::WrongPemLabel("CERTIFICATE".into()))
        );
        let truncated = &csr.der()[..csr.der().len() / 2];
        assert!(matches!(Csr::parse(truncated), Err(CsrError::Malformed(_))));
        let truncated_pem = pem::encode("CERTIFICATE REQUEST", truncated);
        assert!(matches!(
            Csr::parse(truncated_pem.as_bytes()),
            Err(CsrError::Malformed(_))
        ));
        let mut trailing = csr.der().to_vec();
        trailing.extend_from_slice(&[0x05, 0x00]);
        assert!(matches!(Csr::parse(&trailing), Err(CsrError::Malformed(_))));
        let mut huge = pem_bytes.to_vec();
        huge.resize(MAX_CSR_BYTES + 1, b'\n');
        assert_eq!(
            Csr::parse(&huge),
            Err(CsrError::TooLarge {
                size: MAX_CSR_BYTES + 1
            })
        );
    }

    fn extra_args(cfg: &str) -> Vec<&str> {
        vec![
            "-config",
            cfg,
            "-addext",
            "subjectAltName=DNS:a,IP:10.0.0.1",
            "-addext",
            "1.3.6.1.4.1.34380.1.1.1=ASN1:UTF8String:abc",
        ]
    }

    #[test]
    fn openssl_rsa_csr_with_printable_password() {
        let dir = TempDir::new("csr-rsa");
        let cfg = config(&dir, "Token42Printable", "default");
        let pem_bytes = openssl_csr(&dir, "rsa", &["-newkey", "rsa:2048"], &extra_args(&cfg));
        check_full_csr(
            &pem_bytes,
            "RSA 2048",
            "Token42Printable",
            StringKind::Printable,
        );
    }

    #[test]
    fn openssl_ec_p256_csr_with_utf8_password() {
        let dir = TempDir::new("csr-ec");
        let cfg = config(&dir, "tok_en-42", "utf8only");
        let pem_bytes = openssl_csr(
            &dir,
            "ec",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &extra_args(&cfg),
        );
        check_full_csr(&pem_bytes, "EC P-256", "tok_en-42", StringKind::Utf8);
    }

    #[test]
    fn openssl_other_keys_and_digests() {
        let dir = TempDir::new("csr-more");
        let cfg = config(&dir, "x", "utf8only");
        let subj = ["-config", &cfg, "-subj", "/CN=big.example.com/O=Org"];
        let cases: [(&str, &[&str], &str); 4] = [
            ("rsa4096", &["-newkey", "rsa:4096", "-sha512"], "RSA 4096"),
            ("rsa384", &["-newkey", "rsa:2048", "-sha384"], "RSA 2048"),
            (
                "p384",
                &[
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-384",
                    "-sha256",
                ],
                "EC P-384",
            ),
            (
                "p256sha384",
                &[
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-sha384",
                ],
                "EC P-256",
            ),
        ];
        for (name, newkey, desc) in cases {
            let csr = Csr::parse(&openssl_csr(&dir, name, newkey, &subj)).unwrap();
            assert_eq!(csr.key_description(), desc);
            assert!(csr.subject_has_other_attributes());
            assert_eq!(
                csr.subject_common_names(),
                vec!["big.example.com".to_string()]
            );
            assert!(csr.extensions().is_empty());
            assert_eq!(csr.subject_alt_names().unwrap(), vec![]);
            csr.verify_signature()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let sha1 = Csr::parse(&openssl_csr(
            &dir,
            "sha1",
            &["-newkey", "rsa:2048", "-sha1"],
            &subj,
        ))
        .unwrap();
        assert!(matches!(
            sha1.verify_signature(),
            Err(CsrError::UnsupportedAlgorithm(_))
        ));
        let ed = Csr::parse(&openssl_csr(&dir, "ed", &["-newkey", "ed25519"], &subj)).unwrap();
        assert_eq!(ed.key_description(), "Ed25519");
        assert!(matches!(
            ed.verify_signature(),
            Err(CsrError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn puppet_style_custom_attributes_are_read_leniently() {
        // Hand-built info: PrintableString with '_' in a custom attribute, version 2, no
        // signature check needed to read it.
        let name = der::seq(&[&der::set(&[&der::seq(&[
            &der::oid(oid::COMMON_NAME),
            &der::utf8_string("node1"),
        ])])]);
        let spki = der::seq(&[
            &der::seq(&[&der::oid(oid::EC_PUBLIC_KEY), &der::oid(oid::P256)]),
            &der::bit_string(&[4; 65]),
        ]);
        let attr = der::seq(&[
            &der::oid("1.3.6.1.4.1.34380.1.2.1.1"),
            &der::set(&[&der::printable_string("my_value")]),
        ]);
        let odd = der::seq(&[&der::oid("1.2.3.4"), &der::set(&[&der::integer_u64(5)])]);
        let attrs = der::set_with_tag(0xa0, &[&attr, &odd]);
        let info = der::seq(&[&der::integer_u64(2), &name, &spki, &attrs]);
        let sig_alg = der::seq(&[&der::oid(oid::ECDSA_SHA256)]);
        let csr_der = der::seq(&[&info, &sig_alg, &der::bit_string(&[0x30, 0x00])]);
        let csr = Csr::parse(&csr_der).unwrap();
        assert_eq!(csr.version(), 2);
        assert_eq!(csr.challenge_password(), None);
        assert_eq!(
            csr.custom_attributes(),
            vec![
                ("1.2.3.4".to_string(), "#020105".to_string()),
                (
                    "1.3.6.1.4.1.34380.1.2.1.1".to_string(),
                    "my_value".to_string()
                ),
            ]
        );
        assert_eq!(csr.verify_signature(), Err(CsrError::BadSignature));

        let v1 = der::seq(&[&der::integer_u64(1), &name, &spki]);
        let bad = der::seq(&[&v1, &sig_alg, &der::bit_string(&[0x30, 0x00])]);
        assert_eq!(Csr::parse(&bad), Err(CsrError::UnsupportedVersion(1)));
    }

    #[test]
    fn duplicate_challenge_password_is_malformed() {
        let name = der::seq(&[]);
        let spki = der::seq(&[
            &der::seq(&[&der::oid(oid::EC_PUBLIC_KEY), &der::oid(oid::P256)]),
            &der::bit_string(&[4; 65]),
        ]);
        let cp = der::seq(&[
            &der::oid(oid::CHALLENGE_PASSWORD),
            &der::set(&[&der::utf8_string("a"), &der::utf8_string("b")]),
        ]);
        let info = der::seq(&[
            &der::integer_u64(0),
            &name,
            &spki,
            &der::set_with_tag(0xa0, &[&cp]),
        ]);
        let csr = der::seq(&[
            &info,
            &der::seq(&[&der::oid(oid::ECDSA_SHA256)]),
            &der::bit_string(&[0]),
        ]);
        assert!(matches!(Csr::parse(&csr), Err(CsrError::Malformed(_))));
    }

    #[test]
    fn fingerprint_format() {
        assert_eq!(
            fingerprint_sha256(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
        assert!(matches!(Csr::parse(b"hello"), Err(CsrError::Malformed(_))));
        assert!(matches!(Csr::parse(b""), Err(CsrError::Malformed(_))));
    }
}
