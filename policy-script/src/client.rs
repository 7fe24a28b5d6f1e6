//! A blocking HTTPS client for one origin, on ureq with our own rustls configuration:
//! keep-alive, no redirects, no proxies, and every exchange bounded by a deadline, so a
//! silent or trickling server cannot hold us past it.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use ureq::http::{self, HeaderName, HeaderValue, Method};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter,
};
use url::Url;

use crate::{Error, Response};

/// Keep-alive HTTPS requests to one origin.
///
/// Nothing touches the network until the first request; a refused connection or
/// handshake shows up there. Requests are sent one at a time on a kept-alive connection;
/// when the server ends it (`Connection: close`, or a request that sent that header) the
/// next request reconnects. A request is never sent twice.
pub struct Connection {
    origin: Url,
    agent: ureq::Agent,
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
        let settings = ureq::Agent::config_builder()
            .https_only(true)
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            // Only what the caller sends: no User-Agent or Accept of ureq's own.
            .user_agent(ureq::config::AutoHeaderValue::None)
            .accept(ureq::config::AutoHeaderValue::None)
            .timeout_global(Some(timeout))
            // Room for a response head of up to 16 KiB; ureq's 128 KiB buffers (four per
            // connection) cost the one-shot executable a visible part of its run.
            .input_buffer_size(16 * 1024)
            .output_buffer_size(16 * 1024)
            .build();
        let connector = ().chain(TcpConnector::default()).chain(Tls(config));
        Ok(Connection {
            origin,
            agent: ureq::Agent::with_parts(settings, connector, Resolve::default()),
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
        let mut request = http::Request::builder().method(method).uri(url.as_str());
        for (name, value) in checked_headers(headers)? {
            request = request.header(name, value);
        }
        let request = request
            .body(body)
            .map_err(|e| Error::Protocol(format!("cannot build the request: {e}")))?;
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(Error::Timeout)?;
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(Some(left))
            .build();
        let failed = |e| Error::from_ureq(e, &self.origin);
        let mut response = self.agent.run(request).map_err(failed)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_body as u64)
            .read_to_vec()
            .map_err(failed)?;
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
fn checked_headers(headers: &[(&str, &str)]) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
    let mut checked = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::Protocol(format!("invalid header name {name:?}")))?;
        // A CR or LF in a value would let it forge further headers; HeaderValue refuses them.
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::Protocol(format!("invalid value for header {name}")))?;
        if [
            http::header::HOST,
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
        ]
        .contains(&name)
        {
            continue;
        }
        checked.push((name, value));
    }
    Ok(checked)
}

/// ureq's resolver, except that an IP address is used as it is: the default resolver
/// starts a thread to bound every lookup by the timeout, even one that needs no DNS.
#[derive(Debug, Default)]
struct Resolve(DefaultResolver);

impl Resolver for Resolve {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let ip = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok());
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        match (ip, port) {
            (Some(ip), Some(port)) => {
                let mut addrs = self.empty();
                addrs.push(SocketAddr::new(ip, port));
                Ok(addrs)
            }
            _ => self.0.resolve(uri, config, timeout),
        }
    }
}

/// TLS over ureq's TCP transport with a finished rustls configuration: ureq's own rustls
/// connector builds one from parts, and ours is built once, in [`crate::client_config`].
#[derive(Debug)]
struct Tls(Arc<ClientConfig>);

impl<In: Transport> Connector<In> for Tls {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or_else(|| ureq::Error::BadUri(format!("{} has no host", details.uri)))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::Tls("the host is not a valid server name"))?;
        let mut conn = ClientConnection::new(Arc::clone(&self.0), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned::new(conn, sock),
        })))
    }
}

/// A TLS session on a ureq transport.
struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = self.buffers.output().get(..amount).unwrap_or_default();
        self.stream.write_all(output)?;
        self.stream.flush()?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
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
        let headers = checked_headers(&[("Accept", "a"), ("content-length", "9"), ("Host", "h")]);
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
