//! Command-line arguments. The certname is always the *last* argument and is never read
//! as a flag: it comes from the CSR's subject, so an attacker chooses it.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use super::config::{timeout_from_secs, Settings};

pub const USAGE: &str = "usage: autosign-policy [--config FILE] [--url URL] [--ca-file F] [--cert F] [--key F] [--timeout SECS] CERTNAME < csr.pem";

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub config: Option<PathBuf>,
    /// Settings given as flags; they override the config file.
    pub flags: Settings,
    pub certname: String,
}

/// Parses arguments (without argv\[0\]). Errors are single-line messages.
pub fn parse(args: &[OsString]) -> Result<Args, String> {
    // puppetserver passes exactly one argument, the certname; taking it from the end means
    // a certname such as "--help" or "--url=..." can never change what we do.
    let (certname, flags) = args
        .split_last()
        .ok_or_else(|| "missing CERTNAME".to_owned())?;
    let certname = certname
        .to_str()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| "CERTNAME must be non-empty UTF-8".to_owned())?
        .to_owned();
    let mut parsed = Args {
        config: None,
        flags: Settings::default(),
        certname,
    };
    let mut rest = flags.iter();
    while let Some(arg) = rest.next() {
        let text = arg
            .to_str()
            .ok_or_else(|| format!("unexpected argument {arg:?}"))?;
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(OsString::from(v))),
            _ => (text, None),
        };
        if !name.starts_with("--") {
            return Err(format!(
                "unexpected argument {text:?}: CERTNAME must be the last argument"
            ));
        }
        let value = match inline {
            Some(v) => v,
            None => rest
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?,
        };
        if value.is_empty() {
            return Err(format!("{name} needs a non-empty value"));
        }
        let once = |set: bool| {
            if set {
                Err(format!("{name} given twice"))
            } else {
                Ok(())
            }
        };
        let flags = &mut parsed.flags;
        match name {
            "--config" => {
                once(parsed.config.is_some())?;
                parsed.config = Some(PathBuf::from(value));
            }
            "--url" => {
                once(flags.url.is_some())?;
                flags.url = Some(utf8(name, &value)?.to_owned());
            }
            "--ca-file" => {
                once(flags.ca_file.is_some())?;
                flags.ca_file = Some(PathBuf::from(value));
            }
            "--cert" => {
                once(flags.cert.is_some())?;
                flags.cert = Some(PathBuf::from(value));
            }
            "--key" => {
                once(flags.key.is_some())?;
                flags.key = Some(PathBuf::from(value));
            }
            "--timeout" => {
                once(flags.timeout.is_some())?;
                let text = utf8(name, &value)?;
                let secs = text
                    .parse::<f64>()
                    .map_err(|_| format!("--timeout {text:?} is not a number of seconds"))?;
                flags.timeout = Some(timeout_from_secs(secs)?);
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(parsed)
}

fn utf8<'a>(name: &str, value: &'a OsStr) -> Result<&'a str, String> {
    value
        .to_str()
        .ok_or_else(|| format!("{name} value must be UTF-8"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(&list.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn flags_in_both_spellings_then_certname() {
        let a = args(&[
            "--config",
            "/c.toml",
            "--url=https://h:1",
            "--ca-file",
            "/ca",
            "--cert",
            "/cert",
            "--key=/key",
            "--timeout",
            "0.5",
            "web01.example.com",
        ])
        .unwrap();
        assert_eq!(a.certname, "web01.example.com");
        assert_eq!(a.config, Some(PathBuf::from("/c.toml")));
        assert_eq!(a.flags.url.as_deref(), Some("https://h:1"));
        assert_eq!(a.flags.ca_file, Some(PathBuf::from("/ca")));
        assert_eq!(a.flags.key, Some(PathBuf::from("/key")));
        assert_eq!(a.flags.timeout, Some(Duration::from_millis(500)));
    }

    #[test]
    fn a_certname_that_looks_like_a_flag_is_still_the_certname() {
        assert_eq!(args(&["--help"]).unwrap().certname, "--help");
        assert_eq!(
            args(&["--url=https://evil"]).unwrap().flags,
            Settings::default()
        );
    }

    #[test]
    fn bad_command_lines() {
        for list in [
            &[][..],
            &[""],
            &["--timeout", "web01"],
            &["--timeout", "x", "web01"],
            &["--timeout", "0", "web01"],
            &["--bogus", "1", "web01"],
            &["extra", "web01"],
            &["--url", "a", "--url", "b", "web01"],
            &["--cert=", "web01"],
        ] {
            assert!(args(list).is_err(), "{list:?} accepted");
        }
    }
}
