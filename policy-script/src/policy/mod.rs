//! The autosign policy executable's logic: settings, the one request to autosign-proxy,
//! and the verdict. `main.rs` only wires it to the process.
//!
//! Every path that is not an explicit approval (HTTP 200) leaves the CSR pending.

pub mod args;
pub mod config;
pub mod verdict;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use url::Url;

use crate::client::{parse_https_url, percent_encode_component, Connection};
use crate::response::excerpt;
use crate::tls::{client_config, TlsFiles};
use crate::Error;

pub const CONFIG_ENV: &str = "AUTOSIGN_POLICY_CONFIG";
pub const DEFAULT_CONFIG: &str = "/etc/autosign-proxy/policy.toml";
pub const DEFAULT_URL: &str = "https://127.0.0.1:8140";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// CSRs are a few KiB; anything near this is not a CSR.
pub const MAX_CSR_BYTES: usize = 1024 * 1024;
const PUPPET_SSL: &str = "/etc/puppetlabs/puppet/ssl";
const USER_AGENT: &str = concat!("autosign-policy/", env!("CARGO_PKG_VERSION"));

/// How the run ended; decides the exit code and the one stderr line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service approved: puppetserver signs.
    Sign,
    /// The service said no (HTTP 404).
    Reject(String),
    /// We could not get an answer; the text says what failed.
    Fail(String),
    /// The deadline passed.
    TimedOut(String),
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Sign => 0,
            Outcome::Reject(_) => 1,
            Outcome::Fail(_) => 2,
            Outcome::TimedOut(_) => 3,
        }
    }

    /// The stderr line, if any (approval is silent).
    pub fn message(&self) -> Option<String> {
        match self {
            Outcome::Sign => None,
            Outcome::Reject(m) | Outcome::Fail(m) | Outcome::TimedOut(m) => {
                Some(format!("autosign-policy: {m}"))
            }
        }
    }
}

/// Everything needed to ask the service, resolved before the clock-bound part starts.
#[derive(Debug, Clone)]
pub struct Plan {
    pub certname: String,
    /// `https://host[:port][/base]`, checked by [`parse_https_url`].
    url: Url,
    tls: TlsFiles,
    pub timeout: Duration,
    /// When the whole run must be over.
    pub deadline: Instant,
}

impl Plan {
    /// What to report when the deadline passes, from wherever it passes.
    pub fn timed_out(&self) -> Outcome {
        Outcome::TimedOut(format!(
            "leaving {} pending: no answer from {} within {} s (timeout)",
            shown(&self.certname),
            self.origin(),
            self.timeout.as_secs_f64()
        ))
    }

    /// `https://host[:port]`, for messages and the connection.
    fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    fn fail(&self, what: impl std::fmt::Display) -> Outcome {
        Outcome::Fail(format!("leaving {} pending: {what}", shown(&self.certname)))
    }
}

/// Resolves arguments, config file and defaults. `config_env` is `$AUTOSIGN_POLICY_CONFIG`;
/// `started` anchors the deadline.
pub fn prepare(
    argv: &[OsString],
    config_env: Option<OsString>,
    started: Instant,
) -> Result<Plan, Outcome> {
    let args = args::parse(argv).map_err(|e| {
        Outcome::Fail(format!(
            "leaving the CSR pending: bad arguments: {e} ({})",
            args::USAGE
        ))
    })?;
    let certname = args.certname.clone();
    let fail = |e: &dyn std::fmt::Display| {
        Outcome::Fail(format!("leaving {} pending: {e}", shown(&certname)))
    };
    let (config_path, required) = match (args.config, config_env.filter(|v| !v.is_empty())) {
        (Some(path), _) => (path, true),
        (None, Some(env)) => (PathBuf::from(env), true),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let settings = config::load(&config_path, required)
        .map_err(|e| fail(&e))?
        .unwrap_or_default()
        .overridden_by(args.flags);
    let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let url = parse_https_url(settings.url.as_deref().unwrap_or(DEFAULT_URL))
        .map_err(|e| fail(&format!("{e} (setting url)")))?;
    let tls = tls_files(&settings, &config_path).map_err(|e| fail(&e))?;
    Ok(Plan {
        certname,
        url,
        tls,
        timeout,
        deadline: started + timeout,
    })
}

/// Falls back to puppetserver's own host credentials for whatever is not configured.
fn tls_files(settings: &config::Settings, config_path: &Path) -> Result<TlsFiles, Error> {
    let ssl = Path::new(PUPPET_SSL);
    let ca_file = match &settings.ca_file {
        Some(path) => path.clone(),
        None => {
            let default = ssl.join("certs/ca.pem");
            if !default.is_file() {
                return Err(Error::Config(format!(
                    "no CA file: set ca_file in {} or pass --ca-file ({} does not exist)",
                    config_path.display(),
                    default.display()
                )));
            }
            default
        }
    };
    let (cert, key) = match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Config(
                "set both cert and key, or neither to use puppet's host certificate".into(),
            ))
        }
        (None, None) => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_ascii_lowercase())
                .unwrap_or_default();
            let usable = !host.is_empty() && !host.contains('/') && !host.starts_with('.');
            let cert = ssl.join(format!("certs/{host}.pem"));
            let key = ssl.join(format!("private_keys/{host}.pem"));
            if !usable || !cert.is_file() || !key.is_file() {
                return Err(Error::Config(format!(
                    "no client certificate: set cert and key in {} or pass --cert/--key (no puppet host certificate at {})",
                    config_path.display(),
                    cert.display()
                )));
            }
            (cert, key)
        }
    };
    Ok(TlsFiles {
        ca_file,
        cert: Some(cert),
        key: Some(key),
    })
}

/// Reads the CSR from `stdin` and asks the service. Must be called with a watchdog
/// running: reading stdin has no timeout of its own.
pub fn execute(plan: &Plan, stdin: &mut dyn Read) -> Outcome {
    let mut csr = Vec::with_capacity(4096);
    if let Err(e) = stdin.take(MAX_CSR_BYTES as u64 + 1).read_to_end(&mut csr) {
        return plan.fail(format!("cannot read the CSR from stdin: {e}"));
    }
    if csr.len() > MAX_CSR_BYTES {
        return plan.fail(format!(
            "the CSR on stdin is larger than {MAX_CSR_BYTES} bytes; not sent"
        ));
    }
    if csr.iter().all(u8::is_ascii_whitespace) {
        return plan.fail("no CSR on stdin; not sent");
    }
    match ask(plan, &csr) {
        Ok(response) if response.status == 200 => {
            match verdict::approval(&response, &plan.certname) {
                Ok(()) => Outcome::Sign,
                Err(why) => plan.fail(format!(
                    "autosign-proxy at {} answered 200 for {}, but {why}; not signing",
                    plan.origin(),
                    shown(&plan.certname)
                )),
            }
        }
        Ok(response) if response.status == 404 => Outcome::Reject(format!(
            "not signing {}: {}",
            shown(&plan.certname),
            verdict::rejection_reason(&response)
                .unwrap_or_else(|| verdict::status_and_excerpt(&response))
        )),
        Ok(response) => plan.fail(format!(
            "autosign-proxy at {} answered {}",
            plan.origin(),
            verdict::status_and_excerpt(&response)
        )),
        Err(Error::Timeout) => plan.timed_out(),
        Err(e @ Error::Config(_)) => plan.fail(e),
        Err(e) => plan.fail(format!("asking autosign-proxy at {}: {e}", plan.origin())),
    }
}

fn ask(plan: &Plan, csr: &[u8]) -> Result<crate::Response, Error> {
    let config = client_config(&plan.tls)?;
    let mut connection = Connection::connect(&plan.origin(), config, plan.timeout)?;
    let path = format!(
        "{}/puppet/ca/validate?certname={}",
        plan.url.path().trim_end_matches('/'),
        percent_encode_component(&plan.certname)
    );
    connection.request_with_deadline(
        "POST",
        &path,
        &[
            ("Content-Type", "text/plain"),
            ("Accept", "application/json"),
            ("Connection", "close"),
            ("User-Agent", USER_AGENT),
        ],
        csr,
        plan.deadline,
    )
}

/// The certname as it may appear in a log line: it is attacker-chosen.
fn shown(certname: &str) -> String {
    excerpt(certname.as_bytes(), 255)
}
