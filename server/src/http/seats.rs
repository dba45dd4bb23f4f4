//! Seats: acquire, heartbeat, reconnect, release (section 14).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lic4es::clock::parse_rfc3339;
use lic4es::protocol::{
    codes, AcquireAnswer, AcquireRequest, HeartbeatAnswer, HeartbeatRequest, ReconnectRequest,
    ReleaseRequest, SeatMode,
};

use super::{bearer, check_nonce, check_text, parse, ApiError};
use crate::app::AppState;
use crate::issue::{Lifetime, TokenSpec};
use crate::seats::{Acquired, NewSession, Replace, Session};
use crate::store::{AuditEvent, License, OfflinePeriod};

/// Who is asking for a seat.
struct Seeker<'a> {
    hardware_id: &'a str,
    instance_id: &'a str,
    nonce: &'a str,
    source: String,
}

impl<'a> Seeker<'a> {
    /// The seeker of an acquire body, checked.
    fn of_acquire(req: &'a AcquireRequest, addr: SocketAddr) -> Result<Self, ApiError> {
        Self::new(
            &req.hardware_id,
            &req.instance_id,
            &req.version,
            &req.nonce,
            addr,
        )
    }

    /// The seeker of a reconnect body, checked, with the old session and the offline
    /// period's start (seconds) it reports.
    fn of_reconnect(
        req: &'a ReconnectRequest,
        addr: SocketAddr,
    ) -> Result<(Self, Option<i64>), ApiError> {
        let who = Self::new(
            &req.hardware_id,
            &req.instance_id,
            &req.version,
            &req.nonce,
            addr,
        )?;
        if let Some(old) = &req.old_session_id {
            check_session_id(old)?;
        }
        let offline_since = match &req.offline_since {
            None => None,
            Some(t) => Some(
                parse_rfc3339(t).ok_or_else(|| {
                    ApiError::bad(codes::INVALID_REQUEST, "offline_since must be RFC 3339")
                })? / 1000,
            ),
        };
        Ok((who, offline_since))
    }

    /// The seeker of an acquire or reconnect body, checked.
    fn new(
        hardware_id: &'a str,
        instance_id: &'a str,
        version: &str,
        nonce: &'a str,
        addr: SocketAddr,
    ) -> Result<Self, ApiError> {
        check_text("hardware_id", hardware_id, 256, true)?;
        check_text("instance_id", instance_id, 256, true)?;
        check_text("version", version, 128, false)?;
        check_nonce(nonce)?;
        Ok(Seeker {
            hardware_id,
            instance_id,
            nonce,
            source: addr.to_string(),
        })
    }
}

/// The seat bodies through the handlers' own parsing and checks (for the fuzzer, through
/// [`super::check_any_body`]).
pub(crate) fn check_bodies(body: &[u8]) {
    let addr = SocketAddr::from(([127, 0, 0, 1], 1));
    if let Ok(req) = super::parse_bytes::<AcquireRequest>(body) {
        let _ = Seeker::of_acquire(&req, addr);
    }
    if let Ok(req) = super::parse_bytes::<ReconnectRequest>(body) {
        let _ = Seeker::of_reconnect(&req, addr);
    }
    if let Ok(req) = super::parse_bytes::<HeartbeatRequest>(body) {
        let _ = check_session_id(&req.session_id);
        let _ = check_nonce(&req.nonce);
    }
    if let Ok(req) = super::parse_bytes::<ReleaseRequest>(body) {
        let _ = check_session_id(&req.session_id);
    }
}

fn check_session_id(id: &str) -> Result<(), ApiError> {
    check_text("session_id", id, 256, true)
}

fn session_gone() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        codes::SESSION_GONE,
        "the session is not known (lapsed, kicked or never granted); acquire a new seat",
    )
}

impl AppState {
    /// When a seat token issued now runs out: its lifetime plus the offline grace plus
    /// the session TTL, so an engine that loses contact keeps a valid token for its
    /// whole grace.
    fn seat_token_exp(&self, lic: &License) -> Result<i64, ApiError> {
        let p = self
            .config
            .effective(lic)
            .ok_or_else(|| unknown_tier(lic))?;
        Ok(self
            .now()
            .saturating_add(p.token_lifetime)
            .saturating_add(p.grace_secs())
            .saturating_add(p.session_ttl())
            .min(lic.expires_at))
    }

    /// Acquire, or reconnect when `replace` names the old session.
    async fn grant(
        &self,
        lic: &License,
        who: Seeker<'_>,
        replace: Option<(Replace, Option<i64>, u32)>,
    ) -> Result<AcquireAnswer, ApiError> {
        let p = self
            .config
            .effective(lic)
            .ok_or_else(|| unknown_tier(lic))?;
        if p.free_plan(&lic.tier) {
            let (jwt, _) = self.issue(
                lic,
                TokenSpec {
                    nonce: Some(who.nonce),
                    hwid: Some(who.hardware_id),
                    ..TokenSpec::default()
                },
            )?;
            return Ok(AcquireAnswer {
                mode: SeatMode::Offline,
                session_id: None,
                heartbeat_interval: None,
                grace_period_days: 0,
                grace_period_seconds: None,
                license: Some(jwt),
                message: None,
            });
        }
        let token_exp = self.seat_token_exp(lic)?;
        let sid = format!("ses-{}", uuid::Uuid::new_v4().simple());
        let (replace, offline_since, cycles) = match replace {
            Some((r, since, cycles)) => (Some(r), since, cycles),
            None => (None, None, 0),
        };
        let old_id = replace.as_ref().map(|r| r.session_id.clone());
        let outcome = self
            .seats
            .acquire(
                NewSession {
                    id: sid.clone(),
                    license: lic.id.clone(),
                    limit: p.seats,
                    hardware_id: who.hardware_id.into(),
                    instance_id: who.instance_id.into(),
                    ttl: p.session_ttl(),
                    grace: p.grace_secs(),
                    tier: lic.tier.clone(),
                    token_exp,
                },
                replace,
            )
            .await?;
        let (granted, ended) = match outcome {
            Acquired::Granted { session, ended } => (Ok(session), ended),
            Acquired::Full {
                in_use,
                limit,
                ended,
            } => (Err((in_use, limit)), ended),
        };
        if let Some(old_id) = old_id.filter(|_| ended.is_some() || offline_since.is_some()) {
            // The old session as this server knew it; unknown (a restart of a server
            // keeping seats in memory, or its grace over) the engine's report still counts.
            let old = ended.clone().unwrap_or_else(|| Session {
                id: old_id,
                license: lic.id.clone(),
                hardware_id: who.hardware_id.into(),
                instance_id: who.instance_id.into(),
                ..Session::default()
            });
            let now = self.now();
            let period = offline_period(&old, offline_since, now);
            let mut e = self.seat_event("reconnect", &old, Some(who.source.clone()));
            let known = if ended.is_some() {
                ""
            } else {
                " (the previous session was not known here)"
            };
            e.detail = Some(match &period {
                Some(p) => format!(
                    "offline {} s; {cycles} offline cycles in 30 days{known}",
                    p.end - p.start
                ),
                None => "previous session ended".into(),
            });
            self.audit(e).await;
            if let Some(p) = period {
                if offline_since.is_some() {
                    self.metrics.offline_reported(p.end - p.start);
                }
                self.note_offline(p).await;
            }
        }
        let session = match granted {
            Ok(s) => s,
            Err((in_use, limit)) => {
                let message = format!("All seats in use ({in_use}/{limit})");
                let e = AuditEvent {
                    id: 0,
                    at: self.now(),
                    kind: "refused".into(),
                    license: lic.id.clone(),
                    session_id: None,
                    hardware_id: Some(who.hardware_id.into()),
                    instance_id: Some(who.instance_id.into()),
                    source: Some(who.source),
                    detail: Some(message.clone()),
                };
                self.audit(e).await;
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    codes::NO_SEATS_AVAILABLE,
                    message,
                ));
            }
        };
        let (jwt, _) = self.issue(
            lic,
            TokenSpec {
                nonce: Some(who.nonce),
                lifetime: Lifetime::Until(token_exp),
                sid: Some(&session.id),
                hwid: Some(who.hardware_id),
                ..TokenSpec::default()
            },
        )?;
        self.audit(self.seat_event("acquire", &session, Some(who.source)))
            .await;
        Ok(AcquireAnswer {
            mode: SeatMode::Online,
            session_id: Some(session.id),
            heartbeat_interval: Some(p.heartbeat_interval as i64),
            grace_period_days: p.offline_grace_days as i64,
            grace_period_seconds: None,
            license: Some(jwt),
            message: None,
        })
    }
}

/// The offline period a reconnect ends: from the start the engine reports (or, without
/// one, from when the server saw the old session lapse) to now. A start in the future
/// counts from now; one older than the window only counts within it.
fn offline_period(old: &Session, reported: Option<i64>, now: i64) -> Option<OfflinePeriod> {
    let start = reported.or(old.offline_since)?.min(now);
    Some(OfflinePeriod {
        license: old.license.clone(),
        session_id: old.id.clone(),
        start,
        end: now,
        ended: true,
    })
}

fn unknown_tier(lic: &License) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "unknown_tier",
        format!("license tier `{}` has no policy", lic.tier),
    )
}

/// `POST /api/v1/licenses/acquire`.
pub async fn acquire(
    State(s): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AcquireAnswer>, ApiError> {
    let key = bearer(&headers)?.to_string();
    let req: AcquireRequest = parse(body)?;
    let who = Seeker::of_acquire(&req, addr)?;
    let lic = s.licensed(&key).await?;
    s.grant(&lic, who, None).await.map(Json)
}

/// `POST /api/v1/licenses/reconnect`: ends the old session (reporting the offline
/// period) and acquires.
pub async fn reconnect(
    State(s): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AcquireAnswer>, ApiError> {
    let key = bearer(&headers)?.to_string();
    let req: ReconnectRequest = parse(body)?;
    let (who, offline_since) = Seeker::of_reconnect(&req, addr)?;
    let lic = s.licensed(&key).await?;
    let replace = req.old_session_id.clone().map(|old| {
        (
            Replace {
                session_id: old,
                hardware_id: req.hardware_id.clone(),
            },
            offline_since,
            req.offline_cycles_30d,
        )
    });
    s.grant(&lic, who, replace).await.map(Json)
}

/// `PUT /api/v1/licenses/heartbeat`: keeps the seat; renews the token before its margin
/// is used up, or at once when the license's tier changed.
pub async fn heartbeat(
    State(s): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let key = bearer(&headers)?.to_string();
    let req: HeartbeatRequest = parse(body)?;
    check_session_id(&req.session_id)?;
    check_nonce(&req.nonce)?;
    let lic = s.licensed(&key).await?;
    let session = s
        .seats
        .heartbeat(&req.session_id, &lic.id)
        .await?
        .ok_or_else(session_gone)?;
    let p = s.config.effective(&lic).ok_or_else(|| unknown_tier(&lic))?;
    let now = s.now();
    let margin = p.grace_secs() + p.session_ttl() + p.token_lifetime / 2;
    let next_exp = s.seat_token_exp(&lic)?;
    let renew = session.tier != lic.tier
        || (session.token_exp - now <= margin && next_exp > session.token_exp);
    let license = if renew {
        let (jwt, exp) = s.issue(
            &lic,
            TokenSpec {
                nonce: Some(&req.nonce),
                lifetime: Lifetime::Until(next_exp),
                sid: Some(&session.id),
                hwid: Some(&session.hardware_id),
                ..TokenSpec::default()
            },
        )?;
        s.seats.renewed(&session.id, &lic.tier, exp).await?;
        let mut e = s.seat_event("renew", &session, Some(addr.to_string()));
        e.detail = Some(format!("tier {}", lic.tier));
        s.audit(e).await;
        Some(jwt)
    } else {
        None
    };
    Ok(Json(HeartbeatAnswer {
        license,
        heartbeat_interval: Some(p.heartbeat_interval as i64),
    }))
}

/// `DELETE /api/v1/licenses/release`: gives the seat back; 204 whether or not the
/// session was still known.
pub async fn release(
    State(s): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = bearer(&headers)?.to_string();
    let req: ReleaseRequest = parse(body)?;
    check_session_id(&req.session_id)?;
    let lic = s.licensed(&key).await?;
    if let Some(session) = s.seats.release(&req.session_id, &lic.id).await? {
        s.audit(s.seat_event("release", &session, Some(addr.to_string())))
            .await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
