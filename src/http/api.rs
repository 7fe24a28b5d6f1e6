//! The native JSON API for provisioners and operators, under `/api/v1/`: tokens with
//! TTL, SANs and metadata; the allow-list; the event log.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::errors::ApiError;
use super::{HttpState, Trusted};
use crate::domain::decision::Verdict;
use crate::domain::event::EventFilter;
use crate::domain::token::{minutes_to_seconds, parse_ttl_seconds, AltName};
use crate::store::TokenSelector;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/tokens", web::post().to(create_token))
        .route("/api/v1/tokens", web::get().to(list_tokens))
        .route("/api/v1/tokens/{id}", web::delete().to(revoke_token))
        .route("/api/v1/autosign-entries", web::get().to(list_entries))
        .route("/api/v1/autosign-entries", web::post().to(add_entry))
        .route(
            "/api/v1/autosign-entries/import",
            web::post().to(import_entries),
        )
        .route(
            "/api/v1/autosign-entries/{pattern}",
            web::delete().to(remove_entry),
        )
        .route("/api/v1/events", web::get().to(list_events))
        .route(
            "/api/v1/hosts/{certname}/history",
            web::get().to(host_history),
        )
        .route("/metrics", web::get().to(metrics));
}

/// Bad JSON is the client's error, said plainly.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|e, _| ApiError::BadRequest(format!("invalid JSON body: {e}")).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    certname: String,
    /// Minutes, or a duration such as "6h".
    ttl: Option<serde_json::Value>,
    #[serde(default)]
    alt_names: Vec<String>,
    metadata: Option<serde_json::Value>,
}

async fn create_token(
    Trusted(actor): Trusted,
    state: web::Data<HttpState>,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let ttl = match body.ttl {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(
            n.as_i64()
                .ok_or_else(|| ApiError::BadRequest("ttl must be whole minutes".into()))
                .and_then(|m| {
                    minutes_to_seconds(m).map_err(|e| ApiError::BadRequest(e.to_string()))
                })?,
        ),
        Some(serde_json::Value::String(s)) => {
            Some(parse_ttl_seconds(&s).map_err(|e| ApiError::BadRequest(e.to_string()))?)
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "ttl must be minutes or a duration such as \"6h\"".into(),
            ))
        }
    };
    let alt_names = parse_alt_names(&body.alt_names)?;
    let issued = state
        .app
        .issue_token(&body.certname, alt_names, body.metadata, ttl, &actor)
        .await?;
    Ok(HttpResponse::Created().json(issued))
}

fn parse_alt_names(names: &[String]) -> Result<Vec<AltName>, ApiError> {
    names
        .iter()
        .map(|n| AltName::parse(n).map_err(|e| ApiError::BadRequest(e.to_string())))
        .collect()
}

#[derive(Deserialize)]
struct TokenQuery {
    certname: Option<String>,
    #[serde(default)]
    all: bool,
}

async fn list_tokens(
    _trusted: Trusted,
    state: web::Data<HttpState>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state
        .app
        .list_tokens(query.certname.as_deref(), query.all)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tokens": tokens })))
}

async fn revoke_token(
    Trusted(actor): Trusted,
    state: web::Data<HttpState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("'{path}' is not a token id")))?;
    let revoked = state
        .app
        .revoke_tokens(TokenSelector::Id(id), &actor)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked": revoked })))
}

async fn list_entries(
    _trusted: Trusted,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "entries": state.app.list_allow_entries().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    pattern: String,
    #[serde(default)]
    alt_names: Vec<String>,
}

async fn add_entry(
    Trusted(actor): Trusted,
    state: web::Data<HttpState>,
    body: web::Json<NewEntry>,
) -> Result<HttpResponse, ApiError> {
    let alt_names = parse_alt_names(&body.alt_names)?;
    let added = state
        .app
        .add_allow_entry(&body.pattern, alt_names, &actor)
        .await?;
    let status = if added {
        actix_web::http::StatusCode::CREATED
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(HttpResponse::build(status)
        .json(serde_json::json!({ "pattern": body.pattern, "added": added })))
}

/// The body is an autosign.conf; the answer lists what was added and every line skipped.
async fn import_entries(
    Trusted(actor): Trusted,
    state: web::Data<HttpState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the autosign.conf is not UTF-8".into()))?;
    Ok(HttpResponse::Ok().json(state.app.import_autosign_conf(text, &actor).await?))
}

async fn remove_entry(
    Trusted(actor): Trusted,
    state: web::Data<HttpState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .app
        .remove_allow_entry(&path.into_inner(), &actor)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct EventQuery {
    certname: Option<String>,
    kind: Option<String>,
    decision: Option<String>,
    /// Cursor: events older than this id (newest-first pages).
    before: Option<i64>,
    /// Cursor: events newer than this id (oldest-first pages, following).
    after: Option<i64>,
    /// RFC 3339 time range.
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            crate::time::parse_rfc3339(v).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} '{v}' is not a time like 2026-11-23T02:00:00Z"
                ))
            })
        })
        .transpose()
}

fn event_filter(query: EventQuery, ascending: bool) -> Result<EventFilter, ApiError> {
    let decision = match query.decision.as_deref() {
        None => None,
        Some("approved") => Some(Verdict::Approved),
        Some("rejected") => Some(Verdict::Rejected),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "decision '{other}' is not approved or rejected"
            )))
        }
    };
    Ok(EventFilter {
        since: parse_time("since", query.since.as_deref())?,
        until: parse_time("until", query.until.as_deref())?,
        certname: query.certname,
        kind: query.kind,
        decision,
        reason: None,
        before_id: query.before,
        after_id: query.after,
        ascending,
        limit: query.limit.unwrap_or(100).clamp(1, 1000),
    })
}

/// Newest first; `next_before` is the cursor for the following page.
async fn list_events(
    _trusted: Trusted,
    state: web::Data<HttpState>,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = event_filter(query.into_inner(), false)?;
    let events = state.app.events(&filter).await?;
    let next_before = (events.len() == filter.limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(
        HttpResponse::Ok()
            .json(serde_json::json!({ "events": events, "next_before": next_before })),
    )
}

/// One host's timeline, oldest first: token issued, CSR decided, certificate signed,
/// revoked, cleaned... `next_after` pages forward.
async fn host_history(
    _trusted: Trusted,
    state: web::Data<HttpState>,
    path: web::Path<String>,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut query = query.into_inner();
    query.certname = Some(path.into_inner());
    let filter = event_filter(query, true)?;
    let events = state.app.events(&filter).await?;
    let next_after = (events.len() == filter.limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "certname": filter.certname,
        "history": events,
        "next_after": next_after,
    })))
}

/// Prometheus exposition; read-only, so open like /features.
async fn metrics(state: web::Data<HttpState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.app.metrics_text().await?))
}
