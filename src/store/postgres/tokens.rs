//! PostgreSQL: build tokens (issue, consume once, revoke, expiry sweep).

use async_trait::async_trait;

use super::events::{insert_event, with_event, EventParams};
use super::{db, get, query, query_opt, Conn, Param, PostgresStore};
use crate::domain::event::{kind, NewEvent};
use crate::domain::token::{TokenHash, TokenRecord, TokenRequest};
use crate::store::sql::{token_from_row, TOKEN_COLUMNS};
use crate::store::{alt_names_json, StoreError, TokenSelector, TokenStore};

#[async_trait]
impl TokenStore for PostgresStore {
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
        let expires_at = request.expires_at(now);
        let hash = hash.as_str().to_string();
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
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

    async fn live_token_count(&self, now: i64) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(*) FROM build_tokens WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
            &[&now],
        )
        .await
    }
}
