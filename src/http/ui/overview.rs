//! The overview: what waits, what may autosign, what was refused; approved vs rejected
//! per hour over 7 days (server-rendered SVG); certificates expiring within 30 days.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::{encode, layout, ok, when, Nav, Notice, Operator};
use crate::http::errors::PageError;
use crate::http::HttpState;
use crate::time;

/// Approved (up) and rejected (down) bars per hour, with day marks.
fn chart(hours: &[(i64, u64, u64)]) -> Markup {
    let width = 840.0_f64;
    let height = 180.0_f64;
    let mid = height / 2.0;
    let n = hours.len().max(1) as f64;
    let bar = width / n;
    let peak = hours
        .iter()
        .map(|(_, a, r)| (*a).max(*r))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let scale = (mid - 14.0) / peak;
    let approved: u64 = hours.iter().map(|h| h.1).sum();
    let rejected: u64 = hours.iter().map(|h| h.2).sum();
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {width} {height}")) role="img" preserveAspectRatio="none"
                aria-label=(format!("Decisions per hour over the last 7 days: {approved} approved, {rejected} rejected; the busiest hour had {peak} of one kind")) {
                line x1="0" x2=(width) y1=(mid) y2=(mid) class="axis" {}
                @for (i, (hour, a, r)) in hours.iter().enumerate() {
                    @let x = i as f64 * bar;
                    @if hour % 86_400 == 0 {
                        line x1=(x) x2=(x) y1="0" y2=(height) class="day" {}
                    }
                    @if *a > 0 {
                        rect x=(x) width=(bar.max(1.0)) y=(mid - *a as f64 * scale) height=(*a as f64 * scale) class="ok" {}
                    }
                    @if *r > 0 {
                        rect x=(x) width=(bar.max(1.0)) y=(mid) height=(*r as f64 * scale) class="bad" {}
                    }
                }
            }
            div.days aria-hidden="true" {
                @for (hour, _, _) in hours.iter().filter(|(h, _, _)| h % 86_400 == 0) {
                    span { (time::rfc3339(*hour).get(5..10).unwrap_or("")) }
                }
            }
            figcaption {
                span.key.ok { "approved" } " " (approved) " above the line · "
                span.key.bad { "rejected" } " " (rejected) " below · per hour, last 7 days (UTC), busiest hour " (peak as u64)
            }
        }
    }
}

pub async fn page(
    Operator(operator): Operator,
    state: web::Data<HttpState>,
    query: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let o = state.app.overview().await?;
    let card = |href: &str, figure: String, label: &str, alert: bool| {
        html! {
            a.stat.alert[alert] href=(href) { span.figure { (figure) } span.what { (label) } }
        }
    };
    let body = html! {
        div.stats {
            (card("/ui/pending", o.pending.to_string(), "pending requests", o.pending > 0))
            (card("/ui/allowed", o.live_tokens.to_string(), "live build tokens", false))
            (card("/ui/allowed", o.allow_entries.to_string(), "allow-list entries", false))
            (card("/ui/rejections", o.rejections_24h.to_string(), "rejections in 24 h", o.rejections_24h > 0))
            (card("/ui/rejections", o.suspicious_24h.to_string(), "suspicious alerts in 24 h", o.suspicious_24h > 0))
        }
        section {
            h2 { "Decisions" }
            (chart(&o.chart))
        }
        @if !o.suspicious.is_empty() {
            section {
                h2 { "Suspicious requests" }
                ul {
                    @for e in &o.suspicious {
                        li { (when(e.at)) " "
                            @if let Some(c) = &e.certname { a href=(format!("/ui/hosts/{}", encode(c))) { (c) } " " }
                            (e.message.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        section {
            h2 { "Expiring within 30 days " small.muted { "(" (o.expiring_count) ")" } }
            @if o.expiring.is_empty() { p.empty { "No certificate expires within 30 days." } } @else {
                div.scroll { table {
                    thead { tr { th { "Certname" } th { "Not after" } th { "Serial" } } }
                    tbody {
                        @for c in &o.expiring {
                            tr {
                                td { a href=(format!("/ui/hosts/{}", encode(&c.certname))) { (c.certname) } }
                                td { (when(c.not_after)) }
                                td { (c.serial) }
                            }
                        }
                    }
                } }
                @if o.expiring_count > o.expiring.len() as u64 {
                    p { a href="/ui/certificates?state=valid&within=30" { "All " (o.expiring_count) " →" } }
                }
            }
        }
    };
    Ok(ok(layout(
        "Overview",
        Some(&operator),
        Nav::Overview,
        query.notice.as_deref(),
        body,
    )))
}
