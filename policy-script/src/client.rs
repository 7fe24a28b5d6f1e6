//! A blocking HTTPS client for one origin, on reqwest with our own rustls configuration:
//! keep-alive, no redirects, no proxies, and every exchange bounded by a deadline, so a
//! silent or trickling server cannot hold us past it.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use rustls::ClientConfig;

use crate::error::from_body_io;
use crate::{Error, Response};

/// Keep-alive HTTPS requests to one origin.
///
/// Nothing touches the network until the first request; a refused connection or
/// handshake shows up there. Requests are sent one at a time on a kept-alive connection;
/// when the server ends it (`Connection: close`, or a request that sent that header) the
/// next request reconnects. A request that may have reached the server is never replayed.
pub struct Connection {
    origin: Url,
    client: reqwest::blocking::Client,
    timeout: Duration,
    max_body: usize,
}

impl Connection {
    /// A client for `url`, `https://host[:port]`, trusting what `config` trusts.
    /// `timeout` bounds each [`Connection::request`], connecting included.
    pub fn connect(url: &str, config: Arc<ClientConfig>, timeout: Duration) -> Result<Self, Error> {
        let origin = parse_https_url(url)?;
        if origin.path() != "/" {
            return Err(Error::Config(format!(
                "URL {url:?}: a connection URL has no path; put it in the request"
            )));
        }
        let client = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(ClientConfig::clone(&config))
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(Error::from)?;
        Ok(Connection {
            origin,
            client,
            timeout,
            max_body: crate::MAX_BODY,
        })
    }

    /// Accept response bodies up to `bytes` (default [`crate::MAX_BODY`]), for callers
    /// that fetch large listings.
    pub fn set_max_body(&mut self, bytes: usize) {
        self.max_body = bytes;
    }

    /// Sends one request and reads the whole response, all within the connection's timeout.
    ///
    /// `Host` and `Content-Length` are set here; callers' copies are dropped so the framing
    /// cannot be contradicted. Send `Connection: close` to end the connection after this
    /// exchange.
    pub fn request(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Error> {
        let deadline = Instant::now() + self.timeout;
        self.request_with_deadline(method, path_and_query, headers, body, deadline)
    }

    /// As [`Connection::request`], but everything (connecting too) must finish by
    /// `deadline`.
    pub fn request_with_deadline(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Response, Error> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::Protocol(format!("invalid method {method:?}")))?;
        let url = self.target(path_and_query)?;
        let headers = header_map(headers)?;
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(Error::Timeout)?;
        let mut response = self
            .client
            .request(method, url)
            .headers(headers)
            .body(body.to_vec())
            .timeout(left)
            .send()?;
        let origin = self.origin.origin().ascii_serialization();
        let too_big = || {
            Error::Protocol(format!(
                "talking to {origin}: the response body exceeds the {}-byte limit",
                self.max_body
            ))
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body as u64)
        {
            return Err(too_big());
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let mut body = Vec::new();
        // One byte past the limit tells "exactly at the limit" from "over it".
        Read::by_ref(&mut response)
            .take(self.max_body as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| from_body_io(&origin, e))?;
        if body.len() > self.max_body {
            return Err(too_big());
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// The origin with `path_and_query`, which must be an absolute path without spaces or
    /// control characters (as it goes on the request line).
    fn target(&self, path_and_query: &str) -> Result<Url, Error> {
        if !path_and_query.starts_with('/')
            || path_and_query.starts_with("//")
            || path_and_query.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err(Error::Protocol(format!(
                "invalid request target {path_and_query:?}: must start with one / and contain no spaces or controls"
            )));
        }
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let mut url = self.origin.clone();
        url.set_path(path);
        url.set_query(query);
        Ok(url)
    }
}

/// The caller's headers, checked; `Host`, `Content-Length` and `Transfer-Encoding` are
/// ours to set and dropped.
fn header_map(headers: &[(&str, &str)]) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::Protocol(format!("invalid header name {name:?}")))?;
        // A CR or LF in a value would let it forge further headers; HeaderValue refuses them.
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::Protocol(format!("invalid value for header {name}")))?;
        if [
            reqwest::header::HOST,
            reqwest::header::CONTENT_LENGTH,
            reqwest::header::TRANSFER_ENCODING,
        ]
        .contains(&name)
        {
            continue;
        }
        map.append(name, value);
    }
    Ok(map)
}

/// The only URLs we accept: `https://host[:port][/base]`, no user information, query or
/// fragment.
pub(crate) fn parse_https_url(url: &str) -> Result<Url, Error> {
    let bad = |why: &dyn std::fmt::Display| Error::Config(format!("URL {url:?}: {why}"));
    match url.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {}
        Some((scheme, _)) => {
            return Err(bad(&format!(
                "only https URLs are accepted, not {scheme}://"
            )))
        }
        None => return Err(bad(&"must start with https://")),
    }
    // The URL parser silently drops tabs and newlines; we refuse them instead.
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(&"must not contain spaces or control characters"));
    }
    let parsed = Url::parse(url).map_err(|e| bad(&e))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(&"must not carry user information"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad(&"must not have a query or fragment"));
    }
    if parsed.port() == Some(0) {
        return Err(bad(&"port must be a number from 1 to 65535"));
    }
    Ok(parsed)
}

/// Everything but RFC 3986 unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters, so the result is safe
/// as a path segment or a query value.
pub fn percent_encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_base_path() {
        let u = parse_https_url("https://Proxy.example.com:8443/base/").unwrap();
        assert_eq!(u.host_str(), Some("proxy.example.com"));
        assert_eq!(u.port_or_known_default(), Some(8443));
        assert_eq!(u.path(), "/base/");

        let u = parse_https_url("https://[::1]").unwrap();
        assert_eq!(u.origin().ascii_serialization(), "https://[::1]");
        assert_eq!(u.port_or_known_default(), Some(443));

        let u = parse_https_url("https://127.0.0.1:8140").unwrap();
        assert_eq!(u.path(), "/");
        assert_eq!(u.origin().ascii_serialization(), "https://127.0.0.1:8140");
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
            "https://host/#f",
            "https://[zz]:1",
            "https://ho st",
            "https://host/a\tb",
        ] {
            assert!(
                matches!(parse_https_url(url), Err(Error::Config(_))),
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

    fn no_roots() -> Arc<ClientConfig> {
        let config = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        Arc::new(config)
    }

    #[test]
    fn requests_are_checked_before_anything_is_sent() {
        let mut c =
            Connection::connect("https://127.0.0.1:8140", no_roots(), Duration::from_secs(1))
                .unwrap();
        for (method, target, headers) in [
            ("GE T", "/", &[][..]),
            ("GET", "/a b", &[]),
            ("GET", "x", &[]),
            ("GET", "//evil.example.com/x", &[]),
            ("GET", "/", &[("X", "a\r\nEvil: 1")]),
            ("GET", "/", &[("Bad Name", "1")]),
        ] {
            let result = c.request(method, target, headers, b"");
            assert!(
                matches!(result, Err(Error::Protocol(_))),
                "{method} {target} {headers:?}: {result:?}"
            );
        }
        assert_eq!(
            c.target("/p?q=1&r=%2F").unwrap().as_str(),
            "https://127.0.0.1:8140/p?q=1&r=%2F"
        );
        let headers = header_map(&[("Accept", "a"), ("content-length", "9"), ("Host", "h")]);
        assert_eq!(headers.unwrap().len(), 1);
    }

    #[test]
    fn a_connection_url_has_no_path() {
        let e = Connection::connect(
            "https://127.0.0.1:8140/base",
            no_roots(),
            Duration::from_secs(1),
        );
        assert!(matches!(e, Err(Error::Config(_))));
    }
}
