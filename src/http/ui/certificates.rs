//! Certificates: search by name prefix, state and expiry, a page at a time; revoke or
//! clean.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use maud::html;

use super::{
    checked_form, csrf_field, encode, layout, mono, ok, redirect_with, when, Nav, Operator,
};
use crate::http::errors::PageError;
use crate::http::HttpState;
use crate::store::{CertQuery, CertState};
use crate::time;

const PAGE: u32 = 50;

#[derive(serde::Deserialize)]
pub struct Query {
    name: Option<String>,
    state: Option<String>,
    /// Expiring within this many days.
    within: Option<String>,
    after: Option<String>,
    notice: Option<String>,
}

pub async fn page(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    query: web::Query<Query>,
) -> Result<HttpResponse, PageError> {
    let now = time::now();
    let name = query
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_ascii_lowercase);
    let cert_state = match query.state.as_deref().unwrap_or("") {
        "" => None,
        "valid" => Some(CertState::Valid),
        "revoked" => Some(CertState::Revoked),
        "expired" => Some(CertState::Expired),
        other => return Err(PageError::BadRequest(format!("unknown state '{other}'"))),
    };
    let within = match query
        .within
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        None => None,
        Some(w) => Some(
            w.parse::<i64>()
                .ok()
                .filter(|d| (0..=36_500).contains(d))
                .ok_or_else(|| PageError::BadRequest(format!("'{w}' is not a number of days")))?,
        ),
    };
    let certs = state
        .app
        .certificate_page(&CertQuery {
            name_prefix: name.clone(),
            state: cert_state,
            expires_before: within.map(|d| now + d * 86_400),
            now,
            after: query.after.clone(),
            limit: PAGE,
        })
        .await?;
    let next = (certs.len() == PAGE as usize)
        .then(|| certs.last().map(|c| c.certname.clone()))
        .flatten();
    let mut keep = Vec::new();
    if let Some(n) = &name {
        keep.push(format!("name={}", encode(n)));
    }
    if let Some(s) = query.state.as_deref().filter(|s| !s.is_empty()) {
        keep.push(format!("state={}", encode(s)));
    }
    if let Some(w) = within {
        keep.push(format!("within={w}"));
    }
    let selected = query.state.as_deref().unwrap_or("");
    let body = html! {
        form.filters method="get" action="/ui/certificates" {
            label { "Name starts with " input name="name" value=(name.clone().unwrap_or_default()) spellcheck="false" autocapitalize="none"; }
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in ["valid", "revoked", "expired"] { option value=(s) selected[selected == s] { (s) } }
                }
            }
            label { "Expiring within (days) " input name="within" inputmode="numeric" size="5" value=(within.map(|w| w.to_string()).unwrap_or_default()); }
            button type="submit" { "Search" }
            a href="/ui/certificates" { "Clear" }
        }
        @if certs.is_empty() { p.empty { "No certificate matches." } } @else {
            div.scroll { table {
                thead { tr { th { "Certname" } th { "State" } th { "Serial" } th { "Not after" } th { "Fingerprint" } th { span.sr { "Actions" } } } }
                tbody {
                    @for c in &certs {
                        @let st = if c.revoked_at.is_some() { "revoked" } else if c.not_after <= now { "expired" } else { "valid" };
                        tr {
                            td { a href=(format!("/ui/hosts/{}", encode(&c.certname))) { (c.certname) } }
                            td { span.tag.(st) { (st) } }
                            td { (c.serial) }
                            td { (when(c.not_after)) }
                            td { (mono(&c.fingerprint)) }
                            td.actions {
                                @if c.revoked_at.is_none() {
                                    form method="post" action=(format!("/ui/certificates/{}/revoke", encode(&c.certname))) {
                                        (csrf_field(&operator))
                                        button.danger type="submit" aria-label=(format!("Revoke {}", c.certname)) { "Revoke" }
                                    }
                                }
                                form method="post" action=(format!("/ui/certificates/{}/clean", encode(&c.certname))) {
                                    (csrf_field(&operator))
                                    button.danger type="submit" aria-label=(format!("Clean {}", c.certname)) { "Clean" }
                                }
                            }
                        }
                    }
                }
            } }
        }
        nav.pager {
            @if query.after.is_some() { a href=(format!("/ui/certificates?{}", keep.join("&"))) { "← First" } }
            @if let Some(last) = next {
                a href=(format!("/ui/certificates?{}after={}", keep.iter().map(|k| format!("{k}&")).collect::<String>(), encode(&last))) { "Next →" }
            }
        }
    };
    Ok(ok(layout(
        "Certificates",
        Some(&operator),
        Nav::Certificates,
        query.notice.as_deref(),
        body,
    )))
}

pub async fn revoke(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    checked_form(&operator, form)?;
    let name = path.into_inner();
    let serial = state.authority.revoke(&name, &operator.actor).await?;
    Ok(redirect_with(
        "/ui/certificates",
        &format!("Revoked {name} (serial {serial})."),
    ))
}

pub async fn clean(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    checked_form(&operator, form)?;
    let name = path.into_inner();
    state.authority.clean(&name, &operator.actor).await?;
    Ok(redirect_with(
        "/ui/certificates",
        &format!("Cleaned {name}: revoked and forgotten."),
    ))
}
