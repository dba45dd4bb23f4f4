//! Who is asking: the license an API key belongs to, when the key and the license are
//! in good standing.

use crate::app::AppState;
use crate::store::License;

use super::{ServiceError, ServiceResult};

/// Refuses a revoked or expired license.
pub fn standing(lic: &License, now: i64) -> ServiceResult<()> {
    if lic.revoked {
        return Err(ServiceError::LicenseRevoked(lic.id.clone()));
    }
    if lic.expires_at <= now {
        return Err(ServiceError::LicenseExpired(lic.id.clone()));
    }
    Ok(())
}

/// The license `api_key` belongs to, if the key and the license are in good standing.
/// Lookups are reused until a change drops them ([`crate::app::KEY_CACHE_TTL`]).
pub async fn licensed(s: &AppState, api_key: &str) -> ServiceResult<License> {
    let hash = crate::store::hash_key(api_key);
    let (rec, lic) = match s.keys_seen.get(&hash) {
        Ok(found) => found,
        Err(epoch) => {
            let key = api_key.to_string();
            let found = super::store(s, move |st| {
                let rec = st.api_key(&key)?;
                let lic = match &rec {
                    Some(r) => st.license(&r.license_id)?,
                    None => None,
                };
                Ok((rec, lic))
            })
            .await?;
            s.metrics.key_looked_up();
            s.keys_seen.put(hash, found.clone(), epoch);
            found
        }
    };
    let rec = rec.ok_or(ServiceError::UnknownApiKey)?;
    if rec.revoked {
        return Err(ServiceError::ApiKeyRevoked);
    }
    let lic = lic.ok_or(ServiceError::UnknownApiKey)?;
    standing(&lic, s.now())?;
    Ok(lic)
}
