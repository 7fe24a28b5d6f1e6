//! What both SQL backends write the same way: column lists, the statements whose text is
//! the same in both dialects, the event-filter query, and one mapper per record type over
//! a row of either driver (`SqlRow`).
//!
//! Shared statement text numbers its parameters `$1, $2, …`. PostgreSQL binds them by
//! number; SQLite reads `$1` as a named parameter and numbers the names in order of first
//! appearance, so the two agree as long as every `$n` first appears after `$n-1` (the
//! tests below check it for every shared statement).

use crate::domain::event::{EventFilter, EventRecord};
use crate::domain::token::TokenRecord;
use crate::store::{
    from_i64, parse_alt_names, parse_json, AllowRecord, CaCertificate, CaIdentity, CaRequest,
    Revocation, StatusRow, StoreError,
};
use crate::timefmt;

/// The columns of a certificate request, in `request_from_row`'s order.
macro_rules! request_column_list {
    () => {
        "certname, csr_pem, fingerprint, received_at, reason, message"
    };
}

/// The columns of a certificate, in `cert_from_row`'s order.
macro_rules! cert_column_list {
    () => {
        "serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason"
    };
}

/// `ca_requests (<columns>)`, for inserts (also inside PostgreSQL's event CTEs).
macro_rules! request_columns {
    () => {
        concat!(
            "ca_requests (",
            $crate::store::sql::request_column_list!(),
            ")"
        )
    };
}

/// `ca_certificates (<columns>, status_json)`, for inserts (also inside PostgreSQL's
/// event CTEs).
macro_rules! certificate_columns {
    () => {
        concat!(
            "ca_certificates (",
            $crate::store::sql::cert_column_list!(),
            ", status_json)"
        )
    };
}

pub(crate) use {cert_column_list, certificate_columns, request_column_list, request_columns};

pub(crate) const TOKEN_COLUMNS: &str =
    "id, certname, alt_names, metadata, created_at, expires_at, used_at, revoked_at, created_by";

pub(crate) const EVENT_COLUMNS: &str =
    "id, at, kind, certname, decision, reason, message, csr_fingerprint, token_id, actor, request_id, details";

pub(crate) const REQUEST_COLUMNS: &str = request_column_list!();

pub(crate) const CERT_COLUMNS: &str = cert_column_list!();

/// A new live certificate of `$2` supersedes the one it replaces (at `$1`). Numbered in
/// order of appearance: SQLite binds `$N` by position of first appearance.
pub(crate) const SUPERSEDE_LIVE: &str = "UPDATE ca_certificates SET superseded_at = $1 \
     WHERE certname = $2 AND revoked_at IS NULL AND cleaned_at IS NULL AND superseded_at IS NULL";

/// puppetserver's answer when a name already holds a live certificate.
pub(crate) fn already_signed(certname: &str) -> StoreError {
    StoreError::Conflict(format!(
        "{certname} already has a signed certificate; ignoring certificate request"
    ))
}

/// A certificate with its cached status JSON: `$1`–`$9` in `CERT_COLUMNS` order, `$10`.
pub(crate) const INSERT_CERTIFICATE: &str = concat!(
    "INSERT INTO ",
    certificate_columns!(),
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);

/// A pending request, `$1`–`$6` in `REQUEST_COLUMNS` order; nothing if the certname
/// already has one.
pub(crate) const INSERT_REQUEST: &str = concat!(
    "INSERT INTO ",
    request_columns!(),
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (certname) DO NOTHING"
);

/// A value for one numbered parameter; each backend binds it as its own type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// The events `filter` selects: the query and its arguments for `$1, $2, …` in order.
pub(crate) fn events_query(filter: &EventFilter) -> (String, Vec<Arg>) {
    let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1");
    let mut args: Vec<Arg> = Vec::new();
    let mut add = |condition: &str, value: Arg, args: &mut Vec<Arg>| {
        args.push(value);
        sql.push_str(&format!(" AND {condition} ${}", args.len()));
    };
    if let Some(certname) = &filter.certname {
        add("certname =", Arg::Text(certname.clone()), &mut args);
    }
    if let Some(kind) = &filter.kind {
        add("kind =", Arg::Text(kind.clone()), &mut args);
    }
    if let Some(decision) = filter.decision {
        add("decision =", Arg::Text(decision.as_str().into()), &mut args);
    }
    if let Some(before) = filter.before_id {
        add("id <", Arg::Int(before), &mut args);
    }
    if let Some(after) = filter.after_id {
        add("id >", Arg::Int(after), &mut args);
    }
    if let Some(since) = filter.since {
        add("at >=", Arg::Int(since), &mut args);
    }
    if let Some(until) = filter.until {
        add("at <=", Arg::Int(until), &mut args);
    }
    args.push(Arg::Int(i64::from(filter.limit.clamp(1, 1000))));
    let order = if filter.ascending { "ASC" } else { "DESC" };
    sql.push_str(&format!(" ORDER BY id {order} LIMIT ${}", args.len()));
    (sql, args)
}

/// Typed access by index to a result row of either driver. A value that does not read
/// as the type asked for is `Corrupt`.
pub(crate) trait SqlRow {
    fn int(&self, index: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, index: usize) -> Result<String, StoreError>;
    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError>;
    fn boolean(&self, index: usize) -> Result<bool, StoreError>;
}

pub(crate) fn reason_from(v: Option<i64>) -> Result<Option<u8>, StoreError> {
    v.map(|r| u8::try_from(r).map_err(|_| StoreError::Corrupt(format!("revocation reason {r}"))))
        .transpose()
}

/// A token from `TOKEN_COLUMNS`.
pub(crate) fn token_from_row(r: &impl SqlRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: r.int(0)?,
        certname: r.text(1)?,
        alt_names: parse_alt_names(&r.text(2)?)?,
        metadata: parse_json(r.opt_text(3)?)?,
        created_at: r.int(4)?,
        expires_at: r.int(5)?,
        used_at: r.opt_int(6)?,
        revoked_at: r.opt_int(7)?,
        created_by: r.text(8)?,
    })
}

/// An event from `EVENT_COLUMNS`.
pub(crate) fn event_from_row(r: &impl SqlRow) -> Result<EventRecord, StoreError> {
    let at = r.int(1)?;
    Ok(EventRecord {
        id: r.int(0)?,
        at,
        time: timefmt::rfc3339(at),
        kind: r.text(2)?,
        certname: r.opt_text(3)?,
        decision: r.opt_text(4)?,
        reason: r.opt_text(5)?,
        message: r.opt_text(6)?,
        csr_fingerprint: r.opt_text(7)?,
        token_id: r.opt_int(8)?,
        actor: r.text(9)?,
        request_id: r.opt_text(10)?,
        details: parse_json(r.opt_text(11)?)?,
    })
}

/// A pending request from `REQUEST_COLUMNS`.
pub(crate) fn request_from_row(r: &impl SqlRow) -> Result<CaRequest, StoreError> {
    Ok(CaRequest {
        certname: r.text(0)?,
        csr_pem: r.text(1)?,
        fingerprint: r.text(2)?,
        received_at: r.int(3)?,
        reason: r.opt_text(4)?,
        message: r.opt_text(5)?,
    })
}

/// A certificate from `CERT_COLUMNS`.
pub(crate) fn cert_from_row(r: &impl SqlRow) -> Result<CaCertificate, StoreError> {
    Ok(CaCertificate {
        serial: from_i64(r.int(0)?)?,
        certname: r.text(1)?,
        cert_pem: r.text(2)?,
        fingerprint: r.text(3)?,
        not_before: r.int(4)?,
        not_after: r.int(5)?,
        issued_at: r.int(6)?,
        revoked_at: r.opt_int(7)?,
        revocation_reason: reason_from(r.opt_int(8)?)?,
    })
}

/// An allow-list entry from `pattern, alt_names, created_at, created_by`.
pub(crate) fn allow_from_row(r: &impl SqlRow) -> Result<AllowRecord, StoreError> {
    Ok(AllowRecord {
        pattern: r.text(0)?,
        alt_names: parse_alt_names(&r.text(1)?)?,
        created_at: r.int(2)?,
        created_by: r.text(3)?,
    })
}

/// A listing line from `certname, status_json, revoked_at IS NOT NULL`.
pub(crate) fn status_from_row(r: &impl SqlRow) -> Result<StatusRow, StoreError> {
    Ok(StatusRow {
        certname: r.text(0)?,
        status_json: r.opt_text(1)?,
        revoked: r.boolean(2)?,
    })
}

/// A revocation from `serial, revoked_at, revocation_reason`.
pub(crate) fn revocation_from_row(r: &impl SqlRow) -> Result<Revocation, StoreError> {
    Ok(Revocation {
        serial: from_i64(r.int(0)?)?,
        revoked_at: r.int(1)?,
        reason: reason_from(r.opt_int(2)?)?,
    })
}

/// The CA identity from `fingerprint, subject`.
pub(crate) fn ca_identity_from_row(r: &impl SqlRow) -> Result<CaIdentity, StoreError> {
    Ok(CaIdentity {
        fingerprint: r.text(0)?,
        subject: r.text(1)?,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::{params, Connection};

    use super::*;
    use crate::domain::decision::Verdict;

    /// Whether each `$n` first appears after `$n-1` (and none is skipped).
    fn numbered_in_order(sql: &str) -> bool {
        let mut highest = 0;
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let Ok(n) = digits.parse::<usize>() else {
                continue;
            };
            if n > highest + 1 {
                return false;
            }
            highest = highest.max(n);
        }
        true
    }

    #[test]
    fn sqlite_binds_numbered_parameters_by_position_in_order_of_first_appearance() {
        let conn = Connection::open_in_memory().unwrap();
        // In order, with a repeat: `$n` is the n-th argument.
        let row: (i64, String, i64) = conn
            .query_row("SELECT $1, $2, $1 + $3", params![10, "two", 5], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(row, (10, "two".to_string(), 15));
        // Out of order the number means nothing: names are numbered as they first appear.
        let row: (i64, i64) = conn
            .query_row("SELECT $2, $1", params![1, 2], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(row, (1, 2));
    }

    #[test]
    fn shared_statements_number_their_parameters_in_order() {
        let full = EventFilter {
            certname: Some("a".into()),
            kind: Some("k".into()),
            decision: Some(Verdict::Rejected),
            before_id: Some(9),
            after_id: Some(1),
            since: Some(0),
            until: Some(5),
            ascending: true,
            limit: 5000,
        };
        let (sql, args) = events_query(&full);
        assert!(numbered_in_order(&sql), "{sql}");
        assert_eq!(args.len(), 8);
        assert_eq!(args.last(), Some(&Arg::Int(1000)));
        assert!(sql.ends_with("ORDER BY id ASC LIMIT $8"), "{sql}");
        for sql in [INSERT_CERTIFICATE, INSERT_REQUEST, SUPERSEDE_LIVE] {
            assert!(numbered_in_order(sql), "{sql}");
        }
        assert!(!numbered_in_order("SELECT $2, $1"));
    }
}
