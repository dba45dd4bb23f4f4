//! The grant a relay serves from, read and judged without I/O: whose it is, whether it is
//! this relay's to serve, and when to renew it.
//!
//! The relay does not verify the grant's signature: it holds no vendor key (it needs
//! none), and the engines it serves verify the grant in every token's header against the
//! vendor keys they are built or configured with. What the relay checks is that the grant
//! is for its own key and machine and still runs, so it never serves tokens every engine
//! would refuse.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

/// Why a grant cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not a JWT, or its claims are not a grant's.
    #[error("not a relay grant: {0}")]
    Malformed(String),
    /// A token of another kind (`src` other than `relay_grant`).
    #[error("the token was not issued as a relay's grant (src {0:?})")]
    NotAGrant(String),
    /// The grant confirms another key than this relay's.
    #[error("the grant is for another relay key than this relay's ({0})")]
    OtherKey(String),
    /// The grant is node-locked to another machine.
    #[error("the grant is for another machine (hardware id {0})")]
    OtherMachine(String),
    /// The grant has ended.
    #[error("the grant ended at {}: renew it", lic4es::clock::rfc3339(*.0))]
    Ended(i64),
}

/// A relay's grant from the vendor and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant itself (what goes in every token's header).
    pub jwt: String,
    /// Its id (`jti`).
    pub id: String,
    /// The vendor's issuer name, which the relay's tokens carry too.
    pub issuer: String,
    /// The license.
    pub license: String,
    /// Its tier.
    pub tier: String,
    /// Seats the relay may serve at once.
    pub seats: u32,
    /// When it was issued and when it ends (seconds).
    pub issued_at: i64,
    /// When it ends (seconds).
    pub expires_at: i64,
    /// The relay machine's hardware id it is locked to.
    pub hardware_id: String,
    /// The `x` of the relay key it confirms.
    pub key_x: String,
    /// The licensee.
    pub org_name: Option<String>,
    /// A trial license.
    pub trial: bool,
    /// Features and quotas (an engine takes these from the grant whatever a token says).
    pub features: Vec<String>,
    /// Quotas.
    pub quotas: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
struct GrantClaims {
    #[serde(default)]
    jti: String,
    iss: String,
    sub: String,
    tier: String,
    seats: u32,
    iat: i64,
    exp: i64,
    #[serde(default)]
    hwid: String,
    #[serde(default)]
    src: String,
    cnf: Confirmation,
    org_name: Option<String>,
    #[serde(default)]
    trial: bool,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    quotas: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
struct Confirmation {
    jwk: Jwk,
}

#[derive(Deserialize)]
struct Jwk {
    x: String,
}

impl Grant {
    /// Reads a grant (the vendor's answer, as the grant file holds it).
    pub fn read(text: &str) -> Result<Grant, GrantError> {
        let jwt = text.trim();
        let mut parts = jwt.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(GrantError::Malformed("not a JWT".into()));
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|e| GrantError::Malformed(format!("payload: {e}")))?;
        let c: GrantClaims = serde_json::from_slice(&bytes)
            .map_err(|e| GrantError::Malformed(format!("claims: {e}")))?;
        if c.src != lic4es::token::src::RELAY_GRANT {
            return Err(GrantError::NotAGrant(c.src));
        }
        Ok(Grant {
            jwt: jwt.to_string(),
            id: c.jti,
            issuer: c.iss,
            license: c.sub,
            tier: c.tier.to_ascii_lowercase(),
            seats: c.seats,
            issued_at: c.iat,
            expires_at: c.exp,
            hardware_id: c.hwid,
            key_x: c.cnf.jwk.x,
            org_name: c.org_name,
            trial: c.trial,
            features: c.features,
            quotas: c.quotas,
        })
    }

    /// Whether this relay may serve it at `now`: it confirms the relay's key (`key_x`),
    /// is locked to this machine (`hardware_id`) and has not ended.
    pub fn check(&self, key_x: &str, hardware_id: &str, now: i64) -> Result<(), GrantError> {
        if self.key_x != key_x {
            return Err(GrantError::OtherKey(self.key_x.clone()));
        }
        if self.hardware_id != hardware_id {
            return Err(GrantError::OtherMachine(self.hardware_id.clone()));
        }
        if now >= self.expires_at {
            return Err(GrantError::Ended(self.expires_at));
        }
        Ok(())
    }

    /// Whether a relay that can reach the vendor asks for the next grant at `now`: once
    /// half of this one's life has passed, so a vendor unreachable for a while (half a
    /// grant: 15 days of a 30-day one) costs the site nothing.
    pub fn due(&self, now: i64) -> bool {
        let half = (self.expires_at - self.issued_at).max(0) / 2;
        now >= self.issued_at.saturating_add(half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt(claims: serde_json::Value) -> String {
        format!(
            "e30.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
        )
    }

    fn claims() -> serde_json::Value {
        json!({"jti": "rel-1", "iss": "vendor", "sub": "org-site", "tier": "Enterprise",
               "seats": 3, "iat": 1_000, "exp": 1_000 + 30 * 86_400, "hwid": "hw-relay",
               "src": "relay_grant", "cnf": {"jwk": {"kty": "OKP", "crv": "Ed25519",
               "kid": "k", "x": "XXX"}}, "features": ["a"], "quotas": {"q": 1}})
    }

    #[test]
    fn a_grant_is_served_only_by_its_relay_on_its_machine_while_it_runs() {
        let g = Grant::read(&jwt(claims())).unwrap();
        assert_eq!(
            (g.license.as_str(), g.tier.as_str(), g.seats),
            ("org-site", "enterprise", 3)
        );
        let end = g.expires_at;
        let cases: [(&str, &str, i64, Result<(), GrantError>); 5] = [
            ("XXX", "hw-relay", 2_000, Ok(())),
            ("XXX", "hw-relay", end - 1, Ok(())),
            ("XXX", "hw-relay", end, Err(GrantError::Ended(end))),
            (
                "YYY",
                "hw-relay",
                2_000,
                Err(GrantError::OtherKey("XXX".into())),
            ),
            (
                "XXX",
                "hw-copy",
                2_000,
                Err(GrantError::OtherMachine("hw-relay".into())),
            ),
        ];
        for (x, hw, now, want) in cases {
            assert_eq!(g.check(x, hw, now), want, "{x} {hw} {now}");
        }
    }

    #[test]
    fn a_grant_is_renewed_from_half_its_life() {
        let g = Grant::read(&jwt(claims())).unwrap();
        let half = 1_000 + 15 * 86_400;
        assert!(!g.due(1_000));
        assert!(!g.due(half - 1));
        assert!(g.due(half));
        assert!(g.due(g.expires_at + 1));
    }

    #[test]
    fn what_is_not_a_grant_is_refused() {
        let mut seat = claims();
        seat["src"] = json!("seat");
        assert_eq!(
            Grant::read(&jwt(seat)),
            Err(GrantError::NotAGrant("seat".into()))
        );
        for text in ["", "a.b", "a.!!.c", &jwt(json!({"src": "relay_grant"}))] {
            assert!(
                matches!(Grant::read(text), Err(GrantError::Malformed(_))),
                "{text}"
            );
        }
    }
}
