//! Pending requests: what each asks for and why it is pending; sign (alt names and
//! authorization extensions only after an explicit confirmation, pp_cli_auth never) or
//! reject.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use maud::html;

use super::{checked_form, csrf_field, encode, layout, mono, ok, redirect_with, when, Operator};
use crate::app::authority::{PendingRequest, SignOptions};
use crate::http::errors::PageError;
use crate::http::HttpState;

const PAGE: usize = 50;

#[derive(serde::Deserialize)]
pub struct Query {
    notice: Option<String>,
    #[serde(default)]
    offset: usize,
}

/// Alt names beyond `DNS:<certname>`.
fn extra_alt_names(p: &PendingRequest) -> Vec<String> {
    let own = format!("DNS:{}", p.request.certname);
    p.status
        .subject_alt_names
        .iter()
        .filter(|n| **n != own)
        .cloned()
        .collect()
}

pub async fn page(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    query: web::Query<Query>,
) -> Result<HttpResponse, PageError> {
    let (requests, total) = state.authority.pending_requests(query.offset, PAGE).await?;
    let body = html! {
        p.muted { (total) " pending request" @if total != 1 { "s" } "." }
        @if requests.is_empty() {
            p.empty { "Nothing is waiting for a decision." }
        }
        @for p in &requests {
            @let extra = extra_alt_names(p);
            @let auth = !p.status.authorization_extensions.is_empty();
            article.card.request id=(format!("req-{}", p.request.certname)) {
                h2 { a href=(format!("/ui/hosts/{}", encode(&p.request.certname))) { (p.request.certname) } }
                dl {
                    dt { "Fingerprint" } dd { (mono(&p.status.fingerprint)) }
                    dt { "Alt names" } dd { (p.status.subject_alt_names.join(", ")) }
                    dt { "Extensions" }
                    dd {
                        @if p.extensions.is_empty() { "none" }
                        @for (name, value) in &p.extensions { span.tag { (name) "=" (value) } " " }
                    }
                    dt { "Why pending" }
                    dd { (p.status.pending_reason.as_deref().unwrap_or("autosigning is off, or no policy ran")) }
                    dt { "Received" } dd { (when(p.request.received_at)) }
                }
                div.actions {
                    @if p.cli_auth {
                        p.error { "This request asks for pp_cli_auth (CA administrator rights): it is never signed. Reject it." }
                    } @else {
                        form method="post" action=(format!("/ui/pending/{}/sign", encode(&p.request.certname))) {
                            (csrf_field(&operator))
                            @if !extra.is_empty() || auth {
                                label.confirm {
                                    input type="checkbox" name="confirm" value="yes" required;
                                    " Sign with "
                                    @if !extra.is_empty() { "the alt names " strong { (extra.join(", ")) } }
                                    @if !extra.is_empty() && auth { " and " }
                                    @if auth { "authorization extensions" }
                                }
                            }
                            button type="submit" { "Sign" }
                        }
                    }
                    form method="post" action=(format!("/ui/pending/{}/reject", encode(&p.request.certname))) {
                        (csrf_field(&operator))
                        button.danger type="submit" { "Reject" }
                    }
                }
            }
        }
        nav.pager {
            @if query.offset > 0 { a href=(format!("/ui/pending?offset={}", query.offset.saturating_sub(PAGE))) { "← Newer" } }
            @if query.offset + PAGE < total { a href=(format!("/ui/pending?offset={}", query.offset + PAGE)) { "Older →" } }
        }
    };
    Ok(ok(layout(
        "Pending requests",
        Some(&operator),
        super::Nav::Pending,
        query.notice.as_deref(),
        body,
    )))
}

pub async fn sign(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let fields = checked_form(&operator, form)?;
    let name = path.into_inner();
    let Some(status) = state.authority.status(&name).await? else {
        return Err(PageError::BadRequest(format!(
            "{name} has no pending request"
        )));
    };
    let own = format!("DNS:{name}");
    let has_alt = status.subject_alt_names.iter().any(|n| *n != own);
    let has_auth = !status.authorization_extensions.is_empty();
    let confirmed = fields.checked("confirm");
    if (has_alt || has_auth) && !confirmed {
        return Err(PageError::BadRequest(format!(
            "{name} asks for alt names or authorization extensions: tick the confirmation to sign it"
        )));
    }
    let options = SignOptions {
        allow_alt_names: has_alt && confirmed,
        allow_authorization_extensions: has_auth && confirmed,
        ..SignOptions::default()
    };
    let cert = state
        .authority
        .sign(&name, options, &operator.actor)
        .await?;
    Ok(redirect_with(
        "/ui/pending",
        &format!("Signed {name} (serial {}).", cert.serial),
    ))
}

pub async fn reject(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    checked_form(&operator, form)?;
    let name = path.into_inner();
    state.authority.clean(&name, &operator.actor).await?;
    Ok(redirect_with(
        "/ui/pending",
        &format!("Rejected the request of {name}."),
    ))
}
