//! Throwaway PostgreSQL databases for the test suite and the benchmarks: each gets a
//! database of its own on the server `AUTOSIGN_TEST_POSTGRES` names (default: the local
//! server as user postgres), dropped again when the handle goes.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::NoTls;

/// The server the tests and benchmarks use, as a URL of its maintenance database.
pub fn admin_url() -> String {
    std::env::var("AUTOSIGN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new, empty database; dropped (connections and all) when this is dropped.
pub struct ScratchDatabase {
    pub name: String,
    pub url: String,
    admin: String,
}

/// The URL of `database` on the server of `admin`.
fn url_for(admin: &str, database: &str) -> String {
    match admin.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{database}", &admin[..i]),
        _ => format!("{admin}/{database}"),
    }
}

fn run_admin(admin: &str, sql: &str) -> Result<(), String> {
    let admin = admin.to_string();
    let sql = sql.to_string();
    // A thread of its own: callers may already be inside a runtime.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&admin, NoTls)
                .await
                .map_err(|e| format!("cannot reach PostgreSQL at {admin}: {e}"))?;
            tokio::spawn(connection);
            // One statement at a time: DROP/CREATE DATABASE refuse an implicit transaction.
            for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                client.batch_execute(statement).await.map_err(|e| {
                    let cause = e
                        .as_db_error()
                        .map_or(e.to_string(), |d| d.message().to_string());
                    format!("{statement}: {cause}")
                })?;
            }
            Ok(())
        })
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_string())?
}

impl ScratchDatabase {
    pub fn create(label: &str) -> Result<ScratchDatabase, String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!("autosign_t{}_{n}_{label}", std::process::id());
        let admin = admin_url();
        run_admin(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"),
        )?;
        Ok(ScratchDatabase {
            url: url_for(&admin, &name),
            name,
            admin,
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Err(e) = run_admin(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("cannot drop the scratch database {}: {e}", self.name);
        }
    }
}
