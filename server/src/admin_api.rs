//! The admin API's answers, typed once: the handlers serialize them, and the CLI's client
//! and the tests read them back (`docs/reference/http-api.md` lists them).

use serde::{Deserialize, Serialize};

pub use lic4es::protocol::RelayGrantAnswer;

use crate::store::Seats;

/// A session as the admin API shows it (`GET /admin/sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    /// The session.
    pub session_id: String,
    /// Its license.
    pub license: String,
    /// The engine's hardware id.
    pub hardware_id: String,
    /// The engine's instance id.
    pub instance_id: String,
    /// `online` or `offline`.
    pub mode: String,
    /// When it was granted (RFC 3339).
    pub acquired_at: String,
    /// Its last heartbeat (RFC 3339).
    pub last_seen: String,
    /// When it went offline (RFC 3339).
    pub offline_since: Option<String>,
    /// When a lapsed session's offline grace ends (RFC 3339).
    pub offline_until: Option<String>,
    /// Seconds offline so far (offline sessions).
    pub offline_secs: Option<i64>,
    /// Seconds of offline grace left (offline sessions).
    pub grace_left_secs: Option<i64>,
}

impl SessionRow {
    /// The row of `s` at `now` (seconds).
    pub fn at(s: crate::seats::Session, now: i64) -> Self {
        let rfc3339 = lic4es::clock::rfc3339;
        SessionRow {
            mode: if s.online() { "online" } else { "offline" }.into(),
            offline_secs: s.offline_since.map(|t| (now - t).max(0)),
            grace_left_secs: s.offline_until.map(|t| (t - now).max(0)),
            acquired_at: rfc3339(s.acquired_at),
            last_seen: rfc3339(s.last_seen),
            offline_since: s.offline_since.map(rfc3339),
            offline_until: s.offline_until.map(rfc3339),
            session_id: s.id,
            license: s.license,
            hardware_id: s.hardware_id,
            instance_id: s.instance_id,
        }
    }
}

/// `POST /admin/licenses`: the license created and its first API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseCreated {
    /// The license.
    pub license_id: String,
    /// Its tier.
    pub tier: String,
    /// When it expires (seconds).
    pub expires_at: i64,
    /// Its first API key.
    pub api_key: String,
}

/// `POST /admin/licenses/{id}/api-keys`: another key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCreated {
    /// The license.
    pub license_id: String,
    /// The key.
    pub api_key: String,
}

/// `POST /admin/licenses/{id}/tier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierSet {
    /// The license.
    pub license_id: String,
    /// Its tier now.
    pub tier: String,
}

/// `POST /admin/licenses/{id}/revoke` and `POST /admin/api-keys/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The license, when a license was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_id: Option<String>,
    /// Always true.
    pub revoked: bool,
}

/// `POST /admin/offline-activations`: an air-gapped site's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activated {
    /// The node-locked token the site installs.
    pub license: String,
    /// The activation's id (its token's `jti`).
    pub activation_id: String,
    /// The license.
    pub license_id: String,
    /// When it ends (RFC 3339).
    pub expires_at: String,
    /// Whether it holds one of the license's seats.
    pub counted: bool,
}

/// `POST /admin/offline-deactivations`: the activation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deactivated {
    /// The activation's id.
    pub activation_id: String,
    /// The license.
    pub license_id: String,
    /// The site's hardware id.
    pub hardware_id: String,
    /// When it was deactivated (RFC 3339).
    pub deactivated_at: Option<String>,
}

/// One instance's latest telemetry (`GET /admin/telemetry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryLatest {
    /// The license.
    pub license_id: String,
    /// The engine's instance.
    pub instance_id: String,
    /// When it reported (RFC 3339).
    pub received_at: String,
    /// What it reported.
    pub telemetry: crate::telemetry::Sample,
}

/// One license's day of telemetry (`GET /admin/telemetry/daily`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryDay {
    /// The day (`2026-11-01`).
    pub day: String,
    /// Its sums.
    #[serde(flatten)]
    pub row: crate::store::DailyTelemetry,
}

/// One license's offline record of the last 30 days (`GET /admin/abuse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbuseRow {
    /// The license.
    pub license: String,
    /// Flagged by the rule.
    pub flagged: bool,
    /// Offline periods entered.
    pub cycles: u32,
    /// Seconds offline.
    pub offline_secs: i64,
    /// Days offline, to a tenth.
    pub offline_days: f64,
    /// Hours with acquires over the budget.
    pub over_budget_hours: u32,
    /// What a flagged license is told.
    pub message: Option<String>,
}

/// A page of `GET /admin/abuse`: the rule's thresholds and the licenses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbusePage {
    /// The rule's window, in days.
    pub window_days: i64,
    /// Offline cycles allowed in it.
    pub max_cycles: u32,
    /// Offline days allowed in it.
    pub max_offline_days: i64,
    /// Hours over the acquire budget allowed in it.
    pub max_over_budget_hours: u32,
    /// Licenses flagged, of all.
    pub flagged: usize,
    /// This page's licenses.
    pub licenses: Vec<AbuseRow>,
}

/// `GET /admin/summary`: the dashboard's tiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary<N> {
    /// Sessions online.
    pub online: u64,
    /// Sessions offline.
    pub offline: u64,
    /// Licenses with sessions.
    pub licenses: u64,
    /// Licenses flagged for offline abuse.
    pub flagged: u64,
    /// When the figures were computed (RFC 3339).
    pub as_of: String,
    /// The licenses nearest their limits.
    pub nearest: N,
}

/// One bucket of `GET /admin/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageBucket {
    /// Its start (RFC 3339).
    pub start: String,
    /// Most seats in use.
    pub peak: u32,
    /// Mean seats in use.
    pub mean: f64,
    /// Acquires refused for want of a seat.
    pub refusals: u32,
    /// Offline session-hours.
    pub offline_hours: f64,
}

/// `GET /admin/usage`: a license's seat usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// The license.
    pub license: String,
    /// From (RFC 3339).
    pub from: String,
    /// To, not included (RFC 3339).
    pub to: String,
    /// `hour` or `day`.
    pub bucket: String,
    /// Its seats in effect.
    pub limit: Option<Seats>,
    /// One row per bucket.
    pub rows: Vec<UsageBucket>,
}
