//! Minimal DER reader and writer: just enough ASN.1 for CSRs, certificates and keys.
//!
//! The reader is strict about framing (lengths, tags) because that is where parser
//! confusion comes from, and lenient about string contents because Puppet agents write
//! PrintableStrings holding characters PrintableString does not allow.

use std::cmp::Ordering;
use std::fmt;

pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const UTF8_STRING: u8 = 0x0c;
pub const PRINTABLE_STRING: u8 = 0x13;
pub const T61_STRING: u8 = 0x14;
pub const IA5_STRING: u8 = 0x16;
pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const VISIBLE_STRING: u8 = 0x1a;
pub const UNIVERSAL_STRING: u8 = 0x1c;
pub const BMP_STRING: u8 = 0x1e;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;

/// Tag of a context-specific constructed field, `[n]` holding other TLVs (e.g. `[0] EXPLICIT`).
pub const fn context_constructed(n: u8) -> u8 {
    0xa0 | (n & 0x1f)
}

/// Tag of a context-specific primitive field, `[n] IMPLICIT` over a primitive type.
pub const fn context_primitive(n: u8) -> u8 {
    0x80 | (n & 0x1f)
}

/// Why some bytes are not the DER we expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerError(pub &'static str);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DerError {}

/// One tag-length-value element, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    /// Header and value exactly as received, for signatures and fingerprints.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over the contents, for constructed types.
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.value)
    }

    /// Contents of a BIT STRING with no unused bits (keys, signatures).
    pub fn bit_string_bytes(&self) -> Result<&'a [u8], DerError> {
        if self.tag != BIT_STRING {
            return Err(DerError("expected a BIT STRING"));
        }
        match self.value.split_first() {
            Some((0, rest)) => Ok(rest),
            Some(_) => Err(DerError("BIT STRING has unused bits")),
            None => Err(DerError("empty BIT STRING")),
        }
    }

    /// An INTEGER read as a non-negative u64.
    pub fn as_u64(&self) -> Result<u64, DerError> {
        if self.tag != INTEGER {
            return Err(DerError("expected an INTEGER"));
        }
        uint_from_be(self.value)
    }
}

/// Reads an INTEGER's contents as a non-negative u64.
pub fn uint_from_be(value: &[u8]) -> Result<u64, DerError> {
    match value.first() {
        None => return Err(DerError("empty INTEGER")),
        Some(b) if b & 0x80 != 0 => return Err(DerError("negative INTEGER")),
        Some(_) => {}
    }
    let digits = strip_leading_zeros(value);
    if digits.len() > 8 {
        return Err(DerError("INTEGER too large"));
    }
    Ok(digits
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first_nonzero = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first_nonzero..).unwrap_or_default()
}

/// Walks a sequence of TLVs.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input }
    }

    pub fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let input = self.input;
        let tag = *input.first().ok_or(DerError("unexpected end of data"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte tags are not supported"));
        }
        let first_len = *input.get(1).ok_or(DerError("missing length"))?;
        let (header_len, len) = match first_len {
            0x80 => return Err(DerError("indefinite length is not DER")),
            n if n < 0x80 => (2usize, usize::from(n)),
            n => {
                let count = usize::from(n & 0x7f);
                if count > 4 {
                    return Err(DerError("length field longer than 4 bytes"));
                }
                let bytes = input
                    .get(2..2 + count)
                    .ok_or(DerError("truncated length"))?;
                let len = bytes
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                (2 + count, len)
            }
        };
        let end = header_len
            .checked_add(len)
            .ok_or(DerError("length overflows"))?;
        let raw = input
            .get(..end)
            .ok_or(DerError("length runs past the end of the data"))?;
        let value = raw.get(header_len..).ok_or(DerError("bad header"))?;
        self.input = input.get(end..).unwrap_or_default();
        Ok(Tlv { tag, value, raw })
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.input.first().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.input
    }

    pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, DerError> {
        if self.peek_tag() != Some(tag) {
            return Err(DerError(tag_mismatch_message(tag)));
        }
        self.read()
    }

    /// Reads the next element only if it has this tag (OPTIONAL / DEFAULT fields).
    pub fn read_optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.read().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails when anything is left: trailing bytes would be unsigned, unchecked content.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(DerError("unexpected trailing data"))
        }
    }
}

fn tag_mismatch_message(tag: u8) -> &'static str {
    match tag {
        BOOLEAN => "expected a BOOLEAN",
        INTEGER => "expected an INTEGER",
        BIT_STRING => "expected a BIT STRING",
        OCTET_STRING => "expected an OCTET STRING",
        NULL => "expected NULL",
        OID => "expected an OBJECT IDENTIFIER",
        SEQUENCE => "expected a SEQUENCE",
        SET => "expected a SET",
        UTC_TIME | GENERALIZED_TIME => "expected a time",
        t if t & 0xc0 == 0x80 => "expected a context-specific field",
        _ => "unexpected tag",
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Fits in 7 bits, so the cast cannot truncate.
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let digits = strip_leading_zeros(&bytes);
    // At most size_of::<usize>() digits, so the count fits in 7 bits.
    out.push(0x80 | digits.len() as u8);
    out.extend_from_slice(digits);
}

pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    push_len(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

/// A constructed element whose contents are the given encodings, in order.
pub fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    constructed(SEQUENCE, parts)
}

/// SET OF: DER wants the encodings in ascending order, compared as octet strings with the
/// shorter one padded with zeros (X.690 11.6).
pub fn set(parts: &[&[u8]]) -> Vec<u8> {
    set_with_tag(SET, parts)
}

/// A SET OF under another tag, e.g. `[0] IMPLICIT SET OF Attribute` in a CSR.
pub fn set_with_tag(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut sorted: Vec<&[u8]> = parts.to_vec();
    sorted.sort_by(|a, b| der_set_order(a, b));
    tlv(tag, &sorted.concat())
}

fn der_set_order(a: &[u8], b: &[u8]) -> Ordering {
    let len = a.len().max(b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    Ordering::Equal
}

/// Encoded OID TLV. Our OIDs are constants or were read from DER; should one still be
/// unparsable, this returns the empty OID `06 00`, which every decoder rejects, so the
/// mistake cannot produce a valid-looking object. Use [`try_oid`] to handle it.
pub fn oid(dotted: &str) -> Vec<u8> {
    try_oid(dotted).unwrap_or_else(|_| vec![OID, 0])
}

/// Encoded OID TLV, or why the dotted string is not an OID.
pub fn try_oid(dotted: &str) -> Result<Vec<u8>, DerError> {
    let mut arcs = dotted.split('.').map(|s| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            Err(DerError("OID arc is not a number"))
        } else {
            s.parse::<u128>().map_err(|_| DerError("OID arc too large"))
        }
    });
    let first = arcs.next().ok_or(DerError("empty OID"))??;
    let second = arcs.next().ok_or(DerError("OID needs two arcs"))??;
    if first > 2 || (first < 2 && second >= 40) {
        return Err(DerError("invalid first OID arcs"));
    }
    let mut body = Vec::new();
    let head = first
        .checked_mul(40)
        .and_then(|v| v.checked_add(second))
        .ok_or(DerError("OID arc too large"))?;
    push_base128(&mut body, head);
    for arc in arcs {
        push_base128(&mut body, arc?);
    }
    Ok(tlv(OID, &body))
}

fn push_base128(out: &mut Vec<u8>, mut v: u128) {
    let mut digits = [0u8; 19];
    let mut n = 0;
    loop {
        if let Some(slot) = digits.get_mut(n) {
            *slot = (v & 0x7f) as u8;
        }
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        let d = digits.get(i).copied().unwrap_or(0);
        out.push(if i == 0 { d } else { d | 0x80 });
    }
}

/// Dotted form of an OID's contents (the value, not the TLV).
pub fn oid_to_string(value: &[u8]) -> Option<String> {
    let mut arcs: Vec<u128> = Vec::new();
    let mut acc: u128 = 0;
    let mut in_arc = false;
    for b in value {
        if !in_arc && *b == 0x80 {
            // Non-minimal encoding: leading zero digit.
            return None;
        }
        acc = acc.checked_mul(128)?.checked_add(u128::from(b & 0x7f))?;
        in_arc = true;
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
            in_arc = false;
        }
    }
    if in_arc || arcs.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (i, arc) in arcs.iter().enumerate() {
        if i == 0 {
            let (a, b) = match arc {
                0..=39 => (0, *arc),
                40..=79 => (1, arc - 40),
                _ => (2, arc - 80),
            };
            out.push_str(&format!("{a}.{b}"));
        } else {
            out.push_str(&format!(".{arc}"));
        }
    }
    Some(out)
}

/// INTEGER from big-endian magnitude bytes: minimal, and positive (0x00 added if the high bit is set).
pub fn integer_unsigned(bytes: &[u8]) -> Vec<u8> {
    let digits = strip_leading_zeros(bytes);
    let mut body = Vec::with_capacity(digits.len() + 1);
    match digits.first() {
        None => body.push(0),
        Some(b) if b & 0x80 != 0 => body.push(0),
        Some(_) => {}
    }
    body.extend_from_slice(digits);
    tlv(INTEGER, &body)
}

pub fn integer_u64(v: u64) -> Vec<u8> {
    integer_unsigned(&v.to_be_bytes())
}

pub fn boolean(v: bool) -> Vec<u8> {
    tlv(BOOLEAN, &[if v { 0xff } else { 0x00 }])
}

pub fn null() -> Vec<u8> {
    vec![NULL, 0]
}

pub fn octet_string(v: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, v)
}

/// BIT STRING of whole bytes (keys, signatures).
pub fn bit_string(v: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(v.len() + 1);
    body.push(0);
    body.extend_from_slice(v);
    tlv(BIT_STRING, &body)
}

/// Named-bit BIT STRING (keyUsage): bit 0 is the most significant bit of the first byte.
/// DER drops trailing zero bits, so the unused-bit count follows the last set bit.
pub fn named_bits(bits: &[u8]) -> Vec<u8> {
    let Some(max) = bits.iter().copied().max() else {
        return tlv(BIT_STRING, &[0]);
    };
    let mut bytes = vec![0u8; usize::from(max / 8) + 1];
    for bit in bits {
        if let Some(byte) = bytes.get_mut(usize::from(bit / 8)) {
            *byte |= 0x80 >> (bit % 8);
        }
    }
    let unused = 7 - (max % 8);
    let mut body = vec![unused];
    body.extend_from_slice(&bytes);
    tlv(BIT_STRING, &body)
}

pub fn utf8_string(s: &str) -> Vec<u8> {
    tlv(UTF8_STRING, s.as_bytes())
}

/// Written as given: callers reproducing Puppet's CSRs need characters PrintableString forbids.
pub fn printable_string(s: &str) -> Vec<u8> {
    tlv(PRINTABLE_STRING, s.as_bytes())
}

pub fn ia5_string(s: &str) -> Vec<u8> {
    tlv(IA5_STRING, s.as_bytes())
}

/// Is this tag one of the ASN.1 character string types?
pub fn is_string_tag(tag: u8) -> bool {
    matches!(
        tag,
        UTF8_STRING
            | 0x12 // NumericString
            | PRINTABLE_STRING
            | T61_STRING
            | 0x15 // VideotexString
            | IA5_STRING
            | 0x19 // GraphicString
            | VISIBLE_STRING
            | 0x1b // GeneralString
            | UNIVERSAL_STRING
            | BMP_STRING
    )
}

/// String contents read leniently whatever the tag claims: BMP and Universal strings are
/// decoded as UTF-16/UTF-32, everything else as UTF-8 with invalid bytes replaced.
pub fn string_lossy(tag: u8, value: &[u8]) -> String {
    match tag {
        BMP_STRING => {
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| {
                    let hi = c.first().copied().unwrap_or(0);
                    let lo = c.get(1).copied().unwrap_or(0);
                    u16::from_be_bytes([hi, lo])
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        UNIVERSAL_STRING => value
            .chunks(4)
            .map(|c| {
                let mut b = [0u8; 4];
                for (dst, src) in b.iter_mut().zip(c) {
                    *dst = *src;
                }
                char::from_u32(u32::from_be_bytes(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        _ => String::from_utf8_lossy(value).into_owned(),
    }
}

/// Time for certificate validity: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280
/// 4.1.2.5). Years before 1950 also need GeneralizedTime.
pub fn time(unix_secs: i64) -> Vec<u8> {
    let (year, month, day, hh, mm, ss) = civil_from_unix(unix_secs);
    if (1950..2050).contains(&year) {
        let s = format!(
            "{:02}{month:02}{day:02}{hh:02}{mm:02}{ss:02}Z",
            year.rem_euclid(100)
        );
        tlv(UTC_TIME, s.as_bytes())
    } else {
        let s = format!("{year:04}{month:02}{day:02}{hh:02}{mm:02}{ss:02}Z");
        tlv(GENERALIZED_TIME, s.as_bytes())
    }
}

/// Reads a UTCTime or GeneralizedTime in the `Z` forms RFC 5280 allows (seconds optional in
/// UTCTime, fractional seconds ignored in GeneralizedTime) as unix seconds.
pub fn parse_time(t: &Tlv<'_>) -> Result<i64, DerError> {
    let s = std::str::from_utf8(t.value).map_err(|_| DerError("time is not ASCII"))?;
    let s = s
        .strip_suffix('Z')
        .ok_or(DerError("time is not in UTC (no Z)"))?;
    let num = |range: std::ops::Range<usize>| -> Result<i64, DerError> {
        let part = s.get(range).ok_or(DerError("time too short"))?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DerError("time has non-digits"));
        }
        part.parse::<i64>().map_err(|_| DerError("bad time"))
    };
    let (year, rest) = match t.tag {
        UTC_TIME => {
            let yy = num(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        GENERALIZED_TIME => (num(0..4)?, 4),
        _ => return Err(DerError("expected a time")),
    };
    let month = num(rest..rest + 2)?;
    let day = num(rest + 2..rest + 4)?;
    let hh = num(rest + 4..rest + 6)?;
    let mm = num(rest + 6..rest + 8)?;
    let ss = if s.len() > rest + 8 {
        num(rest + 8..rest + 10)?
    } else {
        0
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return Err(DerError("time field out of range"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hh * 3600 + mm * 60 + ss)
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_unix(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, sod / 3600, (sod % 3600) / 60, sod % 60)
}

/// Uppercase hex, for messages about unexpected bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_uses_utctime_before_2050_and_generalized_after() {
        assert_eq!(time(0), tlv(UTC_TIME, b"700101000000Z"));
        assert_eq!(time(2_524_607_999), tlv(UTC_TIME, b"491231235959Z"));
        assert_eq!(
            time(2_524_608_000),
            tlv(GENERALIZED_TIME, b"20500101000000Z")
        );
        assert_eq!(
            time(-631_152_001),
            tlv(GENERALIZED_TIME, b"19491231235959Z")
        );
        assert_eq!(time(1_714_564_800), tlv(UTC_TIME, b"240501120000Z"));
        for t in [
            0,
            951_782_400,
            1_714_564_800,
            2_524_607_999,
            2_524_608_000,
            4_102_444_800,
            -631_152_000,
        ] {
            let enc = time(t);
            let tlv = Reader::new(&enc).read().unwrap();
            assert_eq!(parse_time(&tlv).unwrap(), t, "round trip of {t}");
        }
    }

    #[test]
    fn parse_time_accepts_utctime_without_seconds() {
        let t = tlv(UTC_TIME, b"2405011200Z");
        assert_eq!(
            parse_time(&Reader::new(&t).read().unwrap()).unwrap(),
            1_714_564_800
        );
        let bad = tlv(UTC_TIME, b"240501120000+0100");
        assert!(parse_time(&Reader::new(&bad).read().unwrap()).is_err());
    }

    #[test]
    fn oid_with_large_arcs_round_trips() {
        let enc = oid("1.3.6.1.4.1.34380.1.1.1");
        assert_eq!(
            enc,
            vec![0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x8c, 0x4c, 0x01, 0x01, 0x01]
        );
        let t = Reader::new(&enc).read().unwrap();
        assert_eq!(oid_to_string(t.value).unwrap(), "1.3.6.1.4.1.34380.1.1.1");
        for s in [
            "2.5.29.17",
            "1.2.840.113549.1.9.14",
            "2.999.3",
            "1.3.6.1.4.1.311.2.1.14",
            "0.0",
            "2.25.329800735698586629295641978511506172918",
        ] {
            let enc = try_oid(s).unwrap();
            let t = Reader::new(&enc).read().unwrap();
            assert_eq!(oid_to_string(t.value).unwrap(), s);
        }
        assert!(try_oid("1.40").is_err());
        assert!(try_oid("3.1").is_err());
        assert!(try_oid("1..2").is_err());
        assert!(try_oid("1").is_err());
        assert!(try_oid("1.2.x").is_err());
        assert_eq!(oid("nope"), vec![0x06, 0x00]);
        assert_eq!(oid_to_string(&[0x2b, 0x86]), None);
        assert_eq!(oid_to_string(&[]), None);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(integer_unsigned(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(
            integer_unsigned(&[0x00, 0x00, 0x7f]),
            vec![0x02, 0x01, 0x7f]
        );
        assert_eq!(integer_unsigned(&[]), vec![0x02, 0x01, 0x00]);
        assert_eq!(integer_u64(0), vec![0x02, 0x01, 0x00]);
        assert_eq!(integer_u64(255), vec![0x02, 0x02, 0x00, 0xff]);
        assert_eq!(
            integer_u64(u64::MAX),
            vec![0x02, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        let enc = integer_u64(0x1234_5678);
        assert_eq!(
            Reader::new(&enc).read().unwrap().as_u64().unwrap(),
            0x1234_5678
        );
        let neg = tlv(INTEGER, &[0xff]);
        assert!(Reader::new(&neg).read().unwrap().as_u64().is_err());
    }

    #[test]
    fn long_lengths_round_trip() {
        let big = vec![7u8; 70_000];
        let enc = octet_string(&big);
        assert_eq!(&enc[..5], &[0x04, 0x83, 0x01, 0x11, 0x70]);
        let mut r = Reader::new(&enc);
        let t = r.read().unwrap();
        assert_eq!(t.value, &big[..]);
        assert_eq!(t.raw, &enc[..]);
        assert!(r.is_empty());
    }

    #[test]
    fn reader_rejects_bad_framing() {
        for bad in [
            &[0x30, 0x80, 0x00, 0x00][..],       // indefinite
            &[0x1f, 0x81, 0x01, 0x00][..],       // multi-byte tag
            &[0x30, 0x85, 0, 0, 0, 0, 1, 0][..], // 5-byte length
            &[0x30, 0x05, 0x00][..],             // overrun
            &[0x30][..],                         // no length
            &[0x30, 0x82, 0x01][..],             // truncated length
            &[][..],
        ] {
            assert!(Reader::new(bad).read().is_err(), "{bad:02x?}");
        }
        let mut r = Reader::new(&[0x02, 0x01, 0x05, 0x05, 0x00]);
        assert!(r.expect(SEQUENCE).is_err());
        assert_eq!(r.expect(INTEGER).unwrap().value, &[5]);
        assert_eq!(r.peek_tag(), Some(NULL));
        assert!(r.finish().is_err());
        assert!(r.read_optional(BOOLEAN).unwrap().is_none());
        r.expect(NULL).unwrap();
        assert!(r.finish().is_ok());
    }

    #[test]
    fn set_of_is_sorted() {
        let a = integer_u64(2);
        let b = integer_u64(1);
        let c = utf8_string("z");
        let s = set(&[&c, &a, &b]);
        let mut r = Reader::new(&s).read().unwrap().reader();
        assert_eq!(r.read().unwrap().raw, &b[..]);
        assert_eq!(r.read().unwrap().raw, &a[..]);
        assert_eq!(r.read().unwrap().raw, &c[..]);
    }

    #[test]
    fn strings_and_bits() {
        assert_eq!(boolean(true), vec![0x01, 0x01, 0xff]);
        assert_eq!(named_bits(&[5, 6]), vec![0x03, 0x02, 0x01, 0x06]);
        assert_eq!(named_bits(&[0, 2]), vec![0x03, 0x02, 0x05, 0xa0]);
        assert_eq!(bit_string(&[1, 2]), vec![0x03, 0x03, 0x00, 1, 2]);
        assert_eq!(printable_string("a_b"), vec![0x13, 0x03, b'a', b'_', b'b']);
        assert_eq!(string_lossy(BMP_STRING, &[0, b'h', 0, b'i']), "hi");
        assert_eq!(string_lossy(PRINTABLE_STRING, b"tok_1"), "tok_1");
        assert_eq!(string_lossy(UTF8_STRING, &[0xff, b'a']), "\u{fffd}a");
        assert_eq!(context_constructed(3), 0xa3);
        assert_eq!(context_primitive(2), 0x82);
    }
}
