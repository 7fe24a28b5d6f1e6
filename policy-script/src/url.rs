//! The only URLs we accept, `https://host[:port][/base]`, parsed once into their parts.

use std::net::Ipv6Addr;

use rustls::pki_types::ServerName;

use crate::Error;

/// A parsed `https` URL: where to connect, what to verify, and the path prefix to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpsUrl {
    /// Host name or IP literal, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash; empty when the URL has none.
    pub base_path: String,
}

impl HttpsUrl {
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Config(format!("URL {url:?}: {why}"));
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "only https URLs are accepted, not {scheme}://"
                )))
            }
            None => return Err(bad("must start with https://")),
        };
        if rest.contains(['?', '#']) {
            return Err(bad("must not have a query or fragment"));
        }
        if rest
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_control())
        {
            return Err(bad("must not contain spaces or control characters"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(bad("must not carry user information"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, tail) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("bracketed host is not an IPv6 address"));
            }
            let port = match tail {
                "" => None,
                t => Some(t.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let port = match port {
            None => 443,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(bad("port must be a number from 1 to 65535")),
            },
        };
        Ok(HttpsUrl {
            host: host.to_ascii_lowercase(),
            port,
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The `Host` header value: brackets for IPv6, the port only when it is not 443.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 443 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The name the server certificate must carry: a DNS name or an IP SAN.
    pub fn server_name(&self) -> Result<ServerName<'static>, Error> {
        ServerName::try_from(self.host.clone())
            .map_err(|e| Error::Config(format!("host {:?} is not a valid name: {e}", self.host)))
    }

    /// `scheme://authority` for messages.
    pub fn origin(&self) -> String {
        format!("https://{}", self.host_header())
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so the result is safe
/// as a path segment or a query value.
pub fn percent_encode_component(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_base_path() {
        let u = HttpsUrl::parse("https://Proxy.example.com:8443/base/").unwrap();
        assert_eq!(u.host, "proxy.example.com");
        assert_eq!(u.port, 8443);
        assert_eq!(u.base_path, "/base");
        assert_eq!(u.host_header(), "proxy.example.com:8443");

        let u = HttpsUrl::parse("https://[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 443));
        assert_eq!(u.host_header(), "[::1]");
        assert!(u.server_name().is_ok());

        let u = HttpsUrl::parse("https://127.0.0.1:8140").unwrap();
        assert_eq!(u.base_path, "");
        assert!(matches!(u.server_name().unwrap(), ServerName::IpAddress(_)));
    }

    #[test]
    fn rejects_what_we_do_not_speak() {
        for url in [
            "http://127.0.0.1:8140",
            "127.0.0.1:8140",
            "https://",
            "https://:8140",
            "https://host:0",
            "https://host:http",
            "https://host:99999",
            "https://user@host",
            "https://host/?q",
            "https://[zz]:1",
            "https://ho st",
        ] {
            assert!(
                matches!(HttpsUrl::parse(url), Err(Error::Config(_))),
                "{url} accepted"
            );
        }
    }

    #[test]
    fn percent_encodes_all_but_unreserved() {
        assert_eq!(
            percent_encode_component("web01.example.com"),
            "web01.example.com"
        );
        assert_eq!(
            percent_encode_component("a b&c=d/é"),
            "a%20b%26c%3Dd%2F%C3%A9"
        );
        assert_eq!(percent_encode_component("*.x~_-"), "%2A.x~_-");
    }
}
