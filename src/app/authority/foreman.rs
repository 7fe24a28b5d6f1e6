//! The CA Foreman's `/puppet/ca` routes act on, behind one interface: this service's own
//! CA, or an existing puppetserver CA (the smart proxy's second deployment).

use async_trait::async_trait;

use super::puppetserver::PuppetserverCa;
use super::{Authority, SignOptions};
use crate::app::AppError;
use crate::domain::event::Actor;

#[async_trait]
pub trait ForemanCa: Send + Sync {
    /// "builtin" or "puppetserver", as `/v2/features` reports it.
    fn kind(&self) -> &'static str;
    /// Every request and certificate, as puppetserver's status objects.
    async fn statuses(&self) -> Result<Vec<serde_json::Value>, AppError>;
    /// Sign the pending request, under the rules of an operator's signing with nothing
    /// extra allowed. `NoRequest` when nothing is pending.
    async fn sign(&self, name: &str, actor: &Actor) -> Result<(), AppError>;
    /// Revoke and delete; `false` when there was nothing of that name.
    async fn clean(&self, name: &str, actor: &Actor) -> Result<bool, AppError>;
}

#[async_trait]
impl ForemanCa for Authority {
    fn kind(&self) -> &'static str {
        "builtin"
    }

    async fn statuses(&self) -> Result<Vec<serde_json::Value>, AppError> {
        Ok(Authority::statuses(self, None)
            .await?
            .into_iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect())
    }

    async fn sign(&self, name: &str, actor: &Actor) -> Result<(), AppError> {
        Authority::sign(self, name, SignOptions::default(), actor)
            .await
            .map(|_| ())
    }

    async fn clean(&self, name: &str, actor: &Actor) -> Result<bool, AppError> {
        Authority::clean(self, name, actor).await
    }
}

#[async_trait]
impl ForemanCa for PuppetserverCa {
    fn kind(&self) -> &'static str {
        "puppetserver"
    }

    async fn statuses(&self) -> Result<Vec<serde_json::Value>, AppError> {
        PuppetserverCa::statuses(self).await
    }

    async fn sign(&self, name: &str, _actor: &Actor) -> Result<(), AppError> {
        PuppetserverCa::sign(self, name).await
    }

    async fn clean(&self, name: &str, _actor: &Actor) -> Result<bool, AppError> {
        PuppetserverCa::clean(self, name).await
    }
}
