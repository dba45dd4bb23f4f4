//! Seats: acquire, heartbeat, reconnect, release (`docs/reference/protocol.md`). The handlers check the
//! bodies' form and call [`crate::service::seats`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lic4es::clock::parse_rfc3339;
use lic4es::protocol::{
    codes, AcquireAnswer, AcquireRequest, BorrowAnswer, BorrowRequest, HeartbeatAnswer,
    HeartbeatRequest, ReconnectRequest, ReleaseRequest, ReturnBorrowRequest,
};

use super::{
    check_nonce, check_optional_nonce, check_text, ApiError, ClientAddr, KeyLicense, Payload,
};
use crate::app::AppState;
use crate::domain::SessionId;
use crate::seats::Replace;
use crate::service::borrow;
use crate::service::seats::{self as service, Report, Seeker};

fn offline_since(t: Option<&str>) -> Result<Option<i64>, ApiError> {
    match t {
        None => Ok(None),
        Some(t) => Ok(Some(
            parse_rfc3339(t).ok_or_else(|| {
                ApiError::bad(codes::INVALID_REQUEST, "offline_since must be RFC 3339")
            })? / 1000,
        )),
    }
}

/// The seeker of an acquire or reconnect body, checked, with the offline period it
/// reports (`offline_since`, and how many cycles it counts).
fn seeker(
    hardware_id: &str,
    instance_id: &str,
    version: &str,
    nonce: &str,
    offline: Option<&str>,
    cycles: u32,
    addr: ClientAddr,
) -> Result<(Seeker, Option<Report>), ApiError> {
    check_text("hardware_id", hardware_id, 256, true)?;
    check_text("instance_id", instance_id, 256, false)?;
    check_text("version", version, 128, false)?;
    let nonce = check_optional_nonce(nonce)?;
    let report = offline_since(offline)?.map(|since| Report { since, cycles });
    let who = Seeker {
        hardware_id: hardware_id.into(),
        instance_id: instance_id.into(),
        nonce: nonce.map(str::to_string),
        source: addr.to_string(),
    };
    Ok((who, report))
}

fn of_acquire(
    req: &AcquireRequest,
    addr: ClientAddr,
) -> Result<(Seeker, Option<Report>), ApiError> {
    let cycles = req.offline_cycles_30d.unwrap_or(0);
    let since = req.offline_since.as_deref();
    seeker(
        &req.hardware_id,
        &req.instance_id,
        &req.version,
        &req.nonce,
        since,
        cycles,
        addr,
    )
}

fn of_reconnect(
    req: &ReconnectRequest,
    addr: ClientAddr,
) -> Result<(Seeker, Option<Report>), ApiError> {
    if let Some(old) = &req.old_session_id {
        check_session_id(old)?;
    }
    let since = req.offline_since.as_deref();
    let cycles = req.offline_cycles_30d;
    seeker(
        &req.hardware_id,
        &req.instance_id,
        &req.version,
        &req.nonce,
        since,
        cycles,
        addr,
    )
}

/// The seat bodies through the handlers' own parsing and checks (for the fuzzer, through
/// [`super::check_any_body`]).
pub(crate) fn check_bodies(body: &[u8]) {
    let addr = ClientAddr {
        ip: std::net::IpAddr::from([127, 0, 0, 1]),
        port: Some(1),
    };
    if let Ok(req) = super::parse_bytes::<AcquireRequest>(body) {
        if let Ok((_, Some(r))) = of_acquire(&req, addr) {
            let _ = service::clamp_offline_since(r.since, 0, 1_795_354_152);
        }
    }
    if let Ok(req) = super::parse_bytes::<ReconnectRequest>(body) {
        if let Ok((_, Some(r))) = of_reconnect(&req, addr) {
            let _ = service::clamp_offline_since(r.since, 0, 1_795_354_152);
        }
    }
    if let Ok(req) = super::parse_bytes::<HeartbeatRequest>(body) {
        let _ = check_session_id(&req.session_id);
        let _ = check_optional_nonce(&req.nonce);
    }
    if let Ok(req) = super::parse_bytes::<ReleaseRequest>(body) {
        let _ = check_session_id(&req.session_id);
    }
    if let Ok(req) = super::parse_bytes::<BorrowRequest>(body) {
        let _ = check_session_id(&req.session_id);
        let _ = check_nonce(&req.nonce);
    }
}

fn check_session_id(id: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(id).map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.to_string()))
}

/// `POST /api/v1/licenses/acquire`.
pub async fn acquire(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    KeyLicense(lic): KeyLicense,
    Payload(req): Payload<AcquireRequest>,
) -> Result<Json<AcquireAnswer>, ApiError> {
    let (who, report) = of_acquire(&req, addr)?;
    Ok(Json(service::grant(&s, &lic, who, None, report).await?))
}

/// `POST /api/v1/licenses/reconnect`: ends the old session (reporting the offline
/// period) and acquires.
pub async fn reconnect(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    KeyLicense(lic): KeyLicense,
    Payload(req): Payload<ReconnectRequest>,
) -> Result<Json<AcquireAnswer>, ApiError> {
    let (who, report) = of_reconnect(&req, addr)?;
    let replace = req.old_session_id.clone().map(|old| Replace {
        session_id: old,
        hardware_id: req.hardware_id.clone(),
    });
    Ok(Json(service::grant(&s, &lic, who, replace, report).await?))
}

/// `PUT /api/v1/licenses/heartbeat`: keeps the seat; renews the token before its margin
/// is used up, or at once when the license's tier changed.
pub async fn heartbeat(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    KeyLicense(lic): KeyLicense,
    Payload(req): Payload<HeartbeatRequest>,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let id = check_session_id(&req.session_id)?;
    let nonce = check_optional_nonce(&req.nonce)?;
    let source = addr.to_string();
    Ok(Json(
        service::heartbeat(&s, &lic, id.as_str(), nonce, &source).await?,
    ))
}

/// `DELETE /api/v1/licenses/release`: gives the seat back; 204 whether or not the
/// session was still known.
pub async fn release(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    KeyLicense(lic): KeyLicense,
    Payload(req): Payload<ReleaseRequest>,
) -> Result<Response, ApiError> {
    let id = check_session_id(&req.session_id)?;
    service::release(&s, &lic, id.as_str(), &addr.to_string()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/licenses/borrow`: checks the seat of an online session out for a while;
/// the answer's token lives exactly the borrow.
pub async fn borrow(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    KeyLicense(lic): KeyLicense,
    Payload(req): Payload<BorrowRequest>,
) -> Result<Json<BorrowAnswer>, ApiError> {
    let id = check_session_id(&req.session_id)?;
    check_nonce(&req.nonce)?;
    let b = borrow::borrow(
        &s,
        &lic,
        id.as_str(),
        req.seconds,
        &req.nonce,
        &addr.to_string(),
    )
    .await?;
    Ok(Json(BorrowAnswer {
        license: Some(b.token),
    }))
}

/// `DELETE /api/v1/licenses/borrow`: gives a borrowed seat back before its end; 204, and
/// 404 `session_gone` for a borrow this license does not have.
pub async fn return_borrow(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    KeyLicense(lic): KeyLicense,
    Payload(req): Payload<ReturnBorrowRequest>,
) -> Result<Response, ApiError> {
    let id = check_session_id(&req.session_id)?;
    borrow::give_back(&s, &lic, id.as_str(), &addr.to_string()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
