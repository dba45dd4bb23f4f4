//! The admin API, behind the admin token: licenses, API keys, telemetry, sessions and the
//! audit trail. The handlers check the requests' form and call [`crate::service`], where
//! every change is audited.
//!
//! Here: what changes licenses, their keys and sessions. `views` holds what the admin
//! reads, `sites` the documents of sites the server does not reach.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{ApiError, ClientAddr, LicensePath, Payload};
use crate::admin_api as api;
use crate::app::AppState;
use crate::domain::{LicenseId, NoOtherKeys, Overrides, SessionId, Tier};
use crate::service;
use crate::service::licenses::{self, LicenseView, NewLicense, Terms};

mod sites;
mod views;

pub use sites::{offline_activate, offline_deactivate, relay_grant, DeactivationBody};
pub use views::{
    abuse, audit, seats, sessions, summary, telemetry, telemetry_daily, usage, AuditView, Filter,
    UsageParams,
};

/// The admin bodies through the handlers' parsing (for the fuzzer, through
/// [`super::check_any_body`]).
pub(crate) fn check_bodies(body: &[u8]) {
    let _ = super::parse_bytes::<CreateLicense>(body);
    let _ = super::parse_bytes::<Terms>(body);
    let _ = super::parse_bytes::<SetTier>(body);
    let _ = super::parse_bytes::<RevokeKey>(body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = LicenseId::parse(text);
    }
}

/// Body of `POST /admin/licenses`; a key it does not know is refused.
#[derive(Deserialize)]
pub struct CreateLicense {
    id: Option<LicenseId>,
    tier: Tier,
    org_name: Option<String>,
    days: i64,
    #[serde(default)]
    trial: bool,
    #[serde(flatten)]
    overrides: Overrides,
    #[serde(flatten, default)]
    _no_other_keys: NoOtherKeys,
}

/// `POST /admin/licenses`: a license and its first API key.
pub async fn create_license(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Payload(req): Payload<CreateLicense>,
) -> Result<Response, ApiError> {
    let id = match req.id {
        Some(id) => id,
        None => LicenseId::parse(&format!(
            "lic-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ))
        .map_err(service::ServiceError::from)?,
    };
    let spec = NewLicense {
        id,
        tier: req.tier,
        org_name: req.org_name,
        days: req.days,
        trial: req.trial,
        overrides: req.overrides,
    };
    let source = addr.to_string();
    let (lic, key) = service::blocking(&s, move |s| {
        let id = spec.id.clone();
        let lic = licenses::create(s, spec, &source)?;
        let key = licenses::new_api_key(s, &id, &source)?;
        Ok((lic, key))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::LicenseCreated {
            license_id: lic.id,
            tier: lic.tier,
            expires_at: lic.expires_at,
            api_key: key,
        }),
    )
        .into_response())
}

/// `GET /admin/licenses/{id}`.
pub async fn show_license(
    State(s): State<Arc<AppState>>,
    LicensePath(id): LicensePath,
) -> Result<Json<LicenseView>, ApiError> {
    let lic = service::blocking(&s, move |s| licenses::get(s, &id)).await?;
    Ok(Json(LicenseView::of(&s.config, &lic)))
}

/// `PATCH /admin/licenses/{id}`: the explicit update of a license's terms. Revocation is
/// not among them: a revoked license stays revoked.
pub async fn update_license(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    LicensePath(id): LicensePath,
    Payload(terms): Payload<Terms>,
) -> Result<Json<LicenseView>, ApiError> {
    let source = addr.to_string();
    let lic = service::blocking(&s, move |s| licenses::update(s, &id, terms, &source)).await?;
    Ok(Json(LicenseView::of(&s.config, &lic)))
}

/// `POST /admin/licenses/{id}/api-keys`: another API key for an existing license.
pub async fn add_api_key(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    LicensePath(id): LicensePath,
) -> Result<Response, ApiError> {
    let (lid, source) = (id.clone(), addr.to_string());
    let key = service::blocking(&s, move |s| licenses::new_api_key(s, &lid, &source)).await?;
    Ok((
        StatusCode::CREATED,
        Json(api::KeyCreated {
            license_id: id.into_string(),
            api_key: key,
        }),
    )
        .into_response())
}

/// Body of `POST /admin/licenses/{id}/tier`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTier {
    tier: Tier,
}

/// `POST /admin/licenses/{id}/tier`.
pub async fn set_tier(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    LicensePath(id): LicensePath,
    Payload(req): Payload<SetTier>,
) -> Result<Json<api::TierSet>, ApiError> {
    let source = addr.to_string();
    let lic = service::blocking(&s, move |s| licenses::set_tier(s, &id, req.tier, &source)).await?;
    Ok(Json(api::TierSet {
        license_id: lic.id,
        tier: lic.tier,
    }))
}

/// `POST /admin/licenses/{id}/revoke`.
pub async fn revoke_license(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    LicensePath(id): LicensePath,
) -> Result<Json<api::Revoked>, ApiError> {
    let (lid, source) = (id.clone(), addr.to_string());
    service::blocking(&s, move |s| licenses::revoke(s, &lid, &source)).await?;
    Ok(Json(api::Revoked {
        license_id: Some(id.into_string()),
        revoked: true,
    }))
}

/// Body of `POST /admin/api-keys/revoke`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    api_key: String,
}

/// `POST /admin/api-keys/revoke`.
pub async fn revoke_key(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Payload(req): Payload<RevokeKey>,
) -> Result<Json<api::Revoked>, ApiError> {
    let source = addr.to_string();
    service::blocking(&s, move |s| {
        licenses::revoke_api_key(s, &req.api_key, &source)
    })
    .await?;
    Ok(Json(api::Revoked {
        license_id: None,
        revoked: true,
    }))
}

/// `DELETE /admin/sessions/{id}`: kicks a session; its next heartbeat gets 410.
pub async fn kick(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Path(id): Path<SessionId>,
) -> Result<Response, ApiError> {
    service::seats::kick(&s, id.as_str(), &addr.to_string()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
