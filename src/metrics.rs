//! Prometheus metrics: counters and histograms kept in atomics, rendered in the text
//! exposition format at `/metrics`; gauges that live in the store are read at scrape time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::decision::Reason;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    /// Sum in microseconds, so it fits an integer atomic.
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; 12],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

pub struct Metrics {
    decisions: [AtomicU64; Reason::ALL.len()],
    pub decision_seconds: Histogram,
    pub signing_seconds: Histogram,
    pub certificates_issued: AtomicU64,
    pub certificates_revoked: AtomicU64,
    pub webhook_delivered: AtomicU64,
    pub webhook_failures: AtomicU64,
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics {
    decisions: [const { AtomicU64::new(0) }; Reason::ALL.len()],
    decision_seconds: Histogram::new(),
    signing_seconds: Histogram::new(),
    certificates_issued: AtomicU64::new(0),
    certificates_revoked: AtomicU64::new(0),
    webhook_delivered: AtomicU64::new(0),
    webhook_failures: AtomicU64::new(0),
};

impl Metrics {
    pub fn decision(&self, reason: Reason, elapsed: Duration) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            if let Some(counter) = self.decisions.get(i) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.decision_seconds.observe(elapsed);
    }

    /// The exposition text; `live_tokens` and `webhook_backlog` come from the store.
    pub fn render(&self, live_tokens: u64, webhook_backlog: u64) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP autosign_decisions_total Decisions on CSRs, by result and reason.\n# TYPE autosign_decisions_total counter\n");
        for (reason, counter) in Reason::ALL.iter().zip(self.decisions.iter()) {
            let result = if matches!(reason, Reason::Token | Reason::AllowList) {
                "approved"
            } else {
                "rejected"
            };
            let _ = writeln!(
                out,
                "autosign_decisions_total{{decision=\"{result}\",reason=\"{}\"}} {}",
                reason.code(),
                counter.load(Ordering::Relaxed)
            );
        }
        self.decision_seconds.render(
            &mut out,
            "autosign_decision_seconds",
            "Time to decide on a CSR.",
        );
        self.signing_seconds.render(
            &mut out,
            "autosign_signing_seconds",
            "Time to issue a certificate.",
        );
        let counters = [
            (
                "autosign_certificates_issued_total",
                "Certificates issued.",
                &self.certificates_issued,
            ),
            (
                "autosign_certificates_revoked_total",
                "Certificates revoked.",
                &self.certificates_revoked,
            ),
            (
                "autosign_webhook_deliveries_total",
                "Webhook deliveries taken by their receiver.",
                &self.webhook_delivered,
            ),
            (
                "autosign_webhook_failures_total",
                "Webhook delivery attempts that failed.",
                &self.webhook_failures,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP autosign_live_tokens Build tokens that can still be used.\n# TYPE autosign_live_tokens gauge\nautosign_live_tokens {live_tokens}");
        let _ = writeln!(out, "# HELP autosign_webhook_backlog Webhook deliveries waiting.\n# TYPE autosign_webhook_backlog gauge\nautosign_webhook_backlog {webhook_backlog}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(800));
        h.observe(Duration::from_millis(30));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.001\"} 1"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.05\"} 2"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 2"), "{out}");
        assert!(out.contains("x_count 2"), "{out}");
    }
}
