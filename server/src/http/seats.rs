//! Seats: acquire, heartbeat, reconnect, release (section 14).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lic4es::clock::parse_rfc3339;
use lic4es::protocol::{
    codes, AcquireAnswer, AcquireRequest, HeartbeatAnswer, HeartbeatRequest, ReconnectRequest,
    ReleaseRequest, SeatMode,
};

use super::{bearer, check_nonce, check_text, parse, ApiError, ClientAddr};
use crate::app::AppState;
use crate::config::Serving;
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

/// An offline period an engine reports with an acquire or a reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Report {
    /// `offline_since` as sent (seconds).
    since: i64,
    /// `offline_cycles_30d` as sent.
    cycles: u32,
}

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

impl<'a> Seeker<'a> {
    /// The seeker of an acquire body, checked, with the offline period it reports.
    fn of_acquire(
        req: &'a AcquireRequest,
        addr: ClientAddr,
    ) -> Result<(Self, Option<Report>), ApiError> {
        let who = Self::new(
            &req.hardware_id,
            &req.instance_id,
            &req.version,
            &req.nonce,
            addr,
        )?;
        let report = offline_since(req.offline_since.as_deref())?.map(|since| Report {
            since,
            cycles: req.offline_cycles_30d.unwrap_or(0),
        });
        Ok((who, report))
    }

    /// The seeker of a reconnect body, checked, with the offline period it reports.
    fn of_reconnect(
        req: &'a ReconnectRequest,
        addr: ClientAddr,
    ) -> Result<(Self, Option<Report>), ApiError> {
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
        let report = offline_since(req.offline_since.as_deref())?.map(|since| Report {
            since,
            cycles: req.offline_cycles_30d,
        });
        Ok((who, report))
    }

    /// The seeker of an acquire or reconnect body, checked.
    fn new(
        hardware_id: &'a str,
        instance_id: &'a str,
        version: &str,
        nonce: &'a str,
        addr: ClientAddr,
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
    let addr = ClientAddr {
        ip: std::net::IpAddr::from([127, 0, 0, 1]),
        port: Some(1),
    };
    if let Ok(req) = super::parse_bytes::<AcquireRequest>(body) {
        if let Ok((_, Some(r))) = Seeker::of_acquire(&req, addr) {
            let _ = clamp_offline_since(r.since, 0, 1_795_354_152);
        }
    }
    if let Ok(req) = super::parse_bytes::<ReconnectRequest>(body) {
        if let Ok((_, Some(r))) = Seeker::of_reconnect(&req, addr) {
            let _ = clamp_offline_since(r.since, 0, 1_795_354_152);
        }
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

/// The start of a reported offline period, within what can be true: not before `floor`
/// (the old session's acquire, or when no session is known, the longest a seat token
/// lives before now) and not after `now`. Says whether it had to be moved.
pub fn clamp_offline_since(reported: i64, floor: i64, now: i64) -> (i64, bool) {
    let start = reported.clamp(floor.min(now), now);
    (start, start != reported)
}

/// The id an offline period is kept under when no session of the server's ends with it
/// (an acquire's report, or a reconnect for a session this server never knew): the same
/// report, sent again after a refusal or a failed answer, lands on the same record.
fn report_id(who: &Seeker<'_>, since: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}:{}:{since}", who.hardware_id, who.instance_id));
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("offline-{hex}")
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
            .saturating_add(seat_token_life(&p))
            .min(lic.expires_at))
    }

    /// Keeps a reported offline period: the audit detail says what was reported and
    /// whether it was clamped; the period goes to the abuse rule.
    async fn keep_report(
        &self,
        license: &str,
        session_id: String,
        report: Report,
        floor: i64,
    ) -> String {
        let now = self.now();
        let (start, clamped) = clamp_offline_since(report.since, floor, now);
        self.metrics.offline_reported(now - start);
        self.note_offline(OfflinePeriod {
            license: license.to_string(),
            session_id,
            start,
            end: now,
            ended: true,
        })
        .await;
        let mut detail = format!(
            "offline {} s; {} offline cycles in 30 days",
            now - start,
            report.cycles
        );
        if clamped {
            detail.push_str(&format!(
                "; reported offline_since {} clamped to {}",
                lic4es::clock::rfc3339(report.since),
                lic4es::clock::rfc3339(start)
            ));
        }
        detail
    }

    /// Acquire, or reconnect when `replace` names the old session. The engine's offline
    /// report, if any, is kept whether or not a seat is free.
    async fn grant(
        &self,
        lic: &License,
        who: Seeker<'_>,
        replace: Option<Replace>,
        report: Option<Report>,
    ) -> Result<AcquireAnswer, ApiError> {
        let p = self
            .config
            .effective(lic)
            .ok_or_else(|| unknown_tier(lic))?;
        let now = self.now();
        // The longest a seat token lives: no offline period reported without a known
        // session can have started earlier.
        let unknown_floor = now.saturating_sub(seat_token_life(&p));
        let limit = match p.serving(&lic.tier) {
            Serving::Counted(n) => n,
            // Not counted in seats: the token is used offline, without a session. A free
            // plan has no offline grace; an unlimited paid license has its tier's.
            serving => {
                if let Some(r) = report {
                    let detail = self
                        .keep_report(&lic.id, report_id(&who, r.since), r, unknown_floor)
                        .await;
                    let mut e = self.seeker_event("offline_report", lic, &who);
                    e.detail = Some(detail);
                    self.audit(e).await;
                }
                let (jwt, _) = self.issue(
                    lic,
                    TokenSpec {
                        nonce: Some(who.nonce),
                        hwid: Some(who.hardware_id),
                        ..TokenSpec::default()
                    },
                )?;
                let grace_period_days = match serving {
                    Serving::Uncounted => p.offline_grace_days as i64,
                    _ => 0,
                };
                return Ok(AcquireAnswer {
                    mode: SeatMode::Offline,
                    session_id: None,
                    heartbeat_interval: None,
                    grace_period_days,
                    grace_period_seconds: None,
                    license: Some(jwt),
                    message: None,
                });
            }
        };
        let token_exp = self.seat_token_exp(lic)?;
        let sid = format!("ses-{}", uuid::Uuid::new_v4().simple());
        let old_id = replace.as_ref().map(|r| r.session_id.clone());
        let outcome = self
            .seats
            .acquire(
                NewSession {
                    id: sid.clone(),
                    license: lic.id.clone(),
                    limit,
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
        // What the engine reported: kept under the old session when this server knew
        // it, else under an id of the report itself.
        let mut reported = None;
        let mut report_audited = false;
        if let Some(r) = report {
            let (id, floor) = match &ended {
                Some(old) => (old.id.clone(), old.acquired_at),
                None => (report_id(&who, r.since), unknown_floor),
            };
            reported = Some(self.keep_report(&lic.id, id, r, floor).await);
        }
        if let Some(old_id) = old_id {
            let old = ended.clone().unwrap_or_else(|| Session {
                id: old_id,
                license: lic.id.clone(),
                hardware_id: who.hardware_id.into(),
                instance_id: who.instance_id.into(),
                ..Session::default()
            });
            // A lapse the server saw and the engine did not report still ends here.
            if report.is_none() {
                if let Some(since) = old.offline_since {
                    self.note_offline(OfflinePeriod {
                        license: lic.id.clone(),
                        session_id: old.id.clone(),
                        start: since.min(now),
                        end: now,
                        ended: true,
                    })
                    .await;
                }
            }
            if ended.is_some() || report.is_some() {
                let mut e = self.seat_event("reconnect", &old, Some(who.source.clone()));
                let known = if ended.is_some() {
                    ""
                } else {
                    " (the previous session was not known here)"
                };
                e.detail = Some(match &reported {
                    Some(d) => format!("{d}{known}"),
                    None => "previous session ended".into(),
                });
                report_audited = true;
                self.audit(e).await;
            }
        }
        let session = match granted {
            Ok(s) => s,
            Err((in_use, limit)) => {
                let message = format!("All seats in use ({in_use}/{limit})");
                let mut e = self.seeker_event("refused", lic, &who);
                e.detail = Some(match (&reported, report_audited) {
                    (Some(d), false) => format!("{message}; {d}"),
                    _ => message.clone(),
                });
                self.audit(e).await;
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    codes::NO_SEATS_AVAILABLE,
                    message,
                ));
            }
        };
        let (jwt, _) = match self.issue(
            lic,
            TokenSpec {
                nonce: Some(who.nonce),
                lifetime: Lifetime::Until(token_exp),
                sid: Some(&session.id),
                hwid: Some(who.hardware_id),
                grace_days: Some(SEAT_TOKEN_GRACE_DAYS),
                ..TokenSpec::default()
            },
        ) {
            Ok(t) => t,
            Err(e) => {
                self.undo_grant(&session).await;
                return Err(e);
            }
        };
        let mut e = self.seat_event("acquire", &session, Some(who.source));
        if !report_audited {
            e.detail = reported;
        }
        // No seat is granted unaudited: without its entry the seat is given back and
        // the engine, answered 503, holds its tier and tries again.
        if let Err(err) = self.audit_required(e).await {
            self.undo_grant(&session).await;
            return Err(err);
        }
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

    /// Gives back a seat just granted whose answer cannot be sent.
    async fn undo_grant(&self, session: &Session) {
        if let Err(e) = self.seats.release(&session.id, &session.license).await {
            // The session lapses after its TTL; the engine never got its token.
            crate::log::error(&format!(
                "seat {} of {} not given back after a failed grant: {e}",
                session.id, session.license
            ));
        }
    }

    /// An audit entry about a seeker that holds no session (a refusal, an offline plan's
    /// report).
    fn seeker_event(&self, kind: &str, lic: &License, who: &Seeker<'_>) -> AuditEvent {
        AuditEvent {
            id: 0,
            at: self.now(),
            kind: kind.into(),
            license: lic.id.clone(),
            session_id: None,
            hardware_id: Some(who.hardware_id.into()),
            instance_id: Some(who.instance_id.into()),
            source: Some(who.source.clone()),
            detail: None,
        }
    }
}

/// A seat token's `grace_days`: none. Its `exp` already lies the offline grace (and the
/// session TTL) past its issue, so no engine-side grace is added on top, even by an
/// engine that lost its seat record (a deleted `state.json` restarts the offline grace,
/// never past the token).
pub const SEAT_TOKEN_GRACE_DAYS: i64 = 0;

/// How long a seat token runs from its issue: its lifetime plus the offline grace plus the
/// session TTL.
fn seat_token_life(p: &crate::config::Effective) -> i64 {
    p.token_lifetime
        .saturating_add(p.grace_secs())
        .saturating_add(p.session_ttl())
}

pub(crate) fn unknown_tier(lic: &License) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        codes::UNKNOWN_TIER,
        format!("license tier `{}` has no policy", lic.tier),
    )
}

/// `POST /api/v1/licenses/acquire`.
pub async fn acquire(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AcquireAnswer>, ApiError> {
    let key = bearer(&headers)?.to_string();
    let req: AcquireRequest = parse(body)?;
    let (who, report) = Seeker::of_acquire(&req, addr)?;
    let lic = s.licensed(&key).await?;
    s.grant(&lic, who, None, report).await.map(Json)
}

/// `POST /api/v1/licenses/reconnect`: ends the old session (reporting the offline
/// period) and acquires.
pub async fn reconnect(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AcquireAnswer>, ApiError> {
    let key = bearer(&headers)?.to_string();
    let req: ReconnectRequest = parse(body)?;
    let (who, report) = Seeker::of_reconnect(&req, addr)?;
    let lic = s.licensed(&key).await?;
    let replace = req.old_session_id.clone().map(|old| Replace {
        session_id: old,
        hardware_id: req.hardware_id.clone(),
    });
    s.grant(&lic, who, replace, report).await.map(Json)
}

/// `PUT /api/v1/licenses/heartbeat`: keeps the seat; renews the token before its margin
/// is used up, or at once when the license's tier changed.
pub async fn heartbeat(
    State(s): State<Arc<AppState>>,
    addr: ClientAddr,
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
                grace_days: Some(SEAT_TOKEN_GRACE_DAYS),
                ..TokenSpec::default()
            },
        )?;
        let mut e = s.seat_event("renew", &session, Some(addr.to_string()));
        e.detail = Some(format!("tier {}", lic.tier));
        // A renewed token is a grant too: without its audit entry the seat is kept but
        // the token is not renewed (the next heartbeat tries again).
        if s.audit_required(e).await.is_ok() {
            s.seats.renewed(&session.id, &lic.tier, exp).await?;
            Some(jwt)
        } else {
            None
        }
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
    addr: ClientAddr,
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
