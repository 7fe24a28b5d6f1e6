//! Turns the service's answer into what puppetserver sees: sign only on 200, and a
//! one-line explanation for everything else.

use crate::response::excerpt;
use crate::Response;

/// The longest piece of server-supplied text we copy into puppetserver's log.
const MAX_TEXT: usize = 300;

/// Why a 404 was a rejection, from `{"reason","message","event_id",...}`; `None` when
/// the body does not say.
pub fn rejection_reason(response: &Response) -> Option<String> {
    let fields = parse_flat_object(&response.text())?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| excerpt(v.as_bytes(), MAX_TEXT))
            .filter(|v| !v.is_empty())
    };
    let mut text = [get("reason"), get("message")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    if text.is_empty() {
        return None;
    }
    if let Some(event) = get("event_id") {
        text.push_str(&format!(" (event {event})"));
    }
    Some(text)
}

/// A 200 signs only when its body is the service's JSON decision saying `approved` for
/// exactly this certname: a proxy, a misrouted URL or a stray server answering 200 to
/// anything must never sign. `Err` says what was wrong.
pub fn approval(response: &Response, certname: &str) -> Result<(), String> {
    let fields = parse_flat_object(&response.text())
        .ok_or_else(|| "the answer is not the service's JSON decision".to_string())?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("decision") != Some("approved") {
        return Err(format!(
            "the decision is {}, not approved",
            get("decision").map_or("missing".into(), |d| excerpt(d.as_bytes(), 40))
        ));
    }
    match get("certname") {
        Some(name) if name == certname => Ok(()),
        Some(name) => Err(format!(
            "the approval is for {}, not for this certname",
            excerpt(name.as_bytes(), 255)
        )),
        None => Err("the approval names no certname".into()),
    }
}

/// `HTTP 500: <first bytes of the body>` for messages.
pub fn status_and_excerpt(response: &Response) -> String {
    let body = excerpt(&response.body, 200);
    if body.is_empty() {
        format!("HTTP {}", response.status)
    } else {
        format!("HTTP {}: {body}", response.status)
    }
}

/// The scalar members of a JSON object as text (strings unquoted, numbers and literals as
/// written); nested values are skipped. `None` if `text` is not one JSON object.
///
/// Hand-written because the executable must stay small and quick to start.
fn parse_flat_object(text: &str) -> Option<Vec<(String, String)>> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    p.ws();
    p.eat(b'{')?;
    p.ws();
    if p.eat(b'}').is_none() {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            if let Some(value) = p.value(0)? {
                out.push((key, value));
            }
            p.ws();
            if p.eat(b',').is_none() {
                p.eat(b'}')?;
                break;
            }
        }
    }
    p.ws();
    (p.i == p.s.len()).then_some(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.i += 1)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A value; `Some(None)` for objects and arrays, which are skipped.
    fn value(&mut self, depth: usize) -> Option<Option<String>> {
        match self.peek()? {
            b'"' => self.string().map(Some),
            open @ (b'{' | b'[') => {
                // Deep nesting is not worth recursing into for a rejection message.
                if depth > 32 {
                    return None;
                }
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.eat(close).is_some() {
                    return Some(None);
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.value(depth + 1)?;
                    self.ws();
                    if self.eat(b',').is_none() {
                        self.eat(close)?;
                        return Some(None);
                    }
                }
            }
            _ => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E')
                ) {
                    self.i += 1;
                }
                let token = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                let literal = matches!(token, "true" | "false" | "null");
                (literal || token.parse::<f64>().is_ok()).then(|| Some(token.to_owned()))
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    self.i += 1;
                    let c = match self.peek()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            // A surrogate pair spells one character; a lone half is replaced.
                            if (0xd800..0xdc00).contains(&hi)
                                && self.s.get(self.i + 1..self.i + 3) == Some(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                let code = 0x10000
                                    + ((hi - 0xd800) << 10)
                                    + (lo.wrapping_sub(0xdc00) & 0x3ff);
                                char::from_u32(code).unwrap_or('\u{fffd}')
                            } else {
                                char::from_u32(hi).unwrap_or('\u{fffd}')
                            }
                        }
                        _ => return None,
                    };
                    self.i += 1;
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => return None,
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    /// Four hex digits after the current position (which holds the `u`); leaves the
    /// cursor on the last digit.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i + 1..self.i + 5)?;
        let code = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
        self.i += 4;
        Some(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn rejection_from_json() {
        let r = response(
            404,
            r#"{"decision":"rejected","reason":"token_used","message":"the build token was already used","event_id":42,"extra":{"a":[1,{"b":null}]}}"#,
        );
        assert_eq!(
            rejection_reason(&r).as_deref(),
            Some("token_used: the build token was already used (event 42)")
        );
    }

    #[test]
    fn rejection_text_is_one_line_and_unescaped() {
        let r = response(
            404,
            r#" { "reason" : "bad\nline\u00e9\ud83d\ude00", "event_id": "e-1" } "#,
        );
        assert_eq!(
            rejection_reason(&r).as_deref(),
            Some("bad line\u{e9}\u{1f600} (event e-1)")
        );
    }

    #[test]
    fn no_reason_without_usable_json() {
        for body in [
            "",
            "not json",
            "{\"reason\":",
            "[1]",
            "{\"decision\":\"rejected\"}",
            "{} x",
        ] {
            assert_eq!(rejection_reason(&response(404, body)), None, "{body}");
        }
        assert_eq!(status_and_excerpt(&response(404, "")), "HTTP 404");
        assert_eq!(
            status_and_excerpt(&response(500, "oops\r\n")),
            "HTTP 500: oops"
        );
    }
}
