//! Persistence behind small traits in domain verbs, one per aggregate (tokens, the
//! allow-list, events and their webhook outbox, the CA's state, whole-database admin), so
//! the decision code never sees SQL. `Store` is all of them together: what a backend
//! implements and what the rest of the code holds as `Arc<dyn Store>`. `OperatorStore`
//! keeps the operator's page's accounts, sessions and failed sign-in counters. `sqlite` is the
//! embedded default; `postgres` serves replicas sharing one database.

pub mod migrate;
pub mod postgres;
pub mod scratch;
mod sql;
pub mod sqlite;
#[cfg(test)]
mod tests;

use std::fmt;

use async_trait::async_trait;

pub use crate::domain::allowlist::AllowRecord;
use crate::domain::event::{EventFilter, EventRecord, NewEvent};
use crate::domain::policy::DecisionStore;
use crate::domain::token::{AltName, TokenHash, TokenRecord, TokenRequest};

/// A failure of the storage layer. The service fails closed on any of these.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    Unavailable(String),
    /// Stored data that does not read back as it was written.
    Corrupt(String),
    /// The schema is newer than this binary knows.
    Migration(String),
    /// The stored state does not allow the operation.
    Conflict(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(e) => write!(f, "the database is unavailable: {e}"),
            StoreError::Corrupt(e) => write!(f, "stored data is corrupt: {e}"),
            StoreError::Migration(e) => write!(f, "database migration failed: {e}"),
            StoreError::Conflict(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StoreError {}

/// A certificate request the CA holds, pending.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CaRequest {
    pub certname: String,
    pub csr_pem: String,
    pub fingerprint: String,
    pub received_at: i64,
    /// Why autosigning left it pending (a reason code), if a policy ran.
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// A certificate the CA issued (or imported).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CaCertificate {
    pub serial: u64,
    pub certname: String,
    pub cert_pem: String,
    pub fingerprint: String,
    pub not_before: i64,
    pub not_after: i64,
    pub issued_at: i64,
    pub revoked_at: Option<i64>,
    /// RFC 5280 CRLReason code.
    pub revocation_reason: Option<u8>,
}

/// Everything an imported CA directory brings, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct CaImport {
    /// Certificates with their cached status JSON.
    pub certificates: Vec<(CaCertificate, Option<String>)>,
    pub requests: Vec<CaRequest>,
    /// Revocations of serials with no certificate left (cleaned before the import).
    pub orphan_revocations: Vec<Revocation>,
    /// Serials continue from here (never lower than what the store already handed out).
    pub next_serial: u64,
    /// CRL numbers continue after this.
    pub crl_number: u64,
}

/// A webhook delivery taken by a worker.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub target: String,
    pub idempotency_key: String,
    pub attempts: u32,
    pub event: EventRecord,
}

/// One line of the certificate listing, from the status cache.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub certname: String,
    /// The status object serialized with state "signed"; None for rows from before the cache.
    pub status_json: Option<String>,
    pub revoked: bool,
}

/// A revocation as the CRL lists it (including certificates since cleaned).
#[derive(Debug, Clone, PartialEq)]
pub struct Revocation {
    pub serial: u64,
    pub revoked_at: i64,
    pub reason: Option<u8>,
}

/// Which CA a state belongs to: the SHA-256 fingerprint of its certificate, and its
/// subject for messages. Replicas sharing a database must all sign with this CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaIdentity {
    pub fingerprint: String,
    pub subject: String,
}

/// An operator account as listed (never its password hash).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OperatorRecord {
    pub name: String,
    pub created_at: i64,
    pub created_by: String,
}

/// A signed-in operator's session, found by the hash of its cookie value.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSession {
    pub operator: String,
    /// `password` or `certificate`.
    pub via: String,
    pub created_at: i64,
    pub last_seen: i64,
}

/// Failed sign-ins counted for one key (`account:NAME` or `address:IP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub failures: u32,
    pub last_failure: i64,
}

/// A certificate's state as the operator's page filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertState {
    /// Not revoked and not past notAfter.
    Valid,
    Revoked,
    /// Not revoked, past notAfter.
    Expired,
}

/// One page of current certificates, by certname (`cert_pem` is left empty).
#[derive(Debug, Clone, PartialEq)]
pub struct CertQuery {
    /// Certnames starting with this.
    pub name_prefix: Option<String>,
    pub state: Option<CertState>,
    /// notAfter before this (unix seconds).
    pub expires_before: Option<i64>,
    /// The time `state` is judged at.
    pub now: i64,
    /// Only certnames after this one (the cursor of the next page).
    pub after: Option<String>,
    pub limit: u32,
}

/// Which tokens to revoke.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSelector {
    Id(i64),
    /// Every live token of this certname.
    Certname(String),
}

/// Column encodings both backends share: alt names and metadata as JSON text, serials
/// and counters as signed 64-bit integers.
pub(crate) fn alt_names_json(names: &[AltName]) -> String {
    serde_json::to_string(names).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn parse_alt_names(text: &str) -> Result<Vec<AltName>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("alt names '{text}': {e}")))
}

pub(crate) fn parse_json(text: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("JSON '{t}': {e}")))
    })
    .transpose()
}

pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{v} does not fit the database")))
}

pub(crate) fn from_i64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v}")))
}

/// Build tokens: issued by hash, consumed once, revoked, swept when they expire.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Store a new token (by hash) and its `token_issued` event in one transaction.
    /// Earlier live tokens of the same certname stay valid, as Foreman's smart proxy keeps
    /// them (one of them is consumed; the others stay listed and revocable), because a
    /// host being built already carries the token Foreman rendered into it.
    async fn issue_token(
        &self,
        request: &TokenRequest,
        hash: &TokenHash,
        now: i64,
        event: NewEvent,
    ) -> Result<TokenRecord, StoreError>;

    async fn find_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError>;

    /// Tokens, newest first; `live_at` keeps only those still usable at that time.
    async fn list_tokens(
        &self,
        certname: Option<&str>,
        live_at: Option<i64>,
    ) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revoke live tokens, recording one event per token revoked. Returns those revoked.
    async fn revoke_tokens(
        &self,
        selector: &TokenSelector,
        now: i64,
        event: NewEvent,
    ) -> Result<Vec<i64>, StoreError>;

    /// The one atomic step: mark the token used if, and only if, it is still unused,
    /// unrevoked and unexpired, and record the approval in the same transaction.
    /// `None` means another request won the race (or it expired meanwhile): nothing
    /// was written.
    async fn consume_token(
        &self,
        token_id: i64,
        now: i64,
        event: NewEvent,
    ) -> Result<Option<i64>, StoreError>;

    /// Record a `token_expired` event for every token that expired unused since the last
    /// sweep. Returns how many.
    async fn record_expired_tokens(&self, now: i64, actor: String) -> Result<u64, StoreError>;

    /// Live (usable) tokens now.
    async fn live_token_count(&self, now: i64) -> Result<u64, StoreError>;
}

/// The allow-list of certname patterns.
#[async_trait]
pub trait AllowListStore: Send + Sync {
    /// Add an entry with its event; `false` if the pattern was already there.
    async fn add_allow_entry(
        &self,
        record: &AllowRecord,
        event: NewEvent,
    ) -> Result<bool, StoreError>;

    /// Remove an entry with its event; `false` if there was none.
    async fn remove_allow_entry(&self, pattern: &str, event: NewEvent) -> Result<bool, StoreError>;

    async fn list_allow_entries(&self) -> Result<Vec<AllowRecord>, StoreError>;
}

/// The event log and the webhook outbox filled from it.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Append an event; returns its id.
    async fn record_event(&self, event: NewEvent) -> Result<i64, StoreError>;

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError>;

    /// Which webhook targets want which event kinds ("*" = all). Every event recorded
    /// afterwards gets one outbox row per matching target, in its own transaction.
    async fn set_webhook_targets(
        &self,
        targets: Vec<(String, Vec<String>)>,
    ) -> Result<(), StoreError>;

    /// Take up to `limit` due deliveries for `lease` seconds (no other worker gets them
    /// meanwhile).
    async fn claim_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease: i64,
    ) -> Result<Vec<Delivery>, StoreError>;

    async fn delivery_done(&self, id: i64, now: i64) -> Result<(), StoreError>;

    async fn delivery_failed(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Deliveries not yet taken by their receiver.
    async fn webhook_backlog(&self) -> Result<u64, StoreError>;

    /// Rejected decisions for `certname` at or after `since`.
    /// Rejections of `certname` since `since`, counted up to `at_most`: the caller only
    /// asks whether a threshold is reached, and a flood must not make each count longer.
    async fn count_rejections(
        &self,
        certname: &str,
        since: i64,
        at_most: u64,
    ) -> Result<u64, StoreError>;

    /// Whether an event of `kind` exists for `certname` at or after `since`.
    async fn has_event(&self, certname: &str, kind: &str, since: i64) -> Result<bool, StoreError>;

    /// Decisions of `decision` ("approved" or "rejected") at or after `since`.
    async fn count_decisions(&self, decision: &str, since: i64) -> Result<u64, StoreError>;

    /// Events of `kind` at or after `since`.
    async fn count_kind(&self, kind: &str, since: i64) -> Result<u64, StoreError>;

    /// Decisions of `decision` per hour in `[since, until)`: (hour start, count), hours
    /// without any left out.
    async fn decisions_per_hour(
        &self,
        decision: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<(i64, u64)>, StoreError>;
}

/// The CA's state: serials, pending requests, certificates, revocations, the CRL and
/// which CA the state belongs to.
#[async_trait]
pub trait CaStore: Send + Sync {
    /// Allocate the next certificate serial; never returns the same value twice, also
    /// across crashes and replicas.
    async fn next_serial(&self) -> Result<u64, StoreError>;

    /// Store a pending request; `false` (nothing written) if the certname already has one.
    async fn ca_add_request(
        &self,
        request: &CaRequest,
        event: NewEvent,
    ) -> Result<bool, StoreError>;

    async fn ca_request(&self, certname: &str) -> Result<Option<CaRequest>, StoreError>;

    async fn ca_requests(&self) -> Result<Vec<CaRequest>, StoreError>;

    /// Remove a pending request; `false` if there was none.
    async fn ca_delete_request(
        &self,
        certname: &str,
        event: Option<NewEvent>,
    ) -> Result<bool, StoreError>;

    /// Record an issued certificate and drop the certname's pending request, in one
    /// transaction with its event. A name holds one live certificate, which the database
    /// enforces: with `replace_live` (a renewal, or a duplicate the operator allows) the
    /// current one is superseded in the same transaction; without it, a live one makes this
    /// a `Conflict` with puppetserver's message and nothing is written.
    async fn ca_add_certificate(
        &self,
        cert: &CaCertificate,
        status_json: Option<String>,
        replace_live: bool,
        event: NewEvent,
    ) -> Result<(), StoreError>;

    /// For each current certificate: its cached status JSON (if computed) and whether it
    /// is revoked; the cheap path of certificate_statuses.
    async fn ca_status_rows(&self) -> Result<Vec<StatusRow>, StoreError>;

    /// The certname's current certificate: the newest one not cleaned.
    async fn ca_certificate(&self, certname: &str) -> Result<Option<CaCertificate>, StoreError>;

    /// Every current (not cleaned) certificate, by certname.
    async fn ca_certificates(&self) -> Result<Vec<CaCertificate>, StoreError>;

    /// Revoke every unrevoked certificate of the certname (its current one, those it
    /// superseded, those forgotten without revocation), with one event; returns the
    /// newest serial of the name, `None` if it never had a certificate. Revoking a revoked
    /// certificate changes nothing and returns its serial.
    async fn ca_revoke(
        &self,
        certname: &str,
        now: i64,
        reason: u8,
        event: NewEvent,
    ) -> Result<Option<u64>, StoreError>;

    /// Remove the certname's certificate and request from the CA's view (not revoking).
    /// Returns whether anything was there.
    async fn ca_clean(&self, certname: &str, now: i64, event: NewEvent)
        -> Result<bool, StoreError>;

    /// Take over an existing CA's state, all or nothing. Refused when the store already
    /// holds certificates or requests other than `allowed_existing` certnames (the
    /// service's own).
    async fn ca_import(
        &self,
        import: CaImport,
        allowed_existing: Vec<String>,
        event: NewEvent,
    ) -> Result<(), StoreError>;

    /// Forget the CA's certificates and requests (after a regeneration: they belong to a
    /// CA that no longer signs). Tokens, the allow-list and events stay. Returns the
    /// certnames that had a certificate.
    async fn ca_reset(&self, event: NewEvent) -> Result<Vec<String>, StoreError>;

    /// A page of current certificates (`cert_pem` left empty), by certname.
    async fn ca_certificate_page(
        &self,
        query: &CertQuery,
    ) -> Result<Vec<CaCertificate>, StoreError>;

    /// Unrevoked current certificates whose notAfter is in `[from, until)`, soonest
    /// first (`cert_pem` left empty), at most `limit`, and how many there are in all.
    async fn ca_expiring(
        &self,
        from: i64,
        until: i64,
        limit: u32,
    ) -> Result<(Vec<CaCertificate>, u64), StoreError>;

    /// The certnames of the `limit` newest current certificates (newest first).
    async fn ca_recent_certnames(&self, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Every revocation, for the CRL.
    async fn ca_revocations(&self) -> Result<Vec<Revocation>, StoreError>;

    /// How many revocations there are: a CRL listing fewer is out of date.
    async fn ca_revocation_count(&self) -> Result<u64, StoreError>;

    /// Hand out the next CRL number; numbers only grow.
    async fn ca_next_crl_number(&self) -> Result<u64, StoreError>;

    /// Keep a built CRL unless a newer number is already stored.
    async fn ca_store_crl(&self, number: u64, der: &[u8], now: i64) -> Result<(), StoreError>;

    /// The newest CRL built, with its number.
    async fn ca_crl(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;

    /// The CA this state belongs to, if one claimed it.
    async fn ca_identity(&self) -> Result<Option<CaIdentity>, StoreError>;

    /// Claim the state for `identity` unless a CA already did; returns the owner (which
    /// the caller compares with its own). An import or a regeneration clears the claim.
    async fn claim_ca_identity(
        &self,
        identity: &CaIdentity,
        now: i64,
    ) -> Result<CaIdentity, StoreError>;
}

/// The operator's page: accounts (argon2id hashes), sessions (by the hash of the cookie
/// value) and failed sign-in counters, shared by replicas on one database.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Add an account with its event; `false` if the name is taken.
    async fn add_operator(
        &self,
        record: &OperatorRecord,
        password_hash: &str,
        event: NewEvent,
    ) -> Result<bool, StoreError>;

    /// Remove an account and end its password sessions, with its event; `false` if
    /// there was none.
    async fn remove_operator(&self, name: &str, event: NewEvent) -> Result<bool, StoreError>;

    async fn list_operators(&self) -> Result<Vec<OperatorRecord>, StoreError>;

    /// The account's argon2id PHC string.
    async fn operator_password_hash(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Start a session (sessions idle since before `idle_before` are swept), with its
    /// event.
    async fn create_session(
        &self,
        id_hash: &str,
        session: &OperatorSession,
        idle_before: i64,
        event: NewEvent,
    ) -> Result<(), StoreError>;

    /// The session, if it was seen at or after `idle_before` (and its account, for a
    /// password session, still exists).
    async fn find_session(
        &self,
        id_hash: &str,
        idle_before: i64,
    ) -> Result<Option<OperatorSession>, StoreError>;

    async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError>;

    /// End a session, with its event; `false` if there was none.
    async fn end_session(&self, id_hash: &str, event: NewEvent) -> Result<bool, StoreError>;

    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>, StoreError>;

    /// Count one more failure for `key` (starting again from one when the last failure
    /// was before `stale_before`); returns the count.
    async fn record_login_failure(
        &self,
        key: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<u32, StoreError>;

    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;
}

/// Whole-database operations for the operator.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// A consistent copy of the whole database at `path` (a new file).
    async fn backup_to(&self, path: &std::path::Path) -> Result<(), StoreError>;

    /// Whether the store can still record decisions: `Err` when it cannot (a writer that
    /// died, a database that does not answer). Health checks report this.
    async fn health(&self) -> Result<(), StoreError>;
}

/// Everything a backend stores, by aggregate; the rest of the code holds an
/// `Arc<dyn Store>` and calls the verbs of the aggregate traits (on a concrete backend,
/// the aggregate trait must be in scope).
pub trait Store:
    TokenStore + AllowListStore + EventStore + CaStore + OperatorStore + AdminStore + Send + Sync
{
}

impl<T> Store for T where
    T: TokenStore
        + AllowListStore
        + EventStore
        + CaStore
        + OperatorStore
        + AdminStore
        + Send
        + Sync
{
}

/// The decision pipeline's port, served by whichever backend is configured.
#[async_trait]
impl DecisionStore for dyn Store {
    type Error = StoreError;

    async fn find_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        TokenStore::find_token(self, hash).await
    }

    async fn allow_entries(&self) -> Result<Vec<AllowRecord>, StoreError> {
        AllowListStore::list_allow_entries(self).await
    }

    async fn consume_token(
        &self,
        token_id: i64,
        now: i64,
        event: NewEvent,
    ) -> Result<Option<i64>, StoreError> {
        TokenStore::consume_token(self, token_id, now, event).await
    }

    async fn record_event(&self, event: NewEvent) -> Result<i64, StoreError> {
        EventStore::record_event(self, event).await
    }

    async fn revoke_token(
        &self,
        token_id: i64,
        now: i64,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        Ok(!self
            .revoke_tokens(&TokenSelector::Id(token_id), now, event)
            .await?
            .is_empty())
    }
}
