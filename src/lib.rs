//! autosign-proxy: decides which Puppet certificate requests get signed, and signs them.
//!
//! The crate is layered as the design card lays it out: `domain` holds the decision
//! pipeline and knows nothing of HTTP or SQL, `ca` holds keys and certificate issuance,
//! `store` persists state behind a trait in domain verbs, `http` is the thin network
//! side, and `app` wires them together for the binary.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod app;
pub mod ca;
pub mod config;
pub mod domain;
pub mod files;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod oid;
pub mod outbound;
pub mod startup;
pub mod store;
pub mod time;
pub mod x509;
