//! Persistence behind one trait in domain verbs, so the decision code never sees SQL.
//! `sqlite` is the embedded default; other backends implement the same trait.

pub mod sqlite;

use std::fmt;

use async_trait::async_trait;

use crate::domain::allowlist::AllowEntry;
use crate::domain::event::{EventFilter, EventRecord, NewEvent};
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
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(e) => write!(f, "the database is unavailable: {e}"),
            StoreError::Corrupt(e) => write!(f, "stored data is corrupt: {e}"),
            StoreError::Migration(e) => write!(f, "database migration failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// An allow-list entry as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AllowRecord {
    pub pattern: String,
    /// SANs beyond `DNS:<certname>` that requests approved by this entry may carry.
    pub alt_names: Vec<AltName>,
    pub created_at: i64,
    pub created_by: String,
}

impl AllowRecord {
    /// The stored pattern, parsed. A pattern that no longer parses matches nothing.
    pub fn entry(&self) -> Option<AllowEntry> {
        AllowEntry::parse(&self.pattern).ok()
    }
}

/// Which tokens to revoke.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSelector {
    Id(i64),
    /// Every live token of this certname.
    Certname(String),
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Store a new token (by hash) and its `token_issued` event in one transaction.
    /// Earlier live tokens of the same certname are revoked in the same transaction: a
    /// host being (re)built has exactly one valid token.
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

    /// Add an entry with its event; `false` if the pattern was already there.
    async fn add_allow_entry(
        &self,
        record: &AllowRecord,
        event: NewEvent,
    ) -> Result<bool, StoreError>;

    /// Remove an entry with its event; `false` if there was none.
    async fn remove_allow_entry(&self, pattern: &str, event: NewEvent) -> Result<bool, StoreError>;

    async fn list_allow_entries(&self) -> Result<Vec<AllowRecord>, StoreError>;

    /// Append an event; returns its id.
    async fn record_event(&self, event: NewEvent) -> Result<i64, StoreError>;

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError>;

    /// Allocate the next certificate serial; never returns the same value twice, also
    /// across crashes and replicas.
    async fn next_serial(&self) -> Result<u64, StoreError>;
}
