//! The domain operations, each in one place: HTTP handlers ([`crate::http`]) and CLI
//! commands (`main.rs`) are thin adapters that check their input's form, call one of
//! these, and map its [`ServiceError`] to a status or an exit code.
//!
//! - [`licenses`]: create, update, set tier, revoke, API keys, the license view.
//! - [`api_keys`]: the license an API key belongs to, if both are in good standing.
//! - [`tokens`]: signing tokens, the token endpoint and static-token refresh.
//! - [`seats`]: acquire, reconnect, heartbeat, release, kick.
//! - [`audit`]: the audit trail, lapses, offline periods and pruning.
//! - [`reports`]: what operators read: sessions, seats in use, abuse, health, metrics.
//! - [`usage`]: seat usage sampled per hour and its reports.
//! - [`offline`]: air-gapped activation and deactivation.
//!
//! Every change is audited once, here.

pub mod api_keys;
pub mod audit;
pub mod borrow;
pub mod licenses;
pub mod offline;
pub mod relay;
pub mod reports;
pub mod seats;
pub mod tokens;
pub mod usage;

use std::sync::Arc;

use crate::app::AppState;
use crate::seats::SeatError;
use crate::store::{LicenseStore, StoreError};

/// Why an operation did not happen. HTTP maps each to a status and a protocol code in
/// one place (`crate::http::error`), the CLI to a message and an exit code in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The request is not acceptable (a bad id, an unknown tier, terms out of range).
    #[error("{0}")]
    Invalid(String),
    /// There is no such thing (`what`: license, API key, session).
    #[error("no such {what}")]
    NotFound {
        /// What was looked for.
        what: &'static str,
        /// Its id as given.
        id: String,
    },
    /// A license with this id exists.
    #[error("license `{0}` exists; change it with an explicit update")]
    LicenseExists(String),
    /// No such API key (or its license is gone).
    #[error("unknown API key")]
    UnknownApiKey,
    /// The API key was revoked.
    #[error("This API key has been revoked")]
    ApiKeyRevoked,
    /// The license was revoked.
    #[error("License {0} has been revoked")]
    LicenseRevoked(String),
    /// The license has expired.
    #[error("License {0} has expired")]
    LicenseExpired(String),
    /// The license's tier has no policy in this server's config.
    #[error("license tier `{0}` has no policy")]
    UnknownTier(String),
    /// A seat-counted license asked for a token without a seat.
    #[error(
        "License {license} is counted in seats ({seats}): acquire a seat ({})",
        lic4es::protocol::paths::ACQUIRE
    )]
    SeatRequired {
        /// The license.
        license: String,
        /// Its seats.
        seats: u32,
    },
    /// Every seat is in use.
    #[error("All seats in use ({in_use}/{limit})")]
    NoSeats {
        /// Online sessions.
        in_use: u32,
        /// Seats.
        limit: u32,
    },
    /// The license was granted as many seats this hour as its policy allows.
    #[error("License {license} was granted {per_hour} seats this hour, as many as its policy allows; try again in {retry_after} s")]
    TooManyAcquires {
        /// The license.
        license: String,
        /// Grants allowed per hour.
        per_hour: u32,
        /// Seconds until the next hour.
        retry_after: i64,
    },
    /// A heartbeat came sooner than half an interval after the session's last renewal.
    #[error("a heartbeat came {wait} s too soon: a session is renewed at most once per half heartbeat interval")]
    HeartbeatTooSoon {
        /// Seconds until a heartbeat is taken again.
        wait: i64,
    },
    /// The session is not known (lapsed, kicked, released or never granted).
    #[error("the session is not known (lapsed, kicked or never granted); acquire a new seat")]
    SessionGone,
    /// A bearer token this server does not refresh.
    #[error("{0}")]
    InvalidToken(String),
    /// A refresh names another license than its bearer token.
    #[error("license_id does not match the bearer token")]
    LicenseMismatch,
    /// The license store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The seat store failed. Never a grant.
    #[error(transparent)]
    Seats(#[from] SeatError),
    /// The audit entry without which nothing may be granted could not be written.
    #[error("the audit trail cannot be written: {0}")]
    AuditUnavailable(StoreError),
    /// A token could not be signed.
    #[error("token not signed: {0}")]
    Signing(String),
    /// The license's policy allows no air-gapped activation (`offline-activation-days` 0).
    #[error("License {0} allows no air-gapped activation (its offline-activation-days is 0)")]
    OfflineActivationNotAllowed(String),
    /// The license's policy allows no borrowing (`max-borrow` 0).
    #[error("License {0} allows no borrowing (its max-borrow is 0)")]
    BorrowNotAllowed(String),
    /// The license's policy allows no on-site relays (`relay-grant-days` 0).
    #[error("License {0} allows no on-site relays (its relay-grant-days is 0)")]
    RelayGrantNotAllowed(String),
}

/// What an operation returns.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl From<crate::domain::InvalidLicenseId> for ServiceError {
    fn from(e: crate::domain::InvalidLicenseId) -> Self {
        ServiceError::Invalid(e.to_string())
    }
}

impl From<crate::domain::InvalidSessionId> for ServiceError {
    fn from(e: crate::domain::InvalidSessionId) -> Self {
        ServiceError::Invalid(e.to_string())
    }
}

impl From<crate::domain::UnknownTier> for ServiceError {
    fn from(e: crate::domain::UnknownTier) -> Self {
        ServiceError::Invalid(e.to_string())
    }
}

/// Runs blocking store work on tokio's blocking pool, off the request threads.
pub async fn store<T, F>(s: &AppState, f: F) -> ServiceResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn LicenseStore) -> Result<T, StoreError> + Send + 'static,
{
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(StoreError::Unavailable(e.to_string()).into()),
    }
}

/// Runs a blocking operation of this module (one of [`licenses`]) on tokio's blocking
/// pool.
pub async fn blocking<T, F>(s: &Arc<AppState>, f: F) -> ServiceResult<T>
where
    T: Send + 'static,
    F: FnOnce(&AppState) -> ServiceResult<T> + Send + 'static,
{
    let s = s.clone();
    match tokio::task::spawn_blocking(move || f(&s)).await {
        Ok(r) => r,
        Err(e) => Err(StoreError::Unavailable(e.to_string()).into()),
    }
}
