//! Foreman's smart-proxy Puppet CA routes: the autosign list and tokens, and
//! `/puppet/ca/validate`, which the autosign-policy executable (and Foreman's own
//! policy script) calls.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;

use super::errors::ApiError;
use super::{HttpState, Trusted};
use crate::domain::csr::MAX_CSR_BYTES;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/puppet/ca/validate", web::post().to(validate))
        .route("/puppet/ca/autosign", web::get().to(list_autosign))
        .route(
            "/puppet/ca/autosign/{certname}",
            web::post().to(create_autosign),
        )
        .route(
            "/puppet/ca/autosign/{certname}",
            web::delete().to(delete_autosign),
        );
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
    let decision = state
        .app
        .decide(&body, query.certname.as_deref(), &actor)
        .await?;
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
    if certname.contains('*') {
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
        Some(text) => Some(text.trim().parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!("token_ttl '{text}' is not a number of minutes"))
        })?),
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
