//! Signing in and out: the password form, sign-in by an admin client certificate, and
//! sign-out.

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use maud::html;

use super::{
    checked_form, clear_cookie, html_response, layout, redirect, set_cookie, Nav, Operator,
};
use crate::http::errors::PageError;
use crate::http::puppet_ca::Admin;
use crate::http::HttpState;

fn address(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn login_page(status: StatusCode, error: Option<&str>, username: &str) -> HttpResponse {
    html_response(
        status,
        layout(
            "Sign in",
            None,
            Nav::None,
            None,
            html! {
                @if let Some(message) = error {
                    p.error role="alert" { (message) }
                }
                form.card.login method="post" action="/ui/login" {
                    label for="username" { "User name" }
                    input id="username" name="username" type="text" autocomplete="username"
                        autocapitalize="none" spellcheck="false" required autofocus value=(username);
                    label for="password" { "Password" }
                    input id="password" name="password" type="password" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
                p.muted { "Accounts are made on the server: " code { "autosign-proxy operator add NAME --password-stdin" } ". A browser presenting an admin client certificate is signed in without a password." }
            },
        ),
    )
}

/// GET /ui/login: the form, or, for an admin client certificate, a session at once.
pub async fn form(
    req: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, PageError> {
    if let Some(cookie) = super::session_cookie(&req) {
        if state.app.session(&cookie).await?.is_some() {
            return Ok(redirect("/ui/"));
        }
    }
    if let Ok(Admin(actor)) = Admin::extract(&req).await {
        let session = state
            .app
            .sign_in_with_certificate(&actor.name, &address(&req), actor.request_id)
            .await?;
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/ui/"))
            .insert_header((header::SET_COOKIE, set_cookie(&session.cookie)))
            .finish());
    }
    Ok(login_page(StatusCode::OK, None, ""))
}

/// POST /ui/login: username and password; a new session id on success.
pub async fn submit(
    req: HttpRequest,
    state: web::Data<HttpState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let username = form
        .get("username")
        .map(String::as_str)
        .unwrap_or("")
        .trim();
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let request_id = crate::http::request_id(&req);
    match state
        .app
        .sign_in(username, password, &address(&req), request_id)
        .await
    {
        Ok(session) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/ui/"))
            .insert_header((header::SET_COOKIE, set_cookie(&session.cookie)))
            .finish()),
        Err(e) => {
            let error = PageError::from(e);
            let (status, message) = error.status_and_message();
            if status.is_server_error() {
                return Err(error);
            }
            Ok(login_page(status, Some(&message), username))
        }
    }
}

/// POST /ui/logout: end the session.
pub async fn logout(
    req: HttpRequest,
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    checked_form(&operator, form)?;
    if let Some(cookie) = super::session_cookie(&req) {
        state.app.sign_out(&cookie, &operator.actor).await?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/login"))
        .insert_header((header::SET_COOKIE, clear_cookie()))
        .finish())
}
