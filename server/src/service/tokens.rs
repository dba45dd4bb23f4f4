//! Tokens: signing them (short-lived ones for API-key clients, long-lived static ones,
//! seat tokens bound to a session and a machine), the token endpoint's rule, and the
//! refresh of static tokens.

use lic4es::protocol::TokenRequest;
use serde::Serialize;

use crate::app::AppState;
use crate::domain::{Effective, Serving};
use crate::store::License;

use super::{ServiceError, ServiceResult};

/// How long a token runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The tier's token lifetime (never past the license's expiry).
    Short,
    /// Until the license expires (static tokens and their refreshes).
    LicenseEnd,
    /// Until this instant (never past the license's expiry); seat tokens.
    Until(i64),
}

/// What goes into a token besides the license.
#[derive(Debug, Clone, Copy)]
pub struct TokenSpec<'a> {
    /// How it is issued (`src`, one of `lic4es::token::src`): an engine refuses a token
    /// issued in answer to a request as a static key.
    pub src: &'a str,
    /// The request's nonce, echoed.
    pub nonce: Option<&'a str>,
    /// Where a static token is refreshed.
    pub refresh_url: Option<&'a str>,
    /// How long it runs.
    pub lifetime: Lifetime,
    /// Seat tokens: the session.
    pub sid: Option<&'a str>,
    /// Seat tokens: the hardware id.
    pub hwid: Option<&'a str>,
    /// The longest grace an engine may give the token after its `exp`, in days.
    pub grace_days: Option<i64>,
    /// Seat tokens: the offline grace of the seat, signed, in seconds.
    pub grace_seconds: Option<i64>,
    /// The token's id, when the caller keeps it (an air-gapped activation's); else a
    /// fresh one.
    pub jti: Option<&'a str>,
    /// A relay's grant: the seats it may serve and its public key (`seats`, `cnf`).
    pub relay: Option<(u32, &'a serde_json::Value)>,
}

impl Default for TokenSpec<'_> {
    fn default() -> Self {
        TokenSpec {
            src: lic4es::token::src::API_KEY,
            nonce: None,
            refresh_url: None,
            lifetime: Lifetime::Short,
            sid: None,
            hwid: None,
            grace_days: None,
            grace_seconds: None,
            jti: None,
            relay: None,
        }
    }
}

/// The terms `lic` is served on: its tier's policy with the license's overrides.
pub fn policy<'s>(s: &'s AppState, lic: &License) -> ServiceResult<Effective<'s>> {
    s.config
        .effective(lic)
        .ok_or_else(|| ServiceError::UnknownTier(lic.tier.clone()))
}

/// The claims of a token this server signs, serialized as they stand (an intermediate
/// JSON tree cost an allocation per claim on every grant).
#[derive(Serialize)]
struct IssuedClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    tier: &'a str,
    features: &'a [String],
    quotas: &'a std::collections::BTreeMap<String, i64>,
    jti: &'a str,
    org_name: Option<&'a str>,
    trial: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hwid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grace_days: Option<i64>,
    src: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    grace_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lic_exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

/// A grant's `cnf`: the key it confirms (RFC 7800).
#[derive(Serialize)]
struct Confirmation<'a> {
    jwk: &'a serde_json::Value,
}

/// Signs a token for `lic`; returns it with its `exp`.
pub fn issue(s: &AppState, lic: &License, spec: TokenSpec<'_>) -> ServiceResult<(String, i64)> {
    let now = s.now();
    let policy = policy(s, lic)?;
    let exp = match spec.lifetime {
        Lifetime::Short => now.saturating_add(policy.token_lifetime),
        Lifetime::LicenseEnd => lic.expires_at,
        Lifetime::Until(t) => t,
    }
    .min(lic.expires_at);
    let mut jti = uuid::Uuid::encode_buffer();
    let claims = IssuedClaims {
        iss: &s.config.issuer,
        sub: &lic.id,
        iat: now,
        nbf: now,
        exp,
        tier: &lic.tier,
        features: policy.features,
        quotas: policy.quotas,
        jti: match spec.jti {
            Some(id) => id,
            None => uuid::Uuid::new_v4().hyphenated().encode_lower(&mut jti),
        },
        org_name: lic.org_name.as_deref(),
        trial: lic.trial,
        nonce: spec.nonce,
        refresh_url: spec.refresh_url,
        sid: spec.sid,
        hwid: spec.hwid,
        grace_days: spec.grace_days,
        src: spec.src,
        grace_seconds: spec.grace_seconds,
        // The license's own end, when the token ends sooner: what a person reads as
        // "expires".
        lic_exp: (exp < lic.expires_at).then_some(lic.expires_at),
        seats: spec.relay.map(|(n, _)| n),
        cnf: spec.relay.map(|(_, jwk)| Confirmation { jwk }),
    };
    let jwt = s.key.sign(&claims).map_err(ServiceError::Signing)?;
    s.metrics.token_issued(&lic.tier);
    Ok((jwt, exp))
}

/// A static token for `lic` (no nonce), optionally with a `refresh_url` (`default`
/// names this server's refresh endpoint).
pub fn issue_static(
    s: &AppState,
    lic: &License,
    refresh_url: Option<&str>,
) -> ServiceResult<(String, i64)> {
    let url = refresh_url.map(|u| {
        if u == "default" {
            format!(
                "{}{}",
                s.config.public_url(),
                lic4es::protocol::paths::REFRESH
            )
        } else {
            u.to_string()
        }
    });
    issue(
        s,
        lic,
        TokenSpec {
            src: lic4es::token::src::STATIC,
            refresh_url: url.as_deref(),
            lifetime: Lifetime::LicenseEnd,
            ..TokenSpec::default()
        },
    )
}

/// Refuses a license the token endpoint does not serve: a seat-counted one is served
/// only through acquire, reconnect and heartbeat, whatever the engine's config says.
pub fn served_by_token(s: &AppState, lic: &License) -> ServiceResult<()> {
    match policy(s, lic)?.serving(&lic.tier) {
        Serving::Counted(seats) => Err(ServiceError::SeatRequired {
            license: lic.id.clone(),
            seats,
        }),
        _ => Ok(()),
    }
}

/// `POST /token`: a short-lived token for the license of an API key, with the client's
/// telemetry kept.
pub async fn by_api_key(
    s: &AppState,
    lic: &License,
    req: &TokenRequest,
) -> ServiceResult<(String, i64)> {
    served_by_token(s, lic)?;
    record_telemetry(s, &lic.id, req).await;
    issue(
        s,
        lic,
        TokenSpec {
            nonce: Some(&req.nonce),
            ..TokenSpec::default()
        },
    )
}

/// How long after its `exp` a static token may still be refreshed: the engine's default
/// grace period, so an engine that was away for its whole grace can come back, and no
/// longer (a token found a year later is not exchanged for a fresh one).
pub const REFRESH_AFTER_EXPIRY_SECS: i64 = 14 * 86_400;

/// Whether `claims`, already verified, belong to a token this endpoint may refresh at
/// `now`: a static token the server minted with a `refresh_url` (never a seat token nor
/// an API-key token, which carry no `refresh_url`), expired by less than
/// [`REFRESH_AFTER_EXPIRY_SECS`]. The license's own standing is checked after.
pub fn refreshable(claims: &lic4es::token::Claims, issuer: &str, now: i64) -> Result<(), String> {
    if claims.iss != issuer {
        return Err("bearer token has another issuer".into());
    }
    if claims.sid.is_some() || claims.hwid.is_some() {
        return Err("a seat token is bound to its seat and is not refreshed here".into());
    }
    if claims.refresh_url.is_none() {
        return Err("only a static token minted with a refresh_url is refreshed here".into());
    }
    if now.saturating_sub(claims.exp) > REFRESH_AFTER_EXPIRY_SECS {
        return Err(format!(
            "the token expired more than {} days ago",
            REFRESH_AFTER_EXPIRY_SECS / 86_400
        ));
    }
    Ok(())
}

/// The claims of a bearer token this server refreshes ([`refreshable`]), verified.
pub fn refresh_bearer(s: &AppState, bearer: &str) -> ServiceResult<lic4es::token::Claims> {
    let claims = s
        .keyset
        .verify(bearer)
        .map_err(|e| ServiceError::InvalidToken(format!("bearer token: {e}")))?;
    refreshable(&claims, &s.config.issuer, s.now()).map_err(ServiceError::InvalidToken)?;
    Ok(claims)
}

/// `POST /refresh`: a fresh static token for the one whose `claims`
/// ([`refresh_bearer`]) came as bearer, or `None` when there is nothing new (same tier,
/// and it already runs to the license's end).
pub async fn refresh(
    s: &AppState,
    claims: lic4es::token::Claims,
    license_id: &str,
    client: &TokenRequest,
) -> ServiceResult<Option<(String, i64)>> {
    if license_id != claims.sub {
        return Err(ServiceError::LicenseMismatch);
    }
    let id = claims.sub.clone();
    let lic = super::store(s, move |st| st.license(&id))
        .await?
        .ok_or_else(|| ServiceError::InvalidToken("unknown license".into()))?;
    super::api_keys::standing(&lic, s.now())?;
    // A seat-counted license is not served by a token that needs no seat, however it
    // was minted.
    served_by_token(s, &lic).map_err(|e| ServiceError::InvalidToken(e.to_string()))?;
    record_telemetry(s, &lic.id, client).await;
    if lic.tier == claims.tier.as_str() && claims.exp >= lic.expires_at {
        return Ok(None);
    }
    issue(
        s,
        &lic,
        TokenSpec {
            src: lic4es::token::src::REFRESH,
            nonce: Some(&client.nonce),
            refresh_url: claims.refresh_url.as_deref(),
            lifetime: Lifetime::LicenseEnd,
            ..TokenSpec::default()
        },
    )
    .map(Some)
}

/// Keeps the telemetry a client sent with its request, if any (best effort).
async fn record_telemetry(s: &AppState, license: &str, req: &TokenRequest) {
    let Some(t) = &req.telemetry else { return };
    let sample = crate::telemetry::Sample::from_json(t);
    let (license, instance, now) = (license.to_string(), req.instance_id.clone(), s.now());
    if let Ok(true) = super::store(s, move |st| {
        st.record_telemetry(&license, &instance, &sample, now)
    })
    .await
    {
        s.metrics.telemetry_received();
    }
}
