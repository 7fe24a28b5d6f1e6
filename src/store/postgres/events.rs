//! PostgreSQL: the event log and the webhook outbox; `with_event!` writes an event and
//! its deliveries in the same statement as the change it records.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio_postgres::{GenericClient, Statement};

use super::{execute, get, query, query_opt, Conn, Param, PostgresStore};
use crate::domain::event::{EventFilter, EventRecord, NewEvent};
use crate::store::sql::{
    event_from_row, events_query, COUNT_DECISIONS, COUNT_KIND, DECISIONS_PER_HOUR, EVENT_COLUMNS,
};
use crate::store::{Delivery, EventStore, StoreError};

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
pub(super) use with_event;

const INSERT_EVENT: &str = with_event!("", "", "SELECT id FROM ev");

/// The columns of an event insert, owned so their references live long enough.
pub(super) struct EventParams {
    decision: Option<&'static str>,
    details: Option<String>,
    targets: Vec<String>,
}

impl EventParams {
    pub(super) fn new(store: &PostgresStore, e: &NewEvent) -> EventParams {
        EventParams {
            decision: e.decision.map(|d| d.as_str()),
            details: e.details.as_ref().map(|d| d.to_string()),
            targets: store.targets_for(e.kind),
        }
    }

    pub(super) fn params<'a>(&'a self, e: &'a NewEvent) -> [Param<'a>; 12] {
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

pub(super) async fn insert_event(
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

#[async_trait]
impl EventStore for PostgresStore {
    async fn record_event(&self, event: NewEvent) -> Result<i64, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            insert_event(self, statements, &*client, &event).await
        })
        .await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let (sql, args) = events_query(filter);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(statements, &*client, &sql, &super::params_of(&args))
                .await?
                .iter()
                .map(event_from_row)
                .collect()
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

    async fn count_rejections(
        &self,
        certname: &str,
        since: i64,
        at_most: u64,
    ) -> Result<u64, StoreError> {
        let cap = i64::try_from(at_most).unwrap_or(i64::MAX);
        self.count(
            crate::store::sql::COUNT_REJECTIONS,
            &[&certname, &since, &cap],
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

    async fn count_decisions(&self, decision: &str, since: i64) -> Result<u64, StoreError> {
        self.count(COUNT_DECISIONS, &[&decision, &since]).await
    }

    async fn count_kind(&self, kind: &str, since: i64) -> Result<u64, StoreError> {
        self.count(COUNT_KIND, &[&kind, &since]).await
    }

    async fn decisions_per_hour(
        &self,
        decision: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(
                statements,
                &*client,
                DECISIONS_PER_HOUR,
                &[&decision, &since, &until],
            )
            .await?
            .iter()
            .map(|row| {
                let hour: i64 = get(row, 0)?;
                let n: i64 = get(row, 1)?;
                Ok((hour * 3600, crate::store::from_i64(n)?))
            })
            .collect()
        })
        .await
    }
}
