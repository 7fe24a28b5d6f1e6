//! SQLite: build tokens (issue, consume once, revoke, expiry sweep).

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension};

use super::events::insert_event;
use super::{unavailable, SqliteStore};
use crate::domain::event::{kind, NewEvent};
use crate::domain::token::{TokenHash, TokenRecord, TokenRequest};
use crate::store::sql::{token_from_row, TOKEN_COLUMNS};
use crate::store::{alt_names_json, from_i64, StoreError, TokenSelector, TokenStore};

#[async_trait]
impl TokenStore for SqliteStore {
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
        self.write(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "INSERT INTO build_tokens (token_hash, certname, alt_names, metadata, created_at, expires_at, created_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING {TOKEN_COLUMNS}"
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![hash, certname, alt_names, metadata, now, expires_at, event.actor],
                        |r| Ok(token_from_row(r)),
                    )
                })
                .map_err(unavailable)?;
            let record = row?;
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
                .and_then(|mut stmt| {
                    stmt.query_row([hash.as_str()], |r| Ok(token_from_row(r)))
                        .optional()
                })
                .map_err(unavailable)?;
            row.transpose()
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
            let rows: Vec<Result<TokenRecord, StoreError>> = conn
                .prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map(params_from_iter(args), |r| Ok(token_from_row(r)))?
                        .collect()
                })
                .map_err(unavailable)?;
            rows.into_iter().collect()
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
}
