//! The admin API, behind the admin token: licenses, API keys, telemetry, sessions and the
//! audit trail. Every change is audited.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lic4es::clock::rfc3339;
use lic4es::protocol::codes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{parse, ApiError, ClientAddr};
use crate::abuse;
use crate::app::{check_license_id, check_terms, check_tier, AppState, LicenseError, NewLicense};
use crate::seats::Session;
use crate::store::{AuditEvent, AuditQuery, License, Seats};

fn license_error(e: LicenseError) -> ApiError {
    match e {
        LicenseError::Exists(_) => {
            ApiError::new(StatusCode::CONFLICT, codes::LICENSE_EXISTS, e.to_string())
        }
        LicenseError::Invalid(m) => ApiError::bad(codes::INVALID_REQUEST, m),
        LicenseError::Store(e) => ApiError::from(e),
    }
}

/// The admin bodies through the handlers' parsing (for the fuzzer, through
/// [`super::check_any_body`]).
pub(crate) fn check_bodies(body: &[u8]) {
    if let Ok(req) = super::parse_bytes::<CreateLicense>(body) {
        if let Some(id) = &req.id {
            let _ = license_id(id);
        }
    }
    let _ = super::parse_bytes::<UpdateLicense>(body);
    let _ = super::parse_bytes::<SetTier>(body);
    let _ = super::parse_bytes::<RevokeKey>(body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = license_id(text);
    }
}

/// A license id from a path or query: anything outside section 14's alphabet is a 400.
fn license_id(id: &str) -> Result<(), ApiError> {
    check_license_id(id).map_err(|m| ApiError::bad(codes::INVALID_REQUEST, m))
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such {what}"),
    )
}

impl AppState {
    /// A license or key was changed here: cached key lookups are dropped at once, after
    /// the write (a lookup made meanwhile may have cached the old state), so this
    /// instance applies the change to its next request.
    fn licenses_changed(&self) {
        self.keys_seen.clear();
    }

    fn admin_event(
        &self,
        kind: &str,
        license: &str,
        source: ClientAddr,
        detail: Option<String>,
    ) -> AuditEvent {
        AuditEvent {
            at: self.now(),
            kind: kind.into(),
            license: license.into(),
            source: Some(source.to_string()),
            detail,
            ..AuditEvent::default()
        }
    }
}

/// Body of `POST /admin/licenses`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLicense {
    id: Option<String>,
    tier: String,
    org_name: Option<String>,
    days: i64,
    #[serde(default)]
    trial: bool,
    #[serde(default)]
    seats: Option<Seats>,
    #[serde(default)]
    offline_grace_days: Option<u32>,
    #[serde(default)]
    heartbeat_interval: Option<u64>,
}

/// `POST /admin/licenses`: a license and its first API key.
pub async fn create_license(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CreateLicense = parse(body)?;
    check_terms(
        &s.config,
        Some(&req.tier),
        Some(req.days),
        req.heartbeat_interval,
    )
    .map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e))?;
    let spec = NewLicense {
        id: req
            .id
            .unwrap_or_else(|| format!("lic-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])),
        tier: req.tier,
        org_name: req.org_name,
        days: req.days,
        trial: req.trial,
        seats: req.seats,
        offline_grace_days: req.offline_grace_days,
        heartbeat_interval: req.heartbeat_interval,
    };
    let state = s.clone();
    let (lic, key) = tokio::task::spawn_blocking(move || {
        let lic = state.create_license(spec)?;
        let key = state
            .store
            .create_api_key(&lic.id, state.now())
            .map_err(LicenseError::Store)?;
        Ok::<_, LicenseError>((lic, key))
    })
    .await
    .map_err(|e| ApiError::from(crate::store::StoreError::Unavailable(e.to_string())))?
    .map_err(license_error)?;
    s.audit(s.admin_event(
        "license_create",
        &lic.id,
        addr,
        Some(format!("tier {}", lic.tier)),
    ))
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"license_id": lic.id, "tier": lic.tier, "expires_at": lic.expires_at, "api_key": key})),
    )
        .into_response())
}

fn license_view(s: &AppState, lic: &License) -> Value {
    let p = s.config.effective(lic);
    json!({
        "license_id": lic.id,
        "tier": lic.tier,
        "org_name": lic.org_name,
        "expires_at": rfc3339(lic.expires_at),
        "trial": lic.trial,
        "revoked": lic.revoked,
        "seats": p.as_ref().map(|p| p.seats),
        "offline_grace_days": p.as_ref().map(|p| p.offline_grace_days),
        "heartbeat_interval": p.as_ref().map(|p| p.heartbeat_interval),
    })
}

/// `GET /admin/licenses/{id}`.
pub async fn show_license(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    license_id(&id)?;
    let lic = s
        .blocking(move |st| st.license(&id))
        .await?
        .ok_or_else(|| not_found("license"))?;
    Ok(Json(license_view(&s, &lic)))
}

/// Body of `PATCH /admin/licenses/{id}`: the fields to change (absent ones stay).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateLicense {
    tier: Option<String>,
    org_name: Option<String>,
    /// New expiry: this many days from now.
    days: Option<i64>,
    trial: Option<bool>,
    seats: Option<Seats>,
    offline_grace_days: Option<u32>,
    heartbeat_interval: Option<u64>,
}

/// `PATCH /admin/licenses/{id}`: the explicit update of a license's terms. Revocation is
/// not among them: a revoked license stays revoked.
pub async fn update_license(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    license_id(&id)?;
    let req: UpdateLicense = parse(body)?;
    check_terms(
        &s.config,
        req.tier.as_deref(),
        req.days,
        req.heartbeat_interval,
    )
    .map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e))?;
    let lid = id.clone();
    let mut lic = s
        .blocking(move |st| st.license(&lid))
        .await?
        .ok_or_else(|| not_found("license"))?;
    let mut changed = Vec::new();
    if let Some(t) = req.tier {
        changed.push(format!("tier {t}"));
        lic.tier = t;
    }
    if let Some(o) = req.org_name {
        changed.push("org_name".to_string());
        lic.org_name = Some(o);
    }
    if let Some(d) = req.days {
        lic.expires_at = s.now() + d * 86_400;
        changed.push(format!("expires {}", rfc3339(lic.expires_at)));
    }
    if let Some(t) = req.trial {
        changed.push(format!("trial {t}"));
        lic.trial = t;
    }
    if let Some(n) = req.seats {
        changed.push(format!("seats {n}"));
        lic.seats = Some(n);
    }
    if let Some(g) = req.offline_grace_days {
        changed.push(format!("offline_grace_days {g}"));
        lic.offline_grace_days = Some(g);
    }
    if let Some(h) = req.heartbeat_interval {
        changed.push(format!("heartbeat_interval {h}"));
        lic.heartbeat_interval = Some(h);
    }
    let update = lic.clone();
    if !s.blocking(move |st| st.update_license(&update)).await? {
        return Err(not_found("license"));
    }
    s.licenses_changed();
    s.audit(s.admin_event("license_update", &id, addr, Some(changed.join(", "))))
        .await;
    Ok(Json(license_view(&s, &lic)))
}

/// `POST /admin/licenses/{id}/api-keys`: another API key for an existing license.
pub async fn add_api_key(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    license_id(&id)?;
    let lid = id.clone();
    let now = s.now();
    let key = s
        .blocking(move |st| match st.license(&lid)? {
            Some(_) => st.create_api_key(&lid, now).map(Some),
            None => Ok(None),
        })
        .await?
        .ok_or_else(|| not_found("license"))?;
    let prefix: String = key.chars().take(9).collect();
    s.audit(s.admin_event("api_key_create", &id, addr, Some(format!("key {prefix}…"))))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"license_id": id, "api_key": key})),
    )
        .into_response())
}

/// Body of `POST /admin/licenses/{id}/tier`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTier {
    tier: String,
}

/// `POST /admin/licenses/{id}/tier`.
pub async fn set_tier(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    license_id(&id)?;
    let req: SetTier = parse(body)?;
    check_tier(&s.config, &req.tier).map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e))?;
    let (lid, tier) = (id.clone(), req.tier.clone());
    if !s.blocking(move |st| st.set_tier(&lid, &tier)).await? {
        return Err(not_found("license"));
    }
    s.licenses_changed();
    s.audit(s.admin_event(
        "license_tier",
        &id,
        addr,
        Some(format!("tier {}", req.tier)),
    ))
    .await;
    Ok(Json(json!({"license_id": id, "tier": req.tier})))
}

/// `POST /admin/licenses/{id}/revoke`.
pub async fn revoke_license(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    license_id(&id)?;
    let lid = id.clone();
    if !s.blocking(move |st| st.revoke_license(&lid)).await? {
        return Err(not_found("license"));
    }
    s.licenses_changed();
    s.audit(s.admin_event("license_revoke", &id, addr, None))
        .await;
    Ok(Json(json!({"license_id": id, "revoked": true})))
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: RevokeKey = parse(body)?;
    let key = req.api_key.clone();
    let rec = s.blocking(move |st| st.api_key(&key)).await?;
    let key = req.api_key.clone();
    if !s.blocking(move |st| st.revoke_api_key(&key)).await? {
        return Err(not_found("API key"));
    }
    s.licenses_changed();
    if let Some(rec) = rec {
        let prefix: String = req.api_key.chars().take(9).collect();
        s.audit(s.admin_event(
            "api_key_revoke",
            &rec.license_id,
            addr,
            Some(format!("key {prefix}…")),
        ))
        .await;
    }
    Ok(Json(json!({"revoked": true})))
}

/// `GET /admin/telemetry`: the latest report of the most recently heard instances.
pub async fn telemetry(State(s): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let rows = s.blocking(|st| st.recent_telemetry(100)).await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|r| {
                json!({"license_id": r.license_id, "instance_id": r.instance_id,
                       "received_at": rfc3339(r.received_at), "telemetry": r.telemetry})
            })
            .collect(),
    )))
}

/// `GET /admin/telemetry/daily[?license=ID][&limit=N]`: usage per license and day.
pub async fn telemetry_daily(
    State(s): State<Arc<AppState>>,
    f: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let f = filter(f)?;
    if let Some(l) = &f.license {
        license_id(l)?;
    }
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    let rows = s
        .blocking(move |st| st.daily_telemetry(f.license.as_deref(), limit))
        .await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|r| {
                let mut v = json!(r);
                v["day"] = json!(rfc3339(r.day * 86_400)[..10].to_string());
                v
            })
            .collect(),
    )))
}

/// `?license=ID` (and `&limit=N&before=ID` for the audit trail).
#[derive(Deserialize)]
pub struct Filter {
    license: Option<String>,
    limit: Option<u32>,
    before: Option<i64>,
}

/// The query, or a JSON 400 saying what is wrong with it (`before=soon`).
fn filter(q: Result<Query<Filter>, QueryRejection>) -> Result<Filter, ApiError> {
    q.map(|Query(f)| f)
        .map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.body_text()))
}

/// A session as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct SessionView {
    session_id: String,
    license: String,
    hardware_id: String,
    instance_id: String,
    /// `online` or `offline`.
    mode: &'static str,
    acquired_at: String,
    last_seen: String,
    offline_since: Option<String>,
    /// When a lapsed session's offline grace ends.
    offline_until: Option<String>,
    /// Seconds offline so far (offline sessions).
    offline_secs: Option<i64>,
    /// Seconds of offline grace left (offline sessions).
    grace_left_secs: Option<i64>,
}

impl SessionView {
    /// The view of `s` at `now` (seconds).
    fn at(s: Session, now: i64) -> Self {
        SessionView {
            mode: if s.online() { "online" } else { "offline" },
            offline_secs: s.offline_since.map(|t| (now - t).max(0)),
            grace_left_secs: s.offline_until.map(|t| (t - now).max(0)),
            acquired_at: rfc3339(s.acquired_at),
            last_seen: rfc3339(s.last_seen),
            offline_since: s.offline_since.map(rfc3339),
            offline_until: s.offline_until.map(rfc3339),
            session_id: s.id,
            license: s.license,
            hardware_id: s.hardware_id,
            instance_id: s.instance_id,
        }
    }
}

/// `GET /admin/sessions[?license=ID]`.
pub async fn sessions(
    State(s): State<Arc<AppState>>,
    f: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let f = filter(f)?;
    if let Some(l) = &f.license {
        license_id(l)?;
    }
    s.sweep().await;
    let list = s.seats.sessions(f.license.as_deref()).await?;
    let now = s.now();
    Ok(Json(
        list.into_iter().map(|x| SessionView::at(x, now)).collect(),
    ))
}

/// `DELETE /admin/sessions/{id}`: kicks a session; its next heartbeat gets 410.
pub async fn kick(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let session = s
        .seats
        .kick(&id)
        .await?
        .ok_or_else(|| not_found("session"))?;
    s.audit(s.seat_event("kick", &session, Some(addr.to_string())))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An audit entry as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct AuditView {
    at: String,
    #[serde(flatten)]
    event: AuditEvent,
}

/// `GET /admin/audit[?license=ID][&limit=N][&before=ID]`, newest first: at most `limit`
/// entries (100 by default, 1 000 at most); the next page is `before` the last `id`.
pub async fn audit(
    State(s): State<Arc<AppState>>,
    f: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    let f = filter(f)?;
    if let Some(l) = &f.license {
        license_id(l)?;
    }
    s.sweep().await;
    let q = AuditQuery {
        license: f.license,
        before: f.before,
        limit: f.limit.unwrap_or(100).clamp(1, 1000),
    };
    let rows = s.blocking(move |st| st.audit(&q)).await?;
    Ok(Json(
        rows.into_iter()
            .map(|e| AuditView {
                at: rfc3339(e.at),
                event: e,
            })
            .collect(),
    ))
}

/// `GET /admin/abuse`: licenses with offline periods in the last 30 days, flagged ones
/// first, with the rule's counts.
pub async fn abuse(State(s): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    s.sweep().await;
    let mut all = s.offline_report().await?;
    all.sort_by(|(la, a), (lb, b)| {
        (b.flagged, b.cycles, b.offline_secs, la).cmp(&(a.flagged, a.cycles, a.offline_secs, lb))
    });
    let licenses: Vec<Value> = all
        .iter()
        .map(|(license, v)| {
            json!({
                "license": license,
                "flagged": v.flagged,
                "cycles": v.cycles,
                "offline_secs": v.offline_secs,
                "offline_days": (v.offline_days() * 10.0).round() / 10.0,
                "message": v.flagged.then(|| abuse::message(license, v)),
            })
        })
        .collect();
    Ok(Json(json!({
        "window_days": abuse::WINDOW_SECS / 86_400,
        "max_cycles": abuse::MAX_CYCLES,
        "max_offline_days": abuse::MAX_OFFLINE_DAYS,
        "flagged": all.iter().filter(|(_, v)| v.flagged).count(),
        "licenses": licenses,
    })))
}

/// `GET /admin/seats`: each license with sessions: seats in use, its limit, sessions
/// offline.
pub async fn seats(State(s): State<Arc<AppState>>) -> Result<Json<Vec<Value>>, ApiError> {
    s.sweep().await;
    let sessions = s.seats.sessions(None).await?;
    let usage = crate::seats::usage(&sessions);
    let licenses = s.licenses(usage.keys().cloned().collect()).await?;
    Ok(Json(
        usage
            .iter()
            .zip(licenses)
            .map(|((id, u), lic)| {
                let limit = lic
                    .as_ref()
                    .and_then(|l| s.config.effective(l))
                    .map(|p| p.seats);
                json!({
                    "license": id,
                    "org_name": lic.as_ref().and_then(|l| l.org_name.clone()),
                    "tier": lic.as_ref().map(|l| l.tier.clone()),
                    "in_use": u.online,
                    "offline": u.offline,
                    "limit": limit,
                })
            })
            .collect(),
    ))
}
