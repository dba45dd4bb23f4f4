//! An on-site relay (`license-server relay`, `docs/how-to/relay.md`): inside a customer's
//! network, with or without a route to the vendor, it serves engines the seat endpoints
//! from its own store and signs their tokens with its own key. What makes engines accept
//! them is the vendor's grant in every token's header: the license, its tier, the seats
//! and an end, for this relay's key on this machine. So the relay cannot mint: an engine
//! holds every token to its grant, and the relay never holds a vendor key.
//!
//! The relay is this server on a config of its own: the grant's license seeded into its
//! SQLite store with the grant's seats and end, the license's API key accepted (the one
//! engines present to the vendor), the tiers' offline paths closed (no grace, no borrows,
//! no activations, no relays of relays). Its grant comes from the grant file (an answer to
//! `license-server relay request`) or, with `upstream`, from the vendor directly; from
//! half a grant's life the relay asks for the next, carrying its usage since the last.

pub mod grant;
mod upstream;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use lic4es::clock::Clock;
use lic4es::offline::GrantRequest;
use serde::Deserialize;

pub use grant::{Grant, GrantError};

use crate::app::AppState;
use crate::config::{Secs, ServerConfig, NO_LISTENER};
use crate::service::{self, ServiceError};
use crate::signing::{KeyRing, SigningKey};
use crate::store::{AuditEvent, AuditKind, License, LicenseChange, Overrides, Seats};
use crate::usage::{hour_of, SiteReport};

/// Why the relay cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The config file cannot be read or is wrong.
    #[error("{0}")]
    Config(String),
    /// The relay's key cannot be read or created.
    #[error("relay key: {0}")]
    Key(String),
    /// No grant yet and no vendor to ask.
    #[error(
        "no grant in {0}: have the vendor answer `license-server relay request` and put the \
         answer there, or set `upstream` and `api-key`"
    )]
    NoGrant(PathBuf),
    /// The grant cannot be served.
    #[error("grant {0}: {1}")]
    Grant(PathBuf, GrantError),
    /// The grant file cannot be read or written.
    #[error("grant file {0}: {1}")]
    GrantFile(PathBuf, String),
    /// The vendor's server did not answer a grant.
    #[error("the vendor's server: {0}")]
    Upstream(String),
    /// The relay's own store failed.
    #[error("the relay's store: {0}")]
    Store(#[from] ServiceError),
    /// Listening or serving failed.
    #[error("{0}")]
    Serve(String),
}

/// The relay's config file (TOML); unknown keys are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RelayConfig {
    /// Address engines reach it at.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// PEM certificate chain: with `tls-key`, engines reach the relay over HTTPS (an
    /// engine speaks plain HTTP only on loopback).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls-cert`.
    pub tls_key: Option<PathBuf>,
    /// Its store (sessions, audit, usage) and, by default, its key and grant.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The grant (the vendor's answer); default `{data-dir}/grant.jwt`.
    pub grant_file: Option<PathBuf>,
    /// The relay's Ed25519 key, created 0600 at first start; default
    /// `{data-dir}/relay-key.jwk`.
    pub relay_key_file: Option<PathBuf>,
    /// The vendor's server, for a relay that gets and renews its grant online.
    pub upstream: Option<String>,
    /// The license's API key: what engines present to the relay, and, with `upstream`,
    /// what the relay presents to the vendor.
    pub api_key: String,
    /// Least severe log line written: `error`, `warn`, `info` or `debug`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_listen() -> String {
    "127.0.0.1:8700".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("license-relay-data")
}
fn default_log_level() -> String {
    "info".into()
}

impl RelayConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<RelayConfig, RelayError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RelayError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| RelayError::Config(format!("{}: {e}", path.display())))
    }

    /// Reads and checks a config's text.
    pub fn parse(text: &str) -> Result<RelayConfig, String> {
        let c: RelayConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if c.api_key.trim().is_empty() {
            return Err("`api-key` is empty".into());
        }
        if let Some(up) = &c.upstream {
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| up.starts_with(p));
            if !up.starts_with("https://") && !loopback {
                return Err(format!(
                    "`upstream` {up:?}: the vendor is reached over https (http only on loopback)"
                ));
            }
        }
        Ok(c)
    }

    /// Where the grant is kept.
    pub fn grant_path(&self) -> PathBuf {
        self.grant_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("grant.jwt"))
    }

    /// Where the relay's key is kept.
    pub fn key_path(&self) -> PathBuf {
        self.relay_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("relay-key.jwk"))
    }

    fn store_path(&self) -> PathBuf {
        self.data_dir.join("relay.sqlite3")
    }
}

/// The relay's key (created at first use) and its machine's hardware id for it.
fn identity(config: &RelayConfig) -> Result<(SigningKey, String), RelayError> {
    let key = SigningKey::load_or_create(&config.key_path()).map_err(RelayError::Key)?;
    let hardware_id = lic4es::engine::airgap::relay_hardware_id(&key.kid);
    Ok((key, hardware_id))
}

/// A grant request of this relay's (`key`, `hardware_id`) for `seats` seats of `license`,
/// with a usage report signed by its key.
fn grant_request(
    key: &SigningKey,
    hardware_id: &str,
    license: &str,
    seats: u32,
    usage: Option<&SiteReport>,
    now: i64,
) -> Result<GrantRequest, RelayError> {
    let usage = usage
        .filter(|r| !r.hours.is_empty())
        .map(|r| key.sign(r))
        .transpose()
        .map_err(RelayError::Key)?;
    let req = GrantRequest {
        license_id: license.to_string(),
        seats,
        hardware_id: hardware_id.to_string(),
        public_key: key.public_jwk(),
        nonce: lic4es::backend::new_nonce(),
        created_at: lic4es::clock::rfc3339(now),
        usage,
    };
    // What the vendor would refuse is refused here, with the same words.
    GrantRequest::parse(&req.to_line()).map_err(|e| RelayError::Config(e.to_string()))
}

/// Writes the grant file (0600, in a 0700 directory), atomically.
fn write_grant(path: &Path, grant: &str) -> Result<(), RelayError> {
    let failed = |e: String| RelayError::GrantFile(path.to_path_buf(), e);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| failed("not a file name".into()))?;
    lic4es::cache::CacheDir::new(dir)
        .write(name, grant)
        .map_err(|e| failed(e.to_string()))
}

/// `license-server relay request`: this relay's grant request for `seats` seats of
/// `license`, with its usage since its current grant (read from its store).
pub fn request(
    config: &RelayConfig,
    license: &str,
    seats: u32,
    now: i64,
) -> Result<GrantRequest, RelayError> {
    let (key, hardware_id) = identity(config)?;
    let since = std::fs::read_to_string(config.grant_path())
        .ok()
        .and_then(|t| Grant::read(&t).ok())
        .map(|g| g.issued_at);
    let report = match since {
        Some(since) if config.store_path().exists() => {
            let store = crate::store::SqliteStore::open(&config.store_path())
                .map_err(|e| RelayError::Store(ServiceError::Invalid(e)))?;
            let hours =
                crate::store::LicenseStore::usage(&store, license, hour_of(since), hour_of(now))
                    .map_err(|e| RelayError::Store(e.into()))?;
            Some(SiteReport::of(license, &hours))
        }
        _ => None,
    };
    grant_request(&key, &hardware_id, license, seats, report.as_ref(), now)
}

/// `license-server relay request --send`: the request sent to `upstream` with the
/// license's API key, and the answer written to the grant file.
pub async fn send(config: &RelayConfig, req: &GrantRequest) -> Result<String, RelayError> {
    let upstream = config.upstream.as_deref().ok_or_else(|| {
        RelayError::Config("sending a grant request needs `upstream` in the config".into())
    })?;
    let answer = upstream::request_grant(upstream, &config.api_key, req).await?;
    Grant::read(&answer.grant).map_err(|e| RelayError::Grant(config.grant_path(), e))?;
    write_grant(&config.grant_path(), &answer.grant)?;
    Ok(answer.expires_at)
}

/// A running relay: its config, its server state (store, seats, key) and its grant.
pub struct Relay {
    config: RelayConfig,
    state: Arc<AppState>,
    /// The relay's key without the grant in its header: it signs usage reports.
    reporter: SigningKey,
    hardware_id: String,
    grant: Mutex<Grant>,
}

impl Relay {
    /// Opens the relay on `clock`: its key, its grant (the grant file's; one that ended is
    /// renewed first when the vendor can be asked), and its store with the grant's
    /// license in it.
    pub async fn open(
        config: RelayConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Relay>, RelayError> {
        let (reporter, hardware_id) = identity(&config)?;
        let signer = SigningKey::load(&config.key_path()).map_err(RelayError::Key)?;
        let path = config.grant_path();
        let now = clock.now_secs();
        let grant = match std::fs::read_to_string(&path) {
            Ok(text) => Grant::read(&text).map_err(|e| RelayError::Grant(path.clone(), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RelayError::NoGrant(path))
            }
            Err(e) => return Err(RelayError::GrantFile(path.clone(), e.to_string())),
        };
        // A grant that ended is renewed before anything is served, when the vendor can be
        // asked; anything else wrong with it stops the relay.
        let checked = grant.check(&reporter.public_x(), &hardware_id, now);
        match &checked {
            Ok(()) => {}
            Err(GrantError::Ended(_)) if config.upstream.is_some() => {}
            Err(e) => return Err(RelayError::Grant(path, e.clone())),
        }
        let state = crate::open_with_keys(
            server_config(&config, &grant)?,
            KeyRing::single(signer),
            clock,
        )
        .map_err(|e| RelayError::Config(e.to_string()))?;
        let relay = Arc::new(Relay {
            config,
            state,
            reporter,
            hardware_id,
            grant: Mutex::new(grant.clone()),
        });
        if checked.is_ok() {
            relay.install(grant).await?;
        } else {
            relay.renew().await?;
        }
        Ok(relay)
    }

    /// The server state the relay serves from.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The grant served.
    pub fn grant(&self) -> Grant {
        self.grant
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serves `grant` from now on: checked, its license's record in the store (seats,
    /// end, tier), the license's API key accepted, and every token's header carrying it.
    async fn install(&self, grant: Grant) -> Result<(), RelayError> {
        let path = self.config.grant_path();
        let now = self.state.now();
        grant
            .check(&self.reporter.public_x(), &self.hardware_id, now)
            .map_err(|e| RelayError::Grant(path.clone(), e))?;
        if grant.issuer != self.state.config.issuer {
            return Err(RelayError::Grant(
                path,
                GrantError::Malformed(format!(
                    "issued by {:?}, not by {:?} as the grant this relay started on",
                    grant.issuer, self.state.config.issuer
                )),
            ));
        }
        let lic = License {
            id: grant.license.clone(),
            tier: grant.tier.clone(),
            org_name: grant.org_name.clone(),
            expires_at: grant.expires_at,
            trial: grant.trial,
            overrides: Overrides {
                seats: Some(Seats::Count(grant.seats)),
                ..Overrides::default()
            },
            ..License::default()
        };
        let audit = AuditEvent {
            at: now,
            kind: AuditKind::RelayGrant,
            license: grant.license.clone(),
            hardware_id: Some(self.hardware_id.clone()),
            source: Some("relay".into()),
            detail: Some(format!(
                "serving grant {} of {} seats until {}",
                lic4es::log::clean(&grant.id),
                grant.seats,
                lic4es::clock::rfc3339(grant.expires_at)
            )),
            ..AuditEvent::default()
        };
        let api_key = self.config.api_key.clone();
        let other = service::store(&self.state, move |st| {
            if !st.insert_license(&lic, now, &audit)? {
                let change = LicenseChange {
                    tier: Some(lic.tier.clone()),
                    org_name: lic.org_name.clone(),
                    expires_at: Some(lic.expires_at),
                    trial: Some(lic.trial),
                    overrides: lic.overrides,
                };
                st.change_license(&lic.id, &change, &audit)?;
            }
            Ok(match st.api_key(&api_key)? {
                None => {
                    st.add_api_key(&lic.id, &api_key, now, &audit)?;
                    None
                }
                Some(r) if r.license_id != lic.id => Some(r.license_id),
                Some(_) => None,
            })
        })
        .await?;
        if let Some(other) = other {
            return Err(RelayError::Config(format!(
                "`api-key` is license {other}'s in this relay's store, not the grant's {}",
                grant.license
            )));
        }
        self.state.key.set_grant(&grant.jwt);
        *self.grant.lock().unwrap_or_else(PoisonError::into_inner) = grant;
        Ok(())
    }

    /// The relay's seat usage since its grant was issued, to the last hour begun: what
    /// its next grant request reports.
    async fn usage(&self) -> Result<SiteReport, RelayError> {
        service::usage::write_refusals(&self.state).await;
        let (license, since) = {
            let g = self.grant();
            (g.license, hour_of(g.issued_at))
        };
        let to = hour_of(self.state.now());
        let of = license.clone();
        let hours = service::store(&self.state, move |st| st.usage(&of, since, to)).await?;
        Ok(SiteReport::of(&license, &hours))
    }

    /// What the relay does once a minute: serves a new grant put in the grant file (an
    /// air-gapped renewal), and, with `upstream`, asks the vendor for the next grant from
    /// half of this one's life. Returns what changed, for the log.
    pub async fn maintain(&self) -> Result<Option<String>, RelayError> {
        let path = self.config.grant_path();
        let current = self.grant();
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim() != current.jwt => {
                let g = Grant::read(&text).map_err(|e| RelayError::Grant(path.clone(), e))?;
                let said = format!("grant {} from {}", g.id, path.display());
                self.install(g).await?;
                return Ok(Some(said));
            }
            _ => {}
        }
        if self.config.upstream.is_none() || !current.due(self.state.now()) {
            return Ok(None);
        }
        self.renew().await.map(Some)
    }

    /// Asks the vendor for the next grant, with the usage since this one, and serves it.
    async fn renew(&self) -> Result<String, RelayError> {
        let path = self.config.grant_path();
        let upstream = self.config.upstream.as_deref().unwrap_or_default();
        let current = self.grant();
        let now = self.state.now();
        let report = self.usage().await?;
        let req = grant_request(
            &self.reporter,
            &self.hardware_id,
            &current.license,
            current.seats,
            Some(&report),
            now,
        )?;
        let answer = upstream::request_grant(upstream, &self.config.api_key, &req).await?;
        let g = Grant::read(&answer.grant).map_err(|e| RelayError::Grant(path.clone(), e))?;
        let said = format!(
            "grant renewed by {upstream} until {} ({} hours of usage reported)",
            answer.expires_at,
            report.hours.len()
        );
        self.install(g).await?;
        write_grant(&path, &answer.grant)?;
        Ok(said)
    }
}

/// The server config a relay runs on: its listener and store, the grant's issuer, no
/// metrics listener, and the tiers' offline paths closed — an engine gets no grace on a
/// relay's token, and a relay grants no borrows, activations or relays of its own.
fn server_config(config: &RelayConfig, grant: &Grant) -> Result<ServerConfig, RelayError> {
    let mut sc: ServerConfig = toml::from_str("").map_err(|e| RelayError::Config(e.to_string()))?;
    sc.listen = config.listen.clone();
    sc.tls_cert = config.tls_cert.clone();
    sc.tls_key = config.tls_key.clone();
    sc.data_dir = config.data_dir.clone();
    sc.database = Some(config.store_path());
    sc.metrics_listen = NO_LISTENER.into();
    sc.issuer = grant.issuer.clone();
    sc.log_level = config.log_level.clone();
    for p in sc.tiers.values_mut() {
        p.offline_grace_days = 0;
        p.offline_activation_days = 0;
        p.max_borrow = Secs(0);
        p.relay_grant_days = 0;
    }
    let policy = sc.tiers.get_mut(&grant.tier).ok_or_else(|| {
        RelayError::Grant(
            config.grant_path(),
            GrantError::Malformed(format!("unknown tier {:?}", grant.tier)),
        )
    })?;
    policy.features = grant.features.clone();
    policy.quotas = grant.quotas.clone();
    Ok(sc)
}

/// How often a running relay looks for a new grant (`Relay::maintain`).
const MAINTAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// `license-server relay`: serves until SIGTERM or Ctrl-C.
pub fn run(config: RelayConfig) -> Result<(), RelayError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RelayError::Serve(e.to_string()))?;
    let listen = config.listen.clone();
    rt.block_on(async move {
        let relay = Relay::open(config, Arc::new(lic4es::clock::SystemClock)).await?;
        let tls = crate::tls::Tls::of_config(&relay.state().config)
            .map_err(|e| RelayError::Config(e.to_string()))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| RelayError::Serve(format!("cannot listen on {listen}: {e}")))?;
        let g = relay.grant();
        // Always written, whatever the log level: supervisors and scripts wait for it.
        eprintln!(
            "license-server relay: listening on {scheme}://{} (grant {}: {} seats of {} until {})",
            listener
                .local_addr()
                .map_err(|e| RelayError::Serve(e.to_string()))?,
            lic4es::log::clean(&g.id),
            g.seats,
            lic4es::log::clean(&g.license),
            lic4es::clock::rfc3339(g.expires_at)
        );
        let keeper = relay.clone();
        let upkeep = crate::jobs::every(
            relay.state(),
            crate::jobs::Job::RelayGrant,
            MAINTAIN_EVERY,
            move |_| {
                let relay = keeper.clone();
                async move { crate::jobs::relay_outcome(relay.maintain().await) }
            },
        );
        let state = relay.state().clone();
        let served = crate::http::serve_all(listener, None, state, tls, crate::http::terminated())
            .await
            .map_err(|e| RelayError::Serve(e.to_string()));
        upkeep.abort();
        relay.state().store.close();
        served
    })
}
