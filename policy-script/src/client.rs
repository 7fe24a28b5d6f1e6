//! A small blocking HTTPS/1.1 client with keep-alive where every byte of I/O is bounded
//! by a deadline, so a silent or trickling server cannot hold us past it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::error::from_io;
use crate::http::{self, Response};
use crate::url::HttpsUrl;
use crate::Error;

/// A TCP socket that re-arms its timeout to "time left until the deadline" before every
/// read and write.
///
/// rustls may issue several socket reads for one record; a fixed per-call timeout would
/// let a server trickling one byte at a time stretch the exchange forever.
struct DeadlineSocket {
    sock: TcpStream,
    deadline: Instant,
}

impl DeadlineSocket {
    fn remaining(&self) -> io::Result<Duration> {
        remaining(self.deadline).ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    }
}

impl Read for DeadlineSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.sock.set_read_timeout(Some(left))?;
        self.sock.read(buf)
    }
}

impl Write for DeadlineSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.sock.set_write_timeout(Some(left))?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// `None` once the deadline has passed (a zero timeout means "block forever" to the OS).
fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

type TlsStream = StreamOwned<ClientConnection, DeadlineSocket>;

/// One keep-alive HTTPS connection to one origin.
///
/// Requests are sent one at a time. When the server ends the connection (`Connection:
/// close`, or a body delimited by EOF) the next request reconnects transparently.
pub struct Connection {
    target: HttpsUrl,
    config: Arc<ClientConfig>,
    timeout: Duration,
    stream: Option<TlsStream>,
    max_body: usize,
}

impl Connection {
    /// Accept response bodies up to `bytes` (default [`crate::MAX_BODY`]), for callers
    /// that fetch large listings.
    pub fn set_max_body(&mut self, bytes: usize) {
        self.max_body = bytes;
    }

    /// Connects and completes the TLS handshake within `timeout`. `url` is
    /// `https://host[:port]`; `timeout` also bounds each later [`Connection::request`].
    pub fn connect(url: &str, config: Arc<ClientConfig>, timeout: Duration) -> Result<Self, Error> {
        Self::connect_with_deadline(url, config, timeout, Instant::now() + timeout)
    }

    /// As [`Connection::connect`], but the handshake must finish by `deadline`.
    pub fn connect_with_deadline(
        url: &str,
        config: Arc<ClientConfig>,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<Self, Error> {
        let target = HttpsUrl::parse(url)?;
        if !target.base_path.is_empty() {
            return Err(Error::Config(format!(
                "URL {url:?}: a connection URL has no path; put it in the request"
            )));
        }
        let stream = open(&target, &config, deadline)?;
        Ok(Connection {
            target,
            config,
            timeout,
            stream: Some(stream),
            max_body: crate::http::MAX_BODY,
        })
    }

    /// Sends one request and reads the whole response, all within the connection's timeout.
    ///
    /// `Host` and `Content-Length` are set here. Send `Connection: close` to end the
    /// connection after this exchange.
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

    /// As [`Connection::request`], but everything (including a reconnect) must finish by
    /// `deadline`.
    pub fn request_with_deadline(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Response, Error> {
        let mut message = Vec::with_capacity(256 + body.len());
        http::write_request(
            &mut message,
            method,
            &self.target.host_header(),
            path_and_query,
            headers,
            body,
        )?;
        let wants_close = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        });
        let head = method.eq_ignore_ascii_case("HEAD");
        let reused = self.stream.is_some();
        match self.exchange(&message, head, wants_close, deadline) {
            // A kept-alive connection the server closed while idle fails before any
            // response byte. Only idempotent requests are replayed (RFC 9110 §9.2.2): a
            // POST to /validate consumes a token and must never be sent twice.
            Err(Attempt::Stale(_)) if reused && is_idempotent(method) => self
                .exchange(&message, head, wants_close, deadline)
                .map_err(Attempt::into_error),
            other => other.map_err(Attempt::into_error),
        }
    }

    fn exchange(
        &mut self,
        message: &[u8],
        head: bool,
        wants_close: bool,
        deadline: Instant,
    ) -> Result<Response, Attempt> {
        let mut stream = match self.stream.take() {
            Some(mut s) => {
                s.sock.deadline = deadline;
                s
            }
            None => open(&self.target, &self.config, deadline).map_err(Attempt::Fatal)?,
        };
        let what = self.target.origin();
        if let Err(e) = stream.write_all(message).and_then(|()| stream.flush()) {
            return Err(Attempt::classify(&format!("sending to {what}"), e));
        }
        let mut reader = BufReader::new(&mut stream);
        match reader.fill_buf() {
            Ok([]) => {
                return Err(Attempt::Stale(Error::Io(format!(
                    "{what} closed the connection without answering"
                ))))
            }
            Ok(_) => {}
            Err(e) => return Err(Attempt::classify(&format!("reading from {what}"), e)),
        }
        let (response, keep_alive) = http::read_response_limited(&mut reader, head, self.max_body)
            .map_err(Attempt::Fatal)?;
        // Bytes beyond the response mean we lost track of the framing; do not reuse.
        let in_sync = reader.buffer().is_empty();
        drop(reader);
        if keep_alive && in_sync && !wants_close {
            self.stream = Some(stream);
        } else {
            close(&mut stream);
        }
        Ok(response)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(stream) = &mut self.stream {
            close(stream);
        }
    }
}

/// Says goodbye politely but briefly: a peer that does not read must not delay us.
fn close(stream: &mut TlsStream) {
    stream.conn.send_close_notify();
    stream.sock.deadline = Instant::now() + Duration::from_millis(50);
    while stream.conn.wants_write() {
        if stream.conn.write_tls(&mut stream.sock).is_err() {
            break;
        }
    }
}

enum Attempt {
    /// Failed before the server said anything: a replay may be safe.
    Stale(Error),
    Fatal(Error),
}

impl Attempt {
    fn classify(what: &str, e: io::Error) -> Self {
        let stale = matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        );
        let e = from_io(what, e);
        if stale {
            Attempt::Stale(e)
        } else {
            Attempt::Fatal(e)
        }
    }

    fn into_error(self) -> Error {
        match self {
            Attempt::Stale(e) | Attempt::Fatal(e) => e,
        }
    }
}

fn is_idempotent(method: &str) -> bool {
    ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// TCP connect (each resolved address in turn) and TLS handshake, all by `deadline`.
fn open(
    target: &HttpsUrl,
    config: &Arc<ClientConfig>,
    deadline: Instant,
) -> Result<TlsStream, Error> {
    let server_name = target.server_name()?;
    let origin = target.origin();
    let addrs = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| Error::Io(format!("cannot resolve {}: {e}", target.host)))?;
    let mut last_error = Error::Io(format!("{} resolved to no addresses", target.host));
    let mut sock = None;
    for addr in addrs {
        let left = remaining(deadline).ok_or(Error::Timeout)?;
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(e) => last_error = from_io(&format!("connecting to {addr}"), e),
        }
    }
    let sock = sock.ok_or(last_error)?;
    // Requests go out in one write; Nagle would only add latency.
    sock.set_nodelay(true)
        .map_err(|e| from_io("configuring the socket", e))?;
    let conn = ClientConnection::new(Arc::clone(config), server_name)
        .map_err(|e| Error::Tls(format!("starting TLS to {origin}: {e}")))?;
    let mut stream = StreamOwned::new(conn, DeadlineSocket { sock, deadline });
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).map_err(|e| {
            let what = format!("TLS handshake with {origin}");
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::Tls(format!("{what}: the server closed the connection"))
            } else {
                from_io(&what, e)
            }
        })?;
    }
    Ok(stream)
}
