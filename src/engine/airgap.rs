//! Air-gapped activation on this machine (`docs/how-to/air-gapped.md`): the request the
//! site carries to the vendor, the response installed in `cache-dir`, the resolution step
//! that uses it, and its deactivation.
//!
//! The installed token is used like a static token, only here: it must be issued as an
//! activation (`src: "offline"`), name this engine's hardware id and answer its request's
//! nonce, and it runs until its `exp` with no grace. Anywhere else (as `key`, as the token
//! cache) an activation's token is refused.

use std::path::PathBuf;

use super::identity::Identity;
use super::Shared;
use crate::backend::new_nonce;
use crate::cache::{CacheDir, ReadError, WriteError};
use crate::clock::rfc3339;
use crate::config::Config;
use crate::log::redact;
use crate::offline::{ActivationRequest, DeactivationCode, OfflineError};
use crate::token::{Checked, Claims, Policy, Standing, TokenError};

/// The installed activation, in `cache-dir`.
pub const OFFLINE_LICENSE_FILE: &str = "offline-license.jwt";
/// The request waiting for its response, in `cache-dir`.
pub const OFFLINE_REQUEST_FILE: &str = "offline-request.json";

/// The hardware id of an on-site relay on this machine holding the key `kid`: as an
/// engine's, the machine's id with the relay's own in place of an instance id, so a
/// grant node-locked to it does not serve from a copy of the relay's files elsewhere.
pub fn relay_hardware_id(kid: &str) -> String {
    crate::seat::hardware_id(&super::identity::machine_id_or_host(None), kid)
}

/// Why an air-gapped step did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AirgapError {
    /// The request could not be made (a bad license id, say).
    #[error("activation request: {0}")]
    Request(#[from] OfflineError),
    /// `cache-dir` could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// No request is waiting for a response here.
    #[error(
        "no activation request is waiting in {0}: write one with `lic4es activate-offline` \
         and install the vendor's answer to it"
    )]
    NoRequest(PathBuf),
    /// Nothing is installed.
    #[error("no air-gapped activation is installed in {0}")]
    NotInstalled(PathBuf),
    /// The response is not an activation for this engine.
    #[error("the response is refused: {0}")]
    Refused(#[from] TokenError),
}

/// The token policy an engine of `config` judges tokens by.
fn policy_of(config: &Config) -> Policy {
    Policy {
        keys: config.public_keys.clone(),
        issuer: config.issuer.clone(),
        skew_secs: config.clock_skew.as_secs() as i64,
        grace_secs: config.grace_period.as_secs() as i64,
    }
}

/// Writes an activation request for `license_id` (kept in `cache-dir` until its response
/// is installed) and returns it. `machine_id` stands in for `/etc/machine-id` (tests).
pub fn request(
    config: &Config,
    license_id: &str,
    machine_id: Option<&str>,
    now_secs: i64,
) -> Result<ActivationRequest, AirgapError> {
    let cache = CacheDir::new(config.cache_dir.clone());
    let id = Identity::load(config, &cache, machine_id);
    let made = ActivationRequest {
        license_id: license_id.trim().to_string(),
        hardware_id: id.hardware_id,
        instance_id: id.instance_id,
        version: config.product_version.clone(),
        nonce: new_nonce(),
        created_at: rfc3339(now_secs),
    };
    // Checked as the vendor's server will check it.
    let req = ActivationRequest::parse(&made.to_line())?;
    let json = serde_json::to_string_pretty(&req).expect("plain strings serialize");
    cache.write(OFFLINE_REQUEST_FILE, &json)?;
    Ok(req)
}

/// Checks `response` (the vendor's token) against the waiting request and this machine,
/// and installs it. Returns its claims.
pub fn install(
    config: &Config,
    response: &str,
    machine_id: Option<&str>,
    now_secs: i64,
) -> Result<Claims, AirgapError> {
    let cache = CacheDir::new(config.cache_dir.clone());
    let waiting = cache
        .read(OFFLINE_REQUEST_FILE)?
        .ok_or_else(|| AirgapError::NoRequest(config.cache_dir.clone()))?;
    let waiting = ActivationRequest::parse(&waiting)?;
    let id = Identity::load(config, &cache, machine_id);
    let token = response.trim();
    let checked = policy_of(config).check(token, now_secs)?;
    checked
        .claims
        .check_activation(&id.hardware_id, Some(&waiting.nonce))?;
    if checked.standing != Standing::Valid {
        return Err(TokenError::Expired { days: 0 }.into());
    }
    cache.write(OFFLINE_LICENSE_FILE, token)?;
    let _ = cache.remove(OFFLINE_REQUEST_FILE);
    Ok(checked.claims)
}

/// Deletes the installed activation and returns the code the vendor enters to free its
/// seat. Works on an expired activation too (the vendor may still want it closed).
pub fn deactivate(config: &Config) -> Result<DeactivationCode, AirgapError> {
    let cache = CacheDir::new(config.cache_dir.clone());
    let token = cache
        .read(OFFLINE_LICENSE_FILE)?
        .ok_or_else(|| AirgapError::NotInstalled(config.cache_dir.clone()))?;
    let claims = policy_of(config).keys.verify(token.trim())?;
    let (Some(jti), Some(hwid), Some(nonce)) = (&claims.jti, &claims.hwid, &claims.nonce) else {
        return Err(TokenError::MissingClaim("jti").into());
    };
    let code = DeactivationCode::new(jti, hwid, nonce);
    cache
        .remove(OFFLINE_LICENSE_FILE)
        .map_err(|source| WriteError {
            path: cache.path(OFFLINE_LICENSE_FILE),
            source,
        })?;
    Ok(code)
}

impl Shared {
    /// Resolution's step 1b: the installed air-gapped activation, when there is one and it
    /// is this machine's and unexpired. A refused one is left in place (the vendor's
    /// deactivation needs it) and says why.
    pub(super) fn installed_activation(
        &self,
        reasons: &mut Vec<String>,
    ) -> Option<(String, Checked)> {
        let token = match self.cache.read(OFFLINE_LICENSE_FILE) {
            Ok(Some(t)) => t.trim().to_string(),
            Ok(None) => return None,
            Err(e) => {
                self.log
                    .warn(&format!("Air-gapped activation not read: {e}"));
                reasons.push(format!("air-gapped activation not read: {e}"));
                return None;
            }
        };
        const NO_GRACE: &str = "an activation has no grace: ask the vendor for a new one";
        let checked = self
            .policy
            .check(&token, self.now_secs())
            .and_then(|c| {
                c.claims.check_activation(&self.identity_hwid, None)?;
                Ok(c)
            })
            .map_err(|e| match e {
                TokenError::Expired { .. } => format!("{e} ({NO_GRACE})"),
                e => e.to_string(),
            })
            .and_then(|c| match (&c.standing, self.tamper_blocks_the_clock()) {
                (Standing::Valid, None) => Ok(c),
                (_, Some(why)) => Err(why),
                (_, None) => Err(format!("expired on {} ({NO_GRACE})", rfc3339(c.claims.exp))),
            });
        match checked {
            Ok(c) => Some((token, c)),
            Err(e) => {
                self.log.warn(&format!(
                    "Air-gapped activation {} rejected: {e}",
                    redact(&token)
                ));
                reasons.push(format!("air-gapped activation rejected: {e}"));
                None
            }
        }
    }
}
