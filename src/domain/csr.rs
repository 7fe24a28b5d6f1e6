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
use der::asn1::{Any, BitString, ObjectIdentifier, UintRef};
use der::{Decode, Encode, Reader as _, Sequence, SliceReader, Tag, Tagged};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::Extensions;

use crate::x509::{self, CnStrictness, X509Error};

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

impl From<X509Error> for CsrError {
    fn from(e: X509Error) -> Self {
        CsrError::Malformed(e.0)
    }
}

fn malformed(what: &'static str) -> impl Fn(der::Error) -> CsrError {
    move |e| CsrError::Malformed(format!("{what}: {e}"))
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
    pub fn from_tag(tag: Tag) -> Self {
        match tag {
            Tag::PrintableString => StringKind::Printable,
            Tag::Utf8String => StringKind::Utf8,
            Tag::Ia5String => StringKind::Ia5,
            t => StringKind::Other(u8::from(t)),
        }
    }

    pub fn tag(self) -> Tag {
        match self {
            StringKind::Printable => Tag::PrintableString,
            StringKind::Utf8 => Tag::Utf8String,
            StringKind::Ia5 => Tag::Ia5String,
            StringKind::Other(t) => Tag::try_from(t).unwrap_or(Tag::OctetString),
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
        x509::string_value(&self.value)
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

/// The public key in a SubjectPublicKeyInfo, as far as we need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyKind {
    /// `der` is the RSAPublicKey inside the BIT STRING, re-encoded from its two integers.
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

/// PKCS#1 RSAPublicKey.
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

impl PublicKeyKind {
    /// Reads a SubjectPublicKeyInfo (DER), strictly.
    pub fn from_spki(spki: &[u8]) -> Result<Self, X509Error> {
        let parsed =
            SubjectPublicKeyInfoOwned::from_der(spki).map_err(x509::context("public key"))?;
        Self::from_parsed(&parsed)
    }

    fn from_parsed(spki: &SubjectPublicKeyInfoOwned) -> Result<Self, X509Error> {
        let alg_oid = x509::dotted(&spki.algorithm.oid)?;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| X509Error("public key BIT STRING has unused bits".into()))?;
        Ok(match alg_oid.as_str() {
            oid::RSA_ENCRYPTION => {
                // RFC 3279: the parameters are NULL.
                if !is_null_or_absent(spki.algorithm.parameters.as_ref()) {
                    return Err(X509Error("RSA key with unexpected parameters".into()));
                }
                let key =
                    RsaPublicKey::from_der(key_bytes).map_err(x509::context("RSA public key"))?;
                let digits = key.modulus.as_bytes();
                let bits = match digits.first() {
                    Some(first) => digits.len() * 8 - first.leading_zeros() as usize,
                    None => 0,
                };
                PublicKeyKind::Rsa {
                    bits,
                    der: key.to_der()?,
                }
            }
            oid::EC_PUBLIC_KEY => {
                let curve = match &spki.algorithm.parameters {
                    Some(p) if p.tag() == Tag::ObjectIdentifier => x509::dotted(
                        &p.decode_as::<ObjectIdentifier>()
                            .map_err(x509::context("EC curve"))?,
                    )?,
                    _ => return Err(X509Error("EC key without a named curve".into())),
                };
                PublicKeyKind::Ec {
                    curve,
                    point: key_bytes.to_vec(),
                }
            }
            _ => PublicKeyKind::Other { oid: alg_oid },
        })
    }

    /// The SubjectPublicKeyInfo we certify: written from the parsed key, never copied from
    /// the request, so no byte the requester chose beyond the key itself is signed.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, X509Error> {
        let (algorithm, key) = match self {
            PublicKeyKind::Rsa { der, .. } => (
                AlgorithmIdentifierOwned {
                    oid: x509::oid_of(oid::RSA_ENCRYPTION)?,
                    parameters: Some(Any::new(Tag::Null, Vec::<u8>::new())?),
                },
                der,
            ),
            PublicKeyKind::Ec { curve, point } => (
                AlgorithmIdentifierOwned {
                    oid: x509::oid_of(oid::EC_PUBLIC_KEY)?,
                    parameters: Some(Any::from(x509::oid_of(curve)?)),
                },
                point,
            ),
            PublicKeyKind::Other { oid } => {
                return Err(X509Error(format!("cannot certify a key of type {oid}")))
            }
        };
        Ok(SubjectPublicKeyInfoOwned {
            algorithm,
            subject_public_key: BitString::from_bytes(key)?,
        }
        .to_der()?)
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

fn is_null_or_absent(params: Option<&Any>) -> bool {
    match params {
        None => true,
        Some(p) => p.tag() == Tag::Null && p.value().is_empty(),
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

/// CertificationRequest with the info kept as received, so the signature is checked over
/// exactly the bytes the requester signed.
#[derive(Sequence)]
struct CertReqDer {
    info: Any,
    algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// CertificationRequestInfo. The version is any INTEGER (we say which we accept); the
/// subject and attribute SETs are walked by hand so a hostile SET of thousands of
/// elements costs linear time, not the sort `SetOfVec` performs.
#[derive(Sequence)]
struct CertReqInfoDer {
    version: u64,
    subject: Any,
    public_key: SubjectPublicKeyInfoOwned,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    attributes: Option<Vec<AttributeDer>>,
}

#[derive(Sequence)]
struct AttributeDer {
    oid: ObjectIdentifier,
    values: Any,
}

/// The elements of a constructed value (a SET's contents), each as `T`.
fn elements<'a, T: Decode<'a>>(value: &'a Any, what: &'static str) -> Result<Vec<T>, CsrError> {
    let mut reader = SliceReader::new(value.value()).map_err(malformed(what))?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(T::decode(&mut reader).map_err(malformed(what))?);
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
    key: PublicKeyKind,
    challenge: Option<(String, StringKind)>,
    extensions: Vec<CsrExtension>,
    custom: Vec<(String, String)>,
    signature_algorithm: String,
    signature_params: Option<Any>,
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
        let der = if input.first() == Some(&0x30) {
            input.to_vec()
        } else {
            pem_csr_der(input)?
        };
        Csr::parse_der(der)
    }

    fn parse_der(der: Vec<u8>) -> Result<Csr, CsrError> {
        let outer = CertReqDer::from_der(&der).map_err(malformed("certificate request"))?;
        if outer.info.tag() != Tag::Sequence {
            return Err(CsrError::Malformed(
                "CertificationRequestInfo is not a SEQUENCE".into(),
            ));
        }
        let info_der = outer.info.to_der().map_err(malformed("request info"))?;
        let info = CertReqInfoDer::from_der(&info_der).map_err(malformed("request info"))?;
        if info.version != 0 && info.version != 2 {
            return Err(CsrError::UnsupportedVersion(info.version));
        }
        if info.subject.tag() != Tag::Sequence {
            return Err(CsrError::Malformed("subject is not a SEQUENCE".into()));
        }
        let (subject_cns, subject_other) = read_subject(&info.subject)?;
        let key = PublicKeyKind::from_parsed(&info.public_key)?;

        let mut challenge = None;
        let mut extensions = Vec::new();
        let mut extension_oids = std::collections::HashSet::new();
        let mut attribute_oids = std::collections::HashSet::new();
        let mut custom = Vec::new();
        for attr in info.attributes.iter().flatten() {
            let oid = x509::dotted(&attr.oid)?;
            if attr.values.tag() != Tag::Set {
                return Err(CsrError::Malformed(format!(
                    "attribute {oid}: values are not a SET"
                )));
            }
            // One attribute twice is as ambiguous as one extension twice: refuse it.
            if !attribute_oids.insert(attr.oid) {
                return Err(CsrError::Malformed(match oid.as_str() {
                    oid::CHALLENGE_PASSWORD => "more than one challengePassword".to_string(),
                    _ => format!("attribute {oid} appears twice"),
                }));
            }
            let values: Vec<Any> = elements(&attr.values, "attribute values")?;
            match oid.as_str() {
                oid::CHALLENGE_PASSWORD => {
                    // The password is the build token: an ambiguous one must not reach policy.
                    let [v] = values.as_slice() else {
                        return Err(CsrError::Malformed(
                            "more than one challengePassword".to_string(),
                        ));
                    };
                    if !x509::is_string_tag(v.tag()) {
                        return Err(CsrError::Malformed(format!(
                            "challengePassword is written as {}, not a string",
                            v.tag()
                        )));
                    }
                    challenge = Some((x509::string_lossy(v), StringKind::from_tag(v.tag())));
                }
                oid::EXTENSION_REQUEST | oid::MS_EXTENSION_REQUEST => {
                    for v in &values {
                        let list: Extensions =
                            v.decode_as().map_err(malformed("extensionRequest"))?;
                        for ext in x509::extensions(Some(&list))? {
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
                    for v in &values {
                        let text = if x509::is_string_tag(v.tag()) {
                            x509::string_lossy(v)
                        } else {
                            format!(
                                "#{}",
                                x509::hex(&v.to_der().map_err(malformed("attribute"))?)
                            )
                        };
                        custom.push((oid.clone(), text));
                    }
                }
            }
        }

        let signature = outer
            .signature
            .as_bytes()
            .ok_or_else(|| CsrError::Malformed("signature BIT STRING has unused bits".into()))?
            .to_vec();
        Ok(Csr {
            der,
            info: info_der,
            version: info.version,
            subject_cns,
            subject_other,
            key,
            challenge,
            extensions,
            custom,
            signature_algorithm: x509::dotted(&outer.algorithm.oid)?,
            signature_params: outer.algorithm.parameters,
            signature,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The CSR as PEM, as puppetserver stores and serves it.
    pub fn to_pem(&self) -> String {
        x509::pem_encode("CERTIFICATE REQUEST", &self.der)
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

    /// The SubjectPublicKeyInfo to certify, re-encoded from the parsed key.
    pub fn public_key_spki_der(&self) -> Result<Vec<u8>, X509Error> {
        self.key.to_spki_der()
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
            Some(ext) => x509::general_names(&ext.value)
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
            self.signature_params.as_ref(),
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

/// The subject's CNs (strictly typed: see [`CnStrictness::Request`]) and whether it holds
/// anything else. RDNs are read one element at a time (linear in the element count).
fn read_subject(subject: &Any) -> Result<(Vec<String>, bool), CsrError> {
    let rdns: Vec<Any> = elements(subject, "subject")?;
    let mut atvs = Vec::new();
    for rdn in &rdns {
        if rdn.tag() != Tag::Set {
            return Err(CsrError::Malformed("subject RDN is not a SET".into()));
        }
        let inner: Vec<AttributeTypeAndValue> = elements(rdn, "subject attribute")?;
        if inner.is_empty() {
            return Err(CsrError::Malformed("subject RDN is empty".into()));
        }
        atvs.extend(inner);
    }
    let cn = x509::oid_of(oid::COMMON_NAME)?;
    let mut cns = Vec::new();
    let mut other = false;
    for atv in atvs {
        if atv.oid == cn {
            let one = x509_cert::name::RdnSequence(vec![
                x509_cert::name::RelativeDistinguishedName::try_from(vec![atv])
                    .map_err(malformed("subject"))?,
            ]);
            let (mut found, _) = x509::common_names(&one, CnStrictness::Request)?;
            cns.append(&mut found);
        } else {
            other = true;
        }
    }
    Ok((cns, other))
}

/// The one place that decides which signatures the service accepts, for CSRs,
/// certificates and CRLs alike: RSA PKCS#1 v1.5 with SHA-256/384/512 on keys of at least
/// 2048 bits, and ECDSA on P-256/P-384. Returns the aws-lc-rs algorithm and the key bytes
/// it verifies with; `params` are the AlgorithmIdentifier parameters, if any.
pub fn verifier_for<'k>(
    key: &'k PublicKeyKind,
    sig_oid: &str,
    params: Option<&Any>,
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
            if !is_null_or_absent(params) {
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
    let blocks = x509::pem_blocks(text)?;
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
    use crate::ca::rawder;
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
        let blocks = x509::pem_blocks(std::str::from_utf8(pem_text).unwrap()).unwrap();
        let pem = x509::pem_encode("CERTIFICATE REQUEST", &blocks[0].1);
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
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
        assert_eq!(pp.value, rawder::utf8_string("abc"));
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
        let new_label = x509::pem_encode("NEW CERTIFICATE REQUEST", csr.der());
        assert_eq!(Csr::parse(new_label.as_bytes()).unwrap(), csr);

        // Rejections.
        let wrong = x509::pem_encode("CERTIFICATE", csr.der());
        assert_eq!(
            Csr::parse(wrong.as_bytes()),
            Err(CsrError::WrongPemLabel("CERTIFICATE".into()))
        );
        let truncated = &csr.der()[..csr.der().len() / 2];
        assert!(matches!(Csr::parse(truncated), Err(CsrError::Malformed(_))));
        let truncated_pem = x509::pem_encode("CERTIFICATE REQUEST", truncated);
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
        let name = rawder::seq(&[&rawder::set(&[&rawder::seq(&[
            &rawder::oid(oid::COMMON_NAME),
            &rawder::utf8_string("node1"),
        ])])]);
        let spki = rawder::seq(&[
            &rawder::seq(&[&rawder::oid(oid::EC_PUBLIC_KEY), &rawder::oid(oid::P256)]),
            &rawder::bit_string(&[4; 65]),
        ]);
        let attr = rawder::seq(&[
            &rawder::oid("1.3.6.1.4.1.34380.1.2.1.1"),
            &rawder::set(&[&rawder::tlv(
                rawder::PRINTABLE_STRING,
                "my_value".as_bytes(),
            )]),
        ]);
        let odd = rawder::seq(&[
            &rawder::oid("1.2.3.4"),
            &rawder::set(&[&rawder::integer_u64(5)]),
        ]);
        let attrs = rawder::tlv(0xa0, &[odd.as_slice(), &attr].concat());
        let info = rawder::seq(&[&rawder::integer_u64(2), &name, &spki, &attrs]);
        let sig_alg = rawder::seq(&[&rawder::oid(oid::ECDSA_SHA256)]);
        let csr_der = rawder::seq(&[&info, &sig_alg, &rawder::bit_string(&[0x30, 0x00])]);
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

        let v1 = rawder::seq(&[&rawder::integer_u64(1), &name, &spki]);
        let bad = rawder::seq(&[&v1, &sig_alg, &rawder::bit_string(&[0x30, 0x00])]);
        assert_eq!(Csr::parse(&bad), Err(CsrError::UnsupportedVersion(1)));
    }

    #[test]
    fn duplicate_challenge_password_is_malformed() {
        let name = rawder::seq(&[]);
        let spki = rawder::seq(&[
            &rawder::seq(&[&rawder::oid(oid::EC_PUBLIC_KEY), &rawder::oid(oid::P256)]),
            &rawder::bit_string(&[4; 65]),
        ]);
        let cp = rawder::seq(&[
            &rawder::oid(oid::CHALLENGE_PASSWORD),
            &rawder::set(&[&rawder::utf8_string("a"), &rawder::utf8_string("b")]),
        ]);
        let info = rawder::seq(&[
            &rawder::integer_u64(0),
            &name,
            &spki,
            &rawder::tlv(0xa0, &cp),
        ]);
        let csr = rawder::seq(&[
            &info,
            &rawder::seq(&[&rawder::oid(oid::ECDSA_SHA256)]),
            &rawder::bit_string(&[0]),
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

    /// A CSR assembled by hand from its parts and signed with a real key, so a test can
    /// put one hostile encoding in one place and keep everything else valid.
    struct Parts {
        version: Vec<u8>,
        subject: Vec<u8>,
        spki: Vec<u8>,
        attributes: Vec<u8>,
        sig_alg: Vec<u8>,
    }

    fn cn(tag: u8, value: &[u8]) -> Vec<u8> {
        rawder::seq(&[&rawder::set(&[&rawder::seq(&[
            &rawder::oid(oid::COMMON_NAME),
            &rawder::tlv(tag, value),
        ])])])
    }

    fn ext_request(exts: &[&[u8]]) -> Vec<u8> {
        rawder::seq(&[
            &rawder::oid(oid::EXTENSION_REQUEST),
            &rawder::set(&[&rawder::seq(exts)]),
        ])
    }

    fn pp_ext(oid: &str, critical: Option<&[u8]>, value: &str) -> Vec<u8> {
        let value = rawder::octet_string(&rawder::utf8_string(value));
        match critical {
            Some(flag) => rawder::seq(&[&rawder::oid(oid), flag, &value]),
            None => rawder::seq(&[&rawder::oid(oid), &value]),
        }
    }

    impl Parts {
        fn new(key: &crate::ca::signer::SoftwareKey) -> Parts {
            use crate::ca::signer::Signer;
            Parts {
                version: rawder::integer_u64(0),
                subject: cn(rawder::UTF8_STRING, b"node1.example.com"),
                spki: key.spki_der().to_vec(),
                attributes: rawder::tlv(0xa0, &[]),
                sig_alg: key.signature_algorithm_der(),
            }
        }

        fn info(&self) -> Vec<u8> {
            rawder::seq(&[&self.version, &self.subject, &self.spki, &self.attributes])
        }

        fn signed(&self, key: &crate::ca::signer::SoftwareKey) -> Vec<u8> {
            use crate::ca::signer::Signer;
            let info = self.info();
            let sig = key.sign(&info).unwrap();
            rawder::seq(&[&info, &self.sig_alg, &rawder::bit_string(&sig)])
        }
    }

    fn refused(der: &[u8], why: &str) {
        match Csr::parse(der) {
            Err(CsrError::Malformed(m)) => assert!(
                m.to_lowercase().contains(&why.to_lowercase()),
                "expected a reason mentioning {why:?}, got {m:?}"
            ),
            other => panic!("expected Malformed({why:?}), got {other:?}"),
        }
    }

    /// Rewrites the outermost length as `0x80|n` followed by n bytes with leading zeros:
    /// the same value, non-minimally encoded.
    fn non_minimal_outer_length(der: &[u8]) -> Vec<u8> {
        let (len_bytes, rest) = match der[1] {
            b if b < 0x80 => (vec![b], &der[2..]),
            b => {
                let n = usize::from(b & 0x7f);
                (der[2..2 + n].to_vec(), &der[2 + n..])
            }
        };
        let mut out = vec![der[0], 0x80 | (len_bytes.len() as u8 + 1), 0];
        out.extend_from_slice(&len_bytes);
        out.extend_from_slice(rest);
        out
    }

    #[test]
    fn hostile_encodings_are_refused_with_a_reason() {
        use crate::ca::signer::{KeyAlgorithm, SoftwareKey};
        let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let good = Parts::new(&key).signed(&key);
        let csr = Csr::parse(&good).unwrap();
        csr.verify_signature().unwrap();
        assert_eq!(csr.subject_common_names(), vec!["node1.example.com"]);

        // Trailing bytes after the request.
        let mut trailing = good.clone();
        trailing.push(0);
        refused(&trailing, "trailing");

        // The same request with a non-minimal outer length.
        refused(&non_minimal_outer_length(&good), "");
        assert!(Csr::parse(&non_minimal_outer_length(&good)).is_err());

        // Indefinite length (BER, never DER).
        let inner = &good[4..];
        let mut indefinite = vec![0x30, 0x80];
        indefinite.extend_from_slice(inner);
        indefinite.extend_from_slice(&[0, 0]);
        assert!(matches!(
            Csr::parse(&indefinite),
            Err(CsrError::Malformed(_))
        ));

        // A version INTEGER with a redundant leading zero.
        let mut p = Parts::new(&key);
        p.version = vec![rawder::INTEGER, 2, 0, 0];
        assert!(matches!(
            Csr::parse(&p.signed(&key)),
            Err(CsrError::Malformed(_))
        ));

        // Wrong string tags in the CN: IA5String, T61String, BMPString, an INTEGER.
        for tag in [rawder::IA5_STRING, 0x14, 0x1e, rawder::INTEGER] {
            let mut p = Parts::new(&key);
            p.subject = cn(tag, b"node1");
            refused(&p.signed(&key), "CN");
        }
        // A PrintableString CN is read (Puppet is sloppy about `_`), a UTF8String CN
        // holding invalid UTF-8 is not.
        let mut p = Parts::new(&key);
        p.subject = cn(rawder::PRINTABLE_STRING, b"node_1");
        assert_eq!(
            Csr::parse(&p.signed(&key)).unwrap().subject_common_names(),
            vec!["node_1"]
        );
        p.subject = cn(rawder::UTF8_STRING, &[0x6e, 0xff, 0xfe]);
        refused(&p.signed(&key), "CN");

        // The same extension twice, in one extensionRequest and across two.
        let uuid = pp_ext(PP_UUID, None, "a");
        let uuid2 = pp_ext(PP_UUID, None, "b");
        let mut p = Parts::new(&key);
        p.attributes = rawder::tlv(0xa0, &ext_request(&[&uuid, &uuid2]));
        refused(&p.signed(&key), "twice");
        let ms = rawder::seq(&[
            &rawder::oid(oid::MS_EXTENSION_REQUEST),
            &rawder::set(&[&rawder::seq(&[&uuid2])]),
        ]);
        p.attributes = rawder::tlv(0xa0, &[ext_request(&[&uuid]), ms].concat());
        refused(&p.signed(&key), "twice");

        // A loose BOOLEAN (0x01 for TRUE) and an explicit DEFAULT FALSE.
        let loose = pp_ext(PP_UUID, Some(&[rawder::BOOLEAN, 1, 1]), "a");
        p.attributes = rawder::tlv(0xa0, &ext_request(&[&loose]));
        assert!(matches!(
            Csr::parse(&p.signed(&key)),
            Err(CsrError::Malformed(_))
        ));
        let strict = pp_ext(PP_UUID, Some(&[rawder::BOOLEAN, 1, 0xff]), "a");
        p.attributes = rawder::tlv(0xa0, &ext_request(&[&strict]));
        let parsed = Csr::parse(&p.signed(&key)).unwrap();
        assert!(parsed.extensions()[0].critical);

        // An AlgorithmIdentifier with an extra element.
        let mut p = Parts::new(&key);
        p.sig_alg = rawder::seq(&[
            &rawder::oid(oid::ECDSA_SHA256),
            &[0x05, 0x00],
            &[0x05, 0x00],
        ]);
        assert!(matches!(
            Csr::parse(&p.signed(&key)),
            Err(CsrError::Malformed(_))
        ));

        // The same attribute twice.
        let custom = rawder::seq(&[
            &rawder::oid("1.3.6.1.4.1.34380.1.2.1.1"),
            &rawder::set(&[&rawder::utf8_string("x")]),
        ]);
        let mut p = Parts::new(&key);
        p.attributes = rawder::tlv(0xa0, &[custom.clone(), custom].concat());
        refused(&p.signed(&key), "twice");
    }

    #[test]
    fn the_certified_key_is_written_anew_from_the_parsed_key() {
        use crate::ca::signer::{KeyAlgorithm, Signer, SoftwareKey};
        let key = SoftwareKey::generate(KeyAlgorithm::Rsa2048).unwrap();
        // rsaEncryption without its NULL parameters: the key is the same, the bytes are
        // the requester's choice. What we certify is the canonical form.
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(key.spki_der()).unwrap();
        let loose = rawder::seq(&[
            &rawder::seq(&[&rawder::oid(oid::RSA_ENCRYPTION)]),
            &rawder::bit_string(spki.subject_public_key.raw_bytes()),
        ]);
        let mut p = Parts::new(&key);
        p.spki = loose.clone();
        let csr = Csr::parse(&p.signed(&key)).unwrap();
        csr.verify_signature().unwrap();
        let certified = csr.public_key_spki_der().unwrap();
        assert_ne!(certified, loose);
        assert_eq!(certified, key.spki_der());

        // An RSA key whose modulus INTEGER carries a redundant leading zero is refused.
        let rsa = RsaPublicKey::from_der(spki.subject_public_key.raw_bytes()).unwrap();
        let mut modulus = vec![0, 0];
        modulus.extend_from_slice(rsa.modulus.as_bytes());
        let bad_key = rawder::seq(&[
            &rawder::tlv(rawder::INTEGER, &modulus),
            &rawder::tlv(rawder::INTEGER, rsa.public_exponent.as_bytes()),
        ]);
        p.spki = rawder::seq(&[
            &rawder::seq(&[&rawder::oid(oid::RSA_ENCRYPTION), &[0x05, 0x00]]),
            &rawder::bit_string(&bad_key),
        ]);
        assert!(matches!(
            Csr::parse(&p.signed(&key)),
            Err(CsrError::Malformed(_))
        ));
    }

    #[test]
    fn object_identifiers_must_be_canonical_and_writable() {
        // An arc with a redundant leading 0x80 byte reads, in const-oid, as the canonical
        // OID: refused, so no two encodings name one OID.
        let non_minimal = [0x06, 0x04, 0x2b, 0x80, 0x06, 0x01];
        let oid = ObjectIdentifier::from_der(&non_minimal).unwrap();
        assert!(x509::dotted(&oid).is_err());
        // const-oid writes arcs that are multiples of 128 wrongly: such a dotted string is
        // neither read from a request nor written into a certificate.
        let arc_128 = [0x06, 0x05, 0x2b, 0x81, 0x00, 0x00, 0x22];
        let oid = ObjectIdentifier::from_der(&arc_128).unwrap();
        assert!(x509::dotted(&oid).is_err());
        assert!(x509::oid_of("1.3.6.1.4.1.34380.1.2.128").is_err());
        assert_eq!(
            x509::dotted(&x509::oid_of(oid::PP_CLI_AUTH).unwrap()).unwrap(),
            oid::PP_CLI_AUTH
        );

        // In a request: an extension OID written non-minimally is refused.
        use crate::ca::signer::{KeyAlgorithm, SoftwareKey};
        let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let mut oid_bytes = rawder::oid("1.3.6.1.4.1.34380.1.1.1");
        // 06 len 2b 06 01 04 01 82 8c 4c 01 01 01: put a redundant 0x80 before arc 34380.
        let at = oid_bytes.iter().position(|b| *b == 0x82).unwrap();
        oid_bytes.insert(at, 0x80);
        oid_bytes[1] += 1;
        let ext = rawder::seq(&[&oid_bytes, &rawder::octet_string(&rawder::utf8_string("x"))]);
        let mut p = Parts::new(&key);
        p.attributes = rawder::tlv(0xa0, &ext_request(&[&ext]));
        refused(&p.signed(&key), "canonical");
    }
}
