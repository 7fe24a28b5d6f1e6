//! A typed client for the service's three HTTP APIs, so tests name operations instead of
//! spelling URLs: `c.ca().submit(name, csr)`, `c.foreman().token(host)`,
//! `c.api().events(&[("decision", "rejected")])`.
//!
//! Every call goes over an [`autosign_policy::Connection`] (keep-alive HTTPS with the
//! client certificate the connection was opened with) and returns the whole
//! [`Response`], so tests keep asserting status, headers and body exactly; a few calls
//! return the one value a test wants (e.g. [`Foreman::token`]).
//!
//! - [`PuppetCa`] (`c.ca()`): puppetserver's CA API, `/puppet-ca/v1/...` and `/status/v1/...`.
//! - [`Foreman`] (`c.foreman()`): the smart-proxy API Foreman calls, `/features`,
//!   `/version`, `/puppet/ca/...`; it sends `Accept: application/json` as Foreman does.
//! - [`Api`] (`c.api()`): the native API, `/api/v1/...` and `/metrics`.
//!
//! A request that fails below HTTP (refused handshake, closed connection) panics; tests
//! that expect that, or retry on it, use `c.try_ca()`, `c.try_foreman()`, `c.try_api()`,
//! whose calls return `Result<Response, Error>` instead. Tests that send what no client
//! should (unknown routes, missing path segments, raw bytes) use [`ServiceClient::raw`]
//! and say why; every route's path is in [`path`], for requests written by hand.

// Not every route has a test calling it yet; the client offers them all.
#![allow(dead_code)]

use std::fmt::Display;
use std::marker::PhantomData;

use autosign_policy::{percent_encode_component as encode, Connection, Error, Response};

/// Every route's path and query, in one place.
pub mod path {
    use super::encode;

    pub fn certificate(name: &str) -> String {
        format!("/puppet-ca/v1/certificate/{name}")
    }
    pub fn certificate_request(name: &str) -> String {
        format!("/puppet-ca/v1/certificate_request/{name}")
    }
    pub fn certificate_status(name: &str) -> String {
        format!("/puppet-ca/v1/certificate_status/{name}")
    }
    /// puppetserver requires a key segment and ignores it; `any` it is.
    pub fn certificate_statuses(state: Option<&str>) -> String {
        match state {
            Some(state) => format!(
                "/puppet-ca/v1/certificate_statuses/any?state={}",
                encode(state)
            ),
            None => "/puppet-ca/v1/certificate_statuses/any".to_string(),
        }
    }
    pub const CRL: &str = "/puppet-ca/v1/certificate_revocation_list/ca";
    pub const EXPIRATIONS: &str = "/puppet-ca/v1/expirations";
    pub const CLEAN: &str = "/puppet-ca/v1/clean";
    pub const SIGN: &str = "/puppet-ca/v1/sign";
    pub const SIGN_ALL: &str = "/puppet-ca/v1/sign/all";
    pub const RENEWAL: &str = "/puppet-ca/v1/certificate_renewal";
    pub const SIMPLE_STATUS: &str = "/status/v1/simple";
    pub fn simple_status_of(service: &str) -> String {
        format!("/status/v1/simple/{service}")
    }
    pub const SERVICES: &str = "/status/v1/services";

    pub const FEATURES: &str = "/features";
    pub const FEATURES_V2: &str = "/v2/features";
    pub const VERSION: &str = "/version";
    pub const FOREMAN_CA: &str = "/puppet/ca";
    /// Foreman's sign (POST) and clean (DELETE) of one host.
    pub fn foreman_host(host: &str) -> String {
        format!("/puppet/ca/{host}")
    }
    pub fn validate(certname: Option<&str>) -> String {
        match certname {
            Some(name) => format!("/puppet/ca/validate?certname={}", encode(name)),
            None => "/puppet/ca/validate".to_string(),
        }
    }
    pub const AUTOSIGN: &str = "/puppet/ca/autosign";
    /// smart-proxy's logs module, as Foreman's Logs tab polls it.
    pub fn logs(from_timestamp: Option<&str>) -> String {
        match from_timestamp {
            Some(t) => format!("/logs/?from_timestamp={}", encode(t)),
            None => "/logs/".to_string(),
        }
    }
    /// A host's token or allow-list entry; `token_ttl` in minutes, as Foreman sends it.
    pub fn autosign(host: &str, token_ttl: Option<&str>) -> String {
        match token_ttl {
            Some(ttl) => format!("/puppet/ca/autosign/{host}?token_ttl={}", encode(ttl)),
            None => format!("/puppet/ca/autosign/{host}"),
        }
    }

    pub const TOKENS: &str = "/api/v1/tokens";
    pub const ALL_TOKENS: &str = "/api/v1/tokens?all=true";
    pub fn token(id: &str) -> String {
        format!("/api/v1/tokens/{id}")
    }
    pub const ENTRIES: &str = "/api/v1/autosign-entries";
    pub const IMPORT_ENTRIES: &str = "/api/v1/autosign-entries/import";
    pub fn entry(pattern: &str) -> String {
        format!("/api/v1/autosign-entries/{pattern}")
    }
    /// The event log, filtered by `(name, value)` pairs (values percent-encoded).
    pub fn events(filters: &[(&str, &str)]) -> String {
        let query: Vec<String> = filters
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        if query.is_empty() {
            "/api/v1/events".to_string()
        } else {
            format!("/api/v1/events?{}", query.join("&"))
        }
    }
    pub fn history(certname: &str) -> String {
        format!("/api/v1/hosts/{certname}/history")
    }
    pub const METRICS: &str = "/metrics";
}

/// What a call gives back: the response, panicking on a transport error ([`Panics`]), or
/// the `Result` itself ([`Fallible`]).
pub trait Outcome {
    type Out;
    fn finish(method: &str, path: &str, result: Result<Response, Error>) -> Self::Out;
}

/// Calls return [`Response`]; a transport error fails the test.
pub enum Panics {}

impl Outcome for Panics {
    type Out = Response;
    fn finish(method: &str, path: &str, result: Result<Response, Error>) -> Response {
        result.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

/// Calls return `Result<Response, Error>`, for tests that expect or retry failures.
pub enum Fallible {}

impl Outcome for Fallible {
    type Out = Result<Response, Error>;
    fn finish(_: &str, _: &str, result: Result<Response, Error>) -> Self::Out {
        result
    }
}

fn send<M: Outcome>(
    conn: &mut Connection,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> M::Out {
    M::finish(method, path, conn.request(method, path, headers, body))
}

const JSON_BODY: (&str, &str) = ("Content-Type", "application/json");
const ACCEPT_JSON: (&str, &str) = ("Accept", "application/json");

/// One client call, for tables of routes a test tries in turn.
pub type Call = fn(&mut Connection) -> Response;

/// The entry points, on any connection.
pub trait ServiceClient {
    fn ca(&mut self) -> PuppetCa<'_>;
    fn foreman(&mut self) -> Foreman<'_>;
    fn api(&mut self) -> Api<'_>;
    fn try_ca(&mut self) -> PuppetCa<'_, Fallible>;
    fn try_foreman(&mut self) -> Foreman<'_, Fallible>;
    fn try_api(&mut self) -> Api<'_, Fallible>;
    /// Exactly this request, for what no typed call sends (unknown routes, missing
    /// segments, hostile bytes). Callers say why they need it.
    fn raw(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response;
}

impl ServiceClient for Connection {
    fn ca(&mut self) -> PuppetCa<'_> {
        PuppetCa::new(self)
    }
    fn foreman(&mut self) -> Foreman<'_> {
        Foreman::new(self)
    }
    fn api(&mut self) -> Api<'_> {
        Api::new(self)
    }
    fn try_ca(&mut self) -> PuppetCa<'_, Fallible> {
        PuppetCa::new(self)
    }
    fn try_foreman(&mut self) -> Foreman<'_, Fallible> {
        Foreman::new(self)
    }
    fn try_api(&mut self) -> Api<'_, Fallible> {
        Api::new(self)
    }
    fn raw(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        send::<Panics>(self, method, path, headers, body)
    }
}

/// puppetserver's CA API, as agents and `puppetserver ca` use it.
pub struct PuppetCa<'a, M: Outcome = Panics> {
    conn: &'a mut Connection,
    _outcome: PhantomData<M>,
}

impl<'a, M: Outcome> PuppetCa<'a, M> {
    fn new(conn: &'a mut Connection) -> Self {
        PuppetCa {
            conn,
            _outcome: PhantomData,
        }
    }

    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> M::Out {
        send::<M>(self.conn, "GET", path, headers, b"")
    }

    /// GET a certificate (`ca` is the CA bundle).
    pub fn certificate(&mut self, name: &str) -> M::Out {
        self.get(&path::certificate(name), &[])
    }
    pub fn ca_bundle(&mut self) -> M::Out {
        self.certificate("ca")
    }
    pub fn ca_bundle_if_modified_since(&mut self, date: &str) -> M::Out {
        self.get(&path::certificate("ca"), &[("If-Modified-Since", date)])
    }
    pub fn crl(&mut self) -> M::Out {
        self.get(path::CRL, &[])
    }
    pub fn crl_if_modified_since(&mut self, date: &str) -> M::Out {
        self.get(path::CRL, &[("If-Modified-Since", date)])
    }
    /// GET a pending certificate request.
    pub fn request(&mut self, name: &str) -> M::Out {
        self.get(&path::certificate_request(name), &[])
    }
    /// PUT a CSR, as an agent does.
    pub fn submit(&mut self, name: &str, csr: &[u8]) -> M::Out {
        send::<M>(
            self.conn,
            "PUT",
            &path::certificate_request(name),
            &[("Content-Type", "text/plain")],
            csr,
        )
    }
    pub fn delete_request(&mut self, name: &str) -> M::Out {
        send::<M>(
            self.conn,
            "DELETE",
            &path::certificate_request(name),
            &[],
            b"",
        )
    }
    pub fn status(&mut self, name: &str) -> M::Out {
        self.get(&path::certificate_status(name), &[ACCEPT_JSON])
    }
    /// PUT `{"desired_state": ..., "cert_ttl": ...}`, as `puppetserver ca sign/revoke` do.
    pub fn set_status(&mut self, name: &str, desired_state: &str, cert_ttl: Option<i64>) -> M::Out {
        let body = match cert_ttl {
            Some(ttl) => format!(r#"{{"desired_state":"{desired_state}","cert_ttl":{ttl}}}"#),
            None => format!(r#"{{"desired_state":"{desired_state}"}}"#),
        };
        self.put_status(name, "application/json", body.as_bytes())
    }
    /// PUT any body as a status change, for the malformed ones.
    pub fn put_status(&mut self, name: &str, content_type: &str, body: &[u8]) -> M::Out {
        send::<M>(
            self.conn,
            "PUT",
            &path::certificate_status(name),
            &[("Content-Type", content_type)],
            body,
        )
    }
    pub fn delete_status(&mut self, name: &str) -> M::Out {
        send::<M>(
            self.conn,
            "DELETE",
            &path::certificate_status(name),
            &[],
            b"",
        )
    }
    /// Every certificate and request, or only those in `state`.
    pub fn statuses(&mut self, state: Option<&str>) -> M::Out {
        self.get(&path::certificate_statuses(state), &[ACCEPT_JSON])
    }
    pub fn expirations(&mut self) -> M::Out {
        self.get(path::EXPIRATIONS, &[])
    }
    pub fn clean(&mut self, names: &[&str]) -> M::Out {
        let body = serde_json::json!({ "certnames": names }).to_string();
        send::<M>(self.conn, "PUT", path::CLEAN, &[JSON_BODY], body.as_bytes())
    }
    pub fn sign(&mut self, names: &[&str]) -> M::Out {
        let body = serde_json::json!({ "certnames": names }).to_string();
        send::<M>(self.conn, "POST", path::SIGN, &[JSON_BODY], body.as_bytes())
    }
    pub fn sign_all(&mut self) -> M::Out {
        send::<M>(self.conn, "POST", path::SIGN_ALL, &[JSON_BODY], b"")
    }
    /// A new certificate for the connection's own certificate's key.
    pub fn renew(&mut self) -> M::Out {
        send::<M>(self.conn, "POST", path::RENEWAL, &[], b"")
    }
    /// `running` while the service can decide, `error` (503) when it cannot.
    pub fn simple_status(&mut self) -> M::Out {
        self.get(path::SIMPLE_STATUS, &[])
    }
    pub fn simple_status_of(&mut self, service: &str) -> M::Out {
        self.get(&path::simple_status_of(service), &[])
    }
    pub fn services(&mut self) -> M::Out {
        self.get(path::SERVICES, &[])
    }
}

/// The smart-proxy API, with Foreman's `Accept: application/json` on every call.
pub struct Foreman<'a, M: Outcome = Panics> {
    conn: &'a mut Connection,
    accept_json: bool,
    headers: Vec<(String, String)>,
    _outcome: PhantomData<M>,
}

impl<'a, M: Outcome> Foreman<'a, M> {
    fn new(conn: &'a mut Connection) -> Self {
        Foreman {
            conn,
            accept_json: true,
            headers: Vec::new(),
            _outcome: PhantomData,
        }
    }

    /// Without `Accept: application/json`: the answers Foreman's scripts read, where
    /// `validate` says yes or no by status alone, with an empty body.
    pub fn plain(mut self) -> Self {
        self.accept_json = false;
        self
    }
    /// Foreman's `X-Request-Id`, which events record.
    pub fn request_id(self, id: &str) -> Self {
        self.header("X-Request-Id", id)
    }
    /// Any other header on every call.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn call(&mut self, method: &str, path: &str, body: &[u8]) -> M::Out {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if self.accept_json {
            headers.push(ACCEPT_JSON);
        }
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        send::<M>(self.conn, method, path, &headers, body)
    }

    pub fn features(&mut self) -> M::Out {
        self.call("GET", path::FEATURES, b"")
    }
    pub fn features_v2(&mut self) -> M::Out {
        self.call("GET", path::FEATURES_V2, b"")
    }
    pub fn version(&mut self) -> M::Out {
        self.call("GET", path::VERSION, b"")
    }
    /// Every certificate and request, as Foreman lists them.
    pub fn list(&mut self) -> M::Out {
        self.call("GET", path::FOREMAN_CA, b"")
    }
    pub fn sign(&mut self, host: &str) -> M::Out {
        self.call("POST", &path::foreman_host(host), b"")
    }
    /// Revoke, then delete.
    pub fn clean(&mut self, host: &str) -> M::Out {
        self.call("DELETE", &path::foreman_host(host), b"")
    }
    /// POST a CSR for a decision (the certname from `?certname=`, or the CSR's CN).
    pub fn validate(&mut self, certname: Option<&str>, csr: &[u8]) -> M::Out {
        self.call("POST", &path::validate(certname), csr)
    }
    pub fn autosign_list(&mut self) -> M::Out {
        self.call("GET", path::AUTOSIGN, b"")
    }
    /// A token for a certname (`token_ttl` in minutes), or an allow-list entry for a glob.
    pub fn create_autosign(&mut self, host: &str, token_ttl: Option<&str>) -> M::Out {
        self.call("POST", &path::autosign(host, token_ttl), b"")
    }
    pub fn delete_autosign(&mut self, host: &str) -> M::Out {
        self.call("DELETE", &path::autosign(host, None), b"")
    }
    /// The log records since `from_timestamp` (seconds, a float as Foreman sends it).
    pub fn logs(&mut self, from_timestamp: Option<&str>) -> M::Out {
        self.call("GET", &path::logs(from_timestamp), b"")
    }
}

impl Foreman<'_, Panics> {
    /// A token for `host`, which must be issued.
    pub fn token(&mut self, host: &str) -> String {
        let resp = self.create_autosign(host, None);
        assert_eq!(resp.status, 200, "{}", resp.text());
        crate::support::json(&resp)["generated_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// The native API.
pub struct Api<'a, M: Outcome = Panics> {
    conn: &'a mut Connection,
    _outcome: PhantomData<M>,
}

impl<'a, M: Outcome> Api<'a, M> {
    fn new(conn: &'a mut Connection) -> Self {
        Api {
            conn,
            _outcome: PhantomData,
        }
    }

    fn get(&mut self, path: &str) -> M::Out {
        send::<M>(self.conn, "GET", path, &[], b"")
    }

    /// POST a token request, e.g. `{"certname":"a.example.com","ttl":"2h"}`.
    pub fn create_token(&mut self, json: &[u8]) -> M::Out {
        send::<M>(self.conn, "POST", path::TOKENS, &[JSON_BODY], json)
    }
    /// The live tokens.
    pub fn tokens(&mut self) -> M::Out {
        self.get(path::TOKENS)
    }
    /// Every token, used, expired and revoked too.
    pub fn all_tokens(&mut self) -> M::Out {
        self.get(path::ALL_TOKENS)
    }
    pub fn revoke_token(&mut self, id: impl Display) -> M::Out {
        send::<M>(self.conn, "DELETE", &path::token(&id.to_string()), &[], b"")
    }
    pub fn entries(&mut self) -> M::Out {
        self.get(path::ENTRIES)
    }
    /// POST an allow-list entry, e.g. `{"pattern":"*.example.com"}`.
    pub fn add_entry(&mut self, json: &[u8]) -> M::Out {
        send::<M>(self.conn, "POST", path::ENTRIES, &[JSON_BODY], json)
    }
    pub fn remove_entry(&mut self, pattern: &str) -> M::Out {
        send::<M>(self.conn, "DELETE", &path::entry(pattern), &[], b"")
    }
    /// POST an autosign.conf to import.
    pub fn import_entries(&mut self, conf: &[u8]) -> M::Out {
        send::<M>(self.conn, "POST", path::IMPORT_ENTRIES, &[], conf)
    }
    /// The event log, filtered by `(name, value)` pairs: `certname`, `kind`, `decision`,
    /// `since`, `before`, `limit`.
    pub fn events(&mut self, filters: &[(&str, &str)]) -> M::Out {
        self.get(&path::events(filters))
    }
    pub fn history(&mut self, certname: &str) -> M::Out {
        self.get(&path::history(certname))
    }
    /// Prometheus metrics.
    pub fn metrics(&mut self) -> M::Out {
        self.get(path::METRICS)
    }
}
