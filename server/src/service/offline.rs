//! Air-gapped activation: a site without the internet sends an activation request by hand
//! and gets back a node-locked token (`src: "offline"`, the machine's `hwid`, the
//! request's `nonce`) that lives the license's `offline-activation-days`. The activation
//! holds a seat of its license until it expires or its deactivation code is entered, so a
//! license's N seats are N however they are held. It is kept in the license store (it
//! outlives a restart) and held in the seat store as a session that is never heard from
//! and lapses at the token's `exp` with no grace.

use lic4es::offline::{ActivationRequest, DeactivationCode};

use super::tokens::{self, Lifetime, TokenSpec};
use super::{audit, ServiceError, ServiceResult};
use crate::app::AppState;
use crate::domain::LicenseId;
use crate::domain::Serving;
use crate::seats::{Acquired, NewSession, Replace};
use crate::store::{AuditEvent, AuditKind, KeptKind, License, OfflineActivation};

/// What the vendor hands back to the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activated {
    /// The node-locked token (the response the site installs).
    pub token: String,
    /// The activation's id (the token's `jti`).
    pub jti: String,
    /// The license.
    pub license: String,
    /// When the token expires (seconds).
    pub expires_at: i64,
    /// Whether it holds one of the license's seats (a license not counted in seats has
    /// none to hold).
    pub counted: bool,
}

pub(super) fn event(
    s: &AppState,
    kind: AuditKind,
    a: &OfflineActivation,
    source: &str,
) -> AuditEvent {
    let holder = [&a.jti, &a.hardware_id, &a.instance_id];
    super::audit::held_seat_event(s, kind, &a.license_id, holder, Some(source))
}

/// The seat an activation (or a borrow) holds: a session of its own id that lapses at
/// `expires_at`.
pub(super) fn session_of(a: &OfflineActivation, tier: &str, limit: u32, now: i64) -> NewSession {
    NewSession {
        id: a.jti.clone(),
        license: a.license_id.clone(),
        limit,
        hardware_id: a.hardware_id.clone(),
        instance_id: a.instance_id.clone(),
        ttl: a.expires_at.saturating_sub(now).max(1),
        grace: 0,
        tier: tier.to_string(),
        token_exp: a.expires_at,
        // The vendor's operator answers requests by hand: not a host taking turns.
        grants_per_hour: 0,
    }
}

/// The license a site's request names, refused when it is unknown, revoked or expired.
pub(super) async fn license_in_standing(s: &AppState, id: &LicenseId) -> ServiceResult<License> {
    let key = id.clone();
    let lic = super::store(s, move |st| st.license(&key))
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            what: "license",
            id: id.to_string(),
        })?;
    super::api_keys::standing(&lic, s.now())?;
    Ok(lic)
}

/// Answers an activation request: refused when the license is unknown, revoked, expired,
/// its policy allows no air-gapped activation, or every seat is in use; else the token,
/// its seat held and the activation kept with its audit entry.
pub async fn activate(
    s: &AppState,
    license: &LicenseId,
    req: &ActivationRequest,
    source: &str,
) -> ServiceResult<Activated> {
    let lic = license_in_standing(s, license).await?;
    let p = tokens::policy(s, &lic)?;
    if p.offline_activation_days == 0 {
        return Err(ServiceError::OfflineActivationNotAllowed(lic.id.clone()));
    }
    let now = s.now();
    let a = OfflineActivation {
        jti: format!("off-{}", uuid::Uuid::new_v4().simple()),
        license_id: lic.id.clone(),
        hardware_id: req.hardware_id.clone(),
        instance_id: req.instance_id.clone(),
        nonce: req.nonce.clone(),
        created_at: now,
        expires_at: now
            .saturating_add((p.offline_activation_days as i64).saturating_mul(86_400))
            .min(lic.expires_at),
        deactivated_at: None,
        kind: KeptKind::Activation,
    };
    let counted = match p.serving(&lic.tier) {
        Serving::Counted(limit) => {
            match s
                .seats
                .acquire(session_of(&a, &lic.tier, limit, now), None)
                .await?
            {
                Acquired::Granted { .. } => true,
                Acquired::Full { in_use, limit, .. } => {
                    let mut e = event(s, AuditKind::Refused, &a, source);
                    e.detail = Some(format!(
                        "air-gapped activation refused: all seats in use ({in_use}/{limit})"
                    ));
                    audit::refusal(s, e).await;
                    return Err(ServiceError::NoSeats { in_use, limit });
                }
                // No grant budget was set: a store that answers this is not this server's.
                Acquired::OverBudget { .. } => {
                    return Err(ServiceError::Invalid(
                        "the seat store refused an activation for its hourly budget".into(),
                    ))
                }
            }
        }
        _ => false,
    };
    let signed = tokens::issue(
        s,
        &lic,
        TokenSpec {
            src: lic4es::token::src::OFFLINE,
            nonce: Some(&a.nonce),
            hwid: Some(&a.hardware_id),
            jti: Some(&a.jti),
            lifetime: Lifetime::Until(a.expires_at),
            grace_days: Some(0),
            ..TokenSpec::default()
        },
    );
    let (token, exp) = match signed {
        Ok(t) => t,
        Err(e) => {
            give_back(s, &a, counted).await;
            return Err(e);
        }
    };
    let mut e = event(s, AuditKind::OfflineActivate, &a, source);
    e.detail = Some(format!(
        "until {}{}",
        lic4es::clock::rfc3339(exp),
        if counted {
            ""
        } else {
            " (not counted in seats)"
        }
    ));
    let kept = a.clone();
    if let Err(err) = super::store(s, move |st| st.add_offline_activation(&kept, &e)).await {
        give_back(s, &a, counted).await;
        return Err(match err {
            ServiceError::Store(e) => ServiceError::AuditUnavailable(e),
            other => other,
        });
    }
    Ok(Activated {
        token,
        jti: a.jti,
        license: a.license_id,
        expires_at: exp,
        counted,
    })
}

/// Frees the seat of an activation (or a borrow) that could not be answered.
pub(super) async fn give_back(s: &AppState, a: &OfflineActivation, counted: bool) {
    if counted {
        if let Err(e) = s.seats.release(&a.jti, &a.license_id).await {
            // The session lapses at its end; the engine never got the token.
            tracing::error!("kept seat {} not freed: {e}", a.jti);
        }
    }
}

/// Enters a site's deactivation code: the activation's seat is freed and the activation
/// ended, audited. Refused when the code names no activation, does not verify (it is
/// MACed with the request's nonce, which only the engine and this server know), or the
/// activation ended already.
pub async fn deactivate(
    s: &AppState,
    code: &DeactivationCode,
    source: &str,
) -> ServiceResult<OfflineActivation> {
    let jti = code.jti.clone();
    let a = super::store(s, move |st| st.offline_activation(&jti))
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            what: "offline activation",
            id: code.jti.clone(),
        })?;
    if a.kind != KeptKind::Activation || a.hardware_id != code.hwid || !code.verifies(&a.nonce) {
        return Err(ServiceError::Invalid(
            "the deactivation code does not verify for this activation".into(),
        ));
    }
    if let Some(at) = a.deactivated_at {
        return Err(ServiceError::Invalid(format!(
            "activation {} was deactivated at {}",
            a.jti,
            lic4es::clock::rfc3339(at)
        )));
    }
    let now = s.now();
    let mut e = event(s, AuditKind::OfflineDeactivate, &a, source);
    e.detail = Some(format!(
        "deactivation code entered; it was to run until {}",
        lic4es::clock::rfc3339(a.expires_at)
    ));
    let jti = a.jti.clone();
    let ended = super::store(s, move |st| st.deactivate_offline(&jti, now, &e)).await?;
    if !ended {
        return Err(ServiceError::Invalid(format!(
            "activation {} was deactivated already",
            a.jti
        )));
    }
    s.seats.release(&a.jti, &a.license_id).await?;
    Ok(OfflineActivation {
        deactivated_at: Some(now),
        ..a
    })
}

/// Holds the seats of the live activations and borrows again (a server that starts with an empty
/// seat store, or a shared one that lost them). Returns how many were held again; one
/// whose license no longer counts seats, or finds every seat taken, is logged.
pub async fn restore_seats(s: &AppState) -> ServiceResult<usize> {
    let now = s.now();
    let live = super::store(s, move |st| st.live_offline_activations(now)).await?;
    let mut held = 0;
    for a in live {
        let present = s.seats.sessions(Some(&a.license_id)).await?;
        if present.iter().any(|x| x.id == a.jti) {
            continue;
        }
        let id = a.license_id.clone();
        let Some(lic) = super::store(s, move |st| st.license(&id)).await? else {
            continue;
        };
        let Ok(p) = tokens::policy(s, &lic) else {
            continue;
        };
        let Serving::Counted(limit) = p.serving(&lic.tier) else {
            continue;
        };
        let replace = Some(Replace {
            session_id: a.jti.clone(),
            hardware_id: a.hardware_id.clone(),
        });
        match s
            .seats
            .acquire(session_of(&a, &lic.tier, limit, now), replace)
            .await?
        {
            Acquired::Granted { .. } => held += 1,
            _ => tracing::warn!(
                "{} {} of {}: every seat is in use, not held again",
                match a.kind {
                    KeptKind::Activation => "air-gapped activation",
                    KeptKind::Borrow => "borrowed seat",
                    KeptKind::Relay => "relay's granted seat",
                },
                a.jti,
                a.license_id
            ),
        }
    }
    Ok(held)
}
