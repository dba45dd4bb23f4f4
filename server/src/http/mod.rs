//! The HTTP API: the license endpoints engines call, seats, admin, and metrics.
//!
//! Every bad request gets a 4xx with a JSON body `{"error", "message"}`; bodies over
//! 64 KiB are refused before they are read. Bodies are the types of
//! `lic4es::protocol`; fields the server does not know are ignored.
//!
//! Here: the router and the listeners. What handlers take from a request is in
//! `extract`, what every request goes through before its handler in `layers`.

pub mod admin;
pub mod conn;
pub mod dashboard;
pub mod error;
pub mod extract;
mod layers;
pub mod licenses;
pub mod metrics;
pub mod seats;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{delete, get, post, put};
use axum::Router;
use lic4es::protocol::paths;

use crate::app::AppState;
use crate::service;

pub use self::error::{server_codes, ApiError};
pub(crate) use self::extract::{
    bearer, body_bytes, check_nonce, check_optional_nonce, check_text, parse_bytes,
};
pub use self::extract::{
    forwarded_for, ClientAddr, KeyLicense, LicensePath, Payload, MAX_BODY_BYTES,
};
pub(crate) use self::layers::same_secret;
use self::layers::{
    admin_auth, body_deadline, count_requests, find_client, json_errors, not_found,
};

/// Every request body the server reads, through the handlers' own parsing and checks:
/// the entry point of the `server_bodies` fuzz target. It must never panic.
#[doc(hidden)]
pub fn check_any_body(body: &[u8]) {
    licenses::check_bodies(body);
    seats::check_bodies(body);
    admin::check_bodies(body);
}

/// The router with every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    let admin = Router::new()
        .route("/admin/licenses", post(admin::create_license))
        .route(
            "/admin/licenses/{id}",
            get(admin::show_license).patch(admin::update_license),
        )
        .route("/admin/licenses/{id}/api-keys", post(admin::add_api_key))
        .route("/admin/licenses/{id}/tier", post(admin::set_tier))
        .route("/admin/licenses/{id}/revoke", post(admin::revoke_license))
        .route("/admin/api-keys/revoke", post(admin::revoke_key))
        .route("/admin/telemetry", get(admin::telemetry))
        .route("/admin/telemetry/daily", get(admin::telemetry_daily))
        .route("/admin/sessions", get(admin::sessions))
        .route("/admin/sessions/{id}", delete(admin::kick))
        .route("/admin/offline-activations", post(admin::offline_activate))
        .route("/admin/relay-grants", post(admin::relay_grant))
        .route(
            "/admin/offline-deactivations",
            post(admin::offline_deactivate),
        )
        .route("/admin/audit", get(admin::audit))
        .route("/admin/abuse", get(admin::abuse))
        .route("/admin/seats", get(admin::seats))
        .route("/admin/summary", get(admin::summary))
        .route("/admin/usage", get(admin::usage))
        .route_layer(middleware::from_fn_with_state(state.clone(), admin_auth));
    Router::new()
        .route(paths::TOKEN, post(licenses::token))
        .route(paths::REFRESH, post(licenses::refresh))
        .route(paths::ACQUIRE, post(seats::acquire))
        .route(paths::RECONNECT, post(seats::reconnect))
        .route(paths::HEARTBEAT, put(seats::heartbeat))
        .route(paths::RELEASE, delete(seats::release))
        .route(paths::RELAY_GRANT, post(licenses::relay_grant))
        .route(
            paths::BORROW,
            post(seats::borrow).delete(seats::return_borrow),
        )
        .route("/healthz", get(metrics::healthz))
        .route("/metrics", get(metrics::metrics_with_token))
        .route("/.well-known/jwks.json", get(metrics::jwks))
        .route("/admin", get(dashboard::to_page))
        .route("/admin/", get(dashboard::page))
        .route("/admin/app.js", get(dashboard::script))
        .route("/admin/app.css", get(dashboard::style))
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                server_codes::METHOD_NOT_ALLOWED,
                "method not allowed here",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), body_deadline))
        .layer(middleware::from_fn_with_state(state.clone(), find_client))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The router of the `metrics-listen` listener: `/metrics` only, no token needed (the
/// listener is for the operator's scraper, loopback by default).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` completes, under the config's connection
/// limits, over HTTPS when the config names `tls-cert` and `tls-key`; lapsed sessions
/// are audited in the background.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = crate::tls::Tls::of_config(&state.config).map_err(std::io::Error::other)?;
    serve_all(listener, None, state, tls, shutdown).await
}

/// Reads the certificate and key again on every SIGHUP.
async fn reload_on_sighup(tls: Arc<crate::tls::Tls>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("no SIGHUP handler: the certificate is read at start only");
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: tls-cert and tls-key read again"),
            Err(e) => tracing::error!("SIGHUP: {e}; the certificate in use stays"),
        }
    }
}

/// Resolves at SIGTERM or Ctrl-C: when a server process shuts down.
pub async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("no SIGTERM handler ({e}): only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// [`serve`] with `tls` (from [`crate::tls::Tls::of_config`]) and `/metrics` on `metrics`
/// (the `metrics-listen` listener, plain HTTP) when given.
pub async fn serve_all(
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    state: Arc<AppState>,
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let jobs = crate::jobs::start(&state);
    let cap = conn::connection_cap(state.config.max_connections, conn::raise_nofile_limit());
    let limits = conn::Limits {
        header_timeout: std::time::Duration::from_secs(state.config.header_timeout_secs),
        idle_timeout: std::time::Duration::from_secs(state.config.idle_timeout_secs),
        max_connections: cap,
        per_client: conn::per_client_cap(state.config.max_connections_per_client, cap),
    };
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_task = metrics.map(|l| {
        let router = metrics_router(state.clone());
        let scrapers = conn::Limits {
            max_connections: 64,
            per_client: 64,
            ..limits
        };
        let none = Arc::new(Vec::new());
        tokio::spawn(conn::serve_connections(
            l,
            router,
            scrapers,
            none,
            None,
            async {
                let _ = metrics_stopped.await;
            },
        ))
    });
    let reloader = tls.clone().map(|t| tokio::spawn(reload_on_sighup(t)));
    let proxies = Arc::new(state.proxies.clone());
    let result = conn::serve_connections(
        listener,
        router(state.clone()),
        limits,
        proxies,
        tls,
        shutdown,
    )
    .await;
    service::audit::flush_all_refusals(&state).await;
    service::usage::write_refusals(&state).await;
    if let Some(r) = reloader {
        r.abort();
    }
    let _ = stop_metrics.send(());
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    drop(jobs);
    result
}
