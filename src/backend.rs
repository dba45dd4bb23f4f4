//! The license backend client: token fetch, static refresh, and the seat exchanges.
//!
//! Every request is bounded: connect and read timeouts, no redirects, and a 64 KiB cap
//! on the response body. Each client carries its own rustls provider, so nothing is
//! installed process-wide in a host that may unload the library. Bodies are the types of
//! [`crate::protocol`]; failures come back typed ([`BackendError`]), so the engine decides
//! on variants, never on message text.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

use crate::config::{check_backend_url, Config, ProxyConfig};
use crate::log::clean;
use crate::protocol::{
    codes, paths, AcquireAnswer, AcquireRequest, BorrowAnswer, BorrowRequest, ErrorBody,
    HeartbeatAnswer, HeartbeatRequest, ReconnectRequest, RefreshRequest, ReleaseRequest,
    ReturnBorrowRequest, TokenAnswer, TokenRequest,
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

/// The platform's certificate verifier, built on the first TLS handshake: loading the
/// system's roots costs milliseconds, which a loopback `http` backend (and a host that
/// never refreshes) should not pay at `lic_init`. Held by the client, not a static.
#[derive(Debug)]
struct LazyVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// `ca-file`'s anchors, trusted beside the platform's roots.
    extra_roots: Vec<CertificateDer<'static>>,
    inner: OnceLock<Result<rustls_platform_verifier::Verifier, String>>,
}

impl LazyVerifier {
    fn get(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| {
                let provider = self.provider.clone();
                if self.extra_roots.is_empty() {
                    rustls_platform_verifier::Verifier::new(provider)
                } else {
                    rustls_platform_verifier::Verifier::new_with_extra_roots(
                        self.extra_roots.clone(),
                        provider,
                    )
                }
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(format!("certificate verifier: {e}")))
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTP client as every backend call uses: rustls with the platform's roots (its own
/// provider, nothing installed process-wide), no redirects, connect and read timeouts,
/// and the whole exchange bounded by their sum so a peer dripping bytes cannot hold it.
/// This one follows the environment's proxy settings as reqwest reads them; the engine's
/// own clients take theirs from the config ([`Backend::new`]).
pub fn http_client(connect: Duration, read: Duration) -> Result<reqwest::Client, BackendError> {
    client_builder(connect, read, &Trust::Platform(Vec::new()))?
        .build()
        .map_err(|e| BackendError::Setup(e.to_string()))
}

/// Which certificates the backend's TLS is checked against.
#[derive(Debug, Clone)]
enum Trust {
    /// The platform's roots, and `ca-file`'s beside them.
    Platform(Vec<CertificateDer<'static>>),
    /// These alone: a vendor's build pinned its license server's CA.
    Only(Vec<CertificateDer<'static>>),
}

/// The engine's client for remote backends: through `proxy` (or direct without one),
/// under `trust`.
fn remote_client(
    connect: Duration,
    read: Duration,
    proxy: &ProxyConfig,
    trust: &Trust,
) -> Result<reqwest::Client, BackendError> {
    let builder = client_builder(connect, read, trust)?;
    let builder = match &proxy.url {
        // An explicit proxy replaces the environment's (already read into the config).
        Some(url) => {
            // The error would name the URL, credentials and all: say which key instead.
            let p = reqwest::Proxy::all(url.as_str())
                .map_err(|_| BackendError::Setup(format!("proxy {} unusable", proxy.shown())))?
                .no_proxy(reqwest::NoProxy::from_string(&proxy.no_proxy.join(",")));
            builder.proxy(p)
        }
        None => builder.no_proxy(),
    };
    builder
        .build()
        .map_err(|e| BackendError::Setup(e.to_string()))
}

/// A client that never uses a proxy: for loopback backends, whose plain http is allowed
/// only because it never leaves the machine (a proxy would carry the API key off it).
fn direct_client(
    connect: Duration,
    read: Duration,
    trust: &Trust,
) -> Result<reqwest::Client, BackendError> {
    client_builder(connect, read, trust)?
        .no_proxy()
        .build()
        .map_err(|e| BackendError::Setup(e.to_string()))
}

fn client_builder(
    connect: Duration,
    read: Duration,
    trust: &Trust,
) -> Result<reqwest::ClientBuilder, BackendError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Platform(extra_roots) => Arc::new(LazyVerifier {
            provider: provider.clone(),
            extra_roots: extra_roots.clone(),
            inner: OnceLock::new(),
        }),
        Trust::Only(anchors) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in anchors {
                roots
                    .add(c.clone())
                    .map_err(|e| BackendError::Setup(format!("pinned CA: {e}")))?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| BackendError::Setup(format!("pinned CA: {e}")))?
        }
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect)
        .read_timeout(read)
        .timeout(connect + read)
        .user_agent(concat!("lic4es/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30)))
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

/// An answer as read: its status, its `Retry-After` (seconds), and its body.
struct Reply {
    status: StatusCode,
    retry_after_secs: Option<u64>,
    body: Vec<u8>,
}

impl Reply {
    /// The error a non-success answer means (see [`error_for_status`]), with its
    /// `Retry-After` on a refused seat.
    fn error(&self) -> BackendError {
        match error_for_status(self.status, &self.body) {
            BackendError::NoSeats { message, .. } => BackendError::NoSeats {
                message,
                retry_after_secs: self.retry_after_secs,
            },
            e => e,
        }
    }
}

/// A `Retry-After` in seconds (the form the protocol uses; an HTTP date is ignored).
fn retry_after_secs(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

async fn read_capped(mut resp: reqwest::Response, url: &str) -> Result<Vec<u8>, BackendError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(BackendError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(url, &e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BackendError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A 200 body as the protocol type `T`: a JSON object whose known fields have the right
/// types (unknown fields are ignored).
fn parse_answer<T: DeserializeOwned>(body: &[u8]) -> Result<T, BackendError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => {
            serde_json::from_value(v).map_err(|e| BackendError::Malformed(clean(&e.to_string())))
        }
        Ok(_) => Err(BackendError::Malformed("body is not a JSON object".into())),
        Err(e) => Err(BackendError::Malformed(format!("body is not JSON: {e}"))),
    }
}

fn parse_token_reply(body: &[u8]) -> Result<TokenReply, BackendError> {
    let answer: TokenAnswer = parse_answer(body)?;
    let jwt = match answer.jwt {
        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err(BackendError::Malformed("no `jwt` in the response".into())),
    };
    Ok(TokenReply {
        jwt,
        expires_in: answer.expires_in,
        message: answer.message.as_deref().map(clean),
    })
}

/// Maps a non-success status and its body to an error, recognising revocation and a
/// refused seat.
pub fn error_for_status(status: StatusCode, body: &[u8]) -> BackendError {
    let e: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = clean(&e.error);
    let message = clean(&e.message);
    let revoked = codes::REVOCATIONS.contains(&code.as_str());
    match status.as_u16() {
        401 | 403 if revoked => BackendError::Revoked { code, message },
        403 if code == codes::SEAT_REQUIRED => BackendError::SeatRequired(message),
        403 if code == codes::BORROW_NOT_ALLOWED => BackendError::BorrowNotAllowed(message),
        403 if code == codes::NO_SEATS_AVAILABLE => BackendError::NoSeats {
            message: if message.is_empty() {
                "all seats in use".into()
            } else {
                message
            },
            retry_after_secs: None,
        },
        // No seat for this host now either: it waits as for a full license.
        429 if code == codes::TOO_MANY_ACQUIRES => BackendError::NoSeats {
            message: if message.is_empty() {
                "too many seats granted this hour".into()
            } else {
                message
            },
            retry_after_secs: None,
        },
        401 => BackendError::Unauthorized { code, message },
        other => BackendError::Status(other),
    }
}

fn transport_error(url: &str, e: &reqwest::Error) -> BackendError {
    let reason = error_chain(e);
    if e.is_timeout() {
        BackendError::Timeout(url.to_string())
    } else if e.is_connect() {
        BackendError::Connect {
            url: url.to_string(),
            reason,
        }
    } else {
        BackendError::Transport {
            url: url.to_string(),
            reason,
        }
    }
}

/// The innermost cause: reqwest's outer messages repeat the URL, which the caller
/// already names.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut deepest = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        deepest = inner.to_string();
        cur = inner.source();
    }
    deepest
}

/// Every answer body the engine reads, by `kind`, through the same parsing (and the
/// same arithmetic on what it finds) as the real exchanges: the entry point of the
/// `backend_answers` fuzz target. It must never panic.
#[doc(hidden)]
pub fn parse_any_answer(kind: u8, body: &[u8]) {
    match kind % 4 {
        0 => {
            let _ = parse_token_reply(body);
        }
        1 => {
            if let Ok(a) = parse_answer::<AcquireAnswer>(body) {
                let _ = a.grace_seconds().saturating_mul(1000);
                let _ = a
                    .heartbeat_interval
                    .map(crate::seat::heartbeat_ms_from_secs);
                let _ = a.session_id.as_deref().map(clean);
                let _ = a.message.as_deref().map(clean);
            }
        }
        2 => {
            if let Ok(a) = parse_answer::<HeartbeatAnswer>(body) {
                let _ = a
                    .heartbeat_interval
                    .map(crate::seat::heartbeat_ms_from_secs);
            }
        }
        _ => {
            for status in [400, 401, 403, 404, 409, 410, 429, 500, 503] {
                if let Ok(code) = StatusCode::from_u16(status) {
                    let _ = error_for_status(code, body).to_string();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_verifier_is_built_on_the_first_handshake_and_refuses_garbage() {
        let v = LazyVerifier {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            extra_roots: Vec::new(),
            inner: OnceLock::new(),
        };
        assert!(!v.supported_verify_schemes().is_empty());
        assert!(v.inner.get().is_none(), "nothing loaded before a handshake");
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let name = ServerName::try_from("license.example.com").unwrap();
        let r = v.verify_server_cert(&garbage, &[], &name, &[], UnixTime::now());
        assert!(r.is_err());
        assert!(v.inner.get().is_some(), "built on first use");
    }
}
