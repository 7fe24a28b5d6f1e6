//! The thin layer between our policy and RustCrypto's X.509 types (`der`, `x509-cert`,
//! `spki`, `pem-rfc7468`): PEM armour, times, names, extensions and public keys, read and
//! written the way every other module needs them.
//!
//! Everything here decodes with `der`, which refuses non-minimal lengths, indefinite
//! lengths, non-minimal integers, loose BOOLEANs and trailing bytes. The leniencies Puppet
//! needs are chosen here, by name: PEM layout (any line width, CRLF, text around blocks)
//! and string values read as `Any` where Puppet's encoders are sloppy.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use der::asn1::{Any, GeneralizedTime, Ia5StringRef, OctetString, UtcTime};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName as X509GeneralName;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::time::Time;

pub use der::asn1::ObjectIdentifier as Oid;

use crate::domain::csr::{CsrExtension, GeneralName};
use crate::oid;

/// Why a PEM text or DER object could not be read; the message says which part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Error(pub String);

impl fmt::Display for X509Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for X509Error {}

impl From<der::Error> for X509Error {
    fn from(e: der::Error) -> Self {
        X509Error(e.to_string())
    }
}

/// Adds which object was being read to a `der` error.
pub fn context(what: &'static str) -> impl Fn(der::Error) -> X509Error {
    move |e| X509Error(format!("{what}: {e}"))
}

/// A dotted OID string as an [`Oid`]; run-time strings (configuration, requests) included.
/// Refused unless the encoding reads back as the same string: const-oid 0.9 writes arcs
/// that are multiples of 128 wrongly, and such an OID must not be issued as another.
pub fn oid_of(dotted: &str) -> Result<Oid, X509Error> {
    let oid =
        Oid::new(dotted).map_err(|e| X509Error(format!("object identifier {dotted:?}: {e}")))?;
    if oid.to_string() != dotted {
        return Err(X509Error(format!(
            "object identifier {dotted:?} cannot be written exactly"
        )));
    }
    Ok(oid)
}

/// The dotted form of a decoded OID, refused unless it is canonical DER: const-oid 0.9
/// reads arcs with redundant leading 0x80 bytes, so without this check two encodings
/// could name one OID to our policy and another to a verifier.
pub fn dotted(oid: &Oid) -> Result<String, X509Error> {
    let text = oid.to_string();
    match Oid::new(&text) {
        Ok(again) if again.as_bytes() == oid.as_bytes() && again.to_string() == text => Ok(text),
        _ => Err(X509Error(format!(
            "object identifier {text} is not in canonical DER"
        ))),
    }
}

/// One PEM block, 64-column lines, LF line ends.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    // Only a label with characters RFC 7468 forbids can fail; ours are constants.
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der).unwrap_or_default()
}

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// Every PEM block in `text` as (label, DER), in order; text between blocks is ignored, as
/// OpenSSL ignores it (`openssl x509 -text` output, `EC PARAMETERS`).
///
/// Layout is forgiven (any line width, CRLF, a block squashed onto one line): each block's
/// base64 is re-wrapped at 64 columns, then `pem-rfc7468` decodes it strictly (label
/// grammar, no headers, canonical base64 and padding).
pub fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, X509Error> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = rest.get(start + BEGIN.len()..).unwrap_or_default();
        let label_end = after_begin
            .find(DASHES)
            .ok_or_else(|| X509Error("PEM BEGIN line is not closed by -----".into()))?;
        let label = after_begin.get(..label_end).unwrap_or_default();
        let body_start = after_begin
            .get(label_end + DASHES.len()..)
            .unwrap_or_default();
        let end_marker = format!("{END}{label}{DASHES}");
        let body_end = body_start.find(&end_marker).ok_or_else(|| {
            X509Error(format!(
                "PEM block {label} has no matching -----END {label}----- line"
            ))
        })?;
        let body: String = body_start
            .get(..body_end)
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let mut canonical = String::with_capacity(body.len() + body.len() / 64 + 64);
        canonical.push_str(BEGIN);
        canonical.push_str(label);
        canonical.push_str(DASHES);
        canonical.push('\n');
        for line in body.as_bytes().chunks(64) {
            canonical.push_str(&String::from_utf8_lossy(line));
            canonical.push('\n');
        }
        canonical.push_str(&end_marker);
        canonical.push('\n');
        let (_, der) = pem_rfc7468::decode_vec(canonical.as_bytes())
            .map_err(|e| X509Error(format!("PEM block {label}: {e}")))?;
        out.push((label.to_string(), der));
        rest = body_start
            .get(body_end + end_marker.len()..)
            .unwrap_or_default();
    }
    if out.is_empty() {
        return Err(X509Error(
            "no PEM block found (expected a -----BEGIN ...----- line)".into(),
        ));
    }
    Ok(out)
}

/// DER as given, or the first PEM block with `label`.
pub fn der_or_pem(input: &[u8], label: &str, what: &str) -> Result<Vec<u8>, X509Error> {
    if input.first() == Some(&0x30) {
        return Ok(input.to_vec());
    }
    let text = std::str::from_utf8(input)
        .map_err(|_| X509Error(format!("{what} is neither DER nor PEM")))?;
    pem_blocks(text)?
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, d)| d)
        .ok_or_else(|| X509Error(format!("no {label} block in the PEM")))
}

/// RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on.
pub fn time(unix: i64) -> Result<Time, X509Error> {
    let secs = u64::try_from(unix).map_err(|_| X509Error(format!("time {unix} is before 1970")))?;
    let dt = der::DateTime::from_unix_duration(Duration::from_secs(secs))
        .map_err(|e| X509Error(format!("time {unix}: {e}")))?;
    Ok(if dt.year() < 2050 {
        Time::UtcTime(UtcTime::from_date_time(dt)?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

/// Seconds since the epoch of an X.509 time.
pub fn unix(t: &Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// `CN=<common_name>` as one UTF8String, as puppetserver writes subjects and issuers.
pub fn cn_name(common_name: &str) -> Result<Name, X509Error> {
    let atv = AttributeTypeAndValue {
        oid: oid_of(oid::COMMON_NAME)?,
        value: Any::new(Tag::Utf8String, common_name.as_bytes())?,
    };
    let rdn = RelativeDistinguishedName::try_from(vec![atv])?;
    Ok(RdnSequence(vec![rdn]))
}

/// How strictly a name's CN values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CnStrictness {
    /// A request's subject: a CN is a UTF8String or a PrintableString holding printable
    /// ASCII (Puppet is sloppy about `_`); any other string type is refused.
    Request,
    /// A certificate or CRL already signed by a CA (ours, or one being imported): any
    /// string type, read leniently.
    Signed,
}

/// Every CN of a name, in order, and whether the name holds anything else.
pub fn common_names(
    name: &Name,
    strictness: CnStrictness,
) -> Result<(Vec<String>, bool), X509Error> {
    let cn = oid_of(oid::COMMON_NAME)?;
    let mut cns = Vec::new();
    let mut other = false;
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid != cn {
                other = true;
                continue;
            }
            let text = match strictness {
                CnStrictness::Request => strict_cn(&atv.value)?,
                CnStrictness::Signed => string_lossy(&atv.value),
            };
            cns.push(text);
        }
    }
    Ok((cns, other))
}

fn strict_cn(value: &Any) -> Result<String, X509Error> {
    match value.tag() {
        Tag::Utf8String => String::from_utf8(value.value().to_vec())
            .map_err(|_| X509Error("the subject CN is a UTF8String that is not UTF-8".into())),
        Tag::PrintableString if value.value().iter().all(|b| (0x20..0x7f).contains(b)) => {
            Ok(String::from_utf8_lossy(value.value()).into_owned())
        }
        Tag::PrintableString => Err(X509Error(
            "the subject CN is a PrintableString holding non-printable bytes".into(),
        )),
        other => Err(X509Error(format!(
            "the subject CN is written as {other}; only UTF8String or PrintableString is accepted"
        ))),
    }
}

/// Whether a tag is one of ASN.1's character string types.
pub fn is_string_tag(tag: Tag) -> bool {
    matches!(
        tag,
        Tag::Utf8String
            | Tag::PrintableString
            | Tag::TeletexString
            | Tag::Ia5String
            | Tag::VisibleString
            | Tag::BmpString
    ) || u8::from(tag) == 0x1c
}

/// A string value read the way Puppet writes them: any string type, bytes kept as text
/// (BMPString and UniversalString decoded from UCS-2/UCS-4), invalid UTF-8 replaced.
pub fn string_lossy(value: &Any) -> String {
    let bytes = value.value();
    match u8::from(value.tag()) {
        0x1e => char::decode_utf16(bytes.chunks(2).map(|c| {
            u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        }))
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect(),
        0x1c => bytes
            .chunks(4)
            .map(|c| {
                let mut b = [0u8; 4];
                for (d, s) in b.iter_mut().zip(c) {
                    *d = *s;
                }
                char::from_u32(u32::from_be_bytes(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Uppercase hex, for messages and the `#hex` form of values we do not read as text.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Extensions as the rest of the service sees them; the same OID twice is refused, since
/// a policy could check one copy while a verifier honours the other (RFC 5280 4.2).
pub fn extensions(list: Option<&Extensions>) -> Result<Vec<CsrExtension>, X509Error> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    let mut out = Vec::with_capacity(list.len());
    for ext in list {
        let oid = dotted(&ext.extn_id)?;
        if !seen.insert(ext.extn_id) {
            return Err(X509Error(format!("extension {oid} appears twice")));
        }
        out.push(CsrExtension {
            oid,
            critical: ext.critical,
            value: ext.extn_value.as_bytes().to_vec(),
        });
    }
    Ok(out)
}

/// One extension to write.
pub fn extension(oid: &str, critical: bool, value: Vec<u8>) -> Result<Extension, X509Error> {
    Ok(Extension {
        extn_id: oid_of(oid)?,
        critical,
        extn_value: OctetString::new(value)?,
    })
}

/// The GeneralNames of a subjectAltName value. Names we do not interpret (otherName,
/// directoryName, ...) come back as `Other` so a policy can refuse them.
pub fn general_names(value: &[u8]) -> Result<Vec<GeneralName>, X509Error> {
    let names =
        x509_cert::ext::pkix::SubjectAltName::from_der(value).map_err(context("subjectAltName"))?;
    names
        .0
        .iter()
        .map(|n| {
            Ok(match n {
                X509GeneralName::DnsName(s) => GeneralName::Dns(s.to_string()),
                X509GeneralName::Rfc822Name(s) => GeneralName::Email(s.to_string()),
                X509GeneralName::UniformResourceIdentifier(s) => GeneralName::Uri(s.to_string()),
                X509GeneralName::IpAddress(octets) => match octets.as_bytes().len() {
                    4 | 16 => GeneralName::Ip(ip_from(octets.as_bytes())),
                    _ => {
                        return Err(X509Error(
                            "IP address in subjectAltName is not 4 or 16 bytes".into(),
                        ))
                    }
                },
                X509GeneralName::OtherName(_) => GeneralName::Other { tag: 0xa0 },
                X509GeneralName::DirectoryName(_) => GeneralName::Other { tag: 0xa4 },
                X509GeneralName::EdiPartyName(_) => GeneralName::Other { tag: 0xa5 },
                X509GeneralName::RegisteredId(_) => GeneralName::Other { tag: 0x88 },
            })
        })
        .collect()
}

fn ip_from(bytes: &[u8]) -> IpAddr {
    if let Ok(b) = <[u8; 4]>::try_from(bytes) {
        IpAddr::from(b)
    } else {
        let mut b = [0u8; 16];
        for (d, s) in b.iter_mut().zip(bytes) {
            *d = *s;
        }
        IpAddr::from(b)
    }
}

/// A subjectAltName value (DER GeneralNames) for the names we write.
pub fn general_names_der(names: &[GeneralName]) -> Result<Vec<u8>, X509Error> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(match name {
            GeneralName::Dns(s) => X509GeneralName::DnsName(ia5(s)?),
            GeneralName::Email(s) => X509GeneralName::Rfc822Name(ia5(s)?),
            GeneralName::Uri(s) => X509GeneralName::UniformResourceIdentifier(ia5(s)?),
            GeneralName::Ip(IpAddr::V4(ip)) => {
                X509GeneralName::IpAddress(OctetString::new(ip.octets().to_vec())?)
            }
            GeneralName::Ip(IpAddr::V6(ip)) => {
                X509GeneralName::IpAddress(OctetString::new(ip.octets().to_vec())?)
            }
            GeneralName::Other { .. } => {
                return Err(X509Error(format!(
                    "cannot write subject alternative name {name}"
                )))
            }
        });
    }
    Ok(x509_cert::ext::pkix::SubjectAltName(out).to_der()?)
}

fn ia5(s: &str) -> Result<der::asn1::Ia5String, X509Error> {
    der::asn1::Ia5String::new(s)
        .map_err(|_| X509Error(format!("{s:?} is not an IA5String (ASCII)")))
}

/// A string extension value (pp_* extensions are one DER string), leniently, else None.
pub fn string_value(value: &[u8]) -> Option<String> {
    let any = Any::from_der(value).ok()?;
    is_string_tag(any.tag()).then(|| string_lossy(&any))
}

/// A UTF8String's DER.
pub fn utf8_string_der(value: &str) -> Vec<u8> {
    der::asn1::Utf8StringRef::new(value)
        .and_then(|s| s.to_der())
        .unwrap_or_default()
}

/// The IA5String bytes of a DER value, if that is what it is.
pub fn ia5_value(value: &[u8]) -> Option<String> {
    Ia5StringRef::from_der(value).ok().map(|s| s.to_string())
}
