//! Build tokens: one-time secrets bound to a certname, stored only as a SHA-256 hash.

use std::fmt;
use std::net::IpAddr;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use super::certname::Certname;

/// 62^43 > 2^256: 43 characters of [A-Za-z0-9] carry at least 256 random bits.
pub const TOKEN_LEN: usize = 43;
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Foreman's default token lifetime.
pub const DEFAULT_TTL_MINUTES: i64 = 360;

/// A token value as handed to a provisioner, exactly once. Never logged: `Debug` is redacted.
pub struct TokenSecret(String);

impl TokenSecret {
    /// Draw a fresh token: uniform over the alphabet by rejection sampling, so no
    /// character is likelier than another.
    pub fn generate(rng: &dyn SecureRandom) -> Result<TokenSecret, TokenError> {
        let mut out = String::with_capacity(TOKEN_LEN);
        let mut buf = [0u8; 64];
        while out.len() < TOKEN_LEN {
            rng.fill(&mut buf).map_err(|_| TokenError::Random)?;
            for b in buf {
                // 248 = 4 * 62: bytes at or above it would bias the first characters.
                if b < 248 && out.len() < TOKEN_LEN {
                    out.push(char::from(ALPHABET[usize::from(b % 62)]));
                }
            }
        }
        Ok(TokenSecret(out))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// The SHA-256 of a token value, hex: the only form a token is stored or looked up in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(presented: &str) -> TokenHash {
        let d = digest::digest(&digest::SHA256, presented.as_bytes());
        TokenHash(d.as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_stored(hex: String) -> TokenHash {
        TokenHash(hex)
    }
}

/// A subjectAltName a token or allow-list entry may permit beyond `DNS:<certname>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AltName {
    Dns(String),
    Ip(IpAddr),
}

impl AltName {
    /// `DNS:name` or `IP:address` (a bare name is read as DNS, a bare address as IP).
    /// DNS names are lower-cased; wildcards are refused, as the pipeline refuses them.
    pub fn parse(text: &str) -> Result<AltName, TokenError> {
        let text = text.trim();
        let (kind, value) = match text.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("dns") => ("dns", v),
            Some((k, v)) if k.eq_ignore_ascii_case("ip") => ("ip", v),
            _ if text.parse::<IpAddr>().is_ok() => ("ip", text),
            Some(_) => return Err(TokenError::AltName(text.to_string())),
            None => ("dns", text),
        };
        if kind == "ip" {
            return value
                .parse::<IpAddr>()
                .map(AltName::Ip)
                .map_err(|_| TokenError::AltName(text.to_string()));
        }
        let lower = value.to_ascii_lowercase();
        match Certname::parse(&lower) {
            Ok(_) => Ok(AltName::Dns(lower)),
            Err(_) => Err(TokenError::AltName(text.to_string())),
        }
    }
}

impl fmt::Display for AltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AltName::Dns(name) => write!(f, "DNS:{name}"),
            AltName::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

impl Serialize for AltName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AltName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        AltName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A stored token, without its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    pub certname: String,
    pub alt_names: Vec<AltName>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_by: String,
}

/// Where a token stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    Live,
    Used,
    Revoked,
    Expired,
}

impl TokenRecord {
    /// Used and revoked win over expired: the more specific story is the one to tell.
    pub fn state(&self, now: i64) -> TokenState {
        if self.used_at.is_some() {
            TokenState::Used
        } else if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at <= now {
            TokenState::Expired
        } else {
            TokenState::Live
        }
    }
}

/// What a provisioner asks for when it registers a host.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub certname: Certname,
    pub alt_names: Vec<AltName>,
    pub metadata: Option<serde_json::Value>,
    /// Exact to the second: a token asked to live 1 s lives 1 s.
    pub ttl_seconds: i64,
}

/// Longest lifetime a token may be given: a build that takes more than 30 days is not a build.
pub const MAX_TTL_MINUTES: i64 = 30 * 24 * 60;
pub const MAX_TTL_SECONDS: i64 = MAX_TTL_MINUTES * 60;

impl TokenRequest {
    pub fn new(
        certname: Certname,
        alt_names: Vec<AltName>,
        metadata: Option<serde_json::Value>,
        ttl_seconds: Option<i64>,
    ) -> Result<TokenRequest, TokenError> {
        let ttl_seconds = ttl_seconds.unwrap_or(DEFAULT_TTL_MINUTES * 60);
        if !(1..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
            return Err(TokenError::Ttl(format!(
                "a token lifetime must be between 1 second and {MAX_TTL_MINUTES} minutes, not {ttl_seconds} seconds"
            )));
        }
        if let Some(meta) = &metadata {
            if !meta.is_object() {
                return Err(TokenError::Metadata);
            }
        }
        let mut alt_names = alt_names;
        alt_names.sort();
        alt_names.dedup();
        Ok(TokenRequest {
            certname,
            alt_names,
            metadata,
            ttl_seconds,
        })
    }

    /// When a token issued at `now` stops being usable.
    pub fn expires_at(&self, now: i64) -> i64 {
        now.saturating_add(self.ttl_seconds)
    }
}

/// Parse a lifetime such as `90s`, `30m`, `6h`, `2d`; a bare number is minutes, as
/// Foreman's `token_ttl` is. Returns seconds, exactly; a number too large for that is an
/// error, not a wrap.
pub fn parse_ttl_seconds(text: &str) -> Result<i64, TokenError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits
        .parse()
        .map_err(|_| TokenError::Ttl(format!("'{text}' is not a lifetime like 30m, 6h or 2d")))?;
    let unit_seconds = match unit {
        "s" => 1,
        "" | "m" | "min" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(TokenError::Ttl(format!(
                "unknown unit in '{text}': use s, m, h or d"
            )))
        }
    };
    n.checked_mul(unit_seconds)
        .ok_or_else(|| TokenError::Ttl(format!("'{text}' is too long a lifetime")))
}

/// A bare number of minutes (Foreman's `token_ttl`), as seconds, refusing overflow.
pub fn minutes_to_seconds(minutes: i64) -> Result<i64, TokenError> {
    minutes
        .checked_mul(60)
        .ok_or_else(|| TokenError::Ttl(format!("{minutes} minutes is too long a lifetime")))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Random,
    AltName(String),
    Ttl(String),
    Metadata,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Random => f.write_str("the system random generator failed"),
            TokenError::AltName(s) => write!(
                f,
                "'{s}' is not an allowed alt name: use DNS:name or IP:address, without wildcards"
            ),
            TokenError::Ttl(s) => f.write_str(s),
            TokenError::Metadata => f.write_str("token metadata must be a JSON object"),
        }
    }
}

impl std::error::Error for TokenError {}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    #[test]
    fn tokens_are_43_alphanumerics_and_distinct() {
        let rng = SystemRandom::new();
        let a = TokenSecret::generate(&rng).unwrap();
        let b = TokenSecret::generate(&rng).unwrap();
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "TokenSecret(<redacted>)");
        assert_eq!(a.hash(), TokenHash::of(a.expose()));
        assert_eq!(a.hash().as_str().len(), 64);
    }

    #[test]
    fn characters_are_spread_over_the_whole_alphabet() {
        let rng = SystemRandom::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.extend(TokenSecret::generate(&rng).unwrap().expose().bytes());
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl_seconds("6h"), Ok(21_600));
        assert_eq!(parse_ttl_seconds("360"), Ok(21_600));
        assert_eq!(parse_ttl_seconds("90s"), Ok(90));
        assert_eq!(parse_ttl_seconds("1s"), Ok(1), "exact to the second");
        assert_eq!(parse_ttl_seconds("2d"), Ok(172_800));
        assert!(
            parse_ttl_seconds("9223372036854775807d").is_err(),
            "an overflow is an error, not a wrap"
        );
        assert!(minutes_to_seconds(i64::MAX).is_err());
        assert!(parse_ttl_seconds("6 hours").is_err());
        assert!(parse_ttl_seconds("h").is_err());
        let name = Certname::parse("a.example.com").unwrap();
        assert!(TokenRequest::new(name.clone(), vec![], None, Some(0)).is_err());
        assert!(TokenRequest::new(name.clone(), vec![], Some(serde_json::json!(3)), None).is_err());
        assert_eq!(
            TokenRequest::new(name, vec![], None, None)
                .unwrap()
                .ttl_seconds,
            21_600
        );
    }

    #[test]
    fn alt_names() {
        assert_eq!(
            AltName::parse("DNS:Puppet.Example.com"),
            Ok(AltName::Dns("puppet.example.com".into()))
        );
        assert_eq!(
            AltName::parse("IP:10.0.0.1").unwrap().to_string(),
            "IP:10.0.0.1"
        );
        assert_eq!(AltName::parse("::1").unwrap().to_string(), "IP:::1");
        assert_eq!(AltName::parse("puppet").unwrap().to_string(), "DNS:puppet");
        assert!(AltName::parse("DNS:*.example.com").is_err());
        assert!(AltName::parse("URI:http://x").is_err());
        assert!(AltName::parse("IP:300.1.1.1").is_err());
    }

    #[test]
    fn state_precedence() {
        let mut t = TokenRecord {
            id: 1,
            certname: "a".into(),
            alt_names: vec![],
            metadata: None,
            created_at: 0,
            expires_at: 100,
            used_at: None,
            revoked_at: None,
            created_by: "test".into(),
        };
        assert_eq!(t.state(99), TokenState::Live);
        assert_eq!(t.state(100), TokenState::Expired);
        t.used_at = Some(50);
        assert_eq!(t.state(200), TokenState::Used);
        t.used_at = None;
        t.revoked_at = Some(50);
        assert_eq!(t.state(200), TokenState::Revoked);
    }
}
