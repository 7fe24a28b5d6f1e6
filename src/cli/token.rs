//! `autosign-proxy token ...`: one-time build tokens.

use clap::Subcommand;

use autosign_proxy::app::App;
use autosign_proxy::domain::event::Actor;
use autosign_proxy::domain::token::parse_ttl_seconds;
use autosign_proxy::store::TokenSelector;

use super::{alt_names, app_error, to_json};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token for CERTNAME; prints the token alone (shown only this once).
    Issue {
        certname: String,
        /// Lifetime: 30m, 6h, 2d, or minutes (default from config: 360).
        #[arg(long)]
        ttl: Option<String>,
        /// An extra subjectAltName the CSR may carry: DNS:name or IP:address. Repeatable.
        #[arg(long = "alt-name")]
        alt_names: Vec<String>,
        /// Free metadata, KEY=VALUE (e.g. build_id=42). Repeatable.
        #[arg(long = "meta")]
        metadata: Vec<String>,
        /// Print the whole record as JSON instead of the token alone.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (live ones unless --all). Token values are never shown.
    List {
        #[arg(long)]
        certname: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id, or every live token of --certname.
    Revoke {
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        certname: Option<String>,
    },
}

pub async fn token(app: &App, actor: &Actor, cmd: TokenCommand) -> Result<(), String> {
    match cmd {
        TokenCommand::Issue {
            certname,
            ttl,
            alt_names: names,
            metadata,
            json,
        } => {
            let ttl = ttl
                .map(|t| parse_ttl_seconds(&t))
                .transpose()
                .map_err(|e| e.to_string())?;
            let metadata = if metadata.is_empty() {
                None
            } else {
                let mut map = serde_json::Map::new();
                for pair in metadata {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or(format!("--meta '{pair}' is not KEY=VALUE"))?;
                    map.insert(k.to_string(), serde_json::Value::String(v.to_string()));
                }
                Some(serde_json::Value::Object(map))
            };
            let issued = app
                .issue_token(&certname, alt_names(&names)?, metadata, ttl, actor)
                .await
                .map_err(app_error)?;
            if json {
                println!("{}", to_json(&issued)?);
            } else {
                println!("{}", issued.token);
            }
            Ok(())
        }
        TokenCommand::List {
            certname,
            all,
            json,
        } => {
            let tokens = app
                .list_tokens(certname.as_deref(), all)
                .await
                .map_err(app_error)?;
            for t in tokens {
                if json {
                    println!("{}", to_json(&t)?);
                } else {
                    let alts: Vec<String> =
                        t.record.alt_names.iter().map(ToString::to_string).collect();
                    println!(
                        "{:>6}  {:<8} {:<40} expires {}{}",
                        t.record.id,
                        to_json(&t.state)?.trim_matches('"'),
                        t.record.certname,
                        t.expires,
                        if alts.is_empty() {
                            String::new()
                        } else {
                            format!("  (alt names: {})", alts.join(", "))
                        }
                    );
                }
            }
            Ok(())
        }
        TokenCommand::Revoke { id, certname } => {
            let selector = match (id, certname) {
                (Some(id), None) => TokenSelector::Id(id),
                (None, Some(name)) => TokenSelector::Certname(name),
                _ => return Err("give a token id or --certname".into()),
            };
            let revoked = app
                .revoke_tokens(selector, actor)
                .await
                .map_err(app_error)?;
            println!(
                "revoked {}",
                revoked
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
    }
}
