//! HTTP/1.1 on a byte stream: writing one request, reading one bounded response.
//!
//! Kept free of sockets and TLS so it can be tested on in-memory bytes.

use std::io::{BufRead, Read};

use crate::error::from_io;
use crate::Error;

/// Largest response head (status line plus headers) we read before giving up.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest response body we accept.
pub const MAX_BODY: usize = 1024 * 1024;
/// Chunk-size lines are short; a long one means garbage, not a big chunk.
const MAX_CHUNK_LINE: usize = 1024;

/// One HTTP response, body fully read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether any `name` header lists `token` (comma-separated, case-insensitive).
    pub(crate) fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// Serializes a request. `Host` and `Content-Length` are always ours; callers' copies
/// are dropped so the framing cannot be contradicted.
pub(crate) fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    host: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), Error> {
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !is_token(method) {
        return Err(Error::Protocol(format!("invalid method {method:?}")));
    }
    if !path_and_query.starts_with('/') || path_and_query.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Error::Protocol(format!(
            "invalid request target {path_and_query:?}: must start with / and contain no spaces or controls"
        )));
    }
    out.extend_from_slice(
        format!("{method} {path_and_query} HTTP/1.1\r\nHost: {host}\r\n").as_bytes(),
    );
    for (name, value) in headers {
        if !is_token(name) {
            return Err(Error::Protocol(format!("invalid header name {name:?}")));
        }
        // A CR or LF in a value would let it forge further headers.
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(Error::Protocol(format!("invalid value for header {name}")));
        }
        if name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Reads one response. Returns it with whether the connection may carry another request.
#[cfg(test)]
pub(crate) fn read_response<R: BufRead>(
    r: &mut R,
    head_request: bool,
) -> Result<(Response, bool), Error> {
    read_response_limited(r, head_request, MAX_BODY)
}

/// [`read_response`] with a body limit other than [`MAX_BODY`].
pub(crate) fn read_response_limited<R: BufRead>(
    r: &mut R,
    head_request: bool,
    max_body: usize,
) -> Result<(Response, bool), Error> {
    let mut budget = MAX_HEAD;
    let Head {
        status,
        http10,
        headers,
    } = loop {
        let head = read_head(r, &mut budget)?;
        match head.status {
            101 => return Err(Error::Protocol("unexpected 101 Switching Protocols".into())),
            // Interim responses (100 Continue, 103 Early Hints) precede the real one.
            100..=199 => continue,
            _ => break head,
        }
    };
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let keep_alive = if http10 {
        response.has_token("connection", "keep-alive")
    } else {
        !response.has_token("connection", "close")
    };
    if head_request || status == 204 || status == 304 {
        return Ok((response, keep_alive));
    }
    let te: Vec<&str> = response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let body = if let Some(last) = te.last() {
        if last.eq_ignore_ascii_case("chunked") {
            read_chunked(r, max_body)?
        } else {
            return Err(Error::Protocol(format!(
                "unsupported transfer encoding {last:?}"
            )));
        }
    } else if let Some(len) = content_length(&response)? {
        if len > max_body {
            return Err(Error::Protocol(format!(
                "response body of {len} bytes exceeds the {max_body}-byte limit"
            )));
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).map_err(body_error)?;
        body
    } else {
        let body = read_to_eof(r, max_body)?;
        return Ok((Response { body, ..response }, false));
    };
    response.body = body;
    Ok((response, keep_alive))
}

/// A status line and its headers.
struct Head {
    status: u16,
    http10: bool,
    headers: Vec<(String, String)>,
}

fn read_head<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<Head, Error> {
    let line = read_line(r, budget, "response head")?;
    let line = String::from_utf8_lossy(&line);
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => {
            return Err(Error::Protocol(format!(
                "not an HTTP/1.x status line: {:?}",
                excerpt(line.as_bytes(), 80)
            )))
        }
    };
    let status = match code.parse::<u16>() {
        Ok(n) if code.len() == 3 && (100..=599).contains(&n) => n,
        _ => {
            return Err(Error::Protocol(format!(
                "bad status code in {:?}",
                excerpt(line.as_bytes(), 80)
            )))
        }
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, budget, "response head")?;
        if line.is_empty() {
            return Ok(Head {
                status,
                http10,
                headers,
            });
        }
        let line = String::from_utf8_lossy(&line);
        let (name, value) = line
            .split_once(':')
            .filter(|(n, _)| !n.is_empty() && !n.contains([' ', '\t']))
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "malformed header line {:?}",
                    excerpt(line.as_bytes(), 80)
                ))
            })?;
        headers.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
    }
}

fn content_length(response: &Response) -> Result<Option<usize>, Error> {
    let mut found: Option<usize> = None;
    for value in response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
    {
        let value = value.trim();
        let n = match value.parse::<usize>() {
            Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(Error::Protocol(format!("bad Content-Length {value:?}"))),
        };
        if found.is_some_and(|f| f != n) {
            return Err(Error::Protocol("conflicting Content-Length headers".into()));
        }
        found = Some(n);
    }
    Ok(found)
}

fn read_chunked<R: BufRead>(r: &mut R, max_body: usize) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    loop {
        let mut budget = MAX_CHUNK_LINE;
        let line = read_line(r, &mut budget, "chunk size line")?;
        let line = String::from_utf8_lossy(&line);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = match usize::from_str_radix(size, 16) {
            Ok(n) if !size.is_empty() && size.bytes().all(|b| b.is_ascii_hexdigit()) => n,
            _ => return Err(Error::Protocol(format!("bad chunk size {size:?}"))),
        };
        if size == 0 {
            break;
        }
        if size > max_body - body.len() {
            return Err(Error::Protocol(format!(
                "chunked response body exceeds the {max_body}-byte limit"
            )));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).map_err(body_error)?;
        let mut budget = 2;
        if !read_line(r, &mut budget, "chunk terminator")?.is_empty() {
            return Err(Error::Protocol("chunk not followed by CRLF".into()));
        }
    }
    // Trailers: read and drop, bounded like a head.
    let mut budget = MAX_HEAD;
    while !read_line(r, &mut budget, "chunked trailer")?.is_empty() {}
    Ok(body)
}

fn read_to_eof<R: Read>(r: &mut R, max_body: usize) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    let limit = (max_body + 1) as u64;
    r.take(limit)
        .read_to_end(&mut body)
        .map_err(|e| from_io("reading the response body", e))?;
    if body.len() > max_body {
        return Err(Error::Protocol(format!(
            "response body exceeds the {max_body}-byte limit"
        )));
    }
    Ok(body)
}

fn body_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::Protocol("connection closed in the middle of the response body".into())
    } else {
        from_io("reading the response body", e)
    }
}

/// One line without its CRLF (a bare LF is tolerated), charged against `budget`.
fn read_line<R: BufRead>(r: &mut R, budget: &mut usize, what: &str) -> Result<Vec<u8>, Error> {
    let mut line = Vec::new();
    loop {
        let buf = r
            .fill_buf()
            .map_err(|e| from_io(&format!("reading the {what}"), e))?;
        if buf.is_empty() {
            return Err(Error::Protocol(format!(
                "connection closed in the middle of the {what}"
            )));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if take > *budget {
            return Err(Error::Protocol(format!("{what} too long")));
        }
        *budget -= take;
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
    }
}

/// A short single-line rendering of untrusted bytes for messages and logs.
pub(crate) fn excerpt(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max_chars)
        .collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<(Response, bool), Error> {
        read_response(&mut &raw[..], false)
    }

    #[test]
    fn content_length_body_and_keep_alive() {
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let (r, keep) = parse(raw).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert!(keep);
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let (r, keep) = parse(raw).unwrap();
        assert_eq!(r.text(), "hello world");
        assert!(keep);
    }

    #[test]
    fn body_until_eof_without_framing_closes() {
        let (r, keep) = parse(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!(r.text(), "all of it");
        assert!(!keep);
    }

    #[test]
    fn connection_close_and_http10_keep_alive() {
        let (_, keep) =
            parse(b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!keep);
        let (_, keep) =
            parse(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        assert!(keep);
    }

    #[test]
    fn interim_responses_are_skipped_and_head_has_no_body() {
        let (r, _) =
            parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!(r.status, 204);
        let (r, keep) = read_response(
            &mut &b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"[..],
            true,
        )
        .unwrap();
        assert!(r.body.is_empty() && keep);
    }

    #[test]
    fn malformed_or_oversized_responses_fail() {
        let huge_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let huge_len = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let huge_chunk = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_BODY + 1
        );
        let cases: Vec<&[u8]> = vec![
            b"",
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Le",
            huge_head.as_bytes(),
            huge_len.as_bytes(),
            huge_chunk.as_bytes(),
        ];
        for raw in cases {
            assert!(
                matches!(parse(raw), Err(Error::Protocol(_))),
                "accepted {:?}",
                excerpt(raw, 60)
            );
        }
    }

    #[test]
    fn requests_are_framed_by_us_and_reject_injection() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            "POST",
            "h:1",
            "/p?q=1",
            &[("Accept", "application/json"), ("content-length", "999")],
            b"body",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /p?q=1 HTTP/1.1\r\nHost: h:1\r\nAccept: application/json\r\nContent-Length: 4\r\n\r\nbody"
        );
        let mut out = Vec::new();
        assert!(write_request(&mut out, "GET", "h", "/", &[("X", "a\r\nEvil: 1")], b"").is_err());
        assert!(write_request(&mut out, "GE T", "h", "/", &[], b"").is_err());
        assert!(write_request(&mut out, "GET", "h", "/a b", &[], b"").is_err());
        assert!(write_request(&mut out, "GET", "h", "x", &[], b"").is_err());
    }
}
