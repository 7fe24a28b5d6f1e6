//! Assembling a running service from a config: store, data directory, TLS, HTTP server.
//! Shared by `autosign-proxy serve`, the integration tests and the benchmarks.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use crate::app::authority::puppetserver::PuppetserverCa;
use crate::app::authority::{Authority, CaSettings, ForemanCa};
use crate::app::App;
use crate::ca::signer::SoftwareKey;
use crate::config::{is_postgres_url, Config, SmartProxyCa};
use crate::http::tls::ClientVerifier;
use crate::http::{self, HttpState, RunningServer};
use crate::notify::{self, Webhook};
pub mod datadir;
pub mod logging;

use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use autosign_policy::TlsFiles;
use datadir::DataDir;

/// Open the configured store: SQLite in the data directory, or the PostgreSQL database
/// `database_url` names (which several replicas can share).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    let store: Arc<dyn Store> = if config.database_url.is_empty() {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
        Arc::new(
            SqliteStore::open(&config.sqlite_path())
                .await
                .map_err(|e| e.to_string())?,
        )
    } else if is_postgres_url(&config.database_url) {
        Arc::new(
            PostgresStore::open(&config.database_url, config.database_max_connections)
                .await
                .map_err(|e| format!("{e} ({})", redacted(&config.database_url)))?,
        )
    } else {
        return Err(format!(
            "database_url '{}' is not a postgres:// or postgresql:// URL; leave it empty for SQLite",
            redacted(&config.database_url)
        ));
    };
    // Every process that records events (the service and the CLI) writes their webhook
    // deliveries in the same transaction.
    let targets = config
        .webhooks
        .iter()
        .map(|w| (w.name.clone(), w.events.clone()))
        .collect();
    store
        .set_webhook_targets(targets)
        .await
        .map_err(|e| e.to_string())?;
    Ok(store)
}

/// The URL without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{path}")
            } else {
                url.to_string()
            }
        }
        None => url.to_string(),
    }
}

/// A started service: the server future to await, and what it is using.
pub struct Started {
    pub server: RunningServer,
    pub dir: DataDir,
    pub app: Arc<App>,
    pub authority: Arc<Authority>,
    /// The store the service runs on (benchmarks and tests seed and read it).
    pub store: Arc<dyn Store>,
}

/// The CA of the data directory, with the settings of `[ca]`.
pub fn authority(
    config: &Config,
    dir: &DataDir,
    app: Arc<App>,
    store: Arc<dyn Store>,
) -> Result<Authority, String> {
    let key = SoftwareKey::load(&dir.ca_key())
        .map_err(|e| format!("cannot load the CA key {}: {e}", dir.ca_key().display()))?;
    let bundle = datadir::read_certs(&dir.ca_cert()).map_err(|e| e.to_string())?;
    let settings = CaSettings {
        autosign: config.ca.autosign.clone(),
        cert_ttl_seconds: config.ca.cert_ttl_days * 86_400,
        crl_ttl_seconds: config.ca.crl_ttl_days * 86_400,
        allow_duplicate_certs: config.ca.allow_duplicate_certs,
        allow_subject_alt_names: config.ca.allow_subject_alt_names,
        allow_authorization_extensions: config.ca.allow_authorization_extensions,
        exec_timeout: Duration::from_secs(config.ca.exec_timeout_seconds),
    };
    let parent_crls = match std::fs::read_to_string(dir.parent_crls()) {
        Ok(text) => crate::ca::crl::decode_crl_chain(&text)
            .map_err(|e| format!("{}: {e}", dir.parent_crls().display()))?,
        Err(_) => Vec::new(),
    };
    Ok(Authority::new(
        app,
        store,
        Arc::new(key),
        bundle,
        parent_crls,
        settings,
    ))
}

/// Initialize the data directory (saying what is generated), bind `config.listen`, and
/// start serving. Must run inside an actix system.
pub async fn start(
    config: Config,
    workers: usize,
    say: &mut dyn FnMut(&str),
) -> Result<Started, String> {
    let store = open_store(&config).await?;
    let dir = datadir::initialize(&config, store.as_ref(), say)
        .await
        .map_err(|e| e.to_string())?;
    let material = datadir::tls_material(&config, &dir).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(&config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let reserved = datadir::reserved_names(&config);
    let app = Arc::new(App::new(store.clone(), config.clone(), reserved));
    let authority = Arc::new(authority(&config, &dir, app.clone(), store.clone())?);
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?
        .port();
    let (foreman_ca, puppet_url) = smart_proxy_ca(&config, authority.clone(), port)?;
    let server = http::start(
        HttpState::new(
            app.clone(),
            authority.clone(),
            foreman_ca,
            puppet_url,
            &config,
            datadir::fingerprint_of(&dir.client_cert()).map_err(|e| e.to_string())?,
        ),
        &material,
        listener,
        workers,
    )?;
    // The CRL the server checks client certificates against follows the store: a
    // revocation by this process, the CLI or another replica applies within a second.
    let crls = client_crls(&config, &authority).await?;
    server.verifier.set_crls(crls.all())?;
    actix_web::rt::spawn(follow_crl(
        store.clone(),
        server.verifier.clone(),
        authority.clone(),
        crls,
    ));
    let hooks = config
        .webhooks
        .iter()
        .cloned()
        .map(Webhook::new)
        .collect::<Result<Vec<_>, String>>()?;
    if !hooks.is_empty() {
        actix_web::rt::spawn(notify::run(store.clone(), Arc::new(hooks)));
    }
    actix_web::rt::spawn(sweep_expired_tokens(store.clone()));
    Ok(Started {
        server,
        dir,
        app,
        authority,
        store,
    })
}

/// The CRLs client certificates are checked against: ours from the store, and the
/// configured CRL files of other client CAs, each reloaded when it changes.
struct ClientCrls {
    number: u64,
    ours: Vec<u8>,
    /// Entries of our CRL, to notice revocations it does not list yet.
    listed: usize,
    files: Vec<CrlFile>,
}

struct CrlFile {
    path: std::path::PathBuf,
    modified: Option<std::time::SystemTime>,
    crls: Vec<Vec<u8>>,
}

impl CrlFile {
    /// Read the file if it changed since the last read; `Ok(true)` when it did.
    fn refresh(&mut self) -> Result<bool, String> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        if self.modified == Some(modified) {
            return Ok(false);
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.crls = crate::ca::crl::decode_crl_chain(&text)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.modified = Some(modified);
        Ok(true)
    }
}

impl ClientCrls {
    fn all(&self) -> Vec<Vec<u8>> {
        std::iter::once(self.ours.clone())
            .chain(self.files.iter().flat_map(|f| f.crls.iter().cloned()))
            .collect()
    }

    fn set_ours(&mut self, number: u64, der: Vec<u8>) {
        self.listed = crate::ca::crl::crl_info(&der)
            .map(|i| i.revoked.len())
            .unwrap_or(0);
        self.number = number;
        self.ours = der;
    }
}

/// Our CRL and the configured ones, read once at start: a configured CRL file that
/// cannot be read is a start-up error, not a silently unchecked issuer.
async fn client_crls(config: &Config, authority: &Authority) -> Result<ClientCrls, String> {
    let (number, der) = authority.crl_der().await.map_err(|e| e.to_string())?;
    let mut crls = ClientCrls {
        number: 0,
        ours: Vec::new(),
        listed: 0,
        files: Vec::new(),
    };
    crls.set_ours(number, der);
    for path in &config.tls.client_crl {
        let mut file = CrlFile {
            path: path.clone(),
            modified: None,
            crls: Vec::new(),
        };
        file.refresh().map_err(|e| format!("tls.client_crl: {e}"))?;
        crls.files.push(file);
    }
    Ok(crls)
}

async fn follow_crl(
    store: Arc<dyn Store>,
    verifier: Arc<ClientVerifier>,
    authority: Arc<Authority>,
    mut crls: ClientCrls,
) {
    let ours = datadir::ca_identity_of(authority.signing_cert_der());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        // Another replica may have imported or regenerated the CA: then this one must
        // not sign with its (old) key any more.
        let fenced = match store.ca_identity().await {
            Ok(owner) => {
                let fenced = owner.as_ref() != Some(&ours);
                authority.set_fenced(fenced);
                fenced
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the CA identity");
                true
            }
        };
        // A revocation recorded but not yet published (a crash between the two, a
        // retried clean) is published now.
        if !fenced {
            if let Err(e) = authority.reconcile_crl(crls.listed).await {
                tracing::warn!(error = %e, "cannot reconcile the CRL with the revocations");
            }
        }
        let mut changed = false;
        match store.ca_crl().await {
            Ok(Some((n, der))) if n != crls.number => {
                crls.set_ours(n, der);
                changed = true;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the CRL"),
        }
        for file in &mut crls.files {
            match file.refresh() {
                Ok(true) => {
                    tracing::info!(path = %file.path.display(), "client CA CRL reloaded");
                    changed = true;
                }
                Ok(false) => {}
                // The last good copy stays in force.
                Err(e) => tracing::error!(error = %e, "cannot reload a client CA CRL"),
            }
        }
        if changed {
            if let Err(e) = verifier.set_crls(crls.all()) {
                tracing::error!(error = %e, "cannot load the CRLs into the TLS verifier");
            }
        }
    }
}

/// Which CA Foreman's `/puppet/ca` routes act on, and the URL Foreman gives hosts.
fn smart_proxy_ca(
    config: &Config,
    ours: Arc<Authority>,
    port: u16,
) -> Result<(Arc<dyn ForemanCa>, String), String> {
    let sp = &config.smart_proxy;
    if sp.ca == SmartProxyCa::Puppetserver {
        let files = TlsFiles {
            ca_file: sp.puppet_ssl_ca.clone().unwrap_or_default(),
            cert: sp.puppet_ssl_cert.clone(),
            key: sp.puppet_ssl_key.clone(),
        };
        let ca = PuppetserverCa::new(&sp.puppet_url, files)?;
        return Ok((Arc::new(ca), sp.puppet_url.clone()));
    }
    if !sp.puppet_url.is_empty() {
        return Ok((ours, sp.puppet_url.clone()));
    }
    let host = config.tls.server_names.first().cloned().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    });
    // The port actually bound (`listen` may say 0).
    Ok((ours, format!("https://{host}:{port}")))
}

/// Record `token_expired` for tokens that ran out unused, so receivers hear of them.
async fn sweep_expired_tokens(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        if let Err(e) = store
            .record_expired_tokens(crate::time::now(), "autosign-proxy".into())
            .await
        {
            tracing::warn!(error = %e, "cannot record expired tokens");
        }
    }
}
