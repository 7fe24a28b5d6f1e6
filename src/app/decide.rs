//! Deciding on one CSR with the pipeline, and raising an alert on suspicious requests.

use super::{App, AppError};
use crate::domain::decision::{Decision, Reason};
use crate::domain::event::{kind, Actor, NewEvent};
use crate::domain::policy::{self, CsrInput, Decided, DecisionRequest};
use crate::metrics::METRICS;
use crate::time;

/// Rejections of one certname within this many seconds...
const ALERT_WINDOW: i64 = 600;
/// ...from this many on, raise a suspicious_request event.
const ALERT_BURST: u64 = 5;

impl App {
    /// Run the decision pipeline on one CSR.
    pub async fn decide(
        &self,
        csr: CsrInput<'_>,
        certname: Option<&str>,
        actor: &Actor,
    ) -> Result<Decided, AppError> {
        let started = std::time::Instant::now();
        let request = DecisionRequest {
            csr,
            certname,
            actor,
        };
        let now = time::now();
        let decided = policy::decide(self.store.as_ref(), &self.policy, &request, now).await?;
        let decision = &decided.decision;
        METRICS.decision(decision.reason, started.elapsed());
        if !decision.approved() {
            self.raise_alert(decision, actor, now).await?;
        }
        tracing::info!(
            certname = decision.certname.as_deref().unwrap_or("-"),
            decision = decision.decision.as_str(),
            reason = decision.reason.code(),
            fingerprint = decision.csr_fingerprint.as_deref().unwrap_or("-"),
            token_id = decision.token_id,
            event_id = decision.event_id,
            actor = %actor.name,
            request_id = actor.request_id.as_deref().unwrap_or("-"),
            "{}",
            decision.message
        );
        Ok(decided)
    }

    /// A token presented for another host, or a burst of rejections for one certname,
    /// raises a `suspicious_request` event a receiver can page on (once per window).
    async fn raise_alert(
        &self,
        decision: &Decision,
        actor: &Actor,
        now: i64,
    ) -> Result<(), AppError> {
        let Some(certname) = decision.certname.as_deref() else {
            return Ok(());
        };
        let why = if decision.reason == Reason::TokenWrongHost {
            Some(format!(
                "a build token of another host was presented for {certname}"
            ))
        } else {
            let recent = self
                .store
                .count_rejections(certname, now - ALERT_WINDOW, ALERT_BURST)
                .await?;
            let raised = self
                .store
                .has_event(certname, kind::SUSPICIOUS_REQUEST, now - ALERT_WINDOW)
                .await?;
            (recent >= ALERT_BURST && !raised).then(|| {
                format!(
                    "{recent} rejected requests for {certname} within {} minutes",
                    ALERT_WINDOW / 60
                )
            })
        };
        if let Some(message) = why {
            tracing::warn!(certname, actor = %actor.name, "{message}");
            let event = NewEvent::new(now, kind::SUSPICIOUS_REQUEST, actor)
                .certname(certname)
                .message(message)
                .details(serde_json::json!({
                    "reason": decision.reason.code(),
                    "decision_event_id": decision.event_id,
                    "csr_fingerprint": decision.csr_fingerprint,
                }));
            self.store.record_event(event).await?;
        }
        Ok(())
    }
}
