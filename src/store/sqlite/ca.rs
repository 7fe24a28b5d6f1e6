//! SQLite: the CA's state (serials, requests, certificates, revocations, CRL, identity).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::events::insert_event;
use super::{unavailable, SqliteStore};
use crate::domain::event::NewEvent;
use crate::store::sql::{
    already_signed, ca_identity_from_row, cert_from_row, certificates_query, request_from_row,
    revocation_from_row, status_from_row, Arg, CERT_COLUMNS, COUNT_EXPIRING, EXPIRING,
    INSERT_CERTIFICATE, INSERT_REQUEST, RECENT_CERTNAMES, REQUEST_COLUMNS, SUPERSEDE_LIVE,
};
use crate::store::{
    from_i64, to_i64, CaCertificate, CaIdentity, CaImport, CaRequest, CaStore, CertQuery,
    Revocation, StatusRow, StoreError,
};

fn insert_certificate(
    conn: &Connection,
    c: &CaCertificate,
    status_json: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(INSERT_CERTIFICATE)
        .and_then(|mut stmt| {
            stmt.execute(params![
                to_i64(c.serial)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
                c.certname,
                c.cert_pem,
                c.fingerprint,
                c.not_before,
                c.not_after,
                c.issued_at,
                c.revoked_at,
                c.revocation_reason,
                status_json
            ])
        })
        .map_err(|e| match &e {
            // The one-live-certificate index, not a check before the insert.
            rusqlite::Error::SqliteFailure(f, Some(m))
                if f.code == rusqlite::ErrorCode::ConstraintViolation
                    && m.contains("ca_certificates.certname") =>
            {
                already_signed(&c.certname)
            }
            _ => unavailable(e),
        })?;
    Ok(())
}

/// Mark the name's live certificate superseded by the one about to be inserted.
fn supersede_live(conn: &Connection, certname: &str, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(SUPERSEDE_LIVE)
        .and_then(|mut stmt| stmt.execute(params![now, certname]))
        .map_err(unavailable)?;
    Ok(())
}

/// `false` when the certname already has a pending request.
fn insert_request(conn: &Connection, r: &CaRequest) -> Result<bool, StoreError> {
    let added = conn
        .execute(
            INSERT_REQUEST,
            params![
                r.certname,
                r.csr_pem,
                r.fingerprint,
                r.received_at,
                r.reason,
                r.message
            ],
        )
        .map_err(unavailable)?;
    Ok(added == 1)
}

#[async_trait]
impl CaStore for SqliteStore {
    async fn next_serial(&self) -> Result<u64, StoreError> {
        self.write(|conn| {
            let serial: i64 = conn
                .query_row(
                    "UPDATE ca_serial SET next = next + 1 WHERE id = 1 RETURNING next - 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            u64::try_from(serial)
                .map_err(|_| StoreError::Corrupt(format!("negative serial {serial}")))
        })
        .await
    }

    async fn ca_add_request(
        &self,
        request: &CaRequest,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        let r = request.clone();
        self.write(move |conn| {
            let added = insert_request(conn, &r)?;
            if added {
                insert_event(conn, &event)?;
            }
            Ok(added)
        })
        .await
    }

    async fn ca_request(&self, certname: &str) -> Result<Option<CaRequest>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {REQUEST_COLUMNS} FROM ca_requests WHERE certname = ?1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row([certname], |r| Ok(request_from_row(r)))
                    .optional()
            })
            .map_err(unavailable)?
            .transpose()
        })
    }

    async fn ca_requests(&self) -> Result<Vec<CaRequest>, StoreError> {
        self.read(|conn| {
            let rows: Vec<Result<CaRequest, StoreError>> = conn
                .prepare_cached(&format!(
                    "SELECT {REQUEST_COLUMNS} FROM ca_requests ORDER BY certname"
                ))
                .and_then(|mut stmt| stmt.query_map([], |r| Ok(request_from_row(r)))?.collect())
                .map_err(unavailable)?;
            rows.into_iter().collect()
        })
    }

    async fn ca_delete_request(
        &self,
        certname: &str,
        event: Option<NewEvent>,
    ) -> Result<bool, StoreError> {
        let certname = certname.to_string();
        self.write(move |conn| {
            let deleted = conn
                .execute("DELETE FROM ca_requests WHERE certname = ?1", [&certname])
                .map_err(unavailable)?
                == 1;
            if let (true, Some(event)) = (deleted, event) {
                insert_event(conn, &event)?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn ca_add_certificate(
        &self,
        cert: &CaCertificate,
        status_json: Option<String>,
        replace_live: bool,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        let c = cert.clone();
        self.write(move |conn| {
            if replace_live {
                supersede_live(conn, &c.certname, c.issued_at)?;
            }
            insert_certificate(conn, &c, status_json.as_deref())?;
            conn.execute("DELETE FROM ca_requests WHERE certname = ?1", [&c.certname])
                .map_err(unavailable)?;
            insert_event(conn, &event)?;
            Ok(())
        })
        .await
    }

    async fn ca_certificate(&self, certname: &str) -> Result<Option<CaCertificate>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {CERT_COLUMNS} FROM ca_certificates WHERE certname = ?1 AND cleaned_at IS NULL ORDER BY serial DESC LIMIT 1"
            ))
            .and_then(|mut stmt| stmt.query_row([certname], |r| Ok(cert_from_row(r))).optional())
            .map_err(unavailable)?
            .transpose()
        })
    }

    async fn ca_certificates(&self) -> Result<Vec<CaCertificate>, StoreError> {
        self.read(|conn| {
            let rows: Vec<Result<CaCertificate, StoreError>> = conn
                .prepare_cached(&format!(
                    "SELECT {CERT_COLUMNS} FROM ca_certificates c WHERE cleaned_at IS NULL \
                     AND serial = (SELECT MAX(serial) FROM ca_certificates d WHERE d.certname = c.certname AND d.cleaned_at IS NULL) \
                     ORDER BY certname"
                ))
                .and_then(|mut stmt| stmt.query_map([], |r| Ok(cert_from_row(r)))?.collect())
                .map_err(unavailable)?;
            rows.into_iter().collect()
        })
    }

    async fn ca_revoke(
        &self,
        certname: &str,
        now: i64,
        reason: u8,
        event: NewEvent,
    ) -> Result<Option<u64>, StoreError> {
        let certname = certname.to_string();
        self.write(move |conn| {
            let newest: Option<i64> = conn
                .query_row(
                    "SELECT MAX(serial) FROM ca_certificates WHERE certname = ?1",
                    [&certname],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            let Some(serial) = newest else {
                return Ok(None);
            };
            let revoked = conn
                .execute(
                    "UPDATE ca_certificates SET revoked_at = ?1, revocation_reason = ?2 \
                     WHERE certname = ?3 AND revoked_at IS NULL",
                    params![now, reason, certname],
                )
                .map_err(unavailable)?;
            if revoked > 0 {
                insert_event(conn, &event)?;
            }
            Ok(Some(from_i64(serial)?))
        })
        .await
    }

    async fn ca_clean(
        &self,
        certname: &str,
        now: i64,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        let certname = certname.to_string();
        self.write(move |conn| {
            let certs = conn
                .execute(
                    "UPDATE ca_certificates SET cleaned_at = ?1 WHERE certname = ?2 AND cleaned_at IS NULL",
                    params![now, certname],
                )
                .map_err(unavailable)?;
            let requests = conn
                .execute("DELETE FROM ca_requests WHERE certname = ?1", [&certname])
                .map_err(unavailable)?;
            let any = certs + requests > 0;
            if any {
                insert_event(conn, &event)?;
            }
            Ok(any)
        })
        .await
    }

    async fn ca_status_rows(&self) -> Result<Vec<StatusRow>, StoreError> {
        self.read(|conn| {
            let rows: Vec<Result<StatusRow, StoreError>> = conn
                .prepare_cached(
                    "SELECT certname, status_json, revoked_at IS NOT NULL FROM ca_certificates c WHERE cleaned_at IS NULL \
                     AND serial = (SELECT MAX(serial) FROM ca_certificates d WHERE d.certname = c.certname AND d.cleaned_at IS NULL) \
                     ORDER BY certname",
                )
                .and_then(|mut stmt| stmt.query_map([], |r| Ok(status_from_row(r)))?.collect())
                .map_err(unavailable)?;
            rows.into_iter().collect()
        })
    }

    async fn ca_import(
        &self,
        import: CaImport,
        allowed_existing: Vec<String>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            let existing: Vec<String> = conn
                .prepare("SELECT certname FROM ca_certificates UNION SELECT certname FROM ca_requests")
                .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
                .map_err(unavailable)?;
            let foreign: Vec<&String> = existing.iter().filter(|n| !allowed_existing.contains(n)).collect();
            if !foreign.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "this CA already holds certificates or requests ({} and others); import into a new data directory",
                    foreign.first().map_or("", |n| n.as_str())
                )));
            }
            // The service's own certificates were issued by the CA being replaced.
            conn.execute_batch("DELETE FROM ca_certificates; DELETE FROM ca_requests; DELETE FROM ca_identity;")
                .map_err(unavailable)?;
            // In serial order, each newer certificate of a name superseding the older one
            // (puppetserver keeps renewed and duplicate certificates side by side).
            let mut certificates: Vec<&(CaCertificate, Option<String>)> = import.certificates.iter().collect();
            certificates.sort_by_key(|(c, _)| c.serial);
            for (c, status_json) in certificates {
                supersede_live(conn, &c.certname, c.issued_at)?;
                insert_certificate(conn, c, status_json.as_deref())?;
            }
            for r in &import.orphan_revocations {
                conn.execute(
                    "INSERT INTO ca_certificates (serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason, cleaned_at) \
                     VALUES (?1, '', '', '', 0, 0, 0, ?2, ?3, ?2)",
                    params![to_i64(r.serial)?, r.revoked_at, r.reason],
                )
                .map_err(unavailable)?;
            }
            for r in &import.requests {
                insert_request(conn, r)?;
            }
            conn.execute("UPDATE ca_serial SET next = MAX(next, ?1) WHERE id = 1", [to_i64(import.next_serial)?])
                .map_err(unavailable)?;
            conn.execute(
                "UPDATE ca_crl SET number = MAX(number, ?1), crl_der = NULL, crl_number = 0 WHERE id = 1",
                [to_i64(import.crl_number)?],
            )
            .map_err(unavailable)?;
            insert_event(conn, &event)?;
            Ok(())
        })
        .await
    }

    async fn ca_reset(&self, event: NewEvent) -> Result<Vec<String>, StoreError> {
        self.write(move |conn| {
            let names: Vec<String> = conn
                .prepare("SELECT DISTINCT certname FROM ca_certificates WHERE cleaned_at IS NULL ORDER BY certname")
                .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
                .map_err(unavailable)?;
            conn.execute_batch(
                "DELETE FROM ca_certificates; DELETE FROM ca_requests; DELETE FROM ca_identity; \
                 UPDATE ca_crl SET crl_der = NULL, crl_number = 0 WHERE id = 1;",
            )
            .map_err(unavailable)?;
            insert_event(conn, &event)?;
            Ok(names)
        })
        .await
    }

    async fn ca_certificate_page(
        &self,
        query: &CertQuery,
    ) -> Result<Vec<CaCertificate>, StoreError> {
        let (sql, args) = certificates_query(query);
        let args = args.into_iter().map(|arg| match arg {
            Arg::Text(text) => rusqlite::types::Value::Text(text),
            Arg::Int(n) => rusqlite::types::Value::Integer(n),
        });
        self.read(|conn| {
            let rows: Vec<Result<CaCertificate, StoreError>> = conn
                .prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_map(rusqlite::params_from_iter(args), |r| Ok(cert_from_row(r)))?
                        .collect()
                })
                .map_err(unavailable)?;
            rows.into_iter().collect()
        })
    }

    async fn ca_expiring(
        &self,
        from: i64,
        until: i64,
        limit: u32,
    ) -> Result<(Vec<CaCertificate>, u64), StoreError> {
        self.read(|conn| {
            let rows: Vec<Result<CaCertificate, StoreError>> = conn
                .prepare_cached(EXPIRING)
                .and_then(|mut stmt| {
                    stmt.query_map(params![from, until, limit], |r| Ok(cert_from_row(r)))?
                        .collect()
                })
                .map_err(unavailable)?;
            let n: i64 = conn
                .prepare_cached(COUNT_EXPIRING)
                .and_then(|mut stmt| stmt.query_row(params![from, until], |r| r.get(0)))
                .map_err(unavailable)?;
            Ok((rows.into_iter().collect::<Result<_, _>>()?, from_i64(n)?))
        })
    }

    async fn ca_recent_certnames(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(RECENT_CERTNAMES)
                .and_then(|mut stmt| stmt.query_map([limit], |r| r.get(0))?.collect())
                .map_err(unavailable)
        })
    }

    async fn ca_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.read(|conn| {
            let rows: Vec<Result<Revocation, StoreError>> = conn
                .prepare_cached(
                    "SELECT serial, revoked_at, revocation_reason FROM ca_certificates WHERE revoked_at IS NOT NULL ORDER BY serial",
                )
                .and_then(|mut stmt| stmt.query_map([], |r| Ok(revocation_from_row(r)))?.collect())
                .map_err(unavailable)?;
            rows.into_iter().collect()
        })
    }

    async fn ca_revocation_count(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM ca_certificates WHERE revoked_at IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            from_i64(n)
        })
    }

    async fn ca_next_crl_number(&self) -> Result<u64, StoreError> {
        self.write(|conn| {
            let n: i64 = conn
                .query_row(
                    "UPDATE ca_crl SET number = number + 1 WHERE id = 1 RETURNING number",
                    [],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            from_i64(n)
        })
        .await
    }

    async fn ca_store_crl(&self, number: u64, der: &[u8], now: i64) -> Result<(), StoreError> {
        let der = der.to_vec();
        self.write(move |conn| {
            conn.execute(
                "UPDATE ca_crl SET crl_der = ?1, crl_number = ?2, updated_at = ?3 WHERE id = 1 AND crl_number < ?2",
                params![der, to_i64(number)?, now],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn ca_crl(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.read(|conn| {
            let row: Option<(i64, Option<Vec<u8>>)> = conn
                .query_row(
                    "SELECT crl_number, crl_der FROM ca_crl WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            match row {
                Some((n, Some(der))) => Ok(Some((from_i64(n)?, der))),
                _ => Ok(None),
            }
        })
    }

    async fn ca_identity(&self) -> Result<Option<CaIdentity>, StoreError> {
        self.read(read_ca_identity)
    }

    async fn claim_ca_identity(
        &self,
        identity: &CaIdentity,
        now: i64,
    ) -> Result<CaIdentity, StoreError> {
        let identity = identity.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO ca_identity (id, fingerprint, subject, claimed_at) VALUES (1, ?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
                params![identity.fingerprint, identity.subject, now],
            )
            .map_err(unavailable)?;
            read_ca_identity(conn)?
                .ok_or_else(|| StoreError::Unavailable("the CA identity vanished".into()))
        })
        .await
    }
}

fn read_ca_identity(conn: &Connection) -> Result<Option<CaIdentity>, StoreError> {
    conn.query_row(
        "SELECT fingerprint, subject FROM ca_identity WHERE id = 1",
        [],
        |r| Ok(ca_identity_from_row(r)),
    )
    .optional()
    .map_err(unavailable)?
    .transpose()
}
