//! The backend protocol (`docs/reference/protocol.md`), defined once: endpoint paths, every
//! request and answer body, and the error codes. The engine, the reference server and the
//! test backends all use these types.
//!
//! Both sides ignore fields they do not know, so a newer engine talks to an older server
//! and the reverse. Optional fields are left out of a body rather than sent as `null`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Endpoint paths, relative to `api-url`.
pub mod paths {
    /// `POST`: fetch a token with the API key.
    pub const TOKEN: &str = "/api/v1/licenses/token";
    /// `POST`: refresh a static token (the reference server's `refresh_url`).
    pub const REFRESH: &str = "/api/v1/licenses/refresh";
    /// `POST`: acquire a seat.
    pub const ACQUIRE: &str = "/api/v1/licenses/acquire";
    /// `PUT`: keep a seat.
    pub const HEARTBEAT: &str = "/api/v1/licenses/heartbeat";
    /// `POST`: come back from offline mode, ending the old session.
    pub const RECONNECT: &str = "/api/v1/licenses/reconnect";
    /// `DELETE`: give a seat back.
    pub const RELEASE: &str = "/api/v1/licenses/release";
    /// `POST`: check a held seat out for a while, to run without the network;
    /// `DELETE`: give a borrowed seat back early.
    pub const BORROW: &str = "/api/v1/licenses/borrow";
    /// `POST`: an on-site relay's grant request (`lic4es::offline::GrantRequest`), with
    /// the license's API key: the relay's grant, or its renewal.
    pub const RELAY_GRANT: &str = "/api/v1/licenses/relay-grant";
}

/// The `error` codes of error answers.
pub mod codes {
    /// The API key is not known.
    pub const INVALID_API_KEY: &str = "invalid_api_key";
    /// The API key was revoked (a revocation).
    pub const API_KEY_REVOKED: &str = "api_key_revoked";
    /// The license was revoked (a revocation).
    pub const LICENSE_REVOKED: &str = "license_revoked";
    /// The license has expired.
    pub const LICENSE_EXPIRED: &str = "license_expired";
    /// Every seat of the license is in use.
    pub const NO_SEATS_AVAILABLE: &str = "no_seats_available";
    /// The license is counted in seats: the token endpoint does not serve it; acquire a
    /// seat instead.
    pub const SEAT_REQUIRED: &str = "seat_required";
    /// The license's tier has no policy on the server.
    pub const UNKNOWN_TIER: &str = "unknown_tier";
    /// The session is not known (lapsed, kicked, or never existed).
    pub const SESSION_GONE: &str = "session_gone";
    /// A bearer token was not accepted.
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// The request body is not what the protocol says.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// The body is not JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// A store the server needs does not answer.
    pub const STORE_UNAVAILABLE: &str = "store_unavailable";
    /// Admin API: a license with this id exists (it is never silently replaced).
    pub const LICENSE_EXISTS: &str = "license_exists";
    /// A heartbeat sooner than half an interval after the session's last renewal (one
    /// session's proofs must not feed several hosts); answered 429 with `Retry-After`.
    pub const HEARTBEAT_TOO_SOON: &str = "heartbeat_too_soon";
    /// The license was granted as many seats this hour as its policy allows (hosts taking
    /// turns on one seat); answered 429 with `Retry-After`. The engine treats it as no
    /// seat available.
    pub const TOO_MANY_ACQUIRES: &str = "too_many_acquires";

    /// The license's policy allows no borrowing (`max-borrow` 0); answered 403.
    pub const BORROW_NOT_ALLOWED: &str = "borrow_not_allowed";

    /// Codes that revoke the engine's license at once.
    pub const REVOCATIONS: [&str; 2] = [API_KEY_REVOKED, LICENSE_REVOKED];
}

/// Answer to an on-site relay's grant request (`paths::RELAY_GRANT`, and the admin
/// API's `POST /admin/relay-grants`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayGrantAnswer {
    /// The grant (the token the relay puts in its tokens' header).
    pub grant: String,
    /// Its id.
    pub grant_id: String,
    /// The license.
    pub license_id: String,
    /// Seats granted.
    pub seats: u32,
    /// When it ends (RFC 3339).
    pub expires_at: String,
    /// Whether its seats are counted among the license's.
    pub counted: bool,
}

/// Body of a token fetch (`POST /api/v1/licenses/token`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// The engine's instance id.
    pub instance_id: String,
    /// The host's version (`product-version`).
    #[serde(default)]
    pub version: String,
    /// Fresh random nonce, echoed into the token.
    pub nonce: String,
    /// Hours since `lic_init`.
    #[serde(default)]
    pub uptime_hours: f64,
    /// Usage counters, when telemetry is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Value>,
}

/// Body of a static token's refresh (`POST {refresh_url}`): a token request plus the
/// license id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRequest {
    /// `sub` of the token being refreshed.
    pub license_id: String,
    /// Everything a token request carries.
    #[serde(flatten)]
    pub client: TokenRequest,
}

/// Answer to a token fetch or a refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenAnswer {
    /// The token; an answer without one is a failure.
    #[serde(default)]
    pub jwt: Option<String>,
    /// Seconds until the token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// A message for the operator (logged at INFO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Whether a seat is held online (with heartbeats) or the license is a free plan used
/// offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatMode {
    /// A seat is held; heartbeat every `heartbeat_interval`.
    Online,
    /// No seat, no heartbeats: use the token, acquire again every `refresh.interval`.
    Offline,
}

/// Body of a seat acquire (`POST /api/v1/licenses/acquire`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcquireRequest {
    /// The engine's hardware id.
    pub hardware_id: String,
    /// The engine's instance id (a client written from the CODITECT ADR sends none).
    #[serde(default)]
    pub instance_id: String,
    /// The host's version.
    #[serde(default)]
    pub version: String,
    /// Fresh random nonce, echoed into the token; empty (absent) from a client that
    /// sends none, whose token then carries none.
    #[serde(default)]
    pub nonce: String,
    /// When the engine went offline with no session left to end (it worked from its
    /// cached token after a release, a kick or a revoked session), RFC 3339: the offline
    /// period this acquire ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_since: Option<String>,
    /// Offline periods entered in the last 30 days, sent with `offline_since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_cycles_30d: Option<u32>,
}

/// Body of a reconnect (`POST /api/v1/licenses/reconnect`): an acquire that also ends the
/// engine's previous session and reports the offline period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconnectRequest {
    /// The session held before going offline (or before a crash), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_session_id: Option<String>,
    /// The engine's hardware id.
    pub hardware_id: String,
    /// The engine's instance id (a client written from the CODITECT ADR sends none).
    #[serde(default)]
    pub instance_id: String,
    /// The host's version.
    #[serde(default)]
    pub version: String,
    /// Fresh random nonce, echoed into the token; empty (absent) from a client that
    /// sends none, whose token then carries none.
    #[serde(default)]
    pub nonce: String,
    /// When offline mode was entered (RFC 3339), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_since: Option<String>,
    /// Offline periods entered in the last 30 days.
    #[serde(default)]
    pub offline_cycles_30d: u32,
}

/// Answer to an acquire or a reconnect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcquireAnswer {
    /// Online seat or offline (free) plan.
    pub mode: SeatMode,
    /// The session, in online mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Seconds between heartbeats, in online mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<i64>,
    /// Offline grace in days (0 = strict online-only).
    #[serde(default)]
    pub grace_period_days: i64,
    /// Offline grace in seconds; wins over `grace_period_days` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
    /// The (seat) token.
    #[serde(default)]
    pub license: Option<String>,
    /// A message for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl AcquireAnswer {
    /// The offline grace in seconds: `grace_period_seconds` when present, else days.
    /// Negative values count as 0.
    pub fn grace_seconds(&self) -> i64 {
        self.grace_period_seconds
            .unwrap_or_else(|| self.grace_period_days.saturating_mul(86_400))
            .max(0)
    }
}

/// Body of a heartbeat (`PUT /api/v1/licenses/heartbeat`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// The session kept.
    pub session_id: String,
    /// Fresh random nonce, echoed into a renewed token; empty (absent) from a client that
    /// sends none.
    #[serde(default)]
    pub nonce: String,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// A renewed token, which replaces the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// A new heartbeat interval (seconds), from the next beat on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<i64>,
}

/// Body of a release (`DELETE /api/v1/licenses/release`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// The session given back.
    pub session_id: String,
}

/// Body of a borrow (`POST /api/v1/licenses/borrow`): the online session whose seat is
/// checked out, for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BorrowRequest {
    /// The online session held now.
    pub session_id: String,
    /// How long, in seconds (the server grants at most the license's `max-borrow`).
    pub seconds: u64,
    /// Fresh random nonce, echoed into the borrowed token.
    pub nonce: String,
}

/// Answer to a borrow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BorrowAnswer {
    /// The borrowed seat's token (`src: "borrow"`, its session's `sid`, `exp` at the
    /// borrow's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

/// Body of a borrow's early return (`DELETE /api/v1/licenses/borrow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnBorrowRequest {
    /// The borrowed session (the borrowed token's `sid`).
    pub session_id: String,
}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A code from [`codes`].
    #[serde(default)]
    pub error: String,
    /// Words for the operator.
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_ignored_and_absent_options_left_out() {
        let a: AcquireAnswer = serde_json::from_value(json!({
            "mode": "online", "session_id": "s-1", "heartbeat_interval": 300,
            "grace_period_days": 7, "license": "a.b.c", "from_the_future": [1, 2]
        }))
        .unwrap();
        assert_eq!(a.mode, SeatMode::Online);
        assert_eq!(a.grace_seconds(), 7 * 86_400);
        let with_secs = AcquireAnswer {
            grace_period_seconds: Some(90),
            ..a.clone()
        };
        assert_eq!(with_secs.grace_seconds(), 90);

        let body = serde_json::to_value(ReconnectRequest {
            old_session_id: None,
            hardware_id: "h".into(),
            instance_id: "i".into(),
            version: String::new(),
            nonce: "n".into(),
            offline_since: None,
            offline_cycles_30d: 0,
        })
        .unwrap();
        assert!(body.get("old_session_id").is_none());
        assert!(body.get("offline_since").is_none());

        let r: RefreshRequest = serde_json::from_value(json!({
            "license_id": "l", "instance_id": "i", "nonce": "n", "extra": true
        }))
        .unwrap();
        assert_eq!(r.client.instance_id, "i");
        assert_eq!(
            serde_json::to_value(&r).unwrap()["license_id"],
            json!("l"),
            "flattened on the wire"
        );
    }

    #[test]
    fn wrong_types_are_errors_not_defaults() {
        assert!(serde_json::from_value::<AcquireAnswer>(json!({"mode": "sideways"})).is_err());
        assert!(serde_json::from_value::<HeartbeatAnswer>(json!({"license": 5})).is_err());
        let t: TokenAnswer = serde_json::from_value(json!({"jwt": null})).unwrap();
        assert_eq!(t.jwt, None);
    }
}
