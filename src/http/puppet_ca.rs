//! The Puppet CA API v1 (`/puppet-ca/v1`) and the status endpoints real agents and
//! `puppetserver ca` use, with puppetserver's codes, bodies and access rules.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::errors::{ApiError, PlainError};
use super::tls::ClientIdentity;
use super::HttpState;
use crate::app::authority::SignOptions;
use crate::domain::csr::MAX_CSR_BYTES;
use crate::domain::event::Actor;
use crate::time;

/// The Puppet version in `X-Puppet-Version`, as puppetserver 8.7 (Debian trixie) sends it.
pub const PUPPET_VERSION: &str = "8.10.0";

/// The CA service version `/status/v1/services` reports, puppetserver 8.7's: from 8.4.0 on
/// `puppetserver ca` 2.7 signs in bulk (`POST /sign`, `/sign/all`); 2.4 never asks.
pub const CA_SERVICE_VERSION: &str = "8.7.0";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/puppet-ca/v1")
            .route("/certificate/{name}", web::get().to(certificate))
            .route("/certificate_request/{name}", web::get().to(get_request))
            .route("/certificate_request/{name}", web::put().to(put_request))
            .route(
                "/certificate_request/{name}",
                web::delete().to(delete_request),
            )
            .route("/certificate_status/{name}", web::get().to(get_status))
            .route("/certificate_status/{name}", web::put().to(put_status))
            .route(
                "/certificate_status/{name}",
                web::delete().to(delete_status),
            )
            .route("/certificate_statuses/", web::get().to(missing_segment))
            .route("/certificate_statuses/{any}", web::get().to(statuses))
            .route("/certificate_revocation_list/ca", web::get().to(crl))
            .route("/certificate_revocation_list", web::put().to(put_crl))
            .route("/expirations", web::get().to(expirations))
            .route("/clean", web::put().to(clean))
            .route("/sign", web::post().to(sign))
            .route("/sign/all", web::post().to(sign_all))
            .route("/certificate_renewal", web::post().to(renewal)),
    )
    .route("/status/v1/simple", web::get().to(running))
    .route("/status/v1/simple/{service}", web::get().to(running))
    .route("/status/v1/services", web::get().to(services))
    .route("/status/v1/services/{service}", web::get().to(one_service));
}

fn identity(req: &HttpRequest) -> Option<ClientIdentity> {
    req.conn_data::<ClientIdentity>().cloned()
}

fn request_id(req: &HttpRequest) -> Option<String> {
    super::request_id(req)
}

/// Whoever sent an unauthenticated request: the certificate's CN if one was presented,
/// else the peer address.
fn anyone(req: &HttpRequest) -> Actor {
    let name = match identity(req) {
        Some(id) => id.common_name,
        None => format!(
            "anonymous@{}",
            req.peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|| "?".into())
        ),
    };
    Actor::new(name, request_id(req))
}

/// A CA administrator: a certificate carrying pp_cli_auth = "true", or a CN in
/// `ca.admin_hosts`. Runs before the body is read.
pub struct Admin(pub Actor);

impl actix_web::FromRequest for Admin {
    type Error = PlainError;
    type Future = std::future::Ready<Result<Admin, PlainError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let admin_hosts = req
            .app_data::<web::Data<HttpState>>()
            .map(|s| &s.admin_hosts);
        let result = match identity(req) {
            Some(id)
                if id.cli_auth
                    || admin_hosts
                        .is_some_and(|h| h.contains(&id.common_name.to_ascii_lowercase())) =>
            {
                Ok(Admin(Actor::new(id.common_name, request_id(req))))
            }
            other => Err(PlainError(ApiError::Forbidden(format!(
                "Forbidden request: {} access to {} (method {})",
                other.map_or("an unauthenticated client".to_string(), |id| id.common_name),
                req.path(),
                req.method()
            )))),
        };
        std::future::ready(result)
    }
}

/// Any client with a certificate this CA (or a configured client CA) issued.
pub struct Client(pub ClientIdentity);

impl actix_web::FromRequest for Client {
    type Error = PlainError;
    type Future = std::future::Ready<Result<Client, PlainError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(identity(req).map(Client).ok_or_else(|| {
            PlainError(ApiError::Forbidden(format!(
                "Forbidden request: {} requires a client certificate",
                req.path()
            )))
        }))
    }
}

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

/// The body with Last-Modified, or 304 when the client's copy (If-Modified-Since) is not
/// older than `modified`.
fn text_since(req: &HttpRequest, body: String, modified: i64) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(time::parse_http_date)
        .is_some_and(|since| since >= modified);
    if fresh {
        return HttpResponse::NotModified().finish();
    }
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::LAST_MODIFIED, time::http_date(modified)))
        .body(body)
}

async fn certificate(
    req: HttpRequest,
    state: web::Data<HttpState>,
    name: web::Path<String>,
) -> Result<HttpResponse, PlainError> {
    let name = name.into_inner();
    let Some(pem) = state.authority.certificate_pem(&name).await? else {
        return Err(ApiError::NotFound(format!("Could not find certificate {name}")).into());
    };
    let modified = crate::ca::issue::cert_info(pem.as_bytes())
        .map(|i| i.not_before)
        .unwrap_or(0);
    Ok(text_since(&req, pem, modified))
}

async fn get_request(
    state: web::Data<HttpState>,
    name: web::Path<String>,
) -> Result<HttpResponse, PlainError> {
    match state.authority.request_pem(&name).await? {
        Some(pem) => Ok(text(pem)),
        None => {
            Err(ApiError::NotFound(format!("Could not find certificate_request {name}")).into())
        }
    }
}

/// Agents submit without a client certificate; anything invalid is a 400 (an agent
/// reads that as "already submitted" and goes on to fetch its certificate).
async fn put_request(
    req: HttpRequest,
    state: web::Data<HttpState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PlainError> {
    if body.len() > MAX_CSR_BYTES {
        return Err(
            ApiError::BadRequest(format!("the CSR is larger than {MAX_CSR_BYTES} bytes")).into(),
        );
    }
    if identity(&req).is_none() {
        if let Some(address) = req.peer_addr().map(|a| a.ip()) {
            if let Err(wait) = state.anonymous_limit.take(address) {
                return Err(ApiError::TooManyRequests(
                    format!("too many certificate requests from {address}; try again in {wait} s"),
                    wait,
                )
                .into());
            }
        }
    }
    state.authority.submit(&name, &body, &anyone(&req)).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .finish())
}

async fn delete_request(
    Admin(actor): Admin,
    state: web::Data<HttpState>,
    name: web::Path<String>,
) -> Result<HttpResponse, PlainError> {
    if state.authority.delete_request(&name, &actor).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("Could not find certificate_request {name}")).into())
    }
}

async fn get_status(
    _admin: Admin,
    state: web::Data<HttpState>,
    name: web::Path<String>,
) -> Result<HttpResponse, PlainError> {
    match state.authority.status(&name).await? {
        Some(status) => Ok(HttpResponse::Ok().json(status)),
        None => Err(ApiError::NotFound("Invalid certificate subject.".into()).into()),
    }
}

/// `{"desired_state": "signed"|"revoked", "cert_ttl": seconds}` with puppetserver's
/// answers: 204, 400 for a bad body, 404 unknown subject, 409 wrong state, 415.
async fn put_status(
    Admin(actor): Admin,
    req: HttpRequest,
    state: web::Data<HttpState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PlainError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(content_type.is_empty() || content_type.starts_with("application/json")) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Unsupported media type: {content_type}"
        ))
        .into());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("Empty request body.".into()).into());
    }
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("Request body is not JSON.".into()))?;
    let desired = json
        .get("desired_state")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let ttl = match json.get("cert_ttl") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_i64().filter(|t| *t > 0).ok_or_else(|| {
            ApiError::BadRequest("cert_ttl must be a positive integer number of seconds".into())
        })?),
    };
    let authority = &state.authority;
    if authority.status(&name).await?.is_none() {
        return Err(ApiError::NotFound("Invalid certificate subject.".into()).into());
    }
    match desired {
        "signed" => {
            let options = SignOptions {
                ttl_seconds: ttl,
                ..SignOptions::default()
            };
            authority.sign(&name, options, &actor).await?;
        }
        "revoked" => {
            authority.revoke(&name, &actor).await?;
        }
        _ => {
            return Err(ApiError::BadRequest(format!(
                "State {desired} invalid; Must specify desired state of 'signed' or 'revoked' for host {name}."
            ))
            .into())
        }
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_status(
    Admin(actor): Admin,
    state: web::Data<HttpState>,
    name: web::Path<String>,
) -> Result<HttpResponse, PlainError> {
    if state.authority.delete(&name, &actor).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("Invalid certificate subject.".into()).into())
    }
}

async fn missing_segment(_admin: Admin) -> Result<HttpResponse, PlainError> {
    Err(ApiError::BadRequest("Missing URL Segment".into()).into())
}

#[derive(Deserialize)]
struct StatesQuery {
    state: Option<String>,
}

async fn statuses(
    _admin: Admin,
    state: web::Data<HttpState>,
    query: web::Query<StatesQuery>,
) -> Result<HttpResponse, PlainError> {
    let filter = query.state.as_deref();
    if let Some(s) = filter {
        if !matches!(s, "requested" | "signed" | "revoked") {
            return Err(ApiError::BadRequest(format!(
                "state '{s}' is not requested, signed or revoked"
            ))
            .into());
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(state.authority.statuses_json(filter).await?))
}

async fn crl(req: HttpRequest, state: web::Data<HttpState>) -> Result<HttpResponse, PlainError> {
    let (pem, modified) = state.authority.crl_for_download().await?;
    Ok(text_since(&req, pem, modified))
}

async fn put_crl(_admin: Admin) -> Result<HttpResponse, PlainError> {
    Err(ApiError::BadRequest(
        "this CA has no external issuers; updating their CRLs is not supported".into(),
    )
    .into())
}

async fn expirations(
    _client: Client,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, PlainError> {
    Ok(HttpResponse::Ok().json(state.authority.expirations().await?))
}

#[derive(Deserialize)]
struct Certnames {
    certnames: Vec<String>,
}

fn parse_certnames(body: &[u8]) -> Result<Vec<String>, ApiError> {
    serde_json::from_slice::<Certnames>(body)
        .map(|c| c.certnames)
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "Request body is not JSON with a certnames list: {e}"
            ))
        })
}

/// Revoke and delete each certname, as `puppetserver ca clean` asks.
async fn clean(
    Admin(actor): Admin,
    state: web::Data<HttpState>,
    body: web::Bytes,
) -> Result<HttpResponse, PlainError> {
    let names = parse_certnames(&body)?;
    let mut missing = Vec::new();
    for name in &names {
        if !state.authority.clean(name, &actor).await? {
            missing.push(name.clone());
        }
    }
    if missing.is_empty() {
        Ok(text("Successfully cleaned all certs.".into()))
    } else {
        Ok(text(format!(
            "The following certs do not exist and cannot be revoked: {missing:?}"
        )))
    }
}

async fn sign(
    Admin(actor): Admin,
    state: web::Data<HttpState>,
    body: web::Bytes,
) -> Result<HttpResponse, PlainError> {
    let names = parse_certnames(&body)?;
    Ok(HttpResponse::Ok().json(state.authority.sign_bulk(&names, &actor).await?))
}

async fn sign_all(
    Admin(actor): Admin,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, PlainError> {
    Ok(HttpResponse::Ok().json(state.authority.sign_all_pending(&actor).await?))
}

/// A new certificate for the key the client already holds, identified by its current
/// certificate.
async fn renewal(
    Client(id): Client,
    req: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, PlainError> {
    let actor = Actor::new(id.common_name.clone(), request_id(&req));
    let cert = state
        .authority
        .renew(&id.common_name, &id.fingerprint, &actor)
        .await?;
    Ok(text(cert.cert_pem))
}

/// puppetserver's simple status, true to this replica: "running" only while its
/// database answers, so a load balancer's health check takes a replica that cannot
/// decide out of rotation.
async fn running(state: web::Data<HttpState>) -> HttpResponse {
    match state.app.health().await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("running"),
        Err(e) => {
            tracing::warn!(error = %e, "status check: the database does not answer");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("error")
        }
    }
}

/// The CA service's status entry, with puppetserver 8.7's fields.
fn ca_service_status() -> serde_json::Value {
    serde_json::json!({
        "service_version": CA_SERVICE_VERSION,
        "service_status_version": 1,
        "detail_level": "info",
        "state": "running",
        "status": {},
        "active_alerts": []
    })
}

async fn services() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "ca": ca_service_status() }))
}

/// `/status/v1/services/ca` (with `service_name`, as puppetserver answers); 404 for the
/// services a CA alone does not run.
async fn one_service(service: web::Path<String>) -> Result<HttpResponse, PlainError> {
    if service.as_str() != "ca" {
        return Err(ApiError::NotFound(format!(
            "No status information found for service {service}"
        ))
        .into());
    }
    let mut status = ca_service_status();
    status["service_name"] = "ca".into();
    Ok(HttpResponse::Ok().json(status))
}
