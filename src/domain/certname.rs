//! Certnames: the one name a Puppet node is known by, checked once against Puppet's rules.

use std::fmt;

/// The CN of the service's own generated TLS certificate.
pub const SERVICE_CN: &str = "autosign-proxy";
/// The CN of the local client certificate (the CLI's and tests'); trusted as that exact
/// certificate, never by this name.
pub const LOCAL_CLIENT_CN: &str = "autosign-proxy-local-client";

/// A certname that follows Puppet's rules; once parsed, the rest of the code trusts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Certname(String);

/// Why a string is not a usable certname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertnameError {
    Empty,
    TooLong,
    UpperCase,
    Wildcard,
    Reserved,
    /// A character or dot-label Puppet refuses; carries the offending label.
    InvalidLabel(String),
}

/// Longest certname accepted: a DNS name's limit, which every real certname fits.
const MAX_LEN: usize = 255;

impl Certname {
    /// Puppet's rules as puppetserver applies them: lower case, no `*`, every dot-label
    /// made of `[a-z0-9_-]` and not ending in `-`, and never the reserved name `ca`.
    pub fn parse(name: &str) -> Result<Certname, CertnameError> {
        if name.is_empty() {
            return Err(CertnameError::Empty);
        }
        if name.len() > MAX_LEN {
            return Err(CertnameError::TooLong);
        }
        if name.contains('*') {
            return Err(CertnameError::Wildcard);
        }
        if name.chars().any(|c| c.is_uppercase()) {
            return Err(CertnameError::UpperCase);
        }
        for label in name.split('.') {
            let valid_chars = label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if label.is_empty() || !valid_chars || label.ends_with('-') {
                return Err(CertnameError::InvalidLabel(label.to_string()));
            }
        }
        if name == "ca" {
            return Err(CertnameError::Reserved);
        }
        Ok(Certname(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Certname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for CertnameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertnameError::Empty => f.write_str("the certname is empty"),
            CertnameError::TooLong => write!(f, "the certname is longer than {MAX_LEN} characters"),
            CertnameError::UpperCase => f.write_str("Certificate names must be lower case."),
            CertnameError::Wildcard => f.write_str("a certname must not contain a wildcard '*'"),
            CertnameError::Reserved => {
                f.write_str("the certname 'ca' is reserved for the CA itself")
            }
            CertnameError::InvalidLabel(label) => write!(
                f,
                "the certname label '{label}' is not allowed: use only a-z, 0-9, '_' and '-', \
                 not ending in '-', with no empty labels"
            ),
        }
    }
}

impl std::error::Error for CertnameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_puppet_style_names() {
        for name in ["web01.example.com", "db_1", "a-b.c_d.e", "localhost", "x1"] {
            assert_eq!(
                Certname::parse(name).map(|c| c.to_string()),
                Ok(name.to_string())
            );
        }
    }

    #[test]
    fn refuses_what_puppetserver_refuses() {
        assert_eq!(Certname::parse(""), Err(CertnameError::Empty));
        assert_eq!(
            Certname::parse("Web01.example.com"),
            Err(CertnameError::UpperCase)
        );
        assert_eq!(
            Certname::parse("*.example.com"),
            Err(CertnameError::Wildcard)
        );
        assert_eq!(Certname::parse("ca"), Err(CertnameError::Reserved));
        assert!(
            matches!(Certname::parse("web-.example.com"), Err(CertnameError::InvalidLabel(l)) if l == "web-")
        );
        assert!(matches!(
            Certname::parse("a..b"),
            Err(CertnameError::InvalidLabel(_))
        ));
        assert!(matches!(
            Certname::parse("a/b"),
            Err(CertnameError::InvalidLabel(_))
        ));
        assert!(matches!(
            Certname::parse("a b"),
            Err(CertnameError::InvalidLabel(_))
        ));
        assert!(matches!(
            Certname::parse("héllo"),
            Err(CertnameError::InvalidLabel(_))
        ));
        assert!(matches!(
            Certname::parse("trailing."),
            Err(CertnameError::InvalidLabel(_))
        ));
        assert_eq!(
            Certname::parse(&"a".repeat(256)),
            Err(CertnameError::TooLong)
        );
    }
}
