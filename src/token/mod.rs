//! License tokens: trusted keys, signature checks, claims, and standing in time.
//!
//! Parsing is done here rather than by `jsonwebtoken::decode` so that every rejection
//! has a precise reason for the operator, time comes from the engine's clock, and the
//! algorithm whitelist is enforced before any key is touched.

//!
//! `keys` holds the trusted keys and the signature check (a relay's token through its
//! grant, `relay`), `jws` the token's three parts, `claims` what a verified token says,
//! `standing` how it stands at a given time under the config's policy.

mod claims;
mod jws;
mod keys;
mod relay;
mod standing;

pub use claims::Claims;
pub use jws::decode_unverified;
pub use keys::KeySet;
pub use relay::{RelayGrant, GRANT_HEADER};
pub use standing::{Checked, GracePhase, Policy, Standing, DEFAULT_MAX_GRACE_SECS, MAX_SKEW_SECS};

/// Seconds in a day: the unit of `grace_days` and of the days a standing reports.
const DAY: i64 = 86_400;

/// Largest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The values of the `src` claim: how a token was issued.
pub mod src {
    /// Minted by the vendor for a `key` (the only kind, with `refresh`, a static key may be).
    pub const STATIC: &str = "static";
    /// Fetched with an API key.
    pub const API_KEY: &str = "api_key";
    /// Issued by a seat call (acquire, reconnect, heartbeat).
    pub const SEAT: &str = "seat";
    /// A static token's refresh.
    pub const REFRESH: &str = "refresh";
    /// An air-gapped activation: node-locked (`hwid`), answering its request's `nonce`.
    pub const OFFLINE: &str = "offline";
    /// A relay's grant: the vendor lets the relay key named in `cnf` sign seat tokens of
    /// `sub`, up to `tier` and `exp`, for `seats` seats.
    pub const RELAY_GRANT: &str = "relay_grant";
    /// A borrowed seat: its session's `sid` and machine's `hwid`, answering the borrow's
    /// `nonce`, living exactly the borrow.
    pub const BORROW: &str = "borrow";
}

/// Why a token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("token is {0} bytes, over the 16 KiB limit")]
    TooLarge(usize),
    /// Not three base64url parts with JSON objects.
    #[error("not a well-formed JWT: {0}")]
    Malformed(String),
    /// `alg` is not EdDSA, RS256 or ES256.
    #[error("algorithm `{0}` is not allowed (only EdDSA, RS256 and ES256 are)")]
    AlgNotAllowed(String),
    /// The header has a `crit` parameter, which this engine does not understand.
    #[error("header has critical extensions (`crit`), which are not supported")]
    CriticalHeader,
    /// No `kid` in the header.
    #[error("header has no `kid`")]
    MissingKid,
    /// `kid` names no trusted key.
    #[error("no trusted public key has kid `{0}`")]
    UnknownKid(String),
    /// The key named by `kid` is of another type than `alg` needs.
    #[error("key `{kid}` is {key_type} and cannot verify {alg}")]
    KeyMismatch {
        /// The key id.
        kid: String,
        /// The key's type.
        key_type: &'static str,
        /// The token's algorithm.
        alg: String,
    },
    /// The signature does not verify with the named key.
    #[error("signature does not verify")]
    BadSignature,
    /// A required claim is absent.
    #[error("claim `{0}` is missing")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or value.
    #[error("claim `{0}` is malformed: {1}")]
    BadClaim(&'static str, String),
    /// `iss` is not the configured issuer.
    #[error("issuer `{found}` is not the expected `{expected}`")]
    WrongIssuer {
        /// The token's `iss`.
        found: String,
        /// The configured issuer.
        expected: String,
    },
    /// `nbf` is in the future.
    #[error("not valid before {0}")]
    NotYetValid(String),
    /// Expired beyond the grace period.
    #[error("expired {days} days ago, beyond the grace period")]
    Expired {
        /// Whole days since `exp`.
        days: i64,
    },
    /// A seat token (it carries `sid`) used outside seat mode.
    #[error(
        "a seat token is bound to its seat (it carries `sid`); it is accepted only in seat mode"
    )]
    SeatBound,
    /// A seat token issued to another machine.
    #[error("a seat token issued to another machine (hwid `{0}`)")]
    OtherHardware(String),
    /// Issued after the time the clock reads: the clock was set back.
    #[error("issued at {0}, after the time this clock reads: the clock was set back")]
    IssuedLater(String),
    /// A token issued in answer to one request (`src`), offered as a static key.
    #[error(
        "a token issued {0} answers one request and is bound to it; only a static or \
         refreshed token is accepted as `key` or `key-file`"
    )]
    NotStatic(String),
    /// An air-gapped activation's token anywhere but `offline-license.jwt`, or there for
    /// another machine or request.
    #[error("an air-gapped activation's token {0}")]
    Activation(String),
    /// A token signed by a relay's key whose grant does not verify, or that goes beyond
    /// its grant's license, tier or end.
    #[error("a relay's token is refused: {0}")]
    Relay(String),
}
