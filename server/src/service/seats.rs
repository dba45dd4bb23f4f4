//! Seats (`docs/explanation/seats.md`): acquire, reconnect, heartbeat, release and kick; the grant rule,
//! seat-token lifetimes and the renewal margin, and the offline periods engines report.

use lic4es::protocol::{AcquireAnswer, HeartbeatAnswer, SeatMode};

use crate::app::AppState;
use crate::domain::{Effective, Serving};
use crate::seats::{Acquired, Beat, NewSession, Replace, Session};
use crate::store::{AuditEvent, AuditKind, License, OfflinePeriod};

use super::audit::{self, seat_event};
use super::tokens::{self, Lifetime, TokenSpec};
use super::{ServiceError, ServiceResult};

/// Who is asking for a seat (its fields already checked by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeker {
    /// The engine's hardware id.
    pub hardware_id: String,
    /// The engine's instance id.
    pub instance_id: String,
    /// The request's nonce, echoed in the token (none from a client that sends none).
    pub nonce: Option<String>,
    /// Where the request came from, for the audit trail.
    pub source: String,
}

/// An offline period an engine reports with an acquire or a reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// `offline_since` as sent (seconds).
    pub since: i64,
    /// `offline_cycles_30d` as sent.
    pub cycles: u32,
}

/// A seat token's `grace_days`: none. Its `exp` already lies the offline grace (and the
/// session TTL) past its issue, so no engine-side grace is added on top, even by an
/// engine that lost its seat record (a deleted `state.json` restarts the offline grace,
/// never past the token).
pub const SEAT_TOKEN_GRACE_DAYS: i64 = 0;

/// How long a seat token runs from its issue: the offline grace plus the session TTL, and
/// no longer. A seat that loses contact keeps a valid token for its whole grace; an
/// online-only seat's lives one TTL; every heartbeat renews it.
pub fn seat_token_life(p: &Effective<'_>) -> i64 {
    p.grace_secs().saturating_add(p.session_ttl())
}

/// When a seat token issued at `now` for `lic` runs out.
fn seat_token_exp(p: &Effective<'_>, lic: &License, now: i64) -> i64 {
    now.saturating_add(seat_token_life(p)).min(lic.expires_at)
}

/// What goes into a seat token besides the license: bound to its session, machine and
/// request, with the seat's offline grace signed.
fn seat_token_spec<'a>(
    p: &Effective<'_>,
    exp: i64,
    session: &'a Session,
    nonce: Option<&'a str>,
) -> TokenSpec<'a> {
    TokenSpec {
        src: lic4es::token::src::SEAT,
        nonce,
        lifetime: Lifetime::Until(exp),
        sid: Some(&session.id),
        hwid: Some(&session.hardware_id),
        grace_days: Some(SEAT_TOKEN_GRACE_DAYS),
        grace_seconds: Some(p.grace_secs()),
        ..TokenSpec::default()
    }
}

/// Whether the renewed token a heartbeat at `now` answers with is recorded in the audit
/// trail: when it grants another tier than the session's last one, and once per half a
/// token lifetime (the tier's `token-lifetime-hours`) since the last recorded one. The
/// proofs in between, one per heartbeat, only prolong what was recorded.
pub fn renewal_audited(p: &Effective<'_>, session: &Session, lic: &License, now: i64) -> bool {
    let recorded_at = session.token_exp.saturating_sub(seat_token_life(p));
    session.tier != lic.tier || now.saturating_sub(recorded_at) >= p.token_lifetime / 2
}

/// The shortest spacing of a session's renewals, in seconds: half its heartbeat interval.
/// An earlier heartbeat is `429 heartbeat_too_soon`, so one session's proofs cannot feed
/// several hosts behind a relay.
pub fn min_heartbeat_gap(p: &Effective<'_>) -> i64 {
    (p.heartbeat_interval as i64) / 2
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
fn report_id(who: &Seeker, since: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}:{}:{since}", who.hardware_id, who.instance_id));
    format!("offline-{}", hex::encode(&digest[..12]))
}

/// Keeps a reported offline period: the audit detail says what was reported and
/// whether it was clamped; the period goes to the abuse rule.
async fn keep_report(
    s: &AppState,
    license: &str,
    session_id: String,
    report: Report,
    floor: i64,
) -> String {
    let now = s.now();
    let (start, clamped) = clamp_offline_since(report.since, floor, now);
    s.metrics.offline_reported(now - start);
    audit::note_offline(
        s,
        OfflinePeriod {
            license: license.to_string(),
            session_id,
            start,
            end: now,
            ended: true,
        },
    )
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

/// An audit entry about a seeker that holds no session (a refusal, an offline plan's
/// report).
fn seeker_event(s: &AppState, kind: AuditKind, lic: &License, who: &Seeker) -> AuditEvent {
    AuditEvent {
        id: 0,
        at: s.now(),
        kind,
        license: lic.id.clone(),
        session_id: None,
        hardware_id: Some(who.hardware_id.clone()),
        instance_id: Some(who.instance_id.clone()),
        source: Some(who.source.clone()),
        detail: None,
    }
}

/// Acquire, or reconnect when `replace` names the old session. The engine's offline
/// report, if any, is kept whether or not a seat is free. No seat is granted without
/// its audit entry.
pub async fn grant(
    s: &AppState,
    lic: &License,
    who: Seeker,
    replace: Option<Replace>,
    report: Option<Report>,
) -> ServiceResult<AcquireAnswer> {
    let p = tokens::policy(s, lic)?;
    let now = s.now();
    // The longest a seat token lives: no offline period reported without a known
    // session can have started earlier.
    let unknown_floor = now.saturating_sub(seat_token_life(&p));
    let limit = match p.serving(&lic.tier) {
        Serving::Counted(n) => n,
        // Not counted in seats: the token is used offline, without a session. A free
        // plan has no offline grace; an unlimited paid license has its tier's.
        serving => return offline_plan(s, lic, &p, serving, &who, report, unknown_floor).await,
    };
    let token_exp = seat_token_exp(&p, lic, now);
    let sid = format!("ses-{}", uuid::Uuid::new_v4().simple());
    let old_id = replace.as_ref().map(|r| r.session_id.clone());
    let outcome = s
        .seats
        .acquire(
            NewSession {
                id: sid,
                license: lic.id.clone(),
                limit,
                hardware_id: who.hardware_id.clone(),
                instance_id: who.instance_id.clone(),
                ttl: p.session_ttl(),
                grace: p.grace_secs(),
                tier: lic.tier.clone(),
                token_exp,
                grants_per_hour: p.grants_per_hour(limit),
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
        } => (Err(ServiceError::NoSeats { in_use, limit }), ended),
        Acquired::OverBudget { retry_after, ended } => (
            Err(ServiceError::TooManyAcquires {
                license: lic.id.clone(),
                per_hour: p.grants_per_hour(limit),
                retry_after,
            }),
            ended,
        ),
    };
    // What the engine reported: kept under the old session when this server knew it,
    // else under an id of the report itself.
    let mut reported = None;
    let mut report_audited = false;
    if let Some(r) = report {
        // A report that ends a session of this server's is one per session; one without
        // is kept a bounded number of times a license and hour.
        reported = Some(match &ended {
            Some(old) => keep_report(s, &lic.id, old.id.clone(), r, old.acquired_at).await,
            None if s.report_budget.take(&lic.id, now) => {
                keep_report(s, &lic.id, report_id(&who, r.since), r, unknown_floor).await
            }
            None => format!(
                "offline report not kept: more than {} a license and hour",
                crate::coalesce::MAX_REPORTS_PER_HOUR
            ),
        });
    }
    if let Some(old_id) = old_id {
        let old = ended.clone().unwrap_or_else(|| Session {
            id: old_id,
            license: lic.id.clone(),
            hardware_id: who.hardware_id.clone(),
            instance_id: who.instance_id.clone(),
            ..Session::default()
        });
        // A lapse the server saw and the engine did not report still ends here.
        if report.is_none() {
            if let Some(since) = old.offline_since {
                audit::note_offline(
                    s,
                    OfflinePeriod {
                        license: lic.id.clone(),
                        session_id: old.id.clone(),
                        start: since.min(now),
                        end: now,
                        ended: true,
                    },
                )
                .await;
            }
        }
        if ended.is_some() || report.is_some() {
            let mut e = seat_event(s, AuditKind::Reconnect, &old, Some(&who.source));
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
            audit::record(s, e).await;
        }
    }
    let session = match granted {
        Ok(session) => session,
        Err(refusal) => {
            if let ServiceError::NoSeats { in_use, .. } = &refusal {
                super::usage::refused(s, &lic.id, *in_use);
            }
            let message = refusal.to_string();
            let kind = match refusal {
                ServiceError::TooManyAcquires { .. } => {
                    s.metrics.acquires_over_budget();
                    AuditKind::TooManyAcquires
                }
                _ => AuditKind::Refused,
            };
            let mut e = seeker_event(s, kind, lic, &who);
            e.detail = Some(match (&reported, report_audited) {
                (Some(d), false) => format!("{message}; {d}"),
                _ => message,
            });
            audit::refusal(s, e).await;
            return Err(refusal);
        }
    };
    let issued = tokens::issue(
        s,
        lic,
        seat_token_spec(&p, token_exp, &session, who.nonce.as_deref()),
    );
    let (jwt, _) = match issued {
        Ok(t) => t,
        Err(e) => {
            undo_grant(s, &session).await;
            return Err(e);
        }
    };
    let mut e = seat_event(s, AuditKind::Acquire, &session, Some(&who.source));
    if !report_audited {
        e.detail = reported;
    }
    // Without its entry the seat is given back and the engine, answered 503, holds its
    // tier and tries again.
    if let Err(err) = audit::required(s, e).await {
        undo_grant(s, &session).await;
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

/// The answer to an acquire of a license not counted in seats: a token used offline,
/// without a session; the engine's report is kept.
async fn offline_plan(
    s: &AppState,
    lic: &License,
    p: &Effective<'_>,
    serving: Serving,
    who: &Seeker,
    report: Option<Report>,
    floor: i64,
) -> ServiceResult<AcquireAnswer> {
    if let Some(r) = report {
        if s.report_budget.take(&lic.id, s.now()) {
            let detail = keep_report(s, &lic.id, report_id(who, r.since), r, floor).await;
            let mut e = seeker_event(s, AuditKind::OfflineReport, lic, who);
            e.detail = Some(detail);
            audit::record(s, e).await;
        }
    }
    let grace_period_days = match serving {
        Serving::Uncounted => p.offline_grace_days as i64,
        _ => 0,
    };
    let (jwt, _) = tokens::issue(
        s,
        lic,
        TokenSpec {
            src: lic4es::token::src::SEAT,
            nonce: who.nonce.as_deref(),
            hwid: Some(&who.hardware_id),
            grace_seconds: Some(grace_period_days.saturating_mul(86_400)),
            ..TokenSpec::default()
        },
    )?;
    Ok(AcquireAnswer {
        mode: SeatMode::Offline,
        session_id: None,
        heartbeat_interval: None,
        grace_period_days,
        grace_period_seconds: None,
        license: Some(jwt),
        message: None,
    })
}

/// Gives back a seat just granted whose answer cannot be sent.
async fn undo_grant(s: &AppState, session: &Session) {
    if let Err(e) = s.seats.release(&session.id, &session.license).await {
        // The session lapses after its TTL; the engine never got its token.
        tracing::error!(
            "seat {} of {} not given back after a failed grant: {e}",
            session.id,
            session.license
        );
    }
}

/// Keeps the seat of `session_id` and answers with its proof: the seat token renewed for
/// this session, machine and request's nonce, running the grace and a TTL from now. A
/// heartbeat sooner than [`min_heartbeat_gap`] after the last renewal is refused (and
/// audited). A renewal that [`renewal_audited`] names is a grant: without its audit entry
/// no token is given (the engine counts a failed heartbeat and holds its tier).
pub async fn heartbeat(
    s: &AppState,
    lic: &License,
    session_id: &str,
    nonce: Option<&str>,
    source: &str,
) -> ServiceResult<HeartbeatAnswer> {
    let p = tokens::policy(s, lic)?;
    let session = match s
        .seats
        .heartbeat(session_id, &lic.id, min_heartbeat_gap(&p))
        .await?
        .ok_or(ServiceError::SessionGone)?
    {
        Beat::Kept(session) => session,
        Beat::TooSoon { session, wait } => {
            let mut e = seat_event(s, AuditKind::TooSoon, &session, Some(source));
            e.detail = Some(format!(
                "heartbeat {} s after the last renewal; at most one per {} s",
                min_heartbeat_gap(&p) - wait,
                min_heartbeat_gap(&p)
            ));
            audit::refusal(s, e).await;
            return Err(ServiceError::HeartbeatTooSoon { wait });
        }
    };
    let now = s.now();
    let exp = seat_token_exp(&p, lic, now);
    let (jwt, exp) = tokens::issue(s, lic, seat_token_spec(&p, exp, &session, nonce))?;
    if renewal_audited(&p, &session, lic, now) {
        let mut e = seat_event(s, AuditKind::Renew, &session, Some(source));
        e.detail = Some(format!("tier {}", lic.tier));
        audit::required(s, e).await?;
        s.seats.renewed(&session.id, &lic.tier, exp).await?;
    }
    Ok(HeartbeatAnswer {
        license: Some(jwt),
        heartbeat_interval: Some(p.heartbeat_interval as i64),
    })
}

/// Gives the seat of `session_id` back at its holder's request; nothing to do when the
/// session is no longer known.
pub async fn release(
    s: &AppState,
    lic: &License,
    session_id: &str,
    source: &str,
) -> ServiceResult<()> {
    if let Some(session) = s.seats.release(session_id, &lic.id).await? {
        audit::record(s, seat_event(s, AuditKind::Release, &session, Some(source))).await;
    }
    Ok(())
}

/// Ends any session at an operator's request; its next heartbeat is refused.
pub async fn kick(s: &AppState, session_id: &str, source: &str) -> ServiceResult<()> {
    let session = s
        .seats
        .kick(session_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            what: "session",
            id: session_id.to_string(),
        })?;
    audit::record(s, seat_event(s, AuditKind::Kick, &session, Some(source))).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_is_audited_on_a_tier_change_and_once_per_half_a_token_lifetime() {
        let config = crate::config::ServerConfig::default();
        let lic = License {
            id: "l".into(),
            tier: "team".into(),
            expires_at: 10_000_000,
            ..License::default()
        };
        let p = config.effective(&lic).unwrap();
        let now = 1_000_000;
        let life = seat_token_life(&p);
        let half = p.token_lifetime / 2;
        // The token recorded at `t` runs to `t + life`.
        let session = |tier: &str, recorded_at: i64| Session {
            tier: tier.into(),
            token_exp: recorded_at + life,
            ..Session::default()
        };
        // (session's tier, when its token was recorded, audited)
        let cases = [
            ("team", now, false),
            ("team", now - 300, false),
            ("team", now - half + 1, false),
            ("team", now - half, true),
            ("team", now - 10 * half, true),
            ("pro", now, true),
        ];
        for (tier, at, want) in cases {
            assert_eq!(
                renewal_audited(&p, &session(tier, at), &lic, now),
                want,
                "{tier} {at}"
            );
        }
        // The token itself runs the grace and one TTL, no lifetime on top.
        assert_eq!(life, p.grace_secs() + p.session_ttl());
        assert_eq!(min_heartbeat_gap(&p), p.heartbeat_interval as i64 / 2);
    }

    #[test]
    fn reported_offline_starts_are_clamped_to_what_can_be_true() {
        // (reported, floor, now, start, clamped)
        let cases = [
            (500, 100, 1000, 500, false),
            (50, 100, 1000, 100, true),
            (2000, 100, 1000, 1000, true),
            (i64::MIN, 100, 1000, 100, true),
            (500, 2000, 1000, 1000, true),
        ];
        for (reported, floor, now, start, clamped) in cases {
            assert_eq!(
                clamp_offline_since(reported, floor, now),
                (start, clamped),
                "{reported} {floor} {now}"
            );
        }
    }
}
