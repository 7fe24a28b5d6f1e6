//! The `autosign-proxy` command line: parse arguments, call one use case, print. One file
//! per command group.

mod autosign;
mod ca;
mod events;
mod migrate;
mod operator;
mod serve;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use autosign_proxy::app::{App, AppError};
use autosign_proxy::config::Config;
use autosign_proxy::domain::event::Actor;
use autosign_proxy::domain::token::AltName;
use autosign_proxy::startup;
use autosign_proxy::startup::datadir;

#[derive(Parser)]
#[command(
    name = "autosign-proxy",
    version,
    about = "Decides which Puppet certificate requests get signed, and signs them"
)]
struct Cli {
    /// TOML config file (also AUTOSIGN_PROXY_CONFIG).
    #[arg(long, global = true, env = "AUTOSIGN_PROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: database, CA and TLS files.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL instead of SQLite: postgres://user:password@host:5432/db (also
    /// AUTOSIGN_PROXY_DATABASE_URL or database_url in the config).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTPS service.
    Serve {
        /// Listen address, e.g. 127.0.0.1:8140.
        #[arg(long)]
        listen: Option<String>,
        /// HTTP worker threads (default: one per CPU).
        #[arg(long)]
        workers: Option<usize>,
        /// How the CA autosigns: policy (default), true, false or exec:/path.
        #[arg(long)]
        autosign: Option<String>,
    },
    /// One-time build tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// The autosign allow-list (autosign.conf semantics).
    #[command(subcommand)]
    Autosign(autosign::AutosignCommand),
    /// Recorded events, newest first.
    Events(events::EventsArgs),
    /// The built-in Puppet CA.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Accounts for the operator's page (/ui/).
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Move the SQLite state of the data directory into an empty PostgreSQL database
    /// (one transaction, then a row count check per table). Stop the service first.
    Migrate {
        /// The PostgreSQL database to fill: postgres://user:password@host:5432/db.
        #[arg(long)]
        to: String,
        /// The SQLite file (default: autosign-proxy.db in the data directory).
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = cli.database_url {
        if !url.is_empty() && !autosign_proxy::config::is_postgres_url(&url) {
            return fail("--database-url must be a postgres:// or postgresql:// URL");
        }
        config.database_url = url;
    }
    let result = actix_web::rt::System::new().block_on(run(cli.command, config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("autosign-proxy: {message}");
    ExitCode::FAILURE
}

fn cli_actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Actor::new(format!("cli:{user}"), None)
}

pub(crate) fn app_error(e: AppError) -> String {
    e.to_string()
}

async fn run(command: Command, mut config: Config) -> Result<(), String> {
    if let Command::Serve {
        listen,
        workers,
        autosign,
    } = command
    {
        if let Some(listen) = listen {
            config.listen = listen;
        }
        if let Some(mode) = autosign {
            config.ca.autosign = mode.parse()?;
        }
        return serve::serve(config, workers).await;
    }
    if let Command::Migrate { to, from } = command {
        return migrate::migrate(&config, &to, from).await;
    }
    let store = startup::open_store(&config).await?;
    let reserved = datadir::reserved_names(&config);
    let app = App::new(store.clone(), config.clone(), reserved);
    let actor = cli_actor();
    match command {
        Command::Serve { .. } | Command::Migrate { .. } => Ok(()),
        Command::Token(cmd) => token::token(&app, &actor, cmd).await,
        Command::Autosign(cmd) => autosign::autosign(&app, &actor, cmd).await,
        Command::Events(args) => events::events(&app, args).await,
        Command::Ca(cmd) => ca::ca(app, config, store, &actor, cmd).await,
        Command::Operator(cmd) => operator::operator(&app, &actor, cmd).await,
    }
}

pub(crate) fn init_logging(level: &str) {
    autosign_proxy::startup::logging::init(level);
}

pub(crate) fn alt_names(names: &[String]) -> Result<Vec<AltName>, String> {
    names
        .iter()
        .map(|n| AltName::parse(n).map_err(|e| e.to_string()))
        .collect()
}

pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| e.to_string())
}
