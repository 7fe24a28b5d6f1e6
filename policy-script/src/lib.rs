//! autosign-policy: the executable puppetserver runs for every CSR, and the small blocking
//! HTTPS client it is built on.
//!
//! The client ([`Connection`]) is ureq on our own rustls configuration ([`client_config`],
//! aws-lc-rs only); it is also what the service's integration tests and load benchmarks
//! use to talk to it, and the service's outbound clients (reqwest) are built on
//! [`client_config`] too. [`policy`] holds the executable's logic.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod client;
mod error;
pub mod policy;
mod response;
mod tls;

pub use client::{percent_encode_component, Connection};
pub use error::Error;
pub use response::{Response, MAX_BODY};
pub use tls::{client_config, TlsFiles};
