//! `autosign-proxy operator ...`: accounts for the operator's page.

use std::io::BufRead;

use clap::Subcommand;

use autosign_proxy::app::App;
use autosign_proxy::domain::event::Actor;

use super::{app_error, to_json};

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Add an account; the password is read from standard input (its first line).
    Add {
        name: String,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an account and end its sessions.
    Remove { name: String },
}

pub async fn operator(app: &App, actor: &Actor, cmd: OperatorCommand) -> Result<(), String> {
    match cmd {
        OperatorCommand::Add {
            name,
            password_stdin,
        } => {
            if !password_stdin {
                return Err("give the password on standard input with --password-stdin".into());
            }
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            let password = password.trim_end_matches(['\r', '\n']);
            app.add_operator(&name, password, actor)
                .await
                .map_err(app_error)?;
            println!("added operator {name}");
            Ok(())
        }
        OperatorCommand::List { json } => {
            for op in app.list_operators().await.map_err(app_error)? {
                if json {
                    println!("{}", to_json(&op)?);
                } else {
                    println!(
                        "{}  (added by {} at {})",
                        op.name,
                        op.created_by,
                        autosign_proxy::time::rfc3339(op.created_at)
                    );
                }
            }
            Ok(())
        }
        OperatorCommand::Remove { name } => {
            app.remove_operator(&name, actor).await.map_err(app_error)?;
            println!("removed operator {name}");
            Ok(())
        }
    }
}
