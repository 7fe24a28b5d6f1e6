//! autosign-policy: the executable puppetserver runs for every CSR, and the small blocking
//! HTTPS client it is built on.
//!
//! The client ([`Connection`], [`client_config`]) is also what the service's integration
//! tests and load benchmarks use to talk to it, so it stays dependency-light: rustls and
//! nothing else. [`policy`] holds the executable's logic.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod client;
mod error;
mod http;
pub mod policy;
mod tls;
mod url;

pub use client::Connection;
pub use error::Error;
pub use http::{Response, MAX_BODY, MAX_HEAD};
pub use tls::{client_config, TlsFiles};
pub use url::percent_encode_component;
