//! The PostgreSQL store: several replicas share one database. Every cross-replica rule is
//! a row lock or a conditional statement inside PostgreSQL, never a lock in this process:
//! a token is consumed by one conditional `UPDATE … RETURNING` (the approval's event and
//! its webhook deliveries are written by the same statement), serials and CRL numbers are
//! counters updated under their row lock, a CRL is stored only over an older one, and
//! webhook deliveries are claimed with `FOR UPDATE SKIP LOCKED`.
//!
//! The driver's sockets live on one I/O thread of the store's own, so a connection
//! outlives whichever HTTP worker opened it; callers on any runtime await its answers.
//! A connection the server closed (restart, failover) is dropped from the pool and the
//! next operation connects again: while the database is down every operation fails with
//! `Unavailable` (503), and the service recovers without a restart.
//!
//! This module holds the pool, the I/O thread and the migrations; the verbs live by
//! aggregate in `tokens`, `allowlist`, `events`, `ca` and `operators`.

mod allowlist;
mod ca;
mod events;
mod operators;
mod tokens;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, NoTls, Row, Statement};

use super::sql::SqlRow;
use super::{from_i64, AdminStore, StoreError};
use crate::time;

/// Schema migrations in order; the index + 1 is the version.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_schema.sql"),
    include_str!("../../../migrations/postgres/0002_one_live_certificate.sql"),
    include_str!("../../../migrations/postgres/0003_operators.sql"),
    include_str!("../../../migrations/postgres/0004_events_certname_at.sql"),
];
/// Key of the session advisory lock that serializes migrations of replicas starting at once.
const MIGRATION_LOCK: i64 = 0x6175_746f_7369_676e; // "autosign"
/// How long one store operation may take, connecting included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Param<'a> = &'a (dyn ToSql + Sync);

/// One connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

pub struct PostgresStore {
    config: tokio_postgres::Config,
    io: tokio::runtime::Handle,
    /// Dropping it stops the I/O thread and closes every connection.
    _stop: tokio::sync::oneshot::Sender<()>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    /// (webhook name, event kind or "*"): each event gets a delivery row per matching name.
    targets: RwLock<Vec<(String, String)>>,
}

/// What `db` makes of a violation of the one-live-certificate index; the caller, which
/// knows the name, turns it into puppetserver's message.
const ONE_LIVE: &str = "the certname already has a live certificate";

/// The shared queries' arguments as this driver's parameters.
fn params_of(args: &[crate::store::sql::Arg]) -> Vec<Param<'_>> {
    use crate::store::sql::Arg;
    args.iter()
        .map(|arg| match arg {
            Arg::Text(text) => text as Param<'_>,
            Arg::Int(n) => n as Param<'_>,
        })
        .collect()
}

fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) if d.constraint() == Some("ca_certificates_one_live") => {
            StoreError::Conflict(ONE_LIVE.into())
        }
        Some(d) => {
            StoreError::Unavailable(format!("PostgreSQL: {} ({})", d.message(), d.code().code()))
        }
        None => StoreError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

fn corrupt(e: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A connection taken from the pool; it goes back on drop unless the server closed it.
struct Pooled<'a> {
    store: &'a PostgresStore,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'a>,
}

impl Pooled<'_> {
    fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no database connection".into()))
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.client.is_closed() {
                if let Ok(mut idle) = self.store.idle.lock() {
                    idle.push(conn);
                }
            }
        }
    }
}

/// The statement for `sql` on this connection, prepared once.
async fn prepare(
    statements: &mut HashMap<String, Statement>,
    client: &impl GenericClient,
    sql: &str,
) -> Result<Statement, StoreError> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql).await.map_err(db)?;
    statements.insert(sql.to_string(), statement.clone());
    Ok(statement)
}

async fn query(
    statements: &mut HashMap<String, Statement>,
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, StoreError> {
    let statement = prepare(statements, client, sql).await?;
    client.query(&statement, params).await.map_err(db)
}

async fn query_opt(
    statements: &mut HashMap<String, Statement>,
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<Row>, StoreError> {
    let statement = prepare(statements, client, sql).await?;
    client.query_opt(&statement, params).await.map_err(db)
}

async fn execute(
    statements: &mut HashMap<String, Statement>,
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, StoreError> {
    let statement = prepare(statements, client, sql).await?;
    client.execute(&statement, params).await.map_err(db)
}

fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(corrupt)
}

impl SqlRow for Row {
    fn int(&self, index: usize) -> Result<i64, StoreError> {
        get(self, index)
    }

    fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        get(self, index)
    }

    fn text(&self, index: usize) -> Result<String, StoreError> {
        get(self, index)
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        get(self, index)
    }

    fn boolean(&self, index: usize) -> Result<bool, StoreError> {
        get(self, index)
    }
}

impl PostgresStore {
    /// Connect to `url` (postgres://user@host:port/db or key=value form), bring the
    /// schema up to date, and keep at most `max_connections` connections open.
    pub async fn open(url: &str, max_connections: usize) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("database_url: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("autosign-proxy");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A peer that vanished (network partition, host down) is noticed within seconds
        // instead of after the kernel's default of minutes.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        config.tcp_user_timeout(Duration::from_secs(10));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start the database I/O: {e}")))?;
        let io = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("postgres-io".into())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the database I/O: {e}")))?;
        let store = PostgresStore {
            config,
            io,
            _stop: stop,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_connections.max(1)),
            targets: RwLock::new(Vec::new()),
        };
        store.timed(store.migrate()).await?;
        Ok(store)
    }

    async fn connect(&self) -> Result<Conn, StoreError> {
        let config = self.config.clone();
        let client = self
            .io
            .spawn(async move {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "PostgreSQL connection closed");
                    }
                });
                Ok::<Client, tokio_postgres::Error>(client)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("database I/O stopped: {e}")))?
            .map_err(db)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    /// A connection: an idle one the server has not closed, or a new one.
    async fn pooled(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the database pool is closed".into()))?;
        let idle = loop {
            let next = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match next {
                Some(conn) if conn.client.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(Pooled {
            store: self,
            conn: Some(conn),
            _permit: permit,
        })
    }

    /// Bound an operation: a database that stopped answering becomes `Unavailable`
    /// instead of a request that never ends.
    async fn timed<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(OPERATION_TIMEOUT, operation)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "PostgreSQL did not answer within {} s",
                    OPERATION_TIMEOUT.as_secs()
                ))
            })?
    }

    fn targets_for(&self, kind: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .targets
            .read()
            .map(|targets| {
                targets
                    .iter()
                    .filter(|(_, k)| k == "*" || k == kind)
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        names.dedup();
        names
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let fail = |e: tokio_postgres::Error| match db(e) {
            StoreError::Unavailable(m) => StoreError::Migration(m),
            other => other,
        };
        let mut pooled = self.pooled().await?;
        let conn = pooled.conn()?;
        let client = &mut conn.client;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(fail)?;
        let result = async {
            client
                .batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                .await
                .map_err(fail)?;
            let current: i64 = client
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
                .await
                .map_err(fail)?
                .try_get(0)
                .map_err(fail)?;
            let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
            if current > known {
                return Err(StoreError::Migration(format!(
                    "the database schema is at version {current}, newer than this binary knows ({known}); upgrade autosign-proxy"
                )));
            }
            for (version, sql) in (1i64..)
                .zip(MIGRATIONS.iter())
                .skip(usize::try_from(current).unwrap_or(0))
            {
                let tx = client.transaction().await.map_err(fail)?;
                tx.batch_execute(sql).await.map_err(fail)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    &[&version, &time::now()],
                )
                .await
                .map_err(fail)?;
                tx.commit().await.map_err(fail)?;
            }
            Ok(())
        }
        .await;
        let unlock = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(fail);
        result.and(unlock.map(|_| ()))
    }

    /// Run `sql` statements directly (tests and `migrate`).
    pub async fn batch_execute(&self, sql: &str) -> Result<(), StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            pooled.conn()?.client.batch_execute(sql).await.map_err(db)
        })
        .await
    }

    /// A connection of its own for a bulk copy (`migrate`), outside the pool.
    pub(crate) async fn dedicated_client(&self) -> Result<Client, StoreError> {
        Ok(self.connect().await?.client)
    }
}

#[async_trait]
impl AdminStore for PostgresStore {
    async fn health(&self) -> Result<(), StoreError> {
        crate::store::CaStore::ca_identity(self).await.map(|_| ())
    }

    async fn backup_to(&self, path: &std::path::Path) -> Result<(), StoreError> {
        super::migrate::postgres_to_sqlite(self, path).await
    }
}

impl PostgresStore {
    async fn count(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let row = query_opt(statements, &*client, sql, params)
                .await?
                .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
            from_i64(get(&row, 0)?)
        })
        .await
    }
}
