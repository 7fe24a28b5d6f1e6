//! Outbound HTTP from the service, for webhooks and puppetserver's CA API: reqwest on our
//! own rustls configuration (aws-lc-rs), and one way to say why a request failed.

use std::error::Error as _;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// A client with our TLS settings: `timeout` bounds connecting and the whole exchange; a
/// redirect is an answer like any other, not followed; no proxy from the environment; a
/// fresh connection per request, since callers run on several runtimes (one per HTTP
/// worker) and a pooled connection belongs to one.
pub fn client(tls: &rustls::ClientConfig, timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| describe(&e))
}

/// TLS settings for a client that only speaks plain http: reqwest wants some (it has no
/// crypto provider of its own here), and these trust no server at all.
pub fn plain_http_only() -> Result<rustls::ClientConfig, String> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS settings: {e}"))?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth())
}

/// Why a request failed, in one line. reqwest's own message only names the URL; the
/// cause that says what went wrong is at the bottom of its source chain.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let causes = || std::iter::successors(e.source(), |&c| c.source());
    let root = causes()
        .last()
        .map_or_else(|| e.to_string(), ToString::to_string);
    let origin = e
        .url()
        .map_or_else(String::new, |u| u.origin().ascii_serialization());
    if causes().any(is_tls) {
        format!("TLS with {origin}: {root}")
    } else if e.is_connect() {
        format!("connecting to {origin}: {root}")
    } else if e.is_builder() {
        format!("building the request: {root}")
    } else {
        format!("talking to {origin}: {root}")
    }
}

/// Whether `e` is a rustls error, directly or inside (possibly nested) `io::Error`s,
/// whose `source()` skips the error they wrap.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = e;
    loop {
        if e.is::<rustls::Error>() {
            return true;
        }
        match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => e = inner,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_what_failed() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let plain = client(&plain_http_only().unwrap(), Duration::from_secs(2)).unwrap();
        // Nothing listens on the port a just-closed listener had.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let get = |url: String| runtime.block_on(async { plain.get(url).send().await });
        let refused = get(format!("http://127.0.0.1:{port}/")).unwrap_err();
        let text = describe(&refused);
        assert!(
            text.starts_with(&format!("connecting to http://127.0.0.1:{port}: ")),
            "{text}"
        );
        // The https URL meets a server that trusts no one: a TLS failure, said so.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::Write;
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
            }
        });
        let not_tls = get(format!("https://127.0.0.1:{port}/")).unwrap_err();
        let text = describe(&not_tls);
        assert!(text.starts_with("TLS with https://127.0.0.1:"), "{text}");
    }
}
