//! `license-server`: the reference license backend for lic4es.
//!
//! Issues Ed25519-signed tokens for API keys and refreshes static tokens, grants and
//! keeps seats (acquire, heartbeat, reconnect, release) with lapsing into offline use,
//! stores licenses, hashed API keys, revocations, telemetry and an audit trail, and
//! reports on `/healthz` and `/metrics`.
//!
//! Modules: [`store`] (the license store interface, SQLite), [`seats`] (the seat store
//! interface, in memory), [`issue`] (signing tokens), [`http`] (the endpoints by area),
//! [`app`] (what the handlers share).

pub mod app;
pub mod config;
pub mod http;
pub mod issue;
pub mod keys;
pub mod seats;
pub mod store;

use std::sync::Arc;

use lic4es::clock::{Clock, SystemClock};

pub use app::AppState;
pub use config::ServerConfig;
pub use http::serve;

/// Opens store and key (creating the key if needed) and builds the shared state, on the
/// system clock with seats in memory.
pub fn open(config: ServerConfig) -> Result<Arc<AppState>, String> {
    open_with_clock(config, Arc::new(SystemClock))
}

/// [`open`] with another clock (tests move it to expire sessions without sleeping).
pub fn open_with_clock(
    config: ServerConfig,
    clock: Arc<dyn Clock>,
) -> Result<Arc<AppState>, String> {
    let key = keys::SigningKey::load_or_create(&config.signing_key_path())?;
    let store = store::SqliteStore::open(&config.database_path())?;
    let seats = seats::MemorySeats::new(clock.clone());
    Ok(Arc::new(AppState::new(
        config,
        key,
        Arc::new(store),
        Arc::new(seats),
        clock,
    )?))
}
