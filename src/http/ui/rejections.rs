//! Rejected attempts, newest first, filtered by reason, certname and time; each links to
//! the host's history.

use actix_web::{web, HttpResponse};
use maud::html;

use super::{encode, layout, mono, ok, when, Nav, Operator};
use crate::domain::decision::{Reason, Verdict};
use crate::domain::event::EventFilter;
use crate::http::errors::PageError;
use crate::http::HttpState;
use crate::time;

const PAGE: u32 = 50;

#[derive(serde::Deserialize)]
pub struct Query {
    reason: Option<String>,
    certname: Option<String>,
    /// A date (YYYY-MM-DD) or an RFC 3339 time.
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
}

fn parse_time(name: &str, text: Option<&str>, end_of_day: bool) -> Result<Option<i64>, PageError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let full = if text.len() == 10 {
        format!(
            "{text}T{}Z",
            if end_of_day { "23:59:59" } else { "00:00:00" }
        )
    } else {
        text.to_string()
    };
    time::parse_rfc3339(&full).map(Some).ok_or_else(|| {
        PageError::BadRequest(format!(
            "{name}: '{text}' is not a date (YYYY-MM-DD) or an RFC 3339 time"
        ))
    })
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub async fn page(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    query: web::Query<Query>,
) -> Result<HttpResponse, PageError> {
    let reason = nonempty(&query.reason);
    if let Some(r) = &reason {
        if !Reason::ALL.iter().any(|k| k.code() == r) {
            return Err(PageError::BadRequest(format!("unknown reason '{r}'")));
        }
    }
    let certname = nonempty(&query.certname).map(|c| c.to_ascii_lowercase());
    let filter = EventFilter {
        decision: Some(Verdict::Rejected),
        reason: reason.clone(),
        certname: certname.clone(),
        since: parse_time("since", query.since.as_deref(), false)?,
        until: parse_time("until", query.until.as_deref(), true)?,
        before_id: query.before,
        limit: PAGE,
        ..Default::default()
    };
    let events = state.app.events(&filter).await?;
    let next = (events.len() == PAGE as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    let keep = |extra: &str| {
        let mut q = Vec::new();
        if let Some(r) = &reason {
            q.push(format!("reason={}", encode(r)));
        }
        if let Some(c) = &certname {
            q.push(format!("certname={}", encode(c)));
        }
        if let Some(s) = nonempty(&query.since) {
            q.push(format!("since={}", encode(&s)));
        }
        if let Some(u) = nonempty(&query.until) {
            q.push(format!("until={}", encode(&u)));
        }
        q.push(extra.to_string());
        format!("/ui/rejections?{}", q.join("&"))
    };
    let body = html! {
        form.filters method="get" action="/ui/rejections" {
            label { "Reason "
                select name="reason" {
                    option value="" { "any" }
                    @for r in Reason::ALL.iter().filter(|r| !matches!(r.code(), "token" | "allow_list")) {
                        option value=(r.code()) selected[reason.as_deref() == Some(r.code())] { (r.code()) }
                    }
                }
            }
            label { "Certname " input name="certname" value=(certname.clone().unwrap_or_default()) spellcheck="false" autocapitalize="none"; }
            label { "Since " input name="since" type="date" value=(nonempty(&query.since).unwrap_or_default()); }
            label { "Until " input name="until" type="date" value=(nonempty(&query.until).unwrap_or_default()); }
            button type="submit" { "Filter" }
            a href="/ui/rejections" { "Clear" }
        }
        @if events.is_empty() { p.empty { "No rejected attempts match." } } @else {
            div.scroll { table.rejections {
                thead { tr { th { "When" } th { "Certname" } th { "Reason" } th { "Why" } th { "CSR fingerprint" } th { "Asked by" } } }
                tbody {
                    @for e in &events {
                        tr {
                            td { (when(e.at)) }
                            td { @if let Some(c) = &e.certname { a href=(format!("/ui/hosts/{}", encode(c))) { (c) } } @else { span.muted { "(unreadable)" } } }
                            td { span.tag.bad { (e.reason.as_deref().unwrap_or("")) } }
                            td { (e.message.as_deref().unwrap_or("")) }
                            td { @if let Some(fp) = &e.csr_fingerprint { (mono(fp)) } }
                            td { (e.actor) }
                        }
                    }
                }
            } }
        }
        nav.pager {
            @if query.before.is_some() { a href=(keep("")) { "← Newest" } }
            @if let Some(id) = next { a href=(keep(&format!("before={id}"))) { "Older →" } }
        }
    };
    Ok(ok(layout(
        "Rejections",
        Some(&operator),
        Nav::Rejections,
        None,
        body,
    )))
}
