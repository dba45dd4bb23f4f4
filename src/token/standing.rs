//! How a verified token stands at a given time: valid, in grace (early or mid), or not
//! at all, under the config's issuer, leeway and grace.

use super::{Claims, KeySet, TokenError, DAY};
use crate::log::clean;

/// Which half of the grace period an expired token is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GracePhase {
    /// First half: the operator is asked to renew.
    Early,
    /// Second half: the operator is told when the tier will drop.
    Mid,
}

/// How a verified token stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Within its validity period.
    Valid,
    /// Expired, but within the grace period.
    Grace {
        /// Early or mid grace.
        phase: GracePhase,
        /// Whole days since `exp`.
        days_ago: i64,
        /// Whole days until the grace period ends.
        days_left: i64,
    },
}

/// A token that was accepted, with how it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Its claims.
    pub claims: Claims,
    /// Valid or in grace.
    pub standing: Standing,
}

/// The vendor's longest grace after `exp` for a token that does not say (`grace_days`).
pub const DEFAULT_MAX_GRACE_SECS: i64 = 14 * DAY;
/// The longest leeway on `exp` and `nbf` a config may ask for.
pub const MAX_SKEW_SECS: i64 = 300;

/// Everything needed to accept or reject a token: keys, issuer, leeway and grace.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Trusted keys.
    pub keys: KeySet,
    /// Required `iss`.
    pub issuer: String,
    /// Leeway on `exp` / `nbf`, in seconds.
    pub skew_secs: i64,
    /// Grace after `exp` the config asks for, in seconds; each token gets at most its
    /// vendor's maximum ([`Policy::grace_for`]).
    pub grace_secs: i64,
}

impl Policy {
    /// Verifies `token` and judges it at `now_secs`.
    pub fn check(&self, token: &str, now_secs: i64) -> Result<Checked, TokenError> {
        let claims = self.keys.verify(token)?;
        let standing = self.standing(&claims, now_secs)?;
        Ok(Checked { claims, standing })
    }

    /// Judges already-verified claims at `now_secs`: issuer, `nbf`, `exp` and grace.
    pub fn standing(&self, claims: &Claims, now_secs: i64) -> Result<Standing, TokenError> {
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer {
                found: clean(&claims.iss),
                expected: self.issuer.clone(),
            });
        }
        if let Some(nbf) = claims.nbf {
            if nbf > now_secs.saturating_add(self.skew_secs) {
                return Err(TokenError::NotYetValid(crate::clock::rfc3339(nbf)));
            }
        }
        // At its `iat` a token is valid: a clock set back to before it would make any
        // token look fresh.
        if let Some(iat) = claims.iat {
            if iat > now_secs.saturating_add(self.skew_secs) {
                return Err(TokenError::IssuedLater(crate::clock::rfc3339(iat)));
            }
        }
        if now_secs < claims.exp.saturating_add(self.skew_secs) {
            return Ok(Standing::Valid);
        }
        let expired = now_secs.saturating_sub(claims.exp).max(0);
        let grace = self.grace_for(claims);
        if expired < grace {
            let phase = if expired.saturating_mul(2) < grace {
                GracePhase::Early
            } else {
                GracePhase::Mid
            };
            return Ok(Standing::Grace {
                phase,
                days_ago: expired / DAY,
                days_left: (grace - expired) / DAY,
            });
        }
        Err(TokenError::Expired {
            days: expired / DAY,
        })
    }

    /// The grace a token gets after its `exp`: what the config asks, never more than the
    /// vendor's maximum for it (its `grace_days`, else [`DEFAULT_MAX_GRACE_SECS`]).
    pub fn grace_for(&self, claims: &Claims) -> i64 {
        let cap = claims
            .grace_days
            .map_or(DEFAULT_MAX_GRACE_SECS, |d| d.saturating_mul(DAY));
        self.grace_secs.min(cap).max(0)
    }

    /// The instant (seconds) at which a token stops counting at all.
    pub fn end_of_grace(&self, claims: &Claims) -> i64 {
        claims
            .exp
            .saturating_add(self.grace_for(claims).max(self.skew_secs))
    }
}
