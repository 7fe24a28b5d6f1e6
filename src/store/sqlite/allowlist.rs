//! SQLite: the allow-list.

use async_trait::async_trait;
use rusqlite::params;

use super::events::insert_event;
use super::{unavailable, SqliteStore};
use crate::domain::event::NewEvent;
use crate::store::sql::allow_from_row;
use crate::store::{alt_names_json, AllowListStore, AllowRecord, StoreError};

#[async_trait]
impl AllowListStore for SqliteStore {
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
            let rows: Vec<Result<AllowRecord, StoreError>> = conn
                .prepare_cached("SELECT pattern, alt_names, created_at, created_by FROM allow_entries ORDER BY pattern")
                .and_then(|mut stmt| stmt.query_map([], |r| Ok(allow_from_row(r)))?.collect())
                .map_err(unavailable)?;
            rows.into_iter().collect()
        })
    }
}
