//! Borrowing: an engine online in seat mode checks its seat out for a while, up to the
//! license's `max-borrow`, to run without the network (a laptop on a trip). The online
//! session is replaced in one step by a session of the borrow's own id that expects no
//! heartbeats and lapses at the borrow's end, so the seat stays counted throughout; the
//! borrow is kept in the license store beside the air-gapped activations, outliving a
//! restart. The engine gets a token (`src: "borrow"`) that lives exactly the borrow, and
//! may give the seat back early.

use super::offline::{self, event, session_of};
use super::tokens::{self, Lifetime, TokenSpec};
use super::{ServiceError, ServiceResult};
use crate::app::AppState;
use crate::domain::Serving;
use crate::seats::{Acquired, Replace};
use crate::store::{AuditKind, KeptKind, License, OfflineActivation};

/// A borrow granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Borrowed {
    /// The borrowed seat's token.
    pub token: String,
    /// The borrow's session (the token's `sid`).
    pub session_id: String,
    /// When it ends (seconds): the token's `exp`.
    pub until: i64,
}

/// How long a borrow asked for `asked` seconds at `now` runs: at most the policy's
/// longest borrow, never past the license. `None` when the policy allows none.
pub fn borrow_end(asked: u64, max_borrow: u64, license_expires_at: i64, now: i64) -> Option<i64> {
    if max_borrow == 0 {
        return None;
    }
    let secs = asked.min(max_borrow).min(i64::MAX as u64) as i64;
    Some(now.saturating_add(secs).min(license_expires_at))
}

/// Checks out the seat of the online session `session_id` for `seconds` (at most the
/// license's `max-borrow`): refused when the policy allows no borrowing, the license is
/// not counted in seats, or the session is not an online session of this license.
pub async fn borrow(
    s: &AppState,
    lic: &License,
    session_id: &str,
    seconds: u64,
    nonce: &str,
    source: &str,
) -> ServiceResult<Borrowed> {
    let p = tokens::policy(s, lic)?;
    let now = s.now();
    let until = borrow_end(seconds, p.max_borrow, lic.expires_at, now)
        .ok_or_else(|| ServiceError::BorrowNotAllowed(lic.id.clone()))?;
    if seconds == 0 {
        return Err(ServiceError::Invalid("seconds must be at least 1".into()));
    }
    let Serving::Counted(limit) = p.serving(&lic.tier) else {
        return Err(ServiceError::Invalid(format!(
            "license {} is not counted in seats: there is no seat to borrow",
            lic.id
        )));
    };
    let held = s
        .seats
        .sessions(Some(&lic.id))
        .await?
        .into_iter()
        .find(|x| x.id == session_id && x.online())
        .ok_or(ServiceError::SessionGone)?;
    let kept = OfflineActivation {
        jti: format!("bor-{}", uuid::Uuid::new_v4().simple()),
        license_id: lic.id.clone(),
        hardware_id: held.hardware_id.clone(),
        instance_id: held.instance_id.clone(),
        nonce: nonce.to_string(),
        created_at: now,
        expires_at: until,
        deactivated_at: None,
        kind: KeptKind::Borrow,
    };
    let replace = Replace {
        session_id: held.id.clone(),
        hardware_id: held.hardware_id.clone(),
    };
    match s
        .seats
        .acquire(session_of(&kept, &lic.tier, limit, now), Some(replace))
        .await?
    {
        Acquired::Granted { .. } => {}
        // The session's own seat was given back in the same step: only a limit lowered
        // since it was granted leaves none for the borrow.
        Acquired::Full { in_use, limit, .. } => {
            return Err(ServiceError::NoSeats { in_use, limit })
        }
        Acquired::OverBudget { .. } => {
            return Err(ServiceError::Invalid(
                "the seat store refused a borrow for its hourly budget".into(),
            ))
        }
    }
    let signed = tokens::issue(
        s,
        lic,
        TokenSpec {
            src: lic4es::token::src::BORROW,
            nonce: Some(nonce),
            sid: Some(&kept.jti),
            hwid: Some(&kept.hardware_id),
            jti: Some(&kept.jti),
            lifetime: Lifetime::Until(until),
            grace_days: Some(0),
            grace_seconds: Some(0),
            ..TokenSpec::default()
        },
    );
    let (token, exp) = match signed {
        Ok(t) => t,
        Err(e) => {
            offline::give_back(s, &kept, true).await;
            return Err(e);
        }
    };
    let mut e = event(s, AuditKind::Borrow, &kept, source);
    e.detail = Some(format!(
        "session {} borrowed until {} ({} s asked, at most {} s)",
        held.id,
        lic4es::clock::rfc3339(exp),
        seconds,
        p.max_borrow
    ));
    let record = kept.clone();
    if let Err(err) = super::store(s, move |st| st.add_offline_activation(&record, &e)).await {
        offline::give_back(s, &kept, true).await;
        return Err(match err {
            ServiceError::Store(e) => ServiceError::AuditUnavailable(e),
            other => other,
        });
    }
    Ok(Borrowed {
        token,
        session_id: kept.jti,
        until: exp,
    })
}

/// Gives a borrowed seat back before its end: the seat is freed and the borrow ended,
/// audited. A borrow that ended already (returned, or past its end) is nothing to do;
/// one this license does not have is [`ServiceError::SessionGone`].
pub async fn give_back(
    s: &AppState,
    lic: &License,
    session_id: &str,
    source: &str,
) -> ServiceResult<()> {
    let jti = session_id.to_string();
    let kept = super::store(s, move |st| st.offline_activation(&jti))
        .await?
        .filter(|k| k.kind == KeptKind::Borrow && k.license_id == lic.id)
        .ok_or(ServiceError::SessionGone)?;
    let now = s.now();
    if kept.deactivated_at.is_some() || kept.expires_at <= now {
        return Ok(());
    }
    let mut e = event(s, AuditKind::BorrowReturn, &kept, source);
    e.detail = Some(format!(
        "returned; it was to run until {}",
        lic4es::clock::rfc3339(kept.expires_at)
    ));
    let jti = kept.jti.clone();
    if super::store(s, move |st| st.deactivate_offline(&jti, now, &e)).await? {
        s.seats.release(&kept.jti, &kept.license_id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::borrow_end;

    #[test]
    fn a_borrow_runs_what_was_asked_within_the_policy_and_the_license() {
        let now = 1_000_000;
        // (asked, max-borrow, license expires, end)
        let cases = [
            (3_600, 86_400, now + 10 * 86_400, Some(now + 3_600)),
            (
                30 * 86_400,
                14 * 86_400,
                now + 100 * 86_400,
                Some(now + 14 * 86_400),
            ),
            (86_400, 14 * 86_400, now + 600, Some(now + 600)),
            (u64::MAX, u64::MAX, i64::MAX, Some(i64::MAX)),
            (3_600, 0, now + 86_400, None),
        ];
        for (asked, max, exp, want) in cases {
            assert_eq!(
                borrow_end(asked, max, exp, now),
                want,
                "{asked} {max} {exp}"
            );
        }
    }
}
