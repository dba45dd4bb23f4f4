//! A tier's policy as the vendor configures it, and a license's effective policy: the
//! tier's with the license's own terms applied. How a license is served (counted in
//! seats, a free plan, uncounted) is decided here, from the vendor's records alone.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Overrides, Seats, Secs};

/// Per-tier policy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TierPolicy {
    /// Features granted.
    pub features: Vec<String>,
    /// Quotas; a missing name is unlimited.
    #[serde(default)]
    pub quotas: BTreeMap<String, i64>,
    /// Seconds between seat heartbeats.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval: u64,
    /// Offline grace for seats, in days (0 = strict online-only).
    #[serde(default)]
    pub offline_grace_days: u64,
    /// Lifetime of an air-gapped activation, in days (0: sites without the internet are
    /// not activated).
    #[serde(default)]
    pub offline_activation_days: u64,
    /// The longest a seat may be borrowed: seconds, or a duration (`"14d"`); 0: no
    /// borrowing.
    #[serde(default)]
    pub max_borrow: Secs,
    /// Lifetime of an on-site relay's grant, in days (0: no relays).
    #[serde(default)]
    pub relay_grant_days: u64,
    /// Seats per license: a number (0: a free plan, used offline without a seat) or
    /// `"unlimited"` (a paid license not counted in seats).
    #[serde(default = "default_seats")]
    pub seats: Seats,
    /// Lifetime of issued tokens, in hours; default the global `token-lifetime-hours`.
    pub token_lifetime_hours: Option<u64>,
    /// Seats a license may be granted per clock hour, per seat it has (acquires and
    /// reconnects): hosts cannot take turns on one seat every heartbeat. 0 sets no bound.
    #[serde(default = "default_acquires_per_seat_hour")]
    pub acquires_per_seat_hour: u32,
}

/// A license's policy: its tier's, with the license's own overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective<'a> {
    /// Features granted.
    pub features: &'a [String],
    /// Quotas.
    pub quotas: &'a BTreeMap<String, i64>,
    /// Seats (0: a free plan; unlimited: not counted).
    pub seats: Seats,
    /// Seconds between heartbeats.
    pub heartbeat_interval: u64,
    /// Offline grace, in days.
    pub offline_grace_days: u64,
    /// Lifetime of an air-gapped activation, in days (0: not allowed).
    pub offline_activation_days: u64,
    /// The longest borrow, in seconds (0: not allowed).
    pub max_borrow: u64,
    /// Lifetime of a relay's grant, in days (0: not allowed).
    pub relay_grant_days: u64,
    /// Lifetime of issued tokens, in seconds.
    pub token_lifetime: i64,
    /// Grants per seat and clock hour (0: no bound).
    pub acquires_per_seat_hour: u32,
}

impl TierPolicy {
    /// One grant per seat every five minutes, on average over an hour: a heartbeat
    /// interval's worth, so hosts that take turns on a seat run out within the hour,
    /// while a rolling update or a restart loop of a few tries goes through.
    pub const DEFAULT_ACQUIRES_PER_SEAT_HOUR: u32 = 12;

    /// This policy with a license's own terms (`own`) applied, tokens living
    /// `default_lifetime_hours` unless the policy says. Borrowed, not cloned: every grant
    /// asks for its policy, and only the token's claims read the features and quotas.
    pub fn with(&self, own: &Overrides, default_lifetime_hours: u64) -> Effective<'_> {
        Effective {
            features: &self.features,
            quotas: &self.quotas,
            seats: own.seats.unwrap_or(self.seats),
            heartbeat_interval: own
                .heartbeat_interval
                .unwrap_or(self.heartbeat_interval)
                .clamp(1, 86_400),
            offline_grace_days: own
                .offline_grace_days
                .map_or(self.offline_grace_days, u64::from),
            offline_activation_days: own
                .offline_activation_days
                .map_or(self.offline_activation_days, u64::from),
            max_borrow: own.max_borrow.unwrap_or(self.max_borrow).0,
            relay_grant_days: own
                .relay_grant_days
                .map_or(self.relay_grant_days, u64::from),
            token_lifetime: (self.token_lifetime_hours.unwrap_or(default_lifetime_hours) as i64)
                .saturating_mul(3600),
            acquires_per_seat_hour: self.acquires_per_seat_hour,
        }
    }
}

impl Effective<'_> {
    /// Seconds of silence after which a session lapses: two heartbeats and a minute.
    pub fn session_ttl(&self) -> i64 {
        (self.heartbeat_interval as i64).saturating_mul(2) + 60
    }

    /// Offline grace in seconds.
    pub fn grace_secs(&self) -> i64 {
        (self.offline_grace_days as i64).saturating_mul(86_400)
    }

    /// Seats a license of `seats` may be granted per clock hour (0: no bound).
    pub fn grants_per_hour(&self, seats: u32) -> u32 {
        seats.saturating_mul(self.acquires_per_seat_hour)
    }

    /// How the license is served: the vendor's license record and tier policy decide,
    /// never the engine's config.
    pub fn serving(&self, tier: &str) -> Serving {
        match self.seats {
            _ if tier == "community" => Serving::FreePlan,
            Seats::Count(0) => Serving::FreePlan,
            Seats::Count(n) => Serving::Counted(n),
            Seats::Unlimited => Serving::Uncounted,
        }
    }
}

/// How a license is served (`docs/explanation/seats.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// A free plan: tokens by API key; an acquire answers `mode: "offline"` with grace 0
    /// and holds no seat.
    FreePlan,
    /// Seat-counted: tokens only through acquire, reconnect and heartbeat, at most this
    /// many online sessions; the token endpoint answers `403 seat_required`.
    Counted(u32),
    /// A paid license not counted in seats: tokens by API key; an acquire answers
    /// `mode: "offline"` with the tier's grace.
    Uncounted,
}

impl Serving {
    /// Whether the token endpoint serves the license.
    pub fn by_token(self) -> bool {
        !matches!(self, Serving::Counted(_))
    }
}

pub(super) fn default_heartbeat() -> u64 {
    300
}
fn default_acquires_per_seat_hour() -> u32 {
    TierPolicy::DEFAULT_ACQUIRES_PER_SEAT_HOUR
}
fn default_seats() -> Seats {
    Seats::Count(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pro() -> TierPolicy {
        toml::from_str(
            r#"features = ["a"]
               seats = 5
               offline-grace-days = 7
               max-borrow = "2d""#,
        )
        .unwrap()
    }

    #[test]
    fn a_license_s_own_terms_win_over_its_tier_s_and_the_heartbeat_stays_in_bounds() {
        let p = pro();
        let e = p.with(&Overrides::default(), 24);
        assert_eq!(
            (
                e.seats,
                e.offline_grace_days,
                e.max_borrow,
                e.token_lifetime
            ),
            (Seats::Count(5), 7, 2 * 86_400, 24 * 3600)
        );
        assert_eq!(e.heartbeat_interval, 300);
        assert_eq!(
            e.acquires_per_seat_hour,
            TierPolicy::DEFAULT_ACQUIRES_PER_SEAT_HOUR
        );
        assert_eq!(e.session_ttl(), 660);
        let own = Overrides {
            seats: Some(Seats::Unlimited),
            offline_grace_days: Some(0),
            heartbeat_interval: Some(0),
            max_borrow: Some(Secs(60)),
            ..Overrides::default()
        };
        let e = p.with(&own, 24);
        assert_eq!(
            (
                e.seats,
                e.offline_grace_days,
                e.max_borrow,
                e.heartbeat_interval
            ),
            (Seats::Unlimited, 0, 60, 1),
            "a heartbeat of 0 is one second, not a session that never lapses"
        );
        let own = Overrides {
            heartbeat_interval: Some(u64::MAX),
            ..Overrides::default()
        };
        assert_eq!(p.with(&own, 24).heartbeat_interval, 86_400);
    }

    #[test]
    fn how_a_license_is_served_is_its_seats_and_tier_alone() {
        let p = pro();
        let served = |seats: Seats, tier: &str| {
            let own = Overrides {
                seats: Some(seats),
                ..Overrides::default()
            };
            p.with(&own, 24).serving(tier)
        };
        let cases = [
            (Seats::Count(5), "pro", Serving::Counted(5)),
            (Seats::Count(0), "pro", Serving::FreePlan),
            (Seats::Unlimited, "pro", Serving::Uncounted),
            (Seats::Count(5), "community", Serving::FreePlan),
            (Seats::Unlimited, "community", Serving::FreePlan),
        ];
        for (seats, tier, want) in cases {
            assert_eq!(served(seats, tier), want, "{seats:?} {tier}");
        }
        assert!(Serving::FreePlan.by_token() && Serving::Uncounted.by_token());
        assert!(!Serving::Counted(1).by_token());
    }
}
