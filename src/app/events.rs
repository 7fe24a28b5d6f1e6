//! Reading events, and Foreman's view of who may autosign.

use super::{App, AppError};
use crate::domain::event::{Actor, EventFilter, EventRecord};
use crate::store::TokenSelector;
use crate::time;

impl App {
    /// Whether this process can decide: its database answers.
    pub async fn health(&self) -> Result<(), AppError> {
        self.store.health().await?;
        Ok(())
    }

    /// The Prometheus exposition, with the gauges the store counts.
    pub async fn metrics_text(&self) -> Result<String, AppError> {
        let live = self.store.live_token_count(time::now()).await?;
        let backlog = self.store.webhook_backlog().await?;
        Ok(crate::metrics::METRICS.render(live, backlog))
    }

    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, AppError> {
        Ok(self.store.list_events(filter).await?)
    }

    /// Foreman's autosign list: allow-list patterns and the certnames holding a live token.
    pub async fn autosign_names(&self) -> Result<Vec<String>, AppError> {
        let mut names: Vec<String> = self
            .list_allow_entries()
            .await?
            .into_iter()
            .map(|e| e.pattern)
            .collect();
        for token in self.store.list_tokens(None, Some(time::now())).await? {
            if !names.contains(&token.certname) {
                names.push(token.certname);
            }
        }
        Ok(names)
    }

    /// Foreman's DELETE of an autosign name: remove the allow-list entry of that exact
    /// pattern and revoke the name's live tokens. NotFound when there was neither.
    pub async fn remove_autosign_name(&self, name: &str, actor: &Actor) -> Result<(), AppError> {
        let entry_removed = match self.remove_allow_entry(name, actor).await {
            Ok(()) => true,
            Err(AppError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        let tokens_revoked = match self
            .revoke_tokens(TokenSelector::Certname(name.to_string()), actor)
            .await
        {
            Ok(_) => true,
            Err(AppError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        if entry_removed || tokens_revoked {
            Ok(())
        } else {
            Err(AppError::NotFound(format!(
                "{name} has no autosign entry and no live build token"
            )))
        }
    }
}
