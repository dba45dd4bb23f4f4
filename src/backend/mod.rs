//! The license backend client: token fetch, static refresh, and the seat exchanges.
//!
//! Every request is bounded: connect and read timeouts, no redirects, and a 64 KiB cap
//! on the response body. Each client carries its own rustls provider, so nothing is
//! installed process-wide in a host that may unload the library. Bodies are the types of
//! [`crate::protocol`]; failures come back typed ([`BackendError`]), so the engine decides
//! on variants, never on message text.
//!
//! Here: the calls, each URL in turn. `client` builds the HTTP clients (proxy, trust
//! anchors), `answer` reads what comes back.

mod answer;
mod client;

pub use answer::{error_for_status, parse_any_answer};
use answer::{
    parse_answer, parse_token_reply, read_capped, retry_after_secs, transport_error, Reply,
};
pub use client::http_client;
use client::{direct_client, remote_client, Trust};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use url::Url;

use crate::config::{check_backend_url, Config};
use crate::protocol::{
    paths, AcquireAnswer, AcquireRequest, BorrowAnswer, BorrowRequest, HeartbeatAnswer,
    HeartbeatRequest, ReconnectRequest, RefreshRequest, ReleaseRequest, ReturnBorrowRequest,
    TokenRequest,
};

/// Largest response body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a backend call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The URL breaks the https rule or cannot be built.
    #[error("bad backend URL: {0}")]
    BadUrl(String),
    /// The client could not be built.
    #[error("HTTP client setup failed: {0}")]
    Setup(String),
    /// TCP or TLS connection failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The endpoint.
        url: String,
        /// Why.
        reason: String,
    },
    /// A timeout elapsed.
    #[error("timed out talking to {0}")]
    Timeout(String),
    /// Any other transport error.
    #[error("request to {url} failed: {reason}")]
    Transport {
        /// The endpoint.
        url: String,
        /// Why.
        reason: String,
    },
    /// The body exceeded [`MAX_BODY_BYTES`].
    #[error("response body over the 64 KiB limit")]
    TooLarge,
    /// The key or license was revoked (401/403 with a revocation code).
    #[error("revoked ({code}): {message}")]
    Revoked {
        /// `api_key_revoked` or `license_revoked`.
        code: String,
        /// The backend's message.
        message: String,
    },
    /// `403 no_seats_available`: every seat of the license is in use.
    #[error("no seat available: {message}")]
    NoSeats {
        /// The backend's message.
        message: String,
        /// The answer's `Retry-After` (seconds), if it had one.
        retry_after_secs: Option<u64>,
    },
    /// `403 seat_required`: the license is counted in seats; the token endpoint does not
    /// serve it.
    #[error("the license is counted in seats: {0}")]
    SeatRequired(String),
    /// `403 borrow_not_allowed`: the license's policy allows no borrowing.
    #[error("the license allows no borrowing: {0}")]
    BorrowNotAllowed(String),
    /// A heartbeat answered 404 or 410: the server no longer knows the session.
    #[error("the license server ended the seat session")]
    SessionGone,
    /// 401 without revocation.
    #[error("unauthorized ({code}): {message}")]
    Unauthorized {
        /// The backend's `error`.
        code: String,
        /// The backend's message.
        message: String,
    },
    /// Any other status.
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// A 200 whose body is not what the protocol says.
    #[error("malformed response: {0}")]
    Malformed(String),
}

impl BackendError {
    /// Whether this failure revokes the license.
    pub fn is_revocation(&self) -> bool {
        matches!(self, BackendError::Revoked { .. })
    }
}

/// A successful token fetch or refresh: an answer that carries a token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenReply {
    /// The token.
    pub jwt: String,
    /// Seconds until it expires, as the backend says.
    pub expires_in: Option<i64>,
    /// A message for the operator.
    pub message: Option<String>,
}

/// A fresh nonce: 32 random hex characters.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
/// An HTTP client bound to the backend's base URLs (`api-url`, one or a list).
#[derive(Clone)]
pub struct Backend {
    /// Through the configured proxy (if any), for remote backends.
    client: reqwest::Client,
    /// Never through a proxy, for loopback ones.
    direct: reqwest::Client,
    bases: Arc<[Url]>,
    /// The base that answered last: the next call starts there.
    preferred: Arc<AtomicUsize>,
    /// What the build fixes: a `refresh_url` must then be the pinned server's.
    pins: crate::pins::Pins,
}

impl Backend {
    /// A client for `config.api_urls` with the configured timeouts, proxy and `ca-file`.
    pub fn new(config: &Config) -> Result<Backend, BackendError> {
        if config.api_urls.is_empty() {
            return Err(BackendError::BadUrl("no api-url".into()));
        }
        for base in &config.api_urls {
            check_backend_url(base).map_err(BackendError::BadUrl)?;
        }
        let trust = match &config.pins.ca {
            Some(anchors) => Trust::Only(anchors.clone()),
            None => Trust::Platform(
                config
                    .ca_file
                    .as_ref()
                    .map(|(_, certs)| certs.clone())
                    .unwrap_or_default(),
            ),
        };
        let (connect, read) = (config.connect_timeout, config.read_timeout);
        Ok(Backend {
            client: remote_client(connect, read, &config.proxy, &trust)?,
            direct: direct_client(connect, read, &trust)?,
            bases: config.api_urls.clone().into(),
            preferred: Arc::new(AtomicUsize::new(0)),
            pins: config.pins.clone(),
        })
    }

    /// `path` on each base, in the order this call tries them: from the one that last
    /// answered, then the rest in the configured order.
    fn endpoints<'a>(&'a self, path: &'a str) -> impl Iterator<Item = (usize, String)> + 'a {
        let n = self.bases.len();
        let start = self.preferred.load(Ordering::Relaxed) % n.max(1);
        (0..n).map(move |i| {
            let k = (start + i) % n;
            let base = self.bases[k].as_str().trim_end_matches('/');
            (k, format!("{base}{path}"))
        })
    }

    /// One request to `path` on the bases in turn, with the same body (and so the same
    /// nonce), until one answers with anything but a server error. A failure is that of
    /// the last base tried: all of them failed.
    async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        body: &impl Serialize,
    ) -> Result<Reply, BackendError> {
        let body = serde_json::to_vec(body).map_err(|e| BackendError::Setup(e.to_string()))?;
        let mut last = Err(BackendError::BadUrl("no api-url".into()));
        for (k, url) in self.endpoints(path) {
            let outcome = self.send(method.clone(), &url, bearer, body.clone()).await;
            match outcome {
                Ok(reply) if !reply.status.is_server_error() => {
                    self.preferred.store(k, Ordering::Relaxed);
                    return Ok(reply);
                }
                other => last = other,
            }
        }
        last
    }

    /// `POST {api-url}/api/v1/licenses/token` with the API key as bearer.
    pub async fn fetch_token(
        &self,
        api_key: &str,
        req: &TokenRequest,
    ) -> Result<TokenReply, BackendError> {
        let reply = self.call(Method::POST, paths::TOKEN, api_key, req).await?;
        match reply.status {
            StatusCode::OK => parse_token_reply(&reply.body),
            _ => Err(reply.error()),
        }
    }

    /// `POST {refresh_url}` with the current token as bearer. `Ok(None)` is 204 (no change).
    pub async fn refresh_static(
        &self,
        refresh_url: &str,
        current_token: &str,
        req: &RefreshRequest,
    ) -> Result<Option<TokenReply>, BackendError> {
        let url = Url::parse(refresh_url)
            .map_err(|e| BackendError::BadUrl(format!("refresh_url `{refresh_url}`: {e}")))?;
        check_backend_url(&url).map_err(|e| BackendError::BadUrl(format!("refresh_url {e}")))?;
        if !self.pins.allows_refresh_url(&url) {
            return Err(BackendError::BadUrl(format!(
                "refresh_url `{}` is not the license server this build is fixed to",
                crate::log::echo(refresh_url)
            )));
        }
        let body = serde_json::to_vec(req).map_err(|e| BackendError::Setup(e.to_string()))?;
        let reply = self
            .send(Method::POST, url.as_str(), current_token, body)
            .await?;
        match reply.status {
            StatusCode::NO_CONTENT => Ok(None),
            StatusCode::OK => parse_token_reply(&reply.body).map(Some),
            _ => Err(reply.error()),
        }
    }

    /// `POST {api-url}/api/v1/licenses/acquire`.
    pub async fn acquire(
        &self,
        api_key: &str,
        req: &AcquireRequest,
    ) -> Result<AcquireAnswer, BackendError> {
        self.seat_grant(paths::ACQUIRE, api_key, req).await
    }

    /// `POST {api-url}/api/v1/licenses/reconnect`.
    pub async fn reconnect(
        &self,
        api_key: &str,
        req: &ReconnectRequest,
    ) -> Result<AcquireAnswer, BackendError> {
        self.seat_grant(paths::RECONNECT, api_key, req).await
    }

    async fn seat_grant(
        &self,
        path: &str,
        api_key: &str,
        req: &impl Serialize,
    ) -> Result<AcquireAnswer, BackendError> {
        let reply = self.call(Method::POST, path, api_key, req).await?;
        match reply.status {
            StatusCode::OK => parse_answer(&reply.body),
            _ => Err(reply.error()),
        }
    }

    /// `PUT {api-url}/api/v1/licenses/heartbeat`; 404 and 410 are
    /// [`BackendError::SessionGone`].
    pub async fn heartbeat(
        &self,
        api_key: &str,
        req: &HeartbeatRequest,
    ) -> Result<HeartbeatAnswer, BackendError> {
        let reply = self
            .call(Method::PUT, paths::HEARTBEAT, api_key, req)
            .await?;
        match reply.status {
            StatusCode::OK => parse_answer(&reply.body),
            StatusCode::NO_CONTENT => Ok(HeartbeatAnswer::default()),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(BackendError::SessionGone),
            _ => Err(reply.error()),
        }
    }

    /// `DELETE {api-url}/api/v1/licenses/release`. A session the server no longer knows
    /// (404, 410) counts as released.
    pub async fn release(&self, api_key: &str, req: &ReleaseRequest) -> Result<(), BackendError> {
        let reply = self
            .call(Method::DELETE, paths::RELEASE, api_key, req)
            .await?;
        match reply.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(()),
            _ => Err(reply.error()),
        }
    }

    /// `POST {api-url}/api/v1/licenses/borrow`: checks the online seat out for a while.
    pub async fn borrow(
        &self,
        api_key: &str,
        req: &BorrowRequest,
    ) -> Result<BorrowAnswer, BackendError> {
        let reply = self.call(Method::POST, paths::BORROW, api_key, req).await?;
        match reply.status {
            StatusCode::OK => parse_answer(&reply.body),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(BackendError::SessionGone),
            _ => Err(reply.error()),
        }
    }

    /// `DELETE {api-url}/api/v1/licenses/borrow`: gives a borrowed seat back. A borrow the
    /// server no longer knows (404, 410: returned, or over) counts as returned.
    pub async fn return_borrow(
        &self,
        api_key: &str,
        req: &ReturnBorrowRequest,
    ) -> Result<(), BackendError> {
        let reply = self
            .call(Method::DELETE, paths::BORROW, api_key, req)
            .await?;
        match reply.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(()),
            _ => Err(reply.error()),
        }
    }

    /// One request to one URL: loopback directly, anything else through the proxy.
    async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: &str,
        body: Vec<u8>,
    ) -> Result<Reply, BackendError> {
        let parsed = Url::parse(url).map_err(|e| BackendError::BadUrl(e.to_string()))?;
        let client = if crate::config::is_loopback_url(&parsed) {
            &self.direct
        } else {
            &self.client
        };
        let resp = client
            .request(method, url)
            .bearer_auth(bearer)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(url, &e))?;
        let status = resp.status();
        let retry_after_secs = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after_secs);
        let body = read_capped(resp, url).await?;
        Ok(Reply {
            status,
            retry_after_secs,
            body,
        })
    }
}
