//! Who may autosign: live build tokens (never their values) and allow-list entries with
//! what each matches; issue a token (shown once, with the csr_attributes.yaml snippet),
//! revoke one, add or remove an entry (`*` only after a warning).

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::{
    checked_form, csrf_field, encode, layout, ok, redirect_with, when, Nav, Notice, Operator,
};
use crate::app::overview::RECENT_CERTNAMES;
use crate::app::SignedIn;
use crate::domain::token::{parse_ttl_seconds, AltName};
use crate::http::errors::PageError;
use crate::http::HttpState;
use crate::store::TokenSelector;

/// Live tokens shown on one page.
const TOKENS_SHOWN: usize = 200;
/// Example certnames shown for each entry.
const MATCH_EXAMPLES: usize = 3;

fn parse_alt_names(text: &str) -> Result<Vec<AltName>, PageError> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| AltName::parse(n).map_err(|e| PageError::BadRequest(e.to_string())))
        .collect()
}

fn issue_form(operator: &SignedIn) -> Markup {
    html! {
        form.card.grid method="post" action="/ui/tokens" {
            h2 { "Issue a build token" }
            (csrf_field(operator))
            label for="t-certname" { "Certname" }
            input id="t-certname" name="certname" required placeholder="web01.example.com" spellcheck="false" autocapitalize="none";
            label for="t-alt" { "Allowed alt names " small.muted { "(optional, comma separated: DNS:x, IP:y)" } }
            input id="t-alt" name="alt_names" spellcheck="false" autocapitalize="none";
            label for="t-ttl" { "Valid for " small.muted { "(e.g. 6h, 30m; default 6h)" } }
            input id="t-ttl" name="ttl" placeholder="6h";
            button type="submit" { "Issue token" }
        }
    }
}

fn entry_form(operator: &SignedIn) -> Markup {
    html! {
        form.card.grid method="post" action="/ui/entries" {
            h2 { "Add an allow-list entry" }
            (csrf_field(operator))
            label for="e-pattern" { "Pattern " small.muted { "(exact certname, *.domain, or *)" } }
            input id="e-pattern" name="pattern" required spellcheck="false" autocapitalize="none";
            label for="e-alt" { "Allowed alt names " small.muted { "(optional)" } }
            input id="e-alt" name="alt_names" spellcheck="false" autocapitalize="none";
            label.confirm {
                input type="checkbox" name="confirm_all" value="yes";
                " I mean " code { "*" } ": every host that asks gets a certificate (labs only)"
            }
            button type="submit" { "Add entry" }
        }
    }
}

pub async fn page(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    query: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let tokens = state.app.list_tokens(None, false).await?;
    let entries = state.app.list_allow_entries().await?;
    let patterns: Vec<String> = entries.iter().map(|e| e.pattern.clone()).collect();
    let matches = state
        .app
        .allow_entry_matches(&patterns, MATCH_EXAMPLES)
        .await?;
    let body = html! {
        section {
            h2 { "Live build tokens " small.muted { "(" (tokens.len()) ")" } }
            @if tokens.is_empty() { p.empty { "No live tokens." } } @else {
                div.scroll { table {
                    thead { tr { th { "Host" } th { "Issued by" } th { "Expires" } th { "Allowed alt names" } th { "Metadata" } th { span.sr { "Actions" } } } }
                    tbody {
                        @for t in tokens.iter().take(TOKENS_SHOWN) {
                            tr {
                                td { a href=(format!("/ui/hosts/{}", encode(&t.record.certname))) { (t.record.certname) } }
                                td { (t.record.created_by) }
                                td { (when(t.record.expires_at)) }
                                td { @for n in &t.record.alt_names { span.tag { (n) } " " } }
                                td { @if let Some(m) = &t.record.metadata { code { (m.to_string()) } } }
                                td {
                                    form method="post" action=(format!("/ui/tokens/{}/revoke", t.record.id)) {
                                        (csrf_field(&operator))
                                        button.danger type="submit" aria-label=(format!("Revoke the token of {}", t.record.certname)) { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                } }
                @if tokens.len() > TOKENS_SHOWN { p.muted { "The newest " (TOKENS_SHOWN) " are shown; find a host's token on its history page." } }
            }
        }
        section {
            h2 { "Allow-list entries " small.muted { "(" (entries.len()) ")" } }
            @if entries.is_empty() { p.empty { "No entries: only build tokens authorize requests." } } @else {
                div.scroll { table {
                    thead { tr { th { "Pattern" } th { "Matches " small.muted { "(of the newest " (RECENT_CERTNAMES) " certificates)" } } th { "Allowed alt names" } th { "Added" } th { span.sr { "Actions" } } } }
                    tbody {
                        @for (entry, examples) in entries.iter().zip(&matches) {
                            tr {
                                td { code { (entry.pattern) } @if entry.pattern == "*" { " " span.warn { "every host" } } }
                                td {
                                    @if examples.0 == 0 { span.muted { "no certificate yet" } } @else {
                                        strong { (examples.0) } " — e.g. "
                                        @for name in &examples.1 { a href=(format!("/ui/hosts/{}", encode(name))) { (name) } " " }
                                    }
                                }
                                td { @for n in &entry.alt_names { span.tag { (n) } " " } }
                                td { (when(entry.created_at)) " by " (entry.created_by) }
                                td {
                                    form method="post" action="/ui/entries/remove" {
                                        (csrf_field(&operator))
                                        input type="hidden" name="pattern" value=(entry.pattern);
                                        button.danger type="submit" aria-label=(format!("Remove {}", entry.pattern)) { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
        div.two {
            (issue_form(&operator))
            (entry_form(&operator))
        }
    };
    Ok(ok(layout(
        "Allowed to autosign",
        Some(&operator),
        Nav::Allowed,
        query.notice.as_deref(),
        body,
    )))
}

/// POST /ui/tokens: issue, and show the value this once.
pub async fn issue(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let fields = checked_form(&operator, form)?;
    let certname = fields.get("certname").trim().to_ascii_lowercase();
    let alt_names = parse_alt_names(fields.get("alt_names"))?;
    let ttl = fields
        .opt("ttl")
        .map(|t| parse_ttl_seconds(t).map_err(|e| PageError::BadRequest(e.to_string())))
        .transpose()?;
    let issued = state
        .app
        .issue_token(&certname, alt_names, None, ttl, &operator.actor)
        .await?;
    let snippet = format!(
        "# /etc/puppetlabs/puppet/csr_attributes.yaml on {}\ncustom_attributes:\n  1.2.840.113549.1.9.7: \"{}\"\n",
        issued.certname, issued.token
    );
    let body = html! {
        div.card.issued {
            p { "Build token for " strong { (issued.certname) } ", valid until " (when(issued.expires_at)) ". "
                strong { "It is shown only now." } }
            label for="token" { "Token" }
            div.copyrow {
                input id="token" readonly value=(issued.token) spellcheck="false";
                button type="button" data-copy="token" hidden { "Copy" }
            }
            label for="snippet" { code { "csr_attributes.yaml" } }
            div.copyrow {
                textarea id="snippet" readonly rows="4" spellcheck="false" { (snippet) }
                button type="button" data-copy="snippet" hidden { "Copy" }
            }
            p { a href="/ui/allowed" { "Back to Allowed to autosign" } }
        }
    };
    Ok(ok(layout(
        "Token issued",
        Some(&operator),
        Nav::Allowed,
        None,
        body,
    )))
}

pub async fn revoke(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    path: web::Path<i64>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    checked_form(&operator, form)?;
    let id = path.into_inner();
    state
        .app
        .revoke_tokens(TokenSelector::Id(id), &operator.actor)
        .await?;
    Ok(redirect_with(
        "/ui/allowed",
        &format!("Token {id} revoked."),
    ))
}

pub async fn add_entry(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let fields = checked_form(&operator, form)?;
    let pattern = fields.get("pattern").trim().to_string();
    if pattern == "*" && !fields.checked("confirm_all") {
        return Err(PageError::BadRequest(
            "'*' lets every host that asks get a certificate: tick the confirmation to add it"
                .into(),
        ));
    }
    let alt_names = parse_alt_names(fields.get("alt_names"))?;
    let added = state
        .app
        .add_allow_entry(&pattern, alt_names, &operator.actor)
        .await?;
    let notice = if added {
        format!("Added {pattern}.")
    } else {
        format!("{pattern} was already on the allow-list.")
    };
    Ok(redirect_with("/ui/allowed", &notice))
}

pub async fn remove_entry(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let fields = checked_form(&operator, form)?;
    let pattern = fields.get("pattern").to_string();
    state
        .app
        .remove_allow_entry(&pattern, &operator.actor)
        .await?;
    Ok(redirect_with("/ui/allowed", &format!("Removed {pattern}.")))
}
