//! The status document of `lic_status_json` (`docs/reference/status.md`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{lock, SeatRun, Shared, Source, DAY_SECS};
use crate::clock::{rfc3339, rfc3339_millis};
use crate::seat::SeatState;
use crate::tier::Tier;
use crate::token::{GracePhase, Standing};

/// The outcome of the last backend exchange, for the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshRecord {
    /// When (RFC 3339).
    pub at: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// The `seat` object of the status, in seat mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatStatus {
    /// `acquiring`, `online`, `offline`, `degraded`, `offline_plan`, `no_seats`.
    pub state: SeatState,
    /// The session held.
    pub session_id: Option<String>,
    /// This engine's hardware id.
    pub hardware_id: String,
    /// Seconds between heartbeats.
    pub heartbeat_interval: Option<i64>,
    /// Consecutive heartbeat failures.
    pub heartbeat_failures: u32,
    /// The last heartbeat answered with its proof, or the grant (RFC 3339).
    pub last_heartbeat: Option<String>,
    /// The last proof that the server holds the seat: a grant or a heartbeat's renewed
    /// token (RFC 3339). Online lasts a session's time to live past it.
    pub last_proof_at: Option<String>,
    /// When offline mode was entered (RFC 3339).
    pub offline_since: Option<String>,
    /// When the offline grace ends (RFC 3339).
    pub grace_until: Option<String>,
    /// The next reconnect attempt (RFC 3339).
    pub next_reconnect_at: Option<String>,
    /// Offline periods entered in the last 30 days.
    pub offline_cycles_30d: u32,
    /// The end of the borrow while the seat is borrowed (RFC 3339), else null.
    pub borrowed_until: Option<String>,
}

/// The `clock` object of the status: the ledger's mark and whether it is in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockStatus {
    /// The latest time trusted (RFC 3339).
    pub high_water_mark: String,
    /// The wall clock reads more than an hour before the mark, which is used instead.
    pub clock_behind: bool,
    /// `state.json` verifies (false while a state that does not verify is set aside,
    /// until the license server answers).
    pub state_verified: bool,
}

/// What the library's build fixes (`docs/how-to/pinned-build.md`), so an operator can see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BuildStatus {
    /// The trusted public keys (`LIC4ES_PUBLIC_KEYS_FILE`).
    pub pinned_keys: bool,
    /// The license server (`LIC4ES_API_URL`); `api-url` is then ignored.
    pub pinned_api_url: bool,
    /// The only trust anchors of the license server's TLS (`LIC4ES_API_CA_FILE`).
    pub pinned_ca: bool,
}

/// The status document of `lic_status_json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Tier name, lower case.
    pub tier: &'static str,
    /// Where the license came from.
    pub source: Source,
    /// `Active`, `Expired (…)`, `No license`, `Revoked`, `Degraded (offline grace expired)`.
    pub status: String,
    /// `none`, `early`, `mid`.
    pub grace: &'static str,
    /// `sub`.
    pub license_id: Option<String>,
    /// `org_name`.
    pub org_name: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// `trial`.
    pub trial: bool,
    /// Effective features.
    pub features: Vec<String>,
    /// Effective quotas (null = unlimited).
    pub quotas: BTreeMap<String, Option<i64>>,
    /// Expiry of the token in use (a fetched or seat token lives shorter than its
    /// license: days, or one session's grace).
    pub expires_at: Option<String>,
    /// The license's own end: the token's signed `lic_exp`, else its `exp`.
    pub license_expires_at: Option<String>,
    /// Whole days until expiry.
    pub days_remaining: Option<i64>,
    /// `static`, `api_key`, `online`, `offline`, `degraded`, `borrowed`,
    /// `offline_activation`, `none`.
    pub mode: &'static str,
    /// This engine's instance id.
    pub instance_id: String,
    /// Last backend exchange.
    pub last_refresh: Option<RefreshRecord>,
    /// Next scheduled refresh (in seat mode: the next heartbeat, reconnect or acquire).
    pub next_refresh_at: Option<String>,
    /// The last body sent to the backend.
    pub last_telemetry: Option<Value>,
    /// Increments on every change of license or tier.
    pub generation: u64,
    /// Why the engine is where it is, in words.
    pub reason: Option<String>,
    /// The library version.
    pub version: &'static str,
    /// The license's platform scope (`PRODUCTION` when the token names none).
    pub platform: String,
    /// The tier fell from a higher one during this run (SHOW LICENSE's "(degraded)").
    pub degraded: bool,
    /// The tier before the last change, lower case, or null.
    pub previous_tier: Option<&'static str>,
    /// The clock ledger.
    pub clock: ClockStatus,
    /// What the library's build fixes.
    pub build: BuildStatus,
    /// The seat, in seat mode (null otherwise).
    pub seat: Option<SeatStatus>,
    /// The on-site relay whose token is in use, through the vendor's grant (null
    /// otherwise).
    pub relay: Option<RelayStatus>,
}

/// The `relay` object of the status: the grant a relay's token was accepted through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayStatus {
    /// The relay key's id.
    pub key_id: String,
    /// The grant's end (RFC 3339): no token of the relay outlives it.
    pub grant_until: String,
    /// Seats the grant lets the relay hold.
    pub seats: u32,
}

fn seat_mode_name(state: SeatState) -> &'static str {
    match state {
        SeatState::Online => "online",
        SeatState::Offline | SeatState::OfflinePlan => "offline",
        SeatState::Degraded => "degraded",
        SeatState::Acquiring | SeatState::NoSeats => "none",
        SeatState::Borrowed => "borrowed",
    }
}

impl Shared {
    fn seat_status(&self, run: &SeatRun, now_ms: i64) -> SeatStatus {
        let m = &run.machine;
        SeatStatus {
            state: m.state(),
            session_id: m.session_id().map(crate::log::clean),
            hardware_id: self.hardware_id.get().cloned().unwrap_or_default(),
            heartbeat_interval: m.heartbeat_ms().map(|h| h / 1000),
            heartbeat_failures: m.heartbeat_failures(),
            last_heartbeat: m.last_heartbeat().map(rfc3339_millis),
            last_proof_at: m.last_heartbeat().map(rfc3339_millis),
            offline_since: m.offline_since().map(rfc3339_millis),
            grace_until: m.grace_until().map(rfc3339_millis),
            next_reconnect_at: m.next_reconnect_at().map(rfc3339_millis),
            offline_cycles_30d: m.offline_cycles_30d(now_ms),
            borrowed_until: m.borrowed_until().map(rfc3339_millis),
        }
    }

    pub(super) fn status(&self) -> Status {
        let now = self.now_secs();
        let now_ms = self.now_millis();
        let st = lock(&self.state);
        let tier = self.published.tier();
        let ents = self.published.entitlements().clone();
        let seat_state = st.seat.as_ref().map(|s| s.machine.state());
        let (source, status, grace, expires_at, days_remaining) = match &st.current {
            Some(c) => {
                let (status, grace) = match self.policy.standing(&c.claims, now) {
                    _ if seat_state == Some(SeatState::Degraded) => {
                        ("Degraded (offline grace expired)".to_string(), "none")
                    }
                    Ok(Standing::Valid) => ("Active".to_string(), "none"),
                    Ok(Standing::Grace {
                        phase: GracePhase::Early,
                        days_ago,
                        ..
                    }) => (
                        format!("Expired ({days_ago} days ago, in grace period)"),
                        "early",
                    ),
                    Ok(Standing::Grace {
                        phase: GracePhase::Mid,
                        days_ago,
                        days_left,
                    }) => (
                        format!(
                            "Expired ({days_ago} days ago, {days_left} days until Community fallback)"
                        ),
                        "mid",
                    ),
                    Err(e) => (format!("Expired ({e})"), "none"),
                };
                (
                    c.source,
                    status,
                    grace,
                    Some(rfc3339(c.claims.exp)),
                    Some((c.claims.exp - now).max(0) / DAY_SECS),
                )
            }
            None if st.revoked => (Source::None, "Revoked".to_string(), "none", None, None),
            None => (Source::None, "No license".to_string(), "none", None, None),
        };
        let claims = st.current.as_ref().map(|c| &c.claims);
        let mut reason = st.reason.clone();
        let mut status = status;
        // A token naming no known tier runs as Community and must not read as an active
        // paid license.
        if let Some(t) = claims.and_then(|c| c.unknown_tier.as_ref()) {
            status = "No license".to_string();
            let why = format!("unknown tier \"{t}\"; running as Community");
            reason = Some(match reason {
                Some(r) => format!("{why}; {r}"),
                None => why,
            });
        }
        let mode = match (seat_state, source) {
            (Some(s), _) => seat_mode_name(s),
            (None, Source::Static) => "static",
            (None, Source::ApiKey) => "api_key",
            (None, Source::Offline) => "offline_activation",
            _ if self.config.api_key.is_some() => "api_key",
            _ if self.config.key.is_some() || self.config.key_file.is_some() => "static",
            _ => "none",
        };
        Status {
            tier: tier.as_str(),
            source,
            status,
            grace,
            license_id: claims.map(|c| c.sub.clone()),
            org_name: claims.and_then(|c| c.org_name.clone()),
            jti: claims.and_then(|c| c.jti.clone()),
            trial: claims.is_some_and(|c| c.trial),
            features: ents.features.iter().cloned().collect(),
            quotas: ents.quotas.clone(),
            expires_at,
            license_expires_at: claims.map(|c| rfc3339(c.lic_exp.unwrap_or(c.exp))),
            days_remaining,
            mode,
            instance_id: st.instance_id.clone(),
            last_refresh: st.last_refresh.clone(),
            next_refresh_at: st.next_refresh_at.map(rfc3339_millis),
            last_telemetry: st.last_telemetry.clone(),
            generation: st.generation,
            reason,
            version: env!("CARGO_PKG_VERSION"),
            platform: claims
                .and_then(|c| c.platform.clone())
                .unwrap_or_else(|| "PRODUCTION".to_string()),
            degraded: st.degraded,
            previous_tier: st.previous_tier.map(Tier::as_str),
            clock: {
                let (mark, behind) = self.clock_view();
                ClockStatus {
                    high_water_mark: rfc3339_millis(mark),
                    clock_behind: behind,
                    state_verified: !self.state_tampered(),
                }
            },
            build: BuildStatus {
                pinned_keys: self.config.pinned_keys,
                pinned_api_url: self.config.pins.api_urls.is_some(),
                pinned_ca: self.config.pins.ca.is_some(),
            },
            seat: st.seat.as_ref().map(|s| self.seat_status(s, now_ms)),
            relay: claims.and_then(|c| c.relay.as_ref()).map(|r| RelayStatus {
                key_id: crate::log::clean(&r.kid),
                grant_until: rfc3339(r.exp),
                seats: r.seats,
            }),
        }
    }
}
