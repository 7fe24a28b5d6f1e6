//! The Foreman smart-proxy's second deployment: beside an existing puppetserver CA, the
//! `/puppet/ca` listing, signing and cleaning go to puppetserver's CA API, as Foreman's
//! own proxy does, with a client certificate carrying pp_cli_auth.

use std::time::Duration;

use autosign_policy::{client_config, TlsFiles};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};

use crate::app::authority::AppError;
use crate::outbound;

pub struct PuppetserverCa {
    url: String,
    client: reqwest::Client,
}

/// What one exchange may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The whole CA's listing comes in one answer.
const MAX_BODY: usize = 256 << 20;

/// puppetserver's answer, body fully read.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl PuppetserverCa {
    pub fn new(url: &str, files: TlsFiles) -> Result<PuppetserverCa, String> {
        let bad = |e: &dyn std::fmt::Display| format!("puppetserver CA client: {e}");
        if !Url::parse(url).is_ok_and(|u| u.scheme() == "https") {
            return Err(bad(&format!("{url:?} is not an https:// URL")));
        }
        let config = client_config(&files).map_err(|e| bad(&e))?;
        let client = outbound::client(&config, TIMEOUT).map_err(|e| bad(&e))?;
        Ok(PuppetserverCa {
            url: url.trim_end_matches('/').to_string(),
            client,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One request, the whole answer read, within [`TIMEOUT`].
    async fn call(&self, method: Method, path: String, body: Vec<u8>) -> Result<Reply, AppError> {
        let failed = |e: &dyn std::fmt::Display| {
            AppError::Internal(format!("puppetserver CA at {}: {e}", self.url))
        };
        let url = Url::parse(&format!("{}{path}", self.url)).map_err(|e| failed(&e))?;
        let mut response = self
            .client
            .request(method, url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| failed(&outbound::describe(&e)))?;
        let status = response.status().as_u16();
        let too_big = || failed(&format!("the answer is larger than {MAX_BODY} bytes"));
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(&outbound::describe(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, body })
    }

    /// Every request and certificate, as puppetserver's status objects.
    pub async fn statuses(&self) -> Result<Vec<serde_json::Value>, AppError> {
        let resp = self
            .call(
                Method::GET,
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
                Method::PUT,
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
        let revoked = self.call(Method::PUT, path.clone(), body).await?;
        if !matches!(revoked.status, 200 | 204 | 404 | 409) {
            return Err(unexpected(&revoked));
        }
        let deleted = self.call(Method::DELETE, path, Vec::new()).await?;
        match deleted.status {
            200 | 204 => Ok(true),
            404 => Ok(revoked.status != 404 && revoked.status != 409),
            _ => Err(unexpected(&deleted)),
        }
    }
}

fn unexpected(resp: &Reply) -> AppError {
    let text = resp.text();
    AppError::Internal(format!(
        "puppetserver CA answered {}: {}",
        resp.status,
        text.chars().take(200).collect::<String>()
    ))
}
