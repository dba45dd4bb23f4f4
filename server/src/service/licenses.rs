//! Licenses and API keys, as operators change them (the admin API and the CLI alike):
//! each operation checks its terms, makes one store call, and is audited once.
//!
//! These are blocking (the license store is); the admin API runs them with
//! [`super::blocking`], the CLI on its own thread.

use lic4es::clock::rfc3339;

use crate::app::AppState;
use crate::config::ServerConfig;
use crate::domain::{LicenseId, NoOtherKeys, Overrides, Tier};
use crate::store::{AuditEvent, AuditKind, License, LicenseChange, Seats};

use super::audit::admin_event;
use super::{ServiceError, ServiceResult};

/// A license to create.
#[derive(Debug, Clone)]
pub struct NewLicense {
    /// Its id.
    pub id: LicenseId,
    /// Its tier.
    pub tier: Tier,
    /// The licensee.
    pub org_name: Option<String>,
    /// Days from now until it expires.
    pub days: i64,
    /// A trial.
    pub trial: bool,
    /// Its own terms over its tier's policy.
    pub overrides: Overrides,
}

impl NewLicense {
    /// A license `id` of `tier` for `days` with the overrides `terms` gives (its own tier
    /// and days are not read: they are the arguments).
    pub fn with_terms(id: LicenseId, tier: Tier, days: i64, terms: Terms) -> NewLicense {
        NewLicense {
            org_name: terms.org_name,
            trial: terms.trial.unwrap_or(false),
            overrides: terms.overrides,
            ..NewLicense::new(id, tier, days)
        }
    }

    /// A license `id` of `tier` for `days`, on its tier's terms.
    pub fn new(id: LicenseId, tier: Tier, days: i64) -> NewLicense {
        NewLicense {
            id,
            tier,
            org_name: None,
            days,
            trial: false,
            overrides: Overrides::default(),
        }
    }
}

/// The terms to change in a license; absent ones stay. Revocation is not among them: a
/// revoked license stays revoked. Also the body of `PATCH /admin/licenses/{id}`: a key it
/// does not know is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Terms {
    /// New tier.
    pub tier: Option<Tier>,
    /// New licensee.
    pub org_name: Option<String>,
    /// New expiry: this many days from now.
    pub days: Option<i64>,
    /// Trial or not.
    pub trial: Option<bool>,
    /// Its own terms over its tier's policy to set.
    #[serde(flatten)]
    pub overrides: Overrides,
    #[serde(flatten, default)]
    pub no_other_keys: NoOtherKeys,
}

/// A license as operators see it: its record and its effective policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LicenseView {
    /// Its id.
    pub license_id: String,
    /// Its tier.
    pub tier: String,
    /// The licensee.
    pub org_name: Option<String>,
    /// Expiry, RFC 3339.
    pub expires_at: String,
    /// A trial.
    pub trial: bool,
    /// Revoked.
    pub revoked: bool,
    /// Seats in effect (`None` when its tier has no policy).
    pub seats: Option<Seats>,
    /// Offline grace days in effect.
    pub offline_grace_days: Option<u64>,
    /// Heartbeat interval in effect (seconds).
    pub heartbeat_interval: Option<u64>,
    /// Air-gapped activation lifetime in effect (days; 0: not allowed).
    pub offline_activation_days: Option<u64>,
    /// Longest borrow in effect (seconds; 0: not allowed).
    pub max_borrow: Option<u64>,
    /// Relay grant lifetime in effect (days; 0: not allowed).
    pub relay_grant_days: Option<u64>,
}

impl LicenseView {
    /// The view of `lic` under `config`'s policies.
    pub fn of(config: &ServerConfig, lic: &License) -> Self {
        let p = config.effective(lic);
        LicenseView {
            license_id: lic.id.clone(),
            tier: lic.tier.clone(),
            org_name: lic.org_name.clone(),
            expires_at: rfc3339(lic.expires_at),
            trial: lic.trial,
            revoked: lic.revoked,
            seats: p.as_ref().map(|p| p.seats),
            offline_grace_days: p.as_ref().map(|p| p.offline_grace_days),
            heartbeat_interval: p.as_ref().map(|p| p.heartbeat_interval),
            offline_activation_days: p.as_ref().map(|p| p.offline_activation_days),
            max_borrow: p.as_ref().map(|p| p.max_borrow),
            relay_grant_days: p.as_ref().map(|p| p.relay_grant_days),
        }
    }
}

/// Checks the terms a license is created or updated with, whichever are given: a tier
/// with a policy, 1 to 36500 days, a heartbeat interval of 1 to 86400 seconds.
pub fn check_terms(
    config: &ServerConfig,
    tier: Option<Tier>,
    days: Option<i64>,
    heartbeat_interval: Option<u64>,
) -> ServiceResult<()> {
    if let Some(t) = tier {
        check_tier(config, t)?;
    }
    if days.is_some_and(|d| !(1..=36_500).contains(&d)) {
        return Err(ServiceError::Invalid("days must be 1 to 36500".into()));
    }
    if heartbeat_interval.is_some_and(|h| !(1..=86_400).contains(&h)) {
        return Err(ServiceError::Invalid(
            "heartbeat interval must be 1 to 86400 seconds".into(),
        ));
    }
    Ok(())
}

/// Checks that `tier` has a policy.
pub fn check_tier(config: &ServerConfig, tier: Tier) -> ServiceResult<()> {
    match config.policy(tier.as_str()) {
        Some(_) => Ok(()),
        None => Err(ServiceError::Invalid(format!(
            "unknown tier `{tier}` (one of: {})",
            config.tiers.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn no_license(id: &str) -> ServiceError {
    ServiceError::NotFound {
        what: "license",
        id: id.to_string(),
    }
}

/// A license or key was changed here: cached key lookups are dropped at once, after the
/// write (a lookup made meanwhile may have cached the old state), so this instance
/// applies the change to its next request.
fn changed(s: &AppState) {
    s.keys_seen.clear();
}

/// The first characters of an API key, enough to tell keys apart in the audit trail.
fn key_prefix(key: &str) -> String {
    format!("key {}…", key.chars().take(9).collect::<String>())
}

/// Creates a license of `spec.tier` for `spec.days`. An existing id is
/// [`ServiceError::LicenseExists`]: a license is never silently replaced (which would
/// also lift its revocation).
pub fn create(s: &AppState, spec: NewLicense, source: &str) -> ServiceResult<License> {
    check_terms(
        &s.config,
        Some(spec.tier),
        Some(spec.days),
        spec.overrides.heartbeat_interval,
    )?;
    let now = s.now();
    let lic = License {
        id: spec.id.into_string(),
        tier: spec.tier.as_str().to_string(),
        org_name: spec.org_name,
        expires_at: now + spec.days * 86_400,
        trial: spec.trial,
        revoked: false,
        overrides: spec.overrides,
    };
    let detail = Some(format!("tier {}", lic.tier));
    let e = admin_event(s, AuditKind::LicenseCreate, &lic.id, source, detail);
    if !s.store.insert_license(&lic, now, &e)? {
        return Err(ServiceError::LicenseExists(lic.id));
    }
    Ok(lic)
}

/// The license `id`.
pub fn get(s: &AppState, id: &LicenseId) -> ServiceResult<License> {
    s.store.license(id)?.ok_or_else(|| no_license(id))
}

/// Changes the given terms of license `id` in one store call (two operators changing
/// different terms at once both see their change kept).
pub fn update(s: &AppState, id: &LicenseId, terms: Terms, source: &str) -> ServiceResult<License> {
    let heartbeat = terms.overrides.heartbeat_interval;
    check_terms(&s.config, terms.tier, terms.days, heartbeat)?;
    let change = LicenseChange {
        expires_at: terms.days.map(|d| s.now() + d * 86_400),
        tier: terms.tier.map(|t| t.as_str().to_string()),
        org_name: terms.org_name,
        trial: terms.trial,
        overrides: terms.overrides,
    };
    let e = admin_event(
        s,
        AuditKind::LicenseUpdate,
        id,
        source,
        Some(describe(&change)),
    );
    apply(s, id, &change, &e)
}

/// Makes `change` to license `id` with its audit entry `e`.
fn apply(
    s: &AppState,
    id: &LicenseId,
    change: &LicenseChange,
    e: &AuditEvent,
) -> ServiceResult<License> {
    let lic = s
        .store
        .change_license(id, change, e)?
        .ok_or_else(|| no_license(id))?;
    changed(s);
    Ok(lic)
}

/// What a change changes, for the audit trail.
fn describe(c: &LicenseChange) -> String {
    let mut out = Vec::new();
    if let Some(t) = &c.tier {
        out.push(format!("tier {t}"));
    }
    if c.org_name.is_some() {
        out.push("org_name".to_string());
    }
    if let Some(e) = c.expires_at {
        out.push(format!("expires {}", rfc3339(e)));
    }
    if let Some(t) = c.trial {
        out.push(format!("trial {t}"));
    }
    let overrides = c.overrides.set().into_iter();
    out.extend(overrides.map(|(name, v)| format!("{name} {v}")));
    out.join(", ")
}

/// Changes license `id`'s tier.
pub fn set_tier(s: &AppState, id: &LicenseId, tier: Tier, source: &str) -> ServiceResult<License> {
    check_tier(&s.config, tier)?;
    let change = LicenseChange {
        tier: Some(tier.as_str().to_string()),
        ..LicenseChange::default()
    };
    let detail = Some(format!("tier {}", tier.as_str()));
    let e = admin_event(s, AuditKind::LicenseTier, id, source, detail);
    apply(s, id, &change, &e)
}

/// Revokes license `id`: its keys, tokens and seats stop working.
pub fn revoke(s: &AppState, id: &LicenseId, source: &str) -> ServiceResult<()> {
    let e = admin_event(s, AuditKind::LicenseRevoke, id, source, None);
    if !s.store.revoke_license(id, &e)? {
        return Err(no_license(id));
    }
    changed(s);
    Ok(())
}

/// A new API key for license `id` (only its hash is stored).
pub fn new_api_key(s: &AppState, id: &LicenseId, source: &str) -> ServiceResult<String> {
    if s.store.license(id)?.is_none() {
        return Err(no_license(id));
    }
    let key = crate::store::new_api_key()?;
    let e = admin_event(
        s,
        AuditKind::ApiKeyCreate,
        id,
        source,
        Some(key_prefix(&key)),
    );
    s.store.add_api_key(id, &key, s.now(), &e)?;
    Ok(key)
}

/// Revokes an API key.
pub fn revoke_api_key(s: &AppState, key: &str, source: &str) -> ServiceResult<()> {
    let not_found = || ServiceError::NotFound {
        what: "API key",
        id: key_prefix(key),
    };
    let rec = s.store.api_key(key)?.ok_or_else(not_found)?;
    let detail = Some(key_prefix(key));
    let e = admin_event(s, AuditKind::ApiKeyRevoke, &rec.license_id, source, detail);
    if !s.store.revoke_api_key(key, &e)? {
        return Err(not_found());
    }
    changed(s);
    Ok(())
}
