//! Reading what the backend answers: the body capped, the status and `Retry-After`, the
//! protocol's bodies parsed, and each failure named as a [`BackendError`].

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::{BackendError, TokenReply, MAX_BODY_BYTES};
use crate::log::clean;
use crate::protocol::{codes, AcquireAnswer, ErrorBody, HeartbeatAnswer, TokenAnswer};

/// An answer as read: its status, its `Retry-After` (seconds), and its body.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) retry_after_secs: Option<u64>,
    pub(super) body: Vec<u8>,
}

impl Reply {
    /// The error a non-success answer means (see [`error_for_status`]), with its
    /// `Retry-After` on a refused seat.
    pub(super) fn error(&self) -> BackendError {
        match error_for_status(self.status, &self.body) {
            BackendError::NoSeats { message, .. } => BackendError::NoSeats {
                message,
                retry_after_secs: self.retry_after_secs,
            },
            e => e,
        }
    }
}

/// A `Retry-After` in seconds (the form the protocol uses; an HTTP date is ignored).
pub(super) fn retry_after_secs(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

pub(super) async fn read_capped(
    mut resp: reqwest::Response,
    url: &str,
) -> Result<Vec<u8>, BackendError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(BackendError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(url, &e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BackendError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A 200 body as the protocol type `T`: a JSON object whose known fields have the right
/// types (unknown fields are ignored).
pub(super) fn parse_answer<T: DeserializeOwned>(body: &[u8]) -> Result<T, BackendError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => {
            serde_json::from_value(v).map_err(|e| BackendError::Malformed(clean(&e.to_string())))
        }
        Ok(_) => Err(BackendError::Malformed("body is not a JSON object".into())),
        Err(e) => Err(BackendError::Malformed(format!("body is not JSON: {e}"))),
    }
}

pub(super) fn parse_token_reply(body: &[u8]) -> Result<TokenReply, BackendError> {
    let answer: TokenAnswer = parse_answer(body)?;
    let jwt = match answer.jwt {
        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err(BackendError::Malformed("no `jwt` in the response".into())),
    };
    Ok(TokenReply {
        jwt,
        expires_in: answer.expires_in,
        message: answer.message.as_deref().map(clean),
    })
}

/// Maps a non-success status and its body to an error, recognising revocation and a
/// refused seat.
pub fn error_for_status(status: StatusCode, body: &[u8]) -> BackendError {
    let e: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = clean(&e.error);
    let message = clean(&e.message);
    let revoked = codes::REVOCATIONS.contains(&code.as_str());
    match status.as_u16() {
        401 | 403 if revoked => BackendError::Revoked { code, message },
        403 if code == codes::SEAT_REQUIRED => BackendError::SeatRequired(message),
        403 if code == codes::BORROW_NOT_ALLOWED => BackendError::BorrowNotAllowed(message),
        403 if code == codes::NO_SEATS_AVAILABLE => BackendError::NoSeats {
            message: if message.is_empty() {
                "all seats in use".into()
            } else {
                message
            },
            retry_after_secs: None,
        },
        // No seat for this host now either: it waits as for a full license.
        429 if code == codes::TOO_MANY_ACQUIRES => BackendError::NoSeats {
            message: if message.is_empty() {
                "too many seats granted this hour".into()
            } else {
                message
            },
            retry_after_secs: None,
        },
        401 => BackendError::Unauthorized { code, message },
        other => BackendError::Status(other),
    }
}

pub(super) fn transport_error(url: &str, e: &reqwest::Error) -> BackendError {
    let reason = error_chain(e);
    if e.is_timeout() {
        BackendError::Timeout(url.to_string())
    } else if e.is_connect() {
        BackendError::Connect {
            url: url.to_string(),
            reason,
        }
    } else {
        BackendError::Transport {
            url: url.to_string(),
            reason,
        }
    }
}

/// The innermost cause: reqwest's outer messages repeat the URL, which the caller
/// already names.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut deepest = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        deepest = inner.to_string();
        cur = inner.source();
    }
    deepest
}

/// Every answer body the engine reads, by `kind`, through the same parsing (and the
/// same arithmetic on what it finds) as the real exchanges: the entry point of the
/// `backend_answers` fuzz target. It must never panic.
#[doc(hidden)]
pub fn parse_any_answer(kind: u8, body: &[u8]) {
    match kind % 4 {
        0 => {
            let _ = parse_token_reply(body);
        }
        1 => {
            if let Ok(a) = parse_answer::<AcquireAnswer>(body) {
                let _ = a.grace_seconds().saturating_mul(1000);
                let _ = a
                    .heartbeat_interval
                    .map(crate::seat::heartbeat_ms_from_secs);
                let _ = a.session_id.as_deref().map(clean);
                let _ = a.message.as_deref().map(clean);
            }
        }
        2 => {
            if let Ok(a) = parse_answer::<HeartbeatAnswer>(body) {
                let _ = a
                    .heartbeat_interval
                    .map(crate::seat::heartbeat_ms_from_secs);
            }
        }
        _ => {
            for status in [400, 401, 403, 404, 409, 410, 429, 500, 503] {
                if let Ok(code) = StatusCode::from_u16(status) {
                    let _ = error_for_status(code, body).to_string();
                }
            }
        }
    }
}
