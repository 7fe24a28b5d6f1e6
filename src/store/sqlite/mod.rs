//! The embedded SQLite store (WAL). One writer thread owns the only write connection and
//! commits whatever is queued in one transaction (each job in its own savepoint), so
//! concurrent decisions share a commit instead of queueing for SQLite's write lock. Reads
//! run on pooled read-only connections in the caller's thread: indexed lookups take
//! microseconds, and WAL readers never wait for the writer.
//!
//! This module holds the connections, the writer thread and the migrations; the verbs
//! live by aggregate in `tokens`, `allowlist`, `events`, `ca` and `operators`.

mod allowlist;
mod ca;
mod events;
mod operators;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::FromSql;
use rusqlite::{params, Connection, OpenFlags, Row};

use super::sql::SqlRow;
use super::{AdminStore, StoreError};
use crate::time;

/// Schema migrations in order; the index + 1 is the version.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_core.sql"),
    include_str!("../../../migrations/sqlite/0002_ca.sql"),
    include_str!("../../../migrations/sqlite/0003_status_cache.sql"),
    include_str!("../../../migrations/sqlite/0004_outbox.sql"),
    include_str!("../../../migrations/sqlite/0005_ca_identity.sql"),
    include_str!("../../../migrations/sqlite/0006_one_live_certificate.sql"),
    include_str!("../../../migrations/sqlite/0007_operators.sql"),
    include_str!("../../../migrations/sqlite/0008_events_certname_at.sql"),
];
/// Most jobs one commit carries: bounds how long the first of them waits.
const MAX_BATCH: usize = 256;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// What the writer thread runs: the job's statements, then (after the commit) its reply.
type Completion = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A job runs in the batch's transaction and returns how to answer its caller, and an
/// error when it left the transaction in a state nobody can vouch for (a savepoint that
/// could not be released or rolled back): then the whole batch is rolled back.
type Job = Box<dyn FnOnce(&Connection) -> (Completion, Option<StoreError>) + Send>;

pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    /// Cleared when the writer thread ends, whatever the cause (a panic included).
    writer_alive: Arc<AtomicBool>,
}

/// Clears the flag when the writer thread ends, also by unwinding.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: rusqlite::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn column<T: FromSql>(r: &Row<'_>, index: usize) -> Result<T, StoreError> {
    r.get(index).map_err(corrupt)
}

impl SqlRow for Row<'_> {
    fn int(&self, index: usize) -> Result<i64, StoreError> {
        column(self, index)
    }

    fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        column(self, index)
    }

    fn text(&self, index: usize) -> Result<String, StoreError> {
        column(self, index)
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        column(self, index)
    }

    fn boolean(&self, index: usize) -> Result<bool, StoreError> {
        column(self, index)
    }
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(unavailable)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(unavailable)?;
    // NORMAL in WAL mode is durable against process crashes; only an OS crash can lose
    // the last commits, and it never corrupts the database.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(unavailable)?;
    Ok(conn)
}

impl SqliteStore {
    /// Open (creating if needed) the database file and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let mut conn = open_connection(path, flags)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        migrate(&mut conn)?;
        conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS webhook_targets (name TEXT NOT NULL, kind TEXT NOT NULL)")
            .map_err(unavailable)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let writer_alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(writer_alive.clone());
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let _guard = guard;
                write_loop(&conn, &rx);
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: tx,
            readers: Mutex::new(Vec::new()),
            writer_alive,
        })
    }

    /// Run `f` in the writer's current transaction, in a savepoint of its own: its
    /// changes are kept only if it returns Ok, and the answer comes after the commit.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let (result, poisoned) = match in_savepoint(conn, f) {
                Ok(result) => (result, None),
                Err(e) => (Err(e.clone()), Some(e)),
            };
            let complete: Completion = Box::new(move |commit_error| {
                let _ = tx.send(match commit_error {
                    Some(e) => Err(e.clone()),
                    None => result,
                });
            });
            (complete, poisoned)
        });
        self.writer
            .send(job)
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        rx.await.map_err(|_| {
            StoreError::Unavailable("the database writer dropped the request".into())
        })?
    }

    /// Run `f` as a write job, for tests that need to misbehave inside a batch.
    #[cfg(test)]
    pub(crate) async fn write_job<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.write(f).await
    }

    /// Let the database grow only `extra` pages more: a full disk, for tests.
    #[cfg(test)]
    pub(crate) async fn limit_pages(&self, extra: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            let pages: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(unavailable)?;
            conn.query_row(
                &format!("PRAGMA max_page_count = {}", pages + extra),
                [],
                |_| Ok(()),
            )
            .map_err(unavailable)
        })
        .await
    }

    /// Run a read on a pooled read-only connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
        result
    }
}

/// The job's own result, or (outer `Err`) a failure of the savepoint itself, after
/// which the job's partial changes may still be in the transaction.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<Result<T, StoreError>, StoreError> {
    conn.execute_batch("SAVEPOINT job").map_err(unavailable)?;
    let result = f(conn);
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end).map_err(unavailable)?;
    Ok(result)
}

/// Group commit: take every job already queued (up to MAX_BATCH), run them in one
/// transaction, commit, then answer each. A failed commit fails every job in it, so no
/// caller is told something happened that did not.
fn write_loop(conn: &Connection, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let begin = conn.execute_batch("BEGIN IMMEDIATE").map_err(unavailable);
        let mut completions = Vec::with_capacity(batch.len());
        if let Err(e) = &begin {
            for job in batch {
                // Never run a job outside a transaction: fail it without running it.
                drop(job);
                tracing::error!(error = %e, "cannot begin a database transaction");
            }
            continue;
        }
        // SQLite rolls a whole transaction back on its own after some errors (disk full,
        // I/O error, out of memory): from then on nothing of this batch can commit, and
        // a later job must not run in autocommit. The batch fails as one.
        let mut failed: Option<StoreError> = None;
        for job in batch {
            if failed.is_some() {
                // Dropping the job answers its caller "dropped": it never ran.
                drop(job);
                continue;
            }
            let (complete, poisoned) = job(conn);
            completions.push(complete);
            if let Some(e) = poisoned {
                failed = Some(e);
            } else if conn.is_autocommit() {
                failed = Some(StoreError::Unavailable(
                    "SQLite rolled the transaction back (disk full, I/O error or out of memory)"
                        .into(),
                ));
            }
        }
        let outcome = match failed {
            Some(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                tracing::error!(error = %e, jobs = completions.len(), "a database write batch failed and was rolled back");
                Err(e)
            }
            None => {
                let commit = conn.execute_batch("COMMIT").map_err(unavailable);
                if commit.is_err() && !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                commit
            }
        };
        for complete in completions {
            complete(outcome.as_ref().err());
        }
    }
}

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let fail = |e: rusqlite::Error| StoreError::Migration(e.to_string());
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        .map_err(fail)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(fail)?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(StoreError::Migration(format!(
            "the database schema is at version {current}, newer than this binary knows ({known}); upgrade autosign-proxy"
        )));
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS.iter())
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(fail)?;
        tx.execute_batch(sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, time::now()],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(())
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn health(&self) -> Result<(), StoreError> {
        if !self.writer_alive.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the database writer has stopped; restart the service".into(),
            ));
        }
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(unavailable)
        })
    }

    async fn backup_to(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let target = path.display().to_string();
        // VACUUM cannot run inside the writer's transaction: use a connection of its own.
        let conn = open_connection(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.execute("VACUUM INTO ?1", [target])
            .map_err(unavailable)?;
        Ok(())
    }
}
