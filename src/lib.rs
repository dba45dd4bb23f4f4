//! lic4es: the licensing engine of SoftClient4ES hosts.
//!
//! It decides the host's [`Tier`] from an Ed25519-signed license token, fetched by API key
//! or configured statically, cached on disk, and kept right while the backend comes and
//! goes. [`Engine`] is the pure Rust API; [`ffi`] is the C ABI over one process-global
//! engine (see `include/lic4es.h`).

#![warn(missing_docs)]

pub mod backend;
pub mod cache;
pub mod clock;
pub mod config;
pub mod engine;
pub mod ffi;
pub mod log;
pub mod pins;
pub mod protocol;
pub mod seat;
pub mod state;
pub mod telemetry;
pub mod tier;
pub mod token;

pub use config::{Config, ConfigError};
pub use engine::{Engine, EngineError, EngineOptions, SeatStatus, Source, Status};
pub use tier::Tier;
