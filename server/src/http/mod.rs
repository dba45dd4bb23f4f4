//! The HTTP API: the license endpoints engines call, seats, admin, and metrics.
//!
//! Every bad request gets a 4xx with a JSON body `{"error", "message"}`; bodies over
//! 64 KiB are refused before they are read. Bodies are the types of
//! `lic4es::protocol`; fields the server does not know are ignored.

pub mod admin;
pub mod conn;
pub mod dashboard;
pub mod error;
pub mod licenses;
pub mod metrics;
pub mod seats;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use lic4es::protocol::{codes, paths};
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::service;
use crate::store::License;

pub use self::error::{server_codes, ApiError};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad(codes::INVALID_REQUEST, e.body_text())
        }
    })
}

/// A request body: a JSON object of the protocol type `T`.
pub(crate) fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    parse_bytes(&body_bytes(body)?)
}

/// A handler's request body as `T` ([`parse`]): the last argument of a handler, so that
/// its key or token is checked before the body is read.
pub struct Payload<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Payload<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Payload(parse(Bytes::from_request(req, state).await)?))
    }
}

/// [`parse`] for a body already read.
pub(crate) fn parse_bytes<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(codes::INVALID_JSON, format!("body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad(
            codes::INVALID_JSON,
            "body must be a JSON object",
        ));
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.to_string()))
}

pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                server_codes::MISSING_BEARER,
                "an `Authorization: Bearer ...` header is required",
            )
        })
}

/// A client-supplied string: non-blank, at most `max` characters, no control characters
/// and no Unicode format characters (a right-to-left override would make an id read
/// differently on the dashboard than it is).
pub(crate) fn check_text(
    name: &str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), ApiError> {
    if required && value.trim().is_empty() {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            format!("{name} is required"),
        ));
    }
    if value.chars().count() > max || value.chars().any(lic4es::log::is_invisible) {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            format!("{name} must be at most {max} characters without control or format characters"),
        ));
    }
    Ok(())
}

/// A seat call's nonce: absent (empty) is allowed, as clients written from the CODITECT
/// ADR send none; a nonce given must have the form the engine sends.
pub(crate) fn check_optional_nonce(n: &str) -> Result<Option<&str>, ApiError> {
    if n.is_empty() {
        return Ok(None);
    }
    check_nonce(n).map(|()| Some(n))
}

pub(crate) fn check_nonce(n: &str) -> Result<(), ApiError> {
    if n.len() < 16 || n.len() > 128 || !n.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            "nonce must be 16 to 128 hex characters",
        ));
    }
    Ok(())
}

/// Whether `headers` carry the admin token for a request from `ip`.
fn admin_allowed(s: &AppState, headers: &HeaderMap, ip: IpAddr) -> Result<(), AdminDenied> {
    let Some(expected) = s.config.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(AdminDenied::Disabled);
    };
    let now = s.now();
    s.throttle
        .check(ip, now)
        .map_err(|wait| AdminDenied::Throttled { ip, wait })?;
    let given = bearer(headers).map_err(AdminDenied::NoBearer)?;
    if !same_secret(given, expected) {
        s.throttle.failed(ip, now);
        return Err(AdminDenied::Wrong);
    }
    Ok(())
}

/// The license of the request's API key (its bearer), in good standing: what every seat
/// and token endpoint starts from.
pub struct KeyLicense(pub License);

impl FromRequestParts<Arc<AppState>> for KeyLicense {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let key = bearer(&parts.headers)?;
        Ok(KeyLicense(service::api_keys::licensed(s, key).await?))
    }
}

/// The `{id}` of an admin path, parsed as a license id (anything else is a 400).
pub struct LicensePath(pub crate::domain::LicenseId);

impl FromRequestParts<Arc<AppState>> for LicensePath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let axum::extract::Path(id) = axum::extract::Path::<String>::from_request_parts(parts, s)
            .await
            .map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.body_text()))?;
        let id = crate::domain::LicenseId::parse(&id).map_err(service::ServiceError::from)?;
        Ok(LicensePath(id))
    }
}

/// The client a request comes from: the connection's peer, or, when that peer is one of
/// `trusted-proxies`, the address its `X-Forwarded-For` names. Used for the audit trail's
/// source and the admin throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The address.
    pub ip: IpAddr,
    /// The port, when it is the connection's own peer.
    pub port: Option<u16>,
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}", SocketAddr::new(self.ip, p)),
            None => write!(f, "{}", self.ip),
        }
    }
}

impl ClientAddr {
    /// The client of a connection from `peer` with `forwarded` (`X-Forwarded-For`): the
    /// rightmost address in it that is not a trusted proxy, when the peer is one. The
    /// header of anyone else is ignored (a client could claim to be anybody).
    pub fn of(peer: SocketAddr, forwarded: Option<&str>, trusted: &[ipnet::IpNet]) -> ClientAddr {
        let direct = ClientAddr {
            ip: peer.ip(),
            port: Some(peer.port()),
        };
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
        let Some(header) = forwarded.filter(|_| is_trusted(&peer.ip())) else {
            return direct;
        };
        let mut hops = Vec::new();
        for part in header.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A hop that is not an address: nothing to the left of it can be trusted.
                Err(_) => hops.clear(),
            }
        }
        match hops
            .iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .or(hops.first())
        {
            Some(ip) => ClientAddr {
                ip: *ip,
                port: None,
            },
            None => direct,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or_else(|| {
                let peer = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
                ClientAddr::of(peer, None, &[])
            }))
    }
}

/// Every `X-Forwarded-For` line of a request as one list, in order: several header lines
/// are one list (RFC 9110), and reading only the first would let a client put its own
/// line after a proxy's and choose its address. A line that is not text is a hop that is
/// not an address.
pub fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let mut lines = headers.get_all("x-forwarded-for").iter().peekable();
    lines.peek()?;
    Some(
        lines
            .map(|v| v.to_str().unwrap_or("not-an-address"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Names the request's client ([`ClientAddr`]) once, for every handler.
async fn find_client(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let forwarded = forwarded_for(req.headers());
        let client = ClientAddr::of(peer, forwarded.as_deref(), &s.proxies);
        req.extensions_mut().insert(client);
    }
    next.run(req).await
}

/// Reads the whole body within `body-timeout-secs` of the headers, so a client that drips
/// a body (or never sends the one its `Content-Length` announces) lets go of its
/// connection; handlers then read it from memory.
async fn body_deadline(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large().into_response();
    }
    let read = axum::body::to_bytes(body, MAX_BODY_BYTES);
    match tokio::time::timeout(s.body_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => {
            let limit = std::error::Error::source(&e)
                .is_some_and(|c| c.is::<http_body_util::LengthLimitError>());
            if limit {
                too_large().into_response()
            } else {
                ApiError::bad(codes::INVALID_REQUEST, "the request body could not be read")
                    .into_response()
            }
        }
        Err(_) => {
            let mut resp = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                server_codes::BODY_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    s.body_timeout.as_secs()
                ),
            )
            .into_response();
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            resp
        }
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        server_codes::BODY_TOO_LARGE,
        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
    )
}

/// Turns any error answer that is not JSON (an extractor's rejection of a path that is
/// not valid percent-encoding or UTF-8, say) into the JSON error every client expects.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = lic4es::log::clean(String::from_utf8_lossy(&text).trim());
    let code = match status {
        StatusCode::NOT_FOUND => server_codes::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => server_codes::METHOD_NOT_ALLOWED,
        StatusCode::PAYLOAD_TOO_LARGE => server_codes::BODY_TOO_LARGE,
        s if s.is_server_error() => server_codes::INTERNAL_ERROR,
        _ => codes::INVALID_REQUEST,
    };
    let mut out = ApiError::new(
        status,
        code,
        if message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            message
        },
    )
    .into_response();
    for name in [header::CONNECTION, header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// The admin token, checked once for every admin endpoint (a handler cannot forget
/// it), compared in constant time, with failed attempts throttled per client address.
async fn admin_auth(
    State(s): State<Arc<AppState>>,
    client: ClientAddr,
    req: Request,
    next: Next,
) -> Response {
    match admin_allowed(&s, req.headers(), client.ip) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Why an admin request is refused.
#[derive(Debug)]
enum AdminDenied {
    /// No admin token is configured.
    Disabled,
    /// Too many wrong tokens from this address lately.
    Throttled { ip: IpAddr, wait: i64 },
    /// No bearer token.
    NoBearer(ApiError),
    /// A wrong token.
    Wrong,
}

impl IntoResponse for AdminDenied {
    fn into_response(self) -> Response {
        match self {
            AdminDenied::Disabled => ApiError::new(
                StatusCode::FORBIDDEN,
                server_codes::ADMIN_DISABLED,
                "the admin API is disabled: set admin-token in the config",
            )
            .into_response(),
            AdminDenied::Throttled { ip, wait } => {
                let mut resp = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    server_codes::TOO_MANY_ATTEMPTS,
                    format!("too many wrong admin tokens from {ip}; try again in {wait} s"),
                )
                .into_response();
                if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            }
            AdminDenied::NoBearer(e) => e.into_response(),
            AdminDenied::Wrong => ApiError::new(
                StatusCode::UNAUTHORIZED,
                server_codes::INVALID_ADMIN_TOKEN,
                "wrong admin token",
            )
            .into_response(),
        }
    }
}

/// Compares two secrets in constant time (for equal lengths), so neither can be guessed
/// byte by byte.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        server_codes::NOT_FOUND,
        "no such endpoint",
    )
}

async fn count_requests(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // A matched path is shared, not copied, per request.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let endpoint = matched.as_ref().map_or("other", MatchedPath::as_str);
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    // The access log is its own target: on when asked for, whatever the log level.
    tracing::info!(target: crate::log::ACCESS, "{method} {endpoint} {status}");
    s.metrics.request(endpoint, status, seconds);
    resp
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwards_for_it() {
        let trusted: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        let peer = |s: &str| -> SocketAddr { s.parse().unwrap() };
        // (peer, X-Forwarded-For, client shown)
        let cases = [
            ("203.0.113.5:4000", None, "203.0.113.5:4000"),
            ("203.0.113.5:4000", Some("198.51.100.1"), "203.0.113.5:4000"),
            ("10.1.2.3:80", None, "10.1.2.3:80"),
            ("10.1.2.3:80", Some("198.51.100.1"), "198.51.100.1"),
            (
                "10.1.2.3:80",
                Some("6.6.6.6, 198.51.100.1, 10.9.9.9"),
                "198.51.100.1",
            ),
            ("127.0.0.1:80", Some("10.0.0.7, 10.0.0.8"), "10.0.0.7"),
            (
                "10.1.2.3:80",
                Some("6.6.6.6, garbage, 10.9.9.9"),
                "10.9.9.9",
            ),
            ("10.1.2.3:80", Some("garbage"), "10.1.2.3:80"),
            ("10.1.2.3:80", Some("2001:db8::1"), "2001:db8::1"),
        ];
        for (p, xff, want) in cases {
            let got = ClientAddr::of(peer(p), xff, &trusted).to_string();
            assert_eq!(got, want, "{p} {xff:?}");
        }
        assert_eq!(
            ClientAddr::of(peer("10.1.2.3:80"), Some("198.51.100.1"), &[]).to_string(),
            "10.1.2.3:80",
            "no trusted proxies: the header is ignored"
        );
    }

    #[test]
    fn every_forwarded_line_counts_so_a_client_cannot_append_its_own() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: SocketAddr = "10.1.2.3:80".parse().unwrap();
        let mut h = HeaderMap::new();
        // The client sends its own line; the proxy appends the address it saw on another.
        h.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        let xff = forwarded_for(&h);
        assert_eq!(xff.as_deref(), Some("6.6.6.6,198.51.100.1"));
        assert_eq!(
            ClientAddr::of(peer, xff.as_deref(), &trusted).to_string(),
            "198.51.100.1"
        );
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        h.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        let xff = forwarded_for(&h);
        assert_eq!(
            ClientAddr::of(peer, xff.as_deref(), &trusted).to_string(),
            "10.1.2.3:80",
            "a hop that is not an address ends what can be trusted"
        );
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", "abc"));
    }
}
