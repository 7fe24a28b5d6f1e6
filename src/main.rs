//! The `autosign-proxy` command line: parse arguments, call the library, print.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use autosign_proxy::app::{App, AppError};
use autosign_proxy::authority::{CaFailure, SignOptions};
use autosign_proxy::ca::signer::KeyAlgorithm;
use autosign_proxy::config::Config;
use autosign_proxy::domain::csr::GeneralName;
use autosign_proxy::domain::decision::Verdict;
use autosign_proxy::domain::event::{Actor, EventFilter, EventRecord};
use autosign_proxy::domain::token::{parse_ttl_minutes, AltName};
use autosign_proxy::service;
use autosign_proxy::state;
use autosign_proxy::store::TokenSelector;
use autosign_proxy::timefmt;

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
    Token(TokenCommand),
    /// The autosign allow-list (autosign.conf semantics).
    #[command(subcommand)]
    Autosign(AutosignCommand),
    /// Recorded events, newest first.
    Events(EventsArgs),
    /// The built-in Puppet CA.
    #[command(subcommand)]
    Ca(CaCommand),
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

#[derive(Subcommand)]
enum CaCommand {
    /// Pending requests (all certificates with --all): name, SHA-256 fingerprint, alt names.
    List {
        #[arg(long)]
        all: bool,
        /// One status object per line (puppetserver's certificate_status shape).
        #[arg(long)]
        json: bool,
    },
    /// Sign pending requests.
    Sign {
        #[arg(long = "certname", required_unless_present = "all", num_args = 1..)]
        certnames: Vec<String>,
        /// Every pending request.
        #[arg(long, conflicts_with = "certnames")]
        all: bool,
        /// Sign requests that carry subjectAltNames (a server's names; check them first).
        #[arg(long)]
        allow_dns_alt_names: bool,
        /// Sign requests that carry authorization extensions (never pp_cli_auth).
        #[arg(long)]
        allow_authorization_extensions: bool,
        /// Sign a reserved name: this service's own names, its local client, a trusted or
        /// admin host. Whoever holds it can act as that name.
        #[arg(long)]
        allow_reserved_name: bool,
    },
    /// Revoke certificates; the new CRL is served at once.
    Revoke {
        #[arg(long = "certname", required = true, num_args = 1..)]
        certnames: Vec<String>,
    },
    /// Revoke and forget certificates and requests.
    Clean {
        #[arg(long = "certname", required = true, num_args = 1..)]
        certnames: Vec<String>,
    },
    /// Take over a puppetserver CA directory (key, bundle, CRL chain, serial, inventory,
    /// signed certificates, pending requests) so existing agents keep working.
    Import {
        #[arg(long)]
        cadir: PathBuf,
    },
    /// After a compromise: back up everything, create a new CA and service certificate,
    /// and print the steps left for each agent.
    Regenerate {
        /// Required: every certificate of the old CA stops being trusted.
        #[arg(long)]
        yes: bool,
    },
    /// Write this CA out in puppetserver's directory layout.
    Export {
        #[arg(long)]
        cadir: PathBuf,
    },
    /// A key and certificate for a service that cannot ask the CA itself.
    Generate {
        #[arg(long)]
        certname: String,
        /// Comma-separated extra names: puppetdb,db.example.com,IP:10.0.0.5
        #[arg(long, value_delimiter = ',')]
        dns_alt_names: Vec<String>,
        /// rsa-4096 (default), rsa-2048, ec-p256, ec-p384.
        #[arg(long, default_value = "rsa-4096")]
        key_type: String,
        /// Where to write <certname>.key.pem, <certname>.cert.pem and ca.pem.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        /// Generate for a reserved name (this service's own names, a trusted or admin host).
        #[arg(long)]
        allow_reserved_name: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
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

#[derive(Subcommand)]
enum AutosignCommand {
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

#[derive(Args)]
struct EventsArgs {
    /// Only rejected decisions.
    #[arg(long, conflicts_with = "approved")]
    rejected: bool,
    /// Only approved decisions.
    #[arg(long)]
    approved: bool,
    #[arg(long)]
    certname: Option<String>,
    /// Event kind, e.g. decision, token_issued.
    #[arg(long)]
    kind: Option<String>,
    /// Only events older than this id (paging).
    #[arg(long)]
    before: Option<i64>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Only events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only events at or before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Keep printing new events as they are recorded.
    #[arg(long, short = 'f')]
    follow: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = cli.database_url {
        if !url.is_empty() && !service::is_postgres_url(&url) {
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

fn app_error(e: AppError) -> String {
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
            mode.parse::<autosign_proxy::authority::AutosignMode>()?;
            config.ca.autosign = mode;
        }
        return serve(config, workers).await;
    }
    if let Command::Migrate { to, from } = command {
        return migrate(&config, &to, from).await;
    }
    let store = service::open_store(&config).await?;
    let reserved = state::reserved_names(&config);
    let app = App::new(store, config, reserved);
    let actor = cli_actor();
    match command {
        Command::Serve { .. } | Command::Migrate { .. } => Ok(()),
        Command::Token(cmd) => token(&app, &actor, cmd).await,
        Command::Autosign(cmd) => autosign(&app, &actor, cmd).await,
        Command::Events(args) => events(&app, args).await,
        Command::Ca(cmd) => ca(app, &actor, cmd).await,
    }
}

async fn migrate(config: &Config, to: &str, from: Option<PathBuf>) -> Result<(), String> {
    use autosign_proxy::store::{migrate, postgres::PostgresStore};
    if !service::is_postgres_url(to) {
        return Err("--to must be a postgres:// or postgresql:// URL".into());
    }
    let source = from.unwrap_or_else(|| config.sqlite_path());
    let target = PostgresStore::open(to, 2)
        .await
        .map_err(|e| format!("{e} ({})", service::redacted(to)))?;
    eprintln!(
        "autosign-proxy: copying {} into {}",
        source.display(),
        service::redacted(to)
    );
    let mut last = ("", 0);
    let counts = migrate::sqlite_to_postgres(&source, &target, &mut |table, n| {
        if table != last.0 || n >= last.1 + 100_000 {
            eprintln!("autosign-proxy:   {table}: {n} rows");
            last = (table, n);
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("migrated, row counts checked:");
    for (table, n) in counts {
        println!("  {table:<20} {n}");
    }
    println!(
        "next: set database_url = \"{}\" for every replica, give each the CA's \
         ca/ca_key.pem and ca/ca_crt.pem from {}, and keep the SQLite file as a backup",
        service::redacted(to),
        config.data_dir.display()
    );
    Ok(())
}

async fn serve(config: Config, workers: Option<usize>) -> Result<(), String> {
    init_logging(&config.log_level);
    let started = std::time::Instant::now();
    let workers =
        workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let service::Started { server, dir, .. } = service::start(config, workers, &mut |line| {
        eprintln!("autosign-proxy: {line}")
    })
    .await?;
    tracing::info!(
        port = server.port,
        data_dir = %dir.root.display(),
        ready_ms = started.elapsed().as_secs_f64() * 1000.0,
        "autosign-proxy ready"
    );
    eprintln!(
        "autosign-proxy: listening on https://{} (CA bundle for clients: {})",
        server.address,
        dir.ca_bundle().display()
    );
    let handle = server.handle.clone();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        handle.stop(true).await;
    });
    server.server.await.map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

fn init_logging(level: &str) {
    let level = match level {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn alt_names(names: &[String]) -> Result<Vec<AltName>, String> {
    names
        .iter()
        .map(|n| AltName::parse(n).map_err(|e| e.to_string()))
        .collect()
}

fn to_json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| e.to_string())
}

async fn token(app: &App, actor: &Actor, cmd: TokenCommand) -> Result<(), String> {
    match cmd {
        TokenCommand::Issue {
            certname,
            ttl,
            alt_names: names,
            metadata,
            json,
        } => {
            let ttl = ttl
                .map(|t| parse_ttl_minutes(&t))
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

async fn autosign(app: &App, actor: &Actor, cmd: AutosignCommand) -> Result<(), String> {
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

async fn events(app: &App, args: EventsArgs) -> Result<(), String> {
    let decision = match (args.rejected, args.approved) {
        (true, _) => Some(Verdict::Rejected),
        (_, true) => Some(Verdict::Approved),
        _ => None,
    };
    let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, String> {
        v.as_deref()
            .map(|t| {
                timefmt::parse_rfc3339(t).ok_or(format!(
                    "--{name} '{t}' is not a time like 2026-11-23T02:00:00Z"
                ))
            })
            .transpose()
    };
    let mut filter = EventFilter {
        certname: args.certname,
        kind: args.kind,
        decision,
        before_id: args.before,
        after_id: None,
        since: time("since", &args.since)?,
        until: time("until", &args.until)?,
        ascending: false,
        limit: args.limit.clamp(1, 1000),
    };
    let print = |event: &EventRecord| -> Result<(), String> {
        if args.json {
            println!("{}", to_json(event)?);
        } else {
            println!("{}", event_line(event));
        }
        Ok(())
    };
    let mut events = app.events(&filter).await.map_err(app_error)?;
    if args.follow {
        // The last page oldest first, then whatever comes after it, as it comes.
        events.reverse();
    }
    let mut last = events.iter().map(|e| e.id).max().unwrap_or(0);
    for event in &events {
        print(event)?;
    }
    if !args.follow {
        return Ok(());
    }
    filter.before_id = None;
    filter.ascending = true;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        filter.after_id = Some(last);
        for event in app.events(&filter).await.map_err(app_error)? {
            last = last.max(event.id);
            print(&event)?;
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

fn event_line(e: &EventRecord) -> String {
    let what = match (&e.decision, &e.reason) {
        (Some(d), Some(r)) => format!("{} {d} ({r})", e.kind),
        _ => e.kind.clone(),
    };
    format!(
        "{} #{:<6} {:<32} {:<40} {} [by {}{}]",
        timefmt::rfc3339(e.at),
        e.id,
        what,
        e.certname.as_deref().unwrap_or("-"),
        e.message.as_deref().unwrap_or(""),
        e.actor,
        e.request_id
            .as_deref()
            .map(|r| format!(", request {r}"))
            .unwrap_or_default()
    )
}

async fn ca(app: App, actor: &Actor, cmd: CaCommand) -> Result<(), String> {
    let config = app.config.clone();
    if let CaCommand::Regenerate { yes } = &cmd {
        if !yes {
            return Err("ca regenerate replaces the CA: every agent will need a new certificate. Run again with --yes.".into());
        }
        let done = autosign_proxy::regenerate::regenerate(&config, actor, &mut |line| {
            eprintln!("autosign-proxy: {line}")
        })
        .await?;
        let dir = state::DataDir::new(&config.data_dir);
        println!(
            "A new CA is in place; the old state is in {}.",
            done.backup.display()
        );
        println!("Left to do:");
        println!("  1. Restart the service: systemctl restart autosign-proxy");
        println!("  2. Give every service that used a generated certificate a new one:");
        println!("       autosign-proxy ca generate --certname <name> --dns-alt-names <names> --out-dir <dir>");
        println!(
            "  3. Distribute the new CA certificate {} to Foreman, puppetserver and load balancers",
            dir.ca_bundle().display()
        );
        println!(
            "  4. On each of these {} agents, in order:",
            done.hosts.len()
        );
        println!("       systemctl stop puppet");
        println!("       rm -rf \"$(puppet config print ssldir --section agent)\"");
        println!("       autosign-proxy token issue <certname>   # here; put the token in the agent's csr_attributes.yaml");
        println!("       puppet agent -t && systemctl start puppet");
        for host in &done.hosts {
            println!("     - {host}");
        }
        return Ok(());
    }
    if let CaCommand::Import { cadir } = &cmd {
        let summary = autosign_proxy::ca_import::import_cadir(&config, cadir, actor, &mut |line| {
            eprintln!("autosign-proxy: {line}")
        })
        .await?;
        println!(
            "imported {} certificates ({} revoked) and {} pending requests from {}; next serial {}; previous files in {}",
            summary.certificates,
            summary.revoked,
            summary.requests,
            cadir.display(),
            summary.next_serial,
            summary.backup.display()
        );
        println!("Restart autosign-proxy serve to use the imported CA.");
        return Ok(());
    }
    let store = app.store.clone();
    let dir = state::initialize(&config, store.as_ref(), &mut |line| {
        eprintln!("autosign-proxy: {line}")
    })
    .await
    .map_err(|e| e.to_string())?;
    let authority = service::authority(&config, &dir, std::sync::Arc::new(app))?;
    let fail = |e: CaFailure| e.to_string();
    match cmd {
        CaCommand::List { all, json } => {
            let statuses = authority
                .statuses(if all { None } else { Some("requested") })
                .await
                .map_err(fail)?;
            if statuses.is_empty() && !json {
                println!("No certificates to list");
            }
            let width = statuses.iter().map(|s| s.name.len() + 2).max().unwrap_or(0);
            for st in statuses {
                if json {
                    println!("{}", to_json(&st)?);
                    continue;
                }
                let mark = match st.state {
                    "signed" => "+ ",
                    "revoked" => "- ",
                    _ => "  ",
                };
                let extra: Vec<String> = st
                    .subject_alt_names
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect();
                let mut line = format!(
                    "{mark}{:<width$} (SHA256) {}",
                    format!("\"{}\"", st.name),
                    st.fingerprint
                );
                if st.subject_alt_names.len() > 1
                    || (st.subject_alt_names.len() == 1
                        && st.dns_alt_names.first().map(String::as_str)
                            != Some(&format!("DNS:{}", st.name)))
                {
                    line.push_str(&format!(" (alt names: {})", extra.join(", ")));
                }
                if let Some(reason) = &st.pending_reason {
                    line.push_str(&format!(" [{reason}]"));
                }
                println!("{line}");
            }
            Ok(())
        }
        CaCommand::Sign {
            certnames,
            all,
            allow_dns_alt_names,
            allow_authorization_extensions,
            allow_reserved_name,
        } => {
            let names = if all {
                authority
                    .statuses(Some("requested"))
                    .await
                    .map_err(fail)?
                    .into_iter()
                    .map(|s| s.name)
                    .collect()
            } else {
                certnames
            };
            let options = SignOptions {
                allow_alt_names: allow_dns_alt_names,
                allow_authorization_extensions,
                allow_reserved: allow_reserved_name,
                ttl_seconds: None,
            };
            let total = names.len();
            let mut failed = 0;
            for (i, name) in names.iter().enumerate() {
                match authority.sign(name, options, actor).await {
                    Ok(cert) => {
                        println!("[{}/{total}] signed {name} (serial {})", i + 1, cert.serial)
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("[{}/{total}] not signed {name}: {e}", i + 1);
                    }
                }
            }
            if failed > 0 {
                return Err(format!("{failed} of {total} requests were not signed"));
            }
            Ok(())
        }
        CaCommand::Revoke { certnames } => {
            for name in certnames {
                let serial = authority.revoke(&name, actor).await.map_err(fail)?;
                println!("revoked {name} (serial {serial})");
            }
            Ok(())
        }
        CaCommand::Clean { certnames } => {
            for name in certnames {
                if authority.clean(&name, actor).await.map_err(fail)? {
                    println!("cleaned {name}");
                } else {
                    return Err(format!("{name} has no certificate or request"));
                }
            }
            Ok(())
        }
        CaCommand::Import { .. } | CaCommand::Regenerate { .. } => Ok(()),
        CaCommand::Export { cadir } => {
            export(&authority, &store, &dir, &cadir).await?;
            println!(
                "wrote this CA in puppetserver's layout to {}",
                cadir.display()
            );
            Ok(())
        }
        CaCommand::Generate {
            certname,
            dns_alt_names,
            key_type,
            out_dir,
            allow_reserved_name,
        } => {
            let algorithm: KeyAlgorithm =
                key_type.parse().map_err(|e| format!("--key-type: {e}"))?;
            let mut names = Vec::new();
            for n in dns_alt_names.iter().filter(|n| !n.is_empty()) {
                names.push(match AltName::parse(n).map_err(|e| e.to_string())? {
                    AltName::Dns(d) => GeneralName::Dns(d),
                    AltName::Ip(ip) => GeneralName::Ip(ip),
                });
            }
            let (key_pem, cert) = authority
                .generate(
                    &certname,
                    names,
                    algorithm,
                    SignOptions {
                        allow_reserved: allow_reserved_name,
                        ..SignOptions::default()
                    },
                    actor,
                )
                .await
                .map_err(fail)?;
            std::fs::create_dir_all(&out_dir)
                .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
            let key_path = out_dir.join(format!("{certname}.key.pem"));
            write_new(&key_path, key_pem.as_bytes(), 0o600)?;
            write_new(
                &out_dir.join(format!("{certname}.cert.pem")),
                cert.cert_pem.as_bytes(),
                0o644,
            )?;
            std::fs::write(out_dir.join("ca.pem"), authority.bundle_pem())
                .map_err(|e| e.to_string())?;
            println!(
                "generated {certname} (serial {}): {} (key, mode 0600), {}, {}",
                cert.serial,
                key_path.display(),
                out_dir.join(format!("{certname}.cert.pem")).display(),
                out_dir.join("ca.pem").display()
            );
            Ok(())
        }
    }
}

/// Create a file that must not exist yet, with its mode from the start.
fn write_new(path: &std::path::Path, contents: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn export(
    authority: &autosign_proxy::authority::Authority,
    store: &std::sync::Arc<dyn autosign_proxy::store::Store>,
    dir: &state::DataDir,
    cadir: &std::path::Path,
) -> Result<(), String> {
    use autosign_proxy::ca::cadir::{write_cadir, ExportCa, InventoryLine};
    use autosign_proxy::ca::issue::cert_info;
    let der_of = |text: &str| -> Result<Vec<u8>, String> {
        autosign_proxy::pem::decode_all(text)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .map(|(_, der)| der)
            .ok_or_else(|| "empty PEM".to_string())
    };
    let bundle = state::read_certs(&dir.ca_cert()).map_err(|e| e.to_string())?;
    let key_pem = std::fs::read_to_string(dir.ca_key()).map_err(|e| e.to_string())?;
    let crl_chain = autosign_proxy::ca::crl::decode_crl_chain(
        &authority.crl_pem().await.map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut signed = Vec::new();
    let mut inventory = Vec::new();
    for cert in store.ca_certificates().await.map_err(|e| e.to_string())? {
        let der = der_of(&cert.cert_pem)?;
        let info = cert_info(&der).map_err(|e| e.to_string())?;
        if let Some(line) = InventoryLine::for_certificate(&info) {
            inventory.push(line);
        }
        signed.push((cert.certname, der));
    }
    inventory.sort_by_key(|l| l.serial);
    let mut requests = Vec::new();
    for request in store.ca_requests().await.map_err(|e| e.to_string())? {
        requests.push((request.certname, der_of(&request.csr_pem)?));
    }
    let next_serial = store.next_serial().await.map_err(|e| e.to_string())?;
    let ca = ExportCa {
        bundle: &bundle,
        key_pem: &key_pem,
        crl_chain: &crl_chain,
        next_serial,
        inventory: &inventory,
        signed: &signed,
        requests: &requests,
    };
    write_cadir(cadir, &ca).map_err(|e| e.to_string())
}
