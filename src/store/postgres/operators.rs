//! PostgreSQL: operator accounts, their sessions and failed sign-in counters, shared by
//! every replica (a session started on one is valid on all).

use async_trait::async_trait;

use super::events::insert_event;
use super::{db, execute, get, query, query_opt, Conn, PostgresStore};
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
impl OperatorStore for PostgresStore {
    async fn add_operator(
        &self,
        record: &OperatorRecord,
        password_hash: &str,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let inserted = execute(
                statements,
                &tx,
                INSERT_OPERATOR,
                &[
                    &record.name,
                    &password_hash,
                    &record.created_at,
                    &record.created_by,
                ],
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

    async fn remove_operator(&self, name: &str, event: NewEvent) -> Result<bool, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let removed = execute(statements, &tx, DELETE_OPERATOR, &[&name]).await? == 1;
            if removed {
                execute(statements, &tx, DELETE_OPERATOR_SESSIONS, &[&name]).await?;
                insert_event(self, statements, &tx, &event).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(removed)
        })
        .await
    }

    async fn list_operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(statements, &*client, LIST_OPERATORS, &[])
                .await?
                .iter()
                .map(operator_from_row)
                .collect()
        })
        .await
    }

    async fn operator_password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query_opt(statements, &*client, OPERATOR_HASH, &[&name])
                .await?
                .map(|row| get(&row, 0))
                .transpose()
        })
        .await
    }

    async fn create_session(
        &self,
        id_hash: &str,
        session: &OperatorSession,
        idle_before: i64,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            execute(statements, &tx, SWEEP_SESSIONS, &[&idle_before]).await?;
            execute(
                statements,
                &tx,
                INSERT_SESSION,
                &[
                    &id_hash,
                    &session.operator,
                    &session.via,
                    &session.created_at,
                    &session.last_seen,
                ],
            )
            .await?;
            insert_event(self, statements, &tx, &event).await?;
            tx.commit().await.map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn find_session(
        &self,
        id_hash: &str,
        idle_before: i64,
    ) -> Result<Option<OperatorSession>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query_opt(
                statements,
                &*client,
                FIND_SESSION,
                &[&id_hash, &idle_before],
            )
            .await?
            .map(|row| session_from_row(&row))
            .transpose()
        })
        .await
    }

    async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            execute(statements, &*client, TOUCH_SESSION, &[&now, &id_hash]).await?;
            Ok(())
        })
        .await
    }

    async fn end_session(&self, id_hash: &str, event: NewEvent) -> Result<bool, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let ended = execute(statements, &tx, DELETE_SESSION, &[&id_hash]).await? == 1;
            if ended {
                insert_event(self, statements, &tx, &event).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(ended)
        })
        .await
    }

    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query_opt(statements, &*client, LOGIN_FAILURES, &[&key])
                .await?
                .map(|row| {
                    Ok(LoginFailures {
                        failures: count_u32(get(&row, 0)?),
                        last_failure: get(&row, 1)?,
                    })
                })
                .transpose()
        })
        .await
    }

    async fn record_login_failure(
        &self,
        key: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<u32, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let row = query_opt(
                statements,
                &*client,
                RECORD_LOGIN_FAILURE,
                &[&key, &now, &stale_before],
            )
            .await?
            .ok_or_else(|| StoreError::Unavailable("the failure count returned no row".into()))?;
            Ok(count_u32(get(&row, 0)?))
        })
        .await
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            execute(statements, &*client, CLEAR_LOGIN_FAILURES, &[&key]).await?;
            Ok(())
        })
        .await
    }
}
