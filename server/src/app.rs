//! What every handler shares: config, signing key, the license store and the seat
//! store, the clock, and the metrics.

use std::sync::Arc;

use lic4es::clock::Clock;

use crate::abuse::{self, Flags, Verdict};
use crate::config::ServerConfig;
use crate::http::metrics::Metrics;
use crate::http::ApiError;
use crate::keys::SigningKey;
use crate::seats::{SeatStore, Session};
use crate::store::{AuditEvent, KeyRecord, License, LicenseStore, OfflinePeriod, StoreError};
use lic4es::protocol::codes;

/// Everything the handlers share.
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
    /// Print one line per request to stderr (`access-log`).
    pub access_log: bool,
    /// Failed admin sign-ins per client address.
    pub(crate) throttle: crate::throttle::Throttle,
    /// `trusted-proxies`.
    pub(crate) proxies: Vec<ipnet::IpNet>,
    /// `body-timeout-secs`.
    pub(crate) body_timeout: std::time::Duration,
    /// The last audit entry could not be written.
    audit_failing: std::sync::atomic::AtomicBool,
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
        let access_log = config.access_log;
        Ok(AppState {
            config,
            key,
            keyset,
            store,
            seats,
            clock,
            metrics: Metrics::default(),
            flags: Flags::default(),
            keys_seen: KeyCache::default(),
            access_log,
            throttle: Default::default(),
            proxies,
            body_timeout,
            audit_failing: Default::default(),
        })
    }

    /// Seconds since the epoch, by the server's clock.
    pub fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    /// Runs blocking store work on tokio's blocking pool, off the request threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn LicenseStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(e) => Err(ApiError::from(StoreError::Unavailable(e.to_string()))),
        }
    }

    /// Creates a license of `tier` for `days` and returns it. An existing id is
    /// [`LicenseError::Exists`]: a license is never silently replaced (which would also
    /// lift its revocation).
    pub fn create_license(&self, spec: NewLicense) -> Result<License, LicenseError> {
        check_license_id(&spec.id).map_err(LicenseError::Invalid)?;
        check_tier(&self.config, &spec.tier).map_err(LicenseError::Invalid)?;
        let now = self.now();
        let lic = License {
            id: spec.id,
            tier: spec.tier,
            org_name: spec.org_name,
            expires_at: now + spec.days * 86_400,
            trial: spec.trial,
            revoked: false,
            seats: spec.seats,
            offline_grace_days: spec.offline_grace_days,
            heartbeat_interval: spec.heartbeat_interval,
        };
        if self.store.insert_license(&lic, now)? {
            Ok(lic)
        } else {
            Err(LicenseError::Exists(lic.id))
        }
    }

    /// Creates an API key for license `id`.
    pub fn new_api_key(&self, id: &str) -> Result<String, String> {
        self.store
            .create_api_key(id, self.now())
            .map_err(|e| e.to_string())
    }

    /// Appends to the audit trail; a failure is logged and fails nothing else (for
    /// entries that record what already happened: a refusal, a release, a lapse).
    pub async fn audit(&self, event: AuditEvent) {
        let _ = self.audit_required(event).await;
    }

    /// Appends to the audit trail, or answers 503: for entries without which the
    /// request must not succeed (a seat granted, a token renewed). A failure also turns
    /// `/healthz` to 503 until an entry is written again.
    pub async fn audit_required(&self, event: AuditEvent) -> Result<(), ApiError> {
        let kind = event.kind.clone();
        match self.blocking(move |s| s.append_audit(&event)).await {
            Ok(()) => {
                self.audit_failing
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.audit_failing
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                crate::log::error(&format!("audit entry `{kind}` not written: {}", e.message));
                Err(ApiError::new(
                    e.status,
                    codes::STORE_UNAVAILABLE,
                    format!("the audit trail cannot be written: {}", e.message),
                ))
            }
        }
    }

    /// Whether the last audit entry could not be written (and none has been since).
    pub fn audit_failing(&self) -> bool {
        self.audit_failing
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An audit entry for a seat event of `s`.
    pub fn seat_event(&self, kind: &str, s: &Session, source: Option<String>) -> AuditEvent {
        AuditEvent {
            id: 0,
            at: self.now(),
            kind: kind.into(),
            license: s.license.clone(),
            session_id: Some(s.id.clone()),
            hardware_id: Some(s.hardware_id.clone()),
            instance_id: Some(s.instance_id.clone()),
            source,
            detail: None,
        }
    }

    /// Audits the lapses the seat store found and keeps each as an offline period.
    /// Runs periodically and before sessions are shown.
    pub async fn sweep(&self) {
        if let Ok(lapsed) = self.seats.take_lapsed().await {
            for s in lapsed {
                let mut e = self.seat_event("lapse", &s, None);
                e.at = s.last_seen.saturating_add(s.ttl);
                e.detail = s
                    .offline_until
                    .map(|u| format!("offline until {}", lic4es::clock::rfc3339(u)));
                self.audit(e).await;
                let start = s.offline_since.unwrap_or(s.last_seen);
                self.note_offline(OfflinePeriod {
                    license: s.license,
                    session_id: s.id,
                    start,
                    end: s.offline_until.unwrap_or(start).max(start),
                    ended: false,
                })
                .await;
            }
        }
    }

    /// Keeps an offline period and judges its license again; WARNs when that flags it.
    /// A failure is logged: the period is lost, the request it came with is not.
    pub async fn note_offline(&self, p: OfflinePeriod) {
        let license = p.license.clone();
        let now = self.now();
        let from = now - abuse::WINDOW_SECS;
        let looked = license.clone();
        let found = self
            .blocking(move |s| {
                s.record_offline(&p)?;
                s.offline_periods(Some(&looked), from)
            })
            .await;
        match found {
            Ok(periods) => {
                let periods: Vec<_> = periods.iter().map(|p| p.at(now)).collect();
                let v = abuse::judge(&periods, now);
                if self.flags.note(&license, &v) {
                    crate::log::warn(&abuse::message(&license, &v));
                }
            }
            Err(e) => crate::log::error(&format!(
                "offline period of {license} not kept: {}",
                e.message
            )),
        }
    }

    /// Every license with offline periods in the last 30 days and the rule's verdict,
    /// in license order; WARNs about licenses that became flagged.
    pub async fn offline_report(&self) -> Result<Vec<(String, Verdict)>, ApiError> {
        let now = self.now();
        let from = now - abuse::WINDOW_SECS;
        let periods = self
            .blocking(move |s| s.offline_periods(None, from))
            .await?;
        let all = abuse::judge_each(periods.iter().map(|p| (p.license.as_str(), p.at(now))), now);
        for (license, v) in self.flags.note_all(&all) {
            crate::log::warn(&abuse::message(license, v));
        }
        Ok(all)
    }

    /// Drops audit entries past `audit-retention-days`, telemetry past
    /// `telemetry-retention-days` and offline periods past the abuse rule's 30 days.
    pub async fn prune_old(&self) {
        let days = |d: u64| (d.min(100_000) as i64) * 86_400;
        let before = self.now() - days(self.config.audit_retention_days);
        let _ = self.blocking(move |s| s.prune_audit(before)).await;
        let before = self.now() - days(self.config.telemetry_retention_days);
        let _ = self.blocking(move |s| s.prune_telemetry(before)).await;
        // Offline periods matter to the abuse rule's 30 days only.
        let before = self.now() - abuse::WINDOW_SECS;
        let _ = self.blocking(move |s| s.prune_offline(before)).await;
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

/// A license to create.
#[derive(Debug, Clone, Default)]
pub struct NewLicense {
    /// Its id.
    pub id: String,
    /// Its tier.
    pub tier: String,
    /// The licensee.
    pub org_name: Option<String>,
    /// Days from now until it expires.
    pub days: i64,
    /// A trial.
    pub trial: bool,
    /// Seats, overriding the tier's.
    pub seats: Option<crate::store::Seats>,
    /// Offline grace days, overriding the tier's.
    pub offline_grace_days: Option<u32>,
    /// Heartbeat interval (seconds), overriding the tier's.
    pub heartbeat_interval: Option<u64>,
}

/// Why a license could not be created or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// A license with this id exists.
    #[error("license `{0}` exists; change it with an explicit update")]
    Exists(String),
    /// The request is not acceptable (bad id, unknown tier).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest license id.
pub const MAX_LICENSE_ID: usize = 128;

/// Checks a license id: 1 to 128 of `A-Z a-z 0-9 . _ -`. Ids end up in tokens, URLs,
/// metrics labels and Redis keys, so nothing else is let in.
pub fn check_license_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_LICENSE_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "license id must be 1 to {MAX_LICENSE_ID} characters of A-Z, a-z, 0-9, `.`, `_` and `-`"
        ))
    }
}

/// Checks the terms a license is created or updated with, whichever are given: a tier
/// with a policy, 1 to 36500 days, a heartbeat interval of 1 to 86400 seconds.
pub fn check_terms(
    config: &ServerConfig,
    tier: Option<&str>,
    days: Option<i64>,
    heartbeat_interval: Option<u64>,
) -> Result<(), String> {
    if let Some(t) = tier {
        check_tier(config, t)?;
    }
    if days.is_some_and(|d| !(1..=36_500).contains(&d)) {
        return Err("days must be 1 to 36500".into());
    }
    if heartbeat_interval.is_some_and(|h| !(1..=86_400).contains(&h)) {
        return Err("heartbeat interval must be 1 to 86400 seconds".into());
    }
    Ok(())
}

/// Checks that `tier` has a policy.
pub fn check_tier(config: &ServerConfig, tier: &str) -> Result<(), String> {
    match config.policy(tier) {
        Some(_) => Ok(()),
        None => Err(format!(
            "unknown tier `{tier}` (one of: {})",
            config.tiers.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
    }
}
