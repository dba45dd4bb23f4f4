//! Grants for on-site relays: a relay inside a customer's network serves engines the seat
//! protocol with its own key, and the vendor's grant — a token naming the license, the
//! seats, an end and the relay's public key — is what makes engines accept its tokens
//! (`docs/reference/protocol.md`, relays). The grant holds its seats here until its end,
//! so a license's N seats are N whether held online or through relays; each seat is kept
//! in the license store (it outlives a restart), and a relay's next grant, its renewal,
//! replaces the last one for that machine.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use lic4es::offline::GrantRequest;
use serde_json::Value;

use super::offline::{event, license_in_standing, session_of};
use super::tokens::{self, Lifetime, TokenSpec};
use super::{audit, ServiceError, ServiceResult};
use crate::app::AppState;
use crate::domain::LicenseId;
use crate::domain::Serving;
use crate::seats::{Acquired, Replace};
use crate::store::{AuditKind, KeptKind, OfflineActivation};
use crate::usage::{hour_of, HourUsage, SiteReport};

/// A grant issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The grant (a token the relay puts in the header of each of its tokens).
    pub grant: String,
    /// Its id (the token's `jti`).
    pub grant_id: String,
    /// The license.
    pub license: String,
    /// Seats granted.
    pub seats: u32,
    /// When it ends (seconds).
    pub expires_at: i64,
    /// Whether its seats are counted among the license's (a license not counted in seats
    /// has none to hold).
    pub counted: bool,
}

impl Granted {
    /// The answer to the relay (the same from the admin API and the relay's own call).
    pub fn answer(self) -> lic4es::protocol::RelayGrantAnswer {
        lic4es::protocol::RelayGrantAnswer {
            grant: self.grant,
            grant_id: self.grant_id,
            license_id: self.license,
            seats: self.seats,
            expires_at: lic4es::clock::rfc3339(self.expires_at),
            counted: self.counted,
        }
    }
}

/// The id of a grant's `i`th seat.
fn seat_id(grant_id: &str, i: u32) -> String {
    format!("{grant_id}-{i}")
}

/// Answers a relay's grant request: refused when the license is unknown, revoked,
/// expired, its policy allows no relays (`relay-grant-days` 0), it has fewer seats than
/// asked, or they are not free; else the grant, its seats held and kept with an audit
/// entry each. The relay machine's previous grant of the license ends here, and a
/// renewal's usage report (verified with the relay's key) is added to the license's
/// usage: the hours since the previous grant, each once.
pub async fn grant(
    s: &AppState,
    license: &LicenseId,
    req: &GrantRequest,
    source: &str,
) -> ServiceResult<Granted> {
    let report = match &req.usage {
        Some(jws) => Some(site_report(jws, &req.public_key, license)?),
        None => None,
    };
    let lic = license_in_standing(s, license).await?;
    let p = tokens::policy(s, &lic)?;
    if p.relay_grant_days == 0 {
        return Err(ServiceError::RelayGrantNotAllowed(lic.id.clone()));
    }
    let now = s.now();
    let expires_at = now
        .saturating_add((p.relay_grant_days as i64).saturating_mul(86_400))
        .min(lic.expires_at);
    let grant_id = format!("rel-{}", uuid::Uuid::new_v4().simple());
    let kept = |i: u32| OfflineActivation {
        jti: seat_id(&grant_id, i),
        license_id: lic.id.clone(),
        hardware_id: req.hardware_id.clone(),
        instance_id: req.kid().to_string(),
        nonce: req.nonce.clone(),
        created_at: now,
        expires_at,
        deactivated_at: None,
        kind: KeptKind::Relay,
    };
    let previous = previous_grant(s, &lic.id, &req.hardware_id).await?;
    // Hours from the previous grant's on, to the last one begun: a request answered
    // twice adds nothing the second time (its previous grant is then the first answer).
    let since = previous.first().map_or(
        now.saturating_sub(2 * (p.relay_grant_days as i64).saturating_mul(86_400)),
        |r| hour_of(r.created_at),
    );
    let site = report.map_or_else(Vec::new, |r| r.usage(since, now));
    let counted = match p.serving(&lic.tier) {
        Serving::Counted(limit) => {
            if req.seats > limit {
                return Err(ServiceError::Invalid(format!(
                    "license {} has {limit} seats; a relay cannot be granted {}",
                    lic.id, req.seats
                )));
            }
            // The seats of the relay's last grant pass to this one, each in one step of
            // the seat store, so a renewal needs free seats only for what it adds.
            let in_use = s
                .seats
                .sessions(Some(&lic.id))
                .await?
                .iter()
                .filter(|x| x.online())
                .count() as u32;
            let extra = req.seats.saturating_sub(previous.len() as u32);
            if in_use.saturating_add(extra) > limit {
                return Err(ServiceError::NoSeats { in_use, limit });
            }
            for i in 0..req.seats {
                let replace = previous.get(i as usize).map(|old| Replace {
                    session_id: old.jti.clone(),
                    hardware_id: old.hardware_id.clone(),
                });
                let outcome = s
                    .seats
                    .acquire(session_of(&kept(i), &lic.tier, limit, now), replace)
                    .await;
                match outcome {
                    Ok(Acquired::Granted { .. }) => {}
                    other => {
                        give_back(s, &lic.id, &grant_id, i).await;
                        return Err(match other {
                            Ok(Acquired::Full { in_use, limit, .. }) => {
                                ServiceError::NoSeats { in_use, limit }
                            }
                            Ok(_) => ServiceError::Invalid(
                                "the seat store refused a relay's seat for its hourly budget"
                                    .into(),
                            ),
                            Err(e) => e.into(),
                        });
                    }
                }
            }
            true
        }
        _ => false,
    };
    let held = if counted { req.seats } else { 0 };
    let signed = tokens::issue(
        s,
        &lic,
        TokenSpec {
            src: lic4es::token::src::RELAY_GRANT,
            nonce: Some(&req.nonce),
            hwid: Some(&req.hardware_id),
            jti: Some(&grant_id),
            lifetime: Lifetime::Until(expires_at),
            grace_days: Some(0),
            relay: Some((req.seats, &req.public_key)),
            ..TokenSpec::default()
        },
    );
    let (grant, exp) = match signed {
        Ok(t) => t,
        Err(e) => {
            give_back(s, &lic.id, &grant_id, held).await;
            return Err(e);
        }
    };
    let reported = site_summary(&site);
    for i in 0..held {
        let row = kept(i);
        let mut e = event(s, AuditKind::RelayGrant, &row, source);
        e.detail = Some(format!(
            "seat {} of {} of grant {grant_id} to relay key {} until {}{}",
            i + 1,
            req.seats,
            lic4es::log::clean(req.kid()),
            lic4es::clock::rfc3339(exp),
            if i == 0 { reported.as_str() } else { "" }
        ));
        if let Err(err) = super::store(s, move |st| st.add_offline_activation(&row, &e)).await {
            give_back(s, &lic.id, &grant_id, held).await;
            return Err(match err {
                ServiceError::Store(e) => ServiceError::AuditUnavailable(e),
                other => other,
            });
        }
    }
    end_previous(s, &previous, held, source).await?;
    if !counted {
        let mut e = event(s, AuditKind::RelayGrant, &kept(0), source);
        e.session_id = Some(grant_id.clone());
        e.detail = Some(format!(
            "grant of {} seats (not counted in seats) to relay key {} until {}{reported}",
            req.seats,
            lic4es::log::clean(req.kid()),
            lic4es::clock::rfc3339(exp)
        ));
        audit::required(s, e).await?;
    }
    if !site.is_empty() {
        // The grant stands either way; a report not kept is logged, not refused.
        if let Err(e) = super::store(s, move |st| st.add_usage(&site)).await {
            tracing::error!("relay usage of {} not kept: {e}", lic.id);
        }
    }
    Ok(Granted {
        grant,
        grant_id,
        license: lic.id,
        seats: req.seats,
        expires_at: exp,
        counted,
    })
}

/// The audit trail's words for a site's reported hours (empty for none).
fn site_summary(site: &[HourUsage]) -> String {
    if site.is_empty() {
        return String::new();
    }
    let peak = site.iter().map(|h| h.peak).max().unwrap_or(0);
    let refusals: u32 = site.iter().map(|h| h.refusals).sum();
    format!(
        "; the site reported {} hours of use, peak {peak} seats, {refusals} refusals",
        site.len()
    )
}

/// A relay's usage report: a JWS (EdDSA) its key `jwk` — the grant request's — signed,
/// of `license`.
fn site_report(jws: &str, jwk: &Value, license: &str) -> ServiceResult<SiteReport> {
    let bad = |why: &str| ServiceError::Invalid(format!("the relay's usage report {why}"));
    let key = jwk
        .get("x")
        .and_then(Value::as_str)
        .and_then(|x| URL_SAFE_NO_PAD.decode(x).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| bad("cannot be verified: the request's key is unusable"))?;
    let (signed, signature) = jws.rsplit_once('.').ok_or_else(|| bad("is not a JWS"))?;
    let (header, payload) = signed.split_once('.').ok_or_else(|| bad("is not a JWS"))?;
    let header: Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| bad("has no readable header"))?;
    if header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
        return Err(bad("is not signed with EdDSA"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b))
        .ok_or_else(|| bad("has no signature"))?;
    key.verify_strict(signed.as_bytes(), &signature)
        .map_err(|_| bad("is not signed by the relay's key"))?;
    let report: SiteReport = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or_else(|| bad("is malformed"))?;
    if report.license != license {
        return Err(bad("is of another license"));
    }
    Ok(report)
}

/// Frees the first `n` seats of a grant that could not be answered (a grant's seats are
/// named by their number, which its rows are not yet written under).
async fn give_back(s: &AppState, license: &str, grant_id: &str, n: u32) {
    for i in 0..n {
        if let Err(e) = s.seats.release(&seat_id(grant_id, i), license).await {
            tracing::error!("seat {i} of relay grant {grant_id} not freed: {e}");
        }
    }
}

/// The seats of the relay machine's live grant of the license, oldest first.
async fn previous_grant(
    s: &AppState,
    license: &str,
    hardware_id: &str,
) -> ServiceResult<Vec<OfflineActivation>> {
    let now = s.now();
    let live = super::store(s, move |st| st.live_offline_activations(now)).await?;
    let mut rows: Vec<OfflineActivation> = live
        .into_iter()
        .filter(|r| {
            r.kind == KeptKind::Relay && r.license_id == license && r.hardware_id == hardware_id
        })
        .collect();
    rows.sort_by(|a, b| (a.created_at, &a.jti).cmp(&(b.created_at, &b.jti)));
    Ok(rows)
}

/// Ends the previous grant's seats in the store once the new grant holds its own: the
/// first `passed` went to the new grant in the seat store already; the rest are freed.
/// (Should a renewal fail half way, the seats not yet passed stay the old grant's, in
/// the store and, from the next start, in the seat store.)
async fn end_previous(
    s: &AppState,
    previous: &[OfflineActivation],
    passed: u32,
    source: &str,
) -> ServiceResult<()> {
    let now = s.now();
    for (i, row) in previous.iter().enumerate() {
        let mut e = event(s, AuditKind::RelayGrant, row, source);
        e.detail = Some("replaced by the relay's next grant".into());
        let jti = row.jti.clone();
        let ended = super::store(s, move |st| st.deactivate_offline(&jti, now, &e)).await?;
        if ended && i as u32 >= passed {
            s.seats.release(&row.jti, &row.license_id).await?;
        }
    }
    Ok(())
}
