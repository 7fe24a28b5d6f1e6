//! The autosign allow-list: add, remove, list, and import an autosign.conf.

use serde::Serialize;

use super::{App, AppError};
use crate::domain::allowlist::{parse_autosign_conf, AllowEntry, AllowRecord, SkippedLine};
use crate::domain::event::{kind, Actor, NewEvent};
use crate::domain::token::AltName;
use crate::time;

/// What an autosign.conf import did, line by line.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub added: Vec<String>,
    pub already_present: Vec<String>,
    pub skipped: Vec<SkippedReport>,
}

#[derive(Debug, Serialize)]
pub struct SkippedReport {
    pub line_number: usize,
    pub line: String,
    pub reason: String,
}

impl From<SkippedLine> for SkippedReport {
    fn from(s: SkippedLine) -> SkippedReport {
        SkippedReport {
            line_number: s.line_number,
            line: s.line,
            reason: s.reason,
        }
    }
}

impl App {
    /// Add an allow-list entry; `Ok(false)` when it was already there.
    pub async fn add_allow_entry(
        &self,
        pattern: &str,
        alt_names: Vec<AltName>,
        actor: &Actor,
    ) -> Result<bool, AppError> {
        let entry = AllowEntry::parse(pattern).map_err(AppError::Invalid)?;
        let pattern = entry.to_string();
        let now = time::now();
        let record = AllowRecord {
            pattern: pattern.clone(),
            alt_names,
            created_at: now,
            created_by: actor.name.clone(),
        };
        let event = NewEvent::new(now, kind::ALLOW_ENTRY_ADDED, actor)
            .message(format!("allow-list entry '{pattern}' added"))
            .details(serde_json::json!({ "pattern": pattern, "alt_names": record.alt_names }));
        Ok(self.store.add_allow_entry(&record, event).await?)
    }

    pub async fn remove_allow_entry(&self, pattern: &str, actor: &Actor) -> Result<(), AppError> {
        let now = time::now();
        let event = NewEvent::new(now, kind::ALLOW_ENTRY_REMOVED, actor)
            .message(format!("allow-list entry '{pattern}' removed"))
            .details(serde_json::json!({ "pattern": pattern }));
        if self.store.remove_allow_entry(pattern, event).await? {
            Ok(())
        } else {
            Err(AppError::NotFound(format!(
                "no allow-list entry '{pattern}'"
            )))
        }
    }

    pub async fn list_allow_entries(&self) -> Result<Vec<AllowRecord>, AppError> {
        Ok(self.store.list_allow_entries().await?)
    }

    /// Import an autosign.conf: every usable line becomes an entry, every other line is
    /// reported with its number and why.
    pub async fn import_autosign_conf(
        &self,
        text: &str,
        actor: &Actor,
    ) -> Result<ImportReport, AppError> {
        let (entries, skipped) = parse_autosign_conf(text);
        let mut report = ImportReport {
            added: Vec::new(),
            already_present: Vec::new(),
            skipped: skipped.into_iter().map(SkippedReport::from).collect(),
        };
        for entry in entries {
            let pattern = entry.to_string();
            if self.add_allow_entry(&pattern, Vec::new(), actor).await? {
                report.added.push(pattern);
            } else {
                report.already_present.push(pattern);
            }
        }
        Ok(report)
    }
}
