//! The policy config file: flat `key = value` lines, parsed strictly so a typo is an error
//! rather than a silently ignored setting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// A config file larger than this is not ours.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// A longer timeout would let puppetserver threads pile up behind a sick service.
pub const MAX_TIMEOUT_SECS: f64 = 300.0;
const KEYS: [&str; 5] = ["url", "ca_file", "cert", "key", "timeout"];

/// Settings from one source (file or flags); `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub url: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub timeout: Option<Duration>,
}

impl Settings {
    /// `self` with every setting that `over` sets replaced.
    pub fn overridden_by(self, over: Settings) -> Settings {
        Settings {
            url: over.url.or(self.url),
            ca_file: over.ca_file.or(self.ca_file),
            cert: over.cert.or(self.cert),
            key: over.key.or(self.key),
            timeout: over.timeout.or(self.timeout),
        }
    }
}

/// Reads and parses `path`. `Ok(None)` when it does not exist and `required` is false.
pub fn load(path: &Path, required: bool) -> Result<Option<Settings>, Error> {
    let bad = |why: String| Error::Config(format!("config file {}: {why}", path.display()));
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    // A FIFO or device would block or never end; only regular files are config.
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(bad(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    parse(&text).map(Some).map_err(bad)
}

enum Value {
    Str(String),
    Num(f64),
}

/// Parses the file's text; errors carry the 1-based line number.
pub fn parse(text: &str) -> Result<Settings, String> {
    let mut settings = Settings::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let at = |why: String| format!("line {line_no}: {why}");
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            return Err(at(
                "sections are not supported; use flat key = value lines".into()
            ));
        }
        let (key, rest) = line
            .split_once('=')
            .ok_or_else(|| at("expected key = value".into()))?;
        let key = key.trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(at(format!("invalid key {key:?}")));
        }
        // An unknown key is the more useful error, whatever its value looks like.
        if !KEYS.contains(&key) {
            return Err(at(format!(
                "unknown key {key:?} (known keys: {})",
                KEYS.join(", ")
            )));
        }
        let value = parse_value(rest.trim()).map_err(|why| at(format!("{key}: {why}")))?;
        let duplicate = || at(format!("duplicate key {key}"));
        let path = |v: Value| match v {
            Value::Str(s) if !s.is_empty() => Ok(PathBuf::from(s)),
            Value::Str(_) => Err(at(format!("{key} must not be empty"))),
            Value::Num(_) => Err(at(format!("{key} must be a quoted string"))),
        };
        match key {
            "url" => {
                if settings.url.is_some() {
                    return Err(duplicate());
                }
                match value {
                    Value::Str(s) => settings.url = Some(s),
                    Value::Num(_) => return Err(at("url must be a quoted string".into())),
                }
            }
            "ca_file" | "cert" | "key" => {
                let slot = match key {
                    "ca_file" => &mut settings.ca_file,
                    "cert" => &mut settings.cert,
                    _ => &mut settings.key,
                };
                if slot.is_some() {
                    return Err(duplicate());
                }
                *slot = Some(path(value)?);
            }
            "timeout" => {
                if settings.timeout.is_some() {
                    return Err(duplicate());
                }
                match value {
                    Value::Num(secs) => {
                        settings.timeout = Some(timeout_from_secs(secs).map_err(at)?)
                    }
                    Value::Str(_) => {
                        return Err(at("timeout must be a number of seconds, unquoted".into()))
                    }
                }
            }
            other => return Err(at(format!("unknown key {other:?}"))),
        }
    }
    Ok(settings)
}

/// A quoted string (`"..."` with `\\` and `\"` escapes, or literal `'...'`) or a number,
/// optionally followed by a `#` comment.
fn parse_value(s: &str) -> Result<Value, String> {
    let (value, rest) = if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated string".into()),
                Some((i, '"')) => break i + 1,
                Some((_, '\\')) => match chars.next() {
                    Some((_, c @ ('"' | '\\'))) => out.push(c),
                    _ => return Err("only \\\\ and \\\" escapes are supported".into()),
                },
                Some((_, c)) => out.push(c),
            }
        };
        (Value::Str(out), &body[end..])
    } else if let Some(body) = s.strip_prefix('\'') {
        let end = body.find('\'').ok_or("unterminated string")?;
        (Value::Str(body[..end].to_owned()), &body[end + 1..])
    } else {
        let end = s.find('#').unwrap_or(s.len());
        let number = s[..end].trim();
        if number.is_empty() {
            return Err("missing value".into());
        }
        let valid = number
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'+' | b'-' | b'e' | b'E'));
        match number.replace('_', "").parse::<f64>() {
            Ok(n) if valid => (Value::Num(n), &s[end..]),
            _ => {
                return Err(format!(
                    "{number:?} is neither a quoted string nor a number"
                ))
            }
        }
    };
    let rest = rest.trim_start();
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(format!("unexpected {rest:?} after the value"));
    }
    Ok(value)
}

/// Validates a timeout given in (possibly fractional) seconds.
pub fn timeout_from_secs(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT_SECS {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!(
            "timeout must be more than 0 and at most {MAX_TIMEOUT_SECS} seconds, not {secs}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_toml_is_valid() {
        let text = include_str!("../../../deploy/policy.toml");
        assert!(parse(text).is_ok(), "{:?}", parse(text).err());
    }

    #[test]
    fn valid_file() {
        let s = parse(
            "# autosign-proxy policy\n\
             url = \"https://ca.example.com:8443\"  # the service\n\
             \n\
             ca_file = '/etc/ssl/ca.pem'\n\
             cert = \"/etc/ssl/c\\\"q.pem\"\r\n\
             key=\"/etc/ssl/k.pem\"\n\
             timeout = 2.5\n",
        )
        .unwrap();
        assert_eq!(s.url.as_deref(), Some("https://ca.example.com:8443"));
        assert_eq!(s.ca_file, Some(PathBuf::from("/etc/ssl/ca.pem")));
        assert_eq!(s.cert, Some(PathBuf::from("/etc/ssl/c\"q.pem")));
        assert_eq!(s.key, Some(PathBuf::from("/etc/ssl/k.pem")));
        assert_eq!(s.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(
            parse("timeout = 5 # s").unwrap().timeout,
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err()
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = error_of("url = \"https://x\"\n\ntimout = 5\n");
        assert!(e.starts_with("line 3:"), "{e}");
        assert!(e.contains("unknown key \"timout\""), "{e}");
    }

    #[test]
    fn duplicate_key_names_line() {
        let e = error_of("cert = \"/a\"\n# again\ncert = \"/b\"\n");
        assert_eq!(e, "line 3: duplicate key cert");
    }

    #[test]
    fn malformed_lines_name_their_line() {
        for (text, line) in [
            ("url\n", 1),
            ("# ok\nurl = https://x\n", 2),
            ("url = \"https://x\n", 1),
            ("\n\nurl = \"https://x\" trailing\n", 3),
            ("[section]\n", 1),
            ("timeout = \"5\"\n", 1),
            ("timeout = 0\n", 1),
            ("timeout = -1\n", 1),
            ("timeout = 1e9\n", 1),
            ("timeout = nan\n", 1),
            ("timeout =\n", 1),
            ("cert = 5\n", 1),
            ("key = \"\"\n", 1),
            ("url = \"a\\nb\"\n", 1),
            ("a b = 1\n", 1),
        ] {
            let e = error_of(text);
            assert!(e.starts_with(&format!("line {line}:")), "{text:?} gave {e}");
        }
    }

    #[test]
    fn flags_override_file() {
        let file = parse("url = \"https://file\"\ntimeout = 9\ncert = \"/file/cert\"").unwrap();
        let flags = Settings {
            url: Some("https://flag".into()),
            timeout: Some(Duration::from_secs(1)),
            ..Settings::default()
        };
        let merged = file.overridden_by(flags);
        assert_eq!(merged.url.as_deref(), Some("https://flag"));
        assert_eq!(merged.timeout, Some(Duration::from_secs(1)));
        assert_eq!(merged.cert, Some(PathBuf::from("/file/cert")));
    }

    #[test]
    fn load_distinguishes_missing_default_from_missing_explicit() {
        let missing = Path::new("/nonexistent/autosign-policy.toml");
        assert_eq!(load(missing, false).unwrap(), None);
        let e = load(missing, true).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/autosign-policy.toml"), "{e}");
        assert!(load(Path::new("/"), true).is_err());
    }
}
