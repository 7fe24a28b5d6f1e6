//! The autosign allow-list: entries with exactly the semantics puppetserver gives
//! autosign.conf lines (exact names, `*.domain` globs that also match the bare domain, `*`).

use std::fmt;

use super::certname::Certname;
use super::token::AltName;

/// An allow-list entry as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AllowRecord {
    pub pattern: String,
    /// SANs beyond `DNS:<certname>` that requests approved by this entry may carry.
    pub alt_names: Vec<AltName>,
    pub created_at: i64,
    pub created_by: String,
}

impl AllowRecord {
    /// The stored pattern, parsed. A pattern that no longer parses matches nothing.
    pub fn entry(&self) -> Option<AllowEntry> {
        AllowEntry::parse(&self.pattern).ok()
    }
}

/// One allow-list entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// `*`: every certname (labs only).
    All,
    /// `*.example.com`: the labels after the `*`, lower-cased as puppetserver compares them.
    Domain(Vec<String>),
    /// An exact certname.
    Exact(Certname),
}

impl AllowEntry {
    /// Parse one entry. Refuses what puppetserver would log as invalid (a `#` or a space),
    /// and also what it would read in a surprising way: `*foo.example.com` is treated by
    /// puppetserver as `*.example.com`, so we refuse it rather than widen a glob silently.
    pub fn parse(line: &str) -> Result<AllowEntry, String> {
        if line.is_empty() {
            return Err("the entry is empty".into());
        }
        if line.contains('#') || line.chars().any(char::is_whitespace) {
            return Err(format!(
                "'{line}' contains '#' or whitespace, which puppetserver treats as invalid"
            ));
        }
        if line == "*" {
            return Ok(AllowEntry::All);
        }
        if let Some(domain) = line.strip_prefix("*.") {
            let domain = domain.to_ascii_lowercase();
            let certname = Certname::parse(&domain).map_err(|e| format!("'{line}': {e}"))?;
            return Ok(AllowEntry::Domain(
                certname.as_str().split('.').map(str::to_string).collect(),
            ));
        }
        if line.starts_with('*') || line.contains('*') {
            return Err(format!(
                "'{line}' is not a glob puppetserver reads as written: use '*' or '*.domain'"
            ));
        }
        match Certname::parse(line) {
            Ok(name) => Ok(AllowEntry::Exact(name)),
            Err(e) => Err(format!("'{line}' can never match a certname: {e}")),
        }
    }

    /// Whether this entry lets `certname` be autosigned, as puppetserver's
    /// `line-matches?` decides: a glob's labels must be the certname's last labels.
    pub fn matches(&self, certname: &Certname) -> bool {
        match self {
            AllowEntry::All => true,
            AllowEntry::Exact(name) => name == certname,
            AllowEntry::Domain(labels) => {
                let subject: Vec<&str> = certname.as_str().split('.').collect();
                subject.len() >= labels.len()
                    && subject
                        .iter()
                        .rev()
                        .zip(labels.iter().rev())
                        .all(|(s, l)| s == l)
            }
        }
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::All => f.write_str("*"),
            AllowEntry::Domain(labels) => write!(f, "*.{}", labels.join(".")),
            AllowEntry::Exact(name) => f.write_str(name.as_str()),
        }
    }
}

/// A subjectAltName pattern the site lets any token's request carry (`[policy]
/// token_alt_names`): an exact DNS name, a `*.domain` glob with puppetserver's
/// semantics, an IP address or an `IP:a.b.c.d/nn` range. Never `*` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AltNamePattern {
    Dns(AllowEntry),
    Ip {
        network: std::net::IpAddr,
        prefix: u8,
    },
}

impl AltNamePattern {
    pub fn parse(text: &str) -> Result<AltNamePattern, String> {
        let text = text.trim();
        let (kind, value) = match text.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("dns") => ("dns", v),
            Some((k, v)) if k.eq_ignore_ascii_case("ip") => ("ip", v),
            _ if text
                .split('/')
                .next()
                .is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok()) =>
            {
                ("ip", text)
            }
            Some(_) => {
                return Err(format!(
                    "'{text}' is not DNS:name, *.domain, IP:address or IP:address/prefix"
                ))
            }
            None => ("dns", text),
        };
        if kind == "ip" {
            let (address, prefix) = match value.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (value, None),
            };
            let network: std::net::IpAddr = address
                .parse()
                .map_err(|_| format!("'{text}': '{address}' is not an IP address"))?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("'{text}': the prefix must be 0 to {max}"))?,
                None => max,
            };
            return Ok(AltNamePattern::Ip { network, prefix });
        }
        match AllowEntry::parse(&value.to_ascii_lowercase())? {
            AllowEntry::All => {
                Err("'*' would let any token carry any name; list names or *.domain globs".into())
            }
            entry => Ok(AltNamePattern::Dns(entry)),
        }
    }

    pub fn matches(&self, name: &AltName) -> bool {
        match (self, name) {
            (AltNamePattern::Dns(entry), AltName::Dns(dns)) => {
                Certname::parse(dns).is_ok_and(|c| entry.matches(&c))
            }
            (AltNamePattern::Ip { network, prefix }, AltName::Ip(ip)) => {
                in_network(*ip, *network, *prefix)
            }
            _ => false,
        }
    }
}

fn in_network(ip: std::net::IpAddr, network: std::net::IpAddr, prefix: u8) -> bool {
    use std::net::IpAddr;
    let (a, b, bits): (u128, u128, u32) = match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a).into(), u32::from(b).into(), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let host_bits = bits - u32::from(prefix);
    let mask = if host_bits >= 128 {
        0
    } else {
        u128::MAX << host_bits
    };
    (a & mask) == (b & mask)
}

impl TryFrom<String> for AltNamePattern {
    type Error = String;
    fn try_from(s: String) -> Result<AltNamePattern, String> {
        AltNamePattern::parse(&s)
    }
}

impl<'de> serde::Deserialize<'de> for AltNamePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        AltNamePattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What an autosign.conf import found on one line it could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    pub line_number: usize,
    pub line: String,
    pub reason: String,
}

/// Read an autosign.conf: comment lines (starting with `#`) and blank lines are skipped as
/// puppetserver skips them; every other line becomes an entry or a reported [`SkippedLine`].
pub fn parse_autosign_conf(text: &str) -> (Vec<AllowEntry>, Vec<SkippedLine>) {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match AllowEntry::parse(line) {
            Ok(entry) if !entries.contains(&entry) => entries.push(entry),
            Ok(_) => skipped.push(SkippedLine {
                line_number: index + 1,
                line: line.to_string(),
                reason: "duplicate of an earlier line".into(),
            }),
            Err(reason) => skipped.push(SkippedLine {
                line_number: index + 1,
                line: line.to_string(),
                reason,
            }),
        }
    }
    (entries, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Certname {
        Certname::parse(s).unwrap()
    }

    #[test]
    fn globs_match_like_puppetserver() {
        let glob = AllowEntry::parse("*.foo.bar").unwrap();
        assert!(glob.matches(&name("agent.foo.bar")));
        assert!(glob.matches(&name("a.b.foo.bar")));
        assert!(
            glob.matches(&name("foo.bar")),
            "the bare domain matches too"
        );
        assert!(!glob.matches(&name("agentfoo.bar")));
        assert!(!glob.matches(&name("foo.bar.evil")));
        assert!(!glob.matches(&name("bar")));
        let upper = AllowEntry::parse("*.QUX").unwrap();
        assert!(upper.matches(&name("0.1.qux")), "glob case is ignored");
        assert!(AllowEntry::parse("*").unwrap().matches(&name("anything")));
        let exact = AllowEntry::parse("web01.example.com").unwrap();
        assert!(exact.matches(&name("web01.example.com")));
        assert!(!exact.matches(&name("web02.example.com")));
    }

    #[test]
    fn refuses_lines_puppetserver_ignores_or_misreads() {
        assert!(AllowEntry::parse("web01 # comment").is_err());
        assert!(AllowEntry::parse(" web01").is_err());
        assert!(AllowEntry::parse("*foo.bar").is_err());
        assert!(AllowEntry::parse("web*.example.com").is_err());
        assert!(AllowEntry::parse("Web01.example.com").is_err());
        assert!(AllowEntry::parse("").is_err());
    }

    #[test]
    fn import_reports_every_unusable_line() {
        let text = "# comment\n\nweb01.example.com\r\n*.lab.example.com\nbad entry\n*\nweb01.example.com\n*x.y\n";
        let (entries, skipped) = parse_autosign_conf(text);
        assert_eq!(
            entries.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["web01.example.com", "*.lab.example.com", "*"]
        );
        let lines: Vec<usize> = skipped.iter().map(|s| s.line_number).collect();
        assert_eq!(lines, [5, 7, 8]);
        assert!(skipped[1].reason.contains("duplicate"));
    }
}
