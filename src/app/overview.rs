//! What the operator's page reads: the overview's counts and hourly chart, pages of
//! certificates, what an allow-list glob matches, and a host's history.

use std::collections::BTreeMap;

use super::{App, AppError};
use crate::domain::allowlist::AllowEntry;
use crate::domain::certname::Certname;
use crate::domain::event::{kind, EventFilter, EventRecord};
use crate::store::{CaCertificate, CertQuery};
use crate::time;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// How many of the newest certificates an allow-list entry's matches are counted in.
pub const RECENT_CERTNAMES: u32 = 20_000;

/// The overview's figures.
#[derive(Debug, Clone)]
pub struct Overview {
    pub pending: usize,
    pub live_tokens: u64,
    pub allow_entries: usize,
    pub rejections_24h: u64,
    pub suspicious_24h: u64,
    pub suspicious: Vec<EventRecord>,
    /// (hour start, approved, rejected) for each hour of the last 7 days, oldest first.
    pub chart: Vec<(i64, u64, u64)>,
    pub expiring: Vec<CaCertificate>,
    pub expiring_count: u64,
}

/// Complete hours never change (events are appended at the time they happen), so their
/// counts are kept once read; only the current hour is read each time.
#[derive(Default)]
pub struct ChartCache {
    hours: BTreeMap<i64, (u64, u64)>,
}

impl App {
    pub async fn overview(&self) -> Result<Overview, AppError> {
        let now = time::now();
        let pending = self.store.ca_requests().await?.len();
        let live_tokens = self.store.live_token_count(now).await?;
        let allow_entries = self.store.list_allow_entries().await?.len();
        let rejections_24h = self.store.count_decisions("rejected", now - DAY).await?;
        let suspicious_24h = self
            .store
            .count_kind(kind::SUSPICIOUS_REQUEST, now - DAY)
            .await?;
        let suspicious = self
            .store
            .list_events(&EventFilter {
                kind: Some(kind::SUSPICIOUS_REQUEST.into()),
                since: Some(now - DAY),
                limit: 5,
                ..Default::default()
            })
            .await?;
        let chart = self.decision_chart(now).await?;
        let (expiring, expiring_count) = self.store.ca_expiring(now, now + 30 * DAY, 20).await?;
        Ok(Overview {
            pending,
            live_tokens,
            allow_entries,
            rejections_24h,
            suspicious_24h,
            suspicious,
            chart,
            expiring,
            expiring_count,
        })
    }

    /// Approved and rejected decisions per hour over the last 7 days.
    async fn decision_chart(&self, now: i64) -> Result<Vec<(i64, u64, u64)>, AppError> {
        let current = now - now.rem_euclid(HOUR);
        let first = current - 7 * 24 * HOUR + HOUR;
        let cached_until = {
            let cache = self
                .chart
                .lock()
                .map_err(|_| AppError::Internal("chart cache".into()))?;
            // The first hour not yet known, from `first` on.
            let mut hour = first;
            while hour < current && cache.hours.contains_key(&hour) {
                hour += HOUR;
            }
            hour
        };
        let mut fresh: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        for hour in (cached_until..=current).step_by(usize::try_from(HOUR).unwrap_or(3600)) {
            fresh.insert(hour, (0, 0));
        }
        for (hour, n) in self
            .store
            .decisions_per_hour("approved", cached_until, current + HOUR)
            .await?
        {
            fresh.entry(hour).or_default().0 = n;
        }
        for (hour, n) in self
            .store
            .decisions_per_hour("rejected", cached_until, current + HOUR)
            .await?
        {
            fresh.entry(hour).or_default().1 = n;
        }
        let mut cache = self
            .chart
            .lock()
            .map_err(|_| AppError::Internal("chart cache".into()))?;
        for (hour, counts) in &fresh {
            if *hour < current {
                cache.hours.insert(*hour, *counts);
            }
        }
        cache.hours = cache.hours.split_off(&first);
        let mut out = Vec::with_capacity(7 * 24);
        let mut hour = first;
        while hour <= current {
            let (a, r) = if hour < cached_until {
                cache.hours.get(&hour).copied().unwrap_or_default()
            } else {
                fresh.get(&hour).copied().unwrap_or_default()
            };
            out.push((hour, a, r));
            hour += HOUR;
        }
        Ok(out)
    }

    pub async fn certificate_page(
        &self,
        query: &CertQuery,
    ) -> Result<Vec<CaCertificate>, AppError> {
        Ok(self.store.ca_certificate_page(query).await?)
    }

    /// What each allow-list pattern matches among the `RECENT` newest certificates: how
    /// many, and up to `examples` of them.
    pub async fn allow_entry_matches(
        &self,
        patterns: &[String],
        examples: usize,
    ) -> Result<Vec<(usize, Vec<String>)>, AppError> {
        let names = self.store.ca_recent_certnames(RECENT_CERTNAMES).await?;
        let names: Vec<Certname> = names
            .iter()
            .filter_map(|n| Certname::parse(n).ok())
            .collect();
        Ok(patterns
            .iter()
            .map(|pattern| match AllowEntry::parse(pattern) {
                Ok(entry) => {
                    let mut count = 0;
                    let mut found = Vec::new();
                    for name in names.iter().filter(|n| entry.matches(n)) {
                        count += 1;
                        if found.len() < examples {
                            found.push(name.as_str().to_string());
                        }
                    }
                    (count, found)
                }
                Err(_) => (0, Vec::new()),
            })
            .collect())
    }

    /// A host's events, oldest first (tokens, decisions, certificates), at most `limit`.
    pub async fn host_timeline(
        &self,
        certname: &str,
        limit: u32,
    ) -> Result<Vec<EventRecord>, AppError> {
        let mut events = self
            .store
            .list_events(&EventFilter {
                certname: Some(certname.to_string()),
                limit,
                ..Default::default()
            })
            .await?;
        events.reverse();
        Ok(events)
    }
}
