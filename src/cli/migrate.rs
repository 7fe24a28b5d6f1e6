//! `autosign-proxy migrate`: SQLite state into an empty PostgreSQL database.

use std::path::PathBuf;

use autosign_proxy::config::Config;
use autosign_proxy::startup;

pub async fn migrate(config: &Config, to: &str, from: Option<PathBuf>) -> Result<(), String> {
    use autosign_proxy::store::{migrate, postgres::PostgresStore};
    if !autosign_proxy::config::is_postgres_url(to) {
        return Err("--to must be a postgres:// or postgresql:// URL".into());
    }
    let source = from.unwrap_or_else(|| config.sqlite_path());
    let target = PostgresStore::open(to, 2)
        .await
        .map_err(|e| format!("{e} ({})", startup::redacted(to)))?;
    eprintln!(
        "autosign-proxy: copying {} into {}",
        source.display(),
        startup::redacted(to)
    );
    let mut last = ("", 0);
    let counts = migrate::sqlite_to_postgres(&source, &target, &mut |table, n| {
        if table != last.0 || n >= last.1 + 100_000 {
            eprintln!("autosign-proxy:   {table}: {n} rows");
            last = (table, n);
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("migrated, row counts checked:");
    for (table, n) in counts {
        println!("  {table:<20} {n}");
    }
    println!(
        "next: set database_url = \"{}\" for every replica, give each the CA's \
         ca/ca_key.pem and ca/ca_crt.pem from {}, and keep the SQLite file as a backup",
        startup::redacted(to),
        config.data_dir.display()
    );
    Ok(())
}
