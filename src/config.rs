//! Typed settings: defaults that need no configuration, a TOML file (`--config`) whose
//! unknown keys are errors, then `AUTOSIGN_PROXY_*` environment overrides, then flags.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ca::signer::KeyAlgorithm;

/// How a CSR that arrives over the CA API gets signed without an operator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AutosignMode {
    /// The decision pipeline: build tokens and the allow-list.
    Policy,
    /// Never: every request waits for an operator.
    Never,
    /// Always (labs), still refusing alt names and authorization extensions.
    Always,
    /// An external executable under puppetserver's contract, with a timeout.
    Exec(PathBuf),
}

impl std::str::FromStr for AutosignMode {
    type Err = String;
    fn from_str(s: &str) -> Result<AutosignMode, String> {
        match s {
            "policy" => Ok(AutosignMode::Policy),
            "false" => Ok(AutosignMode::Never),
            "true" => Ok(AutosignMode::Always),
            _ => match s.strip_prefix("exec:") {
                Some(path) if path.starts_with('/') => Ok(AutosignMode::Exec(PathBuf::from(path))),
                _ => Err(format!(
                    "autosign '{s}' is not policy, true, false or exec:/absolute/path"
                )),
            },
        }
    }
}

impl TryFrom<String> for AutosignMode {
    type Error = String;
    fn try_from(s: String) -> Result<AutosignMode, String> {
        s.parse()
    }
}

/// Whether a `database_url` names PostgreSQL (the only other backend).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Everything the service can be told. Every field has a working default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, CA and TLS files live.
    pub data_dir: PathBuf,
    /// HTTPS listen address.
    pub listen: String,
    /// Empty: SQLite in `data_dir`. `postgres://user:password@host:5432/db`: PostgreSQL,
    /// which several replicas can share.
    pub database_url: String,
    /// Most connections one process keeps open to PostgreSQL.
    pub database_max_connections: usize,
    /// error, warn, info, debug or trace.
    pub log_level: String,
    /// Client certificate CNs allowed to use the provisioning and Foreman APIs (the
    /// smart proxy's `trusted_hosts`). The local client certificate is always trusted.
    pub trusted_hosts: Vec<String>,
    pub tls: TlsConfig,
    pub ca: CaConfig,
    pub tokens: TokenConfig,
    pub policy: PolicyConfig,
    pub smart_proxy: SmartProxyConfig,
    /// Receivers of events (`[[webhooks]]` tables).
    pub webhooks: Vec<WebhookConfig>,
}

/// One webhook receiver.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// A name of its own; the idempotency keys and the outbox use it.
    pub name: String,
    /// http:// or https:// URL the events are POSTed to.
    pub url: String,
    /// Event kinds to send (decision, suspicious_request, token_issued, ...); empty: all.
    pub events: Vec<String>,
    /// Shared secret for the X-Autosign-Signature HMAC-SHA256 header (or secret_file).
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// For https: the CA bundle to verify the receiver, and an optional client certificate.
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Seconds one attempt may take.
    pub timeout_seconds: u64,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            name: String::new(),
            url: String::new(),
            events: Vec::new(),
            secret: None,
            secret_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            timeout_seconds: 10,
        }
    }
}

/// Which CA Foreman's `/puppet/ca` routes act on.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmartProxyCa {
    /// This service's own CA.
    #[default]
    Builtin,
    /// An existing puppetserver CA, through its CA API.
    Puppetserver,
}

/// How Foreman sees this service as its smart proxy.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SmartProxyConfig {
    /// The Puppet CA URL Foreman hands to hosts (its puppet_ca_server). Empty: this
    /// service (https://<first tls.server_names entry or this host>:<listen port>).
    pub puppet_url: String,
    /// "builtin": /puppet/ca lists, signs and cleans on this service's CA.
    /// "puppetserver": they go to puppetserver's CA API at puppet_url.
    pub ca: SmartProxyCa,
    /// For "puppetserver": a client certificate carrying pp_cli_auth, its key, and the
    /// CA bundle that issued puppetserver's certificate.
    pub puppet_ssl_cert: Option<PathBuf>,
    pub puppet_ssl_key: Option<PathBuf>,
    pub puppet_ssl_ca: Option<PathBuf>,
    /// What Foreman's `POST /puppet/ca/autosign/<host>` makes: "token" (a one-time build
    /// token the host must present) or "hostname" (an allow-list entry for exactly that
    /// name, removed by the DELETE, for templates that write no csr_attributes.yaml).
    pub autosign: ForemanAutosign,
}

/// How Foreman's autosign entries authorize a host.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForemanAutosign {
    /// A one-time build token bound to the name (default).
    #[default]
    Token,
    /// The name alone, as smart-proxy's default autosign.conf provider: whoever asks
    /// first with that name while the entry exists is signed.
    Hostname,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// An existing certificate (chain) to serve instead of the generated one, e.g. one
    /// the site's puppetserver CA issued, as smart proxies use.
    pub cert: Option<PathBuf>,
    /// The key of `cert`.
    pub key: Option<PathBuf>,
    /// Extra CA bundles whose client certificates are accepted (e.g. the puppetserver CA
    /// that issued Foreman's and puppetserver's certificates).
    pub client_ca: Vec<PathBuf>,
    /// CRL files (PEM, one or more CRLs each) of the `client_ca` issuers: their client
    /// certificates are checked against them, and a file that changes is reloaded within
    /// a second.
    pub client_crl: Vec<PathBuf>,
    /// Extra DNS names and IP addresses for the generated service certificate.
    pub server_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// rsa-2048, rsa-3072, rsa-4096 (Puppet's default), ec-p256 or ec-p384.
    pub key_algorithm: KeyAlgorithm,
    /// The CA certificate's CN.
    pub common_name: String,
    /// How CSRs sent to the CA API get signed without an operator: `policy` (build tokens
    /// and the allow-list), `false`, `true`, or `exec:/path/to/executable`.
    pub autosign: AutosignMode,
    /// Lifetime of issued certificates (puppetserver's ca_ttl default: 5 years).
    pub cert_ttl_days: i64,
    /// nextUpdate of the CRL: long, since Puppet 7 agents never refresh their CRL.
    pub crl_ttl_days: i64,
    /// Accept a new CSR for a certname that already has a request or certificate.
    pub allow_duplicate_certs: bool,
    /// Let operators' API signing (certificate_status) include alt names.
    pub allow_subject_alt_names: bool,
    /// Let operators' signing include authorization extensions (never pp_cli_auth).
    pub allow_authorization_extensions: bool,
    /// Client certificate CNs allowed on the CA admin endpoints besides certificates
    /// carrying pp_cli_auth.
    pub admin_hosts: Vec<String>,
    /// Seconds an `exec:` autosign executable may take before the CSR is left pending.
    pub exec_timeout_seconds: u64,
    /// Certificate requests one address may send without a client certificate per minute
    /// (agents bootstrapping), in bursts of as many; more get 429 with Retry-After. 0: no
    /// limit. Raise it for a fleet rebuilt at once behind one NAT address.
    pub anonymous_requests_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Lifetime of a token when the provisioner names none (Foreman's default: 360).
    pub default_ttl_minutes: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Authorization extensions (OIDs under 1.3.6.1.4.1.34380.1.3) that may be autosigned.
    /// pp_cli_auth (…1.3.39) is never autosigned, whatever this says.
    pub allowed_auth_extensions: Vec<String>,
    /// Alt names any build token's request may carry besides the certname and what the
    /// token itself allows (Foreman cannot send alt names with its tokens, and its
    /// puppet.conf snippet writes `dns_alt_names`): exact names (`puppet`), `*.domain`
    /// globs, `IP:a.b.c.d` and `IP:a.b.c.d/nn`. Empty: nothing extra.
    pub token_alt_names: Vec<crate::domain::allowlist::AltNamePattern>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: default_data_dir(),
            listen: "127.0.0.1:8140".into(),
            database_url: String::new(),
            database_max_connections: 16,
            log_level: "info".into(),
            trusted_hosts: Vec::new(),
            tls: TlsConfig::default(),
            ca: CaConfig::default(),
            tokens: TokenConfig::default(),
            policy: PolicyConfig::default(),
            smart_proxy: SmartProxyConfig::default(),
            webhooks: Vec::new(),
        }
    }
}

impl Default for CaConfig {
    fn default() -> CaConfig {
        CaConfig {
            key_algorithm: KeyAlgorithm::Rsa4096,
            common_name: "Puppet CA: autosign-proxy".into(),
            autosign: AutosignMode::Policy,
            cert_ttl_days: 5 * 365,
            crl_ttl_days: 5 * 365,
            allow_duplicate_certs: false,
            allow_subject_alt_names: false,
            allow_authorization_extensions: false,
            admin_hosts: Vec::new(),
            exec_timeout_seconds: 10,
            anonymous_requests_per_minute: 120,
        }
    }
}

impl Default for TokenConfig {
    fn default() -> TokenConfig {
        TokenConfig {
            default_ttl_minutes: crate::domain::token::DEFAULT_TTL_MINUTES,
        }
    }
}

/// `/var/lib/autosign-proxy` for root (the packaged service); a per-user directory
/// otherwise, so `autosign-proxy serve` works for anyone without configuration.
fn default_data_dir() -> PathBuf {
    let is_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::env::var_os("HOME").is_some_and(|h| h == "/root");
    if is_root {
        return PathBuf::from("/var/lib/autosign-proxy");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("autosign-proxy");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/autosign-proxy"),
        None => PathBuf::from("autosign-proxy-data"),
    }
}

/// A configuration problem, said so an operator can fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

const ENV_PREFIX: &str = "AUTOSIGN_PROXY_";
const SECTIONS: [&str; 5] = ["tls", "ca", "tokens", "policy", "smart_proxy"];

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        overlay_env(&mut table, env)?;
        let source = file.map_or("the environment".to_string(), |p| {
            format!("{} or the environment", p.display())
        });
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(format!("{source}: {}", e.message())))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError(
                "tls.cert and tls.key must be set together".into(),
            ));
        }
        if self.ca.cert_ttl_days < 1 || self.ca.crl_ttl_days < 1 || self.ca.exec_timeout_seconds < 1
        {
            return Err(ConfigError(
                "ca.cert_ttl_days, ca.crl_ttl_days and ca.exec_timeout_seconds must be at least 1"
                    .into(),
            ));
        }
        // Beyond 100 years dates stop meaning anything, and seconds would overflow.
        if self.ca.cert_ttl_days > 36_500 || self.ca.crl_ttl_days > 36_500 {
            return Err(ConfigError(
                "ca.cert_ttl_days and ca.crl_ttl_days must be at most 36500 (100 years)".into(),
            ));
        }
        if !(1..=crate::domain::token::MAX_TTL_MINUTES).contains(&self.tokens.default_ttl_minutes) {
            return Err(ConfigError(format!(
                "tokens.default_ttl_minutes must be between 1 and {}",
                crate::domain::token::MAX_TTL_MINUTES
            )));
        }
        if !self.database_url.is_empty() && !is_postgres_url(&self.database_url) {
            return Err(ConfigError(
                "database_url must be a postgres:// or postgresql:// URL (empty: SQLite in data_dir)"
                    .into(),
            ));
        }
        if self.database_max_connections < 1 {
            return Err(ConfigError(
                "database_max_connections must be at least 1".into(),
            ));
        }
        if !matches!(
            self.log_level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(ConfigError(format!(
                "log_level '{}' is not one of error, warn, info, debug, trace",
                self.log_level
            )));
        }
        Ok(())
    }

    /// The SQLite file used when no `database_url` is set.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("autosign-proxy.db")
    }
}

/// `AUTOSIGN_PROXY_LISTEN=...` sets `listen`; `AUTOSIGN_PROXY_TLS_CERT=...` sets
/// `tls.cert`. A value that reads as TOML (a number, `true`, `["a","b"]`) is taken as
/// such; anything else is a string. Unknown names are errors, like unknown file keys.
fn overlay_env(
    table: &mut toml::Table,
    env: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if key == "CONFIG" {
            continue;
        }
        let key = key.to_ascii_lowercase();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let (section, field) = match SECTIONS.iter().find(|s| key.starts_with(&format!("{s}_"))) {
            Some(section) => (Some(*section), key[section.len() + 1..].to_string()),
            None => (None, key.clone()),
        };
        let target = match section {
            Some(section) => table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| {
                    ConfigError(format!("[{section}] in the config file is not a table"))
                })?,
            None => &mut *table,
        };
        target.insert(field, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// A config file with this text, removed when the test lets go of it.
    fn write(text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "autosign-config-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    struct TempFile(PathBuf);

    impl std::ops::Deref for TempFile {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn defaults_need_nothing() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8140");
        assert_eq!(c.ca.key_algorithm, KeyAlgorithm::Rsa4096);
        assert_eq!(c.tokens.default_ttl_minutes, 360);
    }

    #[test]
    fn file_then_environment() {
        let path = write("listen = \"0.0.0.0:9000\"\ntrusted_hosts = [\"foreman.example.com\"]\n[tls]\nserver_names = [\"puppet\"]\n");
        let c = Config::load(
            Some(&path),
            env(&[
                ("AUTOSIGN_PROXY_LISTEN", "127.0.0.1:9001"),
                ("AUTOSIGN_PROXY_TOKENS_DEFAULT_TTL_MINUTES", "60"),
                ("AUTOSIGN_PROXY_TLS_CLIENT_CA", "[\"/etc/puppet/ca.pem\"]"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9001");
        assert_eq!(c.trusted_hosts, ["foreman.example.com"]);
        assert_eq!(c.tls.server_names, ["puppet"]);
        assert_eq!(c.tls.client_ca, [PathBuf::from("/etc/puppet/ca.pem")]);
        assert_eq!(c.tokens.default_ttl_minutes, 60);
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/config.example.toml"
        ));
        let c = Config::load(Some(path), env(&[])).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8140");
        assert_eq!(c.trusted_hosts.len(), 2);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let path = write("lisen = \"x\"\n");
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(err.0.contains("lisen"), "{err}");
        let err = Config::load(None, env(&[("AUTOSIGN_PROXY_TLS_CERTT", "x")])).unwrap_err();
        assert!(err.0.contains("certt"), "{err}");
        assert!(
            Config::load(None, env(&[("AUTOSIGN_PROXY_TLS_CERT", "/x")])).is_err(),
            "cert without key"
        );
        assert!(Config::load(None, env(&[("AUTOSIGN_PROXY_CA_KEY_ALGORITHM", "dsa")])).is_err());
        assert!(Config::load(Some(Path::new("/nonexistent/x.toml")), env(&[])).is_err());
    }
}
