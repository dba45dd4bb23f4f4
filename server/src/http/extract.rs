//! What handlers take from a request, parsed and checked at the edge: the body
//! ([`Payload`], bounded), the API key's license ([`KeyLicense`]), the license in the
//! path ([`LicensePath`]), the client's address ([`ClientAddr`], through trusted
//! proxies), and the checks of single fields (text, nonces).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::{header, HeaderMap, StatusCode};
use lic4es::protocol::codes;
use serde::de::DeserializeOwned;

use super::{server_codes, ApiError};
use crate::app::AppState;
use crate::service;
use crate::store::License;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The refusal of a body over [`MAX_BODY_BYTES`].
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        server_codes::BODY_TOO_LARGE,
        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
    )
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad(codes::INVALID_REQUEST, e.body_text())
        }
    })
}

/// A request body: a JSON object of the protocol type `T`.
pub(crate) fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    parse_bytes(&body_bytes(body)?)
}

/// A handler's request body as `T` ([`parse`]): the last argument of a handler, so that
/// its key or token is checked before the body is read.
pub struct Payload<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Payload<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Payload(parse(Bytes::from_request(req, state).await)?))
    }
}

/// [`parse`] for a body already read.
pub(crate) fn parse_bytes<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(codes::INVALID_JSON, format!("body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad(
            codes::INVALID_JSON,
            "body must be a JSON object",
        ));
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.to_string()))
}

pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                server_codes::MISSING_BEARER,
                "an `Authorization: Bearer ...` header is required",
            )
        })
}

/// A client-supplied string: non-blank, at most `max` characters, no control characters
/// and no Unicode format characters (a right-to-left override would make an id read
/// differently on the dashboard than it is).
pub(crate) fn check_text(
    name: &str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), ApiError> {
    if required && value.trim().is_empty() {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            format!("{name} is required"),
        ));
    }
    if value.chars().count() > max || value.chars().any(lic4es::log::is_invisible) {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            format!("{name} must be at most {max} characters without control or format characters"),
        ));
    }
    Ok(())
}

/// A seat call's nonce: absent (empty) is allowed, as clients written from the CODITECT
/// ADR send none; a nonce given must have the form the engine sends.
pub(crate) fn check_optional_nonce(n: &str) -> Result<Option<&str>, ApiError> {
    if n.is_empty() {
        return Ok(None);
    }
    check_nonce(n).map(|()| Some(n))
}

pub(crate) fn check_nonce(n: &str) -> Result<(), ApiError> {
    if n.len() < 16 || n.len() > 128 || !n.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            "nonce must be 16 to 128 hex characters",
        ));
    }
    Ok(())
}

/// The license of the request's API key (its bearer), in good standing: what every seat
/// and token endpoint starts from.
pub struct KeyLicense(pub License);

impl FromRequestParts<Arc<AppState>> for KeyLicense {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let key = bearer(&parts.headers)?;
        Ok(KeyLicense(service::api_keys::licensed(s, key).await?))
    }
}

/// The `{id}` of an admin path, parsed as a license id (anything else is a 400).
pub struct LicensePath(pub crate::domain::LicenseId);

impl FromRequestParts<Arc<AppState>> for LicensePath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let axum::extract::Path(id) = axum::extract::Path::<String>::from_request_parts(parts, s)
            .await
            .map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.body_text()))?;
        let id = crate::domain::LicenseId::parse(&id).map_err(service::ServiceError::from)?;
        Ok(LicensePath(id))
    }
}

/// The client a request comes from: the connection's peer, or, when that peer is one of
/// `trusted-proxies`, the address its `X-Forwarded-For` names. Used for the audit trail's
/// source and the admin throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The address.
    pub ip: IpAddr,
    /// The port, when it is the connection's own peer.
    pub port: Option<u16>,
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}", SocketAddr::new(self.ip, p)),
            None => write!(f, "{}", self.ip),
        }
    }
}

impl ClientAddr {
    /// The client of a connection from `peer` with `forwarded` (`X-Forwarded-For`): the
    /// rightmost address in it that is not a trusted proxy, when the peer is one. The
    /// header of anyone else is ignored (a client could claim to be anybody).
    pub fn of(peer: SocketAddr, forwarded: Option<&str>, trusted: &[ipnet::IpNet]) -> ClientAddr {
        let direct = ClientAddr {
            ip: peer.ip(),
            port: Some(peer.port()),
        };
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
        let Some(header) = forwarded.filter(|_| is_trusted(&peer.ip())) else {
            return direct;
        };
        let mut hops = Vec::new();
        for part in header.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A hop that is not an address: nothing to the left of it can be trusted.
                Err(_) => hops.clear(),
            }
        }
        match hops
            .iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .or(hops.first())
        {
            Some(ip) => ClientAddr {
                ip: *ip,
                port: None,
            },
            None => direct,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or_else(|| {
                let peer = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
                ClientAddr::of(peer, None, &[])
            }))
    }
}

/// Every `X-Forwarded-For` line of a request as one list, in order: several header lines
/// are one list (RFC 9110), and reading only the first would let a client put its own
/// line after a proxy's and choose its address. A line that is not text is a hop that is
/// not an address.
pub fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let mut lines = headers.get_all("x-forwarded-for").iter().peekable();
    lines.peek()?;
    Some(
        lines
            .map(|v| v.to_str().unwrap_or("not-an-address"))
            .collect::<Vec<_>>()
            .join(","),
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwards_for_it() {
        let trusted: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        let peer = |s: &str| -> SocketAddr { s.parse().unwrap() };
        // (peer, X-Forwarded-For, client shown)
        let cases = [
            ("203.0.113.5:4000", None, "203.0.113.5:4000"),
            ("203.0.113.5:4000", Some("198.51.100.1"), "203.0.113.5:4000"),
            ("10.1.2.3:80", None, "10.1.2.3:80"),
            ("10.1.2.3:80", Some("198.51.100.1"), "198.51.100.1"),
            (
                "10.1.2.3:80",
                Some("6.6.6.6, 198.51.100.1, 10.9.9.9"),
                "198.51.100.1",
            ),
            ("127.0.0.1:80", Some("10.0.0.7, 10.0.0.8"), "10.0.0.7"),
            (
                "10.1.2.3:80",
                Some("6.6.6.6, garbage, 10.9.9.9"),
                "10.9.9.9",
            ),
            ("10.1.2.3:80", Some("garbage"), "10.1.2.3:80"),
            ("10.1.2.3:80", Some("2001:db8::1"), "2001:db8::1"),
        ];
        for (p, xff, want) in cases {
            let got = ClientAddr::of(peer(p), xff, &trusted).to_string();
            assert_eq!(got, want, "{p} {xff:?}");
        }
        assert_eq!(
            ClientAddr::of(peer("10.1.2.3:80"), Some("198.51.100.1"), &[]).to_string(),
            "10.1.2.3:80",
            "no trusted proxies: the header is ignored"
        );
    }

    #[test]
    fn every_forwarded_line_counts_so_a_client_cannot_append_its_own() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: SocketAddr = "10.1.2.3:80".parse().unwrap();
        let mut h = HeaderMap::new();
        // The client sends its own line; the proxy appends the address it saw on another.
        h.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        let xff = forwarded_for(&h);
        assert_eq!(xff.as_deref(), Some("6.6.6.6,198.51.100.1"));
        assert_eq!(
            ClientAddr::of(peer, xff.as_deref(), &trusted).to_string(),
            "198.51.100.1"
        );
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        h.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        let xff = forwarded_for(&h);
        assert_eq!(
            ClientAddr::of(peer, xff.as_deref(), &trusted).to_string(),
            "10.1.2.3:80",
            "a hop that is not an address ends what can be trusted"
        );
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }
}
