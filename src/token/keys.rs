//! The public keys tokens must be signed with, and the signature check: the algorithm
//! whitelist enforced before any key is touched, a relay's token through its grant.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::jws::{decode_object, split, JsonObject};
use super::relay::RelayGrant;
use super::{src, Claims, TokenError, GRANT_HEADER};
use crate::log::clean;

/// Public keys built in at compile time from `LIC4ES_PUBLIC_KEYS_FILE` (empty when unset).
const BUILTIN_KEYS: &str = include_str!(concat!(env!("OUT_DIR"), "/builtin_public_keys.json"));

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
    /// checked by [`Policy::check`](super::Policy::check). A token signed by a key none of these is, whose header
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
