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

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, NoTls, Row, Statement};

use super::{
    alt_names_json, from_i64, parse_alt_names, parse_json, to_i64, AllowRecord, CaCertificate,
    CaIdentity, CaImport, CaRequest, Delivery, Revocation, StatusRow, Store, StoreError,
    TokenSelector,
};
use crate::domain::event::{kind, EventFilter, EventRecord, NewEvent};
use crate::domain::token::{TokenHash, TokenRecord, TokenRequest};
use crate::timefmt;

/// Schema migrations in order; the index + 1 is the version.
const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/postgres/0001_schema.sql")];
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

fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
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

/// `WITH <ctes> ev AS (…), d AS (…) <select>`: the event (columns $1–$11, once per row of
/// `<source>`) and one delivery per webhook that wants it (names in $12), written by the
/// same statement as the change it records. `EventParams` supplies $1–$12.
macro_rules! with_event {
    ($ctes:expr, $source:expr, $select:expr) => {
        concat!(
            "WITH ", $ctes,
            "ev AS (INSERT INTO events (at, kind, certname, decision, reason, message, csr_fingerprint, token_id, actor, request_id, details) \
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 ", $source, " RETURNING id, at), \
             d AS (INSERT INTO webhook_deliveries (event_id, target, idempotency_key, next_attempt_at) \
               SELECT ev.id, t.name, 'autosign-' || ev.id || '-' || t.name, ev.at FROM ev, unnest($12::text[]) AS t(name)) ",
            $select
        )
    };
}

/// One event row and one delivery per webhook that wants it, in one statement.
const INSERT_EVENT: &str = with_event!("", "", "SELECT id FROM ev");

/// The columns of an event insert, owned so their references live long enough.
struct EventParams {
    decision: Option<&'static str>,
    details: Option<String>,
    targets: Vec<String>,
}

impl EventParams {
    fn new(store: &PostgresStore, e: &NewEvent) -> EventParams {
        EventParams {
            decision: e.decision.map(|d| d.as_str()),
            details: e.details.as_ref().map(|d| d.to_string()),
            targets: store.targets_for(e.kind),
        }
    }

    fn params<'a>(&'a self, e: &'a NewEvent) -> [Param<'a>; 12] {
        [
            &e.at,
            &e.kind,
            &e.certname,
            &self.decision,
            &e.reason,
            &e.message,
            &e.csr_fingerprint,
            &e.token_id,
            &e.actor,
            &e.request_id,
            &self.details,
            &self.targets,
        ]
    }
}

async fn insert_event(
    store: &PostgresStore,
    statements: &mut HashMap<String, Statement>,
    client: &impl GenericClient,
    e: &NewEvent,
) -> Result<i64, StoreError> {
    let p = EventParams::new(store, e);
    let row = query_opt(statements, client, INSERT_EVENT, &p.params(e))
        .await?
        .ok_or_else(|| StoreError::Unavailable("the event insert returned no id".into()))?;
    get(&row, 0)
}

const TOKEN_COLUMNS: &str =
    "id, certname, alt_names, metadata, created_at, expires_at, used_at, revoked_at, created_by";

fn token_from_row(r: &Row) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: get(r, 0)?,
        certname: get(r, 1)?,
        alt_names: parse_alt_names(&get::<String>(r, 2)?)?,
        metadata: parse_json(get(r, 3)?)?,
        created_at: get(r, 4)?,
        expires_at: get(r, 5)?,
        used_at: get(r, 6)?,
        revoked_at: get(r, 7)?,
        created_by: get(r, 8)?,
    })
}

const EVENT_COLUMNS: &str =
    "id, at, kind, certname, decision, reason, message, csr_fingerprint, token_id, actor, request_id, details";

fn event_from_row(r: &Row) -> Result<EventRecord, StoreError> {
    let at: i64 = get(r, 1)?;
    Ok(EventRecord {
        id: get(r, 0)?,
        at,
        time: timefmt::rfc3339(at),
        kind: get(r, 2)?,
        certname: get(r, 3)?,
        decision: get(r, 4)?,
        reason: get(r, 5)?,
        message: get(r, 6)?,
        csr_fingerprint: get(r, 7)?,
        token_id: get(r, 8)?,
        actor: get(r, 9)?,
        request_id: get(r, 10)?,
        details: parse_json(get(r, 11)?)?,
    })
}

const REQUEST_COLUMNS: &str = "certname, csr_pem, fingerprint, received_at, reason, message";

fn request_from_row(r: &Row) -> Result<CaRequest, StoreError> {
    Ok(CaRequest {
        certname: get(r, 0)?,
        csr_pem: get(r, 1)?,
        fingerprint: get(r, 2)?,
        received_at: get(r, 3)?,
        reason: get(r, 4)?,
        message: get(r, 5)?,
    })
}

const CERT_COLUMNS: &str =
    "serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason";

fn reason_from(v: Option<i64>) -> Result<Option<u8>, StoreError> {
    v.map(|r| u8::try_from(r).map_err(|_| StoreError::Corrupt(format!("revocation reason {r}"))))
        .transpose()
}

fn cert_from_row(r: &Row) -> Result<CaCertificate, StoreError> {
    Ok(CaCertificate {
        serial: from_i64(get(r, 0)?)?,
        certname: get(r, 1)?,
        cert_pem: get(r, 2)?,
        fingerprint: get(r, 3)?,
        not_before: get(r, 4)?,
        not_after: get(r, 5)?,
        issued_at: get(r, 6)?,
        revoked_at: get(r, 7)?,
        revocation_reason: reason_from(get(r, 8)?)?,
    })
}

macro_rules! certificate_columns {
    () => {
        "ca_certificates (serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason, status_json)"
    };
}

const INSERT_CERTIFICATE: &str = concat!(
    "INSERT INTO ",
    certificate_columns!(),
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);

/// The converted columns of a certificate insert, owned so their references live.
struct CertificateParams<'a> {
    cert: &'a CaCertificate,
    serial: i64,
    reason: Option<i64>,
    status_json: Option<&'a str>,
}

impl<'a> CertificateParams<'a> {
    fn new(cert: &'a CaCertificate, status_json: Option<&'a str>) -> Result<Self, StoreError> {
        Ok(CertificateParams {
            cert,
            serial: to_i64(cert.serial)?,
            reason: cert.revocation_reason.map(i64::from),
            status_json,
        })
    }

    fn params(&self) -> [Param<'_>; 10] {
        let c = self.cert;
        [
            &self.serial,
            &c.certname,
            &c.cert_pem,
            &c.fingerprint,
            &c.not_before,
            &c.not_after,
            &c.issued_at,
            &c.revoked_at,
            &self.reason,
            &self.status_json,
        ]
    }
}

async fn insert_certificate(
    statements: &mut HashMap<String, Statement>,
    client: &impl GenericClient,
    c: &CaCertificate,
    status_json: Option<&str>,
) -> Result<(), StoreError> {
    let p = CertificateParams::new(c, status_json)?;
    execute(statements, client, INSERT_CERTIFICATE, &p.params()).await?;
    Ok(())
}

macro_rules! request_columns {
    () => {
        "ca_requests (certname, csr_pem, fingerprint, received_at, reason, message)"
    };
}

const INSERT_REQUEST: &str = concat!(
    "INSERT INTO ",
    request_columns!(),
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (certname) DO NOTHING"
);

fn request_params(r: &CaRequest) -> [Param<'_>; 6] {
    [
        &r.certname,
        &r.csr_pem,
        &r.fingerprint,
        &r.received_at,
        &r.reason,
        &r.message,
    ]
}

async fn insert_request(
    statements: &mut HashMap<String, Statement>,
    client: &impl GenericClient,
    r: &CaRequest,
) -> Result<bool, StoreError> {
    let added = execute(statements, client, INSERT_REQUEST, &request_params(r)).await?;
    Ok(added == 1)
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
                    &[&version, &timefmt::now()],
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
impl Store for PostgresStore {
    async fn issue_token(
        &self,
        request: &TokenRequest,
        hash: &TokenHash,
        now: i64,
        event: NewEvent,
    ) -> Result<TokenRecord, StoreError> {
        let certname = request.certname.as_str().to_string();
        let alt_names = alt_names_json(&request.alt_names);
        let metadata = request.metadata.as_ref().map(|m| m.to_string());
        let expires_at = now.saturating_add(request.ttl_minutes.saturating_mul(60));
        let hash = hash.as_str().to_string();
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            // Two replicas issuing for one host at once must not both leave a live token.
            execute(
                statements,
                &tx,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&certname],
            )
            .await?;
            let superseded = query(
                statements,
                &tx,
                "UPDATE build_tokens SET revoked_at = $1 \
                 WHERE certname = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 RETURNING id",
                &[&now, &certname],
            )
            .await?;
            for row in superseded {
                let id: i64 = get(&row, 0)?;
                let revoked = NewEvent {
                    kind: kind::TOKEN_REVOKED,
                    token_id: Some(id),
                    message: Some(format!(
                        "build token {id} superseded by a new token for the same host"
                    )),
                    details: None,
                    ..event.clone()
                };
                insert_event(self, statements, &tx, &revoked).await?;
            }
            let sql = format!(
                "INSERT INTO build_tokens (token_hash, certname, alt_names, metadata, created_at, expires_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {TOKEN_COLUMNS}"
            );
            let row = query_opt(
                statements,
                &tx,
                &sql,
                &[&hash, &certname, &alt_names, &metadata, &now, &expires_at, &event.actor],
            )
            .await?
            .ok_or_else(|| StoreError::Unavailable("the token insert returned nothing".into()))?;
            let record = token_from_row(&row)?;
            let issued = NewEvent {
                token_id: Some(record.id),
                ..event
            };
            insert_event(self, statements, &tx, &issued).await?;
            tx.commit().await.map_err(db)?;
            Ok(record)
        })
        .await
    }

    async fn find_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM build_tokens WHERE token_hash = $1");
            query_opt(statements, &*client, &sql, &[&hash.as_str()])
                .await?
                .map(|row| token_from_row(&row))
                .transpose()
        })
        .await
    }

    async fn list_tokens(
        &self,
        certname: Option<&str>,
        live_at: Option<i64>,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM build_tokens \
             WHERE ($1::text IS NULL OR certname = $1) \
               AND ($2::bigint IS NULL OR (used_at IS NULL AND revoked_at IS NULL AND expires_at > $2)) \
             ORDER BY id DESC"
        );
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(statements, &*client, &sql, &[&certname, &live_at])
                .await?
                .iter()
                .map(token_from_row)
                .collect()
        })
        .await
    }

    async fn revoke_tokens(
        &self,
        selector: &TokenSelector,
        now: i64,
        event: NewEvent,
    ) -> Result<Vec<i64>, StoreError> {
        let (id, certname) = match selector {
            TokenSelector::Id(id) => (Some(*id), None),
            TokenSelector::Certname(name) => (None, Some(name.clone())),
        };
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let rows = query(
                statements,
                &tx,
                "UPDATE build_tokens SET revoked_at = $1 \
                 WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
                   AND ($2::bigint IS NULL OR id = $2) AND ($3::text IS NULL OR certname = $3) \
                   AND ($2::bigint IS NOT NULL OR $3::text IS NOT NULL) \
                 RETURNING id, certname",
                &[&now, &id, &certname],
            )
            .await?;
            let mut ids = Vec::with_capacity(rows.len());
            for row in rows {
                let id: i64 = get(&row, 0)?;
                let e = NewEvent {
                    token_id: Some(id),
                    certname: Some(get(&row, 1)?),
                    ..event.clone()
                };
                insert_event(self, statements, &tx, &e).await?;
                ids.push(id);
            }
            tx.commit().await.map_err(db)?;
            Ok(ids)
        })
        .await
    }

    async fn consume_token(
        &self,
        token_id: i64,
        now: i64,
        event: NewEvent,
    ) -> Result<Option<i64>, StoreError> {
        // One statement, so one round trip and no transaction left open: the conditional
        // UPDATE takes the row lock, a concurrent consumer (on any replica) waits for it
        // and then finds the token used. The approval is written only by the winner.
        const CONSUME: &str = with_event!(
            "won AS (UPDATE build_tokens SET used_at = $13 \
               WHERE id = $14 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $13 RETURNING id), ",
            "FROM won",
            "SELECT id FROM ev"
        );
        let p = EventParams::new(self, &event);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let mut params: Vec<Param<'_>> = p.params(&event).to_vec();
            params.push(&now);
            params.push(&token_id);
            query_opt(statements, &*client, CONSUME, &params)
                .await?
                .map(|row| get(&row, 0))
                .transpose()
        })
        .await
    }

    async fn add_allow_entry(
        &self,
        record: &AllowRecord,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        let alt_names = alt_names_json(&record.alt_names);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let inserted = execute(
                statements,
                &tx,
                "INSERT INTO allow_entries (pattern, alt_names, created_at, created_by) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (pattern) DO NOTHING",
                &[&record.pattern, &alt_names, &record.created_at, &record.created_by],
            )
            .await?
                == 1;
            if inserted {
                insert_event(self, statements, &tx, &event).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(inserted)
        })
        .await
    }

    async fn remove_allow_entry(&self, pattern: &str, event: NewEvent) -> Result<bool, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let removed = execute(
                statements,
                &tx,
                "DELETE FROM allow_entries WHERE pattern = $1",
                &[&pattern],
            )
            .await?
                == 1;
            if removed {
                insert_event(self, statements, &tx, &event).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(removed)
        })
        .await
    }

    async fn list_allow_entries(&self) -> Result<Vec<AllowRecord>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(
                statements,
                &*client,
                "SELECT pattern, alt_names, created_at, created_by FROM allow_entries ORDER BY pattern",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(AllowRecord {
                    pattern: get(r, 0)?,
                    alt_names: parse_alt_names(&get::<String>(r, 1)?)?,
                    created_at: get(r, 2)?,
                    created_by: get(r, 3)?,
                })
            })
            .collect()
        })
        .await
    }

    async fn record_event(&self, event: NewEvent) -> Result<i64, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            insert_event(self, statements, &*client, &event).await
        })
        .await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let decision = filter.decision.map(|d| d.as_str().to_string());
        let mut args: Vec<(&str, Box<dyn ToSql + Sync + Send>)> = Vec::new();
        if let Some(certname) = &filter.certname {
            args.push(("certname =", Box::new(certname.clone())));
        }
        if let Some(kind) = &filter.kind {
            args.push(("kind =", Box::new(kind.clone())));
        }
        if let Some(decision) = decision {
            args.push(("decision =", Box::new(decision)));
        }
        if let Some(before) = filter.before_id {
            args.push(("id <", Box::new(before)));
        }
        if let Some(after) = filter.after_id {
            args.push(("id >", Box::new(after)));
        }
        if let Some(since) = filter.since {
            args.push(("at >=", Box::new(since)));
        }
        if let Some(until) = filter.until {
            args.push(("at <=", Box::new(until)));
        }
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE TRUE");
        for (n, (column, _)) in (1..).zip(&args) {
            sql.push_str(&format!(" AND {column} ${n}"));
        }
        let order = if filter.ascending { "ASC" } else { "DESC" };
        sql.push_str(&format!(" ORDER BY id {order} LIMIT ${}", args.len() + 1));
        let limit = i64::from(filter.limit.clamp(1, 1000));
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let mut params: Vec<Param<'_>> =
                args.iter().map(|(_, v)| v.as_ref() as Param<'_>).collect();
            params.push(&limit);
            query(statements, &*client, &sql, &params)
                .await?
                .iter()
                .map(event_from_row)
                .collect()
        })
        .await
    }

    async fn next_serial(&self) -> Result<u64, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let row = query_opt(
                statements,
                &*client,
                "UPDATE ca_serial SET next = next + 1 WHERE id = 1 RETURNING next - 1",
                &[],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("the serial counter is missing".into()))?;
            from_i64(get(&row, 0)?)
        })
        .await
    }

    async fn ca_add_request(
        &self,
        request: &CaRequest,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        // One statement: the request, and its event only if the request was new.
        const ADD_REQUEST: &str = with_event!(
            concat!(
                "ins AS (INSERT INTO ",
                request_columns!(),
                " VALUES ($13, $14, $15, $16, $17, $18) ON CONFLICT (certname) DO NOTHING RETURNING certname), "
            ),
            "FROM ins",
            "SELECT COUNT(*) FROM ins"
        );
        let p = EventParams::new(self, &event);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let mut params: Vec<Param<'_>> = p.params(&event).to_vec();
            params.extend_from_slice(&request_params(request));
            let row = query_opt(statements, &*client, ADD_REQUEST, &params)
                .await?
                .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
            Ok(get::<i64>(&row, 0)? == 1)
        })
        .await
    }

    async fn ca_request(&self, certname: &str) -> Result<Option<CaRequest>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let sql = format!("SELECT {REQUEST_COLUMNS} FROM ca_requests WHERE certname = $1");
            query_opt(statements, &*client, &sql, &[&certname])
                .await?
                .map(|row| request_from_row(&row))
                .transpose()
        })
        .await
    }

    async fn ca_requests(&self) -> Result<Vec<CaRequest>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let sql = format!("SELECT {REQUEST_COLUMNS} FROM ca_requests ORDER BY certname");
            query(statements, &*client, &sql, &[])
                .await?
                .iter()
                .map(request_from_row)
                .collect()
        })
        .await
    }

    async fn ca_delete_request(
        &self,
        certname: &str,
        event: Option<NewEvent>,
    ) -> Result<bool, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let deleted = execute(
                statements,
                &tx,
                "DELETE FROM ca_requests WHERE certname = $1",
                &[&certname],
            )
            .await?
                == 1;
            if let (true, Some(event)) = (deleted, &event) {
                insert_event(self, statements, &tx, event).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(deleted)
        })
        .await
    }

    async fn ca_add_certificate(
        &self,
        cert: &CaCertificate,
        status_json: Option<String>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        // One statement (one round trip, one commit): the certificate, the end of its
        // request, and the event with its deliveries.
        const ADD_CERTIFICATE: &str = with_event!(
            concat!(
                "c AS (INSERT INTO ",
                certificate_columns!(),
                " VALUES ($13, $14, $15, $16, $17, $18, $19, $20, $21, $22) RETURNING certname), \
                 r AS (DELETE FROM ca_requests WHERE certname = (SELECT certname FROM c)), "
            ),
            "FROM c",
            "SELECT id FROM ev"
        );
        let p = EventParams::new(self, &event);
        let c = CertificateParams::new(cert, status_json.as_deref())?;
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let mut params: Vec<Param<'_>> = p.params(&event).to_vec();
            params.extend_from_slice(&c.params());
            query_opt(statements, &*client, ADD_CERTIFICATE, &params)
                .await?
                .ok_or_else(|| {
                    StoreError::Unavailable("the certificate insert returned nothing".into())
                })
                .map(|_| ())
        })
        .await
    }

    async fn ca_status_rows(&self) -> Result<Vec<StatusRow>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(
                statements,
                &*client,
                "SELECT DISTINCT ON (certname) certname, status_json, revoked_at IS NOT NULL \
                 FROM ca_certificates WHERE cleaned_at IS NULL ORDER BY certname, serial DESC",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(StatusRow {
                    certname: get(r, 0)?,
                    status_json: get(r, 1)?,
                    revoked: get(r, 2)?,
                })
            })
            .collect()
        })
        .await
    }

    async fn ca_certificate(&self, certname: &str) -> Result<Option<CaCertificate>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let sql = format!(
                "SELECT {CERT_COLUMNS} FROM ca_certificates WHERE certname = $1 AND cleaned_at IS NULL ORDER BY serial DESC LIMIT 1"
            );
            query_opt(statements, &*client, &sql, &[&certname])
                .await?
                .map(|row| cert_from_row(&row))
                .transpose()
        })
        .await
    }

    async fn ca_certificates(&self) -> Result<Vec<CaCertificate>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let sql = format!(
                "SELECT DISTINCT ON (certname) {CERT_COLUMNS} FROM ca_certificates \
                 WHERE cleaned_at IS NULL ORDER BY certname, serial DESC"
            );
            query(statements, &*client, &sql, &[])
                .await?
                .iter()
                .map(cert_from_row)
                .collect()
        })
        .await
    }

    async fn ca_revoke(
        &self,
        certname: &str,
        now: i64,
        reason: u8,
        event: NewEvent,
    ) -> Result<Option<u64>, StoreError> {
        let reason = i64::from(reason);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            // The row lock makes a revocation racing on another replica wait, then see
            // the certificate revoked: one event, one revocation time.
            let current = query_opt(
                statements,
                &tx,
                "SELECT serial, revoked_at FROM ca_certificates WHERE certname = $1 AND cleaned_at IS NULL \
                 ORDER BY serial DESC LIMIT 1 FOR UPDATE",
                &[&certname],
            )
            .await?;
            let Some(row) = current else {
                return Ok(None);
            };
            let serial: i64 = get(&row, 0)?;
            let revoked_at: Option<i64> = get(&row, 1)?;
            if revoked_at.is_none() {
                execute(
                    statements,
                    &tx,
                    "UPDATE ca_certificates SET revoked_at = $1, revocation_reason = $2 WHERE serial = $3",
                    &[&now, &reason, &serial],
                )
                .await?;
                insert_event(self, statements, &tx, &event).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(Some(from_i64(serial)?))
        })
        .await
    }

    async fn ca_clean(
        &self,
        certname: &str,
        now: i64,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let certs = execute(
                statements,
                &tx,
                "UPDATE ca_certificates SET cleaned_at = $1 WHERE certname = $2 AND cleaned_at IS NULL",
                &[&now, &certname],
            )
            .await?;
            let requests = execute(
                statements,
                &tx,
                "DELETE FROM ca_requests WHERE certname = $1",
                &[&certname],
            )
            .await?;
            let any = certs + requests > 0;
            if any {
                insert_event(self, statements, &tx, &event).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(any)
        })
        .await
    }

    async fn ca_import(
        &self,
        import: CaImport,
        allowed_existing: Vec<String>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        // A large inventory takes longer than one ordinary operation.
        let mut pooled = self.timed(self.pooled()).await?;
        let Conn { client, statements } = pooled.conn()?;
        let tx = client.transaction().await.map_err(db)?;
        tx.batch_execute("LOCK TABLE ca_certificates, ca_requests IN EXCLUSIVE MODE")
            .await
            .map_err(db)?;
        let existing: Vec<String> = query(
            statements,
            &tx,
            "SELECT certname FROM ca_certificates UNION SELECT certname FROM ca_requests",
            &[],
        )
        .await?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<_, _>>()?;
        let foreign: Vec<&String> = existing
            .iter()
            .filter(|n| !allowed_existing.contains(n))
            .collect();
        if let Some(first) = foreign.first() {
            return Err(StoreError::Conflict(format!(
                "this CA already holds certificates or requests ({first} and others); import into a new database"
            )));
        }
        tx.batch_execute(
            "DELETE FROM ca_certificates; DELETE FROM ca_requests; DELETE FROM ca_identity",
        )
        .await
        .map_err(db)?;
        for (c, status_json) in &import.certificates {
            insert_certificate(statements, &tx, c, status_json.as_deref()).await?;
        }
        for r in &import.orphan_revocations {
            let serial = to_i64(r.serial)?;
            let reason = r.reason.map(i64::from);
            execute(
                statements,
                &tx,
                "INSERT INTO ca_certificates (serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason, cleaned_at) \
                 VALUES ($1, '', '', '', 0, 0, 0, $2, $3, $2)",
                &[&serial, &r.revoked_at, &reason],
            )
            .await?;
        }
        for r in &import.requests {
            insert_request(statements, &tx, r).await?;
        }
        let next = to_i64(import.next_serial)?;
        execute(
            statements,
            &tx,
            "UPDATE ca_serial SET next = GREATEST(next, $1) WHERE id = 1",
            &[&next],
        )
        .await?;
        let number = to_i64(import.crl_number)?;
        execute(
            statements,
            &tx,
            "UPDATE ca_crl SET number = GREATEST(number, $1), crl_der = NULL, crl_number = 0 WHERE id = 1",
            &[&number],
        )
        .await?;
        insert_event(self, statements, &tx, &event).await?;
        tx.commit().await.map_err(db)
    }

    async fn ca_reset(&self, event: NewEvent) -> Result<Vec<String>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            tx.batch_execute("LOCK TABLE ca_certificates, ca_requests IN EXCLUSIVE MODE")
                .await
                .map_err(db)?;
            let names: Vec<String> = query(
                statements,
                &tx,
                "SELECT DISTINCT certname FROM ca_certificates WHERE cleaned_at IS NULL ORDER BY certname",
                &[],
            )
            .await?
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<_, _>>()?;
            tx.batch_execute(
                "DELETE FROM ca_certificates; DELETE FROM ca_requests; DELETE FROM ca_identity; \
                 UPDATE ca_crl SET crl_der = NULL, crl_number = 0 WHERE id = 1;",
            )
            .await
            .map_err(db)?;
            insert_event(self, statements, &tx, &event).await?;
            tx.commit().await.map_err(db)?;
            Ok(names)
        })
        .await
    }

    async fn set_webhook_targets(
        &self,
        targets: Vec<(String, Vec<String>)>,
    ) -> Result<(), StoreError> {
        let mut flat = Vec::new();
        for (name, kinds) in targets {
            if kinds.is_empty() {
                flat.push((name, "*".to_string()));
            } else {
                for kind in kinds {
                    flat.push((name.clone(), kind));
                }
            }
        }
        let mut current = self
            .targets
            .write()
            .map_err(|_| StoreError::Unavailable("webhook targets are poisoned".into()))?;
        *current = flat;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let limit = i64::from(limit);
        let until = now.saturating_add(lease);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            // SKIP LOCKED: replicas claiming at the same moment take different rows
            // instead of waiting for, or double-taking, each other's.
            let rows = query(
                statements,
                &*client,
                "UPDATE webhook_deliveries d SET claimed_until = $3 \
                 FROM (SELECT id FROM webhook_deliveries WHERE delivered_at IS NULL AND next_attempt_at <= $1 \
                       AND claimed_until <= $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) c \
                 WHERE d.id = c.id \
                 RETURNING d.id, d.target, d.idempotency_key, d.attempts, d.event_id",
                &[&now, &limit, &until],
            )
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let event_id: i64 = get(&row, 4)?;
                let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
                let event = query_opt(statements, &*client, &sql, &[&event_id])
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("event {event_id} is missing")))?;
                let attempts: i64 = get(&row, 3)?;
                out.push(Delivery {
                    id: get(&row, 0)?,
                    target: get(&row, 1)?,
                    idempotency_key: get(&row, 2)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    event: event_from_row(&event)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn delivery_done(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            execute(
                statements,
                &*client,
                "UPDATE webhook_deliveries SET delivered_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1",
                &[&id, &now],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn delivery_failed(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = error.chars().take(500).collect::<String>();
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            execute(
                statements,
                &*client,
                "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2, claimed_until = 0, last_error = $3 WHERE id = $1",
                &[&id, &next_attempt_at, &error],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn webhook_backlog(&self) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE delivered_at IS NULL",
            &[],
        )
        .await
    }

    async fn record_expired_tokens(&self, now: i64, actor: String) -> Result<u64, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let expired = query(
                statements,
                &tx,
                "UPDATE build_tokens SET expiry_recorded = 1 \
                 WHERE expiry_recorded = 0 AND used_at IS NULL AND revoked_at IS NULL AND expires_at <= $1 \
                 RETURNING id, certname",
                &[&now],
            )
            .await?;
            for row in &expired {
                let id: i64 = get(row, 0)?;
                let event = NewEvent {
                    at: now,
                    kind: kind::TOKEN_EXPIRED,
                    certname: Some(get(row, 1)?),
                    decision: None,
                    reason: None,
                    message: Some(format!("build token {id} expired unused")),
                    csr_fingerprint: None,
                    token_id: Some(id),
                    actor: actor.clone(),
                    request_id: None,
                    details: None,
                };
                insert_event(self, statements, &tx, &event).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(expired.len() as u64)
        })
        .await
    }

    async fn count_rejections(&self, certname: &str, since: i64) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(*) FROM events WHERE certname = $1 AND decision = 'rejected' AND at >= $2",
            &[&certname, &since],
        )
        .await
    }

    async fn has_event(&self, certname: &str, kind: &str, since: i64) -> Result<bool, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            Ok(query_opt(
                statements,
                &*client,
                "SELECT 1 FROM events WHERE certname = $1 AND kind = $2 AND at >= $3 LIMIT 1",
                &[&certname, &kind, &since],
            )
            .await?
            .is_some())
        })
        .await
    }

    async fn live_token_count(&self, now: i64) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(*) FROM build_tokens WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
            &[&now],
        )
        .await
    }

    async fn backup_to(&self, path: &std::path::Path) -> Result<(), StoreError> {
        super::migrate::postgres_to_sqlite(self, path).await
    }

    async fn ca_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(
                statements,
                &*client,
                "SELECT serial, revoked_at, revocation_reason FROM ca_certificates WHERE revoked_at IS NOT NULL ORDER BY serial",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(Revocation {
                    serial: from_i64(get(r, 0)?)?,
                    revoked_at: get(r, 1)?,
                    reason: reason_from(get(r, 2)?)?,
                })
            })
            .collect()
        })
        .await
    }

    async fn ca_next_crl_number(&self) -> Result<u64, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let row = query_opt(
                statements,
                &*client,
                "UPDATE ca_crl SET number = number + 1 WHERE id = 1 RETURNING number",
                &[],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("the CRL counter is missing".into()))?;
            from_i64(get(&row, 0)?)
        })
        .await
    }

    async fn ca_store_crl(&self, number: u64, der: &[u8], now: i64) -> Result<(), StoreError> {
        let number = to_i64(number)?;
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            execute(
                statements,
                &*client,
                "UPDATE ca_crl SET crl_der = $1, crl_number = $2, updated_at = $3 WHERE id = 1 AND crl_number < $2",
                &[&der, &number, &now],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn ca_crl(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let row = query_opt(
                statements,
                &*client,
                "SELECT crl_number, crl_der FROM ca_crl WHERE id = 1",
                &[],
            )
            .await?;
            match row {
                Some(row) => match get::<Option<Vec<u8>>>(&row, 1)? {
                    Some(der) => Ok(Some((from_i64(get(&row, 0)?)?, der))),
                    None => Ok(None),
                },
                None => Ok(None),
            }
        })
        .await
    }

    async fn ca_identity(&self) -> Result<Option<CaIdentity>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query_opt(
                statements,
                &*client,
                "SELECT fingerprint, subject FROM ca_identity WHERE id = 1",
                &[],
            )
            .await?
            .map(|row| {
                Ok(CaIdentity {
                    fingerprint: get(&row, 0)?,
                    subject: get(&row, 1)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn claim_ca_identity(
        &self,
        identity: &CaIdentity,
        now: i64,
    ) -> Result<CaIdentity, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            execute(
                statements,
                &*client,
                "INSERT INTO ca_identity (id, fingerprint, subject, claimed_at) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
                &[&identity.fingerprint, &identity.subject, &now],
            )
            .await?;
            let row = query_opt(
                statements,
                &*client,
                "SELECT fingerprint, subject FROM ca_identity WHERE id = 1",
                &[],
            )
            .await?
            .ok_or_else(|| StoreError::Unavailable("the CA identity vanished".into()))?;
            Ok(CaIdentity {
                fingerprint: get(&row, 0)?,
                subject: get(&row, 1)?,
            })
        })
        .await
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
