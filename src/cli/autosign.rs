//! `autosign-proxy autosign ...`: the allow-list.

use std::path::PathBuf;

use clap::Subcommand;

use autosign_proxy::app::App;
use autosign_proxy::domain::event::Actor;

use super::{alt_names, app_error, to_json};

#[derive(Subcommand)]
pub enum AutosignCommand {
    /// Add an entry: an exact certname, `*.domain` or `*`.
    Add {
        pattern: String,
        #[arg(long = "alt-name")]
        alt_names: Vec<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Remove {
        pattern: String,
    },
    /// Import an existing autosign.conf; reports every line it cannot use.
    Import {
        file: PathBuf,
    },
}

pub async fn autosign(app: &App, actor: &Actor, cmd: AutosignCommand) -> Result<(), String> {
    match cmd {
        AutosignCommand::Add {
            pattern,
            alt_names: names,
        } => {
            if app
                .add_allow_entry(&pattern, alt_names(&names)?, actor)
                .await
                .map_err(app_error)?
            {
                println!("added {pattern}");
            } else {
                println!("{pattern} was already on the allow-list");
            }
            Ok(())
        }
        AutosignCommand::List { json } => {
            for entry in app.list_allow_entries().await.map_err(app_error)? {
                if json {
                    println!("{}", to_json(&entry)?);
                } else if entry.alt_names.is_empty() {
                    println!("{}", entry.pattern);
                } else {
                    let alts: Vec<String> =
                        entry.alt_names.iter().map(ToString::to_string).collect();
                    println!("{}  (alt names: {})", entry.pattern, alts.join(", "));
                }
            }
            Ok(())
        }
        AutosignCommand::Remove { pattern } => {
            app.remove_allow_entry(&pattern, actor)
                .await
                .map_err(app_error)?;
            println!("removed {pattern}");
            Ok(())
        }
        AutosignCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let report = app
                .import_autosign_conf(&text, actor)
                .await
                .map_err(app_error)?;
            for p in &report.added {
                println!("added {p}");
            }
            for p in &report.already_present {
                println!("already present {p}");
            }
            for s in &report.skipped {
                eprintln!(
                    "{}:{}: skipped '{}': {}",
                    file.display(),
                    s.line_number,
                    s.line,
                    s.reason
                );
            }
            println!(
                "{} added, {} already present, {} lines skipped",
                report.added.len(),
                report.already_present.len(),
                report.skipped.len()
            );
            Ok(())
        }
    }
}
