//! The license store: licenses, API keys (as SHA-256), revocations, telemetry and the
//! audit trail, behind one interface ([`LicenseStore`]). SQLite is the embedded default
//! ([`sqlite::SqliteStore`]).
//!
//! The interface is blocking; the HTTP layer calls it on tokio's blocking pool, never on
//! the async request threads.

pub mod audit_writer;
pub mod migrate;
pub mod pg_tls;
pub mod postgres;
pub mod sqlite;

use sha2::{Digest, Sha256};

use crate::telemetry::Sample;

pub use self::postgres::PgStore;
pub use self::sqlite::SqliteStore;

pub use crate::domain::{Overrides, Seats};

/// A license's overrides as its six columns (`seats`, `offline_grace_days`,
/// `heartbeat_interval`, `offline_activation_days`, `max_borrow`, `relay_grant_days`):
/// whole numbers, `NULL` where the tier's policy applies.
pub(crate) fn override_columns(o: &Overrides) -> [Option<i64>; 6] {
    let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    [
        o.seats.map(Seats::to_column),
        o.offline_grace_days.map(i64::from),
        o.heartbeat_interval.map(big),
        o.offline_activation_days.map(i64::from),
        o.max_borrow.map(|s| big(s.0)),
        o.relay_grant_days.map(i64::from),
    ]
}

/// [`override_columns`] read back; a value out of its range reads as unset.
pub(crate) fn overrides_of(columns: [Option<i64>; 6]) -> Overrides {
    let [seats, grace, heartbeat, activation, borrow, relay] = columns;
    let small = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let wide = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Overrides {
        seats: seats.and_then(Seats::from_column),
        offline_grace_days: small(grace),
        heartbeat_interval: wide(heartbeat),
        offline_activation_days: small(activation),
        max_borrow: wide(borrow).map(crate::domain::Secs),
        relay_grant_days: small(relay),
    }
}

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
    /// Its own terms over its tier's policy.
    pub overrides: Overrides,
}

/// The terms of a license to change; absent ones stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LicenseChange {
    /// New tier.
    pub tier: Option<String>,
    /// New licensee.
    pub org_name: Option<String>,
    /// New expiry (seconds).
    pub expires_at: Option<i64>,
    /// Trial or not.
    pub trial: Option<bool>,
    /// Its own terms to set; those it does not set stay.
    pub overrides: Overrides,
}

/// What kind of seat a kept seat is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeptKind {
    /// An air-gapped activation.
    #[default]
    Activation,
    /// A borrowed seat.
    Borrow,
    /// One of the seats granted to an on-site relay.
    Relay,
}

impl KeptKind {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeptKind::Activation => "activation",
            KeptKind::Borrow => "borrow",
            KeptKind::Relay => "relay",
        }
    }

    /// The kind stored as `name` (an unknown name, written by a newer server, reads as an
    /// activation: both hold a seat until their end).
    pub fn parse(name: &str) -> KeptKind {
        match name {
            "borrow" => KeptKind::Borrow,
            "relay" => KeptKind::Relay,
            _ => KeptKind::Activation,
        }
    }
}

/// A seat held without heartbeats until `expires_at` or its early end, kept in the
/// license store so that it outlives a restart: an air-gapped activation (the token the
/// vendor issued in answer to a site's request, ended by its deactivation code) or a
/// borrow (an online seat checked out for a while, ended by its return).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineActivation {
    /// The token's `jti`, which the engine's deactivation code names.
    pub jti: String,
    /// The license.
    pub license_id: String,
    /// The engine's hardware id (the token is node-locked to it).
    pub hardware_id: String,
    /// The engine's instance id.
    pub instance_id: String,
    /// The request's nonce: the deactivation code is MACed with it.
    pub nonce: String,
    /// When it was issued (seconds).
    pub created_at: i64,
    /// The token's `exp` (seconds).
    pub expires_at: i64,
    /// When it ended early: the vendor entered its deactivation code, or the borrow was
    /// returned.
    pub deactivated_at: Option<i64>,
    /// An activation or a borrow.
    pub kind: KeptKind,
}

/// What an API key resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The license it belongs to.
    pub license_id: String,
    /// Revoked.
    pub revoked: bool,
}

/// What an audit entry records. Stored and shown by its name (`acquire`, …); a name
/// this server does not know (an entry a newer server wrote) is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditKind {
    /// `acquire`: a seat granted.
    Acquire,
    /// `refused`: an acquire refused: every seat in use.
    Refused,
    /// `renew`: a heartbeat whose renewed token is recorded (a new tier, or the first
    /// of half a token lifetime).
    Renew,
    /// `heartbeat_too_soon`: a heartbeat refused, sooner than half an interval after the
    /// session's last renewal.
    TooSoon,
    /// `too_many_acquires`: an acquire refused, the license having been granted as many
    /// seats this hour as its policy allows.
    TooManyAcquires,
    /// `lapse`: a session not heard from within its TTL, now offline.
    Lapse,
    /// `reconnect`: a reconnect that ended the previous session.
    Reconnect,
    /// `release`: a seat given back by its holder.
    Release,
    /// `kick`: a session ended by an operator.
    Kick,
    /// `offline_report`: an offline period reported with an acquire of a license not counted in seats.
    OfflineReport,
    /// `audit_resumed`: the audit trail is writable again after failures.
    AuditResumed,
    /// `license_create`: a license created.
    LicenseCreate,
    /// `license_update`: a license's terms changed.
    LicenseUpdate,
    /// `license_tier`: a license's tier changed.
    LicenseTier,
    /// `license_revoke`: a license revoked.
    LicenseRevoke,
    /// `api_key_create`: an API key created.
    ApiKeyCreate,
    /// `api_key_revoke`: an API key revoked.
    ApiKeyRevoke,
    /// `offline_activate`: an air-gapped activation answered (its seat held).
    OfflineActivate,
    /// `offline_deactivate`: an air-gapped activation's deactivation code entered.
    OfflineDeactivate,
    /// `borrow`: an online seat checked out for a while (held without heartbeats).
    Borrow,
    /// `borrow_return`: a borrowed seat given back before its end.
    BorrowReturn,
    /// `relay_grant`: a seat granted to an on-site relay (one entry per seat held).
    RelayGrant,
    /// A name this server does not know.
    Other(String),
}

impl AuditKind {
    /// Every kind this server writes.
    pub const ALL: [AuditKind; 22] = [
        AuditKind::Acquire,
        AuditKind::Refused,
        AuditKind::Renew,
        AuditKind::TooSoon,
        AuditKind::TooManyAcquires,
        AuditKind::Lapse,
        AuditKind::Reconnect,
        AuditKind::Release,
        AuditKind::Kick,
        AuditKind::OfflineReport,
        AuditKind::AuditResumed,
        AuditKind::LicenseCreate,
        AuditKind::LicenseUpdate,
        AuditKind::LicenseTier,
        AuditKind::LicenseRevoke,
        AuditKind::ApiKeyCreate,
        AuditKind::ApiKeyRevoke,
        AuditKind::OfflineActivate,
        AuditKind::OfflineDeactivate,
        AuditKind::Borrow,
        AuditKind::BorrowReturn,
        AuditKind::RelayGrant,
    ];

    /// Its stored name.
    pub fn as_str(&self) -> &str {
        match self {
            AuditKind::Acquire => "acquire",
            AuditKind::Refused => "refused",
            AuditKind::Renew => "renew",
            AuditKind::TooSoon => "heartbeat_too_soon",
            AuditKind::TooManyAcquires => "too_many_acquires",
            AuditKind::Lapse => "lapse",
            AuditKind::Reconnect => "reconnect",
            AuditKind::Release => "release",
            AuditKind::Kick => "kick",
            AuditKind::OfflineReport => "offline_report",
            AuditKind::AuditResumed => "audit_resumed",
            AuditKind::LicenseCreate => "license_create",
            AuditKind::LicenseUpdate => "license_update",
            AuditKind::LicenseTier => "license_tier",
            AuditKind::LicenseRevoke => "license_revoke",
            AuditKind::ApiKeyCreate => "api_key_create",
            AuditKind::ApiKeyRevoke => "api_key_revoke",
            AuditKind::OfflineActivate => "offline_activate",
            AuditKind::OfflineDeactivate => "offline_deactivate",
            AuditKind::Borrow => "borrow",
            AuditKind::BorrowReturn => "borrow_return",
            AuditKind::RelayGrant => "relay_grant",
            AuditKind::Other(s) => s,
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> AuditKind {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or_else(|| AuditKind::Other(name.to_string()))
    }
}

impl Default for AuditKind {
    fn default() -> Self {
        AuditKind::Other(String::new())
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that a column width (`{:<16}`) applies.
        f.pad(self.as_str())
    }
}

impl From<&str> for AuditKind {
    fn from(name: &str) -> Self {
        AuditKind::parse(name)
    }
}

impl PartialEq<&str> for AuditKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for AuditKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct AuditEvent {
    /// Its place in the trail (rising; 0 for an entry not yet appended). Pages of the
    /// trail continue `before` the last id shown.
    pub id: i64,
    /// Seconds since the epoch (shown as RFC 3339 by the admin API).
    #[serde(skip)]
    pub at: i64,
    /// What it records.
    #[serde(rename = "type")]
    pub kind: AuditKind,
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

/// Which part of the audit trail to read: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this license's entries.
    pub license: Option<String>,
    /// Only entries older than this id (the next page after an entry).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

impl AuditQuery {
    /// The newest `limit` entries, of every license.
    pub fn newest(limit: u32) -> Self {
        AuditQuery {
            license: None,
            before: None,
            limit,
        }
    }
}

/// One offline period of one session, as the offline-abuse rule
/// ([`crate::abuse`]) reads it: from a lapse (`ended` false: `end` is when its offline
/// grace runs out) or a reconnect's report (`ended` true: `end` is when it came back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OfflinePeriod {
    /// The license.
    pub license: String,
    /// The session that went offline.
    pub session_id: String,
    /// When it went offline (seconds).
    pub start: i64,
    /// When it came back, or (not `ended`) the latest it can stay offline.
    pub end: i64,
    /// Whether the session came back (a reconnect reported the period).
    pub ended: bool,
}

impl OfflinePeriod {
    /// The period for the rule at `now`: a period not ended is still going until its
    /// grace runs out.
    pub fn at(&self, now: i64) -> crate::abuse::Period {
        crate::abuse::Period {
            start: self.start,
            end: (self.ended || self.end <= now).then_some(self.end),
        }
    }
}

/// An instance's latest telemetry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceTelemetry {
    /// The license.
    pub license_id: String,
    /// The engine instance.
    pub instance_id: String,
    /// When it was received (seconds).
    pub received_at: i64,
    /// What it said.
    pub telemetry: Sample,
}

/// One license's usage on one day (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DailyTelemetry {
    /// The license.
    pub license_id: String,
    /// Days since the epoch.
    #[serde(skip)]
    pub day: i64,
    /// Reports stored that day.
    pub reports: u64,
    /// Instances that reported that day.
    pub instances: u64,
    /// Queries run that day (summed over instances).
    pub queries: u64,
    /// Joins run that day.
    pub joins: u64,
    /// Highest `mvs_active` reported.
    pub peak_mvs_active: u64,
    /// Highest `clusters_connected` reported.
    pub peak_clusters_connected: u64,
}

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is out of reach.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database refused a write that breaks one of its constraints.
    #[error("store refused the change: {0}")]
    Conflict(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Licenses, keys, telemetry and audit, whatever the database.
///
/// An operator's change (a license created, changed or revoked, an API key created or
/// revoked) commits in one transaction with its audit entry `audit`: both are durable, or
/// neither is (no change is acknowledged unaudited).
pub trait LicenseStore: Send + Sync {
    /// Creates a license; false (and nothing changed) when one with its id exists.
    fn insert_license(&self, l: &License, now: i64, audit: &AuditEvent) -> StoreResult<bool>;
    /// Changes the terms `change` gives of license `id`, in one statement (concurrent
    /// changes of different terms are all kept), never its revocation; returns the
    /// license as changed, or `None` when there is no such license.
    fn change_license(
        &self,
        id: &str,
        change: &LicenseChange,
        audit: &AuditEvent,
    ) -> StoreResult<Option<License>>;
    /// The license `id`.
    fn license(&self, id: &str) -> StoreResult<Option<License>>;
    /// Revokes a license; false when there is no such license.
    fn revoke_license(&self, id: &str, audit: &AuditEvent) -> StoreResult<bool>;
    /// Keeps the API key `key` (made by [`new_api_key`]) for `license_id`; only its hash
    /// is stored.
    fn add_api_key(
        &self,
        license_id: &str,
        key: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Looks an API key up by its hash.
    fn api_key(&self, key: &str) -> StoreResult<Option<KeyRecord>>;
    /// A counter every operator's change moves (in the change's transaction): what
    /// cached API-key lookups are checked against.
    fn changes(&self) -> StoreResult<i64>;
    /// Revokes an API key; false when it is unknown.
    fn revoke_api_key(&self, key: &str, audit: &AuditEvent) -> StoreResult<bool>;
    /// Keeps a telemetry report: the instance's latest value and its license's row for
    /// the day, by [`crate::telemetry::admit`]'s rule (false when not stored: the
    /// instance's last report is under a minute old). Keeps at most
    /// [`crate::telemetry::MAX_INSTANCES_PER_LICENSE`] instances per license.
    fn record_telemetry(
        &self,
        license_id: &str,
        instance_id: &str,
        sample: &Sample,
        now: i64,
    ) -> StoreResult<bool>;
    /// The latest report of the most recently heard instances, newest first.
    fn recent_telemetry(&self, limit: u32) -> StoreResult<Vec<InstanceTelemetry>>;
    /// Daily aggregates, newest first, optionally for one license.
    fn daily_telemetry(
        &self,
        license: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DailyTelemetry>>;
    /// Drops latest values received before `before` and days before its day; returns
    /// how many rows went.
    fn prune_telemetry(&self, before: i64) -> StoreResult<u64>;
    /// At shutdown: folds what the store keeps in logs into its files (SQLite truncates
    /// its write-ahead log), so a stopped server leaves its data, not a log of it.
    fn close(&self) {}
    /// Appends to the audit trail.
    fn append_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        self.append_audits(std::slice::from_ref(e))
    }
    /// Appends `entries` in one transaction (group commit): all of them are durable, or
    /// none is written.
    fn append_audits(&self, entries: &[AuditEvent]) -> StoreResult<()>;
    /// A page of the audit trail, newest first.
    fn audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;
    /// Drops audit entries older than `before`; returns how many.
    fn prune_audit(&self, before: i64) -> StoreResult<u64>;
    /// Keeps an offline period, one per session: a lapse is recorded once (a later
    /// lapse of the same session changes nothing); a reconnect's report ends the
    /// session's period (starting at the earlier of the two starts).
    fn record_offline(&self, p: &OfflinePeriod) -> StoreResult<()>;
    /// Offline periods that reach past `since` (their `end` is at or after it),
    /// optionally of one license.
    fn offline_periods(&self, license: Option<&str>, since: i64)
        -> StoreResult<Vec<OfflinePeriod>>;
    /// Drops offline periods that ended before `before`, and over-budget hours before it;
    /// returns how many.
    fn prune_offline(&self, before: i64) -> StoreResult<u64>;
    /// Records that `license` was refused an acquire beyond its acquire budget in the
    /// clock hour starting at `hour` (once per license and hour).
    fn record_over_budget(&self, license: &str, hour: i64) -> StoreResult<()>;
    /// The hours recorded by [`LicenseStore::record_over_budget`] at or after `since`, as
    /// (license, hour), optionally of one license.
    fn over_budget_hours(
        &self,
        license: Option<&str>,
        since: i64,
    ) -> StoreResult<Vec<(String, i64)>>;
    /// Adds to seat usage hours in one transaction: each entry raises its hour's peak
    /// and adds its sums.
    fn add_usage(&self, entries: &[crate::usage::HourUsage]) -> StoreResult<()>;
    /// A license's usage hours in `[from, to)`, oldest first.
    fn usage(&self, license: &str, from: i64, to: i64)
        -> StoreResult<Vec<crate::usage::HourUsage>>;
    /// Drops usage hours before `before`; returns how many.
    fn prune_usage(&self, before: i64) -> StoreResult<u64>;
    /// Records an air-gapped activation with its audit entry (the same transaction).
    fn add_offline_activation(&self, a: &OfflineActivation, audit: &AuditEvent) -> StoreResult<()>;
    /// The activation of token `jti`.
    fn offline_activation(&self, jti: &str) -> StoreResult<Option<OfflineActivation>>;
    /// Marks the activation of `jti` deactivated at `at` with its audit entry; false when
    /// it is unknown or was deactivated already.
    fn deactivate_offline(&self, jti: &str, at: i64, audit: &AuditEvent) -> StoreResult<bool>;
    /// Activations neither expired at `now` nor deactivated, by license and jti.
    fn live_offline_activations(&self, now: i64) -> StoreResult<Vec<OfflineActivation>>;
    /// The schema migrations the database recorded, oldest first.
    fn migrations(&self) -> StoreResult<Vec<migrate::Applied>>;
    /// Whether the store answers.
    fn ping(&self) -> StoreResult<()>;
    /// Whether the store accepts a write (one row of its own, rewritten): a full disk or
    /// a read-only database answers reads but cannot keep the audit trail.
    fn ping_write(&self, now: i64) -> StoreResult<()>;
}

/// The stored form of an API key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh API key: `sk-` and 48 random hex characters.
pub fn new_api_key() -> StoreResult<String> {
    let mut raw = [0u8; 24];
    getrandom::getrandom(&mut raw)
        .map_err(|e| StoreError::Unavailable(format!("no randomness: {e}")))?;
    Ok(format!("sk-{}", hex::encode(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_kinds_read_back_as_written_and_unknown_names_are_kept() {
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), k);
        }
        let newer = AuditKind::parse("seat_transferred");
        assert_eq!(newer, AuditKind::Other("seat_transferred".into()));
        assert_eq!(newer.as_str(), "seat_transferred");
        assert_eq!(format!("{:<8}|", AuditKind::Kick), "kick    |");
        assert_eq!(
            serde_json::to_value(AuditKind::LicenseTier).unwrap(),
            "license_tier"
        );
    }
}
