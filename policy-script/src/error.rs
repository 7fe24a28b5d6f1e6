//! The one error type of the client, and the single place where reqwest's errors are
//! classified.

use std::error::Error as _;
use std::fmt;
use std::io;

/// Why a request could not be completed.
///
/// Callers that must fail closed only need to know that *something* failed; the variants
/// exist so the message can say which layer to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad settings or unusable files: URL, CA bundle, client certificate or key.
    Config(String),
    /// The network failed below TLS: resolving, connecting, a reset connection.
    Io(String),
    /// The TLS layer failed: handshake, certificate verification, alerts.
    Tls(String),
    /// The deadline passed before the exchange completed.
    Timeout,
    /// The peer did not speak HTTP/1.1 as we understand it, or the request was malformed.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "configuration error: {m}"),
            Error::Io(m) => write!(f, "network error: {m}"),
            Error::Tls(m) => write!(f, "TLS error: {m}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Protocol(m) => write!(f, "HTTP protocol error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Classifies a failed exchange. reqwest's own message only names the URL; the cause that
/// says what went wrong is at the bottom of its source chain, and rustls' errors travel
/// inside `io::Error`s, so both are dug out here.
impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Error {
        let origin = e.url().map_or_else(
            || "the server".to_owned(),
            |u| u.origin().ascii_serialization(),
        );
        classify(&e, &origin)
    }
}

fn classify(e: &reqwest::Error, origin: &str) -> Error {
    if e.is_timeout() {
        return Error::Timeout;
    }
    let chain = || std::iter::successors(e.source(), |&c| c.source());
    let root = chain()
        .last()
        .map_or_else(|| e.to_string(), |c| c.to_string());
    if let Some(tls) = chain().find_map(rustls_error) {
        return Error::Tls(format!("talking to {origin}: {tls}"));
    }
    if e.is_builder() {
        return Error::Config(format!("{origin}: {root}"));
    }
    if e.is_connect() {
        let authority = e
            .url()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
            .unwrap_or_else(|| origin.to_owned());
        return Error::Io(format!("connecting to {authority}: {root}"));
    }
    if chain().any(|c| c.is::<io::Error>()) {
        return Error::Io(format!("talking to {origin}: {root}"));
    }
    // No I/O failure underneath: hyper could not make sense of what the server sent, or
    // the connection closed in the middle of a message.
    Error::Protocol(format!("talking to {origin}: {root}"))
}

/// An I/O error from reading a response body: a reqwest error inside, or a plain one.
pub(crate) fn from_body_io(origin: &str, e: io::Error) -> Error {
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return Error::Timeout;
    }
    if let Some(tls) = rustls_error(&e) {
        return Error::Tls(format!("talking to {origin}: {tls}"));
    }
    if e.get_ref()
        .is_some_and(|inner| inner.is::<reqwest::Error>())
    {
        if let Some(Ok(inner)) = e.into_inner().map(|i| i.downcast::<reqwest::Error>()) {
            return classify(&inner, origin);
        }
        return Error::Io(format!("reading the response from {origin}"));
    }
    Error::Io(format!("reading the response from {origin}: {e}"))
}

/// The rustls error behind `e`, directly or wrapped in (possibly nested) `io::Error`s,
/// whose `source()` skips the error they wrap.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut e = e;
    loop {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        e = e.downcast_ref::<io::Error>()?.get_ref()?;
    }
}
