//! License tiers.

use std::fmt;

/// The tier the host runs at. The numeric values are the C API's `lic_tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Tier {
    /// No paid license holds.
    #[default]
    Community = 0,
    /// Pro.
    Pro = 1,
    /// Team.
    Team = 2,
    /// Enterprise.
    Enterprise = 3,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 4] = [Tier::Community, Tier::Pro, Tier::Team, Tier::Enterprise];

    /// A tier's name, case-insensitive and trimmed (`"Pro"`, `" team"`); `None` for
    /// anything else. Where a name is given (config, API, command line), not guessed.
    pub fn parse(s: &str) -> Option<Tier> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// Lower-case name, as in tokens and the status (`"pro"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Community => "community",
            Tier::Pro => "pro",
            Tier::Team => "team",
            Tier::Enterprise => "enterprise",
        }
    }

    /// Capitalised name, as in log lines (`"Pro"`).
    pub fn display_name(self) -> &'static str {
        match self {
            Tier::Community => "Community",
            Tier::Pro => "Pro",
            Tier::Team => "Team",
            Tier::Enterprise => "Enterprise",
        }
    }

    /// A token's `tier` claim: case-insensitive, trimmed; anything unknown is Community.
    pub fn from_claim(s: &str) -> Tier {
        Self::parse(s).unwrap_or_default()
    }

    /// The tier with this numeric value; anything out of range is Community.
    pub fn from_u8(v: u8) -> Tier {
        match v {
            1 => Tier::Pro,
            2 => Tier::Team,
            3 => Tier::Enterprise,
            _ => Tier::Community,
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = UnknownTier;

    fn from_str(s: &str) -> Result<Tier, UnknownTier> {
        Tier::parse(s).ok_or_else(|| UnknownTier(crate::log::clean(s)))
    }
}

/// A name that is not a tier's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier `{0}` (one of: community, pro, team, enterprise)")]
pub struct UnknownTier(pub String);

/// Written by its lower-case name.
impl serde::Serialize for Tier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Read by [`Tier::parse`]: case-insensitive, and an unknown name is an error.
impl<'de> serde::Deserialize<'de> for Tier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tier, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_parsing_is_lenient_about_case_and_space() {
        assert_eq!(Tier::from_claim(" ENTERPRISE "), Tier::Enterprise);
        assert_eq!(Tier::from_claim("Pro"), Tier::Pro);
        assert_eq!(Tier::from_claim("platinum"), Tier::Community);
        assert_eq!(Tier::from_u8(200), Tier::Community);
    }

    #[test]
    fn a_given_name_is_parsed_in_any_case_and_an_unknown_one_refused() {
        for t in Tier::ALL {
            assert_eq!(Tier::parse(t.as_str()), Some(t));
            assert_eq!(Tier::parse(t.display_name()), Some(t));
            assert_eq!(Tier::parse(&t.as_str().to_uppercase()), Some(t));
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
        }
        assert_eq!(serde_json::from_str::<Tier>("\"Pro\"").unwrap(), Tier::Pro);
        assert!(serde_json::from_str::<Tier>("\"platinum\"").is_err());
        assert!("".parse::<Tier>().is_err());
        assert_eq!(
            "gold".parse::<Tier>().unwrap_err().to_string(),
            "unknown tier `gold` (one of: community, pro, team, enterprise)"
        );
    }
}
