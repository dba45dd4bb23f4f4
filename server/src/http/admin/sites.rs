//! Sites the server does not reach: an air-gapped activation, a relay's grant, and their
//! deactivation, each a document carried by hand.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lic4es::clock::rfc3339;
use lic4es::protocol::codes;
use serde::Deserialize;
use serde_json::Value;

use crate::admin_api as api;
use crate::app::AppState;
use crate::domain::LicenseId;
use crate::http::{ApiError, ClientAddr, Payload};
use crate::service;

/// A document a site carried by hand, as an admin body: its JSON as it wrote it, or its
/// one-line form as `{"request": "LINE"}`; read by `read`, a refusal a 400.
fn carried<T, E: std::fmt::Display>(
    v: Value,
    read: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ApiError> {
    let text = match v.get("request").and_then(Value::as_str) {
        Some(line) => line.to_string(),
        None => v.to_string(),
    };
    read(&text).map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.to_string()))
}

/// `POST /admin/offline-activations`: answers a site's air-gapped activation request (its
/// JSON, or `{"request": "LINE"}` with its one-line form) with its node-locked token
/// (`license`), the seat held.
pub async fn offline_activate(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Payload(body): Payload<Value>,
) -> Result<Response, ApiError> {
    let req = carried(body, lic4es::offline::ActivationRequest::parse)?;
    let license = LicenseId::parse(&req.license_id).map_err(service::ServiceError::from)?;
    let a = service::offline::activate(&s, &license, &req, &addr.to_string()).await?;
    Ok((
        StatusCode::CREATED,
        Json(api::Activated {
            license: a.token,
            activation_id: a.jti,
            license_id: a.license,
            expires_at: rfc3339(a.expires_at),
            counted: a.counted,
        }),
    )
        .into_response())
}

/// `POST /admin/relay-grants`: answers an on-site relay's grant request (its JSON, or
/// `{"request": "LINE"}`) with the grant (`grant`), its seats held.
pub async fn relay_grant(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Payload(body): Payload<Value>,
) -> Result<Response, ApiError> {
    let req = carried(body, lic4es::offline::GrantRequest::parse)?;
    let license = LicenseId::parse(&req.license_id).map_err(service::ServiceError::from)?;
    let g = service::relay::grant(&s, &license, &req, &addr.to_string()).await?;
    Ok((StatusCode::CREATED, Json(g.answer())).into_response())
}

/// Body of `POST /admin/offline-deactivations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeactivationBody {
    code: String,
}

/// `POST /admin/offline-deactivations`: enters a site's deactivation code; the
/// activation's seat is freed.
pub async fn offline_deactivate(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Payload(body): Payload<DeactivationBody>,
) -> Result<Response, ApiError> {
    let code = lic4es::offline::DeactivationCode::parse(&body.code)
        .map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.to_string()))?;
    let a = service::offline::deactivate(&s, &code, &addr.to_string()).await?;
    Ok(Json(api::Deactivated {
        activation_id: a.jti,
        license_id: a.license_id,
        hardware_id: a.hardware_id,
        deactivated_at: a.deactivated_at.map(rfc3339),
    })
    .into_response())
}
