//! The embedded SQLite store (WAL). One writer thread owns the only write connection and
//! commits whatever is queued in one transaction (each job in its own savepoint), so
//! concurrent decisions share a commit instead of queueing for SQLite's write lock. Reads
//! run on pooled read-only connections in the caller's thread: indexed lookups take
//! microseconds, and WAL readers never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row};

use super::{
    alt_names_json, from_i64, parse_alt_names, parse_json, to_i64, AllowRecord, CaCertificate,
    CaIdentity, CaImport, CaRequest, Delivery, Revocation, StatusRow, Store, StoreError,
    TokenSelector,
};
use crate::domain::event::{kind, EventFilter, EventRecord, NewEvent};
use crate::domain::token::{TokenHash, TokenRecord, TokenRequest};
use crate::timefmt;

/// Schema migrations in order; the index + 1 is the version.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_core.sql"),
    include_str!("../../../migrations/sqlite/0002_ca.sql"),
    include_str!("../../../migrations/sqlite/0003_status_cache.sql"),
    include_str!("../../../migrations/sqlite/0004_outbox.sql"),
    include_str!("../../../migrations/sqlite/0005_ca_identity.sql"),
];
/// Most jobs one commit carries: bounds how long the first of them waits.
const MAX_BATCH: usize = 256;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// What the writer thread runs: the job's statements, then (after the commit) its reply.
type Completion = Box<dyn FnOnce(Option<&StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: rusqlite::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
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
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(&conn, &rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: tx,
            readers: Mutex::new(Vec::new()),
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
            let result = in_savepoint(conn, f);
            Box::new(move |commit_error| {
                let _ = tx.send(match commit_error {
                    Some(e) => Err(e.clone()),
                    None => result,
                });
            })
        });
        self.writer
            .send(job)
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        rx.await.map_err(|_| {
            StoreError::Unavailable("the database writer dropped the request".into())
        })?
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

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job").map_err(unavailable)?;
    let result = f(conn);
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    match conn.execute_batch(end) {
        Ok(()) => result,
        Err(e) => Err(unavailable(e)),
    }
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
        for job in batch {
            completions.push(job(conn));
        }
        let commit = conn.execute_batch("COMMIT").map_err(unavailable);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for complete in completions {
            complete(commit.as_ref().err());
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
            params![version, timefmt::now()],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(())
}

fn insert_event(conn: &Connection, e: &NewEvent) -> Result<i64, StoreError> {
    let id = insert_event_row(conn, e)?;
    // The outbox: one delivery per webhook that wants this kind, in this transaction.
    conn.prepare_cached(
        "INSERT INTO webhook_deliveries (event_id, target, idempotency_key, next_attempt_at) \
         SELECT ?1, name, 'autosign-' || ?1 || '-' || name, ?2 FROM temp.webhook_targets WHERE kind = '*' OR kind = ?3",
    )
    .and_then(|mut stmt| stmt.execute(params![id, e.at, e.kind]))
    .map_err(unavailable)?;
    Ok(id)
}

fn insert_event_row(conn: &Connection, e: &NewEvent) -> Result<i64, StoreError> {
    let details = e.details.as_ref().map(|d| d.to_string());
    conn.prepare_cached(
        "INSERT INTO events (at, kind, certname, decision, reason, message, csr_fingerprint, token_id, actor, request_id, details) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
    )
    .and_then(|mut stmt| {
        stmt.query_row(
            params![
                e.at,
                e.kind,
                e.certname,
                e.decision.map(|d| d.as_str()),
                e.reason,
                e.message,
                e.csr_fingerprint,
                e.token_id,
                e.actor,
                e.request_id,
                details
            ],
            |r| r.get(0),
        )
    })
    .map_err(unavailable)
}

const TOKEN_COLUMNS: &str =
    "id, certname, alt_names, metadata, created_at, expires_at, used_at, revoked_at, created_by";

/// Raw columns, read inside rusqlite's row callback; parsed afterwards so JSON errors
/// surface as `Corrupt`.
type TokenRow = (
    i64,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    String,
);

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn token_from_row(row: TokenRow) -> Result<TokenRecord, StoreError> {
    let (
        id,
        certname,
        alt_names,
        metadata,
        created_at,
        expires_at,
        used_at,
        revoked_at,
        created_by,
    ) = row;
    Ok(TokenRecord {
        id,
        certname,
        alt_names: parse_alt_names(&alt_names)?,
        metadata: parse_json(metadata)?,
        created_at,
        expires_at,
        used_at,
        revoked_at,
        created_by,
    })
}

const EVENT_COLUMNS: &str =
    "id, at, kind, certname, decision, reason, message, csr_fingerprint, token_id, actor, request_id, details";

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<(EventRecord, Option<String>)> {
    let at: i64 = r.get(1)?;
    Ok((
        EventRecord {
            id: r.get(0)?,
            at,
            time: timefmt::rfc3339(at),
            kind: r.get(2)?,
            certname: r.get(3)?,
            decision: r.get(4)?,
            reason: r.get(5)?,
            message: r.get(6)?,
            csr_fingerprint: r.get(7)?,
            token_id: r.get(8)?,
            actor: r.get(9)?,
            request_id: r.get(10)?,
            details: None,
        },
        r.get(11)?,
    ))
}

const REQUEST_COLUMNS: &str = "certname, csr_pem, fingerprint, received_at, reason, message";

fn request_from_row(r: &Row<'_>) -> rusqlite::Result<CaRequest> {
    Ok(CaRequest {
        certname: r.get(0)?,
        csr_pem: r.get(1)?,
        fingerprint: r.get(2)?,
        received_at: r.get(3)?,
        reason: r.get(4)?,
        message: r.get(5)?,
    })
}

const CERT_COLUMNS: &str =
    "serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason";

fn cert_from_row(r: &Row<'_>) -> rusqlite::Result<Result<CaCertificate, StoreError>> {
    let serial: i64 = r.get(0)?;
    let cert = CaCertificate {
        serial: 0,
        certname: r.get(1)?,
        cert_pem: r.get(2)?,
        fingerprint: r.get(3)?,
        not_before: r.get(4)?,
        not_after: r.get(5)?,
        issued_at: r.get(6)?,
        revoked_at: r.get(7)?,
        revocation_reason: r.get(8)?,
    };
    Ok(from_i64(serial).map(|serial| CaCertificate { serial, ..cert }))
}

fn insert_certificate(
    conn: &Connection,
    c: &CaCertificate,
    status_json: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO ca_certificates (serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason, status_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            to_i64(c.serial).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            c.certname,
            c.cert_pem,
            c.fingerprint,
            c.not_before,
            c.not_after,
            c.issued_at,
            c.revoked_at,
            c.revocation_reason,
            status_json
        ])
    })
    .map_err(unavailable)?;
    Ok(())
}

/// `false` when the certname already has a pending request.
fn insert_request(conn: &Connection, r: &CaRequest) -> Result<bool, StoreError> {
    let added = conn
        .execute(
            "INSERT INTO ca_requests (certname, csr_pem, fingerprint, received_at, reason, message) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (certname) DO NOTHING",
            params![r.certname, r.csr_pem, r.fingerprint, r.received_at, r.reason, r.message],
        )
        .map_err(unavailable)?;
    Ok(added == 1)
}

#[async_trait]
impl Store for SqliteStore {
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
        self.write(move |conn| {
            let superseded: Vec<i64> = conn
                .prepare_cached(
                    "UPDATE build_tokens SET revoked_at = ?1 \
                     WHERE certname = ?2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?1 RETURNING id",
                )
                .and_then(|mut stmt| stmt.query_map(params![now, certname], |r| r.get(0))?.collect())
                .map_err(unavailable)?;
            for id in superseded {
                let revoked = NewEvent {
                    kind: kind::TOKEN_REVOKED,
                    token_id: Some(id),
                    message: Some(format!("build token {id} superseded by a new token for the same host")),
                    details: None,
                    ..event.clone()
                };
                insert_event(conn, &revoked)?;
            }
            let row = conn
                .prepare_cached(&format!(
                    "INSERT INTO build_tokens (token_hash, certname, alt_names, metadata, created_at, expires_at, created_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING {TOKEN_COLUMNS}"
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![hash, certname, alt_names, metadata, now, expires_at, event.actor],
                        token_row,
                    )
                })
                .map_err(unavailable)?;
            let record = token_from_row(row)?;
            insert_event(conn, &NewEvent { token_id: Some(record.id), ..event })?;
            Ok(record)
        })
        .await
    }

    async fn find_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM build_tokens WHERE token_hash = ?1"
                ))
                .and_then(|mut stmt| stmt.query_row([hash.as_str()], token_row).optional())
                .map_err(unavailable)?;
            row.map(token_from_row).transpose()
        })
    }

    async fn list_tokens(
        &self,
        certname: Option<&str>,
        live_at: Option<i64>,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut sql = format!("SELECT {TOKEN_COLUMNS} FROM build_tokens WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(name) = certname {
            args.push(Value::Text(name.to_string()));
            sql.push_str(&format!(" AND certname = ?{}", args.len()));
        }
        if let Some(now) = live_at {
            args.push(Value::Integer(now));
            sql.push_str(&format!(
                " AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?{}",
                args.len()
            ));
        }
        sql.push_str(" ORDER BY id DESC");
        self.read(|conn| {
            let rows: Vec<TokenRow> = conn
                .prepare_cached(&sql)
                .and_then(|mut stmt| stmt.query_map(params_from_iter(args), token_row)?.collect())
                .map_err(unavailable)?;
            rows.into_iter().map(token_from_row).collect()
        })
    }

    async fn revoke_tokens(
        &self,
        selector: &TokenSelector,
        now: i64,
        event: NewEvent,
    ) -> Result<Vec<i64>, StoreError> {
        let (clause, arg) = match selector {
            TokenSelector::Id(id) => ("id = ?2", Value::Integer(*id)),
            TokenSelector::Certname(name) => ("certname = ?2", Value::Text(name.clone())),
        };
        let sql = format!(
            "UPDATE build_tokens SET revoked_at = ?1 \
             WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > ?1 AND {clause} RETURNING id, certname"
        );
        self.write(move |conn| {
            let rows: Vec<(i64, String)> = conn
                .prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map(params![now, arg], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(unavailable)?;
            let mut ids = Vec::with_capacity(rows.len());
            for (id, certname) in rows {
                let e = NewEvent {
                    token_id: Some(id),
                    certname: Some(certname),
                    ..event.clone()
                };
                insert_event(conn, &e)?;
                ids.push(id);
            }
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
        self.write(move |conn| {
            let won: Option<i64> = conn
                .prepare_cached(
                    "UPDATE build_tokens SET used_at = ?1 \
                     WHERE id = ?2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?1 RETURNING id",
                )
                .and_then(|mut stmt| stmt.query_row(params![now, token_id], |r| r.get(0)).optional())
                .map_err(unavailable)?;
            match won {
                Some(_) => insert_event(conn, &event).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn add_allow_entry(
        &self,
        record: &AllowRecord,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        let record = record.clone();
        self.write(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT INTO allow_entries (pattern, alt_names, created_at, created_by) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (pattern) DO NOTHING",
                    params![record.pattern, alt_names_json(&record.alt_names), record.created_at, record.created_by],
                )
                .map_err(unavailable)?
                == 1;
            if inserted {
                insert_event(conn, &event)?;
            }
            Ok(inserted)
        })
        .await
    }

    async fn remove_allow_entry(&self, pattern: &str, event: NewEvent) -> Result<bool, StoreError> {
        let pattern = pattern.to_string();
        self.write(move |conn| {
            let removed = conn
                .execute("DELETE FROM allow_entries WHERE pattern = ?1", [&pattern])
                .map_err(unavailable)?
                == 1;
            if removed {
                insert_event(conn, &event)?;
            }
            Ok(removed)
        })
        .await
    }

    async fn list_allow_entries(&self) -> Result<Vec<AllowRecord>, StoreError> {
        self.read(|conn| {
            let rows: Vec<(String, String, i64, String)> = conn
                .prepare_cached("SELECT pattern, alt_names, created_at, created_by FROM allow_entries ORDER BY pattern")
                .and_then(|mut stmt| stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
                .map_err(unavailable)?;
            rows.into_iter()
                .map(|(pattern, alt_names, created_at, created_by)| {
                    Ok(AllowRecord {
                        pattern,
                        alt_names: parse_alt_names(&alt_names)?,
                        created_at,
                        created_by,
                    })
                })
                .collect()
        })
    }

    async fn record_event(&self, event: NewEvent) -> Result<i64, StoreError> {
        self.write(move |conn| insert_event(conn, &event)).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        let mut add = |column: &str, value: Value, args: &mut Vec<Value>| {
            args.push(value);
            sql.push_str(&format!(" AND {column} ?{}", args.len()));
        };
        if let Some(certname) = &filter.certname {
            add("certname =", Value::Text(certname.clone()), &mut args);
        }
        if let Some(kind) = &filter.kind {
            add("kind =", Value::Text(kind.clone()), &mut args);
        }
        if let Some(decision) = filter.decision {
            add(
                "decision =",
                Value::Text(decision.as_str().into()),
                &mut args,
            );
        }
        if let Some(before) = filter.before_id {
            add("id <", Value::Integer(before), &mut args);
        }
        if let Some(after) = filter.after_id {
            add("id >", Value::Integer(after), &mut args);
        }
        if let Some(since) = filter.since {
            add("at >=", Value::Integer(since), &mut args);
        }
        if let Some(until) = filter.until {
            add("at <=", Value::Integer(until), &mut args);
        }
        args.push(Value::Integer(i64::from(filter.limit.clamp(1, 1000))));
        let order = if filter.ascending { "ASC" } else { "DESC" };
        sql.push_str(&format!(" ORDER BY id {order} LIMIT ?{}", args.len()));
        self.read(|conn| {
            let rows: Vec<(EventRecord, Option<String>)> = conn
                .prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map(params_from_iter(args), event_from_row)?
                        .collect()
                })
                .map_err(corrupt)?;
            rows.into_iter()
                .map(|(mut event, details)| {
                    event.details = parse_json(details)?;
                    Ok(event)
                })
                .collect()
        })
    }

    async fn next_serial(&self) -> Result<u64, StoreError> {
        self.write(|conn| {
            let serial: i64 = conn
                .query_row(
                    "UPDATE ca_serial SET next = next + 1 WHERE id = 1 RETURNING next - 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            u64::try_from(serial)
                .map_err(|_| StoreError::Corrupt(format!("negative serial {serial}")))
        })
        .await
    }

    async fn ca_add_request(
        &self,
        request: &CaRequest,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        let r = request.clone();
        self.write(move |conn| {
            let added = insert_request(conn, &r)?;
            if added {
                insert_event(conn, &event)?;
            }
            Ok(added)
        })
        .await
    }

    async fn ca_request(&self, certname: &str) -> Result<Option<CaRequest>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {REQUEST_COLUMNS} FROM ca_requests WHERE certname = ?1"
            ))
            .and_then(|mut stmt| stmt.query_row([certname], request_from_row).optional())
            .map_err(unavailable)
        })
    }

    async fn ca_requests(&self) -> Result<Vec<CaRequest>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {REQUEST_COLUMNS} FROM ca_requests ORDER BY certname"
            ))
            .and_then(|mut stmt| stmt.query_map([], request_from_row)?.collect())
            .map_err(unavailable)
        })
    }

    async fn ca_delete_request(
        &self,
        certname: &str,
        event: Option<NewEvent>,
    ) -> Result<bool, StoreError> {
        let certname = certname.to_string();
        self.write(move |conn| {
            let deleted = conn
                .execute("DELETE FROM ca_requests WHERE certname = ?1", [&certname])
                .map_err(unavailable)?
                == 1;
            if let (true, Some(event)) = (deleted, event) {
                insert_event(conn, &event)?;
            }
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
        let c = cert.clone();
        self.write(move |conn| {
            insert_certificate(conn, &c, status_json.as_deref())?;
            conn.execute("DELETE FROM ca_requests WHERE certname = ?1", [&c.certname])
                .map_err(unavailable)?;
            insert_event(conn, &event)?;
            Ok(())
        })
        .await
    }

    async fn ca_certificate(&self, certname: &str) -> Result<Option<CaCertificate>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {CERT_COLUMNS} FROM ca_certificates WHERE certname = ?1 AND cleaned_at IS NULL ORDER BY serial DESC LIMIT 1"
            ))
            .and_then(|mut stmt| stmt.query_row([certname], cert_from_row).optional())
            .map_err(unavailable)?
            .transpose()
        })
    }

    async fn ca_certificates(&self) -> Result<Vec<CaCertificate>, StoreError> {
        self.read(|conn| {
            let rows: Vec<Result<CaCertificate, StoreError>> = conn
                .prepare_cached(&format!(
                    "SELECT {CERT_COLUMNS} FROM ca_certificates c WHERE cleaned_at IS NULL \
                     AND serial = (SELECT MAX(serial) FROM ca_certificates d WHERE d.certname = c.certname AND d.cleaned_at IS NULL) \
                     ORDER BY certname"
                ))
                .and_then(|mut stmt| stmt.query_map([], cert_from_row)?.collect())
                .map_err(unavailable)?;
            rows.into_iter().collect()
        })
    }

    async fn ca_revoke(
        &self,
        certname: &str,
        now: i64,
        reason: u8,
        event: NewEvent,
    ) -> Result<Option<u64>, StoreError> {
        let certname = certname.to_string();
        self.write(move |conn| {
            let current: Option<(i64, Option<i64>)> = conn
                .query_row(
                    "SELECT serial, revoked_at FROM ca_certificates WHERE certname = ?1 AND cleaned_at IS NULL ORDER BY serial DESC LIMIT 1",
                    [&certname],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            let Some((serial, revoked_at)) = current else { return Ok(None) };
            if revoked_at.is_none() {
                conn.execute(
                    "UPDATE ca_certificates SET revoked_at = ?1, revocation_reason = ?2 WHERE serial = ?3",
                    params![now, reason, serial],
                )
                .map_err(unavailable)?;
                insert_event(conn, &event)?;
            }
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
        let certname = certname.to_string();
        self.write(move |conn| {
            let certs = conn
                .execute(
                    "UPDATE ca_certificates SET cleaned_at = ?1 WHERE certname = ?2 AND cleaned_at IS NULL",
                    params![now, certname],
                )
                .map_err(unavailable)?;
            let requests = conn
                .execute("DELETE FROM ca_requests WHERE certname = ?1", [&certname])
                .map_err(unavailable)?;
            let any = certs + requests > 0;
            if any {
                insert_event(conn, &event)?;
            }
            Ok(any)
        })
        .await
    }

    async fn ca_status_rows(&self) -> Result<Vec<StatusRow>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT certname, status_json, revoked_at IS NOT NULL FROM ca_certificates c WHERE cleaned_at IS NULL \
                 AND serial = (SELECT MAX(serial) FROM ca_certificates d WHERE d.certname = c.certname AND d.cleaned_at IS NULL) \
                 ORDER BY certname",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], |r| {
                    Ok(StatusRow {
                        certname: r.get(0)?,
                        status_json: r.get(1)?,
                        revoked: r.get(2)?,
                    })
                })?
                .collect()
            })
            .map_err(unavailable)
        })
    }

    async fn ca_import(
        &self,
        import: CaImport,
        allowed_existing: Vec<String>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            let existing: Vec<String> = conn
                .prepare("SELECT certname FROM ca_certificates UNION SELECT certname FROM ca_requests")
                .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
                .map_err(unavailable)?;
            let foreign: Vec<&String> = existing.iter().filter(|n| !allowed_existing.contains(n)).collect();
            if !foreign.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "this CA already holds certificates or requests ({} and others); import into a new data directory",
                    foreign.first().map_or("", |n| n.as_str())
                )));
            }
            // The service's own certificates were issued by the CA being replaced.
            conn.execute_batch("DELETE FROM ca_certificates; DELETE FROM ca_requests; DELETE FROM ca_identity;")
                .map_err(unavailable)?;
            for (c, status_json) in &import.certificates {
                insert_certificate(conn, c, status_json.as_deref())?;
            }
            for r in &import.orphan_revocations {
                conn.execute(
                    "INSERT INTO ca_certificates (serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason, cleaned_at) \
                     VALUES (?1, '', '', '', 0, 0, 0, ?2, ?3, ?2)",
                    params![to_i64(r.serial)?, r.revoked_at, r.reason],
                )
                .map_err(unavailable)?;
            }
            for r in &import.requests {
                insert_request(conn, r)?;
            }
            conn.execute("UPDATE ca_serial SET next = MAX(next, ?1) WHERE id = 1", [to_i64(import.next_serial)?])
                .map_err(unavailable)?;
            conn.execute(
                "UPDATE ca_crl SET number = MAX(number, ?1), crl_der = NULL, crl_number = 0 WHERE id = 1",
                [to_i64(import.crl_number)?],
            )
            .map_err(unavailable)?;
            insert_event(conn, &event)?;
            Ok(())
        })
        .await
    }

    async fn ca_reset(&self, event: NewEvent) -> Result<Vec<String>, StoreError> {
        self.write(move |conn| {
            let names: Vec<String> = conn
                .prepare("SELECT DISTINCT certname FROM ca_certificates WHERE cleaned_at IS NULL ORDER BY certname")
                .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
                .map_err(unavailable)?;
            conn.execute_batch(
                "DELETE FROM ca_certificates; DELETE FROM ca_requests; DELETE FROM ca_identity; \
                 UPDATE ca_crl SET crl_der = NULL, crl_number = 0 WHERE id = 1;",
            )
            .map_err(unavailable)?;
            insert_event(conn, &event)?;
            Ok(names)
        })
        .await
    }

    async fn set_webhook_targets(
        &self,
        targets: Vec<(String, Vec<String>)>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute("DELETE FROM temp.webhook_targets", [])
                .map_err(unavailable)?;
            for (name, kinds) in &targets {
                let kinds: Vec<&str> = if kinds.is_empty() {
                    vec!["*"]
                } else {
                    kinds.iter().map(String::as_str).collect()
                };
                for kind in kinds {
                    conn.execute(
                        "INSERT INTO temp.webhook_targets (name, kind) VALUES (?1, ?2)",
                        params![name, kind],
                    )
                    .map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<(i64, String, String, u32, i64)> = self
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE webhook_deliveries SET claimed_until = ?1 + ?3 \
                     WHERE id IN (SELECT id FROM webhook_deliveries WHERE delivered_at IS NULL AND next_attempt_at <= ?1 \
                                  AND claimed_until <= ?1 ORDER BY id LIMIT ?2) \
                     RETURNING id, target, idempotency_key, attempts, event_id",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![now, limit, lease], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                        .collect()
                })
                .map_err(unavailable)
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, target, idempotency_key, attempts, event_id) in rows {
            let event = self.read(|conn| {
                let row = conn
                    .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))
                    .and_then(|mut stmt| stmt.query_row([event_id], event_from_row))
                    .map_err(unavailable)?;
                let (mut event, details) = row;
                event.details = parse_json(details)?;
                Ok(event)
            })?;
            out.push(Delivery {
                id,
                target,
                idempotency_key,
                attempts,
                event,
            });
        }
        Ok(out)
    }

    async fn delivery_done(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE webhook_deliveries SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                params![id, now],
            )
            .map_err(unavailable)?;
            Ok(())
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
        self.write(move |conn| {
            conn.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?2, claimed_until = 0, last_error = ?3 WHERE id = ?1",
                params![id, next_attempt_at, error],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn webhook_backlog(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM webhook_deliveries WHERE delivered_at IS NULL",
                    [],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            from_i64(n)
        })
    }

    async fn record_expired_tokens(&self, now: i64, actor: String) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let expired: Vec<(i64, String)> = conn
                .prepare_cached(
                    "UPDATE build_tokens SET expiry_recorded = 1 \
                     WHERE expiry_recorded = 0 AND used_at IS NULL AND revoked_at IS NULL AND expires_at <= ?1 \
                     RETURNING id, certname",
                )
                .and_then(|mut stmt| stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .map_err(unavailable)?;
            for (id, certname) in &expired {
                let event = NewEvent {
                    at: now,
                    kind: kind::TOKEN_EXPIRED,
                    certname: Some(certname.clone()),
                    decision: None,
                    reason: None,
                    message: Some(format!("build token {id} expired unused")),
                    csr_fingerprint: None,
                    token_id: Some(*id),
                    actor: actor.clone(),
                    request_id: None,
                    details: None,
                };
                insert_event(conn, &event)?;
            }
            Ok(expired.len() as u64)
        })
        .await
    }

    async fn count_rejections(&self, certname: &str, since: i64) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM events WHERE certname = ?1 AND decision = 'rejected' AND at >= ?2")
                .and_then(|mut stmt| stmt.query_row(params![certname, since], |r| r.get(0)))
                .map_err(unavailable)?;
            from_i64(n)
        })
    }

    async fn has_event(&self, certname: &str, kind: &str, since: i64) -> Result<bool, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT 1 FROM events WHERE certname = ?1 AND kind = ?2 AND at >= ?3 LIMIT 1",
            )
            .and_then(|mut stmt| stmt.exists(params![certname, kind, since]))
            .map_err(unavailable)
        })
    }

    async fn live_token_count(&self, now: i64) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM build_tokens WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > ?1",
                    [now],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            from_i64(n)
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

    async fn ca_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.read(|conn| {
            let rows: Vec<(i64, i64, Option<u8>)> = conn
                .prepare_cached(
                    "SELECT serial, revoked_at, revocation_reason FROM ca_certificates WHERE revoked_at IS NOT NULL ORDER BY serial",
                )
                .and_then(|mut stmt| stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
                .map_err(unavailable)?;
            rows.into_iter()
                .map(|(serial, revoked_at, reason)| Ok(Revocation { serial: from_i64(serial)?, revoked_at, reason }))
                .collect()
        })
    }

    async fn ca_next_crl_number(&self) -> Result<u64, StoreError> {
        self.write(|conn| {
            let n: i64 = conn
                .query_row(
                    "UPDATE ca_crl SET number = number + 1 WHERE id = 1 RETURNING number",
                    [],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            from_i64(n)
        })
        .await
    }

    async fn ca_store_crl(&self, number: u64, der: &[u8], now: i64) -> Result<(), StoreError> {
        let der = der.to_vec();
        self.write(move |conn| {
            conn.execute(
                "UPDATE ca_crl SET crl_der = ?1, crl_number = ?2, updated_at = ?3 WHERE id = 1 AND crl_number < ?2",
                params![der, to_i64(number)?, now],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn ca_crl(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.read(|conn| {
            let row: Option<(i64, Option<Vec<u8>>)> = conn
                .query_row(
                    "SELECT crl_number, crl_der FROM ca_crl WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            match row {
                Some((n, Some(der))) => Ok(Some((from_i64(n)?, der))),
                _ => Ok(None),
            }
        })
    }

    async fn ca_identity(&self) -> Result<Option<CaIdentity>, StoreError> {
        self.read(read_ca_identity)
    }

    async fn claim_ca_identity(
        &self,
        identity: &CaIdentity,
        now: i64,
    ) -> Result<CaIdentity, StoreError> {
        let identity = identity.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO ca_identity (id, fingerprint, subject, claimed_at) VALUES (1, ?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
                params![identity.fingerprint, identity.subject, now],
            )
            .map_err(unavailable)?;
            read_ca_identity(conn)?
                .ok_or_else(|| StoreError::Unavailable("the CA identity vanished".into()))
        })
        .await
    }
}

fn read_ca_identity(conn: &Connection) -> Result<Option<CaIdentity>, StoreError> {
    conn.query_row(
        "SELECT fingerprint, subject FROM ca_identity WHERE id = 1",
        [],
        |r| {
            Ok(CaIdentity {
                fingerprint: r.get(0)?,
                subject: r.get(1)?,
            })
        },
    )
    .optional()
    .map_err(unavailable)
}
