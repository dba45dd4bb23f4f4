//! The JSON error answer, and the one place where an operation's [`ServiceError`]
//! becomes an HTTP status and a protocol code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lic4es::protocol::{codes, ErrorBody};

use crate::service::ServiceError;
use crate::store::StoreError;

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error`: a code of `lic4es::protocol::codes` or one of the server's own.
    pub code: &'static str,
    /// `message`.
    pub message: String,
    /// Seconds for a `Retry-After` header, when the client should wait.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error answer.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 400.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.code.into(),
                message: self.message,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

/// The error codes only this server answers (beside the protocol's,
/// `lic4es::protocol::codes`): admin and metrics authentication, the transport's limits,
/// routing. All are in docs/reference/errors.md (checked by tests/docs.rs).
pub mod server_codes {
    /// No `Authorization: Bearer` header where one is required.
    pub const MISSING_BEARER: &str = "missing_bearer";
    /// The admin API is off (no `admin-token` configured).
    pub const ADMIN_DISABLED: &str = "admin_disabled";
    /// A wrong admin token.
    pub const INVALID_ADMIN_TOKEN: &str = "invalid_admin_token";
    /// A wrong metrics token.
    pub const INVALID_METRICS_TOKEN: &str = "invalid_metrics_token";
    /// Too many failed admin sign-ins from one address.
    pub const TOO_MANY_ATTEMPTS: &str = "too_many_attempts";
    /// An address over its connection cap (written before the connection closes).
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    /// The request body did not arrive in time.
    pub const BODY_TIMEOUT: &str = "body_timeout";
    /// The request body is over the size limit.
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// No such endpoint, or no such record.
    pub const NOT_FOUND: &str = "not_found";
    /// The endpoint does not take this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// The license id of the request is not the token's.
    pub const LICENSE_MISMATCH: &str = "license_mismatch";
    /// A concurrent change won: retry.
    pub const CONFLICT: &str = "conflict";
    /// The server could not sign a token.
    pub const SIGNING_FAILED: &str = "signing_failed";
    /// The license's policy allows no air-gapped activation.
    pub const OFFLINE_ACTIVATION_NOT_ALLOWED: &str = "offline_activation_not_allowed";
    /// A relay's grant for a license whose policy allows no relays.
    pub const RELAY_GRANT_NOT_ALLOWED: &str = "relay_grant_not_allowed";
    /// Anything else that went wrong inside the server.
    pub const INTERNAL_ERROR: &str = "internal_error";
}

/// The status and code of each [`ServiceError`]. A store or seat-store failure is a 503,
/// which the engine treats as a network failure and answers by holding its tier: never
/// a grant.
pub fn status_of(e: &ServiceError) -> (StatusCode, &'static str) {
    use ServiceError as E;
    match e {
        E::Invalid(_) => (StatusCode::BAD_REQUEST, codes::INVALID_REQUEST),
        E::NotFound { .. } => (StatusCode::NOT_FOUND, server_codes::NOT_FOUND),
        E::LicenseExists(_) => (StatusCode::CONFLICT, codes::LICENSE_EXISTS),
        E::UnknownApiKey => (StatusCode::UNAUTHORIZED, codes::INVALID_API_KEY),
        E::ApiKeyRevoked => (StatusCode::UNAUTHORIZED, codes::API_KEY_REVOKED),
        E::LicenseRevoked(_) => (StatusCode::FORBIDDEN, codes::LICENSE_REVOKED),
        E::LicenseExpired(_) => (StatusCode::FORBIDDEN, codes::LICENSE_EXPIRED),
        E::UnknownTier(_) => (StatusCode::FORBIDDEN, codes::UNKNOWN_TIER),
        E::SeatRequired { .. } => (StatusCode::FORBIDDEN, codes::SEAT_REQUIRED),
        E::NoSeats { .. } => (StatusCode::FORBIDDEN, codes::NO_SEATS_AVAILABLE),
        E::SessionGone => (StatusCode::GONE, codes::SESSION_GONE),
        E::HeartbeatTooSoon { .. } => (StatusCode::TOO_MANY_REQUESTS, codes::HEARTBEAT_TOO_SOON),
        E::TooManyAcquires { .. } => (StatusCode::TOO_MANY_REQUESTS, codes::TOO_MANY_ACQUIRES),
        E::InvalidToken(_) => (StatusCode::UNAUTHORIZED, codes::INVALID_TOKEN),
        E::LicenseMismatch => (StatusCode::BAD_REQUEST, server_codes::LICENSE_MISMATCH),
        E::Store(StoreError::Conflict(_)) => (StatusCode::CONFLICT, server_codes::CONFLICT),
        E::Store(StoreError::Unavailable(_)) | E::Seats(_) | E::AuditUnavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, codes::STORE_UNAVAILABLE)
        }
        E::Signing(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            server_codes::SIGNING_FAILED,
        ),
        E::OfflineActivationNotAllowed(_) => (
            StatusCode::FORBIDDEN,
            server_codes::OFFLINE_ACTIVATION_NOT_ALLOWED,
        ),
        E::BorrowNotAllowed(_) => (StatusCode::FORBIDDEN, codes::BORROW_NOT_ALLOWED),
        E::RelayGrantNotAllowed(_) => {
            (StatusCode::FORBIDDEN, server_codes::RELAY_GRANT_NOT_ALLOWED)
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let (status, code) = status_of(&e);
        let mut err = ApiError::new(status, code, e.to_string());
        match e {
            ServiceError::HeartbeatTooSoon { wait: secs }
            | ServiceError::TooManyAcquires {
                retry_after: secs, ..
            } => err.retry_after = Some(secs.max(1) as u64),
            _ => {}
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_never_answered_as_outages_nor_outages_as_refusals() {
        let outage = [
            ServiceError::Store(StoreError::Unavailable("x".into())),
            ServiceError::Seats(crate::seats::SeatError::Unavailable("x".into())),
            ServiceError::Seats(crate::seats::SeatError::Corrupt("x".into())),
            ServiceError::AuditUnavailable(StoreError::Unavailable("x".into())),
        ];
        for e in &outage {
            assert_eq!(status_of(e).0, StatusCode::SERVICE_UNAVAILABLE, "{e}");
        }
        let refusals = [
            ServiceError::NoSeats {
                in_use: 1,
                limit: 1,
            },
            ServiceError::SeatRequired {
                license: "l".into(),
                seats: 1,
            },
            ServiceError::LicenseRevoked("l".into()),
            ServiceError::ApiKeyRevoked,
            ServiceError::SessionGone,
            ServiceError::Store(StoreError::Conflict("x".into())),
        ];
        for e in &refusals {
            assert!(status_of(e).0.is_client_error(), "{e}");
        }
        assert_eq!(
            ApiError::from(ServiceError::NoSeats {
                in_use: 2,
                limit: 2
            })
            .message,
            "All seats in use (2/2)"
        );
    }
}
