//! The service log, safe to read: every string a client controls (certnames, CNs,
//! request ids, CSR fields) can reach a log line, so each event is written with its
//! control characters escaped. A forged `\nFORGED decision=approved` stays on its line.

use std::io::{self, Write};

/// Writes each event with control characters escaped, keeping only its final newline.
/// The fmt layer writes one event per `write` call, so one call is one line.
pub struct EscapingWriter<W: Write>(pub W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// One log line: everything a terminal or a log shipper could read as a line break or a
/// control sequence is escaped; a trailing newline is kept.
pub fn escape_line(buf: &[u8]) -> Vec<u8> {
    let (body, newline) = match buf.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (buf, false),
    };
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.extend(c.escape_unicode())
            }
            c => out.push(c),
        }
    }
    if newline {
        out.push('\n');
    }
    out.into_bytes()
}

/// Log to stderr at `level`, every line escaped.
pub fn init(level: &str) {
    let level = match level {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(|| EscapingWriter(io::stderr()))
        .with_ansi(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_line_stays_on_its_line() {
        let line = b"INFO certname=web01\nFORGED decision=approved \x1b[31m\r\n";
        let out = String::from_utf8(escape_line(line)).unwrap();
        assert_eq!(
            out,
            "INFO certname=web01\\nFORGED decision=approved \\u{1b}[31m\\r\n"
        );
        assert_eq!(out.matches('\n').count(), 1);
        assert_eq!(
            String::from_utf8(escape_line("a\u{2028}b".as_bytes())).unwrap(),
            "a\\u{2028}b"
        );
    }
}
