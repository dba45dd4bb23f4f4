//! The server's vocabulary as types that parse once, at the edge — an HTTP body or path,
//! a command-line argument, a TOML value — and cannot hold an invalid value after:
//! a license id, a session id, a tier, a license's terms and its tier's policy. Inside the
//! server they travel as these types and are not checked again.

/// The plumbing of a text newtype read only through its `parse`: `as_str`, `FromStr`,
/// `Display`, and `Deserialize` through `parse` (so a body or a path cannot hold an
/// invalid one).
macro_rules! parsed_text {
    ($t:ident, $err:ty) => {
        impl $t {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $t {
            type Err = $err;

            fn from_str(s: &str) -> Result<$t, $err> {
                $t::parse(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let text = String::deserialize(d)?;
                $t::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

mod license_id;
mod policy;
mod session_id;
mod terms;

pub use lic4es::tier::{Tier, UnknownTier};
pub use license_id::{InvalidLicenseId, LicenseId, MAX_LICENSE_ID};
pub use policy::{Effective, Serving, TierPolicy};
pub use session_id::{InvalidSessionId, SessionId, MAX_SESSION_ID};
pub use terms::{NoOtherKeys, Overrides, Seats, Secs};
