//! Webhooks from the transactional outbox: deliveries are written with their events; a
//! worker posts them with an HMAC-SHA256 signature and a stable idempotency key, retries
//! with exponential backoff, survives restarts, and never sits in a decision's path.
//!
//! Payload (POST, `Content-Type: application/json`):
//! `{"idempotency_key": "...", "target": "...", "attempt": 1, "event": {...}}` where the
//! event is what `GET /api/v1/events` lists. Headers: `X-Autosign-Event` (the kind),
//! `Idempotency-Key` and `X-Autosign-Delivery` (the same on every retry), and
//! `X-Autosign-Signature: sha256=<hex HMAC-SHA256 of the body with the shared secret>`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;

use crate::config::WebhookConfig;
use crate::metrics::METRICS;
use crate::store::{Delivery, Store};
use crate::time;

/// A configured receiver, ready to send.
pub struct Webhook {
    pub config: WebhookConfig,
    key: Option<hmac::Key>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Webhook {
    pub fn new(config: WebhookConfig) -> Result<Webhook, String> {
        let secret = match (&config.secret, &config.secret_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        format!(
                            "webhook {}: cannot read {}: {e}",
                            config.name,
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        let key = secret.map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes()));
        let tls = if config.url.starts_with("https://") {
            let files = autosign_policy::TlsFiles {
                ca_file: config.ca_file.clone().ok_or(format!(
                    "webhook {}: an https URL needs ca_file",
                    config.name
                ))?,
                cert: config.client_cert.clone(),
                key: config.client_key.clone(),
            };
            Some(
                autosign_policy::client_config(&files)
                    .map_err(|e| format!("webhook {}: {e}", config.name))?,
            )
        } else if config.url.starts_with("http://") {
            None
        } else {
            return Err(format!(
                "webhook {}: url must be http:// or https://",
                config.name
            ));
        };
        Ok(Webhook { config, key, tls })
    }

    /// `sha256=<hex>` of the body, when a secret is configured.
    pub fn signature(&self, body: &[u8]) -> Option<String> {
        self.key.as_ref().map(|key| {
            let tag = hmac::sign(key, body);
            format!(
                "sha256={}",
                tag.as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        })
    }

    /// One attempt; Ok when the receiver answered 2xx.
    fn send(&self, delivery: &Delivery) -> Result<(), String> {
        let body = serde_json::json!({
            "idempotency_key": delivery.idempotency_key,
            "target": delivery.target,
            "attempt": delivery.attempts + 1,
            "event": delivery.event,
        })
        .to_string();
        let mut headers: Vec<(&str, String)> = vec![
            ("Content-Type", "application/json".into()),
            ("X-Autosign-Event", delivery.event.kind.clone()),
            ("Idempotency-Key", delivery.idempotency_key.clone()),
            ("X-Autosign-Delivery", delivery.idempotency_key.clone()),
        ];
        if let Some(sig) = self.signature(body.as_bytes()) {
            headers.push(("X-Autosign-Signature", sig));
        }
        let timeout = Duration::from_secs(self.config.timeout_seconds.max(1));
        let (base, path) = split_url(&self.config.url)?;
        let status = match &self.tls {
            Some(tls) => {
                let mut conn = autosign_policy::Connection::connect(&base, tls.clone(), timeout)
                    .map_err(|e| e.to_string())?;
                let refs: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                conn.request("POST", &path, &refs, body.as_bytes())
                    .map_err(|e| e.to_string())?
                    .status
            }
            None => plain_post(&base, &path, &headers, body.as_bytes(), timeout)?,
        };
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

/// ("scheme://host:port", "/path?query")
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("https://")
        .map(|r| ("https://", r))
        .or_else(|| url.strip_prefix("http://").map(|r| ("http://", r)))
        .ok_or(format!("{url} is not an http(s) URL"))?;
    let (authority, path) = match rest.1.find('/') {
        Some(i) => rest.1.split_at(i),
        None => (rest.1, "/"),
    };
    Ok((format!("{}{authority}", rest.0), path.to_string()))
}

/// A plain-HTTP POST (receivers on a trusted network or loopback); reads the status only.
fn plain_post(
    base: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<u16, String> {
    let authority = base.trim_start_matches("http://");
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = address
        .to_socket_addrs()
        .map_err(|e| format!("{address}: {e}"))?
        .next()
        .ok_or(format!("{address}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{address}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        if value.contains(['\r', '\n']) {
            return Err(format!("header {name} holds a line break"));
        }
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("{address}: {e}"))?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(head.get_mut(read..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("{address}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(head.get(..read).unwrap_or(&[])).to_string();
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or(format!("{address}: not an HTTP answer: {line:?}"))
}

/// Seconds before the next attempt: 5 s doubling, at most an hour.
pub fn backoff(attempts: u32) -> i64 {
    5i64.saturating_mul(1i64 << attempts.min(10)).min(3600)
}

/// Deliver forever: take due deliveries, post them off the async workers, record the
/// outcome. A hanging receiver costs this task its timeout, never a decision.
pub async fn run(store: Arc<dyn Store>, hooks: Arc<Vec<Webhook>>) {
    loop {
        let now = time::now();
        let batch = match store.claim_deliveries(now, 32, 120).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhook outbox");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        for delivery in batch {
            let hooks = hooks.clone();
            let d = delivery.clone();
            let result = tokio::task::spawn_blocking(move || {
                match hooks.iter().find(|h| h.config.name == d.target) {
                    Some(hook) => hook.send(&d),
                    None => Err(format!("no webhook named {} is configured", d.target)),
                }
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let outcome = match result {
                Ok(()) => {
                    METRICS.webhook_delivered.fetch_add(1, Ordering::Relaxed);
                    store.delivery_done(delivery.id, time::now()).await
                }
                Err(error) => {
                    METRICS.webhook_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target = %delivery.target, key = %delivery.idempotency_key, attempt = delivery.attempts + 1, %error, "webhook delivery failed");
                    store
                        .delivery_failed(
                            delivery.id,
                            time::now() + backoff(delivery.attempts),
                            &error,
                        )
                        .await
                }
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "cannot record a webhook delivery");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), 5);
        assert_eq!(backoff(1), 10);
        assert_eq!(backoff(4), 80);
        assert_eq!(backoff(30), 3600);
    }

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("http://127.0.0.1:9/x?y=1").unwrap(),
            ("http://127.0.0.1:9".into(), "/x?y=1".into())
        );
        assert_eq!(
            split_url("https://h").unwrap(),
            ("https://h".into(), "/".into())
        );
        assert!(split_url("ftp://h").is_err());
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        let hook = Webhook::new(WebhookConfig {
            name: "t".into(),
            url: "http://127.0.0.1:1/".into(),
            secret: Some("key".into()),
            ..WebhookConfig::default()
        })
        .unwrap();
        // RFC 4231-style check computed independently: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")
        assert_eq!(
            hook.signature(b"The quick brown fox jumps over the lazy dog")
                .unwrap(),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
