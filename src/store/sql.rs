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
    CertQuery, CertState, OperatorRecord, OperatorSession, Revocation, StatusRow, StoreError,
};
use crate::time;

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
    if let Some(reason) = &filter.reason {
        add("reason =", Arg::Text(reason.clone()), &mut args);
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

/// The operator's page's statements, the same text in both dialects.
pub(crate) const INSERT_OPERATOR: &str =
    "INSERT INTO operators (name, password_hash, created_at, created_by) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING";
pub(crate) const DELETE_OPERATOR: &str = "DELETE FROM operators WHERE name = $1";
pub(crate) const DELETE_OPERATOR_SESSIONS: &str =
    "DELETE FROM operator_sessions WHERE operator = $1 AND via = 'password'";
pub(crate) const LIST_OPERATORS: &str =
    "SELECT name, created_at, created_by FROM operators ORDER BY name";
pub(crate) const OPERATOR_HASH: &str = "SELECT password_hash FROM operators WHERE name = $1";
pub(crate) const SWEEP_SESSIONS: &str = "DELETE FROM operator_sessions WHERE last_seen < $1";
pub(crate) const INSERT_SESSION: &str =
    "INSERT INTO operator_sessions (id_hash, operator, via, created_at, last_seen) \
     VALUES ($1, $2, $3, $4, $5)";
pub(crate) const FIND_SESSION: &str =
    "SELECT s.operator, s.via, s.created_at, s.last_seen FROM operator_sessions s \
     WHERE s.id_hash = $1 AND s.last_seen >= $2 \
     AND (s.via = 'certificate' OR EXISTS (SELECT 1 FROM operators o WHERE o.name = s.operator))";
pub(crate) const TOUCH_SESSION: &str =
    "UPDATE operator_sessions SET last_seen = $1 WHERE id_hash = $2 AND last_seen < $1";
pub(crate) const DELETE_SESSION: &str = "DELETE FROM operator_sessions WHERE id_hash = $1";
pub(crate) const LOGIN_FAILURES: &str =
    "SELECT failures, last_failure FROM login_failures WHERE key = $1";
/// A failure older than `$3` starts the count again.
pub(crate) const RECORD_LOGIN_FAILURE: &str =
    "INSERT INTO login_failures (key, failures, last_failure) VALUES ($1, 1, $2) \
     ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN login_failures.last_failure < $3 THEN 1 \
     ELSE login_failures.failures + 1 END, last_failure = $2 \
     RETURNING failures";
pub(crate) const CLEAR_LOGIN_FAILURES: &str = "DELETE FROM login_failures WHERE key = $1";

/// Counts and the hourly chart of the overview (index-only on `events (decision, at)` and
/// `events (kind, at)`).
/// A certname's rejections in a window, capped: `(certname, at)` bounds the scan to the
/// window and the LIMIT to the threshold the caller asks about.
pub(crate) const COUNT_REJECTIONS: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM events \
     WHERE certname = $1 AND at >= $2 AND decision = 'rejected' LIMIT $3) AS capped";

pub(crate) const COUNT_DECISIONS: &str =
    "SELECT COUNT(*) FROM events WHERE decision = $1 AND at >= $2";
pub(crate) const COUNT_KIND: &str = "SELECT COUNT(*) FROM events WHERE kind = $1 AND at >= $2";
pub(crate) const DECISIONS_PER_HOUR: &str = "SELECT at / 3600, COUNT(*) FROM events \
     WHERE decision = $1 AND at >= $2 AND at < $3 GROUP BY at / 3600";

/// Certificates of the page, without their PEM, in `CERT_COLUMNS` order.
const CERT_LISTING_COLUMNS: &str =
    "serial, certname, '', fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason";

pub(crate) const EXPIRING: &str = concat!(
    "SELECT serial, certname, '', fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason ",
    "FROM ca_certificates WHERE cleaned_at IS NULL AND revoked_at IS NULL AND not_after >= $1 AND not_after < $2 ",
    "ORDER BY not_after LIMIT $3"
);
pub(crate) const COUNT_EXPIRING: &str = "SELECT COUNT(*) FROM ca_certificates \
     WHERE cleaned_at IS NULL AND revoked_at IS NULL AND not_after >= $1 AND not_after < $2";
pub(crate) const RECENT_CERTNAMES: &str =
    "SELECT certname FROM ca_certificates WHERE cleaned_at IS NULL ORDER BY serial DESC LIMIT $1";

/// `%<suffix>` for LIKE, with LIKE's wildcards in the suffix escaped.
pub(crate) fn like_suffix(suffix: &str) -> String {
    let mut out = String::from("%");
    for c in suffix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The smallest string above every string starting with `prefix`, for an indexed range
/// (None when the prefix does not end in a plain ASCII character).
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let last = prefix.chars().last()?;
    if !last.is_ascii_alphanumeric() && !matches!(last, '.' | '-' | '_') {
        return None;
    }
    let mut upper: String = prefix[..prefix.len() - 1].to_string();
    upper.push(char::from(u8::try_from(u32::from(last) + 1).ok()?));
    Some(upper)
}

/// The certificates `query` selects: the query and its arguments for `$1, $2, …`.
pub(crate) fn certificates_query(query: &CertQuery) -> (String, Vec<Arg>) {
    let mut sql =
        format!("SELECT {CERT_LISTING_COLUMNS} FROM ca_certificates WHERE cleaned_at IS NULL");
    let mut args: Vec<Arg> = Vec::new();
    let add = |condition: &str, value: Arg, (sql, args): (&mut String, &mut Vec<Arg>)| {
        args.push(value);
        sql.push_str(&condition.replace("$?", &format!("${}", args.len())));
    };
    if let Some(prefix) = query.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        add(
            " AND certname >= $?",
            Arg::Text(prefix.to_string()),
            (&mut sql, &mut args),
        );
        if let Some(upper) = prefix_upper_bound(prefix) {
            add(
                " AND certname < $?",
                Arg::Text(upper),
                (&mut sql, &mut args),
            );
        }
        let mut like = like_suffix(prefix);
        like.remove(0);
        like.push('%');
        add(
            " AND certname LIKE $? ESCAPE '\\'",
            Arg::Text(like),
            (&mut sql, &mut args),
        );
    }
    match query.state {
        None => {}
        Some(CertState::Revoked) => sql.push_str(" AND revoked_at IS NOT NULL"),
        Some(CertState::Valid) => add(
            " AND revoked_at IS NULL AND not_after > $?",
            Arg::Int(query.now),
            (&mut sql, &mut args),
        ),
        Some(CertState::Expired) => add(
            " AND revoked_at IS NULL AND not_after <= $?",
            Arg::Int(query.now),
            (&mut sql, &mut args),
        ),
    }
    if let Some(before) = query.expires_before {
        add(
            " AND not_after < $?",
            Arg::Int(before),
            (&mut sql, &mut args),
        );
    }
    if let Some(after) = &query.after {
        add(
            " AND certname > $?",
            Arg::Text(after.clone()),
            (&mut sql, &mut args),
        );
    }
    add(
        " ORDER BY certname LIMIT $?",
        Arg::Int(i64::from(query.limit.clamp(1, 1000))),
        (&mut sql, &mut args),
    );
    (sql, args)
}

/// An operator from `name, created_at, created_by`.
pub(crate) fn operator_from_row(r: &impl SqlRow) -> Result<OperatorRecord, StoreError> {
    Ok(OperatorRecord {
        name: r.text(0)?,
        created_at: r.int(1)?,
        created_by: r.text(2)?,
    })
}

/// A session from `operator, via, created_at, last_seen`.
pub(crate) fn session_from_row(r: &impl SqlRow) -> Result<OperatorSession, StoreError> {
    Ok(OperatorSession {
        operator: r.text(0)?,
        via: r.text(1)?,
        created_at: r.int(2)?,
        last_seen: r.int(3)?,
    })
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
        time: time::rfc3339(at),
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
            reason: None,
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
        let (sql, _) = certificates_query(&CertQuery {
            name_prefix: Some("web".into()),
            state: Some(CertState::Valid),
            expires_before: Some(9),
            now: 5,
            after: Some("web1".into()),
            limit: 50,
        });
        assert!(numbered_in_order(&sql), "{sql}");
        for sql in [
            INSERT_CERTIFICATE,
            INSERT_REQUEST,
            INSERT_OPERATOR,
            INSERT_SESSION,
            FIND_SESSION,
            TOUCH_SESSION,
            RECORD_LOGIN_FAILURE,
            DECISIONS_PER_HOUR,
            EXPIRING,
            RECENT_CERTNAMES,
            SUPERSEDE_LIVE,
        ] {
            assert!(numbered_in_order(sql), "{sql}");
        }
        assert!(!numbered_in_order("SELECT $2, $1"));
    }
}
