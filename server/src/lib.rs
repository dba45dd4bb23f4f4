//! `license-server`: the reference license backend for lic4es.
//!
//! Issues Ed25519-signed tokens for API keys (`POST /api/v1/licenses/token`), refreshes
//! static tokens (`POST /api/v1/licenses/refresh`), stores licenses, hashed API keys,
//! revocations and telemetry in SQLite, and reports on `/healthz` and `/metrics`.

pub mod app;
pub mod config;
pub mod keys;
pub mod store;

use std::sync::Arc;

pub use app::{serve, AppState};
pub use config::ServerConfig;

/// Opens store and key (creating the key if needed) and builds the shared state.
pub fn open(config: ServerConfig) -> Result<Arc<AppState>, String> {
    let key = keys::SigningKey::load_or_create(&config.signing_key_path())?;
    let store = store::Store::open(&config.database_path())?;
    Ok(Arc::new(AppState::new(config, key, store)?))
}
