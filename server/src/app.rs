//! HTTP API: token fetch and refresh for lic4es, health, metrics, admin.
//!
//! Every bad request gets a 4xx with a JSON body `{"error", "message"}`; bodies over
//! 64 KiB are refused before they are read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::ServerConfig;
use crate::keys::SigningKey;
use crate::store::{License, Store};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Request and token counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    tokens: Mutex<BTreeMap<String, u64>>,
    telemetry: AtomicU64,
}

impl Metrics {
    fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP license_server_requests_total HTTP requests by endpoint and status.\n",
        );
        out.push_str("# TYPE license_server_requests_total counter\n");
        for ((endpoint, status), n) in lock(&self.requests).iter() {
            out.push_str(&format!(
                "license_server_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP license_server_tokens_issued_total Tokens issued by tier.\n");
        out.push_str("# TYPE license_server_tokens_issued_total counter\n");
        for (tier, n) in lock(&self.tokens).iter() {
            out.push_str(&format!(
                "license_server_tokens_issued_total{{tier=\"{tier}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP license_server_telemetry_received_total Telemetry bodies stored.\n");
        out.push_str("# TYPE license_server_telemetry_received_total counter\n");
        out.push_str(&format!(
            "license_server_telemetry_received_total {}\n",
            self.telemetry.load(Ordering::Relaxed)
        ));
        out
    }
}

/// Everything the handlers share.
pub struct AppState {
    /// The config.
    pub config: ServerConfig,
    /// The signing key.
    pub key: SigningKey,
    keyset: lic4es::token::KeySet,
    store: Mutex<Store>,
    metrics: Metrics,
    /// Print one line per request to stderr.
    pub access_log: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AppState {
    /// State over an opened store and key.
    pub fn new(config: ServerConfig, key: SigningKey, store: Store) -> Result<Self, String> {
        let keyset = lic4es::token::KeySet::from_json_value(&key.public_jwks())?;
        Ok(AppState {
            config,
            key,
            keyset,
            store: Mutex::new(store),
            metrics: Metrics::default(),
            access_log: false,
        })
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Signs a token for `lic`: short-lived (`token-lifetime-hours`) for API-key clients,
    /// or, with `long_lived`, valid until the license itself expires (static tokens and
    /// their refreshes). `exp` never passes the license's own expiry.
    pub fn issue(
        &self,
        lic: &License,
        nonce: Option<&str>,
        refresh_url: Option<&str>,
        long_lived: bool,
    ) -> Result<(String, i64), ApiError> {
        let now = now_secs();
        let policy = self.config.policy(&lic.tier).ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "unknown_tier",
                format!("license tier `{}` has no policy", lic.tier),
            )
        })?;
        let exp = if long_lived {
            lic.expires_at
        } else {
            (now + self.config.token_lifetime_hours as i64 * 3600).min(lic.expires_at)
        };
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
        if let Some(n) = nonce {
            claims["nonce"] = Value::from(n);
        }
        if let Some(u) = refresh_url {
            claims["refresh_url"] = Value::from(u);
        }
        let jwt = self
            .key
            .sign(&claims)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "signing_failed", e))?;
        *lock(&self.metrics.tokens)
            .entry(lic.tier.clone())
            .or_default() += 1;
        Ok((jwt, exp))
    }

    /// A static token for `lic` (no nonce), optionally with a `refresh_url`.
    pub fn issue_static(
        &self,
        lic: &License,
        refresh_url: Option<&str>,
    ) -> Result<(String, i64), ApiError> {
        let url = refresh_url.map(|u| {
            if u == "default" {
                format!("{}/api/v1/licenses/refresh", self.config.public_url())
            } else {
                u.to_string()
            }
        });
        self.issue(lic, None, url.as_deref(), true)
    }

    /// Creates an API key for license `id`.
    pub fn new_api_key(&self, id: &str) -> Result<String, String> {
        self.store().create_api_key(id, now_secs())
    }

    /// Creates a license of `tier` for `days` and returns it.
    pub fn create_license(
        &self,
        id: &str,
        tier: &str,
        org_name: Option<&str>,
        days: i64,
        trial: bool,
    ) -> Result<License, String> {
        check_tier(&self.config, tier)?;
        let lic = License {
            id: id.to_string(),
            tier: tier.to_string(),
            org_name: org_name.map(str::to_string),
            expires_at: now_secs() + days * 86_400,
            trial,
            revoked: false,
        };
        self.store()
            .upsert_license(&lic, now_secs())
            .map_err(|e| e.to_string())?;
        Ok(lic)
    }
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

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
    }
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad("invalid_body", e.body_text())
        }
    })
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("invalid_json", format!("body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad("invalid_json", "body must be a JSON object"));
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad("invalid_request", e.to_string()))
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_bearer",
                "an `Authorization: Bearer ...` header is required",
            )
        })
}

/// The body of a token request, and of a refresh (which adds `license_id`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientBody {
    #[serde(default)]
    license_id: Option<String>,
    instance_id: String,
    #[serde(default)]
    version: String,
    nonce: String,
    #[serde(default)]
    uptime_hours: f64,
    #[serde(default)]
    telemetry: Option<Value>,
}

impl ClientBody {
    fn check(&self) -> Result<(), ApiError> {
        let bad = |m: &str| Err(ApiError::bad("invalid_request", m));
        if self.instance_id.trim().is_empty() || self.instance_id.len() > 256 {
            return bad("instance_id must be 1 to 256 characters");
        }
        if self.version.len() > 128 {
            return bad("version is longer than 128 characters");
        }
        let n = &self.nonce;
        if n.len() < 16 || n.len() > 128 || !n.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("nonce must be 16 to 128 hex characters");
        }
        if !self.uptime_hours.is_finite() || self.uptime_hours < 0.0 {
            return bad("uptime_hours must be a non-negative number");
        }
        if self.telemetry.as_ref().is_some_and(|t| !t.is_object()) {
            return bad("telemetry must be an object");
        }
        Ok(())
    }
}

impl AppState {
    fn record_telemetry(&self, store: &Store, license: &str, instance: &str, t: &Option<Value>) {
        if let Some(t) = t {
            if store
                .add_telemetry(license, instance, &t.to_string(), now_secs())
                .is_ok()
            {
                self.metrics.telemetry.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn token(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body_bytes(body)?;
    let key = bearer(&headers)?;
    let req: ClientBody = parse(&body)?;
    req.check()?;
    if req.license_id.is_some() {
        return Err(ApiError::bad(
            "invalid_request",
            "license_id is not part of a token request",
        ));
    }
    let lic = {
        let store = s.store();
        let rec = store.api_key(key)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "unknown API key",
            )
        })?;
        if rec.revoked {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "api_key_revoked",
                "This API key has been revoked",
            ));
        }
        let lic = store.license(&rec.license_id)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "unknown API key",
            )
        })?;
        check_license(&lic)?;
        s.record_telemetry(&store, &lic.id, &req.instance_id, &req.telemetry);
        lic
    };
    let (jwt, exp) = s.issue(&lic, Some(&req.nonce), None, false)?;
    Ok(Json(json!({"jwt": jwt, "expires_in": exp - now_secs()})))
}

fn check_license(lic: &License) -> Result<(), ApiError> {
    if lic.revoked {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "license_revoked",
            format!("License {} has been revoked", lic.id),
        ));
    }
    if lic.expires_at <= now_secs() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "license_expired",
            format!("License {} has expired", lic.id),
        ));
    }
    Ok(())
}

async fn refresh(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let current = bearer(&headers)?;
    let claims = s.keyset.verify(current).map_err(|e| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            format!("bearer token: {e}"),
        )
    })?;
    if claims.iss != s.config.issuer {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "bearer token has another issuer",
        ));
    }
    let req: ClientBody = parse(&body)?;
    req.check()?;
    if req.license_id.as_deref() != Some(claims.sub.as_str()) {
        return Err(ApiError::bad(
            "license_mismatch",
            "license_id does not match the bearer token",
        ));
    }
    let lic = {
        let store = s.store();
        let lic = store.license(&claims.sub)?.ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "unknown license")
        })?;
        check_license(&lic)?;
        s.record_telemetry(&store, &lic.id, &req.instance_id, &req.telemetry);
        lic
    };
    // Nothing new to say: same tier, and the token already runs to the license's end.
    if lic.tier == claims.tier.as_str() && claims.exp >= lic.expires_at {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let (jwt, exp) = s.issue(&lic, Some(&req.nonce), claims.refresh_url.as_deref(), true)?;
    Ok(Json(json!({"jwt": jwt, "expires_in": exp - now_secs()})).into_response())
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn jwks(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(s.key.public_jwks())
}

fn admin(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = s.config.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is disabled: set admin-token in the config",
        ));
    };
    let given = bearer(headers)?;
    // Compare in constant time so the token cannot be guessed byte by byte.
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_token",
            "wrong admin token",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLicense {
    id: Option<String>,
    tier: String,
    org_name: Option<String>,
    days: i64,
    #[serde(default)]
    trial: bool,
}

async fn admin_create_license(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    admin(&s, &headers)?;
    let req: NewLicense = parse(&body_bytes(body)?)?;
    if !(1..=36_500).contains(&req.days) {
        return Err(ApiError::bad("invalid_request", "days must be 1 to 36500"));
    }
    let id = req
        .id
        .unwrap_or_else(|| format!("lic-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    let lic = s
        .create_license(&id, &req.tier, req.org_name.as_deref(), req.days, req.trial)
        .map_err(|e| ApiError::bad("invalid_request", e))?;
    let key = s
        .store()
        .create_api_key(&lic.id, now_secs())
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"license_id": lic.id, "tier": lic.tier, "expires_at": lic.expires_at, "api_key": key})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetTier {
    tier: String,
}

async fn admin_set_tier(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    admin(&s, &headers)?;
    let req: SetTier = parse(&body_bytes(body)?)?;
    check_tier(&s.config, &req.tier).map_err(|e| ApiError::bad("invalid_request", e))?;
    if !s.store().set_tier(&id, &req.tier)? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such license",
        ));
    }
    Ok(Json(json!({"license_id": id, "tier": req.tier})))
}

async fn admin_revoke_license(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    admin(&s, &headers)?;
    if !s.store().revoke_license(&id)? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such license",
        ));
    }
    Ok(Json(json!({"license_id": id, "revoked": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeKey {
    api_key: String,
}

async fn admin_revoke_key(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    admin(&s, &headers)?;
    let req: RevokeKey = parse(&body_bytes(body)?)?;
    if !s.store().revoke_api_key(&req.api_key)? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such API key",
        ));
    }
    Ok(Json(json!({"revoked": true})))
}

async fn admin_telemetry(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    admin(&s, &headers)?;
    let rows = s.store().recent_telemetry(100)?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(l, i, at, body)| {
                json!({"license_id": l, "instance_id": i, "received_at": at,
                       "telemetry": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)})
            })
            .collect(),
    )))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn count_requests(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    if s.access_log {
        eprintln!("license-server: {method} {endpoint} {status}");
    }
    *lock(&s.metrics.requests)
        .entry((endpoint, status))
        .or_default() += 1;
    resp
}

/// The router with every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/licenses/token", post(token))
        .route("/api/v1/licenses/refresh", post(refresh))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/admin/licenses", post(admin_create_license))
        .route("/admin/licenses/{id}/tier", post(admin_set_tier))
        .route("/admin/licenses/{id}/revoke", post(admin_revoke_license))
        .route("/admin/api-keys/revoke", post(admin_revoke_key))
        .route("/admin/telemetry", get(admin_telemetry))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
