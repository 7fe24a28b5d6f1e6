//! Foreman's smart-proxy Puppet CA routes: the autosign list and tokens, and
//! `/puppet/ca/validate`, which the autosign-policy executable (and Foreman's own
//! policy script) calls.

use crate::domain::policy::CsrInput;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;

use super::errors::ApiError;
use super::{HttpState, Trusted};
use crate::app::AppError;
use crate::config::ForemanAutosign;
use crate::domain::csr::MAX_CSR_BYTES;
use crate::domain::event::EventFilter;
use crate::domain::token::minutes_to_seconds;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/features", web::get().to(features))
        .route("/v2/features", web::get().to(features_v2))
        .route("/version", web::get().to(version))
        .route("/logs", web::get().to(logs))
        .route("/logs/", web::get().to(logs))
        .route("/puppet/ca", web::get().to(list_certificates))
        .route("/puppet/ca/validate", web::post().to(validate))
        .route("/puppet/ca/autosign", web::get().to(list_autosign))
        .route(
            "/puppet/ca/autosign/{certname}",
            web::post().to(create_autosign),
        )
        .route(
            "/puppet/ca/autosign/{certname}",
            web::delete().to(delete_autosign),
        )
        // After the fixed routes, so `validate` and `autosign` are also certnames:
        // POST /puppet/ca/autosign signs the host named autosign.
        .route("/puppet/ca/{certname}", web::post().to(sign_certificate))
        .route("/puppet/ca/{certname}", web::delete().to(clean_certificate));
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Feature names in the running state; no authentication, as the smart proxy.
async fn features() -> HttpResponse {
    HttpResponse::Ok().json(["logs", "puppetca"])
}

#[derive(Deserialize)]
struct LogsQuery {
    from_timestamp: Option<f64>,
}

/// The smart proxy's `logs` module, which feeds Foreman's proxy "Logs" tab: the event log
/// as log records, rejections at WARN, suspicious requests at ERROR, the rest at INFO.
async fn logs(
    _trusted: Trusted,
    state: web::Data<HttpState>,
    query: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    /// As many records as smart-proxy's log buffer holds by default.
    const BUFFER: u32 = 1000;
    let from = query
        .from_timestamp
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| t.floor() as i64);
    let filter = EventFilter {
        since: from,
        ascending: from.is_some(),
        limit: BUFFER,
        ..Default::default()
    };
    let mut events = state.app.events(&filter).await?;
    if from.is_none() {
        events.reverse();
    }
    let logs: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            let level = match (e.kind.as_str(), e.decision.as_deref()) {
                ("suspicious_request", _) => "ERROR",
                (_, Some("rejected")) => "WARN",
                _ => "INFO",
            };
            let mut message = e.kind.clone();
            if let Some(certname) = &e.certname {
                message.push_str(&format!(" {certname}"));
            }
            if let Some(reason) = &e.reason {
                message.push_str(&format!(": {reason}"));
            }
            if let Some(text) = &e.message {
                message.push_str(&format!(": {text}"));
            }
            let mut record = serde_json::json!({
                "timestamp": e.at as f64,
                "level": level,
                "message": message,
            });
            if let Some(id) = &e.request_id {
                record["request_id"] = id.clone().into();
            }
            record
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "info": {
            "size": logs.len(),
            "tail_size": 0,
            "level": serde_json::Value::Null,
            "level_tail": 3,
            "failed_modules": {},
        },
        "logs": logs,
    })))
}

async fn version() -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "version": VERSION, "modules": { "puppetca": VERSION } }))
}

/// What Foreman registers a proxy with (trusted hosts only).
async fn features_v2(_trusted: Trusted, state: web::Data<HttpState>) -> HttpResponse {
    let ca = state.foreman_ca.kind();
    HttpResponse::Ok().json(serde_json::json!({
        "logs": {
            "http_enabled": false,
            "https_enabled": true,
            "settings": {},
            "state": "running",
            "capabilities": []
        },
        "puppetca": {
            "http_enabled": false,
            "https_enabled": true,
            "settings": { "puppet_url": state.puppet_url, "ca": ca },
            "state": "running",
            "capabilities": ["autosign_tokens", "autosign_allow_list", "autosign_validate", format!("{ca}_ca")]
        }
    }))
}

/// `{certname: {state, fingerprint, serial, not_before, not_after}}`, state pending,
/// valid or revoked; a certificate past its notAfter is shown revoked, as Foreman expects.
async fn list_certificates(
    _trusted: Trusted,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    let statuses = state.foreman_ca.statuses().await?;
    let now = crate::time::now();
    let mut out = serde_json::Map::new();
    for st in statuses {
        let Some(name) = st.get("name").and_then(|n| n.as_str()).map(str::to_string) else {
            continue;
        };
        let not_after = st
            .get("not_after")
            .and_then(|t| t.as_str())
            .map(str::to_string);
        let expired = not_after
            .as_deref()
            .and_then(crate::time::parse_rfc3339)
            .is_some_and(|t| t < now);
        let foreman_state = match st.get("state").and_then(|s| s.as_str()) {
            Some("requested") => "pending",
            Some("revoked") => "revoked",
            _ if expired => "revoked",
            _ => "valid",
        };
        out.insert(
            name,
            serde_json::json!({
                "state": foreman_state,
                "fingerprint": st.get("fingerprint"),
                "serial": st.get("serial_number"),
                "not_before": st.get("not_before"),
                "not_after": not_after,
            }),
        );
    }
    Ok(HttpResponse::Ok().json(out))
}

/// Foreman's "sign the pending request".
async fn sign_certificate(
    Trusted(actor): Trusted,
    state: web::Data<HttpState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match state.foreman_ca.sign(&path, &actor).await {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        // Foreman reads 404 as "nothing to sign".
        Err(AppError::NoRequest(m)) => Err(ApiError::NotFound(m)),
        Err(e) => Err(e.into()),
    }
}

/// Foreman's "revoke, then delete"; 404 (which Foreman accepts) when there is nothing.
async fn clean_certificate(
    Trusted(actor): Trusted,
    state: web::Data<HttpState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if state.foreman_ca.clean(&path, &actor).await? {
        Ok(HttpResponse::Ok().finish())
    } else {
        Err(ApiError::NotFound(format!(
            "no certificate or request for {path}"
        )))
    }
}

#[derive(Deserialize)]
struct ValidateQuery {
    certname: Option<String>,
}

/// 200 with an empty body = sign; 404 = do not sign (what Foreman's script expects).
/// With `Accept: application/json` the body says why.
async fn validate(
    Trusted(actor): Trusted,
    req: HttpRequest,
    state: web::Data<HttpState>,
    query: web::Query<ValidateQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // One byte past the cap is enough for the pipeline to refuse, and record, the CSR
    // as too large without buffering whatever a client sends.
    let body = read_capped(payload, MAX_CSR_BYTES + 1).await?;
    // Foreman signs a host named "validate" with an empty POST to this path.
    if body.is_empty() && query.certname.is_none() {
        return sign_certificate(
            Trusted(actor),
            state,
            web::Path::from("validate".to_string()),
        )
        .await;
    }
    let decision = state
        .app
        .decide(CsrInput::Bytes(&body), query.certname.as_deref(), &actor)
        .await?
        .decision;
    let status = if decision.approved() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    if wants_json(&req) {
        Ok(HttpResponse::build(status).json(&decision))
    } else {
        Ok(HttpResponse::build(status).finish())
    }
}

async fn read_capped(mut payload: web::Payload, cap: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    Ok(body)
}

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

async fn list_autosign(
    _trusted: Trusted,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.app.autosign_names().await?))
}

#[derive(Deserialize)]
struct TtlParams {
    token_ttl: Option<String>,
}

/// A certname gets a one-time token (`{"generated_token": ...}`); a glob such as
/// `*.lab.example.com` cannot hold a token and becomes an allow-list entry (empty 200,
/// as the smart proxy answers in list mode).
async fn create_autosign(
    Trusted(actor): Trusted,
    state: web::Data<HttpState>,
    path: web::Path<String>,
    query: web::Query<TtlParams>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let certname = path.into_inner();
    if certname.contains('*') || state.foreman_autosign == ForemanAutosign::Hostname {
        state
            .app
            .add_allow_entry(&certname, Vec::new(), &actor)
            .await?;
        return Ok(HttpResponse::Ok().finish());
    }
    // Foreman may send token_ttl in the query or as a form body.
    let form_ttl = web::Query::<TtlParams>::from_query(std::str::from_utf8(&body).unwrap_or(""))
        .ok()
        .and_then(|q| q.into_inner().token_ttl);
    let ttl = match query.into_inner().token_ttl.or(form_ttl) {
        Some(text) => Some(
            text.trim()
                .parse::<i64>()
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "token_ttl '{}' is not a number of minutes",
                        text.escape_debug()
                    ))
                })
                .and_then(|m| {
                    minutes_to_seconds(m).map_err(|e| ApiError::BadRequest(e.to_string()))
                })?,
        ),
        None => None,
    };
    let issued = state
        .app
        .issue_token(&certname, Vec::new(), None, ttl, &actor)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "generated_token": issued.token })))
}

/// 200 when an entry or live token was removed; 404 when there was nothing (Foreman
/// reads that as "already gone").
async fn delete_autosign(
    Trusted(actor): Trusted,
    state: web::Data<HttpState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .app
        .remove_autosign_name(&path.into_inner(), &actor)
        .await?;
    Ok(HttpResponse::Ok().finish())
}
