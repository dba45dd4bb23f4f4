//! The HTTP API: the license endpoints engines call, seats, admin, and metrics.
//!
//! Every bad request gets a 4xx with a JSON body `{"error", "message"}`; bodies over
//! 64 KiB are refused before they are read. Bodies are the types of
//! `lic4es::protocol`; fields the server does not know are ignored.

pub mod admin;
pub mod conn;
pub mod dashboard;
pub mod licenses;
pub mod metrics;
pub mod seats;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use lic4es::protocol::{codes, paths, ErrorBody};
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::seats::SeatError;
use crate::store::{License, StoreError};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error`: a code of `lic4es::protocol::codes` or one of the server's own.
    pub code: &'static str,
    /// `message`.
    pub message: String,
}

impl ApiError {
    /// An error answer.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.code.into(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::STORE_UNAVAILABLE,
            e.to_string(),
        )
    }
}

impl From<SeatError> for ApiError {
    fn from(e: SeatError) -> Self {
        // The engine treats a 503 as a network failure and holds its tier; never a grant.
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::STORE_UNAVAILABLE,
            e.to_string(),
        )
    }
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            )
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
                "missing_bearer",
                "an `Authorization: Bearer ...` header is required",
            )
        })
}

/// A client-supplied string: non-blank, at most `max` characters, no control characters.
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
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            format!("{name} must be at most {max} characters without control characters"),
        ));
    }
    Ok(())
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

/// Refuses a revoked or expired license.
pub(crate) fn check_license(lic: &License, now: i64) -> Result<(), ApiError> {
    if lic.revoked {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            codes::LICENSE_REVOKED,
            format!("License {} has been revoked", lic.id),
        ));
    }
    if lic.expires_at <= now {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            codes::LICENSE_EXPIRED,
            format!("License {} has expired", lic.id),
        ));
    }
    Ok(())
}

impl AppState {
    /// The license an API key belongs to, if the key and the license are in good
    /// standing.
    pub(crate) async fn licensed(&self, api_key: &str) -> Result<License, ApiError> {
        let hash = crate::store::hash_key(api_key);
        let (rec, lic) = match self.keys_seen.get(&hash) {
            Some(found) => found,
            None => {
                let key = api_key.to_string();
                let found = self
                    .blocking(move |s| {
                        let rec = s.api_key(&key)?;
                        let lic = match &rec {
                            Some(r) => s.license(&r.license_id)?,
                            None => None,
                        };
                        Ok((rec, lic))
                    })
                    .await?;
                self.metrics.key_looked_up();
                self.keys_seen.put(hash, found.clone());
                found
            }
        };
        let unknown = || ApiError::unauthorized(codes::INVALID_API_KEY, "unknown API key");
        let rec = rec.ok_or_else(unknown)?;
        if rec.revoked {
            return Err(ApiError::unauthorized(
                codes::API_KEY_REVOKED,
                "This API key has been revoked",
            ));
        }
        let lic = lic.ok_or_else(unknown)?;
        check_license(&lic, self.now())?;
        Ok(lic)
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
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
    if s.access_log {
        eprintln!("license-server: {method} {endpoint} {status}");
    }
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
    Router::new()
        .route(paths::TOKEN, post(licenses::token))
        .route(paths::REFRESH, post(licenses::refresh))
        .route(paths::ACQUIRE, post(seats::acquire))
        .route(paths::RECONNECT, post(seats::reconnect))
        .route(paths::HEARTBEAT, put(seats::heartbeat))
        .route(paths::RELEASE, delete(seats::release))
        .route("/healthz", get(metrics::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/.well-known/jwks.json", get(metrics::jwks))
        .route("/admin", get(dashboard::to_page))
        .route("/admin/", get(dashboard::page))
        .route("/admin/app.js", get(dashboard::script))
        .route("/admin/app.css", get(dashboard::style))
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
        .route("/admin/audit", get(admin::audit))
        .route("/admin/abuse", get(admin::abuse))
        .route("/admin/seats", get(admin::seats))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// How often lapses are audited and the audit trail pruned while serving.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves on `listener` until `shutdown` completes, under the config's connection
/// limits; lapsed sessions are audited in the background.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = state.clone();
    let sweep = tokio::spawn(async move {
        let mut n: u64 = 0;
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            sweeper.sweep().await;
            n += 1;
            if n % 360 == 1 {
                sweeper.prune_old().await;
            }
        }
    });
    let limits = conn::Limits {
        header_timeout: std::time::Duration::from_secs(state.config.header_timeout_secs),
        idle_timeout: std::time::Duration::from_secs(state.config.idle_timeout_secs),
        max_connections: conn::connection_cap(
            state.config.max_connections,
            conn::raise_nofile_limit(),
        ),
    };
    let result = conn::serve_connections(listener, router(state), limits, shutdown).await;
    sweep.abort();
    result
}
