//! Regenerating the CA after a compromise (seed 003): back up everything, create a new
//! CA and service identity, and tell the operator exactly what is left to do per agent.

use std::fs;
use std::path::PathBuf;

use crate::config::Config;
use crate::domain::event::{Actor, NewEvent};
use crate::startup::datadir::{self, DataDir};
use crate::time;

pub struct Regenerated {
    pub backup: PathBuf,
    /// Hosts that held a certificate of the old CA: each needs a new one.
    pub hosts: Vec<String>,
}

/// Back up the database and every CA and TLS file, then start over with a new CA. The
/// old key is kept only in the backup (mode 0600), for forensics.
pub async fn regenerate(
    config: &Config,
    actor: &Actor,
    say: &mut dyn FnMut(&str),
) -> Result<Regenerated, String> {
    let dir = DataDir::new(&config.data_dir);
    let store = crate::startup::open_store(config).await?;
    let backup = dir
        .root
        .join(format!("backup-before-regenerate-{}", time::now()));
    fs::create_dir_all(&backup).map_err(|e| format!("cannot create {}: {e}", backup.display()))?;
    say(&format!(
        "[1/4] backing up the database to {}",
        backup.display()
    ));
    store
        .backup_to(&backup.join("autosign-proxy.db"))
        .await
        .map_err(|e| e.to_string())?;
    say("[2/4] moving the old CA and TLS files into the backup");
    dir.move_ca_files_to(&backup)?;
    say("[3/4] forgetting the old CA's certificates and requests (tokens, allow-list and events stay)");
    let event = NewEvent::new(time::now(), "ca_regenerated", actor)
        .message(format!("CA regenerated; old state in {}", backup.display()));
    let hosts = store.ca_reset(event).await.map_err(|e| e.to_string())?;
    say("[4/4] creating the new CA and the service's certificates");
    datadir::initialize(config, store.as_ref(), say)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Regenerated { backup, hosts })
}
