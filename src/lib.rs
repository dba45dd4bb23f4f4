//! lic4es: the licensing engine of SoftClient4ES hosts.
//!
//! It decides the host's [`Tier`] from an Ed25519-signed license token, fetched by API key
//! or configured statically, cached on disk, and kept right while the backend comes and
//! goes. [`Engine`] is the pure Rust API; [`ffi`] is the C ABI over one process-global
//! engine (see `include/lic4es.h`).

#![warn(missing_docs)]

// The C declarations are `ffi`'s alone (build.rs reads only it). A tool that reads the
// whole crate instead (maturin, building the wheel from its source with pip) is told to
// skip the other modules by the `cbindgen:ignore` on each: their public constants are
// not C and would reach the declarations.

/// cbindgen:ignore
pub mod backend;
/// cbindgen:ignore
pub mod cache;
/// cbindgen:ignore
pub mod clock;
/// cbindgen:ignore
pub mod config;
/// cbindgen:ignore
pub mod engine;
pub mod ffi;
/// cbindgen:ignore
pub mod log;
/// cbindgen:ignore
pub mod offline;
/// cbindgen:ignore
pub mod pins;
/// cbindgen:ignore
mod platform;
/// cbindgen:ignore
pub mod protocol;
/// cbindgen:ignore
pub mod resolution;
/// cbindgen:ignore
pub mod seat;
/// cbindgen:ignore
pub mod state;
/// cbindgen:ignore
pub mod telemetry;
/// cbindgen:ignore
pub mod tier;
/// cbindgen:ignore
pub mod token;

pub use config::{Config, ConfigError};
pub use engine::{Engine, EngineError, EngineOptions, SeatStatus, Source, Status};
pub use tier::Tier;
