//! The layers every request goes through before its handler: the client's address
//! found once, the body read within its deadline, errors answered as JSON, the admin
//! token checked (and its failures throttled), requests counted and logged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lic4es::protocol::codes;

use super::extract::{bearer, forwarded_for, too_large, ClientAddr};
use super::{server_codes, ApiError, MAX_BODY_BYTES};
use crate::app::AppState;

/// Whether `headers` carry the admin token for a request from `ip`.
fn admin_allowed(s: &AppState, headers: &HeaderMap, ip: IpAddr) -> Result<(), AdminDenied> {
    let Some(expected) = s.config.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(AdminDenied::Disabled);
    };
    let now = s.now();
    s.throttle
        .check(ip, now)
        .map_err(|wait| AdminDenied::Throttled { ip, wait })?;
    let given = bearer(headers).map_err(AdminDenied::NoBearer)?;
    if !same_secret(given, expected) {
        s.throttle.failed(ip, now);
        return Err(AdminDenied::Wrong);
    }
    Ok(())
}

/// Names the request's client ([`ClientAddr`]) once, for every handler.
pub(super) async fn find_client(
    State(s): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let forwarded = forwarded_for(req.headers());
        let client = ClientAddr::of(peer, forwarded.as_deref(), &s.proxies);
        req.extensions_mut().insert(client);
    }
    next.run(req).await
}

/// Reads the whole body within `body-timeout-secs` of the headers, so a client that drips
/// a body (or never sends the one its `Content-Length` announces) lets go of its
/// connection; handlers then read it from memory.
pub(super) async fn body_deadline(
    State(s): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large().into_response();
    }
    let read = axum::body::to_bytes(body, MAX_BODY_BYTES);
    match tokio::time::timeout(s.body_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => {
            let limit = std::error::Error::source(&e)
                .is_some_and(|c| c.is::<http_body_util::LengthLimitError>());
            if limit {
                too_large().into_response()
            } else {
                ApiError::bad(codes::INVALID_REQUEST, "the request body could not be read")
                    .into_response()
            }
        }
        Err(_) => {
            let mut resp = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                server_codes::BODY_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    s.body_timeout.as_secs()
                ),
            )
            .into_response();
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            resp
        }
    }
}

/// Turns any error answer that is not JSON (an extractor's rejection of a path that is
/// not valid percent-encoding or UTF-8, say) into the JSON error every client expects.
pub(super) async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = lic4es::log::clean(String::from_utf8_lossy(&text).trim());
    let code = match status {
        StatusCode::NOT_FOUND => server_codes::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => server_codes::METHOD_NOT_ALLOWED,
        StatusCode::PAYLOAD_TOO_LARGE => server_codes::BODY_TOO_LARGE,
        s if s.is_server_error() => server_codes::INTERNAL_ERROR,
        _ => codes::INVALID_REQUEST,
    };
    let mut out = ApiError::new(
        status,
        code,
        if message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            message
        },
    )
    .into_response();
    for name in [header::CONNECTION, header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// The admin token, checked once for every admin endpoint (a handler cannot forget
/// it), compared in constant time, with failed attempts throttled per client address.
pub(super) async fn admin_auth(
    State(s): State<Arc<AppState>>,
    client: ClientAddr,
    req: Request,
    next: Next,
) -> Response {
    match admin_allowed(&s, req.headers(), client.ip) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Why an admin request is refused.
#[derive(Debug)]
enum AdminDenied {
    /// No admin token is configured.
    Disabled,
    /// Too many wrong tokens from this address lately.
    Throttled { ip: IpAddr, wait: i64 },
    /// No bearer token.
    NoBearer(ApiError),
    /// A wrong token.
    Wrong,
}

impl IntoResponse for AdminDenied {
    fn into_response(self) -> Response {
        match self {
            AdminDenied::Disabled => ApiError::new(
                StatusCode::FORBIDDEN,
                server_codes::ADMIN_DISABLED,
                "the admin API is disabled: set admin-token in the config",
            )
            .into_response(),
            AdminDenied::Throttled { ip, wait } => {
                let mut resp = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    server_codes::TOO_MANY_ATTEMPTS,
                    format!("too many wrong admin tokens from {ip}; try again in {wait} s"),
                )
                .into_response();
                if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            }
            AdminDenied::NoBearer(e) => e.into_response(),
            AdminDenied::Wrong => ApiError::new(
                StatusCode::UNAUTHORIZED,
                server_codes::INVALID_ADMIN_TOKEN,
                "wrong admin token",
            )
            .into_response(),
        }
    }
}

/// Compares two secrets in constant time (for equal lengths), so neither can be guessed
/// byte by byte.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        server_codes::NOT_FOUND,
        "no such endpoint",
    )
}

pub(super) async fn count_requests(
    State(s): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    // A matched path is shared, not copied, per request.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let endpoint = matched.as_ref().map_or("other", MatchedPath::as_str);
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    // The access log is its own target: on when asked for, whatever the log level.
    tracing::info!(target: crate::log::ACCESS, "{method} {endpoint} {status}");
    s.metrics.request(endpoint, status, seconds);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", "abc"));
    }
}
