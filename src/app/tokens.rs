//! Build tokens: issue (shown once), list (never the value), revoke.

use serde::Serialize;

use super::{parse_certname, App, AppError};
use crate::domain::certname::Certname;
use crate::domain::event::{kind, Actor, NewEvent};
use crate::domain::token::{AltName, TokenRecord, TokenRequest, TokenSecret, TokenState};
use crate::store::TokenSelector;
use crate::time;

/// A token as listed: never its value.
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    #[serde(flatten)]
    pub record: TokenRecord,
    pub state: TokenState,
    pub expires: String,
}

/// A freshly issued token: the only time its value exists outside the provisioner.
#[derive(Debug, Serialize)]
pub struct IssuedToken {
    pub id: i64,
    pub token: String,
    pub certname: String,
    pub alt_names: Vec<AltName>,
    pub expires_at: i64,
    pub expires: String,
}

impl App {
    /// Whether `presented` is a live build token of `certname` (nothing is consumed).
    pub async fn has_live_token(
        &self,
        certname: &Certname,
        presented: &str,
    ) -> Result<bool, AppError> {
        Ok(self
            .store
            .find_token(&crate::domain::token::TokenHash::of(presented))
            .await?
            .is_some_and(|t| {
                t.certname == certname.as_str() && t.state(time::now()) == TokenState::Live
            }))
    }

    /// Register a host: a new one-time token bound to `certname`. Any earlier live token
    /// of the host is revoked in the same transaction.
    pub async fn issue_token(
        &self,
        certname: &str,
        alt_names: Vec<AltName>,
        metadata: Option<serde_json::Value>,
        ttl_seconds: Option<i64>,
        actor: &Actor,
    ) -> Result<IssuedToken, AppError> {
        let certname = parse_certname(certname)?;
        let request = TokenRequest::new(
            certname,
            alt_names,
            metadata,
            Some(ttl_seconds.unwrap_or(self.config.tokens.default_ttl_minutes * 60)),
        )
        .map_err(|e| AppError::Invalid(e.to_string()))?;
        let secret =
            TokenSecret::generate(&self.rng).map_err(|e| AppError::Internal(e.to_string()))?;
        let now = time::now();
        let event = NewEvent::new(now, kind::TOKEN_ISSUED, actor)
            .certname(request.certname.as_str())
            .message(format!(
                "build token issued, valid for {} seconds",
                request.ttl_seconds
            ))
            .details(serde_json::json!({
                "alt_names": request.alt_names,
                "expires_at": request.expires_at(now),
            }));
        let record = self
            .store
            .issue_token(&request, &secret.hash(), now, event)
            .await?;
        tracing::info!(certname = %record.certname, token_id = record.id, actor = %actor.name, request_id = actor.request_id.as_deref().unwrap_or("-"), "build token issued");
        Ok(IssuedToken {
            id: record.id,
            token: secret.expose().to_string(),
            certname: record.certname,
            alt_names: record.alt_names,
            expires_at: record.expires_at,
            expires: time::rfc3339(record.expires_at),
        })
    }

    pub async fn list_tokens(
        &self,
        certname: Option<&str>,
        all: bool,
    ) -> Result<Vec<TokenView>, AppError> {
        let now = time::now();
        let records = self
            .store
            .list_tokens(certname, (!all).then_some(now))
            .await?;
        Ok(records
            .into_iter()
            .map(|record| TokenView {
                state: record.state(now),
                expires: time::rfc3339(record.expires_at),
                record,
            })
            .collect())
    }

    /// Revoke a token by id, or every live token of a certname. NotFound when nothing
    /// live matched.
    pub async fn revoke_tokens(
        &self,
        selector: TokenSelector,
        actor: &Actor,
    ) -> Result<Vec<i64>, AppError> {
        let now = time::now();
        let event = NewEvent::new(now, kind::TOKEN_REVOKED, actor).message("build token revoked");
        let revoked = self.store.revoke_tokens(&selector, now, event).await?;
        if revoked.is_empty() {
            return Err(AppError::NotFound(match selector {
                TokenSelector::Id(id) => format!("no live build token with id {id}"),
                TokenSelector::Certname(name) => format!("no live build token for {name}"),
            }));
        }
        tracing::info!(?revoked, actor = %actor.name, request_id = actor.request_id.as_deref().unwrap_or("-"), "build tokens revoked");
        Ok(revoked)
    }
}
