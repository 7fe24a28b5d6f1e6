//! What the CA reports, in puppetserver's shapes: status objects, the listing, expirations.

use aws_lc_rs::digest;
use serde::Serialize;

use super::Authority;
use crate::app::AppError;
use crate::ca::issue::cert_info;
use crate::domain::csr::{fingerprint, Csr, CsrExtension, GeneralName};
use crate::oid::{in_arc, PP_AUTH_ARC};
use crate::store::{CaCertificate, CaRequest};
use crate::time;
use crate::x509;

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

/// A pending request as the operator's page shows it.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub request: CaRequest,
    pub status: CertStatus,
    /// Every extension but subjectAltName: (name or OID, value).
    pub extensions: Vec<(String, String)>,
    /// It asks for pp_cli_auth: never signed.
    pub cli_auth: bool,
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

impl Authority {
    pub async fn status(&self, name: &str) -> Result<Option<CertStatus>, AppError> {
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
    pub async fn statuses_json(&self, state: Option<&str>) -> Result<String, AppError> {
        let mut parts: Vec<String> = Vec::new();
        if state.is_none() || state == Some("requested") {
            for request in self.store.ca_requests().await? {
                parts.push(
                    serde_json::to_string(&request_status(&request)?)
                        .map_err(|e| AppError::Internal(e.to_string()))?,
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
                            .map_err(|e| AppError::Internal(e.to_string()))?,
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

    /// Pending requests for the operator's page, oldest first: the stored request, its
    /// status object, every extension it asks for (name or OID, value), and whether it
    /// asks for pp_cli_auth (never signed). At most `limit` after the first `offset`.
    pub async fn pending_requests(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<PendingRequest>, usize), AppError> {
        let mut requests = self.store.ca_requests().await?;
        requests.sort_by(|a, b| (a.received_at, &a.certname).cmp(&(b.received_at, &b.certname)));
        let total = requests.len();
        let mut out = Vec::new();
        for request in requests.into_iter().skip(offset).take(limit) {
            let status = request_status(&request)?;
            let csr = Csr::parse(request.csr_pem.as_bytes())
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let extensions: Vec<(String, String)> = csr
                .extensions()
                .iter()
                .filter(|e| e.oid != crate::oid::SUBJECT_ALT_NAME)
                .map(|e| {
                    let name = if in_arc(&e.oid, PP_AUTH_ARC) {
                        crate::oid::auth_extension_name(&e.oid).to_string()
                    } else {
                        e.oid.clone()
                    };
                    (name, e.string_value().unwrap_or_else(|| "(binary)".into()))
                })
                .collect();
            let cli_auth = csr
                .extensions()
                .iter()
                .any(|e| e.oid == crate::oid::PP_CLI_AUTH);
            out.push(PendingRequest {
                request,
                status,
                extensions,
                cli_auth,
            });
        }
        Ok((out, total))
    }

    /// The certnames with a pending request.
    pub async fn pending_names(&self) -> Result<Vec<String>, AppError> {
        Ok(self
            .store
            .ca_requests()
            .await?
            .into_iter()
            .map(|r| r.certname)
            .collect())
    }

    /// Every request and current certificate, optionally of one state.
    pub async fn statuses(&self, state: Option<&str>) -> Result<Vec<CertStatus>, AppError> {
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

    /// `{"ca-certs": {CN: notAfter}, "crls": {issuer CN: nextUpdate}}`
    pub async fn expirations(&self) -> Result<serde_json::Value, AppError> {
        let mut certs = serde_json::Map::new();
        for der in &self.bundle {
            let info = cert_info(der).map_err(|e| AppError::Internal(e.to_string()))?;
            certs.insert(
                info.common_name.unwrap_or_default(),
                time::puppet(info.not_after).into(),
            );
        }
        let mut crls = serde_json::Map::new();
        if let Some((_, der)) = self.store.ca_crl().await? {
            let info =
                crate::ca::crl::crl_info(&der).map_err(|e| AppError::Internal(e.to_string()))?;
            if let Some(next) = info.next_update {
                crls.insert(
                    info.issuer_common_name.unwrap_or_default(),
                    time::puppet(next).into(),
                );
            }
        }
        Ok(serde_json::json!({ "ca-certs": certs, "crls": crls }))
    }
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

fn cert_status(cert: &CaCertificate) -> Result<CertStatus, AppError> {
    let der = x509::pem_blocks(&cert.cert_pem)
        .ok()
        .and_then(|blocks| blocks.into_iter().next())
        .map(|(_, der)| der)
        .ok_or_else(|| {
            AppError::Internal(format!(
                "stored certificate of {} is unreadable",
                cert.certname
            ))
        })?;
    let info = cert_info(&der).map_err(|e| AppError::Internal(e.to_string()))?;
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
        not_before: Some(time::puppet(cert.not_before)),
        not_after: Some(time::puppet(cert.not_after)),
        pending_reason: None,
    })
}

fn request_status(request: &CaRequest) -> Result<CertStatus, AppError> {
    let csr =
        Csr::parse(request.csr_pem.as_bytes()).map_err(|e| AppError::Internal(e.to_string()))?;
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
