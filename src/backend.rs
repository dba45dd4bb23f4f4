//! The license backend client (token fetch; refresh and seats build on it).
//!
//! Every request is bounded: connect and read timeouts, no redirects, and a 64 KiB cap
//! on the response body. Each client carries its own rustls provider, so nothing is
//! installed process-wide in a host that may unload the library.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use url::Url;

use crate::config::{check_backend_url, Config};

/// Largest response body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `error` codes that mean the license or key was revoked.
pub const REVOKED_CODES: [&str; 2] = ["api_key_revoked", "license_revoked"];

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

/// What a token fetch sends besides the API key.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// This engine's instance id.
    pub instance_id: String,
    /// The host's version.
    pub version: String,
    /// Fresh random nonce, 32 hex characters.
    pub nonce: String,
    /// Hours since init.
    pub uptime_hours: f64,
    /// Usage counters, when telemetry is on.
    pub telemetry: Option<Value>,
}

impl TokenRequest {
    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut b = json!({
            "instance_id": self.instance_id,
            "version": self.version,
            "nonce": self.nonce,
            "uptime_hours": self.uptime_hours,
        });
        if let Some(t) = &self.telemetry {
            b["telemetry"] = t.clone();
        }
        b
    }
}

/// A successful token fetch.
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

/// An HTTP client bound to one backend base URL.
#[derive(Clone)]
pub struct Backend {
    client: reqwest::Client,
    base: Url,
}

impl Backend {
    /// A client for `config.api_url` with the configured timeouts.
    pub fn new(config: &Config) -> Result<Backend, BackendError> {
        Self::with_timeouts(
            config.api_url.clone(),
            config.connect_timeout,
            config.read_timeout,
        )
    }

    /// A client for `base` with explicit timeouts.
    pub fn with_timeouts(
        base: Url,
        connect: Duration,
        read: Duration,
    ) -> Result<Backend, BackendError> {
        check_backend_url(&base).map_err(BackendError::BadUrl)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| BackendError::Setup(e.to_string()))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BackendError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect)
            .read_timeout(read)
            // The whole exchange is bounded too, so a server dripping bytes cannot hold
            // a request open forever.
            .timeout(connect + read)
            .user_agent(concat!("lic4es/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| BackendError::Setup(e.to_string()))?;
        Ok(Backend { client, base })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// `POST {api-url}/api/v1/licenses/token` with the API key as bearer.
    pub async fn fetch_token(
        &self,
        api_key: &str,
        req: &TokenRequest,
    ) -> Result<TokenReply, BackendError> {
        let url = self.endpoint("/api/v1/licenses/token");
        let (status, body) = self.post_json(&url, api_key, &req.body()).await?;
        match status {
            StatusCode::OK => parse_token_reply(&body),
            s => Err(error_for_status(s, &body)),
        }
    }

    /// `POST {refresh_url}` with the current token as bearer. `Ok(None)` is 204 (no change).
    pub async fn refresh_static(
        &self,
        refresh_url: &str,
        current_token: &str,
        body: &Value,
    ) -> Result<Option<TokenReply>, BackendError> {
        let url = Url::parse(refresh_url)
            .map_err(|e| BackendError::BadUrl(format!("refresh_url `{refresh_url}`: {e}")))?;
        check_backend_url(&url).map_err(|e| BackendError::BadUrl(format!("refresh_url {e}")))?;
        let (status, body) = self.post_json(url.as_str(), current_token, body).await?;
        match status {
            StatusCode::NO_CONTENT => Ok(None),
            StatusCode::OK => parse_token_reply(&body).map(Some),
            s => Err(error_for_status(s, &body)),
        }
    }

    async fn post_json(
        &self,
        url: &str,
        bearer: &str,
        body: &Value,
    ) -> Result<(StatusCode, Vec<u8>), BackendError> {
        let resp = self
            .client
            .post(url)
            .bearer_auth(bearer)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| transport_error(url, &e))?;
        let status = resp.status();
        let body = read_capped(resp, url).await?;
        Ok((status, body))
    }
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

fn parse_token_reply(body: &[u8]) -> Result<TokenReply, BackendError> {
    let v = parse_json(body)?;
    let jwt = match v.get("jwt") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Null) | None => {
            return Err(BackendError::Malformed("no `jwt` in the response".into()))
        }
        Some(_) => return Err(BackendError::Malformed("`jwt` is not a string".into())),
    };
    Ok(TokenReply {
        jwt,
        expires_in: v.get("expires_in").and_then(Value::as_i64),
        message: v
            .get("message")
            .and_then(Value::as_str)
            .map(sanitize_message),
    })
}

fn parse_json(body: &[u8]) -> Result<Value, BackendError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(BackendError::Malformed("body is not a JSON object".into())),
        Err(e) => Err(BackendError::Malformed(format!("body is not JSON: {e}"))),
    }
}

/// Maps a non-success status and its body to an error, recognising revocation.
pub fn error_for_status(status: StatusCode, body: &[u8]) -> BackendError {
    let v = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let code = v
        .get("error")
        .and_then(Value::as_str)
        .map(sanitize_message)
        .unwrap_or_default();
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .map(sanitize_message)
        .unwrap_or_default();
    let revoked = REVOKED_CODES.contains(&code.as_str());
    match status.as_u16() {
        401 | 403 if revoked => BackendError::Revoked { code, message },
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

/// Makes backend-supplied text safe to log: one line, at most 512 characters.
pub fn sanitize_message(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect();
    if s.chars().count() > 512 {
        out.push('…');
    }
    out
}
