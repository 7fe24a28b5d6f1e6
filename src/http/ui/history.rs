//! A host's history: its current certificate, pending request and live tokens, and a
//! timeline of its tokens, decisions and certificates.

use actix_web::{web, HttpResponse};
use maud::html;

use super::{layout, mono, ok, when, Nav, Operator};
use crate::http::errors::PageError;
use crate::http::HttpState;

const EVENTS: u32 = 200;

pub async fn page(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let name = path.into_inner();
    let status = state.authority.status(&name).await?;
    let tokens = state.app.list_tokens(Some(&name), true).await?;
    let events = state.app.host_timeline(&name, EVENTS).await?;
    let body = html! {
        section.card {
            h2 { "Now" }
            dl {
                dt { "Certificate" }
                dd {
                    @match &status {
                        Some(s) if s.state != "requested" => {
                            span.tag.(s.state) { (s.state) } " serial " (s.serial_number.unwrap_or(0))
                            ", not after " (s.not_after.as_deref().unwrap_or("?")) " " (mono(&s.fingerprint))
                        }
                        Some(_) => { "pending request — " a href="/ui/pending" { "decide on it" } }
                        None => { span.muted { "none" } }
                    }
                }
                dt { "Tokens" }
                dd {
                    @if tokens.is_empty() { span.muted { "none issued" } }
                    @for t in &tokens { span.tag { "#" (t.record.id) " " (format!("{:?}", t.state).to_lowercase()) } " " }
                }
            }
        }
        section {
            h2 { "Timeline " small.muted { "(oldest first, last " (EVENTS) " events)" } }
            @if events.is_empty() { p.empty { "Nothing recorded for " (name) "." } }
            ol.timeline {
                @for e in &events {
                    li.(e.decision.as_deref().unwrap_or("info")) {
                        (when(e.at)) " "
                        strong { (e.kind.replace('_', " ")) }
                        @if let Some(d) = &e.decision { " " span.tag.(d) { (d) } }
                        @if let Some(r) = &e.reason { " " code { (r) } }
                        @if let Some(m) = &e.message { " — " (m) }
                        " " small.muted { "by " (e.actor) }
                    }
                }
            }
        }
    };
    Ok(ok(layout(
        &format!("History of {name}"),
        Some(&operator),
        Nav::None,
        None,
        body,
    )))
}
