//! What came back from the server, body fully read, and how to quote untrusted bytes from
//! it in a one-line message.

/// Largest response body accepted unless the caller says otherwise
/// ([`crate::Connection::set_max_body`]).
pub const MAX_BODY: usize = 1024 * 1024;

/// One HTTP response, body fully read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Headers as received (names in lower case, as hyper gives them).
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

    #[test]
    fn headers_are_found_whatever_their_case() {
        let r = Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"\xffok".to_vec(),
        };
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.header("Accept"), None);
        assert_eq!(r.text(), "\u{fffd}ok");
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt(b"  a\r\nb\tc  ", 80), "a  b c");
        assert_eq!(excerpt("ééé".as_bytes(), 2), "éé…");
    }
}
