//! Operator accounts and their sessions on the operator's page: argon2id password hashes,
//! sign-in with a growing delay after failures (per account and per address), sessions
//! stored by the SHA-256 of the cookie value (so replicas on one database share them),
//! CSRF tokens derived from the session, and sign-in by an admin client certificate.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;

use super::{App, AppError};
use crate::domain::event::{Actor, NewEvent};
use crate::store::{OperatorRecord, OperatorSession};
use crate::time;

/// A session ends after this long without a request (8 hours).
pub const SESSION_IDLE_SECONDS: i64 = 8 * 3600;
/// A session's last-seen time is written at most this often.
const TOUCH_EVERY_SECONDS: i64 = 60;
/// Failures this old no longer count.
const FAILURES_FORGOTTEN_AFTER: i64 = 3600;
/// Failures allowed before any delay.
const FREE_FAILURES: u32 = 3;
/// The longest delay between two attempts.
const MAX_DELAY_SECONDS: i64 = 300;
const MIN_PASSWORD_CHARS: usize = 10;

/// Event kinds of the operator's page.
pub mod kind {
    pub const OPERATOR_ADDED: &str = "operator_added";
    pub const OPERATOR_REMOVED: &str = "operator_removed";
    pub const SIGNED_IN: &str = "operator_signed_in";
    pub const SIGN_IN_FAILED: &str = "operator_sign_in_failed";
    pub const SIGNED_OUT: &str = "operator_signed_out";
}

/// An operator's account name: 1–64 of `[a-z0-9._@-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorName(String);

impl OperatorName {
    pub fn parse(name: &str) -> Result<OperatorName, AppError> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._@-".contains(c);
        let first_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if name.len() > 64 || !first_ok || !name.chars().all(ok_char) {
            return Err(AppError::Invalid(format!(
                "operator name '{}' must be 1 to 64 of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit",
                name.escape_debug()
            )));
        }
        Ok(OperatorName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signed-in operator, as each request of the page finds them.
#[derive(Clone)]
pub struct SignedIn {
    /// The account name, or the client certificate's CN.
    pub name: String,
    /// `password` or `certificate`.
    pub via: String,
    /// The CSRF token every state-changing form of this session carries.
    pub csrf: String,
    /// The actor events record: `operator:NAME`.
    pub actor: Actor,
}

impl fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedIn")
            .field("name", &self.name)
            .field("via", &self.via)
            .finish_non_exhaustive()
    }
}

/// A session just started: the cookie value goes to the browser, once; only its hash is
/// stored.
pub struct NewSession {
    pub cookie: String,
    pub signed_in: SignedIn,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(text: &str) -> String {
    hex(digest::digest(&digest::SHA256, text.as_bytes()).as_ref())
}

/// The session's CSRF token: a hash of the cookie value under its own label, so it can be
/// put in pages without revealing the session, and needs no storage of its own.
fn csrf_of(cookie: &str) -> String {
    sha256_hex(&format!("autosign-proxy csrf\n{cookie}"))
}

/// How long the next attempt must wait after `failures` failures.
pub fn delay_after(failures: u32) -> i64 {
    if failures <= FREE_FAILURES {
        return 0;
    }
    let exponent = (failures - FREE_FAILURES - 1).min(16);
    (1i64 << exponent).min(MAX_DELAY_SECONDS)
}

fn actor_for(name: &str, request_id: Option<String>) -> Actor {
    Actor::new(format!("operator:{name}"), request_id)
}

fn internal(e: impl fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}

impl App {
    fn hash_password_blocking(&self, password: &str) -> Result<String, AppError> {
        let mut salt = [0u8; 16];
        self.rng
            .fill(&mut salt)
            .map_err(|_| internal("no randomness"))?;
        let salt = SaltString::encode_b64(&salt).map_err(internal)?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(internal)
    }

    /// Add an operator account; the password is stored only as an argon2id hash.
    pub async fn add_operator(
        &self,
        name: &str,
        password: &str,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let name = OperatorName::parse(name)?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AppError::Invalid(format!(
                "the password must have at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        let hash = self.hash_password_blocking(password)?;
        let now = time::now();
        let record = OperatorRecord {
            name: name.to_string(),
            created_at: now,
            created_by: actor.name.clone(),
        };
        let event = NewEvent::new(now, kind::OPERATOR_ADDED, actor)
            .message(format!("operator account '{name}' added"));
        if self.store.add_operator(&record, &hash, event).await? {
            Ok(())
        } else {
            Err(AppError::Conflict(format!(
                "an operator named '{name}' already exists"
            )))
        }
    }

    pub async fn remove_operator(&self, name: &str, actor: &Actor) -> Result<(), AppError> {
        let event = NewEvent::new(time::now(), kind::OPERATOR_REMOVED, actor)
            .message(format!("operator account '{name}' removed"));
        if self.store.remove_operator(name, event).await? {
            Ok(())
        } else {
            Err(AppError::NotFound(format!("no operator named '{name}'")))
        }
    }

    pub async fn list_operators(&self) -> Result<Vec<OperatorRecord>, AppError> {
        Ok(self.store.list_operators().await?)
    }

    /// Refuse an attempt that comes too soon after failures of this account or address.
    async fn refuse_if_throttled(&self, keys: &[String], now: i64) -> Result<(), AppError> {
        let mut wait = 0;
        for key in keys {
            if let Some(f) = self.store.login_failures(key).await? {
                if f.last_failure >= now - FAILURES_FORGOTTEN_AFTER {
                    wait = wait.max(f.last_failure + delay_after(f.failures) - now);
                }
            }
        }
        if wait > 0 {
            let retry_after = u64::try_from(wait).unwrap_or(0);
            return Err(AppError::Throttled {
                message: format!(
                    "too many failed sign-ins for this account or address: try again in {retry_after} s"
                ),
                retry_after,
            });
        }
        Ok(())
    }

    /// Sign in with a password. Failures are counted per account and per address, and
    /// each failure beyond the first few doubles the wait before the next attempt. The
    /// events record the request's id.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        address: &str,
        request_id: Option<String>,
    ) -> Result<NewSession, AppError> {
        let now = time::now();
        let username: String = username.chars().take(64).collect();
        let keys = [
            format!("account:{}", username.to_ascii_lowercase()),
            format!("address:{address}"),
        ];
        self.refuse_if_throttled(&keys, now).await?;
        let stored = match OperatorName::parse(&username) {
            Ok(name) => self.store.operator_password_hash(name.as_str()).await?,
            Err(_) => None,
        };
        // Unknown names cost the same as wrong passwords: verify against a hash anyway.
        let known = stored.is_some();
        let phc = match stored {
            Some(phc) => phc,
            None => self.dummy_hash()?,
        };
        let candidate = password.to_string();
        let verified = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&phc).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(candidate.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .map_err(internal)?;
        let actor = actor_for(&username, request_id);
        if !(known && verified) {
            for key in &keys {
                self.store
                    .record_login_failure(key, now, now - FAILURES_FORGOTTEN_AFTER)
                    .await?;
            }
            self.store
                .record_event(
                    NewEvent::new(now, kind::SIGN_IN_FAILED, &actor).message(format!(
                        "failed sign-in as '{}' from {address}",
                        username.escape_debug()
                    )),
                )
                .await?;
            tracing::warn!(operator = %username.escape_debug(), %address, "operator sign-in failed");
            return Err(AppError::Unauthorized("wrong user name or password".into()));
        }
        for key in &keys {
            self.store.clear_login_failures(key).await?;
        }
        self.start_session(&username, "password", address, &actor, now)
            .await
    }

    /// Sign in the holder of an admin client certificate, without a password.
    pub async fn sign_in_with_certificate(
        &self,
        common_name: &str,
        address: &str,
        request_id: Option<String>,
    ) -> Result<NewSession, AppError> {
        let actor = actor_for(common_name, request_id);
        self.start_session(common_name, "certificate", address, &actor, time::now())
            .await
    }

    async fn start_session(
        &self,
        name: &str,
        via: &str,
        address: &str,
        actor: &Actor,
        now: i64,
    ) -> Result<NewSession, AppError> {
        let mut secret = [0u8; 32];
        self.rng
            .fill(&mut secret)
            .map_err(|_| internal("no randomness"))?;
        let cookie = hex(&secret);
        let session = OperatorSession {
            operator: name.to_string(),
            via: via.to_string(),
            created_at: now,
            last_seen: now,
        };
        let event = NewEvent::new(now, kind::SIGNED_IN, actor).message(format!(
            "signed in to the operator's page ({via}) from {address}"
        ));
        self.store
            .create_session(
                &sha256_hex(&cookie),
                &session,
                now - SESSION_IDLE_SECONDS,
                event,
            )
            .await?;
        tracing::info!(operator = %name.escape_debug(), via, "operator signed in");
        Ok(NewSession {
            signed_in: SignedIn {
                name: name.to_string(),
                via: via.to_string(),
                csrf: csrf_of(&cookie),
                actor: Actor::new(format!("operator:{name}"), None),
            },
            cookie,
        })
    }

    /// The operator a session cookie belongs to, if the session is live; keeps it alive.
    pub async fn session(&self, cookie: &str) -> Result<Option<SignedIn>, AppError> {
        if cookie.len() != 64 || !cookie.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let now = time::now();
        let id_hash = sha256_hex(cookie);
        let Some(session) = self
            .store
            .find_session(&id_hash, now - SESSION_IDLE_SECONDS)
            .await?
        else {
            return Ok(None);
        };
        if session.last_seen < now - TOUCH_EVERY_SECONDS {
            self.store.touch_session(&id_hash, now).await?;
        }
        Ok(Some(SignedIn {
            actor: Actor::new(format!("operator:{}", session.operator), None),
            name: session.operator,
            via: session.via,
            csrf: csrf_of(cookie),
        }))
    }

    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(signed_in: &SignedIn, presented: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            signed_in.csrf.as_bytes(),
            presented.as_bytes(),
        )
        .is_ok()
    }

    /// End the session of this cookie.
    pub async fn sign_out(&self, cookie: &str, actor: &Actor) -> Result<(), AppError> {
        let event = NewEvent::new(time::now(), kind::SIGNED_OUT, actor)
            .message("signed out of the operator's page");
        self.store.end_session(&sha256_hex(cookie), event).await?;
        Ok(())
    }

    /// A valid argon2id hash of nothing anyone knows, so a sign-in with an unknown name
    /// costs what a wrong password costs.
    fn dummy_hash(&self) -> Result<String, AppError> {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        if let Some(hash) = DUMMY.get() {
            return Ok(hash.clone());
        }
        let mut secret = [0u8; 32];
        self.rng
            .fill(&mut secret)
            .map_err(|_| internal("no randomness"))?;
        let hash = self.hash_password_blocking(&hex(&secret))?;
        Ok(DUMMY.get_or_init(|| hash).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain() {
        assert!(OperatorName::parse("alice").is_ok());
        assert!(OperatorName::parse("ops.team-1@site").is_ok());
        for bad in ["", "Alice", "-x", "a b", "a/b", &"a".repeat(65)] {
            assert!(OperatorName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_delay_grows_and_is_bounded() {
        assert_eq!(delay_after(0), 0);
        assert_eq!(delay_after(3), 0);
        assert_eq!(delay_after(4), 1);
        assert_eq!(delay_after(5), 2);
        assert_eq!(delay_after(8), 16);
        assert_eq!(delay_after(100), MAX_DELAY_SECONDS);
    }

    #[test]
    fn the_csrf_token_is_not_the_session() {
        let cookie = "ab".repeat(32);
        assert_ne!(csrf_of(&cookie), cookie);
        assert_eq!(csrf_of(&cookie), csrf_of(&cookie));
        assert_ne!(csrf_of(&cookie), csrf_of(&"cd".repeat(32)));
    }
}
