//! `autosign-proxy serve`: run the HTTPS service until a signal.

use autosign_proxy::config::Config;
use autosign_proxy::startup;

use super::init_logging;

pub async fn serve(config: Config, workers: Option<usize>) -> Result<(), String> {
    init_logging(&config.log_level);
    let started = std::time::Instant::now();
    let workers =
        workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let startup::Started { server, dir, .. } = startup::start(config, workers, &mut |line| {
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
