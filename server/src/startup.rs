//! `license-server serve`: the stores and keys opened, the seats of air-gapped
//! activations held again, the listeners bound, and the API served until SIGTERM.

use license_server::{open, ServerConfig, StartupError};

pub(crate) fn serve(config: ServerConfig) -> Result<(), StartupError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The stores are opened before the runtime runs: the PostgreSQL client blocks on a
    // runtime of its own, which cannot start inside an async context.
    let listen = config.listen.clone();
    let metrics_listen = config.metrics_listen.clone();
    let tls = license_server::tls::Tls::of_config(&config)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let state = open(config)?;
    let store = state.store.clone();
    let served = rt.block_on(async move {
        // Air-gapped activations hold their seats before any engine can take one.
        let held = license_server::service::offline::restore_seats(&state).await?;
        if held > 0 {
            tracing::info!("{held} air-gapped activations hold their seats again");
        }
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|source| StartupError::Listen {
                addr: listen.clone(),
                setting: "",
                source,
            })?;
        let metrics = if metrics_listen == license_server::config::NO_LISTENER {
            None
        } else {
            let l = tokio::net::TcpListener::bind(&metrics_listen)
                .await
                .map_err(|source| StartupError::Listen {
                    addr: metrics_listen.clone(),
                    setting: " (metrics-listen)",
                    source,
                })?;
            tracing::info!("metrics on http://{}/metrics", l.local_addr()?);
            Some(l)
        };
        if cfg!(feature = "bench-audit-off") {
            tracing::warn!("built with bench-audit-off: nothing is audited (a benchmark's baseline, never a release)");
        }
        // Always written, whatever the log level: supervisors and scripts wait for it.
        eprintln!(
            "license-server: listening on {scheme}://{} (key {}, started {})",
            listener.local_addr()?,
            state.key.kid,
            lic4es::clock::rfc3339(state.now())
        );
        license_server::http::serve_all(
            listener,
            metrics,
            state,
            tls,
            license_server::http::terminated(),
        )
        .await?;
        Ok(())
    });
    // Entries still queued were answered for already; what the store holds in logs it
    // folds into its files (SQLite's write-ahead log, truncated).
    store.close();
    served
}
