//! Revocation and cleaning, and the CRL: rebuilt and stored at every revocation, and
//! rebuilt by `reconcile_crl` whenever the store holds a revocation the stored CRL does
//! not list (a process that died between the two, another replica, a retried clean).

use std::time::Instant;

use super::Authority;
use crate::app::AppError;
use crate::ca::crl::{build_crl, CrlReason, CrlSpec, RevokedEntry};
use crate::domain::event::{Actor, NewEvent};
use crate::metrics::METRICS;
use crate::time;
use crate::x509;

/// How far a new CRL's thisUpdate is set back from the moment it is made, for clients
/// whose clocks lag.
pub const CRL_BACKDATE_SECONDS: i64 = 60;

impl Authority {
    /// Revoke every certificate of the certname (key compromise, as puppetserver records
    /// it) and publish a new CRL at once.
    pub async fn revoke(&self, name: &str, actor: &Actor) -> Result<u64, AppError> {
        let now = time::now();
        let event = NewEvent::new(now, "certificate_revoked", actor)
            .certname(name)
            .message("certificate revoked");
        let Some(serial) = self
            .store
            .ca_revoke(name, now, CrlReason::KeyCompromise.code(), event)
            .await?
        else {
            return Err(AppError::Conflict(format!(
                "Cannot revoke certificate for host {name} without a signed certificate"
            )));
        };
        METRICS
            .certificates_revoked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.rebuild_crl().await?;
        tracing::info!(certname = name, serial, actor = %actor.name, request_id = actor.request_id.as_deref().unwrap_or("-"), "certificate revoked");
        Ok(serial)
    }

    /// Forget the certname's certificate and request (certificate_status DELETE: no
    /// revocation). `false` when there was nothing.
    pub async fn delete(&self, name: &str, actor: &Actor) -> Result<bool, AppError> {
        let now = time::now();
        let event = NewEvent::new(now, "certificate_cleaned", actor)
            .certname(name)
            .message("certificate and request removed");
        Ok(self.store.ca_clean(name, now, event).await?)
    }

    /// DELETE certificate_request: drop a pending request; `false` when there was none.
    pub async fn delete_request(&self, name: &str, actor: &Actor) -> Result<bool, AppError> {
        let event = NewEvent::new(time::now(), "certificate_request_deleted", actor)
            .certname(name)
            .message("pending certificate request deleted");
        Ok(self.store.ca_delete_request(name, Some(event)).await?)
    }

    /// Revoke every certificate of the name, then delete: `puppetserver ca clean`. A retried
    /// clean publishes the CRL again, so a revocation recorded before a crash is served.
    pub async fn clean(&self, name: &str, actor: &Actor) -> Result<bool, AppError> {
        match self.revoke(name, actor).await {
            Ok(_) | Err(AppError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        self.delete(name, actor).await
    }

    /// Rebuild the CRL when the store holds more revocations than `listed` (the entries of
    /// the CRL in use). Returns whether it rebuilt.
    pub async fn reconcile_crl(&self, listed: usize) -> Result<bool, AppError> {
        let recorded = self.store.ca_revocation_count().await?;
        if recorded <= u64::try_from(listed).unwrap_or(u64::MAX) {
            return Ok(false);
        }
        tracing::warn!(
            recorded,
            listed,
            "the CRL misses recorded revocations: publishing a new one"
        );
        self.rebuild_crl().await?;
        Ok(true)
    }

    /// The newest CRL and its number, built now if there is none yet.
    pub async fn crl_der(&self) -> Result<(u64, Vec<u8>), AppError> {
        if let Some(crl) = self.store.ca_crl().await? {
            return Ok(crl);
        }
        self.rebuild_crl().await?;
        self.store
            .ca_crl()
            .await?
            .ok_or_else(|| AppError::Internal("the CRL just built is not in the store".into()))
    }

    /// The CRL chain, PEM: ours, then the parents' (an imported intermediate CA's).
    pub async fn crl_pem(&self) -> Result<String, AppError> {
        Ok(self.crl_chain_pem(&self.crl_der().await?.1))
    }

    fn crl_chain_pem(&self, ours: &[u8]) -> String {
        let mut chain = x509::pem_encode("X509 CRL", ours);
        for der in &self.parent_crls {
            chain.push_str(&x509::pem_encode("X509 CRL", der));
        }
        chain
    }

    /// The CRL chain as [`Authority::crl_pem`], and when it last changed, for Last-Modified
    /// and If-Modified-Since. Our CRL's thisUpdate is backdated ([`CRL_BACKDATE_SECONDS`])
    /// and whole-second, and agents send the time they saved their copy, truncated to the
    /// second: the change is dated at the end of the second it was made in, so an agent
    /// that fetched the CRL moments before a revocation gets the new one, never a 304.
    pub async fn crl_for_download(&self) -> Result<(String, i64), AppError> {
        let (_, der) = self.crl_der().await?;
        let this_update = crate::ca::crl::crl_this_update(&der)
            .map_err(|e| AppError::Internal(format!("the stored CRL does not parse: {e}")))?;
        Ok((
            self.crl_chain_pem(&der),
            this_update + CRL_BACKDATE_SECONDS + 1,
        ))
    }

    /// Build and store a new CRL from every revocation, with the next CRL number.
    pub async fn rebuild_crl(&self) -> Result<Vec<u8>, AppError> {
        self.refuse_if_fenced()?;
        let number = self.store.ca_next_crl_number().await?;
        let revoked: Vec<RevokedEntry> = self
            .store
            .ca_revocations()
            .await?
            .into_iter()
            .map(|r| RevokedEntry {
                serial: r
                    .serial
                    .to_be_bytes()
                    .iter()
                    .copied()
                    .skip_while(|b| *b == 0)
                    .collect(),
                revoked_at: r.revoked_at,
                reason: r.reason.and_then(CrlReason::from_code),
            })
            .collect();
        let now = time::now();
        let next_update = now + self.settings.crl_ttl_seconds;
        let key = self.key.clone();
        let ca_der = self.signing_cert_der().to_vec();
        let started = Instant::now();
        let der = tokio::task::spawn_blocking(move || {
            let spec = CrlSpec {
                number,
                this_update: now - CRL_BACKDATE_SECONDS,
                next_update,
                revoked: &revoked,
            };
            build_crl(key.as_ref(), &ca_der, &spec)
        })
        .await
        .map_err(|e| AppError::Internal(format!("CRL task failed: {e}")))?
        .map_err(|e| AppError::Internal(format!("CRL signing failed: {e}")))?;
        self.store.ca_store_crl(number, &der, now).await?;
        tracing::info!(
            number,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "CRL published"
        );
        Ok(der)
    }
}
