//! The one error type of the client, and the single place where ureq's errors are
//! classified.

use std::fmt;
use std::io;

use url::Url;

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

impl Error {
    /// Classifies what ureq reports for an exchange with `origin`. rustls' errors travel
    /// inside `io::Error`s, so they are dug out here.
    pub(crate) fn from_ureq(e: ureq::Error, origin: &Url) -> Error {
        let shown = origin.origin().ascii_serialization();
        let authority = match (origin.host_str(), origin.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => shown.clone(),
        };
        match e {
            ureq::Error::Timeout(_) => Error::Timeout,
            ureq::Error::Rustls(tls) => Error::Tls(format!("talking to {shown}: {tls}")),
            ureq::Error::Tls(why) => Error::Tls(format!("talking to {shown}: {why}")),
            ureq::Error::Io(io) => {
                if matches!(
                    io.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) {
                    Error::Timeout
                } else if let Some(tls) = rustls_error(&io) {
                    Error::Tls(format!("talking to {shown}: {tls}"))
                } else if matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                        | io::ErrorKind::AddrNotAvailable
                ) {
                    Error::Io(format!("connecting to {authority}: {io}"))
                } else {
                    Error::Io(format!("talking to {shown}: {io}"))
                }
            }
            ureq::Error::HostNotFound => Error::Io(format!(
                "cannot resolve {}",
                origin.host_str().unwrap_or_default()
            )),
            ureq::Error::ConnectionFailed => {
                Error::Io(format!("connecting to {authority}: the connection failed"))
            }
            ureq::Error::BodyExceedsLimit(limit) => Error::Protocol(format!(
                "talking to {shown}: the response body exceeds the {limit}-byte limit"
            )),
            ureq::Error::BadUri(why) => Error::Config(format!("URL: {why}")),
            other => Error::Protocol(format!("talking to {shown}: {other}")),
        }
    }
}

/// The rustls error behind `e`, directly or wrapped in (possibly nested) `io::Error`s.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    let mut inner = e.get_ref()?;
    loop {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(ureq::Error::Rustls(tls)) = inner.downcast_ref::<ureq::Error>() {
            return Some(tls);
        }
        inner = inner.downcast_ref::<io::Error>()?.get_ref()?;
    }
}
