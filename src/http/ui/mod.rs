//! The operator's page under `/ui/`: server-rendered HTML (maud), a small stylesheet,
//! a few lines of optional JavaScript. Sign-in by password or admin client certificate;
//! a session cookie (HttpOnly, Secure, SameSite=Strict); a CSRF token on every form that
//! changes state. Each page is a file: `login`, `overview`, `pending`, `allowed`,
//! `rejections`, `certificates`, `history`.

mod allowed;
mod certificates;
mod history;
mod login;
mod overview;
mod pending;
mod rejections;

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::errors::PageError;
use super::HttpState;
use crate::app::{App, SignedIn};
use crate::time;

/// The session cookie's name.
const COOKIE: &str = "autosign_session";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ui", web::get().to(|| async { redirect("/ui/") }))
        .service(
            web::scope("/ui")
                .app_data(web::FormConfig::default().limit(16 * 1024))
                .route("/", web::get().to(overview::page))
                .route("/login", web::get().to(login::form))
                .route("/login", web::post().to(login::submit))
                .route("/logout", web::post().to(login::logout))
                .route("/static/style.css", web::get().to(style))
                .route("/static/app.js", web::get().to(script))
                .route("/pending", web::get().to(pending::page))
                .route("/pending/{name}/sign", web::post().to(pending::sign))
                .route("/pending/{name}/reject", web::post().to(pending::reject))
                .route("/allowed", web::get().to(allowed::page))
                .route("/tokens", web::post().to(allowed::issue))
                .route("/tokens/{id}/revoke", web::post().to(allowed::revoke))
                .route("/entries", web::post().to(allowed::add_entry))
                .route("/entries/remove", web::post().to(allowed::remove_entry))
                .route("/rejections", web::get().to(rejections::page))
                .route("/hosts/{name}", web::get().to(history::page))
                .route("/certificates", web::get().to(certificates::page))
                .route(
                    "/certificates/{name}/revoke",
                    web::post().to(certificates::revoke),
                )
                .route(
                    "/certificates/{name}/clean",
                    web::post().to(certificates::clean),
                ),
        );
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(include_str!("style.css"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(include_str!("app.js"))
}

/// The signed-in operator; without a live session the request is sent to the sign-in
/// form (an admin client certificate is signed in there without a password).
pub struct Operator(pub SignedIn);

impl FromRequest for Operator {
    type Error = PageError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Operator, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<HttpState>>().cloned();
        let cookie = session_cookie(req);
        let request_id = super::request_id(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| PageError::Internal("HttpState missing".into()))?;
            let Some(cookie) = cookie else {
                return Err(PageError::SignIn);
            };
            match state.app.session(&cookie).await? {
                // What the operator does in this request is recorded with its id.
                Some(mut signed_in) => {
                    signed_in.actor.request_id = request_id;
                    Ok(Operator(signed_in))
                }
                None => Err(PageError::SignIn),
            }
        })
    }
}

/// The value of the session cookie, if the browser sent one.
pub(crate) fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

fn set_cookie(value: &str) -> String {
    format!("{COOKIE}={value}; Path=/ui; HttpOnly; Secure; SameSite=Strict")
}

fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

/// A submitted form's fields.
pub struct Fields(HashMap<String, String>);

impl Fields {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    /// The field, trimmed; None when empty.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name).trim()).filter(|v| !v.is_empty())
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }
}

/// A state-changing form: refused (403) unless it carries the session's CSRF token.
pub fn checked_form(
    operator: &SignedIn,
    form: web::Form<HashMap<String, String>>,
) -> Result<Fields, PageError> {
    let fields = Fields(form.into_inner());
    if App::csrf_matches(operator, fields.get("csrf")) {
        Ok(fields)
    } else {
        tracing::warn!(operator = %operator.name, "form refused: missing or wrong CSRF token");
        Err(PageError::Forbidden(
            "this form is missing its CSRF token or it is not this session's; reload the page and try again"
                .into(),
        ))
    }
}

/// A 303 to `location` (after a POST, so reloading does not post again).
pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Back to `path` with a notice shown once.
pub fn redirect_with(path: &str, notice: &str) -> HttpResponse {
    redirect(&format!("{path}?notice={}", encode(notice)))
}

/// Percent-encode a query value or path segment.
pub fn encode(text: &str) -> String {
    autosign_policy::percent_encode_component(text)
}

/// An HTML page with the headers every page of the operator's page carries.
pub fn html_response(status: actix_web::http::StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(markup.into_string())
}

pub fn ok(markup: Markup) -> HttpResponse {
    html_response(actix_web::http::StatusCode::OK, markup)
}

/// Which page of the navigation is open.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Pending,
    Allowed,
    Rejections,
    Certificates,
    None,
}

/// The frame of every page: navigation, who is signed in, sign-out, the notice.
pub fn layout(
    title: &str,
    operator: Option<&SignedIn>,
    nav: Nav,
    notice: Option<&str>,
    body: Markup,
) -> Markup {
    let link = |href: &str, label: &str, this: Nav| {
        html! {
            a href=(href) aria-current=[(nav == this).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · autosign-proxy" }
                link rel="stylesheet" href="/ui/static/style.css";
                script src="/ui/static/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "autosign-proxy" }
                    @if let Some(op) = operator {
                        nav aria-label="Pages" {
                            (link("/ui/", "Overview", Nav::Overview))
                            (link("/ui/pending", "Pending", Nav::Pending))
                            (link("/ui/allowed", "Allowed to autosign", Nav::Allowed))
                            (link("/ui/rejections", "Rejections", Nav::Rejections))
                            (link("/ui/certificates", "Certificates", Nav::Certificates))
                        }
                        form.signout method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(op.csrf);
                            span.who { (op.name) @if op.via == "certificate" { " (certificate)" } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    @if let Some(text) = notice {
                        p.notice role="status" { (text) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field of a state-changing form.
pub fn csrf_field(operator: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(operator.csrf); }
}

/// A time as UTC text with how long ago (or until) it is.
pub fn when(at: i64) -> Markup {
    let now = time::now();
    let delta = now - at;
    let relative = if delta >= 0 {
        format!("{} ago", span(delta))
    } else {
        format!("in {}", span(-delta))
    };
    let text = time::rfc3339(at).replace('T', " ").replace('Z', " UTC");
    html! { time datetime=(time::rfc3339(at)) title=(relative) { (text) } " " small.muted { "(" (relative) ")" } }
}

fn span(seconds: i64) -> String {
    match seconds {
        s if s < 90 => format!("{s} s"),
        s if s < 90 * 60 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// Text that may be long (fingerprints): breakable anywhere, monospace.
pub fn mono(text: &str) -> Markup {
    html! { code.mono { (text) } }
}

/// The HTML of an error page.
pub fn error_page(status: u16, message: &str) -> Markup {
    layout(
        &format!("Error {status}"),
        None,
        Nav::None,
        None,
        html! {
            p.error { (message) }
            p { a href="/ui/" { "Back to the overview" } }
        },
    )
}

/// A non-breaking label, for table headings on narrow screens.
pub fn label(text: &str) -> Markup {
    html! { (PreEscaped(text.replace(' ', "&nbsp;"))) }
}

/// The `notice` query parameter, shown once after an action.
#[derive(serde::Deserialize)]
pub struct Notice {
    pub notice: Option<String>,
}
