//! PEM armour (RFC 7468) and the base64 under it, written out so we need no extra crates.
//!
//! Decoding is forgiving about layout (any line width, CRLF, stray whitespace, even a block
//! squashed onto one line) because CSRs arrive from many tools; it is strict about base64.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    /// No `-----BEGIN ...-----` line anywhere.
    NoBlock,
    /// A block with this label has no matching END line.
    Unterminated(String),
    /// The body of the block with this label is not valid base64.
    BadBase64(String),
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemError::NoBlock => {
                f.write_str("no PEM block found (expected a -----BEGIN ...----- line)")
            }
            PemError::Unterminated(label) => {
                write!(
                    f,
                    "PEM block {label} has no matching -----END {label}----- line"
                )
            }
            PemError::BadBase64(label) => write!(f, "PEM block {label} is not valid base64"),
        }
    }
}

impl std::error::Error for PemError {}

/// One PEM block, 64-column lines, ending in a newline.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// Every PEM block in the input as (label, DER), in order. Text outside blocks is ignored,
/// as OpenSSL does (e.g. the `Certificate:` dump before a PEM, or `EC PARAMETERS`).
pub fn decode_all(input: &str) -> Result<Vec<(String, Vec<u8>)>, PemError> {
    let mut blocks = Vec::new();
    let mut rest = input;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = rest.get(start + BEGIN.len()..).unwrap_or_default();
        let label_end = after_begin
            .find(DASHES)
            .ok_or_else(|| PemError::Unterminated(String::new()))?;
        let label = after_begin.get(..label_end).unwrap_or_default().trim();
        if label.contains('\n') {
            return Err(PemError::Unterminated(String::new()));
        }
        let body_and_more = after_begin
            .get(label_end + DASHES.len()..)
            .unwrap_or_default();
        let end_at = body_and_more
            .find(END)
            .ok_or_else(|| PemError::Unterminated(label.to_string()))?;
        let body = body_and_more.get(..end_at).unwrap_or_default();
        let after_end = body_and_more.get(end_at + END.len()..).unwrap_or_default();
        let end_label_len = after_end
            .find(DASHES)
            .ok_or_else(|| PemError::Unterminated(label.to_string()))?;
        if after_end.get(..end_label_len).map(str::trim) != Some(label) {
            return Err(PemError::Unterminated(label.to_string()));
        }
        let der = base64_decode(body).ok_or_else(|| PemError::BadBase64(label.to_string()))?;
        blocks.push((label.to_string(), der));
        rest = after_end
            .get(end_label_len + DASHES.len()..)
            .unwrap_or_default();
    }
    if blocks.is_empty() {
        return Err(PemError::NoBlock);
    }
    Ok(blocks)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    let sym = |v: u32| char::from(ALPHABET.get((v & 0x3f) as usize).copied().unwrap_or(b'A'));
    for chunk in data.chunks(3) {
        let b0 = u32::from(chunk.first().copied().unwrap_or(0));
        let b1 = u32::from(chunk.get(1).copied().unwrap_or(0));
        let b2 = u32::from(chunk.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out
}

fn decode_symbol(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Standard base64; ASCII whitespace anywhere is skipped, padding is optional but nothing may
/// follow it, and the unused low bits of the last symbol must be zero (one encoding per value).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut symbols = Vec::with_capacity(text.len());
    let mut padding = 0usize;
    for c in text.bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return None;
        }
        symbols.push(decode_symbol(c)?);
    }
    if padding > 2 || (padding > 0 && (symbols.len() + padding) % 4 != 0) {
        return None;
    }
    if symbols.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for chunk in symbols.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, v)| acc | (v << (18 - 6 * i as u32)));
        let bytes = n.to_be_bytes();
        let produced = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        let leftover = n & ((1u32 << (8 * (3 - produced))) - 1);
        if leftover != 0 {
            return None;
        }
        out.extend_from_slice(bytes.get(1..1 + produced)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert!(base64_decode("Zm9v=YmFy").is_none());
        assert!(base64_decode("Zm9vY").is_none());
        assert!(base64_decode("Zh==").is_none());
        assert!(base64_decode("Zm9*").is_none());
        assert!(base64_decode("Zg===").is_none());
    }

    #[test]
    fn encode_wraps_at_64_columns() {
        let der = vec![0xabu8; 100];
        let pem = encode("CERTIFICATE", &der);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.get(1).map(|l| l.len()), Some(64));
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert!(pem.ends_with('\n'));
        assert_eq!(
            decode_all(&pem).unwrap(),
            vec![("CERTIFICATE".to_string(), der)]
        );
    }

    #[test]
    fn decode_all_is_lenient_about_layout() {
        let der: Vec<u8> = (0..200u8).collect();
        let b64 = base64_encode(&der);
        let wrapped40: Vec<String> = b64
            .as_bytes()
            .chunks(40)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let crlf = format!(
            "junk before\r\n-----BEGIN X509 CRL-----\r\n{}\r\n-----END X509 CRL-----\r\n  \r\n{}",
            wrapped40.join("\r\n  "),
            encode("CERTIFICATE", &[1, 2, 3])
        );
        let blocks = decode_all(&crlf).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0], ("X509 CRL".to_string(), der.clone()));
        assert_eq!(blocks[1], ("CERTIFICATE".to_string(), vec![1, 2, 3]));
        let one_line = format!("-----BEGIN A-----{b64}-----END A-----");
        assert_eq!(decode_all(&one_line).unwrap()[0].1, der);
    }

    #[test]
    fn decode_all_errors() {
        assert_eq!(decode_all("hello"), Err(PemError::NoBlock));
        assert_eq!(
            decode_all("-----BEGIN A-----\nZm9v\n"),
            Err(PemError::Unterminated("A".into()))
        );
        assert_eq!(
            decode_all("-----BEGIN A-----\nZm9v\n-----END B-----\n"),
            Err(PemError::Unterminated("A".into()))
        );
        assert_eq!(
            decode_all("-----BEGIN A-----\nZm9v!\n-----END A-----\n"),
            Err(PemError::BadBase64("A".into()))
        );
    }
}
