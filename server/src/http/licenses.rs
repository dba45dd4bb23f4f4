//! Token fetch by API key, static-token refresh, and an on-site relay's own grant
//! request. The handlers check the bodies' form and call [`crate::service`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lic4es::protocol::{codes, RefreshRequest, RelayGrantAnswer, TokenAnswer, TokenRequest};

use super::{
    bearer, body_bytes, check_nonce, check_text, parse_bytes, ApiError, ClientAddr, KeyLicense,
    Payload,
};
use crate::app::AppState;
use crate::domain::LicenseId;
use crate::service::{relay, tokens};

fn check_client(req: &TokenRequest) -> Result<(), ApiError> {
    check_text("instance_id", &req.instance_id, 256, true)?;
    check_text("version", &req.version, 128, false)?;
    check_nonce(&req.nonce)?;
    if !req.uptime_hours.is_finite() || req.uptime_hours < 0.0 {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            "uptime_hours must be a non-negative number",
        ));
    }
    if req.telemetry.as_ref().is_some_and(|t| !t.is_object()) {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            "telemetry must be an object",
        ));
    }
    Ok(())
}

fn token_answer(s: &AppState, (jwt, exp): (String, i64)) -> TokenAnswer {
    TokenAnswer {
        jwt: Some(jwt),
        expires_in: Some(exp - s.now()),
        message: None,
    }
}

/// The token and refresh bodies through the handlers' own parsing and checks (for the
/// fuzzer, through [`super::check_any_body`]).
pub(crate) fn check_bodies(body: &[u8]) {
    if let Ok(req) = parse_bytes::<TokenRequest>(body) {
        if check_client(&req).is_ok() {
            let _ = req
                .telemetry
                .as_ref()
                .map(crate::telemetry::Sample::from_json);
        }
    }
    if let Ok(req) = parse_bytes::<RefreshRequest>(body) {
        let _ = check_client(&req.client);
    }
}

/// `POST /api/v1/licenses/token`.
pub async fn token(
    State(s): State<Arc<AppState>>,
    KeyLicense(lic): KeyLicense,
    Payload(req): Payload<TokenRequest>,
) -> Result<Json<TokenAnswer>, ApiError> {
    check_client(&req)?;
    let issued = tokens::by_api_key(&s, &lic, &req).await?;
    Ok(Json(token_answer(&s, issued)))
}

/// `POST /api/v1/licenses/refresh`: a static token's `refresh_url`; 204 when there is
/// nothing new.
pub async fn refresh(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let current = bearer(&headers)?.to_string();
    // The bearer is checked before the body is read: what a refresh may do depends on
    // the token, not on what the body claims.
    let claims_first = tokens::refresh_bearer(&s, &current)?;
    let req: RefreshRequest = parse_bytes(&body)?;
    check_client(&req.client)?;
    match tokens::refresh(&s, claims_first, &req.license_id, &req.client).await? {
        Some(issued) => Ok(Json(token_answer(&s, issued)).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `POST /api/v1/licenses/relay-grant`: an on-site relay that reaches the vendor asks for
/// its grant, or its renewal with its usage report, with the license's API key; the
/// request must be for that license.
pub async fn relay_grant(
    State(s): State<Arc<AppState>>,
    KeyLicense(lic): KeyLicense,
    addr: ClientAddr,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<RelayGrantAnswer>), ApiError> {
    let body = body_bytes(body)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad(codes::INVALID_JSON, "the body is not UTF-8"))?;
    let req = lic4es::offline::GrantRequest::parse(text)
        .map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.to_string()))?;
    if req.license_id != lic.id {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            "the grant request is for another license than the API key's",
        ));
    }
    let license = LicenseId::parse(&lic.id).map_err(crate::service::ServiceError::from)?;
    let g = relay::grant(&s, &license, &req, &addr.to_string()).await?;
    Ok((StatusCode::CREATED, Json(g.answer())))
}
