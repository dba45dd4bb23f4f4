//! The server's vocabulary as types that parse once, at the edge — an HTTP body or path,
//! a command-line argument, a TOML value — and cannot hold an invalid value after:
//! a license id, a tier. Inside the server they travel as these types and are not
//! checked again.

mod license_id;

pub use lic4es::tier::{Tier, UnknownTier};
pub use license_id::{InvalidLicenseId, LicenseId, MAX_LICENSE_ID};
