//! Issuing tokens: short-lived ones for API-key clients, long-lived static ones, and
//! seat tokens bound to a session and a machine.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::http::ApiError;
use crate::store::License;

/// How long a token runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The tier's token lifetime (never past the license's expiry).
    Short,
    /// Until the license expires (static tokens and their refreshes).
    LicenseEnd,
    /// Until this instant (never past the license's expiry); seat tokens.
    Until(i64),
}

/// What goes into a token besides the license.
#[derive(Debug, Clone, Copy)]
pub struct TokenSpec<'a> {
    /// The request's nonce, echoed.
    pub nonce: Option<&'a str>,
    /// Where a static token is refreshed.
    pub refresh_url: Option<&'a str>,
    /// How long it runs.
    pub lifetime: Lifetime,
    /// Seat tokens: the session.
    pub sid: Option<&'a str>,
    /// Seat tokens: the hardware id.
    pub hwid: Option<&'a str>,
    /// The longest grace an engine may give the token after its `exp`, in days.
    pub grace_days: Option<i64>,
}

impl Default for TokenSpec<'_> {
    fn default() -> Self {
        TokenSpec {
            nonce: None,
            refresh_url: None,
            lifetime: Lifetime::Short,
            sid: None,
            hwid: None,
            grace_days: None,
        }
    }
}

impl AppState {
    /// Signs a token for `lic`; returns it with its `exp`.
    pub fn issue(&self, lic: &License, spec: TokenSpec<'_>) -> Result<(String, i64), ApiError> {
        let now = self.now();
        let policy = self
            .config
            .effective(lic)
            .ok_or_else(|| crate::http::seats::unknown_tier(lic))?;
        let exp = match spec.lifetime {
            Lifetime::Short => now.saturating_add(policy.token_lifetime),
            Lifetime::LicenseEnd => lic.expires_at,
            Lifetime::Until(t) => t,
        }
        .min(lic.expires_at);
        let mut claims = json!({
            "iss": self.config.issuer,
            "sub": lic.id,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "tier": lic.tier,
            "features": policy.features,
            "quotas": policy.quotas,
            "jti": uuid::Uuid::new_v4().to_string(),
            "org_name": lic.org_name,
            "trial": lic.trial,
        });
        for (name, value) in [
            ("nonce", spec.nonce),
            ("refresh_url", spec.refresh_url),
            ("sid", spec.sid),
            ("hwid", spec.hwid),
        ] {
            if let Some(v) = value {
                claims[name] = Value::from(v);
            }
        }
        if let Some(d) = spec.grace_days {
            claims["grace_days"] = Value::from(d);
        }
        let jwt = self
            .key
            .sign(&claims)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "signing_failed", e))?;
        self.metrics.token_issued(&lic.tier);
        Ok((jwt, exp))
    }

    /// A static token for `lic` (no nonce), optionally with a `refresh_url` (`default`
    /// names this server's refresh endpoint).
    pub fn issue_static(
        &self,
        lic: &License,
        refresh_url: Option<&str>,
    ) -> Result<(String, i64), ApiError> {
        let url = refresh_url.map(|u| {
            if u == "default" {
                format!(
                    "{}{}",
                    self.config.public_url(),
                    lic4es::protocol::paths::REFRESH
                )
            } else {
                u.to_string()
            }
        });
        self.issue(
            lic,
            TokenSpec {
                refresh_url: url.as_deref(),
                lifetime: Lifetime::LicenseEnd,
                ..TokenSpec::default()
            },
        )
    }
}
