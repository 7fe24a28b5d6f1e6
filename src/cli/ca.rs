//! `autosign-proxy ca ...`: the built-in CA from the command line.

use std::path::PathBuf;

use clap::Subcommand;

use autosign_proxy::app::authority::SignOptions;
use autosign_proxy::app::{App, AppError};
use autosign_proxy::ca::signer::KeyAlgorithm;
use autosign_proxy::config::Config;
use autosign_proxy::domain::csr::GeneralName;
use autosign_proxy::domain::event::Actor;
use autosign_proxy::domain::token::AltName;
use autosign_proxy::startup;
use autosign_proxy::startup::datadir;

use super::to_json;

#[derive(Subcommand)]
pub enum CaCommand {
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

pub async fn ca(
    app: App,
    config: Config,
    store: std::sync::Arc<dyn autosign_proxy::store::Store>,
    actor: &Actor,
    cmd: CaCommand,
) -> Result<(), String> {
    if let CaCommand::Regenerate { yes } = &cmd {
        if !yes {
            return Err("ca regenerate replaces the CA: every agent will need a new certificate. Run again with --yes.".into());
        }
        let done = autosign_proxy::admin::regenerate::regenerate(&config, actor, &mut |line| {
            eprintln!("autosign-proxy: {line}")
        })
        .await?;
        let dir = datadir::DataDir::new(&config.data_dir);
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
        let summary =
            autosign_proxy::admin::import::import_cadir(&config, cadir, actor, &mut |line| {
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
    let dir = datadir::initialize(&config, store.as_ref(), &mut |line| {
        eprintln!("autosign-proxy: {line}")
    })
    .await
    .map_err(|e| e.to_string())?;
    let authority = startup::authority(&config, &dir, std::sync::Arc::new(app), store.clone())?;
    let fail = |e: AppError| e.to_string();
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
            autosign_proxy::admin::export::export(&authority, &store, &dir, &cadir).await?;
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
    autosign_proxy::files::write_new(path, contents, mode)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}
