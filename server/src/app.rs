//! What the operations share: config, signing key, the license store and the seat
//! store, the clock, the metrics, and the small caches and flags the server keeps. Plain
//! data: the operations on it are in [`crate::service`].

use std::sync::Arc;

use lic4es::clock::Clock;

use crate::abuse::Flags;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::seats::SeatStore;
use crate::signing::{KeyRing, SigningKey};
use crate::store::{KeyRecord, License, LicenseStore};

/// Everything the operations share.
pub struct AppState {
    /// The config.
    pub config: ServerConfig,
    /// The signing key.
    pub key: SigningKey,
    /// Every public key published (the signing one, the next, the retired: [`KeyRing`]).
    pub jwks: serde_json::Value,
    /// The same keys, to verify the static tokens presented for a refresh.
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
    pub(crate) audit_writer: crate::store::audit_writer::AuditWriter,
    /// Repeated refusals, coalesced before they reach the audit trail.
    pub(crate) refusals: crate::coalesce::Coalescer,
    /// Offline reports without a known session kept per license and hour.
    pub(crate) report_budget: crate::coalesce::ReportBudget,
    /// Refusals for want of a seat not yet added to seat usage, per license and hour.
    pub(crate) refusals_unwritten:
        std::sync::Mutex<std::collections::BTreeMap<(String, i64), crate::usage::HourUsage>>,
}

impl AppState {
    /// State over opened stores, the server's keys and a clock.
    pub fn new(
        config: ServerConfig,
        keys: KeyRing,
        store: Arc<dyn LicenseStore>,
        seats: Arc<dyn SeatStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let jwks = keys.public_jwks();
        let keyset = lic4es::token::KeySet::from_json_value(&jwks)?;
        let key = keys.active;
        let proxies = config.proxies()?;
        let body_timeout = std::time::Duration::from_secs(config.body_timeout_secs);
        Ok(AppState {
            config,
            key,
            jwks,
            keyset,
            audit_writer: crate::store::audit_writer::AuditWriter::new(store.clone()),
            store,
            seats,
            clock,
            metrics: Metrics::default(),
            flags: Flags::default(),
            keys_seen: KeyCache::new(),
            throttle: Default::default(),
            proxies,
            body_timeout,
            audit_failing: Default::default(),
            flags_judged_at: Default::default(),
            refusals: Default::default(),
            report_budget: Default::default(),
            refusals_unwritten: Default::default(),
        })
    }

    /// Seconds since the epoch, by the server's clock.
    pub fn now(&self) -> i64 {
        self.clock.now_secs()
    }
}

/// How long an API key's lookup (its record and license) is reused at most. Changes
/// reach the cache sooner: every operator's change moves the store's counter
/// ([`crate::store::LicenseStore::changes`]), which each instance reads every
/// [`CHANGES_POLL`] and, when it moved, drops every cached lookup. So a heartbeat looks
/// its key up in the database once per ten minutes at most, not per beat, and a
/// revocation or tier change made on any instance applies everywhere within a second.
/// The lifetime is the bound for what the counter does not see (a row changed by hand).
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// How often the store's change counter is read.
pub const CHANGES_POLL: std::time::Duration = std::time::Duration::from_millis(500);
/// Most keys cached; past it the cache starts over (a flood of unknown keys cannot grow it).
const KEY_CACHE_MAX: usize = 250_000;

/// An API key's lookup: its record and its license, as found.
pub(crate) type KeyLookup = (Option<KeyRecord>, Option<License>);

/// API key lookups by key hash, each for [`KEY_CACHE_TTL`] unless a change drops them.
#[derive(Default)]
pub(crate) struct KeyCache {
    map: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, KeyLookup)>>,
    /// Moves whenever the cache is dropped: a lookup begun before that is not cached.
    epoch: std::sync::atomic::AtomicU64,
    /// The store's change counter last seen (`i64::MIN` before the first reading).
    changes: std::sync::atomic::AtomicI64,
}

impl KeyCache {
    pub(crate) fn new() -> KeyCache {
        KeyCache {
            changes: std::sync::atomic::AtomicI64::new(i64::MIN),
            ..KeyCache::default()
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (std::time::Instant, KeyLookup)>>
    {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lookup of `hash`, when fresh; else the epoch to pass to [`KeyCache::put`].
    pub(crate) fn get(&self, hash: &str) -> Result<KeyLookup, u64> {
        let epoch = self.epoch.load(std::sync::atomic::Ordering::Acquire);
        let map = self.lock();
        match map.get(hash) {
            Some((at, v)) if at.elapsed() < KEY_CACHE_TTL => Ok(v.clone()),
            _ => Err(epoch),
        }
    }

    /// Caches a lookup begun at `epoch`, unless the cache was dropped since (the lookup
    /// may have read what the change replaced).
    pub(crate) fn put(&self, hash: String, v: KeyLookup, epoch: u64) {
        let mut map = self.lock();
        if self.epoch.load(std::sync::atomic::Ordering::Acquire) != epoch {
            return;
        }
        if map.len() >= KEY_CACHE_MAX {
            map.clear();
        }
        map.insert(hash, (std::time::Instant::now(), v));
    }

    /// Forgets everything: a license or a key changed.
    pub(crate) fn clear(&self) {
        let mut map = self.lock();
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        map.clear();
    }

    /// The store's change counter, read: when it moved since the last reading (another
    /// instance, or the CLI, changed something), everything is forgotten.
    pub(crate) fn observe_changes(&self, n: i64) {
        let seen = self.changes.swap(n, std::sync::atomic::Ordering::AcqRel);
        if seen != n && seen != i64::MIN {
            self.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_begun_before_a_change_is_not_cached_and_a_moved_counter_drops_all() {
        let c = KeyCache::new();
        let epoch = c.get("k").unwrap_err();
        c.put("k".into(), (None, None), epoch);
        assert!(c.get("k").is_ok());
        // A change lands while another lookup is under way: that one is not kept.
        let begun = c.get("other").unwrap_err();
        c.clear();
        c.put("other".into(), (None, None), begun);
        assert!(c.get("other").is_err());
        assert!(c.get("k").is_err(), "cleared");
        // The counter: its first reading drops nothing; a move drops everything.
        let epoch = c.get("k").unwrap_err();
        c.put("k".into(), (None, None), epoch);
        c.observe_changes(7);
        assert!(c.get("k").is_ok());
        c.observe_changes(7);
        assert!(c.get("k").is_ok());
        c.observe_changes(8);
        assert!(c.get("k").is_err());
    }
}
