//! The built-in Puppet CA's use cases: take certificate requests (deciding with the same
//! pipeline as /validate), sign, revoke, clean, report statuses, keep the CRL current.
//! Signing runs on the blocking pool so RSA never stalls the async workers.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use serde::Serialize;

use crate::app::{App, AppError};
use crate::ca::crl::{build_crl, CrlReason, CrlSpec, RevokedEntry};
use crate::ca::issue::{self, cert_info, LeafSpec};
use crate::ca::signer::{KeyAlgorithm, Signer, SoftwareKey};
use crate::domain::certname::{Certname, CertnameError};
use crate::domain::csr::{fingerprint, Csr, CsrError, CsrExtension, GeneralName};
use crate::domain::decision::Rejection;
use crate::domain::event::{Actor, NewEvent};
use crate::domain::policy::{
    check_issue, check_request, AltNameRule, AuthExtensionRule, CheckedRequest, CsrInput,
    SigningRules,
};
use crate::oid::{in_arc, PP_AUTH_ARC};
use crate::metrics::METRICS;
use crate::pem;
use crate::store::{CaCertificate, CaRequest, Store, StoreError};
use crate::timefmt;

const DAY: i64 = 86_400;

/// How a CSR that arrives over the CA API gets signed without an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutosignMode {
    /// The decision pipeline: build tokens and the allow-list.
    Policy,
    /// Never: every request waits for an operator.
    Never,
    /// Always (labs), still refusing alt names and authorization extensions.
    Always,
    /// An external executable under puppetserver's contract, with a timeout.
    Exec(PathBuf),
}

impl std::str::FromStr for AutosignMode {
    type Err = String;
    fn from_str(s: &str) -> Result<AutosignMode, String> {
        match s {
            "policy" => Ok(AutosignMode::Policy),
            "false" => Ok(AutosignMode::Never),
            "true" => Ok(AutosignMode::Always),
            _ => match s.strip_prefix("exec:") {
                Some(path) if path.starts_with('/') => Ok(AutosignMode::Exec(PathBuf::from(path))),
                _ => Err(format!(
                    "autosign '{s}' is not policy, true, false or exec:/absolute/path"
                )),
            },
        }
    }
}

/// Settings of the CA, from `[ca]` in the config.
#[derive(Debug, Clone)]
pub struct CaSettings {
    pub autosign: AutosignMode,
    pub cert_ttl_seconds: i64,
    pub crl_ttl_seconds: i64,
    pub allow_duplicate_certs: bool,
    pub allow_subject_alt_names: bool,
    pub allow_authorization_extensions: bool,
    pub exec_timeout: Duration,
}

/// Why a CA operation was refused; `http/errors.rs` maps these to puppetserver's codes.
#[derive(Debug)]
pub enum CaFailure {
    /// 400: the request is invalid (puppetserver's wording where it has one).
    Invalid(String),
    /// 404
    NotFound(String),
    /// 409: the operation does not fit the certname's state.
    Conflict(String),
    Store(StoreError),
    Internal(String),
}

impl fmt::Display for CaFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaFailure::Invalid(m)
            | CaFailure::NotFound(m)
            | CaFailure::Conflict(m)
            | CaFailure::Internal(m) => f.write_str(m),
            CaFailure::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CaFailure {}

impl From<StoreError> for CaFailure {
    fn from(e: StoreError) -> CaFailure {
        CaFailure::Store(e)
    }
}

impl From<AppError> for CaFailure {
    fn from(e: AppError) -> CaFailure {
        match e {
            AppError::Store(e) => CaFailure::Store(e),
            AppError::Invalid(m) => CaFailure::Invalid(m),
            AppError::NotFound(m) => CaFailure::NotFound(m),
            AppError::Internal(m) => CaFailure::Internal(m),
        }
    }
}

/// The status object of puppetserver's certificate_status API, field for field.
#[derive(Debug, Clone, Serialize)]
pub struct CertStatus {
    pub name: String,
    pub state: &'static str,
    pub fingerprint: String,
    pub fingerprints: Fingerprints,
    pub dns_alt_names: Vec<String>,
    pub subject_alt_names: Vec<String>,
    pub authorization_extensions: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Ours: why autosigning left a request pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fingerprints {
    #[serde(rename = "SHA1")]
    pub sha1: String,
    #[serde(rename = "SHA256")]
    pub sha256: String,
    #[serde(rename = "SHA512")]
    pub sha512: String,
    pub default: String,
}

fn fingerprints(der: &[u8]) -> Fingerprints {
    let sha256 = fingerprint(&digest::SHA256, der);
    Fingerprints {
        sha1: fingerprint(&digest::SHA1_FOR_LEGACY_USE_ONLY, der),
        sha512: fingerprint(&digest::SHA512, der),
        default: sha256.clone(),
        sha256,
    }
}

/// How a manual signing may go beyond what autosigning allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignOptions {
    pub allow_alt_names: bool,
    pub allow_authorization_extensions: bool,
    /// Sign a reserved name (the service's own, a trusted or admin host).
    pub allow_reserved: bool,
    pub ttl_seconds: Option<i64>,
}

pub struct Authority {
    store: Arc<dyn Store>,
    app: Arc<App>,
    key: Arc<dyn Signer>,
    /// DER, the signing certificate first.
    bundle: Vec<Vec<u8>>,
    bundle_pem: String,
    /// CRLs of the CAs above ours, served after our own (OpenSSL's chain check wants one
    /// for every CA in the bundle).
    parent_crls: Vec<Vec<u8>>,
    pub settings: CaSettings,
    /// Set while the database belongs to another CA (imported or regenerated by another
    /// replica): this process then signs nothing with its key.
    fenced: std::sync::atomic::AtomicBool,
}

impl Authority {
    pub fn new(
        app: Arc<App>,
        key: Arc<dyn Signer>,
        bundle: Vec<Vec<u8>>,
        parent_crls: Vec<Vec<u8>>,
        settings: CaSettings,
    ) -> Authority {
        let bundle_pem = bundle
            .iter()
            .map(|d| pem::encode("CERTIFICATE", d))
            .collect();
        Authority {
            store: app.store.clone(),
            app,
            key,
            bundle,
            bundle_pem,
            parent_crls,
            settings,
            fenced: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Stop (or resume) signing: see `fenced`.
    pub fn set_fenced(&self, fenced: bool) {
        let was = self
            .fenced
            .swap(fenced, std::sync::atomic::Ordering::SeqCst);
        if fenced && !was {
            tracing::error!("the database now belongs to another CA: this replica signs nothing until it is restarted with that CA's files");
        } else if was && !fenced {
            tracing::info!("the database belongs to this replica's CA again: signing resumes");
        }
    }

    fn refuse_if_fenced(&self) -> Result<(), CaFailure> {
        if self.fenced.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CaFailure::Store(crate::store::StoreError::Unavailable(
                "this replica's CA is no longer the CA of the database (it was imported or regenerated on another replica); restart this replica with the current CA files".into(),
            )));
        }
        Ok(())
    }

    /// The CA bundle, PEM, signing certificate first.
    pub fn bundle_pem(&self) -> &str {
        &self.bundle_pem
    }

    pub fn signing_cert_der(&self) -> &[u8] {
        self.bundle.first().map(Vec::as_slice).unwrap_or(&[])
    }

    /// GET certificate/{name}: `ca` is the bundle.
    pub async fn certificate_pem(&self, name: &str) -> Result<Option<String>, CaFailure> {
        if name == "ca" {
            return Ok(Some(self.bundle_pem.clone()));
        }
        Ok(self.store.ca_certificate(name).await?.map(|c| c.cert_pem))
    }

    pub async fn request_pem(&self, name: &str) -> Result<Option<String>, CaFailure> {
        Ok(self.store.ca_request(name).await?.map(|r| r.csr_pem))
    }

    /// PUT certificate_request/{name}: validate as puppetserver does, refuse duplicates,
    /// then let the autosign mode decide; what it does not sign stays pending with why.
    /// The CSR is parsed once; every mode runs the one rule set of `domain::policy`.
    pub async fn submit(&self, name: &str, body: &[u8], actor: &Actor) -> Result<(), CaFailure> {
        let certname = Certname::parse(name).map_err(|e| match e {
            CertnameError::UpperCase => {
                CaFailure::Invalid("Certificate names must be lower case.".into())
            }
            other => CaFailure::Invalid(format!("Invalid certname '{name}': {other}")),
        })?;
        let csr = Csr::parse(body).map_err(|e| CaFailure::Invalid(e.to_string()))?;
        let cns = csr.subject_common_names();
        let cn = cns.first().map(String::as_str).unwrap_or("");
        if cn != certname.as_str() {
            return Err(CaFailure::Invalid(format!(
                "Instance name \"{}\" does not match requested key \"{certname}\"",
                cn.escape_default()
            )));
        }
        csr.verify_signature().map_err(|e| match e {
            CsrError::UnsupportedAlgorithm(_) => CaFailure::Invalid(e.to_string()),
            _ => CaFailure::Invalid(
                "CSR contains a public key that does not correspond to the signing key".into(),
            ),
        })?;
        self.refuse_duplicate(&certname).await?;

        let now = timefmt::now();
        let verdict: Result<CheckedRequest, (String, String)> = match &self.settings.autosign {
            AutosignMode::Never => Err((String::new(), String::new())),
            AutosignMode::Policy => {
                let decided = self
                    .app
                    .decide(CsrInput::Parsed(&csr), Some(certname.as_str()), actor)
                    .await?;
                decided.checked.ok_or_else(|| {
                    (
                        decided.decision.reason.code().to_string(),
                        decided.decision.message,
                    )
                })
            }
            AutosignMode::Always => check_request(&csr, Some(name), &self.autosign_rules())
                .map_err(|r| ("not_autosignable".to_string(), r.message)),
            AutosignMode::Exec(path) => {
                run_policy_executable(path, certname.as_str(), body, self.settings.exec_timeout)
                    .await
                    .and_then(|()| {
                        check_request(&csr, Some(name), &self.autosign_rules())
                            .map_err(|r| r.message)
                    })
                    .map_err(|m| ("policy_executable".to_string(), m))
            }
        };
        let (reason, message) = match verdict {
            Ok(checked) => {
                self.issue(&checked, None, actor, "autosigned").await?;
                return Ok(());
            }
            Err((reason, _)) if reason.is_empty() => (None, None),
            Err((reason, message)) => (Some(reason), Some(message)),
        };
        let request = CaRequest {
            certname: certname.to_string(),
            csr_pem: csr.to_pem(),
            fingerprint: csr.fingerprint_sha256(),
            received_at: now,
            reason,
            message,
        };
        let event = NewEvent::new(now, "certificate_requested", actor)
            .certname(certname.as_str())
            .message("certificate request stored, pending");
        if !self.store.ca_add_request(&request, event).await? {
            return Err(CaFailure::Invalid(format!(
                "{certname} already has a requested certificate; ignoring certificate request"
            )));
        }
        Ok(())
    }

    /// What `autosign = true` and `exec:` may sign, as puppetserver allows it: alt names
    /// only under `allow_subject_alt_names`, no authorization extensions, no reserved name.
    fn autosign_rules(&self) -> SigningRules<'_> {
        SigningRules {
            alt_names: if self.settings.allow_subject_alt_names {
                AltNameRule::Allow
            } else {
                AltNameRule::Refuse
            },
            auth_extensions: AuthExtensionRule::Refuse,
            reserved: self.app.reserved_names(),
            allow_reserved: false,
        }
    }

    /// What an operator's signing may include: what the options and `[ca]` allow.
    fn operator_rules(&self, options: SignOptions) -> SigningRules<'_> {
        SigningRules {
            alt_names: if options.allow_alt_names || self.settings.allow_subject_alt_names {
                AltNameRule::Allow
            } else {
                AltNameRule::Refuse
            },
            auth_extensions: if options.allow_authorization_extensions
                || self.settings.allow_authorization_extensions
            {
                AuthExtensionRule::Allow
            } else {
                AuthExtensionRule::Refuse
            },
            reserved: self.app.reserved_names(),
            allow_reserved: options.allow_reserved,
        }
    }

    async fn refuse_duplicate(&self, certname: &Certname) -> Result<(), CaFailure> {
        if self.settings.allow_duplicate_certs {
            self.store
                .ca_delete_request(certname.as_str(), None)
                .await?;
            return Ok(());
        }
        let state = if let Some(cert) = self.store.ca_certificate(certname.as_str()).await? {
            Some(if cert.revoked_at.is_some() {
                "revoked"
            } else {
                "signed"
            })
        } else if self.store.ca_request(certname.as_str()).await?.is_some() {
            Some("requested")
        } else {
            None
        };
        match state {
            Some(state) => Err(CaFailure::Invalid(format!(
                "{certname} already has a {state} certificate; ignoring certificate request"
            ))),
            None => Ok(()),
        }
    }

    /// Sign the pending request of `name` (an operator's decision), under the same rule
    /// set as autosigning with what the operator explicitly allows.
    pub async fn sign(
        &self,
        name: &str,
        options: SignOptions,
        actor: &Actor,
    ) -> Result<CaCertificate, CaFailure> {
        let Some(request) = self.store.ca_request(name).await? else {
            return Err(CaFailure::Conflict(format!(
                "Cannot sign certificate for host {name} without a certificate request"
            )));
        };
        let csr = Csr::parse(request.csr_pem.as_bytes())
            .map_err(|e| CaFailure::Conflict(e.to_string()))?;
        let checked = check_request(&csr, Some(name), &self.operator_rules(options))
            .map_err(operator_refusal)?;
        self.issue(&checked, options.ttl_seconds, actor, "signed by an operator")
            .await
    }

    /// Issue the certificate, exactly as puppetserver does: serial from the store,
    /// backdated one day, `DNS:<certname>` and the alt names the rules allowed, and the
    /// Puppet extensions the rules allowed. Nothing else of the request reaches it.
    async fn issue(
        &self,
        checked: &CheckedRequest,
        ttl_seconds: Option<i64>,
        actor: &Actor,
        how: &str,
    ) -> Result<CaCertificate, CaFailure> {
        let ttl = ttl_seconds.unwrap_or(self.settings.cert_ttl_seconds);
        self.issue_for_key(
            checked.certname.as_str(),
            checked.public_key.clone(),
            checked.subject_alt_names(),
            checked.extensions.clone(),
            ttl,
            actor,
            how,
        )
        .await
    }

    /// A new certificate for the key, names and Puppet extensions of the certname's
    /// current one (certificate_renewal).
    pub async fn renew(&self, name: &str, actor: &Actor) -> Result<CaCertificate, CaFailure> {
        let Some(current) = self.store.ca_certificate(name).await? else {
            return Err(CaFailure::NotFound(format!(
                "No certificate for {name} to renew"
            )));
        };
        if current.revoked_at.is_some() {
            return Err(CaFailure::Conflict(format!(
                "The certificate of {name} is revoked; it cannot be renewed"
            )));
        }
        let info = cert_info(current.cert_pem.as_bytes())
            .map_err(|e| CaFailure::Internal(e.to_string()))?;
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
        self.issue(&checked, None, actor, "renewed").await
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
    ) -> Result<(String, CaCertificate), CaFailure> {
        let certname = Certname::parse(name)
            .map_err(|e| CaFailure::Invalid(format!("certname '{name}': {e}")))?;
        // The operator names the alt names themselves: asking for them is the allowance.
        let rules = SigningRules {
            alt_names: AltNameRule::Allow,
            auth_extensions: AuthExtensionRule::Refuse,
            reserved: self.app.reserved_names(),
            allow_reserved: options.allow_reserved,
        };
        check_issue(name, &alt_names, &[], Vec::new(), &rules).map_err(|r| CaFailure::Invalid(r.message))?;
        self.refuse_duplicate(&certname).await?;
        let key = tokio::task::spawn_blocking(move || SoftwareKey::generate(algorithm))
            .await
            .map_err(|e| CaFailure::Internal(e.to_string()))?
            .map_err(|e| CaFailure::Internal(e.to_string()))?;
        let key_pem = key
            .to_pkcs8_pem()
            .map_err(|e| CaFailure::Internal(e.to_string()))?;
        let checked = check_issue(name, &alt_names, &[], key.spki_der().to_vec(), &rules)
            .map_err(|r| CaFailure::Invalid(r.message))?;
        let cert = self.issue(&checked, None, actor, "generated").await?;
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
        actor: &Actor,
        how: &str,
    ) -> Result<CaCertificate, CaFailure> {
        self.refuse_if_fenced()?;
        let now = timefmt::now();
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
        .map_err(|e| CaFailure::Internal(format!("signing task failed: {e}")))?
        .map_err(|e| CaFailure::Internal(format!("signing failed: {e}")))?;
        let cert = CaCertificate {
            serial,
            certname: certname.to_string(),
            cert_pem: pem::encode("CERTIFICATE", &der),
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
            .ca_add_certificate(&cert, status_json, event)
            .await?;
        tracing::info!(certname = %certname, serial, actor = %actor.name, request_id = actor.request_id.as_deref().unwrap_or("-"), "certificate signed ({how})");
        Ok(cert)
    }

    /// Revoke the certname's certificate (key compromise, as puppetserver records it)
    /// and publish a new CRL at once.
    pub async fn revoke(&self, name: &str, actor: &Actor) -> Result<u64, CaFailure> {
        let now = timefmt::now();
        let event = NewEvent::new(now, "certificate_revoked", actor)
            .certname(name)
            .message("certificate revoked");
        let Some(serial) = self
            .store
            .ca_revoke(name, now, CrlReason::KeyCompromise.code(), event)
            .await?
        else {
            return Err(CaFailure::Conflict(format!(
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
    pub async fn delete(&self, name: &str, actor: &Actor) -> Result<bool, CaFailure> {
        let now = timefmt::now();
        let event = NewEvent::new(now, "certificate_cleaned", actor)
            .certname(name)
            .message("certificate and request removed");
        Ok(self.store.ca_clean(name, now, event).await?)
    }

    /// Revoke (if signed and not yet revoked), then delete: `puppetserver ca clean`.
    pub async fn clean(&self, name: &str, actor: &Actor) -> Result<bool, CaFailure> {
        if let Some(cert) = self.store.ca_certificate(name).await? {
            if cert.revoked_at.is_none() {
                self.revoke(name, actor).await?;
            }
        }
        self.delete(name, actor).await
    }

    pub async fn status(&self, name: &str) -> Result<Option<CertStatus>, CaFailure> {
        if let Some(cert) = self.store.ca_certificate(name).await? {
            return cert_status(&cert).map(Some);
        }
        match self.store.ca_request(name).await? {
            Some(request) => request_status(&request).map(Some),
            None => Ok(None),
        }
    }

    /// certificate_statuses as JSON text: requests, then certificates from the status
    /// cache (state patched in), so 100,000 certificates are listed without re-parsing.
    pub async fn statuses_json(&self, state: Option<&str>) -> Result<String, CaFailure> {
        let mut parts: Vec<String> = Vec::new();
        if state.is_none() || state == Some("requested") {
            for request in self.store.ca_requests().await? {
                parts.push(
                    serde_json::to_string(&request_status(&request)?)
                        .map_err(|e| CaFailure::Internal(e.to_string()))?,
                );
            }
        }
        if state != Some("requested") {
            for row in self.store.ca_status_rows().await? {
                let row_state = if row.revoked { "revoked" } else { "signed" };
                if state.is_some_and(|s| s != row_state) {
                    continue;
                }
                let json = match row.status_json {
                    Some(json) => json,
                    None => match self.status(&row.certname).await? {
                        Some(st) => serde_json::to_string(&st)
                            .map_err(|e| CaFailure::Internal(e.to_string()))?,
                        None => continue,
                    },
                };
                // Certnames hold no quotes, so the first state field is the status's own.
                parts.push(if row.revoked {
                    json.replacen(",\"state\":\"signed\",", ",\"state\":\"revoked\",", 1)
                } else {
                    json
                });
            }
        }
        let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
        out.push('[');
        out.push_str(&parts.join(","));
        out.push(']');
        Ok(out)
    }

    /// Every request and current certificate, optionally of one state.
    pub async fn statuses(&self, state: Option<&str>) -> Result<Vec<CertStatus>, CaFailure> {
        let mut out = Vec::new();
        if state.is_none() || state == Some("requested") {
            for request in self.store.ca_requests().await? {
                out.push(request_status(&request)?);
            }
        }
        if state != Some("requested") {
            for cert in self.store.ca_certificates().await? {
                let status = cert_status(&cert)?;
                if state.is_none() || state == Some(status.state) {
                    out.push(status);
                }
            }
        }
        Ok(out)
    }

    /// The newest CRL and its number, built now if there is none yet.
    pub async fn crl_der(&self) -> Result<(u64, Vec<u8>), CaFailure> {
        if let Some(crl) = self.store.ca_crl().await? {
            return Ok(crl);
        }
        self.rebuild_crl().await?;
        self.store
            .ca_crl()
            .await?
            .ok_or_else(|| CaFailure::Internal("the CRL just built is not in the store".into()))
    }

    /// The CRL chain, PEM: ours, then the parents' (an imported intermediate CA's).
    pub async fn crl_pem(&self) -> Result<String, CaFailure> {
        let mut chain = pem::encode("X509 CRL", &self.crl_der().await?.1);
        for der in &self.parent_crls {
            chain.push_str(&pem::encode("X509 CRL", der));
        }
        Ok(chain)
    }

    /// Build and store a new CRL from every revocation, with the next CRL number.
    pub async fn rebuild_crl(&self) -> Result<Vec<u8>, CaFailure> {
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
        let now = timefmt::now();
        let next_update = now + self.settings.crl_ttl_seconds;
        let key = self.key.clone();
        let ca_der = self.signing_cert_der().to_vec();
        let started = Instant::now();
        let der = tokio::task::spawn_blocking(move || {
            let spec = CrlSpec {
                number,
                this_update: now - 60,
                next_update,
                revoked: &revoked,
            };
            build_crl(key.as_ref(), &ca_der, &spec)
        })
        .await
        .map_err(|e| CaFailure::Internal(format!("CRL task failed: {e}")))?
        .map_err(|e| CaFailure::Internal(format!("CRL signing failed: {e}")))?;
        self.store.ca_store_crl(number, &der, now).await?;
        tracing::info!(
            number,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "CRL published"
        );
        Ok(der)
    }

    /// `{"ca-certs": {CN: notAfter}, "crls": {issuer CN: nextUpdate}}`
    pub async fn expirations(&self) -> Result<serde_json::Value, CaFailure> {
        let mut certs = serde_json::Map::new();
        for der in &self.bundle {
            let info = cert_info(der).map_err(|e| CaFailure::Internal(e.to_string()))?;
            certs.insert(
                info.common_name.unwrap_or_default(),
                timefmt::puppet(info.not_after).into(),
            );
        }
        let mut crls = serde_json::Map::new();
        if let Some((_, der)) = self.store.ca_crl().await? {
            let info =
                crate::ca::crl::crl_info(&der).map_err(|e| CaFailure::Internal(e.to_string()))?;
            if let Some(next) = info.next_update {
                crls.insert(
                    info.issuer_common_name.unwrap_or_default(),
                    timefmt::puppet(next).into(),
                );
            }
        }
        Ok(serde_json::json!({ "ca-certs": certs, "crls": crls }))
    }
}

/// An operator's signing refused by a rule: what to do about it, where there is a way.
fn operator_refusal(r: Rejection) -> CaFailure {
    use crate::domain::decision::Reason;
    let hint = match r.reason {
        Reason::AltNameNotAllowed => ". To sign it, allow alt names (autosign-proxy ca sign --allow-dns-alt-names, or allow_subject_alt_names in [ca]).",
        Reason::ForbiddenExtension if !r.message.contains("pp_cli_auth") => ". To sign it, allow authorization extensions (autosign-proxy ca sign --allow-authorization-extensions, or allow_authorization_extensions in [ca]).",
        _ => "",
    };
    CaFailure::Conflict(format!("{}{hint}", r.message))
}

fn names_of(sans: &[GeneralName]) -> (Vec<String>, Vec<String>) {
    let sorted = |ip: bool| {
        let mut names: Vec<String> = sans
            .iter()
            .filter(|n| {
                matches!(n, GeneralName::Ip(_)) == ip
                    && matches!(n, GeneralName::Ip(_) | GeneralName::Dns(_))
            })
            .map(ToString::to_string)
            .collect();
        names.sort();
        names
    };
    let dns = sorted(false);
    let mut all = sorted(true);
    all.extend(dns.iter().cloned());
    (dns, all)
}

fn authorization_extensions(exts: &[CsrExtension]) -> serde_json::Map<String, serde_json::Value> {
    exts.iter()
        .filter(|e| in_arc(&e.oid, PP_AUTH_ARC))
        .map(|e| {
            let name = crate::oid::auth_extension_name(&e.oid).to_string();
            (name, e.string_value().unwrap_or_default().into())
        })
        .collect()
}

/// The cached status object of a certificate (state "signed"), as stored beside it.
pub fn cert_status_json(cert: &CaCertificate) -> Option<String> {
    cert_status(cert)
        .ok()
        .and_then(|s| serde_json::to_string(&s).ok())
}

fn cert_status(cert: &CaCertificate) -> Result<CertStatus, CaFailure> {
    let der = pem::decode_all(&cert.cert_pem)
        .ok()
        .and_then(|blocks| blocks.into_iter().next())
        .map(|(_, der)| der)
        .ok_or_else(|| {
            CaFailure::Internal(format!(
                "stored certificate of {} is unreadable",
                cert.certname
            ))
        })?;
    let info = cert_info(&der).map_err(|e| CaFailure::Internal(e.to_string()))?;
    let (dns, all) = names_of(&info.subject_alt_names);
    let fps = fingerprints(&der);
    Ok(CertStatus {
        name: cert.certname.clone(),
        state: if cert.revoked_at.is_some() {
            "revoked"
        } else {
            "signed"
        },
        fingerprint: fps.sha256.clone(),
        fingerprints: fps,
        dns_alt_names: dns,
        subject_alt_names: all,
        authorization_extensions: authorization_extensions(&info.extensions),
        serial_number: Some(cert.serial),
        not_before: Some(timefmt::puppet(cert.not_before)),
        not_after: Some(timefmt::puppet(cert.not_after)),
        pending_reason: None,
    })
}

fn request_status(request: &CaRequest) -> Result<CertStatus, CaFailure> {
    let csr =
        Csr::parse(request.csr_pem.as_bytes()).map_err(|e| CaFailure::Internal(e.to_string()))?;
    let sans = csr.subject_alt_names().unwrap_or_default();
    let (dns, all) = names_of(&sans);
    let fps = fingerprints(csr.der());
    Ok(CertStatus {
        name: request.certname.clone(),
        state: "requested",
        fingerprint: fps.sha256.clone(),
        fingerprints: fps,
        dns_alt_names: dns,
        subject_alt_names: all,
        authorization_extensions: authorization_extensions(csr.extensions()),
        serial_number: None,
        not_before: None,
        not_after: None,
        pending_reason: match (&request.reason, &request.message) {
            (Some(r), Some(m)) => Some(format!("{r}: {m}")),
            (Some(r), None) => Some(r.clone()),
            _ => None,
        },
    })
}

/// puppetserver's policy-executable contract (argv[1] = certname, CSR on stdin, exit 0 =
/// sign), but with a timeout: a hung executable is killed and the CSR stays pending.
async fn run_policy_executable(
    path: &std::path::Path,
    certname: &str,
    csr: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    let path = path.to_path_buf();
    let certname = certname.to_string();
    let csr = csr.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&path)
            .arg(&certname)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&csr);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    return Err(format!(
                        "{} refused ({status}): {}",
                        path.display(),
                        err.trim()
                    ));
                }
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} did not answer within {timeout:?}",
                        path.display()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|e| e.to_string())?
}
