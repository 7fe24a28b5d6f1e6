//! PostgreSQL: the CA's state (serials, requests, certificates, revocations, CRL, identity).

use std::collections::HashMap;

use async_trait::async_trait;
use tokio_postgres::{GenericClient, Statement};

use super::events::{insert_event, with_event, EventParams};
use super::{db, execute, get, query, query_opt, Conn, Param, PostgresStore, ONE_LIVE};
use crate::domain::event::NewEvent;
use crate::store::sql::{
    already_signed, ca_identity_from_row, cert_from_row, certificate_columns, certificates_query,
    request_columns, request_from_row, revocation_from_row, status_from_row, CERT_COLUMNS,
    COUNT_EXPIRING, EXPIRING, INSERT_CERTIFICATE, INSERT_REQUEST, RECENT_CERTNAMES,
    REQUEST_COLUMNS, SUPERSEDE_LIVE,
};
use crate::store::{
    from_i64, to_i64, CaCertificate, CaIdentity, CaImport, CaRequest, CaStore, CertQuery,
    Revocation, StatusRow, StoreError,
};

/// The converted columns of a certificate insert, owned so their references live.
struct CertificateParams<'a> {
    cert: &'a CaCertificate,
    serial: i64,
    reason: Option<i64>,
    status_json: Option<&'a str>,
}

impl<'a> CertificateParams<'a> {
    fn new(cert: &'a CaCertificate, status_json: Option<&'a str>) -> Result<Self, StoreError> {
        Ok(CertificateParams {
            cert,
            serial: to_i64(cert.serial)?,
            reason: cert.revocation_reason.map(i64::from),
            status_json,
        })
    }

    fn params(&self) -> [Param<'_>; 10] {
        let c = self.cert;
        [
            &self.serial,
            &c.certname,
            &c.cert_pem,
            &c.fingerprint,
            &c.not_before,
            &c.not_after,
            &c.issued_at,
            &c.revoked_at,
            &self.reason,
            &self.status_json,
        ]
    }
}

async fn insert_certificate(
    statements: &mut HashMap<String, Statement>,
    client: &impl GenericClient,
    c: &CaCertificate,
    status_json: Option<&str>,
) -> Result<(), StoreError> {
    let p = CertificateParams::new(c, status_json)?;
    execute(statements, client, INSERT_CERTIFICATE, &p.params())
        .await
        .map_err(|e| one_live(e, &c.certname))?;
    Ok(())
}

/// puppetserver's message for a second live certificate of a name.
fn one_live(e: StoreError, certname: &str) -> StoreError {
    match e {
        StoreError::Conflict(m) if m == ONE_LIVE => already_signed(certname),
        e => e,
    }
}

fn request_params(r: &CaRequest) -> [Param<'_>; 6] {
    [
        &r.certname,
        &r.csr_pem,
        &r.fingerprint,
        &r.received_at,
        &r.reason,
        &r.message,
    ]
}

async fn insert_request(
    statements: &mut HashMap<String, Statement>,
    client: &impl GenericClient,
    r: &CaRequest,
) -> Result<bool, StoreError> {
    let added = execute(statements, client, INSERT_REQUEST, &request_params(r)).await?;
    Ok(added == 1)
}

#[async_trait]
impl CaStore for PostgresStore {
    async fn next_serial(&self) -> Result<u64, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let row = query_opt(
                statements,
                &*client,
                "UPDATE ca_serial SET next = next + 1 WHERE id = 1 RETURNING next - 1",
                &[],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("the serial counter is missing".into()))?;
            from_i64(get(&row, 0)?)
        })
        .await
    }

    async fn ca_add_request(
        &self,
        request: &CaRequest,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        // One statement: the request, and its event only if the request was new.
        const ADD_REQUEST: &str = with_event!(
            concat!(
                "ins AS (INSERT INTO ",
                request_columns!(),
                " VALUES ($13, $14, $15, $16, $17, $18) ON CONFLICT (certname) DO NOTHING RETURNING certname), "
            ),
            "FROM ins",
            "SELECT COUNT(*) FROM ins"
        );
        let p = EventParams::new(self, &event);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let mut params: Vec<Param<'_>> = p.params(&event).to_vec();
            params.extend_from_slice(&request_params(request));
            let row = query_opt(statements, &*client, ADD_REQUEST, &params)
                .await?
                .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
            Ok(get::<i64>(&row, 0)? == 1)
        })
        .await
    }

    async fn ca_request(&self, certname: &str) -> Result<Option<CaRequest>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let sql = format!("SELECT {REQUEST_COLUMNS} FROM ca_requests WHERE certname = $1");
            query_opt(statements, &*client, &sql, &[&certname])
                .await?
                .map(|row| request_from_row(&row))
                .transpose()
        })
        .await
    }

    async fn ca_requests(&self) -> Result<Vec<CaRequest>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let sql = format!("SELECT {REQUEST_COLUMNS} FROM ca_requests ORDER BY certname");
            query(statements, &*client, &sql, &[])
                .await?
                .iter()
                .map(request_from_row)
                .collect()
        })
        .await
    }

    async fn ca_delete_request(
        &self,
        certname: &str,
        event: Option<NewEvent>,
    ) -> Result<bool, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let deleted = execute(
                statements,
                &tx,
                "DELETE FROM ca_requests WHERE certname = $1",
                &[&certname],
            )
            .await?
                == 1;
            if let (true, Some(event)) = (deleted, &event) {
                insert_event(self, statements, &tx, event).await?;
            }
            tx.commit().await.map_err(db)?;
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
        // One statement (one round trip, one commit): the certificate, the end of its
        // request, and the event with its deliveries.
        const ADD_CERTIFICATE: &str = with_event!(
            concat!(
                "c AS (INSERT INTO ",
                certificate_columns!(),
                " VALUES ($13, $14, $15, $16, $17, $18, $19, $20, $21, $22) RETURNING certname), \
                 r AS (DELETE FROM ca_requests WHERE certname = (SELECT certname FROM c)), "
            ),
            "FROM c",
            "SELECT id FROM ev"
        );
        let p = EventParams::new(self, &event);
        let c = CertificateParams::new(cert, status_json.as_deref())?;
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let mut params: Vec<Param<'_>> = p.params(&event).to_vec();
            params.extend_from_slice(&c.params());
            let added = if replace_live {
                // The older certificate steps aside first, in the same transaction.
                let tx = client.transaction().await.map_err(db)?;
                execute(
                    statements,
                    &tx,
                    SUPERSEDE_LIVE,
                    &[&cert.issued_at, &cert.certname],
                )
                .await?;
                let added = query_opt(statements, &tx, ADD_CERTIFICATE, &params).await;
                if added.is_ok() {
                    tx.commit().await.map_err(db)?;
                }
                added
            } else {
                query_opt(statements, &*client, ADD_CERTIFICATE, &params).await
            };
            added
                .map_err(|e| one_live(e, &cert.certname))?
                .ok_or_else(|| {
                    StoreError::Unavailable("the certificate insert returned nothing".into())
                })
                .map(|_| ())
        })
        .await
    }

    async fn ca_status_rows(&self) -> Result<Vec<StatusRow>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(
                statements,
                &*client,
                "SELECT DISTINCT ON (certname) certname, status_json, revoked_at IS NOT NULL \
                 FROM ca_certificates WHERE cleaned_at IS NULL ORDER BY certname, serial DESC",
                &[],
            )
            .await?
            .iter()
            .map(status_from_row)
            .collect()
        })
        .await
    }

    async fn ca_certificate(&self, certname: &str) -> Result<Option<CaCertificate>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let sql = format!(
                "SELECT {CERT_COLUMNS} FROM ca_certificates WHERE certname = $1 AND cleaned_at IS NULL ORDER BY serial DESC LIMIT 1"
            );
            query_opt(statements, &*client, &sql, &[&certname])
                .await?
                .map(|row| cert_from_row(&row))
                .transpose()
        })
        .await
    }

    async fn ca_certificates(&self) -> Result<Vec<CaCertificate>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let sql = format!(
                "SELECT DISTINCT ON (certname) {CERT_COLUMNS} FROM ca_certificates \
                 WHERE cleaned_at IS NULL ORDER BY certname, serial DESC"
            );
            query(statements, &*client, &sql, &[])
                .await?
                .iter()
                .map(cert_from_row)
                .collect()
        })
        .await
    }

    async fn ca_revoke(
        &self,
        certname: &str,
        now: i64,
        reason: u8,
        event: NewEvent,
    ) -> Result<Option<u64>, StoreError> {
        let reason = i64::from(reason);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            // The row locks make a revocation racing on another replica wait, then see
            // the certificates revoked: one event, one revocation time.
            let rows = query(
                statements,
                &tx,
                "SELECT serial FROM ca_certificates WHERE certname = $1 ORDER BY serial DESC FOR UPDATE",
                &[&certname],
            )
            .await?;
            let Some(row) = rows.first() else {
                return Ok(None);
            };
            let serial: i64 = get(row, 0)?;
            let revoked = execute(
                statements,
                &tx,
                "UPDATE ca_certificates SET revoked_at = $1, revocation_reason = $2 \
                 WHERE certname = $3 AND revoked_at IS NULL",
                &[&now, &reason, &certname],
            )
            .await?;
            if revoked > 0 {
                insert_event(self, statements, &tx, &event).await?;
            }
            tx.commit().await.map_err(db)?;
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
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            let certs = execute(
                statements,
                &tx,
                "UPDATE ca_certificates SET cleaned_at = $1 WHERE certname = $2 AND cleaned_at IS NULL",
                &[&now, &certname],
            )
            .await?;
            let requests = execute(
                statements,
                &tx,
                "DELETE FROM ca_requests WHERE certname = $1",
                &[&certname],
            )
            .await?;
            let any = certs + requests > 0;
            if any {
                insert_event(self, statements, &tx, &event).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(any)
        })
        .await
    }

    async fn ca_import(
        &self,
        import: CaImport,
        allowed_existing: Vec<String>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        // A large inventory takes longer than one ordinary operation.
        let mut pooled = self.timed(self.pooled()).await?;
        let Conn { client, statements } = pooled.conn()?;
        let tx = client.transaction().await.map_err(db)?;
        tx.batch_execute("LOCK TABLE ca_certificates, ca_requests IN EXCLUSIVE MODE")
            .await
            .map_err(db)?;
        let existing: Vec<String> = query(
            statements,
            &tx,
            "SELECT certname FROM ca_certificates UNION SELECT certname FROM ca_requests",
            &[],
        )
        .await?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<_, _>>()?;
        let foreign: Vec<&String> = existing
            .iter()
            .filter(|n| !allowed_existing.contains(n))
            .collect();
        if let Some(first) = foreign.first() {
            return Err(StoreError::Conflict(format!(
                "this CA already holds certificates or requests ({first} and others); import into a new database"
            )));
        }
        tx.batch_execute(
            "DELETE FROM ca_certificates; DELETE FROM ca_requests; DELETE FROM ca_identity",
        )
        .await
        .map_err(db)?;
        // In serial order, each newer certificate of a name superseding the older one
        // (puppetserver keeps renewed and duplicate certificates side by side).
        let mut certificates: Vec<&(CaCertificate, Option<String>)> =
            import.certificates.iter().collect();
        certificates.sort_by_key(|(c, _)| c.serial);
        for (c, status_json) in certificates {
            execute(
                statements,
                &tx,
                SUPERSEDE_LIVE,
                &[&c.issued_at, &c.certname],
            )
            .await?;
            insert_certificate(statements, &tx, c, status_json.as_deref()).await?;
        }
        for r in &import.orphan_revocations {
            let serial = to_i64(r.serial)?;
            let reason = r.reason.map(i64::from);
            execute(
                statements,
                &tx,
                "INSERT INTO ca_certificates (serial, certname, cert_pem, fingerprint, not_before, not_after, issued_at, revoked_at, revocation_reason, cleaned_at) \
                 VALUES ($1, '', '', '', 0, 0, 0, $2, $3, $2)",
                &[&serial, &r.revoked_at, &reason],
            )
            .await?;
        }
        for r in &import.requests {
            insert_request(statements, &tx, r).await?;
        }
        let next = to_i64(import.next_serial)?;
        execute(
            statements,
            &tx,
            "UPDATE ca_serial SET next = GREATEST(next, $1) WHERE id = 1",
            &[&next],
        )
        .await?;
        let number = to_i64(import.crl_number)?;
        execute(
            statements,
            &tx,
            "UPDATE ca_crl SET number = GREATEST(number, $1), crl_der = NULL, crl_number = 0 WHERE id = 1",
            &[&number],
        )
        .await?;
        insert_event(self, statements, &tx, &event).await?;
        tx.commit().await.map_err(db)
    }

    async fn ca_reset(&self, event: NewEvent) -> Result<Vec<String>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let tx = client.transaction().await.map_err(db)?;
            tx.batch_execute("LOCK TABLE ca_certificates, ca_requests IN EXCLUSIVE MODE")
                .await
                .map_err(db)?;
            let names: Vec<String> = query(
                statements,
                &tx,
                "SELECT DISTINCT certname FROM ca_certificates WHERE cleaned_at IS NULL ORDER BY certname",
                &[],
            )
            .await?
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<_, _>>()?;
            tx.batch_execute(
                "DELETE FROM ca_certificates; DELETE FROM ca_requests; DELETE FROM ca_identity; \
                 UPDATE ca_crl SET crl_der = NULL, crl_number = 0 WHERE id = 1;",
            )
            .await
            .map_err(db)?;
            insert_event(self, statements, &tx, &event).await?;
            tx.commit().await.map_err(db)?;
            Ok(names)
        })
        .await
    }

    async fn ca_certificate_page(
        &self,
        query_: &CertQuery,
    ) -> Result<Vec<CaCertificate>, StoreError> {
        let (sql, args) = certificates_query(query_);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(statements, &*client, &sql, &super::params_of(&args))
                .await?
                .iter()
                .map(cert_from_row)
                .collect()
        })
        .await
    }

    async fn ca_expiring(
        &self,
        from: i64,
        until: i64,
        limit: u32,
    ) -> Result<(Vec<CaCertificate>, u64), StoreError> {
        let limit = i64::from(limit);
        let rows = self
            .timed(async {
                let mut pooled = self.pooled().await?;
                let Conn { client, statements } = pooled.conn()?;
                query(statements, &*client, EXPIRING, &[&from, &until, &limit])
                    .await?
                    .iter()
                    .map(cert_from_row)
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let n = self.count(COUNT_EXPIRING, &[&from, &until]).await?;
        Ok((rows, n))
    }

    async fn ca_recent_certnames(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        let limit = i64::from(limit);
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(statements, &*client, RECENT_CERTNAMES, &[&limit])
                .await?
                .iter()
                .map(|row| get(row, 0))
                .collect()
        })
        .await
    }

    async fn ca_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query(
                statements,
                &*client,
                "SELECT serial, revoked_at, revocation_reason FROM ca_certificates WHERE revoked_at IS NOT NULL ORDER BY serial",
                &[],
            )
            .await?
            .iter()
            .map(revocation_from_row)
            .collect()
        })
        .await
    }

    async fn ca_revocation_count(&self) -> Result<u64, StoreError> {
        self.count(
            "SELECT COUNT(*) FROM ca_certificates WHERE revoked_at IS NOT NULL",
            &[],
        )
        .await
    }

    async fn ca_next_crl_number(&self) -> Result<u64, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let row = query_opt(
                statements,
                &*client,
                "UPDATE ca_crl SET number = number + 1 WHERE id = 1 RETURNING number",
                &[],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("the CRL counter is missing".into()))?;
            from_i64(get(&row, 0)?)
        })
        .await
    }

    async fn ca_store_crl(&self, number: u64, der: &[u8], now: i64) -> Result<(), StoreError> {
        let number = to_i64(number)?;
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            execute(
                statements,
                &*client,
                "UPDATE ca_crl SET crl_der = $1, crl_number = $2, updated_at = $3 WHERE id = 1 AND crl_number < $2",
                &[&der, &number, &now],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn ca_crl(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            let row = query_opt(
                statements,
                &*client,
                "SELECT crl_number, crl_der FROM ca_crl WHERE id = 1",
                &[],
            )
            .await?;
            match row {
                Some(row) => match get::<Option<Vec<u8>>>(&row, 1)? {
                    Some(der) => Ok(Some((from_i64(get(&row, 0)?)?, der))),
                    None => Ok(None),
                },
                None => Ok(None),
            }
        })
        .await
    }

    async fn ca_identity(&self) -> Result<Option<CaIdentity>, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            query_opt(
                statements,
                &*client,
                "SELECT fingerprint, subject FROM ca_identity WHERE id = 1",
                &[],
            )
            .await?
            .map(|row| ca_identity_from_row(&row))
            .transpose()
        })
        .await
    }

    async fn claim_ca_identity(
        &self,
        identity: &CaIdentity,
        now: i64,
    ) -> Result<CaIdentity, StoreError> {
        self.timed(async {
            let mut pooled = self.pooled().await?;
            let Conn { client, statements } = pooled.conn()?;
            execute(
                statements,
                &*client,
                "INSERT INTO ca_identity (id, fingerprint, subject, claimed_at) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
                &[&identity.fingerprint, &identity.subject, &now],
            )
            .await?;
            let row = query_opt(
                statements,
                &*client,
                "SELECT fingerprint, subject FROM ca_identity WHERE id = 1",
                &[],
            )
            .await?
            .ok_or_else(|| StoreError::Unavailable("the CA identity vanished".into()))?;
            ca_identity_from_row(&row)
        })
        .await
    }
}
