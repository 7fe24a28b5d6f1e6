//! The use cases, shared by the HTTP API and the local CLI: issue and revoke tokens,
//! keep the allow-list, decide on CSRs, read events. Each takes the actor and reads the
//! clock in one place, so the domain below gets time passed in.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use serde::Serialize;

use crate::config::Config;
use crate::domain::allowlist::{parse_autosign_conf, AllowEntry, SkippedLine};
use crate::domain::certname::Certname;
use crate::domain::decision::{Decision, Reason};
use crate::metrics::METRICS;

/// Rejections of one certname within this many seconds...
const ALERT_WINDOW: i64 = 600;
/// ...from this many on, raise a suspicious_request event.
const ALERT_BURST: u64 = 5;
use crate::domain::event::{kind, Actor, EventFilter, EventRecord, NewEvent};
use crate::domain::policy::{self, CsrInput, Decided, DecisionRequest, PolicySettings, ReservedNames};
use crate::domain::token::{AltName, TokenRecord, TokenRequest, TokenSecret, TokenState};
use crate::store::{AllowRecord, Store, StoreError, TokenSelector};
use crate::timefmt;

/// Why a use case could not be carried out. `http/errors.rs` maps these to statuses.
#[derive(Debug)]
pub enum AppError {
    /// The request itself is wrong; the message says how.
    Invalid(String),
    NotFound(String),
    Store(StoreError),
    Internal(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Invalid(m) | AppError::NotFound(m) | AppError::Internal(m) => f.write_str(m),
            AppError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AppError {}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        AppError::Store(e)
    }
}

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

/// What an autosign.conf import did, line by line.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub added: Vec<String>,
    pub already_present: Vec<String>,
    pub skipped: Vec<SkippedReport>,
}

#[derive(Debug, Serialize)]
pub struct SkippedReport {
    pub line_number: usize,
    pub line: String,
    pub reason: String,
}

impl From<SkippedLine> for SkippedReport {
    fn from(s: SkippedLine) -> SkippedReport {
        SkippedReport {
            line_number: s.line_number,
            line: s.line,
            reason: s.reason,
        }
    }
}

pub struct App {
    pub store: Arc<dyn Store>,
    pub config: Config,
    policy: PolicySettings,
    rng: SystemRandom,
}

impl App {
    /// `reserved`: the names no automatic path signs (see `ReservedNames`).
    pub fn new(store: Arc<dyn Store>, config: Config, reserved: ReservedNames) -> App {
        let policy = PolicySettings {
            allowed_auth_extensions: config.policy.allowed_auth_extensions.clone(),
            reserved,
        };
        App {
            store,
            config,
            policy,
            rng: SystemRandom::new(),
        }
    }

    /// Register a host: a new one-time token bound to `certname`. Any earlier live token
    /// of the host is revoked in the same transaction.
    pub async fn issue_token(
        &self,
        certname: &str,
        alt_names: Vec<AltName>,
        metadata: Option<serde_json::Value>,
        ttl_minutes: Option<i64>,
        actor: &Actor,
    ) -> Result<IssuedToken, AppError> {
        let certname = parse_certname(certname)?;
        let request = TokenRequest::new(
            certname,
            alt_names,
            metadata,
            Some(ttl_minutes.unwrap_or(self.config.tokens.default_ttl_minutes)),
        )
        .map_err(|e| AppError::Invalid(e.to_string()))?;
        let secret =
            TokenSecret::generate(&self.rng).map_err(|e| AppError::Internal(e.to_string()))?;
        let now = timefmt::now();
        let event = NewEvent::new(now, kind::TOKEN_ISSUED, actor)
            .certname(request.certname.as_str())
            .message(format!(
                "build token issued, valid for {} minutes",
                request.ttl_minutes
            ))
            .details(serde_json::json!({
                "alt_names": request.alt_names,
                "expires_at": now + request.ttl_minutes * 60,
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
            expires: timefmt::rfc3339(record.expires_at),
        })
    }

    pub async fn list_tokens(
        &self,
        certname: Option<&str>,
        all: bool,
    ) -> Result<Vec<TokenView>, AppError> {
        let now = timefmt::now();
        let records = self
            .store
            .list_tokens(certname, (!all).then_some(now))
            .await?;
        Ok(records
            .into_iter()
            .map(|record| TokenView {
                state: record.state(now),
                expires: timefmt::rfc3339(record.expires_at),
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
        let now = timefmt::now();
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

    /// Add an allow-list entry; `Ok(false)` when it was already there.
    pub async fn add_allow_entry(
        &self,
        pattern: &str,
        alt_names: Vec<AltName>,
        actor: &Actor,
    ) -> Result<bool, AppError> {
        let entry = AllowEntry::parse(pattern).map_err(AppError::Invalid)?;
        let pattern = entry.to_string();
        let now = timefmt::now();
        let record = AllowRecord {
            pattern: pattern.clone(),
            alt_names,
            created_at: now,
            created_by: actor.name.clone(),
        };
        let event = NewEvent::new(now, kind::ALLOW_ENTRY_ADDED, actor)
            .message(format!("allow-list entry '{pattern}' added"))
            .details(serde_json::json!({ "pattern": pattern, "alt_names": record.alt_names }));
        Ok(self.store.add_allow_entry(&record, event).await?)
    }

    pub async fn remove_allow_entry(&self, pattern: &str, actor: &Actor) -> Result<(), AppError> {
        let now = timefmt::now();
        let event = NewEvent::new(now, kind::ALLOW_ENTRY_REMOVED, actor)
            .message(format!("allow-list entry '{pattern}' removed"))
            .details(serde_json::json!({ "pattern": pattern }));
        if self.store.remove_allow_entry(pattern, event).await? {
            Ok(())
        } else {
            Err(AppError::NotFound(format!(
                "no allow-list entry '{pattern}'"
            )))
        }
    }

    pub async fn list_allow_entries(&self) -> Result<Vec<AllowRecord>, AppError> {
        Ok(self.store.list_allow_entries().await?)
    }

    /// Import an autosign.conf: every usable line becomes an entry, every other line is
    /// reported with its number and why.
    pub async fn import_autosign_conf(
        &self,
        text: &str,
        actor: &Actor,
    ) -> Result<ImportReport, AppError> {
        let (entries, skipped) = parse_autosign_conf(text);
        let mut report = ImportReport {
            added: Vec::new(),
            already_present: Vec::new(),
            skipped: skipped.into_iter().map(SkippedReport::from).collect(),
        };
        for entry in entries {
            let pattern = entry.to_string();
            if self.add_allow_entry(&pattern, Vec::new(), actor).await? {
                report.added.push(pattern);
            } else {
                report.already_present.push(pattern);
            }
        }
        Ok(report)
    }

    /// The names no automatic path signs.
    pub fn reserved_names(&self) -> &ReservedNames {
        &self.policy.reserved
    }

    pub fn policy_settings(&self) -> &PolicySettings {
        &self.policy
    }

    /// Run the decision pipeline on one CSR.
    pub async fn decide(
        &self,
        csr: CsrInput<'_>,
        certname: Option<&str>,
        actor: &Actor,
    ) -> Result<Decided, AppError> {
        let started = std::time::Instant::now();
        let request = DecisionRequest {
            csr,
            certname,
            actor,
        };
        let now = timefmt::now();
        let decided = policy::decide(self.store.as_ref(), &self.policy, &request, now).await?;
        let decision = &decided.decision;
        METRICS.decision(decision.reason, started.elapsed());
        if !decision.approved() {
            self.raise_alert(decision, actor, now).await?;
        }
        tracing::info!(
            certname = decision.certname.as_deref().unwrap_or("-"),
            decision = decision.decision.as_str(),
            reason = decision.reason.code(),
            fingerprint = decision.csr_fingerprint.as_deref().unwrap_or("-"),
            token_id = decision.token_id,
            event_id = decision.event_id,
            actor = %actor.name,
            request_id = actor.request_id.as_deref().unwrap_or("-"),
            "{}",
            decision.message
        );
        Ok(decided)
    }

    /// A token presented for another host, or a burst of rejections for one certname,
    /// raises a `suspicious_request` event a receiver can page on (once per window).
    async fn raise_alert(
        &self,
        decision: &Decision,
        actor: &Actor,
        now: i64,
    ) -> Result<(), AppError> {
        let Some(certname) = decision.certname.as_deref() else {
            return Ok(());
        };
        let why = if decision.reason == Reason::TokenWrongHost {
            Some(format!(
                "a build token of another host was presented for {certname}"
            ))
        } else {
            let recent = self
                .store
                .count_rejections(certname, now - ALERT_WINDOW)
                .await?;
            let raised = self
                .store
                .has_event(certname, kind::SUSPICIOUS_REQUEST, now - ALERT_WINDOW)
                .await?;
            (recent >= ALERT_BURST && !raised).then(|| {
                format!(
                    "{recent} rejected requests for {certname} within {} minutes",
                    ALERT_WINDOW / 60
                )
            })
        };
        if let Some(message) = why {
            tracing::warn!(certname, actor = %actor.name, "{message}");
            let event = NewEvent::new(now, kind::SUSPICIOUS_REQUEST, actor)
                .certname(certname)
                .message(message)
                .details(serde_json::json!({
                    "reason": decision.reason.code(),
                    "decision_event_id": decision.event_id,
                    "csr_fingerprint": decision.csr_fingerprint,
                }));
            self.store.record_event(event).await?;
        }
        Ok(())
    }

    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, AppError> {
        Ok(self.store.list_events(filter).await?)
    }

    /// Foreman's autosign list: allow-list patterns and the certnames holding a live token.
    pub async fn autosign_names(&self) -> Result<Vec<String>, AppError> {
        let mut names: Vec<String> = self
            .list_allow_entries()
            .await?
            .into_iter()
            .map(|e| e.pattern)
            .collect();
        for token in self.store.list_tokens(None, Some(timefmt::now())).await? {
            if !names.contains(&token.certname) {
                names.push(token.certname);
            }
        }
        Ok(names)
    }

    /// Foreman's DELETE of an autosign name: remove the allow-list entry of that exact
    /// pattern and revoke the name's live tokens. NotFound when there was neither.
    pub async fn remove_autosign_name(&self, name: &str, actor: &Actor) -> Result<(), AppError> {
        let entry_removed = match self.remove_allow_entry(name, actor).await {
            Ok(()) => true,
            Err(AppError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        let tokens_revoked = match self
            .revoke_tokens(TokenSelector::Certname(name.to_string()), actor)
            .await
        {
            Ok(_) => true,
            Err(AppError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        if entry_removed || tokens_revoked {
            Ok(())
        } else {
            Err(AppError::NotFound(format!(
                "{name} has no autosign entry and no live build token"
            )))
        }
    }
}

fn parse_certname(name: &str) -> Result<Certname, AppError> {
    Certname::parse(name).map_err(|e| AppError::Invalid(format!("certname '{name}': {e}")))
}
