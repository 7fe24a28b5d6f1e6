//! SQLite: the event log and the webhook outbox (one delivery row per matching target,
//! written in the event's transaction).

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection};

use super::{corrupt, unavailable, SqliteStore};
use crate::domain::event::{EventFilter, EventRecord, NewEvent};
use crate::store::sql::{
    event_from_row, events_query, Arg, COUNT_DECISIONS, COUNT_KIND, COUNT_REJECTIONS,
    DECISIONS_PER_HOUR, EVENT_COLUMNS,
};
use crate::store::{from_i64, Delivery, EventStore, StoreError};

pub(super) fn insert_event(conn: &Connection, e: &NewEvent) -> Result<i64, StoreError> {
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

#[async_trait]
impl EventStore for SqliteStore {
    async fn record_event(&self, event: NewEvent) -> Result<i64, StoreError> {
        self.write(move |conn| insert_event(conn, &event)).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let (sql, args) = events_query(filter);
        let args = args.into_iter().map(|arg| match arg {
            Arg::Text(text) => Value::Text(text),
            Arg::Int(n) => Value::Integer(n),
        });
        self.read(|conn| {
            let rows: Vec<Result<EventRecord, StoreError>> = conn
                .prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map(params_from_iter(args), |r| Ok(event_from_row(r)))?
                        .collect()
                })
                .map_err(corrupt)?;
            rows.into_iter().collect()
        })
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
                conn.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))
                    .and_then(|mut stmt| stmt.query_row([event_id], |r| Ok(event_from_row(r))))
                    .map_err(unavailable)?
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

    async fn count_rejections(
        &self,
        certname: &str,
        since: i64,
        at_most: u64,
    ) -> Result<u64, StoreError> {
        let cap = i64::try_from(at_most).unwrap_or(i64::MAX);
        self.read(|conn| {
            let n: i64 = conn
                .prepare_cached(COUNT_REJECTIONS)
                .and_then(|mut stmt| stmt.query_row(params![certname, since, cap], |r| r.get(0)))
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

    async fn count_decisions(&self, decision: &str, since: i64) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn
                .prepare_cached(COUNT_DECISIONS)
                .and_then(|mut stmt| stmt.query_row(params![decision, since], |r| r.get(0)))
                .map_err(unavailable)?;
            from_i64(n)
        })
    }

    async fn count_kind(&self, kind: &str, since: i64) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn
                .prepare_cached(COUNT_KIND)
                .and_then(|mut stmt| stmt.query_row(params![kind, since], |r| r.get(0)))
                .map_err(unavailable)?;
            from_i64(n)
        })
    }

    async fn decisions_per_hour(
        &self,
        decision: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        self.read(|conn| {
            let rows: Vec<(i64, i64)> = conn
                .prepare_cached(DECISIONS_PER_HOUR)
                .and_then(|mut stmt| {
                    stmt.query_map(params![decision, since, until], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect()
                })
                .map_err(unavailable)?;
            rows.into_iter()
                .map(|(hour, n)| Ok((hour * 3600, from_i64(n)?)))
                .collect()
        })
    }
}
