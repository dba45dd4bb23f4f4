//! What the operations share: config, signing key, the license store and the seat
//! store, the clock, the metrics, and the small caches and flags the server keeps. Plain
//! data: the operations on it are in [`crate::service`].

use std::sync::Arc;

use lic4es::clock::Clock;

use crate::abuse::Flags;
use crate::config::ServerConfig;
use crate::keys::SigningKey;
use crate::metrics::Metrics;
use crate::seats::SeatStore;
use crate::store::{KeyRecord, License, LicenseStore};

/// Everything the operations share.
pub struct AppState {
    /// The config.
    pub config: ServerConfig,
    /// The signing key.
    pub key: SigningKey,
    pub(crate) keyset: lic4es::token::KeySet,
    /// Licenses, keys, telemetry, audit.
    pub store: Arc<dyn LicenseStore>,
    /// Seats.
    pub seats: Arc<dyn SeatStore>,
    /// Server time (replaced in tests, so TTLs and lapses are tested without sleeping).
    pub clock: Arc<dyn Clock>,
    pub(crate) metrics: Metrics,
    /// Licenses flagged for possible offline abuse.
    pub(crate) flags: Flags,
    /// API key lookups, kept briefly so that heartbeats do not query the database.
    pub(crate) keys_seen: KeyCache,
    /// Failed admin sign-ins per client address.
    pub(crate) throttle: crate::throttle::Throttle,
    /// `trusted-proxies`.
    pub(crate) proxies: Vec<ipnet::IpNet>,
    /// `body-timeout-secs`.
    pub(crate) body_timeout: std::time::Duration,
    /// The last audit entry could not be written.
    pub(crate) audit_failing: std::sync::atomic::AtomicBool,
    /// When offline abuse was last judged from the store for a scrape (seconds).
    pub(crate) flags_judged_at: std::sync::atomic::AtomicI64,
    /// The audit trail's writer (group commit).
    pub(crate) audit_writer: crate::store::group_commit::GroupCommit,
    /// Repeated refusals, coalesced before they reach the audit trail.
    pub(crate) refusals: crate::coalesce::Coalescer,
    /// Offline reports without a known session kept per license and hour.
    pub(crate) report_budget: crate::coalesce::ReportBudget,
}

impl AppState {
    /// State over opened stores, a key and a clock.
    pub fn new(
        config: ServerConfig,
        key: SigningKey,
        store: Arc<dyn LicenseStore>,
        seats: Arc<dyn SeatStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let keyset = lic4es::token::KeySet::from_json_value(&key.public_jwks())?;
        let proxies = config.proxies()?;
        let body_timeout = std::time::Duration::from_secs(config.body_timeout_secs);
        Ok(AppState {
            config,
            key,
            keyset,
            audit_writer: crate::store::group_commit::GroupCommit::new(store.clone()),
            store,
            seats,
            clock,
            metrics: Metrics::default(),
            flags: Flags::default(),
            keys_seen: KeyCache::default(),
            throttle: Default::default(),
            proxies,
            body_timeout,
            audit_failing: Default::default(),
            flags_judged_at: Default::default(),
            refusals: Default::default(),
            report_budget: Default::default(),
        })
    }

    /// Seconds since the epoch, by the server's clock.
    pub fn now(&self) -> i64 {
        self.clock.now_secs()
    }
}

/// How long an API key's lookup (its record and license) is reused. Heartbeats of a key
/// then reach the database at most twice a second per instance, and a revocation or tier
/// change made on any instance applies everywhere within this time. A short lifetime was
/// chosen over pub/sub invalidation: nothing is lost when a message is, and the bound on
/// staleness holds even while Redis is away.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_millis(500);
/// Most keys cached; past it the cache starts over (a flood of unknown keys cannot grow it).
const KEY_CACHE_MAX: usize = 100_000;

/// An API key's lookup: its record and its license, as found.
pub(crate) type KeyLookup = (Option<KeyRecord>, Option<License>);

/// API key lookups by key hash, each for [`KEY_CACHE_TTL`].
#[derive(Default)]
pub(crate) struct KeyCache {
    map: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, KeyLookup)>>,
}

impl KeyCache {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (std::time::Instant, KeyLookup)>>
    {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lookup of `hash`, when fresh.
    pub(crate) fn get(&self, hash: &str) -> Option<KeyLookup> {
        let map = self.lock();
        let (at, v) = map.get(hash)?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| v.clone())
    }

    pub(crate) fn put(&self, hash: String, v: KeyLookup) {
        let mut map = self.lock();
        if map.len() >= KEY_CACHE_MAX {
            map.clear();
        }
        map.insert(hash, (std::time::Instant::now(), v));
    }

    /// Forgets everything: this instance changed a license or a key.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
