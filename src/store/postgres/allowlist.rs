//! PostgreSQL: the allow-list.

use async_trait::async_trait;

use super::events::insert_event;
use super::{db, execute, query, Conn, PostgresStore};
use crate::domain::event::NewEvent;
use crate::store::sql::allow_from_row;
use crate::store::{alt_names_json, AllowListStore, AllowRecord, StoreError};

#[async_trait]
impl AllowListStore for PostgresStore {
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
            .map(allow_from_row)
            .collect()
        })
        .await
    }
}
