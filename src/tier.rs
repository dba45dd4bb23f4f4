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
        match s.trim().to_ascii_lowercase().as_str() {
            "pro" => Tier::Pro,
            "team" => Tier::Team,
            "enterprise" => Tier::Enterprise,
            _ => Tier::Community,
        }
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
}
