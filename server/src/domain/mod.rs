//! The server's vocabulary as types that parse once, at the edge — an HTTP body or path,
//! a command-line argument, a TOML value — and cannot hold an invalid value after:
//! a license id, a tier, a license's terms. Inside the server they travel as these types and are not
//! checked again.

mod license_id;
mod policy;
mod session_id;
mod terms;

pub use lic4es::tier::{Tier, UnknownTier};
pub use license_id::{InvalidLicenseId, LicenseId, MAX_LICENSE_ID};
pub use policy::{Effective, Serving, TierPolicy};
pub use session_id::{InvalidSessionId, SessionId, MAX_SESSION_ID};
pub use terms::{NoOtherKeys, Overrides, Seats, Secs};
