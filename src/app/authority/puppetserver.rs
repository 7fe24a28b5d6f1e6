//! The Foreman smart-proxy's second deployment: beside an existing puppetserver CA, the
//! `/puppet/ca` listing, signing and cleaning go to puppetserver's CA API, as Foreman's
//! own proxy does, with a client certificate carrying pp_cli_auth.

use std::sync::Arc;
use std::time::Duration;

use autosign_policy::{client_config, Connection, Response, TlsFiles};

use crate::app::authority::AppError;

pub struct PuppetserverCa {
    url: String,
    config: Arc<rustls::ClientConfig>,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl PuppetserverCa {
    pub fn new(url: &str, files: TlsFiles) -> Result<PuppetserverCa, String> {
        let config = client_config(&files).map_err(|e| format!("puppetserver CA client: {e}"))?;
        Ok(PuppetserverCa {
            url: url.trim_end_matches('/').to_string(),
            config,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One request on a fresh connection, off the async workers (the client blocks).
    async fn call(
        &self,
        method: &'static str,
        path: String,
        body: Vec<u8>,
    ) -> Result<Response, AppError> {
        let (url, config) = (self.url.clone(), self.config.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = Connection::connect(&url, config, TIMEOUT)?;
            conn.set_max_body(256 << 20);
            conn.request(
                method,
                &path,
                &[
                    ("Content-Type", "application/json"),
                    ("Accept", "application/json"),
                ],
                &body,
            )
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(format!("puppetserver CA at {}: {e}", self.url)))
    }

    /// Every request and certificate, as puppetserver's status objects.
    pub async fn statuses(&self) -> Result<Vec<serde_json::Value>, AppError> {
        let resp = self
            .call(
                "GET",
                "/puppet-ca/v1/certificate_statuses/any".into(),
                Vec::new(),
            )
            .await?;
        if resp.status != 200 {
            return Err(unexpected(&resp));
        }
        serde_json::from_slice::<Vec<serde_json::Value>>(&resp.body)
            .map_err(|e| AppError::Internal(format!("puppetserver's certificate_statuses: {e}")))
    }

    pub async fn sign(&self, name: &str) -> Result<(), AppError> {
        let body = br#"{"desired_state":"signed"}"#.to_vec();
        let resp = self
            .call(
                "PUT",
                format!("/puppet-ca/v1/certificate_status/{name}"),
                body,
            )
            .await?;
        match resp.status {
            204 | 200 => Ok(()),
            404 => Err(AppError::NotFound(resp.text())),
            409 if resp.text().contains("without a certificate request") => {
                Err(AppError::NoRequest(resp.text()))
            }
            409 => Err(AppError::Conflict(resp.text())),
            _ => Err(unexpected(&resp)),
        }
    }

    /// What Foreman's smart proxy does: revoke (409: nothing signed to revoke, 404:
    /// unknown), then delete the certificate or pending request (404: nothing there).
    /// `false` when puppetserver had nothing of that name.
    pub async fn clean(&self, name: &str) -> Result<bool, AppError> {
        let path = format!(
            "/puppet-ca/v1/certificate_status/{}",
            autosign_policy::percent_encode_component(name)
        );
        let body = br#"{"desired_state":"revoked"}"#.to_vec();
        let revoked = self.call("PUT", path.clone(), body).await?;
        if !matches!(revoked.status, 200 | 204 | 404 | 409) {
            return Err(unexpected(&revoked));
        }
        let deleted = self.call("DELETE", path, Vec::new()).await?;
        match deleted.status {
            200 | 204 => Ok(true),
            404 => Ok(revoked.status != 404 && revoked.status != 409),
            _ => Err(unexpected(&deleted)),
        }
    }
}

fn unexpected(resp: &Response) -> AppError {
    let text = resp.text();
    AppError::Internal(format!(
        "puppetserver CA answered {}: {}",
        resp.status,
        text.chars().take(200).collect::<String>()
    ))
}
