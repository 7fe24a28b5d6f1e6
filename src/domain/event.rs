//! The event log's vocabulary: what happened, to which certname, decided by whom.

use serde::Serialize;

use super::decision::{Decision, Verdict};

/// Who asked: a client certificate's CN, or the local CLI user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn new(name: impl Into<String>, request_id: Option<String>) -> Actor {
        Actor {
            name: name.into(),
            request_id,
        }
    }
}

/// Kinds of event; the strings are an interface (API filters, webhooks later).
pub mod kind {
    pub const DECISION: &str = "decision";
    pub const TOKEN_ISSUED: &str = "token_issued";
    pub const TOKEN_REVOKED: &str = "token_revoked";
    pub const ALLOW_ENTRY_ADDED: &str = "allow_entry_added";
    pub const ALLOW_ENTRY_REMOVED: &str = "allow_entry_removed";
    pub const TOKEN_EXPIRED: &str = "token_expired";
    pub const SUSPICIOUS_REQUEST: &str = "suspicious_request";
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub at: i64,
    pub kind: &'static str,
    pub certname: Option<String>,
    pub decision: Option<Verdict>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub csr_fingerprint: Option<String>,
    pub token_id: Option<i64>,
    pub actor: String,
    pub request_id: Option<String>,
    pub details: Option<serde_json::Value>,
}

impl NewEvent {
    pub fn new(at: i64, kind: &'static str, actor: &Actor) -> NewEvent {
        NewEvent {
            at,
            kind,
            certname: None,
            decision: None,
            reason: None,
            message: None,
            csr_fingerprint: None,
            token_id: None,
            actor: actor.name.clone(),
            request_id: actor.request_id.clone(),
            details: None,
        }
    }

    pub fn certname(mut self, certname: impl Into<String>) -> NewEvent {
        self.certname = Some(certname.into());
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> NewEvent {
        self.message = Some(message.into());
        self
    }

    pub fn token(mut self, token_id: i64) -> NewEvent {
        self.token_id = Some(token_id);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> NewEvent {
        self.details = Some(details);
        self
    }

    /// The event recording a decision (its id is filled in by the store).
    pub fn for_decision(at: i64, actor: &Actor, d: &Decision) -> NewEvent {
        NewEvent {
            certname: d.certname.clone(),
            decision: Some(d.decision),
            reason: Some(d.reason.code().to_string()),
            message: Some(d.message.clone()),
            csr_fingerprint: d.csr_fingerprint.clone(),
            token_id: d.token_id,
            ..NewEvent::new(at, kind::DECISION, actor)
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub id: i64,
    pub at: i64,
    /// `at` as RFC 3339 UTC, for people and for receivers that want a date.
    pub time: String,
    pub kind: String,
    pub certname: Option<String>,
    pub decision: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub csr_fingerprint: Option<String>,
    pub token_id: Option<i64>,
    pub actor: String,
    pub request_id: Option<String>,
    pub details: Option<serde_json::Value>,
}

/// Which events to list: newest first (or oldest first), bounded by id cursors and time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub certname: Option<String>,
    pub kind: Option<String>,
    pub decision: Option<Verdict>,
    /// A decision's reason code.
    pub reason: Option<String>,
    pub before_id: Option<i64>,
    /// Only events with a larger id (for oldest-first pages and --follow).
    pub after_id: Option<i64>,
    /// Time range, unix seconds, inclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
    pub limit: u32,
}
