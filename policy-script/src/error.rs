//! The one error type of the client, and the single place where I/O errors are classified.

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

/// Classifies an I/O error from the socket or the TLS stream.
///
/// A socket timeout shows up as `WouldBlock` on Unix (SO_RCVTIMEO yields EAGAIN), and
/// rustls smuggles its own errors through `io::Error`, so both need unwrapping here.
pub(crate) fn from_io(what: &str, e: io::Error) -> Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        return Error::Timeout;
    }
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return Error::Tls(format!("{what}: {tls}"));
    }
    Error::Io(format!("{what}: {e}"))
}
