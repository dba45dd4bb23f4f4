//! A relay's grant: the vendor-signed token that lets an on-site relay's key sign seat
//! tokens, and the limits it puts on them.

use super::{src, Claims, TokenError};
use crate::tier::Tier;

/// The header member of a relay's token that carries its grant, the vendor-signed token
/// that lets the relay's key sign (the way `x5c` carries a certificate chain).
pub const GRANT_HEADER: &str = "lic4es_grant";

/// What a relay's grant allows, as the vendor signed it: a relay-signed token counts only
/// within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayGrant {
    /// The relay key's id.
    pub kid: String,
    /// The license.
    pub sub: String,
    /// The highest tier.
    pub tier: Tier,
    /// The grant's end: no relay token outlives it.
    pub exp: i64,
    /// Seats the relay may hold at once.
    pub seats: u32,
    /// The relay machine's hardware id.
    pub hwid: Option<String>,
}

impl RelayGrant {
    /// Holds a relay's token to its grant: a seat token of the grant's license and issuer,
    /// no higher tier, ending no later than the grant and with no grace after it; what it
    /// entitles to (features, quotas, the licensee, trial and platform) is the grant's,
    /// whatever the relay wrote.
    pub fn limit(&self, claims: &mut Claims, grant: &Claims) -> Result<(), TokenError> {
        let refuse = |why: String| Err(TokenError::Relay(why));
        if claims.iss != grant.iss {
            return refuse("its issuer is not its grant's".into());
        }
        if claims.sub != self.sub {
            return refuse(format!(
                "it names license `{}`, its grant `{}`",
                claims.sub, self.sub
            ));
        }
        if claims.tier > self.tier || claims.unknown_tier.is_some() {
            return refuse(format!(
                "its tier is above its grant's ({})",
                self.tier.as_str()
            ));
        }
        if claims.exp > self.exp {
            return refuse(format!(
                "it runs past its grant's end ({})",
                crate::clock::rfc3339(self.exp)
            ));
        }
        if claims.src.as_deref() != Some(src::SEAT) {
            return refuse("a relay issues seat tokens only".into());
        }
        claims.grace_days = Some(0);
        claims.features = grant.features.clone();
        claims.quotas = grant.quotas.clone();
        claims.org_name = grant.org_name.clone();
        claims.trial = grant.trial;
        claims.platform = grant.platform.clone();
        claims.lic_exp = Some(grant.lic_exp.unwrap_or(grant.exp).min(self.exp));
        claims.refresh_url = None;
        claims.relay = Some(self.clone());
        Ok(())
    }
}
