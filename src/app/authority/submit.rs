//! PUT certificate_request: validate as puppetserver does, then let the autosign mode
//! decide (build tokens and the allow-list, `true`, `exec:`, or an operator later).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Authority, AutosignMode};
use crate::app::AppError;
use crate::domain::certname::{Certname, CertnameError};
use crate::domain::csr::{Csr, CsrError};
use crate::domain::event::{Actor, NewEvent};
use crate::domain::policy::{check_request, CheckedRequest, CsrInput};
use crate::store::CaRequest;
use crate::time;

impl Authority {
    /// PUT certificate_request/{name}: validate as puppetserver does, refuse duplicates,
    /// then let the autosign mode decide; what it does not sign stays pending with why.
    /// The CSR is parsed once; every mode runs the one rule set of `domain::policy`.
    pub async fn submit(&self, name: &str, body: &[u8], actor: &Actor) -> Result<(), AppError> {
        let certname = Certname::parse(name).map_err(|e| match e {
            CertnameError::UpperCase => {
                AppError::Invalid("Certificate names must be lower case.".into())
            }
            other => AppError::Invalid(format!("Invalid certname '{name}': {other}")),
        })?;
        let csr = Csr::parse(body).map_err(|e| AppError::Invalid(e.to_string()))?;
        let cns = csr.subject_common_names();
        let cn = cns.first().map(String::as_str).unwrap_or("");
        if cn != certname.as_str() {
            return Err(AppError::Invalid(format!(
                "Instance name \"{}\" does not match requested key \"{certname}\"",
                cn.escape_default()
            )));
        }
        csr.verify_signature().map_err(|e| match e {
            CsrError::UnsupportedAlgorithm(_) => AppError::Invalid(e.to_string()),
            _ => AppError::Invalid(
                "CSR contains a public key that does not correspond to the signing key".into(),
            ),
        })?;
        if let Err(refused) = self.refuse_duplicate(&certname).await {
            if !self.replace_squatter(&certname, &csr, actor).await? {
                return Err(refused);
            }
        }

        let now = time::now();
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
                self.issue(
                    &checked,
                    None,
                    self.settings.allow_duplicate_certs,
                    actor,
                    "autosigned",
                )
                .await
                .map_err(|e| match e {
                    // Another request for the name won: puppetserver's 400.
                    AppError::Store(crate::store::StoreError::Conflict(m)) => AppError::Invalid(m),
                    e => e,
                })?;
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
            return Err(AppError::Invalid(format!(
                "{certname} already has a requested certificate; ignoring certificate request"
            )));
        }
        Ok(())
    }

    /// Anyone can submit a request for a predictable name before the host does. When the
    /// host then comes with a live build token for its name, a pending request that
    /// carries no live token of the name gives way to it (recorded); `false` when there
    /// is nothing to replace.
    async fn replace_squatter(
        &self,
        certname: &Certname,
        csr: &Csr,
        actor: &Actor,
    ) -> Result<bool, AppError> {
        let Some((presented, _)) = csr.challenge_password() else {
            return Ok(false);
        };
        if self
            .store
            .ca_certificate(certname.as_str())
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let Some(pending) = self.store.ca_request(certname.as_str()).await? else {
            return Ok(false);
        };
        // "Token-less": no challengePassword that is a live token of the name (a squatter
        // cannot have one; a garbage password does not protect its request).
        let pending_token = Csr::parse(pending.csr_pem.as_bytes())
            .ok()
            .and_then(|p| p.challenge_password())
            .map(|(value, _)| value);
        let pending_has_token = match &pending_token {
            Some(value) => self.app.has_live_token(certname, value).await?,
            None => false,
        };
        if pending_has_token || !self.app.has_live_token(certname, &presented).await? {
            return Ok(false);
        }
        let event = NewEvent::new(time::now(), "certificate_request_replaced", actor)
            .certname(certname.as_str())
            .message(format!(
                "a pending request without a build token (SHA-256 {}) gave way to one carrying a live token for {certname}",
                pending.fingerprint
            ));
        self.store
            .ca_delete_request(certname.as_str(), Some(event))
            .await?;
        tracing::warn!(certname = %certname, replaced = %pending.fingerprint, "a token-less pending request was replaced by the host's own");
        Ok(true)
    }
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
