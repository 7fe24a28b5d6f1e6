//! The network side: an HTTPS server whose handlers decode, call one use case, and
//! render. Routes live in `puppet_ca` (`/puppet-ca/v1`), `smart_proxy` (Foreman's
//! `/puppet/ca`), `api` (`/api/v1`) and `ui` (the operator's page, `/ui/`); every
//! request gets an id (`request_id`) that its events record and its response carries.

pub mod api;
pub mod errors;
pub mod limit;
pub mod puppet_ca;
pub mod request_id;
pub mod smart_proxy;
pub mod tls;
pub mod ui;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::app::authority::Authority;
use crate::app::authority::ForemanCa;
use crate::app::App;
use crate::config::Config;
use crate::domain::certname::LOCAL_CLIENT_CN;
use crate::domain::event::Actor;
use errors::ApiError;
use request_id::RequestId;
use tls::ClientIdentity;
use tls::TlsMaterial;

/// Shared by every handler.
pub struct HttpState {
    pub app: Arc<App>,
    pub authority: Arc<Authority>,
    /// The CA /puppet/ca acts on: ours, or an existing puppetserver's.
    pub foreman_ca: Arc<dyn ForemanCa>,
    /// The Puppet CA URL Foreman hands to hosts.
    pub puppet_url: String,
    /// Client certificate CNs allowed on the provisioning and Foreman APIs, lower case
    /// (compared case-insensitively, as Foreman's smart proxy does).
    pub trusted_hosts: HashSet<String>,
    /// Client certificate CNs allowed on the CA admin endpoints, lower case.
    pub admin_hosts: HashSet<String>,
    /// The local client is trusted as this exact certificate, never by its CN.
    pub local_client_fingerprint: String,
    /// Anonymous certificate requests per address.
    pub anonymous_limit: limit::AnonymousLimit,
    /// What Foreman's autosign POST creates.
    pub foreman_autosign: crate::config::ForemanAutosign,
}

impl HttpState {
    pub fn new(
        app: Arc<App>,
        authority: Arc<Authority>,
        foreman_ca: Arc<dyn ForemanCa>,
        puppet_url: String,
        config: &Config,
        local_client_fingerprint: String,
    ) -> HttpState {
        let lower = |names: &[String]| -> HashSet<String> {
            names.iter().map(|n| n.to_ascii_lowercase()).collect()
        };
        let mut trusted_hosts = lower(&config.trusted_hosts);
        // Only the certificate of this data directory is the local client.
        trusted_hosts.remove(LOCAL_CLIENT_CN);
        HttpState {
            app,
            authority,
            foreman_ca,
            puppet_url,
            trusted_hosts,
            admin_hosts: lower(&config.ca.admin_hosts),
            local_client_fingerprint,
            anonymous_limit: limit::AnonymousLimit::new(config.ca.anonymous_requests_per_minute),
            foreman_autosign: config.smart_proxy.autosign,
        }
    }

    /// The local client by its certificate; anyone else by a CN in trusted_hosts,
    /// compared case-insensitively as Foreman's smart proxy does.
    fn is_trusted(&self, id: &ClientIdentity) -> bool {
        id.fingerprint == self.local_client_fingerprint
            || self
                .trusted_hosts
                .contains(&id.common_name.to_ascii_lowercase())
    }

    /// The smart proxy's rule: a verified client certificate whose CN is in trusted_hosts.
    pub fn require_trusted(&self, req: &HttpRequest) -> Result<Actor, ApiError> {
        let request_id = request_id(req);
        let identity = req
            .conn_data::<ClientIdentity>()
            .cloned()
            .or_else(|| req.extensions().get::<ClientIdentity>().cloned());
        match identity {
            Some(id) if self.is_trusted(&id) => Ok(Actor::new(id.common_name, request_id)),
            Some(id) => {
                tracing::warn!(client = %id.common_name.escape_debug(), fingerprint = %id.fingerprint, path = req.path(), "untrusted client refused");
                Err(ApiError::Forbidden(format!(
                    "Untrusted client {} attempted to access {}",
                    id.common_name,
                    req.path()
                )))
            }
            None => Err(ApiError::Forbidden(format!(
                "a client certificate whose CN is in trusted_hosts is required to access {}",
                req.path()
            ))),
        }
    }
}

/// This request's id, as the middleware in [`start`] gave it: the caller's
/// `X-Request-Id` (sanitised) or a generated UUID. Actors carry it into events.
pub(crate) fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions()
        .get::<RequestId>()
        .map(|id| id.as_str().to_string())
}

/// The caller, authenticated as a trusted host. As a handler's first argument it runs
/// before any other extractor, so an untrusted client learns nothing from body parsing.
pub struct Trusted(pub Actor);

impl actix_web::FromRequest for Trusted {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Trusted, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<HttpState>>() {
            Some(state) => state.require_trusted(req).map(Trusted),
            None => Err(ApiError::Internal("HttpState missing".into())),
        };
        std::future::ready(result)
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    puppet_ca::routes(cfg);
    smart_proxy::routes(cfg);
    api::routes(cfg);
    ui::routes(cfg);
    cfg.default_service(web::to(|req: HttpRequest| async move {
        HttpResponse::NotFound().json(
            serde_json::json!({ "error": format!("no route for {} {}", req.method(), req.path()) }),
        )
    }));
}

/// A running HTTPS server.
pub struct RunningServer {
    pub port: u16,
    /// Replace the CRLs client certificates are checked against.
    pub verifier: Arc<tls::ClientVerifier>,
    pub address: std::net::SocketAddr,
    pub handle: ServerHandle,
    pub server: actix_web::dev::Server,
}

/// Start serving on an already bound listener (port 0 works: `port` says which).
pub fn start(
    state: HttpState,
    material: &TlsMaterial,
    listener: TcpListener,
    workers: usize,
) -> Result<RunningServer, String> {
    let (config, verifier) = tls::server_config(material)?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let port = address.port();
    let state = web::Data::new(state);
    let checker = verifier.clone();
    let server = actix_web::HttpServer::new(move || {
        let checker = checker.clone();
        actix_web::App::new()
            // Every request re-checks its connection's certificate against the current
            // CRLs: revocation holds on kept-alive connections and resumed sessions too.
            .wrap_fn(move |req, srv| {
                use actix_web::dev::Service;
                use futures_util::future::{ready, Either};
                let refused = req.conn_data::<ClientIdentity>().and_then(|id| {
                    checker
                        .still_valid(id)
                        .err()
                        .map(|why| (id.common_name.clone(), why))
                });
                match refused {
                    Some((client, why)) => {
                        tracing::warn!(client = %client.escape_debug(), %why, path = req.path(), "request refused: the client certificate is no longer valid");
                        // A response, not an error: the middleware outside adds the
                        // request id to responses only.
                        let refusal = actix_web::error::ErrorForbidden(format!(
                            "the client certificate is no longer valid: {why}"
                        ));
                        Either::Left(ready(Ok(req.error_response(refusal))))
                    }
                    None => Either::Right(srv.call(req)),
                }
            })
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("X-Puppet-Version", puppet_ca::PUPPET_VERSION)),
            )
            // Registered last, so it runs first: every request has its id before anything
            // else looks at it, and every response carries it, refusals included.
            // Handlers' errors are responses by now; the middlewares inside answer their
            // refusals as responses too, since an `Err` passing here would only become a
            // response after this, without the id.
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service;
                let id = request_id::assign(&req);
                let response = srv.call(req);
                async move {
                    let mut response = response.await?;
                    if let Some(value) = id.as_ref().and_then(RequestId::header_value) {
                        response.headers_mut().insert(request_id::HEADER, value);
                    }
                    Ok(response)
                }
            })
            .app_data(state.clone())
            .app_data(api::json_config())
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()),
            )
            .configure(routes)
    })
    .on_connect(tls::on_connect)
    .workers(workers.max(1))
    // Agents and policy calls are short; idle keep-alive connections are closed after
    // this, which also bounds what an idle client can hold.
    .keep_alive(std::time::Duration::from_secs(30))
    .client_request_timeout(std::time::Duration::from_secs(10))
    .shutdown_timeout(5)
    .disable_signals()
    .listen_rustls_0_23(listener, config)
    .map_err(|e| e.to_string())?
    .run();
    Ok(RunningServer {
        port,
        verifier,
        address,
        handle: server.handle(),
        server,
    })
}
