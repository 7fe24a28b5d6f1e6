//! Copying a whole state between the two backends, row for row: `autosign-proxy
//! migrate` moves an SQLite state into an empty PostgreSQL database (one transaction,
//! then a per-table count check), and a PostgreSQL store's `backup_to` writes a
//! consistent SQLite copy (what `ca regenerate` keeps before starting over).

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OpenFlags};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::postgres::PostgresStore;
use super::StoreError;

/// Column types; the two schemas agree on them.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Blob,
}

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// Its identity column, whose sequence continues after the copied ids.
    identity: Option<&'static str>,
}

use Kind::{Blob, Int, Text};

/// Every table, parents before children.
const TABLES: &[Table] = &[
    Table {
        name: "build_tokens",
        columns: &[
            ("id", Int),
            ("token_hash", Text),
            ("certname", Text),
            ("alt_names", Text),
            ("metadata", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
            ("revoked_at", Int),
            ("created_by", Text),
            ("expiry_recorded", Int),
        ],
        identity: Some("id"),
    },
    Table {
        name: "allow_entries",
        columns: &[
            ("pattern", Text),
            ("alt_names", Text),
            ("created_at", Int),
            ("created_by", Text),
        ],
        identity: None,
    },
    Table {
        name: "operators",
        columns: &[
            ("name", Text),
            ("password_hash", Text),
            ("created_at", Int),
            ("created_by", Text),
        ],
        identity: None,
    },
    Table {
        name: "events",
        columns: &[
            ("id", Int),
            ("at", Int),
            ("kind", Text),
            ("certname", Text),
            ("decision", Text),
            ("reason", Text),
            ("message", Text),
            ("csr_fingerprint", Text),
            ("token_id", Int),
            ("actor", Text),
            ("request_id", Text),
            ("details", Text),
        ],
        identity: Some("id"),
    },
    Table {
        name: "ca_serial",
        columns: &[("id", Int), ("next", Int)],
        identity: None,
    },
    Table {
        name: "ca_requests",
        columns: &[
            ("certname", Text),
            ("csr_pem", Text),
            ("fingerprint", Text),
            ("received_at", Int),
            ("reason", Text),
            ("message", Text),
        ],
        identity: None,
    },
    Table {
        name: "ca_certificates",
        columns: &[
            ("serial", Int),
            ("certname", Text),
            ("cert_pem", Text),
            ("fingerprint", Text),
            ("not_before", Int),
            ("not_after", Int),
            ("issued_at", Int),
            ("revoked_at", Int),
            ("revocation_reason", Int),
            ("cleaned_at", Int),
            ("status_json", Text),
        ],
        identity: None,
    },
    Table {
        name: "ca_crl",
        columns: &[
            ("id", Int),
            ("number", Int),
            ("crl_der", Blob),
            ("crl_number", Int),
            ("updated_at", Int),
        ],
        identity: None,
    },
    Table {
        name: "webhook_deliveries",
        columns: &[
            ("id", Int),
            ("event_id", Int),
            ("target", Text),
            ("idempotency_key", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("claimed_until", Int),
            ("delivered_at", Int),
            ("last_error", Text),
        ],
        identity: Some("id"),
    },
    Table {
        name: "ca_identity",
        columns: &[
            ("id", Int),
            ("fingerprint", Text),
            ("subject", Text),
            ("claimed_at", Int),
        ],
        identity: None,
    },
];

/// Rows per INSERT: well under PostgreSQL's 65,535 parameters for the widest table.
const BATCH: usize = 1000;

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn sqlite_error(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("SQLite: {e}"))
}

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => StoreError::Unavailable(format!("PostgreSQL: {}", d.message())),
        None => StoreError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

/// One SQLite value as the PostgreSQL parameter of its column's type.
fn to_pg(
    value: &Value,
    kind: Kind,
    column: &str,
) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    let mismatch = || StoreError::Corrupt(format!("column {column}: unexpected value {value:?}"));
    Ok(match (kind, value) {
        (Int, Value::Null) => Box::new(None::<i64>),
        (Int, Value::Integer(v)) => Box::new(Some(*v)),
        (Text, Value::Null) => Box::new(None::<String>),
        (Text, Value::Text(v)) => Box::new(Some(v.clone())),
        (Blob, Value::Null) => Box::new(None::<Vec<u8>>),
        (Blob, Value::Blob(v)) => Box::new(Some(v.clone())),
        _ => return Err(mismatch()),
    })
}

fn from_pg(row: &tokio_postgres::Row, index: usize, kind: Kind) -> Result<Value, StoreError> {
    let corrupt = |e: tokio_postgres::Error| StoreError::Corrupt(e.to_string());
    Ok(match kind {
        Int => row
            .try_get::<_, Option<i64>>(index)
            .map_err(corrupt)?
            .map_or(Value::Null, Value::Integer),
        Text => row
            .try_get::<_, Option<String>>(index)
            .map_err(corrupt)?
            .map_or(Value::Null, Value::Text),
        Blob => row
            .try_get::<_, Option<Vec<u8>>>(index)
            .map_err(corrupt)?
            .map_or(Value::Null, Value::Blob),
    })
}

/// Rows per table, as a list for the report.
pub type Counts = Vec<(&'static str, u64)>;

async fn pg_counts(client: &impl tokio_postgres::GenericClient) -> Result<Counts, StoreError> {
    let mut counts = Vec::new();
    for table in TABLES {
        let row = client
            .query_one(&format!("SELECT COUNT(*) FROM {}", table.name), &[])
            .await
            .map_err(pg_error)?;
        let n: i64 = row.try_get(0).map_err(pg_error)?;
        counts.push((table.name, u64::try_from(n).unwrap_or(0)));
    }
    Ok(counts)
}

fn sqlite_counts(conn: &Connection) -> Result<Counts, StoreError> {
    let mut counts = Vec::new();
    for table in TABLES {
        let n: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", table.name), [], |r| {
                r.get(0)
            })
            .map_err(sqlite_error)?;
        counts.push((table.name, u64::try_from(n).unwrap_or(0)));
    }
    Ok(counts)
}

/// Move the SQLite state at `source` into the (empty) PostgreSQL database of `target`,
/// in one transaction. Returns the rows copied per table, after checking that the
/// database now holds exactly as many rows as the file.
pub async fn sqlite_to_postgres(
    source: &Path,
    target: &PostgresStore,
    progress: &mut dyn FnMut(&'static str, u64),
) -> Result<Counts, StoreError> {
    if !source.exists() {
        return Err(StoreError::Conflict(format!(
            "{} does not exist: nothing to migrate",
            source.display()
        )));
    }
    let mut sqlite = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(sqlite_error)?;
    // Bring an older file's schema up to this binary's, so every column exists.
    super::sqlite::migrate(&mut sqlite)?;
    drop(sqlite);
    let sqlite = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite_error)?;
    // One read transaction: the copy is a snapshot even if a process still writes.
    sqlite.execute_batch("BEGIN").map_err(sqlite_error)?;
    let expected = sqlite_counts(&sqlite)?;

    let mut client = target.dedicated_client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.batch_execute("LOCK TABLE build_tokens, allow_entries, events, ca_serial, ca_requests, ca_certificates, ca_crl, webhook_deliveries, ca_identity IN EXCLUSIVE MODE")
        .await
        .map_err(pg_error)?;
    let before = pg_counts(&tx).await?;
    let occupied: Vec<String> = before
        .iter()
        .filter(|(name, n)| *n > 0 && !matches!(*name, "ca_serial" | "ca_crl"))
        .map(|(name, n)| format!("{name} ({n} rows)"))
        .collect();
    let fresh: bool = tx
        .query_one(
            "SELECT (SELECT next FROM ca_serial WHERE id = 1) = 1 AND (SELECT number FROM ca_crl WHERE id = 1) = 0",
            &[],
        )
        .await
        .map_err(pg_error)?
        .try_get::<_, Option<bool>>(0)
        .map_err(pg_error)?
        .unwrap_or(false);
    if !occupied.is_empty() || !fresh {
        return Err(StoreError::Conflict(format!(
            "the PostgreSQL database is not empty ({}); migrate into a new database",
            if occupied.is_empty() {
                "its CA already handed out serials or CRL numbers".to_string()
            } else {
                occupied.join(", ")
            }
        )));
    }
    tx.batch_execute("DELETE FROM ca_serial; DELETE FROM ca_crl")
        .await
        .map_err(pg_error)?;
    for table in TABLES {
        let columns = table.column_list();
        let mut last_rowid = i64::MIN;
        let mut copied = 0u64;
        loop {
            let (rows, next_rowid) = read_sqlite_batch(&sqlite, table, &columns, last_rowid)?;
            if rows.is_empty() {
                break;
            }
            last_rowid = next_rowid;
            copied += rows.len() as u64;
            insert_pg_batch(&tx, table, &columns, &rows).await?;
            progress(table.name, copied);
        }
        if let Some(identity) = table.identity {
            tx.batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('{0}', '{1}'), COALESCE((SELECT MAX({1}) FROM {0}), 0) + 1, false)",
                table.name, identity
            ))
            .await
            .map_err(pg_error)?;
        }
    }
    tx.commit().await.map_err(pg_error)?;
    let after = pg_counts(&client).await?;
    if after != expected {
        let differ: Vec<String> = expected
            .iter()
            .zip(&after)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, b)| format!("{}: {} in SQLite, {} in PostgreSQL", a.0, a.1, b.1))
            .collect();
        return Err(StoreError::Corrupt(format!(
            "the row counts differ after the copy: {}",
            differ.join("; ")
        )));
    }
    Ok(after)
}

/// Up to BATCH rows after `after_rowid`, and the last rowid read.
fn read_sqlite_batch(
    sqlite: &Connection,
    table: &Table,
    columns: &str,
    after_rowid: i64,
) -> Result<(Vec<Vec<Value>>, i64), StoreError> {
    let sql = format!(
        "SELECT rowid, {columns} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT {BATCH}",
        table.name
    );
    let mut statement = sqlite.prepare_cached(&sql).map_err(sqlite_error)?;
    let width = table.columns.len();
    let mut last = after_rowid;
    let rows = statement
        .query_map([after_rowid], |r| {
            let rowid: i64 = r.get(0)?;
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(r.get::<_, Value>(i + 1)?);
            }
            Ok((rowid, values))
        })
        .map_err(sqlite_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite_error)?;
    let rows = rows
        .into_iter()
        .map(|(rowid, values)| {
            last = rowid;
            values
        })
        .collect();
    Ok((rows, last))
}

async fn insert_pg_batch(
    tx: &tokio_postgres::Transaction<'_>,
    table: &Table,
    columns: &str,
    rows: &[Vec<Value>],
) -> Result<(), StoreError> {
    let width = table.columns.len();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(rows.len() * width);
    let mut tuples = Vec::with_capacity(rows.len());
    for row in rows {
        let mut placeholders = Vec::with_capacity(width);
        for (value, (column, kind)) in row.iter().zip(table.columns) {
            params.push(to_pg(value, *kind, column)?);
            placeholders.push(format!("${}", params.len()));
        }
        tuples.push(format!("({})", placeholders.join(", ")));
    }
    let sql = format!(
        "INSERT INTO {} ({columns}) VALUES {}",
        table.name,
        tuples.join(", ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    tx.execute(sql.as_str(), &refs).await.map_err(pg_error)?;
    Ok(())
}

/// A consistent SQLite copy of a PostgreSQL state at `path` (a new file).
pub async fn postgres_to_sqlite(source: &PostgresStore, path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        return Err(StoreError::Conflict(format!(
            "{} already exists",
            path.display()
        )));
    }
    let mut sqlite = Connection::open(path).map_err(sqlite_error)?;
    super::sqlite::migrate(&mut sqlite)?;
    let mut client: Client = source.dedicated_client().await?;
    // REPEATABLE READ: every table is read from one snapshot.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg_error)?;
    let expected = pg_counts(&tx).await?;
    sqlite
        .execute_batch("BEGIN; DELETE FROM ca_serial; DELETE FROM ca_crl;")
        .map_err(sqlite_error)?;
    for table in TABLES {
        let columns = table.column_list();
        let order = table.columns.first().map_or("1", |(c, _)| *c);
        tx.batch_execute(&format!(
            "DECLARE copy_{0} NO SCROLL CURSOR FOR SELECT {columns} FROM {0} ORDER BY {order}",
            table.name
        ))
        .await
        .map_err(pg_error)?;
        let placeholders = (1..=table.columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let insert = format!(
            "INSERT INTO {} ({columns}) VALUES ({placeholders})",
            table.name
        );
        loop {
            let rows = tx
                .query(&format!("FETCH {BATCH} FROM copy_{}", table.name), &[])
                .await
                .map_err(pg_error)?;
            if rows.is_empty() {
                break;
            }
            let mut statement = sqlite.prepare_cached(&insert).map_err(sqlite_error)?;
            for row in &rows {
                let values = table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| from_pg(row, i, *kind))
                    .collect::<Result<Vec<_>, _>>()?;
                statement
                    .execute(params_from_iter(values))
                    .map_err(sqlite_error)?;
            }
        }
    }
    tx.commit().await.map_err(pg_error)?;
    sqlite.execute_batch("COMMIT").map_err(sqlite_error)?;
    let copied = sqlite_counts(&sqlite)?;
    if copied != expected {
        return Err(StoreError::Corrupt(format!(
            "the backup {} does not hold every row ({copied:?} of {expected:?})",
            path.display()
        )));
    }
    Ok(())
}
