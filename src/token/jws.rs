//! A compact JWS's three parts, split and decoded (bounded by [`MAX_TOKEN_BYTES`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::{TokenError, MAX_TOKEN_BYTES};

/// A decoded JWT part.
pub(super) type JsonObject = Map<String, Value>;

pub(super) struct Parts<'a> {
    pub(super) header: &'a str,
    pub(super) payload: &'a str,
    pub(super) signature: &'a str,
}

pub(super) fn split(token: &str) -> Result<Parts<'_>, TokenError> {
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

pub(super) fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, TokenError> {
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
