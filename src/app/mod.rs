//! The use cases, shared by the HTTP API, the operator's page and the local CLI: build
//! tokens (`tokens`), the allow-list (`allowlist`), deciding on CSRs (`decide`), events
//! (`events`), operator accounts and sessions (`operators`), and the CA (`authority`). Each takes the actor and reads the clock in one
//! place, so the domain below gets time passed in.

mod allowlist;
pub mod authority;
mod decide;
mod events;
mod operators;
pub mod overview;
mod tokens;

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;

use crate::config::Config;
use crate::domain::certname::Certname;
use crate::domain::policy::{PolicySettings, ReservedNames};
use crate::store::{Store, StoreError};

pub use allowlist::{ImportReport, SkippedReport};
pub use operators::{OperatorName, SignedIn, SESSION_IDLE_SECONDS};
pub use overview::Overview;
pub use tokens::{IssuedToken, TokenView};

/// Why a use case could not be carried out, for every use case of the service.
/// `http/errors.rs` maps these to statuses; the CLI prints them.
#[derive(Debug)]
pub enum AppError {
    /// The request itself is wrong; the message says how (puppetserver's wording where
    /// it has one).
    Invalid(String),
    NotFound(String),
    /// The operation does not fit the certname's state.
    Conflict(String),
    /// There is no pending certificate request to act on (409 on the CA API, 404 to
    /// Foreman).
    NoRequest(String),
    /// Wrong credentials, or no (valid) session.
    Unauthorized(String),
    /// Too many failed sign-ins: wait this many seconds.
    Throttled {
        message: String,
        retry_after: u64,
    },
    Store(StoreError),
    Internal(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Invalid(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::NoRequest(m)
            | AppError::Unauthorized(m)
            | AppError::Throttled { message: m, .. }
            | AppError::Internal(m) => f.write_str(m),
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

pub struct App {
    store: Arc<dyn Store>,
    config: Config,
    policy: PolicySettings,
    rng: SystemRandom,
    chart: std::sync::Mutex<overview::ChartCache>,
}

impl App {
    /// `reserved`: the names no automatic path signs (see `ReservedNames`).
    pub fn new(store: Arc<dyn Store>, config: Config, reserved: ReservedNames) -> App {
        let policy = PolicySettings {
            allowed_auth_extensions: config.policy.allowed_auth_extensions.clone(),
            reserved,
            token_alt_names: config.policy.token_alt_names.clone(),
        };
        App {
            store,
            config,
            policy,
            rng: SystemRandom::new(),
            chart: std::sync::Mutex::new(overview::ChartCache::default()),
        }
    }

    /// The names no automatic path signs.
    pub fn reserved_names(&self) -> &ReservedNames {
        &self.policy.reserved
    }

    pub fn policy_settings(&self) -> &PolicySettings {
        &self.policy
    }
}

fn parse_certname(name: &str) -> Result<Certname, AppError> {
    Certname::parse(name).map_err(|e| AppError::Invalid(format!("certname '{name}': {e}")))
}
