//! `autosign-proxy events`: recorded events, newest first, or followed.

use clap::Args;

use autosign_proxy::app::App;
use autosign_proxy::domain::decision::Verdict;
use autosign_proxy::domain::event::{EventFilter, EventRecord};
use autosign_proxy::time;

use super::{app_error, to_json};

#[derive(Args)]
pub struct EventsArgs {
    /// Only rejected decisions.
    #[arg(long, conflicts_with = "approved")]
    rejected: bool,
    /// Only approved decisions.
    #[arg(long)]
    approved: bool,
    #[arg(long)]
    certname: Option<String>,
    /// Event kind, e.g. decision, token_issued.
    #[arg(long)]
    kind: Option<String>,
    /// Only events older than this id (paging).
    #[arg(long)]
    before: Option<i64>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Only events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only events at or before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Keep printing new events as they are recorded.
    #[arg(long, short = 'f')]
    follow: bool,
}

pub async fn events(app: &App, args: EventsArgs) -> Result<(), String> {
    let decision = match (args.rejected, args.approved) {
        (true, _) => Some(Verdict::Rejected),
        (_, true) => Some(Verdict::Approved),
        _ => None,
    };
    let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, String> {
        v.as_deref()
            .map(|t| {
                time::parse_rfc3339(t).ok_or(format!(
                    "--{name} '{t}' is not a time like 2026-11-23T02:00:00Z"
                ))
            })
            .transpose()
    };
    let mut filter = EventFilter {
        certname: args.certname,
        kind: args.kind,
        decision,
        reason: None,
        before_id: args.before,
        after_id: None,
        since: time("since", &args.since)?,
        until: time("until", &args.until)?,
        ascending: false,
        limit: args.limit.clamp(1, 1000),
    };
    let print = |event: &EventRecord| -> Result<(), String> {
        if args.json {
            println!("{}", to_json(event)?);
        } else {
            println!("{}", event_line(event));
        }
        Ok(())
    };
    let mut events = app.events(&filter).await.map_err(app_error)?;
    if args.follow {
        // The last page oldest first, then whatever comes after it, as it comes.
        events.reverse();
    }
    let mut last = events.iter().map(|e| e.id).max().unwrap_or(0);
    for event in &events {
        print(event)?;
    }
    if !args.follow {
        return Ok(());
    }
    filter.before_id = None;
    filter.ascending = true;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        filter.after_id = Some(last);
        for event in app.events(&filter).await.map_err(app_error)? {
            last = last.max(event.id);
            print(&event)?;
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

fn event_line(e: &EventRecord) -> String {
    let what = match (&e.decision, &e.reason) {
        (Some(d), Some(r)) => format!("{} {d} ({r})", e.kind),
        _ => e.kind.clone(),
    };
    format!(
        "{} #{:<6} {:<32} {:<40} {} [by {}{}]",
        time::rfc3339(e.at),
        e.id,
        what,
        e.certname.as_deref().unwrap_or("-"),
        e.message.as_deref().unwrap_or(""),
        e.actor,
        e.request_id
            .as_deref()
            .map(|r| format!(", request {r}"))
            .unwrap_or_default()
    )
}
