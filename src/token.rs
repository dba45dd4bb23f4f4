//! License tokens: trusted keys, signature checks, claims, and standing in time.
//!
//! Parsing is done here rather than by `jsonwebtoken::decode` so that every rejection
//! has a precise reason for the operator, time comes from the engine's clock, and the
//! algorithm whitelist is enforced before any key is touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::log::clean;
use crate::tier::Tier;

/// Largest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The values of the `src` claim: how a token was issued.
pub mod src {
    /// Minted by the vendor for a `key` (the only kind, with `refresh`, a static key may be).
    pub const STATIC: &str = "static";
    /// Fetched with an API key.
    pub const API_KEY: &str = "api_key";
    /// Issued by a seat call (acquire, reconnect, heartbeat).
    pub const SEAT: &str = "seat";
    /// A static token's refresh.
    pub const REFRESH: &str = "refresh";
    /// An air-gapped activation: node-locked (`hwid`), answering its request's `nonce`.
    pub const OFFLINE: &str = "offline";
    /// A relay's grant: the vendor lets the relay key named in `cnf` sign seat tokens of
    /// `sub`, up to `tier` and `exp`, for `seats` seats.
    pub const RELAY_GRANT: &str = "relay_grant";
    /// A borrowed seat: its session's `sid` and machine's `hwid`, answering the borrow's
    /// `nonce`, living exactly the borrow.
    pub const BORROW: &str = "borrow";
}

/// Public keys built in at compile time from `LIC4ES_PUBLIC_KEYS_FILE` (empty when unset).
const BUILTIN_KEYS: &str = include_str!(concat!(env!("OUT_DIR"), "/builtin_public_keys.json"));

const DAY: i64 = 86_400;

/// Why a token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("token is {0} bytes, over the 16 KiB limit")]
    TooLarge(usize),
    /// Not three base64url parts with JSON objects.
    #[error("not a well-formed JWT: {0}")]
    Malformed(String),
    /// `alg` is not EdDSA, RS256 or ES256.
    #[error("algorithm `{0}` is not allowed (only EdDSA, RS256 and ES256 are)")]
    AlgNotAllowed(String),
    /// The header has a `crit` parameter, which this engine does not understand.
    #[error("header has critical extensions (`crit`), which are not supported")]
    CriticalHeader,
    /// No `kid` in the header.
    #[error("header has no `kid`")]
    MissingKid,
    /// `kid` names no trusted key.
    #[error("no trusted public key has kid `{0}`")]
    UnknownKid(String),
    /// The key named by `kid` is of another type than `alg` needs.
    #[error("key `{kid}` is {key_type} and cannot verify {alg}")]
    KeyMismatch {
        /// The key id.
        kid: String,
        /// The key's type.
        key_type: &'static str,
        /// The token's algorithm.
        alg: String,
    },
    /// The signature does not verify with the named key.
    #[error("signature does not verify")]
    BadSignature,
    /// A required claim is absent.
    #[error("claim `{0}` is missing")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or value.
    #[error("claim `{0}` is malformed: {1}")]
    BadClaim(&'static str, String),
    /// `iss` is not the configured issuer.
    #[error("issuer `{found}` is not the expected `{expected}`")]
    WrongIssuer {
        /// The token's `iss`.
        found: String,
        /// The configured issuer.
        expected: String,
    },
    /// `nbf` is in the future.
    #[error("not valid before {0}")]
    NotYetValid(String),
    /// Expired beyond the grace period.
    #[error("expired {days} days ago, beyond the grace period")]
    Expired {
        /// Whole days since `exp`.
        days: i64,
    },
    /// A seat token (it carries `sid`) used outside seat mode.
    #[error(
        "a seat token is bound to its seat (it carries `sid`); it is accepted only in seat mode"
    )]
    SeatBound,
    /// A seat token issued to another machine.
    #[error("a seat token issued to another machine (hwid `{0}`)")]
    OtherHardware(String),
    /// Issued after the time the clock reads: the clock was set back.
    #[error("issued at {0}, after the time this clock reads: the clock was set back")]
    IssuedLater(String),
    /// A token issued in answer to one request (`src`), offered as a static key.
    #[error(
        "a token issued {0} answers one request and is bound to it; only a static or \
         refreshed token is accepted as `key` or `key-file`"
    )]
    NotStatic(String),
    /// An air-gapped activation's token anywhere but `offline-license.jwt`, or there for
    /// another machine or request.
    #[error("an air-gapped activation's token {0}")]
    Activation(String),
    /// A token signed by a relay's key whose grant does not verify, or that goes beyond
    /// its grant's license, tier or end.
    #[error("a relay's token is refused: {0}")]
    Relay(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Ed25519,
    Rsa,
    P256,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "an Ed25519 key",
            KeyKind::Rsa => "an RSA key",
            KeyKind::P256 => "a P-256 key",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            KeyKind::Ed25519 => Algorithm::EdDSA,
            KeyKind::Rsa => Algorithm::RS256,
            KeyKind::P256 => Algorithm::ES256,
        }
    }
}

#[derive(Clone)]
struct TrustedKey {
    kid: String,
    kind: KeyKind,
    key: DecodingKey,
    /// The public key's bytes (`x`; `n` and `e`; `x` and `y`), to tell two keys apart.
    material: Vec<u8>,
}

/// The public keys tokens must be signed with, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<TrustedKey>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.kid))
            .finish()
    }
}

impl KeySet {
    /// The keys built into the library at compile time.
    pub fn builtin() -> Result<KeySet, String> {
        if BUILTIN_KEYS.trim().is_empty() {
            return Ok(KeySet::default());
        }
        Self::from_json_str(BUILTIN_KEYS).map_err(|e| format!("built-in key set: {e}"))
    }

    /// Parses a JWK Set (`{"keys": [...]}`) or an array of JWKs from text.
    pub fn from_json_str(s: &str) -> Result<KeySet, String> {
        let v: Value = serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))?;
        Self::from_json_value(&v)
    }

    /// Parses a JWK Set (`{"keys": [...]}`) or an array of JWKs.
    pub fn from_json_value(v: &Value) -> Result<KeySet, String> {
        let list = match v {
            Value::Array(a) => a,
            Value::Object(o) => match o.get("keys") {
                Some(Value::Array(a)) => a,
                _ => return Err("a JWK Set needs a `keys` array".into()),
            },
            _ => return Err("must be an array of JWKs or a JWK Set".into()),
        };
        let mut keys: Vec<TrustedKey> = Vec::with_capacity(list.len());
        for (i, jwk) in list.iter().enumerate() {
            let key = parse_jwk(jwk).map_err(|e| format!("key #{i}: {e}"))?;
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(format!(
                    "key #{i}: kid `{}` appears twice",
                    crate::log::echo(&key.kid)
                ));
            }
            keys.push(key);
        }
        Ok(KeySet { keys })
    }

    /// The keys of this set that `trusted` also holds (same kid, same key), and the kids
    /// of those it does not: a set given in config can narrow the built-in one, never
    /// add to it.
    pub fn within(&self, trusted: &KeySet) -> (KeySet, Vec<String>) {
        let (kept, dropped): (Vec<TrustedKey>, Vec<TrustedKey>) =
            self.keys.iter().cloned().partition(|k| {
                trusted
                    .keys
                    .iter()
                    .any(|t| t.kid == k.kid && t.kind == k.kind && t.material == k.material)
            });
        (
            KeySet { keys: kept },
            dropped.into_iter().map(|k| clean(&k.kid)).collect(),
        )
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, in order.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// Checks the token's form and signature and parses its claims. Time and issuer are
    /// checked by [`Policy::check`]. A token signed by a key none of these is, whose header
    /// carries a relay's grant ([`GRANT_HEADER`]), is accepted through that grant only:
    /// the grant signed by one of these keys, naming the token's key in `cnf`, and the
    /// token within the grant's license, tier and end ([`RelayGrant`]).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match self.verify_object(token) {
            Ok((_, payload)) => Claims::from_object(&payload),
            Err(TokenError::UnknownKid(kid)) => self.verify_relayed(token, kid),
            Err(e) => Err(e),
        }
    }

    /// A relay's token, through its grant (`docs/reference/protocol.md`, relays).
    fn verify_relayed(&self, token: &str, kid: String) -> Result<Claims, TokenError> {
        let header = decode_object(split(token)?.header, "header")?;
        let Some(grant) = header.get(GRANT_HEADER) else {
            return Err(TokenError::UnknownKid(kid));
        };
        let relay = |why: &str| TokenError::Relay(why.to_string());
        let grant = grant
            .as_str()
            .ok_or_else(|| relay("its grant is not a token"))?;
        // The grant is the vendor's own: signed by one of these keys directly, never
        // through another grant.
        let (_, g) = self
            .verify_object(grant)
            .map_err(|e| TokenError::Relay(format!("its grant does not verify ({e})")))?;
        let grant_claims = Claims::from_object(&g)
            .map_err(|e| TokenError::Relay(format!("its grant is malformed ({e})")))?;
        if grant_claims.src.as_deref() != Some(src::RELAY_GRANT) {
            return Err(relay(
                "the grant in its header was not issued as a relay's grant",
            ));
        }
        let jwk = g
            .get("cnf")
            .and_then(|c| c.get("jwk"))
            .ok_or_else(|| relay("its grant names no relay key (`cnf`)"))?;
        let key = parse_jwk(jwk)
            .map_err(|e| TokenError::Relay(format!("its grant's relay key is unusable: {e}")))?;
        if key.kind != KeyKind::Ed25519 || key.kid != kid {
            return Err(relay("it is not signed by the Ed25519 key its grant names"));
        }
        let seats = match g.get("seats") {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        }
        .ok_or_else(|| relay("its grant names no number of seats"))?;
        let (_, payload) = KeySet { keys: vec![key] }.verify_object(token)?;
        let mut claims = Claims::from_object(&payload)?;
        let bound = RelayGrant {
            kid,
            sub: grant_claims.sub.clone(),
            tier: grant_claims.tier,
            exp: grant_claims.exp,
            seats,
            hwid: grant_claims.hwid.clone(),
        };
        bound.limit(&mut claims, &grant_claims)?;
        Ok(claims)
    }

    /// Checks the token's form and signature by one of these keys; its header and payload.
    fn verify_object(&self, token: &str) -> Result<(JsonObject, JsonObject), TokenError> {
        let parts = split(token)?;
        let header = decode_object(parts.header, "header")?;
        let alg = match header.get("alg") {
            Some(Value::String(a)) => a.as_str(),
            _ => return Err(TokenError::Malformed("header has no `alg`".into())),
        };
        let wanted = match alg {
            "EdDSA" => KeyKind::Ed25519,
            "RS256" => KeyKind::Rsa,
            "ES256" => KeyKind::P256,
            other => return Err(TokenError::AlgNotAllowed(clean(other))),
        };
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        let kid = match header.get("kid") {
            Some(Value::String(k)) if !k.is_empty() => k,
            _ => return Err(TokenError::MissingKid),
        };
        let key = self
            .keys
            .iter()
            .find(|k| &k.kid == kid)
            .ok_or_else(|| TokenError::UnknownKid(clean(kid)))?;
        if key.kind != wanted {
            return Err(TokenError::KeyMismatch {
                kid: clean(kid),
                key_type: key.kind.name(),
                alg: clean(alg),
            });
        }
        let message = &token.as_bytes()[..parts.header.len() + 1 + parts.payload.len()];
        match jsonwebtoken::crypto::verify(parts.signature, message, &key.key, key.kind.algorithm())
        {
            Ok(true) => {}
            _ => return Err(TokenError::BadSignature),
        }
        Ok((header, decode_object(parts.payload, "payload")?))
    }
}

/// A decoded JWT part.
type JsonObject = Map<String, Value>;

/// The header member of a relay's token that carries its grant, the vendor-signed token
/// that lets the relay's key sign (the way `x5c` carries a certificate chain).
pub const GRANT_HEADER: &str = "lic4es_grant";

/// What a relay's grant allows, as the vendor signed it: a relay-signed token counts only
/// within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayGrant {
    /// The relay key's id.
    pub kid: String,
    /// The license.
    pub sub: String,
    /// The highest tier.
    pub tier: Tier,
    /// The grant's end: no relay token outlives it.
    pub exp: i64,
    /// Seats the relay may hold at once.
    pub seats: u32,
    /// The relay machine's hardware id.
    pub hwid: Option<String>,
}

impl RelayGrant {
    /// Holds a relay's token to its grant: a seat token of the grant's license and issuer,
    /// no higher tier, ending no later than the grant and with no grace after it; what it
    /// entitles to (features, quotas, the licensee, trial and platform) is the grant's,
    /// whatever the relay wrote.
    pub fn limit(&self, claims: &mut Claims, grant: &Claims) -> Result<(), TokenError> {
        let refuse = |why: String| Err(TokenError::Relay(why));
        if claims.iss != grant.iss {
            return refuse("its issuer is not its grant's".into());
        }
        if claims.sub != self.sub {
            return refuse(format!(
                "it names license `{}`, its grant `{}`",
                claims.sub, self.sub
            ));
        }
        if claims.tier > self.tier || claims.unknown_tier.is_some() {
            return refuse(format!(
                "its tier is above its grant's ({})",
                self.tier.as_str()
            ));
        }
        if claims.exp > self.exp {
            return refuse(format!(
                "it runs past its grant's end ({})",
                crate::clock::rfc3339(self.exp)
            ));
        }
        if claims.src.as_deref() != Some(src::SEAT) {
            return refuse("a relay issues seat tokens only".into());
        }
        claims.grace_days = Some(0);
        claims.features = grant.features.clone();
        claims.quotas = grant.quotas.clone();
        claims.org_name = grant.org_name.clone();
        claims.trial = grant.trial;
        claims.platform = grant.platform.clone();
        claims.lic_exp = Some(grant.lic_exp.unwrap_or(grant.exp).min(self.exp));
        claims.refresh_url = None;
        claims.relay = Some(self.clone());
        Ok(())
    }
}

fn parse_jwk(jwk: &Value) -> Result<TrustedKey, String> {
    let Value::Object(o) = jwk else {
        return Err("not a JSON object".into());
    };
    let field = |name: &str| -> Result<&str, String> {
        match o.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
            _ => Err(format!("missing `{name}`")),
        }
    };
    let kid = field("kid")?.to_string();
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        URL_SAFE_NO_PAD
            .decode(field(name)?.trim_end_matches('='))
            .map_err(|_| format!("`{name}` is not base64url"))
    };
    let mut material = Vec::new();
    let (kind, key) = match field("kty")? {
        "OKP" => {
            if field("crv")? != "Ed25519" {
                return Err("only the Ed25519 curve is supported for OKP keys".into());
            }
            let x = bytes("x")?;
            if x.len() != 32 {
                return Err("`x` must be 32 bytes for Ed25519".into());
            }
            material.extend_from_slice(&x);
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
        }
        "RSA" => {
            let n = bytes("n")?;
            let e = bytes("e")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return Err("RSA keys must be at least 2048 bits".into());
            }
            material.extend_from_slice(&n);
            material.push(0);
            material.extend_from_slice(&e);
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            if field("crv")? != "P-256" {
                return Err("only the P-256 curve is supported for EC keys".into());
            }
            let (x, y) = (field("x")?, field("y")?);
            if bytes("x")?.len() != 32 || bytes("y")?.len() != 32 {
                return Err("`x` and `y` must be 32 bytes for P-256".into());
            }
            material.extend(bytes("x")?);
            material.extend(bytes("y")?);
            let key = DecodingKey::from_ec_components(x, y).map_err(|e| e.to_string())?;
            (KeyKind::P256, key)
        }
        other => {
            return Err(format!(
                "key type `{}` is not supported",
                crate::log::echo(other)
            ))
        }
    };
    if let Some(Value::String(alg)) = o.get("alg") {
        let expected = match kind {
            KeyKind::Ed25519 => "EdDSA",
            KeyKind::Rsa => "RS256",
            KeyKind::P256 => "ES256",
        };
        if alg != expected {
            return Err(format!(
                "`alg` {} does not fit this key (expected {expected})",
                crate::log::echo(alg)
            ));
        }
    }
    Ok(TrustedKey {
        kid,
        kind,
        key,
        material,
    })
}

struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge(token.len()));
    }
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok(Parts {
            header: h,
            payload: p,
            signature: s,
        }),
        _ => Err(TokenError::Malformed(
            "expected three dot-separated parts".into(),
        )),
    }
}

fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("{what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(TokenError::Malformed(format!(
            "{what} is not a JSON object"
        ))),
    }
}

/// Decodes header and claims without verifying anything; for the operator CLI.
pub fn decode_unverified(token: &str) -> Result<(Value, Value), TokenError> {
    let parts = split(token)?;
    Ok((
        Value::Object(decode_object(parts.header, "header")?),
        Value::Object(decode_object(parts.payload, "payload")?),
    ))
}

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

    fn from_object(o: &Map<String, Value>) -> Result<Claims, TokenError> {
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
