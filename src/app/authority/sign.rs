//! Issuing: an operator's signing of a pending request, renewal, and `ca generate`, each
//! through the one rule set, and the one function that signs.

use std::time::Instant;

use aws_lc_rs::digest;

use super::{cert_status_json, Authority, SignOptions, DAY};

/// The longest lifetime a certificate gets: beyond it, dates stop being meaningful.
pub const MAX_CERT_TTL_SECONDS: i64 = 100 * 365 * DAY;
use crate::app::AppError;
use crate::ca::issue::{self, cert_info, LeafSpec};
use crate::ca::signer::{KeyAlgorithm, Signer, SoftwareKey};
use crate::domain::certname::Certname;
use crate::domain::csr::{fingerprint, Csr, CsrExtension, GeneralName};
use crate::domain::decision::{Reason, Rejection};
use crate::domain::event::{Actor, NewEvent};
use crate::domain::policy::{
    check_issue, check_request, AltNameRule, AuthExtensionRule, CheckedRequest, SigningRules,
};
use crate::metrics::METRICS;
use crate::store::CaCertificate;
use crate::time;
use crate::x509;

/// What a bulk signing did, in puppetserver 8's shape (`signed`, `no-csr`,
/// `signing-errors`: certnames only).
#[derive(Debug, Default, serde::Serialize)]
pub struct BulkSigned {
    pub signed: Vec<String>,
    #[serde(rename = "no-csr")]
    pub no_csr: Vec<String>,
    #[serde(rename = "signing-errors")]
    pub signing_errors: Vec<String>,
}

impl Authority {
    /// Sign the pending request of `name` (an operator's decision), under the same rule
    /// set as autosigning with what the operator explicitly allows.
    pub async fn sign(
        &self,
        name: &str,
        options: SignOptions,
        actor: &Actor,
    ) -> Result<CaCertificate, AppError> {
        let Some(request) = self.store.ca_request(name).await? else {
            return Err(AppError::NoRequest(format!(
                "Cannot sign certificate for host {name} without a certificate request"
            )));
        };
        let csr = Csr::parse(request.csr_pem.as_bytes())
            .map_err(|e| AppError::Conflict(e.to_string()))?;
        let checked = check_request(&csr, Some(name), &self.operator_rules(options))
            .map_err(operator_refusal)?;
        self.issue(
            &checked,
            options.ttl_seconds,
            self.settings.allow_duplicate_certs,
            actor,
            "signed by an operator",
        )
        .await
    }

    /// Sign the pending requests of `names` one by one, as puppetserver 8's bulk `/sign`
    /// does: who was signed, who had no request, who could not be signed (logged with
    /// why). A store failure stops it.
    pub async fn sign_bulk(&self, names: &[String], actor: &Actor) -> Result<BulkSigned, AppError> {
        let mut out = BulkSigned::default();
        for name in names {
            match self.sign(name, SignOptions::default(), actor).await {
                Ok(_) => out.signed.push(name.clone()),
                Err(AppError::NoRequest(_)) => out.no_csr.push(name.clone()),
                Err(e @ AppError::Store(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(certname = %name, error = %e, "bulk signing: not signed");
                    out.signing_errors.push(name.clone());
                }
            }
        }
        Ok(out)
    }

    /// [`Authority::sign_bulk`] of every pending request (`/sign/all`).
    pub async fn sign_all_pending(&self, actor: &Actor) -> Result<BulkSigned, AppError> {
        let names = self.pending_names().await?;
        self.sign_bulk(&names, actor).await
    }

    /// Issue the certificate, exactly as puppetserver does: serial from the store,
    /// backdated one day, `DNS:<certname>` and the alt names the rules allowed, and the
    /// Puppet extensions the rules allowed. Nothing else of the request reaches it.
    /// The name keeps one live certificate: with `replace_live` this one supersedes it,
    /// otherwise a live one refuses this (puppetserver's "already has a signed
    /// certificate"), decided by the database, so concurrent requests get one.
    pub(super) async fn issue(
        &self,
        checked: &CheckedRequest,
        ttl_seconds: Option<i64>,
        replace_live: bool,
        actor: &Actor,
        how: &str,
    ) -> Result<CaCertificate, AppError> {
        let ttl = ttl_seconds.unwrap_or(self.settings.cert_ttl_seconds);
        if !(1..=MAX_CERT_TTL_SECONDS).contains(&ttl) {
            return Err(AppError::Invalid(format!(
                "cert_ttl must be between 1 and {MAX_CERT_TTL_SECONDS} seconds (100 years)"
            )));
        }
        self.issue_for_key(
            checked.certname.as_str(),
            checked.public_key.clone(),
            checked.subject_alt_names(),
            checked.extensions.clone(),
            ttl,
            replace_live,
            actor,
            how,
        )
        .await
    }

    /// certificate_renewal: a new certificate for the key, names and Puppet extensions of
    /// the certificate presented, which must be the name's current one. As puppetserver
    /// does, the renewed certificate is not revoked: it stops being the name's
    /// certificate (superseded) and stays valid until it expires, unless the name is
    /// revoked, which revokes both.
    pub async fn renew(
        &self,
        name: &str,
        presented_fingerprint: &str,
        actor: &Actor,
    ) -> Result<CaCertificate, AppError> {
        let Some(current) = self.store.ca_certificate(name).await? else {
            return Err(AppError::NotFound(format!(
                "No certificate for {name} to renew"
            )));
        };
        if current.fingerprint != presented_fingerprint {
            return Err(AppError::Conflict(format!(
                "The certificate presented is not the current certificate of {name}; only that one can be renewed"
            )));
        }
        if current.revoked_at.is_some() {
            return Err(AppError::Conflict(format!(
                "The certificate of {name} is revoked; it cannot be renewed"
            )));
        }
        let info = cert_info(current.cert_pem.as_bytes())
            .map_err(|e| AppError::Internal(e.to_string()))?;
        // The holder already is this name with these rights: renewal keeps them.
        let rules = SigningRules {
            alt_names: AltNameRule::Allow,
            auth_extensions: AuthExtensionRule::Allow,
            reserved: self.app.reserved_names(),
            allow_reserved: true,
        };
        let checked = check_issue(
            name,
            &info.subject_alt_names,
            &info.extensions,
            info.spki_der,
            &rules,
        )
        .map_err(operator_refusal)?;
        self.issue(&checked, None, true, actor, "renewed").await
    }

    /// Key and certificate for a service that cannot talk to the CA itself (PuppetDB, a
    /// console): the key is made here and returned PEM, never stored by the CA.
    pub async fn generate(
        &self,
        name: &str,
        alt_names: Vec<GeneralName>,
        algorithm: KeyAlgorithm,
        options: SignOptions,
        actor: &Actor,
    ) -> Result<(String, CaCertificate), AppError> {
        let certname = Certname::parse(name)
            .map_err(|e| AppError::Invalid(format!("certname '{name}': {e}")))?;
        // The operator names the alt names themselves: asking for them is the allowance.
        let rules = SigningRules {
            alt_names: AltNameRule::Allow,
            auth_extensions: AuthExtensionRule::Refuse,
            reserved: self.app.reserved_names(),
            allow_reserved: options.allow_reserved,
        };
        check_issue(name, &alt_names, &[], Vec::new(), &rules)
            .map_err(|r| AppError::Invalid(r.message))?;
        self.refuse_duplicate(&certname).await?;
        let key = tokio::task::spawn_blocking(move || SoftwareKey::generate(algorithm))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let key_pem = key
            .to_pkcs8_pem()
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let checked = check_issue(name, &alt_names, &[], key.spki_der().to_vec(), &rules)
            .map_err(|r| AppError::Invalid(r.message))?;
        let cert = self
            .issue(
                &checked,
                None,
                self.settings.allow_duplicate_certs,
                actor,
                "generated",
            )
            .await?;
        Ok((key_pem, cert))
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_for_key(
        &self,
        certname: &str,
        spki: Vec<u8>,
        names: Vec<GeneralName>,
        extensions: Vec<CsrExtension>,
        ttl: i64,
        replace_live: bool,
        actor: &Actor,
        how: &str,
    ) -> Result<CaCertificate, AppError> {
        self.refuse_if_fenced()?;
        let now = time::now();
        let serial = self.store.next_serial().await?;
        let key = self.key.clone();
        let ca_der = self.signing_cert_der().to_vec();
        let cn = certname.to_string();
        let started = Instant::now();
        let der = tokio::task::spawn_blocking(move || {
            let spec = LeafSpec {
                common_name: &cn,
                subject_spki_der: &spki,
                serial,
                not_before: now - DAY,
                not_after: now + ttl,
                subject_alt_names: &names,
                extra_extensions: &extensions,
            };
            issue::issue_leaf(key.as_ref(), &ca_der, &spec)
        })
        .await
        .map_err(|e| AppError::Internal(format!("signing task failed: {e}")))?
        .map_err(|e| AppError::Internal(format!("signing failed: {e}")))?;
        let cert = CaCertificate {
            serial,
            certname: certname.to_string(),
            cert_pem: x509::pem_encode("CERTIFICATE", &der),
            fingerprint: fingerprint(&digest::SHA256, &der),
            not_before: now - DAY,
            not_after: now + ttl,
            issued_at: now,
            revoked_at: None,
            revocation_reason: None,
        };
        let event = NewEvent::new(now, "certificate_signed", actor)
            .certname(certname)
            .message(format!("certificate serial {serial} issued ({how})"))
            .details(serde_json::json!({ "serial": serial, "fingerprint": cert.fingerprint }));
        METRICS.signing_seconds.observe(started.elapsed());
        METRICS
            .certificates_issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let status_json = cert_status_json(&cert);
        self.store
            .ca_add_certificate(&cert, status_json, replace_live, event)
            .await?;
        tracing::info!(certname = %certname, serial, actor = %actor.name, request_id = actor.request_id.as_deref().unwrap_or("-"), "certificate signed ({how})");
        Ok(cert)
    }
}

/// An operator's signing refused by a rule: what to do about it, where there is a way.
fn operator_refusal(r: Rejection) -> AppError {
    let hint = match r.reason {
        Reason::AltNameNotAllowed => ". To sign it, allow alt names (autosign-proxy ca sign --allow-dns-alt-names, or allow_subject_alt_names in [ca]).",
        Reason::ForbiddenExtension if !r.message.contains("pp_cli_auth") => ". To sign it, allow authorization extensions (autosign-proxy ca sign --allow-authorization-extensions, or allow_authorization_extensions in [ca]).",
        _ => "",
    };
    AppError::Conflict(format!("{}{hint}", r.message))
}
