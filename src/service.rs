//! Assembling a running service from a config: store, data directory, TLS, HTTP server.
//! Shared by `autosign-proxy serve`, the integration tests and the benchmarks.

use std::net::TcpListener;
use std::sync::Arc;

use crate::app::App;
use crate::config::Config;
use crate::http::{self, HttpState, RunningServer};
use crate::state::{self, DataDir};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// Open the configured store: SQLite in the data directory unless `database_url` says
/// otherwise.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    if !config.database_url.is_empty() {
        return Err(format!(
            "database_url '{}' is not supported by this build; leave it empty for SQLite",
            config.database_url
        ));
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    let store = SqliteStore::open(&config.sqlite_path())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// A started service: the server future to await, and what it is using.
pub struct Started {
    pub server: RunningServer,
    pub dir: DataDir,
    pub app: Arc<App>,
}

/// Initialize the data directory (saying what is generated), bind `config.listen`, and
/// start serving. Must run inside an actix system.
pub async fn start(
    config: Config,
    workers: usize,
    say: &mut dyn FnMut(&str),
) -> Result<Started, String> {
    let store = open_store(&config).await?;
    let dir = state::initialize(&config, store.as_ref(), say)
        .await
        .map_err(|e| e.to_string())?;
    let material = state::tls_material(&config, &dir).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(&config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let app = Arc::new(App::new(store, config));
    let server = http::start(HttpState::new(app.clone()), &material, listener, workers)?;
    Ok(Started { server, dir, app })
}
