//! Health, Prometheus metrics and the public key set.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::server_codes;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::service::reports;

/// `GET /healthz`: 200 while the stores answer and the database accepts writes (the
/// probe's own and the audit trail's), 503 otherwise, so a load balancer takes an
/// instance that cannot audit its grants out of rotation.
pub async fn healthz(State(s): State<Arc<AppState>>) -> Response {
    let h = reports::health(&s).await;
    let ok = h.database && h.seats;
    let body = json!({"status": if ok { "ok" } else { "unavailable" },
                      "database": h.database, "seats": h.seats});
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics` on the main listener: only with `metrics-token` as bearer, since the
/// series name every customer's license and this is the port customers reach.
pub async fn metrics_with_token(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(expected) = s.config.metrics_token.as_deref() else {
        return super::ApiError::new(
            StatusCode::NOT_FOUND,
            server_codes::NOT_FOUND,
            "metrics are served on the metrics-listen address, or here with metrics-token",
        )
        .into_response();
    };
    let allowed = super::bearer(&headers).is_ok_and(|t| super::same_secret(t, expected));
    if !allowed {
        return super::ApiError::new(
            StatusCode::UNAUTHORIZED,
            server_codes::INVALID_METRICS_TOKEN,
            "metrics need the metrics token as bearer",
        )
        .into_response();
    }
    metrics(State(s)).await
}

/// `GET /metrics` (the `metrics-listen` listener).
pub async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        reports::metrics_text(&s).await,
    )
        .into_response()
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(s.jwks.clone())
}
