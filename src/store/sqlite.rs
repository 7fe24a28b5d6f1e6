//! The embedded SQLite store (WAL). Writes go through one connection so they queue in
//! process instead of spinning on SQLite's busy handler; reads use a small pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::{AllowRecord, Store, StoreError, TokenSelector};
use crate::domain::event::{kind, EventFilter, EventRecord, NewEvent};
use crate::domain::token::{AltName, TokenHash, TokenRecord, TokenRequest};
use crate::timefmt;

/// Schema migrations in order; the index + 1 is the version.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/sqlite/0001_core.sql")];

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteStore {
    /// Open (creating if needed) the database file and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode is durable against process crashes; only an OS crash can
            // lose the last commits, and never corrupts the database.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(unavailable)?;
        Ok(SqliteStore { writer, reader })
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let fail = |e: sqlx::Error| StoreError::Migration(e.to_string());
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        .execute(pool)
        .await
        .map_err(fail)?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .and_then(|row| row.try_get(0))
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
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(fail)?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(timefmt::now())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
    }
    Ok(())
}

async fn insert_event(conn: &mut SqliteConnection, e: &NewEvent) -> Result<i64, StoreError> {
    let details = e.details.as_ref().map(|d| d.to_string());
    let row = sqlx::query(
        "INSERT INTO events (at, kind, certname, decision, reason, message, csr_fingerprint, token_id, actor, request_id, details) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(e.at)
    .bind(e.kind)
    .bind(&e.certname)
    .bind(e.decision.map(|d| d.as_str()))
    .bind(&e.reason)
    .bind(&e.message)
    .bind(&e.csr_fingerprint)
    .bind(e.token_id)
    .bind(&e.actor)
    .bind(&e.request_id)
    .bind(details)
    .fetch_one(&mut *conn)
    .await
    .map_err(unavailable)?;
    row.try_get(0).map_err(unavailable)
}

fn alt_names_json(names: &[AltName]) -> String {
    serde_json::to_string(names).unwrap_or_else(|_| "[]".into())
}

fn parse_alt_names(text: &str) -> Result<Vec<AltName>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("alt names '{text}': {e}")))
}

fn parse_json(text: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("JSON '{t}': {e}")))
    })
    .transpose()
}

const TOKEN_COLUMNS: &str =
    "id, certname, alt_names, metadata, created_at, expires_at, used_at, revoked_at, created_by";

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let get = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    Ok(TokenRecord {
        id: row.try_get("id").map_err(get)?,
        certname: row.try_get("certname").map_err(get)?,
        alt_names: parse_alt_names(&row.try_get::<String, _>("alt_names").map_err(get)?)?,
        metadata: parse_json(row.try_get("metadata").map_err(get)?)?,
        created_at: row.try_get("created_at").map_err(get)?,
        expires_at: row.try_get("expires_at").map_err(get)?,
        used_at: row.try_get("used_at").map_err(get)?,
        revoked_at: row.try_get("revoked_at").map_err(get)?,
        created_by: row.try_get("created_by").map_err(get)?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<EventRecord, StoreError> {
    let get = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    let at: i64 = row.try_get("at").map_err(get)?;
    Ok(EventRecord {
        id: row.try_get("id").map_err(get)?,
        at,
        time: timefmt::rfc3339(at),
        kind: row.try_get("kind").map_err(get)?,
        certname: row.try_get("certname").map_err(get)?,
        decision: row.try_get("decision").map_err(get)?,
        reason: row.try_get("reason").map_err(get)?,
        message: row.try_get("message").map_err(get)?,
        csr_fingerprint: row.try_get("csr_fingerprint").map_err(get)?,
        token_id: row.try_get("token_id").map_err(get)?,
        actor: row.try_get("actor").map_err(get)?,
        request_id: row.try_get("request_id").map_err(get)?,
        details: parse_json(row.try_get("details").map_err(get)?)?,
    })
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
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let superseded: Vec<i64> = sqlx::query(
            "UPDATE build_tokens SET revoked_at = ? \
             WHERE certname = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? RETURNING id",
        )
        .bind(now)
        .bind(request.certname.as_str())
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
        for id in superseded {
            let revoked = NewEvent {
                kind: kind::TOKEN_REVOKED,
                token_id: Some(id),
                message: Some(format!(
                    "build token {id} superseded by a new token for the same host"
                )),
                details: None,
                ..event.clone()
            };
            insert_event(&mut tx, &revoked).await?;
        }
        let metadata = request.metadata.as_ref().map(|m| m.to_string());
        let row = sqlx::query(&format!(
            "INSERT INTO build_tokens (token_hash, certname, alt_names, metadata, created_at, expires_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(hash.as_str())
        .bind(request.certname.as_str())
        .bind(alt_names_json(&request.alt_names))
        .bind(metadata)
        .bind(now)
        .bind(now.saturating_add(request.ttl_minutes.saturating_mul(60)))
        .bind(&event.actor)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let record = token_from_row(&row)?;
        insert_event(
            &mut tx,
            &NewEvent {
                token_id: Some(record.id),
                ..event
            },
        )
        .await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(record)
    }

    async fn find_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM build_tokens WHERE token_hash = ?"
        ))
        .bind(hash.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(
        &self,
        certname: Option<&str>,
        live_at: Option<i64>,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {TOKEN_COLUMNS} FROM build_tokens WHERE 1 = 1"
        ));
        if let Some(name) = certname {
            q.push(" AND certname = ").push_bind(name);
        }
        if let Some(now) = live_at {
            q.push(" AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ")
                .push_bind(now);
        }
        q.push(" ORDER BY id DESC");
        let rows = q
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_tokens(
        &self,
        selector: &TokenSelector,
        now: i64,
        event: NewEvent,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE build_tokens SET revoked_at = ");
        q.push_bind(now);
        q.push(" WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > ")
            .push_bind(now);
        match selector {
            TokenSelector::Id(id) => q.push(" AND id = ").push_bind(*id),
            TokenSelector::Certname(name) => q.push(" AND certname = ").push_bind(name.as_str()),
        };
        q.push(" RETURNING id, certname");
        let rows = q.build().fetch_all(&mut *tx).await.map_err(unavailable)?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0).map_err(unavailable)?;
            let certname: String = row.try_get(1).map_err(unavailable)?;
            let e = NewEvent {
                token_id: Some(id),
                certname: Some(certname),
                ..event.clone()
            };
            insert_event(&mut tx, &e).await?;
            ids.push(id);
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(ids)
    }

    async fn consume_token(
        &self,
        token_id: i64,
        now: i64,
        event: NewEvent,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let won = sqlx::query(
            "UPDATE build_tokens SET used_at = ? \
             WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? RETURNING id",
        )
        .bind(now)
        .bind(token_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        if won.is_none() {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(None);
        }
        let event_id = insert_event(&mut tx, &event).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(event_id))
    }

    async fn add_allow_entry(
        &self,
        record: &AllowRecord,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let inserted = sqlx::query(
            "INSERT INTO allow_entries (pattern, alt_names, created_at, created_by) VALUES (?, ?, ?, ?) \
             ON CONFLICT (pattern) DO NOTHING",
        )
        .bind(&record.pattern)
        .bind(alt_names_json(&record.alt_names))
        .bind(record.created_at)
        .bind(&record.created_by)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected()
            == 1;
        if inserted {
            insert_event(&mut tx, &event).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(inserted)
    }

    async fn remove_allow_entry(&self, pattern: &str, event: NewEvent) -> Result<bool, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let removed = sqlx::query("DELETE FROM allow_entries WHERE pattern = ?")
            .bind(pattern)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected()
            == 1;
        if removed {
            insert_event(&mut tx, &event).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(removed)
    }

    async fn list_allow_entries(&self) -> Result<Vec<AllowRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT pattern, alt_names, created_at, created_by FROM allow_entries ORDER BY pattern",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
                Ok(AllowRecord {
                    pattern: row.try_get("pattern").map_err(get)?,
                    alt_names: parse_alt_names(
                        &row.try_get::<String, _>("alt_names").map_err(get)?,
                    )?,
                    created_at: row.try_get("created_at").map_err(get)?,
                    created_by: row.try_get("created_by").map_err(get)?,
                })
            })
            .collect()
    }

    async fn record_event(&self, event: NewEvent) -> Result<i64, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(unavailable)?;
        insert_event(&mut conn, &event).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, at, kind, certname, decision, reason, message, csr_fingerprint, token_id, actor, request_id, details \
             FROM events WHERE 1 = 1",
        );
        if let Some(certname) = &filter.certname {
            q.push(" AND certname = ").push_bind(certname.as_str());
        }
        if let Some(kind) = &filter.kind {
            q.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(decision) = filter.decision {
            q.push(" AND decision = ").push_bind(decision.as_str());
        }
        if let Some(before) = filter.before_id {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.clamp(1, 1000)));
        let rows = q
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable)?;
        rows.iter().map(event_from_row).collect()
    }

    /// Allocate the next certificate serial; never returns the same value twice.
    async fn next_serial(&self) -> Result<u64, StoreError> {
        let row =
            sqlx::query("UPDATE ca_serial SET next = next + 1 WHERE id = 1 RETURNING next - 1")
                .fetch_one(&self.writer)
                .await
                .map_err(unavailable)?;
        let serial: i64 = row.try_get(0).map_err(unavailable)?;
        u64::try_from(serial).map_err(|_| StoreError::Corrupt(format!("negative serial {serial}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::certname::Certname;
    use crate::domain::event::Actor;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    async fn fresh(name: &str) -> SqliteStore {
        let dir =
            std::env::temp_dir().join(format!("autosign-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        SqliteStore::open(&dir.join("db.sqlite")).await.unwrap()
    }

    fn event(at: i64) -> NewEvent {
        NewEvent::new(at, kind::TOKEN_ISSUED, &Actor::new("test", None))
    }

    async fn token(store: &SqliteStore, name: &str, secret: &str, now: i64) -> TokenRecord {
        let request =
            TokenRequest::new(Certname::parse(name).unwrap(), vec![], None, Some(60)).unwrap();
        store
            .issue_token(&request, &TokenHash::of(secret), now, event(now))
            .await
            .unwrap()
    }

    #[test]
    fn a_token_is_consumed_once_and_only_while_live() {
        run(async {
            let store = fresh("consume").await;
            let t = token(&store, "a.example.com", "s1", 1000).await;
            assert_eq!(t.expires_at, 1000 + 3600);
            assert!(store
                .consume_token(t.id, 1001, event(1001))
                .await
                .unwrap()
                .is_some());
            assert!(store
                .consume_token(t.id, 1002, event(1002))
                .await
                .unwrap()
                .is_none());
            let found = store
                .find_token(&TokenHash::of("s1"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.used_at, Some(1001));

            let late = token(&store, "b.example.com", "s2", 1000).await;
            assert!(
                store
                    .consume_token(late.id, 1000 + 3600, event(5000))
                    .await
                    .unwrap()
                    .is_none(),
                "expired"
            );
            let revoked = token(&store, "c.example.com", "s3", 1000).await;
            let ids = store
                .revoke_tokens(&TokenSelector::Id(revoked.id), 1001, event(1001))
                .await
                .unwrap();
            assert_eq!(ids, [revoked.id]);
            assert!(store
                .consume_token(revoked.id, 1002, event(1002))
                .await
                .unwrap()
                .is_none());
            assert!(store
                .find_token(&TokenHash::of("unknown"))
                .await
                .unwrap()
                .is_none());
        });
    }

    #[test]
    fn issuing_supersedes_the_hosts_live_token_and_records_it() {
        run(async {
            let store = fresh("supersede").await;
            let first = token(&store, "a.example.com", "s1", 1000).await;
            let second = token(&store, "a.example.com", "s2", 1010).await;
            let live = store
                .list_tokens(Some("a.example.com"), Some(1020))
                .await
                .unwrap();
            assert_eq!(live.iter().map(|t| t.id).collect::<Vec<_>>(), [second.id]);
            let revoked = store
                .find_token(&TokenHash::of("s1"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(revoked.revoked_at, Some(1010));
            let events = store
                .list_events(&EventFilter {
                    kind: Some(kind::TOKEN_REVOKED.into()),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].token_id, Some(first.id));
        });
    }

    #[test]
    fn serials_are_unique_and_survive_reopening() {
        run(async {
            let dir =
                std::env::temp_dir().join(format!("autosign-store-{}-serial", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("db.sqlite");
            let store = SqliteStore::open(&path).await.unwrap();
            assert_eq!(store.next_serial().await.unwrap(), 1);
            assert_eq!(store.next_serial().await.unwrap(), 2);
            drop(store);
            let store = SqliteStore::open(&path).await.unwrap();
            assert_eq!(
                store.next_serial().await.unwrap(),
                3,
                "migrations are not re-applied"
            );
        });
    }

    #[test]
    fn a_newer_schema_is_refused() {
        run(async {
            let store = fresh("newer").await;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
                .execute(&store.writer)
                .await
                .unwrap();
            let path = std::env::temp_dir().join(format!(
                "autosign-store-{}-newer/db.sqlite",
                std::process::id()
            ));
            drop(store);
            let err = SqliteStore::open(&path).await.err().unwrap();
            assert!(err.to_string().contains("newer than this binary"), "{err}");
        });
    }
}
