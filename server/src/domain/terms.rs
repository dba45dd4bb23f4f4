//! A license's terms: its seats, lengths of time, and the overrides of its tier's policy
//! that the vendor sets per license.

use serde::Deserialize;

/// How many seats a license has: a number (0 is the free plan, used offline without a
/// seat), or unlimited (a paid license not counted in seats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seats {
    /// At most this many online sessions.
    Count(u32),
    /// Not counted: tokens by API key, and an acquire answers `mode: "offline"`.
    Unlimited,
}

impl Seats {
    /// The word for an unlimited seat count, in config, the admin API and the CLI.
    pub const UNLIMITED: &'static str = "unlimited";

    /// Parses `5` or `unlimited`.
    pub fn parse(s: &str) -> Result<Seats, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case(Self::UNLIMITED) {
            return Ok(Seats::Unlimited);
        }
        t.parse::<u32>()
            .map(Seats::Count)
            .map_err(|_| format!("seats must be a whole number or `{}`", Self::UNLIMITED))
    }

    /// The stored form: the count, or -1 for unlimited.
    pub fn to_column(self) -> i64 {
        match self {
            Seats::Count(n) => i64::from(n),
            Seats::Unlimited => -1,
        }
    }

    /// [`Seats::to_column`] read back; `None` for anything else.
    pub fn from_column(v: i64) -> Option<Seats> {
        match v {
            -1 => Some(Seats::Unlimited),
            n => u32::try_from(n).ok().map(Seats::Count),
        }
    }
}

impl std::str::FromStr for Seats {
    type Err = String;
    fn from_str(s: &str) -> Result<Seats, String> {
        Seats::parse(s)
    }
}

impl std::fmt::Display for Seats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seats::Count(n) => write!(f, "{n}"),
            Seats::Unlimited => f.write_str(Self::UNLIMITED),
        }
    }
}

impl serde::Serialize for Seats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Seats::Count(n) => s.serialize_u32(*n),
            Seats::Unlimited => s.serialize_str(Self::UNLIMITED),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Seats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Word(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(format!(
                "seats must be a whole number or \"{}\"",
                Seats::UNLIMITED
            ))
        })? {
            Raw::Count(n) => Ok(Seats::Count(n)),
            Raw::Word(w) => Seats::parse(&w).map_err(serde::de::Error::custom),
        }
    }
}

/// A length of time in seconds, written as a number of seconds or as a duration string
/// the engine's config also takes (`"14d"`, `"36h"`, `"90m"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Secs(pub u64);

impl Secs {
    /// Reads `text`: whole seconds, or a duration string.
    pub fn parse(text: &str) -> Result<Secs, String> {
        let text = text.trim();
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Secs(n));
        }
        let d = lic4es::config::parse_duration(&serde_json::Value::String(text.to_string()))?;
        Ok(Secs(d.as_secs()))
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secs, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Number(u64),
            Text(String),
        }
        match Given::deserialize(d)? {
            Given::Number(n) => Ok(Secs(n)),
            Given::Text(t) => Secs::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// A license's own terms over its tier's policy: each one set replaces the tier's. Read
/// from the admin API's bodies (flattened into them) and the CLI's arguments, kept in
/// the license's record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Overrides {
    /// Seats (0: a free plan; `unlimited`: not counted).
    pub seats: Option<Seats>,
    /// Offline grace, in days (0: strictly online).
    pub offline_grace_days: Option<u32>,
    /// Seconds between heartbeats.
    pub heartbeat_interval: Option<u64>,
    /// Lifetime of an air-gapped activation, in days (0: none).
    pub offline_activation_days: Option<u32>,
    /// The longest borrow (seconds, or a duration string; 0: none).
    pub max_borrow: Option<Secs>,
    /// Lifetime of an on-site relay's grant, in days (0: none).
    pub relay_grant_days: Option<u32>,
}

impl Overrides {
    /// Each one set: its name (as the admin API's bodies spell it) and its value.
    pub fn set(&self) -> Vec<(&'static str, String)> {
        let text = |v: Option<u32>| v.map(|v| v.to_string());
        [
            ("seats", self.seats.map(|v| v.to_string())),
            ("offline_grace_days", text(self.offline_grace_days)),
            (
                "heartbeat_interval",
                self.heartbeat_interval.map(|v| v.to_string()),
            ),
            (
                "offline_activation_days",
                text(self.offline_activation_days),
            ),
            ("max_borrow", self.max_borrow.map(|v| format!("{} s", v.0))),
            ("relay_grant_days", text(self.relay_grant_days)),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name, v?)))
        .collect()
    }
}

/// Flattened last into a body that has flattened parts (serde's `deny_unknown_fields`
/// does not combine with `flatten`): a key no field took is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoOtherKeys;

impl<'de> Deserialize<'de> for NoOtherKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rest = std::collections::BTreeMap::<String, serde::de::IgnoredAny>::deserialize(d)?;
        match rest.keys().next() {
            None => Ok(NoOtherKeys),
            Some(k) => Err(serde::de::Error::custom(format!(
                "unknown field `{}`",
                lic4es::log::echo(k)
            ))),
        }
    }
}
