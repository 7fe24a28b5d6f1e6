//! Webhooks from the transactional outbox: deliveries are written with their events; a
//! worker posts them with an HMAC-SHA256 signature and a stable idempotency key, retries
//! with exponential backoff, survives restarts, and never sits in a decision's path.
//!
//! Payload (POST, `Content-Type: application/json`):
//! `{"idempotency_key": "...", "target": "...", "attempt": 1, "event": {...}}` where the
//! event is what `GET /api/v1/events` lists. Headers: `X-Autosign-Event` (the kind),
//! `Idempotency-Key` and `X-Autosign-Delivery` (the same on every retry), and
//! `X-Autosign-Signature: sha256=<hex HMAC-SHA256 of the body with the shared secret>`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;

use crate::config::WebhookConfig;
use crate::metrics::METRICS;
use crate::outbound;
use crate::store::{Delivery, Store};
use crate::time;

/// A configured receiver, ready to send.
pub struct Webhook {
    pub config: WebhookConfig,
    url: Url,
    key: Option<hmac::Key>,
    client: reqwest::Client,
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
        let url = Url::parse(&config.url)
            .map_err(|e| format!("webhook {}: url {:?}: {e}", config.name, config.url))?;
        let tls = match url.scheme() {
            "https" => {
                let files = autosign_policy::TlsFiles {
                    ca_file: config.ca_file.clone().ok_or(format!(
                        "webhook {}: an https URL needs ca_file",
                        config.name
                    ))?,
                    cert: config.client_cert.clone(),
                    key: config.client_key.clone(),
                };
                let tls = autosign_policy::client_config(&files)
                    .map_err(|e| format!("webhook {}: {e}", config.name))?;
                rustls::ClientConfig::clone(&tls)
            }
            "http" => {
                outbound::plain_http_only().map_err(|e| format!("webhook {}: {e}", config.name))?
            }
            _ => {
                return Err(format!(
                    "webhook {}: url must be http:// or https://",
                    config.name
                ))
            }
        };
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        let client =
            outbound::client(&tls, timeout).map_err(|e| format!("webhook {}: {e}", config.name))?;
        Ok(Webhook {
            config,
            url,
            key,
            client,
        })
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

    /// One attempt, within the webhook's timeout; Ok when the receiver answered 2xx.
    async fn send(&self, delivery: &Delivery) -> Result<(), String> {
        let body = serde_json::json!({
            "idempotency_key": delivery.idempotency_key,
            "target": delivery.target,
            "attempt": delivery.attempts + 1,
            "event": delivery.event,
        })
        .to_string();
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("X-Autosign-Event", &delivery.event.kind)
            .header("Idempotency-Key", &delivery.idempotency_key)
            .header("X-Autosign-Delivery", &delivery.idempotency_key);
        if let Some(sig) = self.signature(body.as_bytes()) {
            request = request.header("X-Autosign-Signature", sig);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| outbound::describe(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", status.as_u16()))
        }
    }
}

/// Seconds before the next attempt: 5 s doubling, at most an hour.
pub fn backoff(attempts: u32) -> i64 {
    5i64.saturating_mul(1i64 << attempts.min(10)).min(3600)
}

/// Deliver forever: take due deliveries, post them one at a time, record the outcome. A
/// hanging receiver costs this task its timeout, never a decision.
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
            let result = match hooks.iter().find(|h| h.config.name == delivery.target) {
                Some(hook) => hook.send(&delivery).await,
                None => Err(format!(
                    "no webhook named {} is configured",
                    delivery.target
                )),
            };
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
    fn only_http_and_https_urls_are_accepted() {
        // The error, or "" when the webhook was accepted.
        let refusal = |url: &str, ca_file: Option<&str>| {
            Webhook::new(WebhookConfig {
                name: "t".into(),
                url: url.into(),
                ca_file: ca_file.map(Into::into),
                ..WebhookConfig::default()
            })
            .err()
            .unwrap_or_default()
        };
        assert_eq!(refusal("http://127.0.0.1:9/x?y=1", None), "");
        assert!(refusal("ftp://h/", None).contains("http:// or https://"));
        assert!(refusal("not a url", None).contains("not a url"));
        assert!(refusal("https://h/", None).contains("needs ca_file"));
        assert!(refusal("https://h/", Some("/nonexistent/ca.pem")).contains("/nonexistent/ca.pem"));
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
