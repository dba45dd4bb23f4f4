//! The license store: licenses, API keys (as SHA-256), revocations, telemetry and the
//! audit trail, behind one interface ([`LicenseStore`]). SQLite is the embedded default
//! ([`sqlite::SqliteStore`]).
//!
//! The interface is blocking; the HTTP layer calls it on tokio's blocking pool, never on
//! the async request threads.

pub mod sqlite;

use sha2::{Digest, Sha256};

pub use self::sqlite::SqliteStore;

/// A license as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct License {
    /// License id (`sub` of its tokens).
    pub id: String,
    /// `community`, `pro`, `team` or `enterprise`.
    pub tier: String,
    /// Licensee.
    pub org_name: Option<String>,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
    /// Trial license.
    pub trial: bool,
    /// Revoked.
    pub revoked: bool,
    /// Overrides the tier policy's seat count.
    pub seats: Option<u32>,
    /// Overrides the tier policy's offline grace (0 = strict online-only).
    pub offline_grace_days: Option<u32>,
    /// Overrides the tier policy's heartbeat interval, in seconds.
    pub heartbeat_interval: Option<u64>,
}

/// What an API key resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The license it belongs to.
    pub license_id: String,
    /// Revoked.
    pub revoked: bool,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct AuditEvent {
    /// Seconds since the epoch (shown as RFC 3339 by the admin API).
    #[serde(skip)]
    pub at: i64,
    /// `acquire`, `refused`, `renew`, `lapse`, `reconnect`, `release`, `kick`, or an
    /// admin change (`license_create`, `license_tier`, `license_revoke`,
    /// `api_key_revoke`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The license.
    pub license: String,
    /// The seat session, for seat events.
    pub session_id: Option<String>,
    /// The engine's hardware id.
    pub hardware_id: Option<String>,
    /// The engine's instance id.
    pub instance_id: Option<String>,
    /// Where the request came from.
    pub source: Option<String>,
    /// Anything else worth keeping (offline seconds, counts).
    pub detail: Option<String>,
}

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is out of reach.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Licenses, keys, telemetry and audit, whatever the database.
pub trait LicenseStore: Send + Sync {
    /// Creates a license; false (and nothing changed) when one with its id exists.
    fn insert_license(&self, l: &License, now: i64) -> StoreResult<bool>;
    /// Changes an existing license's terms (tier, org, expiry, trial, overrides); never
    /// its revocation. False when there is no such license.
    fn update_license(&self, l: &License) -> StoreResult<bool>;
    /// The license `id`.
    fn license(&self, id: &str) -> StoreResult<Option<License>>;
    /// Changes a license's tier; false when there is no such license.
    fn set_tier(&self, id: &str, tier: &str) -> StoreResult<bool>;
    /// Revokes a license; false when there is no such license.
    fn revoke_license(&self, id: &str) -> StoreResult<bool>;
    /// Creates an API key for `license_id` and returns it; only its hash is stored.
    fn create_api_key(&self, license_id: &str, now: i64) -> StoreResult<String>;
    /// Looks an API key up by its hash.
    fn api_key(&self, key: &str) -> StoreResult<Option<KeyRecord>>;
    /// Revokes an API key; false when it is unknown.
    fn revoke_api_key(&self, key: &str) -> StoreResult<bool>;
    /// Stores a telemetry body received from an instance.
    fn add_telemetry(
        &self,
        license_id: &str,
        instance_id: &str,
        body: &str,
        now: i64,
    ) -> StoreResult<()>;
    /// The latest telemetry bodies, newest first: (license, instance, received_at, body).
    fn recent_telemetry(&self, limit: u32) -> StoreResult<Vec<(String, String, i64, String)>>;
    /// Appends to the audit trail.
    fn append_audit(&self, e: &AuditEvent) -> StoreResult<()>;
    /// The audit trail, newest first, optionally for one license.
    fn audit(&self, license: Option<&str>, limit: u32) -> StoreResult<Vec<AuditEvent>>;
    /// Drops audit entries older than `before`; returns how many.
    fn prune_audit(&self, before: i64) -> StoreResult<u64>;
    /// Whether the store answers.
    fn ping(&self) -> StoreResult<()>;
}

/// The stored form of an API key.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh API key: `sk-` and 48 random hex characters.
pub fn new_api_key() -> StoreResult<String> {
    let mut raw = [0u8; 24];
    getrandom::getrandom(&mut raw)
        .map_err(|e| StoreError::Unavailable(format!("no randomness: {e}")))?;
    Ok(format!(
        "sk-{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}
