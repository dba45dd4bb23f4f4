//! Token fetch by API key and static-token refresh.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lic4es::protocol::{codes, RefreshRequest, TokenAnswer, TokenRequest};

use super::{
    bearer, body_bytes, check_license, check_nonce, check_text, parse, parse_bytes, ApiError,
};
use crate::app::AppState;
use crate::config::Serving;
use crate::issue::{Lifetime, TokenSpec};
use crate::store::License;

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

/// How long after its `exp` a static token may still be refreshed: the engine's default
/// grace period, so an engine that was away for its whole grace can come back, and no
/// longer (a token found a year later is not exchanged for a fresh one).
pub const REFRESH_AFTER_EXPIRY_SECS: i64 = 14 * 86_400;

fn invalid_token(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, codes::INVALID_TOKEN, message)
}

/// Whether `claims`, already verified, belong to a token this endpoint may refresh at
/// `now`: a static token the server minted with a `refresh_url` (never a seat token nor
/// an API-key token, which carry no `refresh_url`), expired by less than
/// [`REFRESH_AFTER_EXPIRY_SECS`]. The license's own standing is checked after.
pub fn refreshable(claims: &lic4es::token::Claims, issuer: &str, now: i64) -> Result<(), String> {
    if claims.iss != issuer {
        return Err("bearer token has another issuer".into());
    }
    if claims.sid.is_some() || claims.hwid.is_some() {
        return Err("a seat token is bound to its seat and is not refreshed here".into());
    }
    if claims.refresh_url.is_none() {
        return Err("only a static token minted with a refresh_url is refreshed here".into());
    }
    if now.saturating_sub(claims.exp) > REFRESH_AFTER_EXPIRY_SECS {
        return Err(format!(
            "the token expired more than {} days ago",
            REFRESH_AFTER_EXPIRY_SECS / 86_400
        ));
    }
    Ok(())
}

impl AppState {
    /// Refuses a license the token endpoint does not serve: a seat-counted one is served
    /// only through acquire, reconnect and heartbeat, whatever the engine's config says.
    fn served_by_token(&self, lic: &License) -> Result<(), ApiError> {
        let p = self
            .config
            .effective(lic)
            .ok_or_else(|| super::seats::unknown_tier(lic))?;
        match p.serving(&lic.tier) {
            Serving::Counted(n) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                codes::SEAT_REQUIRED,
                format!(
                    "License {} is counted in seats ({n}): acquire a seat ({})",
                    lic.id,
                    lic4es::protocol::paths::ACQUIRE
                ),
            )),
            _ => Ok(()),
        }
    }

    fn token_answer(&self, (jwt, exp): (String, i64)) -> TokenAnswer {
        TokenAnswer {
            jwt: Some(jwt),
            expires_in: Some(exp - self.now()),
            message: None,
        }
    }

    async fn record_telemetry(&self, license: &str, req: &TokenRequest) {
        let Some(t) = &req.telemetry else { return };
        let sample = crate::telemetry::Sample::from_json(t);
        let (license, instance, now) = (license.to_string(), req.instance_id.clone(), self.now());
        if let Ok(true) = self
            .blocking(move |s| s.record_telemetry(&license, &instance, &sample, now))
            .await
        {
            self.metrics.telemetry_received();
        }
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TokenAnswer>, ApiError> {
    let key = bearer(&headers)?.to_string();
    let req: TokenRequest = parse(body)?;
    check_client(&req)?;
    let lic = s.licensed(&key).await?;
    s.served_by_token(&lic)?;
    s.record_telemetry(&lic.id, &req).await;
    let issued = s.issue(
        &lic,
        TokenSpec {
            nonce: Some(&req.nonce),
            ..TokenSpec::default()
        },
    )?;
    Ok(Json(s.token_answer(issued)))
}

/// `POST /api/v1/licenses/refresh`: a static token's `refresh_url`.
pub async fn refresh(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let current = bearer(&headers)?.to_string();
    let claims = s
        .keyset
        .verify(&current)
        .map_err(|e| invalid_token(format!("bearer token: {e}")))?;
    refreshable(&claims, &s.config.issuer, s.now()).map_err(invalid_token)?;
    let req: RefreshRequest = parse_bytes(&body)?;
    check_client(&req.client)?;
    if req.license_id != claims.sub {
        return Err(ApiError::bad(
            "license_mismatch",
            "license_id does not match the bearer token",
        ));
    }
    let id = claims.sub.clone();
    let lic = s
        .blocking(move |st| st.license(&id))
        .await?
        .ok_or_else(|| invalid_token("unknown license"))?;
    check_license(&lic, s.now())?;
    // A seat-counted license is not served by a token that needs no seat, however it
    // was minted.
    s.served_by_token(&lic)
        .map_err(|e| invalid_token(e.message))?;
    s.record_telemetry(&lic.id, &req.client).await;
    // Nothing new to say: same tier, and the token already runs to the license's end.
    if lic.tier == claims.tier.as_str() && claims.exp >= lic.expires_at {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let issued = s.issue(
        &lic,
        TokenSpec {
            nonce: Some(&req.client.nonce),
            refresh_url: claims.refresh_url.as_deref(),
            lifetime: Lifetime::LicenseEnd,
            ..TokenSpec::default()
        },
    )?;
    Ok(Json(s.token_answer(issued)).into_response())
}
