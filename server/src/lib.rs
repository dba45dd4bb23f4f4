//! `license-server`: the reference license backend for lic4es.
//!
//! Issues Ed25519-signed tokens for API keys and refreshes static tokens, grants and
//! keeps seats (acquire, heartbeat, reconnect, release) with lapsing into offline use,
//! stores licenses, hashed API keys, revocations, telemetry and an audit trail, and
//! reports on `/healthz` and `/metrics`.
//!
//! Layers, each using only those below it:
//! - [`http`] (the endpoints by area), the CLI (`main.rs`, `cli/`, `startup.rs`) and an
//!   on-site [`relay`]: thin adapters and runners; [`jobs`], the background work;
//! - [`service`]: the domain operations, each audited once, with typed errors;
//! - [`app`]: the shared state, plain data;
//! - [`store`] (licenses, keys, audit: SQLite, PostgreSQL), [`seats`] (in memory,
//!   Redis), [`config`], [`signing`], [`metrics`], and the pure rules [`abuse`],
//!   [`telemetry`], [`throttle`] and [`usage`];
//! - [`domain`]: the vocabulary (license ids, tiers), parsed once at the edge.

pub mod abuse;
pub mod admin_api;
pub mod app;
pub mod coalesce;
pub mod config;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod log;
pub mod metrics;
pub mod relay;
pub mod seats;
pub mod service;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod tls;
pub mod usage;

use std::sync::Arc;

use lic4es::clock::{Clock, SystemClock};

pub use app::AppState;
pub use config::ServerConfig;
pub use http::serve;

/// Why the server's state could not be opened, or `serve` could not start: each by what
/// failed; the message is the operator's (the CLI prints it and exits 2).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The config breaks a rule (a secret too short, Redis settings that conflict, …).
    #[error("{0}")]
    Config(String),
    /// The license store did not open (or its schema is newer than this server's).
    #[error("{0}")]
    Store(String),
    /// The seat store did not open.
    #[error("{0}")]
    Seats(String),
    /// The signing key could not be read or created.
    #[error("{0}")]
    Key(String),
    /// The shared state could not be built from them.
    #[error("{0}")]
    State(String),
    /// The listener's certificate or key.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The seats of air-gapped activations could not be held again.
    #[error("air-gapped activations: {0}")]
    Restore(#[from] service::ServiceError),
    /// An address could not be listened on; `setting` names the key when it is not
    /// `listen`.
    #[error("cannot listen on {addr}{setting}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// ` (metrics-listen)`, or nothing.
        setting: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime could not start, or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<StartupError> for String {
    fn from(e: StartupError) -> String {
        e.to_string()
    }
}

/// Opens store and key (creating the key if needed) and builds the shared state, on the
/// system clock with seats in memory.
pub fn open(config: ServerConfig) -> Result<Arc<AppState>, StartupError> {
    open_with_clock(config, Arc::new(SystemClock))
}

/// The configured license store: PostgreSQL with `database-url`, else the SQLite file.
pub fn open_store(config: &ServerConfig) -> Result<Arc<dyn store::LicenseStore>, StartupError> {
    let store: Arc<dyn store::LicenseStore> = match config.database_url.as_deref() {
        Some(url) if !url.trim().is_empty() => Arc::new(
            store::PgStore::open_with(url.trim(), config.database_pool_size)
                .map_err(StartupError::Store)?,
        ),
        _ => Arc::new(
            store::SqliteStore::open(&config.database_path()).map_err(StartupError::Store)?,
        ),
    };
    Ok(store)
}

/// [`open`] with another clock (tests move it to expire sessions without sleeping).
pub fn open_with_clock(
    config: ServerConfig,
    clock: Arc<dyn Clock>,
) -> Result<Arc<AppState>, StartupError> {
    config.validate().map_err(StartupError::Config)?;
    let key = signing::KeyRing::load_or_create(&config.key_files()).map_err(StartupError::Key)?;
    open_with_keys(config, key, clock)
}

/// [`open_with_clock`] signing with `key` rather than the keys under `data-dir` (an
/// on-site relay's own key).
pub fn open_with_keys(
    config: ServerConfig,
    key: signing::KeyRing,
    clock: Arc<dyn Clock>,
) -> Result<Arc<AppState>, StartupError> {
    config.validate().map_err(StartupError::Config)?;
    let store = open_store(&config)?;
    if let Some(tree) = git_work_tree_of(&config.data_dir) {
        if !git_ignored(&tree, &config.data_dir) {
            tracing::warn!(
                "data-dir {} is inside the git work tree {} and not git-ignored; it holds \
                 the private signing key and the license database. Ignore it (.gitignore) \
                 or set `data-dir` elsewhere.",
                config.data_dir.display(),
                tree.display()
            );
        }
    }
    let topology = config.redis_topology().map_err(StartupError::Config)?;
    let seats: Arc<dyn seats::SeatStore> = match topology {
        Some(topology) => Arc::new(
            seats::RedisSeats::open(&topology, config.redis_ca_file.as_deref())
                .map_err(StartupError::Seats)?,
        ),
        None => Arc::new(seats::MemorySeats::new(clock.clone())),
    };
    let state = AppState::new(config, key, store, seats, clock).map_err(StartupError::State)?;
    Ok(Arc::new(state))
}

/// The git work tree `dir` lies in, if any: the nearest ancestor holding `.git` (a
/// directory, or a file in a linked work tree or submodule).
pub fn git_work_tree_of(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(dir)
    };
    // The directory may not exist yet: look from its nearest existing ancestor.
    let start = abs.ancestors().find_map(|a| a.canonicalize().ok())?;
    start
        .ancestors()
        .find(|a| a.join(".git").exists())
        .map(|a| a.to_path_buf())
}

/// Whether git ignores `dir` in the work tree `tree`. Without git to ask, it is taken as
/// not ignored (the warning is the safe side).
fn git_ignored(tree: &std::path::Path, dir: &std::path::Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    std::process::Command::new("git")
        .arg("-C")
        .arg(tree)
        .args(["check-ignore", "-q"])
        .arg(format!("{}/", dir.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
