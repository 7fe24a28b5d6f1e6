//! Test-only DER writing by hand, for the hostile encodings no library will produce
//! (non-minimal lengths, wrong string tags, duplicate fields). Valid parts (OIDs, times)
//! come from `der` so only the deliberately broken bytes are ours.

pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const UTF8_STRING: u8 = 0x0c;
pub const PRINTABLE_STRING: u8 = 0x13;
pub const IA5_STRING: u8 = 0x16;
pub const UTC_TIME: u8 = 0x17;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const ENUMERATED: u8 = 0x0a;

pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(value);
    out
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// Elements in the order given (a test decides whether they are sorted).
pub fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SET, &parts.concat())
}

pub fn oid(dotted: &str) -> Vec<u8> {
    use der::Encode;
    der::asn1::ObjectIdentifier::new(dotted)
        .unwrap()
        .to_der()
        .unwrap()
}

pub fn utf8_string(s: &str) -> Vec<u8> {
    tlv(UTF8_STRING, s.as_bytes())
}

pub fn octet_string(v: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, v)
}

pub fn bit_string(v: &[u8]) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(v);
    tlv(BIT_STRING, &body)
}

pub fn integer_u64(v: u64) -> Vec<u8> {
    use der::Encode;
    v.to_der().unwrap()
}

pub fn time(unix: i64) -> Vec<u8> {
    use der::Encode;
    crate::x509::time(unix).unwrap().to_der().unwrap()
}
