//! Talking to the backend: building request bodies, accepting the tokens that come back,
//! recording what was sent for the status, and caching fetched tokens.

use serde::Serialize;

use super::{lock, RefreshRecord, Shared};
use crate::backend::{new_nonce, Backend, BackendError, TokenReply};
use crate::cache::TOKEN_FILE;
use crate::clock::rfc3339_millis;
use crate::protocol::{RefreshRequest, TokenRequest};
use crate::token::{Checked, Claims, Standing, TokenError};

/// Why a seat-counted license gives Community with `seat.enabled: false`.
pub(super) const SEAT_REQUIRED_REASON: &str = "the license is counted in seats; seat mode is off";

/// Logged when `seat.enabled: "auto"` meets a seat-counted license.
pub(super) const SEAT_AUTO_MESSAGE: &str =
    "The license is counted in seats; acquiring a seat (seat.enabled: auto)";

/// A failed exchange, typed for the place that decides what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// The key or license was revoked: Community at once.
    Revoked(String),
    /// Every seat is in use (the backend's message, and its `Retry-After` in seconds).
    NoSeats(String, Option<u64>),
    /// The backend no longer knows the seat session.
    SessionGone,
    /// The license is counted in seats: it is served only with a seat.
    SeatRequired(String),
    /// An answer came, but its token is not acceptable.
    Rejected(String),
    /// The backend could not be reached, timed out, failed, or answered off-protocol.
    Transient(String),
}

impl Failure {
    /// Words for the log and the status.
    pub(super) fn reason(&self) -> String {
        match self {
            Failure::Revoked(m) | Failure::NoSeats(m, _) => m.clone(),
            Failure::SeatRequired(_) => SEAT_REQUIRED_REASON.to_string(),
            Failure::SessionGone => BackendError::SessionGone.to_string(),
            Failure::Rejected(m) | Failure::Transient(m) => m.clone(),
        }
    }
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Revoked { code, message } => Failure::Revoked(format!(
                "{} ({code})",
                if message.is_empty() {
                    "license revoked".to_string()
                } else {
                    message
                }
            )),
            BackendError::NoSeats {
                message,
                retry_after_secs,
            } => Failure::NoSeats(message, retry_after_secs),
            BackendError::SessionGone => Failure::SessionGone,
            BackendError::SeatRequired(m) => Failure::SeatRequired(m),
            e => Failure::Transient(e.to_string()),
        }
    }
}

impl Shared {
    /// The HTTP client, created on first use so that a static token without a
    /// `refresh_url` never builds one.
    pub(super) fn client<'a>(
        &self,
        backend: &'a mut Option<Backend>,
    ) -> Result<&'a Backend, Failure> {
        if backend.is_none() {
            *backend =
                Some(Backend::new(&self.config).map_err(|e| Failure::Transient(e.to_string()))?);
        }
        backend
            .as_ref()
            .ok_or_else(|| Failure::Transient("no HTTP client".into()))
    }

    pub(super) fn instance_id(&self) -> String {
        lock(&self.state).instance_id.clone()
    }

    fn token_request(&self) -> TokenRequest {
        TokenRequest {
            instance_id: self.instance_id(),
            version: self.config.product_version.clone(),
            nonce: new_nonce(),
            uptime_hours: self.uptime_hours(),
            telemetry: self.usage.snapshot(&self.config.telemetry),
        }
    }

    /// Verifies a token and applies the seat binding rule (`docs/reference/protocol.md`) for this engine.
    pub(super) fn check_token(&self, token: &str) -> Result<Checked, TokenError> {
        let checked = self.policy.check(token, self.now_secs())?;
        checked
            .claims
            .check_binding(self.hardware_id.get().map(String::as_str))?;
        checked.claims.check_not_activation()?;
        Ok(checked)
    }

    /// Fetches a token with the API key (`docs/reference/protocol.md`) and caches it.
    pub(super) async fn fetch(
        &self,
        backend: &mut Option<Backend>,
        api_key: &str,
    ) -> Result<(String, Checked), Failure> {
        let req = self.token_request();
        let outcome = match self.client(backend) {
            Ok(client) => match client.fetch_token(api_key, &req).await {
                Ok(reply) => self
                    .accept_reply(reply, &req.nonce)
                    .inspect(|(jwt, checked)| {
                        self.write_cache(jwt, &checked.claims);
                    }),
                Err(e) => Err(Failure::from(e)),
            },
            Err(e) => Err(e),
        };
        self.record_exchange(&req, &outcome);
        outcome
    }

    /// POSTs to a static token's `refresh_url`; `Ok(None)` when the backend says the
    /// token is unchanged (204). Nothing is cached: the configured token stays the source
    /// of truth across restarts.
    pub(super) async fn refresh_static(
        &self,
        backend: &mut Option<Backend>,
        refresh_url: &str,
        current: &str,
        license_id: &str,
    ) -> Result<Option<(String, Checked)>, Failure> {
        let req = RefreshRequest {
            license_id: license_id.to_string(),
            client: self.token_request(),
        };
        let outcome = match self.client(backend) {
            Ok(client) => match client.refresh_static(refresh_url, current, &req).await {
                Ok(Some(reply)) => self.accept_reply(reply, &req.client.nonce).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(Failure::from(e)),
            },
            Err(e) => Err(e),
        };
        self.record_exchange(&req, &outcome);
        outcome
    }

    fn accept_reply(&self, reply: TokenReply, nonce: &str) -> Result<(String, Checked), Failure> {
        if let Some(m) = &reply.message {
            self.log.info(m);
        }
        let checked = self.accept_token(&reply.jwt, nonce)?;
        Ok((reply.jwt, checked))
    }

    /// A token just received must be valid now (not merely in grace), bound to this
    /// engine, and answer this request's nonce: a token without it, or with another
    /// request's, could be a replay of someone else's answer. Behind `relay-url` it must
    /// also come from a relay through the vendor's grant: a vendor-signed token comes only
    /// from the vendor's (in a pinned build, the pinned) server.
    pub(super) fn accept_token(&self, jwt: &str, nonce: &str) -> Result<Checked, Failure> {
        let checked = self
            .check_token(jwt)
            .map_err(|e| Failure::Rejected(format!("the returned license was rejected: {e}")))?;
        if self.config.relay_only && checked.claims.relay.is_none() {
            return Err(Failure::Rejected(
                "the returned license was rejected: relay-url takes only a relay's tokens, and \
                 the vendor signed this one directly"
                    .into(),
            ));
        }
        if checked.standing != Standing::Valid {
            return Err(Failure::Rejected(
                "the backend returned an expired license".into(),
            ));
        }
        match checked.claims.nonce.as_deref() {
            Some(n) if n == nonce => {
                self.backend_answered();
                Ok(checked)
            }
            Some(_) => Err(Failure::Rejected(
                "the returned license answers another request (nonce mismatch)".into(),
            )),
            None => Err(Failure::Rejected(
                "the returned license carries no nonce, so it may answer another request".into(),
            )),
        }
    }

    /// Keeps the body sent and the outcome for the status, so an operator sees exactly
    /// what left the machine.
    pub(super) fn record_exchange<T>(&self, body: &impl Serialize, outcome: &Result<T, Failure>) {
        let body = serde_json::to_value(body).unwrap_or_default();
        let mut st = lock(&self.state);
        st.last_telemetry = Some(body);
        st.last_refresh = Some(RefreshRecord {
            at: rfc3339_millis(self.now_millis()),
            ok: outcome.is_ok(),
            error: outcome.as_ref().err().map(Failure::reason),
        });
    }

    /// Writes the token to the cache unless the cache holds an acceptable one that
    /// expires later (another process sharing the directory may have written it).
    pub(super) fn write_cache(&self, token: &str, claims: &Claims) {
        if let Ok(Some(existing)) = self.cache.read(TOKEN_FILE) {
            if let Ok(c) = self.check_token(existing.trim()) {
                if c.claims.exp > claims.exp {
                    self.log
                        .debug("License cache kept: it holds a license that expires later");
                    return;
                }
            }
        }
        if let Err(e) = self.cache.write(TOKEN_FILE, token) {
            self.log.warn(&format!(
                "License cache not written ({e}); carrying on in memory"
            ));
        }
    }
}
