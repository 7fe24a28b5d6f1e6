//! SQLite: operator accounts, their sessions and failed sign-in counters.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::events::insert_event;
use super::{unavailable, SqliteStore};
use crate::domain::event::NewEvent;
use crate::store::sql::{
    operator_from_row, session_from_row, CLEAR_LOGIN_FAILURES, DELETE_OPERATOR,
    DELETE_OPERATOR_SESSIONS, DELETE_SESSION, FIND_SESSION, INSERT_OPERATOR, INSERT_SESSION,
    LIST_OPERATORS, LOGIN_FAILURES, OPERATOR_HASH, RECORD_LOGIN_FAILURE, SWEEP_SESSIONS,
    TOUCH_SESSION,
};
use crate::store::{LoginFailures, OperatorRecord, OperatorSession, OperatorStore, StoreError};

fn count_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[async_trait]
impl OperatorStore for SqliteStore {
    async fn add_operator(
        &self,
        record: &OperatorRecord,
        password_hash: &str,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        let record = record.clone();
        let hash = password_hash.to_string();
        self.write(move |conn| {
            let inserted = conn
                .execute(
                    INSERT_OPERATOR,
                    params![record.name, hash, record.created_at, record.created_by],
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

    async fn remove_operator(&self, name: &str, event: NewEvent) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |conn| {
            let removed = conn
                .execute(DELETE_OPERATOR, [&name])
                .map_err(unavailable)?
                == 1;
            if removed {
                conn.execute(DELETE_OPERATOR_SESSIONS, [&name])
                    .map_err(unavailable)?;
                insert_event(conn, &event)?;
            }
            Ok(removed)
        })
        .await
    }

    async fn list_operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        self.read(|conn| {
            let rows: Vec<Result<OperatorRecord, StoreError>> = conn
                .prepare_cached(LIST_OPERATORS)
                .and_then(|mut stmt| stmt.query_map([], |r| Ok(operator_from_row(r)))?.collect())
                .map_err(unavailable)?;
            rows.into_iter().collect()
        })
    }

    async fn operator_password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(OPERATOR_HASH)
                .and_then(|mut stmt| stmt.query_row([name], |r| r.get(0)).optional())
                .map_err(unavailable)
        })
    }

    async fn create_session(
        &self,
        id_hash: &str,
        session: &OperatorSession,
        idle_before: i64,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        let s = session.clone();
        self.write(move |conn| {
            conn.execute(SWEEP_SESSIONS, [idle_before])
                .map_err(unavailable)?;
            conn.execute(
                INSERT_SESSION,
                params![id_hash, s.operator, s.via, s.created_at, s.last_seen],
            )
            .map_err(unavailable)?;
            insert_event(conn, &event)?;
            Ok(())
        })
        .await
    }

    async fn find_session(
        &self,
        id_hash: &str,
        idle_before: i64,
    ) -> Result<Option<OperatorSession>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(FIND_SESSION)
                .and_then(|mut stmt| {
                    stmt.query_row(params![id_hash, idle_before], |r| Ok(session_from_row(r)))
                        .optional()
                })
                .map_err(unavailable)?
                .transpose()
        })
    }

    async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        self.write(move |conn| {
            conn.execute(TOUCH_SESSION, params![now, id_hash])
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn end_session(&self, id_hash: &str, event: NewEvent) -> Result<bool, StoreError> {
        let id_hash = id_hash.to_string();
        self.write(move |conn| {
            let ended = conn
                .execute(DELETE_SESSION, [&id_hash])
                .map_err(unavailable)?
                == 1;
            if ended {
                insert_event(conn, &event)?;
            }
            Ok(ended)
        })
        .await
    }

    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(LOGIN_FAILURES)
                .and_then(|mut stmt| {
                    stmt.query_row([key], |r| {
                        Ok(LoginFailures {
                            failures: count_u32(r.get(0)?),
                            last_failure: r.get(1)?,
                        })
                    })
                    .optional()
                })
                .map_err(unavailable)
        })
    }

    async fn record_login_failure(
        &self,
        key: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<u32, StoreError> {
        let key = key.to_string();
        self.write(move |conn| {
            let n: i64 = conn
                .query_row(RECORD_LOGIN_FAILURE, params![key, now, stale_before], |r| {
                    r.get(0)
                })
                .map_err(unavailable)?;
            Ok(count_u32(n))
        })
        .await
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.write(move |conn| {
            conn.execute(CLEAR_LOGIN_FAILURES, [&key])
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}
