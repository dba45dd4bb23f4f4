//! What a verified token says: its claims, parsed and bounded.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{src, RelayGrant, TokenError};
use crate::log::clean;
use crate::tier::Tier;

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// License id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not-before, seconds since the epoch.
    pub nbf: Option<i64>,
    /// Issued-at, seconds since the epoch.
    pub iat: Option<i64>,
    /// The tier; unknown names are Community.
    pub tier: Tier,
    /// Features granted.
    pub features: BTreeSet<String>,
    /// Quotas; `None` is unlimited.
    pub quotas: BTreeMap<String, Option<i64>>,
    /// Token id.
    pub jti: Option<String>,
    /// Licensee's name.
    pub org_name: Option<String>,
    /// Whether this is a trial license.
    pub trial: bool,
    /// Where a static token is refreshed.
    pub refresh_url: Option<String>,
    /// The nonce of the request that produced this token.
    pub nonce: Option<String>,
    /// Seat tokens: the session they were issued to.
    pub sid: Option<String>,
    /// Seat tokens: the hardware id they were issued to.
    pub hwid: Option<String>,
    /// `platform` (upper case); `None` means PRODUCTION.
    pub platform: Option<String>,
    /// The vendor's longest grace after `exp` for this token, in days.
    pub grace_days: Option<i64>,
    /// How the token was issued (`static`, `api_key`, `seat`, `refresh`, ...); `None` in
    /// tokens minted before the claim existed.
    pub src: Option<String>,
    /// Seat tokens: the offline grace of the seat, signed, in seconds.
    pub grace_seconds: Option<i64>,
    /// The license's own end (seconds), in a token that lives shorter than its license.
    pub lic_exp: Option<i64>,
    /// The `tier` claim as given when it names none of the four tiers (cleaned).
    pub unknown_tier: Option<String>,
    /// A relay's token: the grant it was accepted through.
    pub relay: Option<RelayGrant>,
}

impl Claims {
    /// The binding rule for seat tokens (`docs/reference/protocol.md`): outside seat mode (`seat_hardware_id`
    /// `None`) a token carrying `sid` is refused; in seat mode a token carrying another
    /// machine's `hwid` is. Tokens without the claims pass (a backend that does not bind).
    pub fn check_binding(&self, seat_hardware_id: Option<&str>) -> Result<(), TokenError> {
        match (seat_hardware_id, &self.hwid) {
            (None, _) if self.sid.is_some() => Err(TokenError::SeatBound),
            (Some(mine), Some(theirs)) if mine != theirs => Err(TokenError::OtherHardware(clean(
                &theirs.chars().take(16).collect::<String>(),
            ))),
            _ => Ok(()),
        }
    }

    /// The rule for tokens an engine takes from anywhere but its installed air-gapped
    /// activation (a backend's answer, the token cache): an activation's token is refused
    /// there, where its machine is not checked.
    pub fn check_not_activation(&self) -> Result<(), TokenError> {
        if self.src.as_deref() == Some(src::OFFLINE) {
            return Err(TokenError::Activation(
                "is used only as installed by `lic4es install` on its own machine".into(),
            ));
        }
        Ok(())
    }

    /// The rule for an installed air-gapped activation: issued as one (`src: "offline"`),
    /// for this machine (`hwid`), in answer to a request (`nonce`; `expected_nonce`, when
    /// the request's is known, must be it).
    pub fn check_activation(
        &self,
        hardware_id: &str,
        expected_nonce: Option<&str>,
    ) -> Result<(), TokenError> {
        if self.src.as_deref() != Some(src::OFFLINE) {
            return Err(TokenError::Activation(
                "is expected, and this token was not issued as one".into(),
            ));
        }
        match self.hwid.as_deref() {
            Some(h) if h == hardware_id => {}
            Some(h) => {
                return Err(TokenError::Activation(format!(
                    "was issued to another machine (hwid `{}`)",
                    clean(&h.chars().take(16).collect::<String>())
                )))
            }
            None => return Err(TokenError::MissingClaim("hwid")),
        }
        match (self.nonce.as_deref(), expected_nonce) {
            (None, _) => Err(TokenError::MissingClaim("nonce")),
            (Some(n), Some(want)) if n != want => Err(TokenError::Activation(
                "answers another activation request (its nonce is not this engine's)".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The rule for `key` / `key-file` (`docs/reference/protocol.md`): a token issued in answer to a request (a
    /// fetched or seat token) is refused; a static or refreshed one, or one minted before
    /// `src` existed, passes.
    pub fn check_static_use(&self) -> Result<(), TokenError> {
        match self.src.as_deref() {
            None | Some(src::STATIC) | Some(src::REFRESH) => Ok(()),
            Some(other) => Err(TokenError::NotStatic(match other {
                src::API_KEY => "by API key".to_string(),
                src::SEAT => "for a seat".to_string(),
                other => format!("as `{}`", clean(other)),
            })),
        }
    }

    /// Parses claims from a decoded payload (no signature check); for inspection tools.
    pub fn from_json(v: &Value) -> Result<Claims, TokenError> {
        match v {
            Value::Object(o) => Self::from_object(o),
            _ => Err(TokenError::Malformed("payload is not a JSON object".into())),
        }
    }

    pub(super) fn from_object(o: &Map<String, Value>) -> Result<Claims, TokenError> {
        let string = |name: &'static str| -> Result<Option<String>, TokenError> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(TokenError::BadClaim(name, "must be a string".into())),
            }
        };
        let time = |name: &'static str| -> Result<Option<i64>, TokenError> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => Ok(Some(i)),
                    (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => {
                        Ok(Some(f.floor() as i64))
                    }
                    _ => Err(TokenError::BadClaim(name, "out of range".into())),
                },
                Some(_) => Err(TokenError::BadClaim(name, "must be a number".into())),
            }
        };
        let iss = string("iss")?.ok_or(TokenError::MissingClaim("iss"))?;
        let sub = string("sub")?
            .filter(|s| !s.trim().is_empty())
            .ok_or(TokenError::MissingClaim("sub"))?;
        let exp = time("exp")?.ok_or(TokenError::MissingClaim("exp"))?;
        let features = match o.get("features") {
            None | Some(Value::Null) => BTreeSet::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|f| match f {
                    Value::String(s) => Ok(clean(s)),
                    _ => Err(TokenError::BadClaim(
                        "features",
                        "must be a list of strings".into(),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(TokenError::BadClaim(
                    "features",
                    "must be a list of strings".into(),
                ))
            }
        };
        let quotas = match o.get("quotas") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(q)) => q
                .iter()
                .map(|(k, v)| (clean(k), v))
                .map(|(k, v)| match v {
                    Value::Null => Ok((k, None)),
                    Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                        (Some(i), _) => Ok((k, Some(i))),
                        (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9e15 => {
                            Ok((k, Some(f as i64)))
                        }
                        _ => Err(TokenError::BadClaim(
                            "quotas",
                            format!("`{k}` is not an integer"),
                        )),
                    },
                    _ => Err(TokenError::BadClaim(
                        "quotas",
                        format!("`{k}` is not an integer or null"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(TokenError::BadClaim("quotas", "must be an object".into())),
        };
        let trial = match o.get("trial") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(TokenError::BadClaim("trial", "must be a boolean".into())),
        };
        let tier_claim = string("tier")?;
        let tier = tier_claim
            .as_deref()
            .map(Tier::from_claim)
            .unwrap_or(Tier::Community);
        let unknown_tier = tier_claim
            .filter(|t| tier == Tier::Community && !t.trim().eq_ignore_ascii_case("community"))
            .map(|t| clean(&t));
        Ok(Claims {
            iss,
            sub: clean(&sub),
            exp,
            nbf: time("nbf")?,
            iat: time("iat")?,
            tier,
            features,
            quotas,
            jti: string("jti")?.map(|s| clean(&s)),
            org_name: string("org_name")?.map(|s| clean(&s)),
            trial,
            refresh_url: string("refresh_url")?,
            nonce: string("nonce")?,
            sid: string("sid")?,
            hwid: string("hwid")?,
            platform: string("platform")?
                .map(|p| clean(p.trim()).to_ascii_uppercase())
                .filter(|p| !p.is_empty()),
            grace_days: time("grace_days")?.map(|d| d.max(0)),
            src: string("src")?.map(|s| clean(&s)),
            grace_seconds: time("grace_seconds")?.map(|g| g.max(0)),
            lic_exp: time("lic_exp")?,
            unknown_tier,
            relay: None,
        })
    }
}
