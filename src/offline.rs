//! Air-gapped activation's two documents, shared by the engine that writes them and the
//! vendor's server that reads them: the activation request a site without the internet
//! carries to the vendor, and the deactivation code it carries back when it gives the
//! seat up. Both travel as JSON or as one base64url line, for copy and paste.
//!
//! The code is the token's `jti` and the hardware id, MACed (HMAC-SHA256) with the
//! request's nonce: only the vendor's server, which kept the nonce, and the engine that
//! drew it can make one, so a code cannot be made up for another site's activation. It
//! proves that an engine that held the activation said it deleted it; it cannot prove
//! that the token is gone from every copy of the disk (see the security model).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Longest request or code accepted, in bytes (either form).
pub const MAX_DOCUMENT_BYTES: usize = 4096;
/// Longest id field (license, hardware, instance, jti) accepted.
const MAX_ID: usize = 200;

/// Why a request or code is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfflineError {
    /// Over its size bound ([`MAX_DOCUMENT_BYTES`], or [`MAX_GRANT_REQUEST_BYTES`]).
    #[error("over {0} bytes")]
    TooLarge(usize),
    /// Neither JSON nor a base64url line of it, or a field missing or of the wrong type.
    #[error("not a {what}: {reason}")]
    Malformed {
        /// What was expected.
        what: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// A field is empty, too long or not printable.
    #[error("field `{0}` is empty, longer than 200 characters or not printable")]
    BadField(&'static str),
    /// The nonce is not 32 hex characters.
    #[error("nonce is not 32 hex characters")]
    BadNonce,
}

/// What an engine asks the vendor for: a node-locked token for this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationRequest {
    /// The license (it comes with the license, as the API key does).
    pub license_id: String,
    /// The machine's hardware id: the token works only there.
    pub hardware_id: String,
    /// The engine's instance id.
    pub instance_id: String,
    /// The host's version (`product-version`).
    pub version: String,
    /// A fresh nonce, echoed into the token and kept by both sides.
    pub nonce: String,
    /// When it was written (RFC 3339, the engine's clock: for the vendor's eyes only).
    pub created_at: String,
}

impl ActivationRequest {
    /// The request as one base64url line.
    pub fn to_line(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("plain strings serialize"))
    }

    /// Reads a request from its JSON or its base64url line, and checks its fields.
    pub fn parse(text: &str) -> Result<Self, OfflineError> {
        let r: ActivationRequest = parse_document(text, "activation request")?;
        for (name, value) in [
            ("license_id", &r.license_id),
            ("hardware_id", &r.hardware_id),
            ("instance_id", &r.instance_id),
        ] {
            check_id(name, value)?;
        }
        if r.version.len() > MAX_ID || r.created_at.len() > MAX_ID {
            return Err(OfflineError::BadField("version"));
        }
        check_nonce(&r.nonce)?;
        Ok(r)
    }
}

/// Most seats one relay's grant may ask for.
pub const MAX_GRANT_SEATS: u32 = 100_000;

/// What an on-site relay asks the vendor for: a grant of `seats` seats of a license for
/// its own Ed25519 key, node-locked to its machine. It travels like an activation request
/// (JSON or one line) to a vendor the relay cannot reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The license.
    pub license_id: String,
    /// Seats the relay will serve at once.
    pub seats: u32,
    /// The relay machine's hardware id.
    pub hardware_id: String,
    /// The relay's public key, a JWK (`kty` OKP, `crv` Ed25519, with its `kid`).
    pub public_key: serde_json::Value,
    /// A fresh nonce, echoed into the grant.
    pub nonce: String,
    /// When it was written (RFC 3339, the relay's clock: for the vendor's eyes only).
    pub created_at: String,
    /// A renewal's report of the relay's seat usage since its last grant: a JWS signed
    /// by the relay's key, which the vendor adds to the license's usage report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
}

/// Largest grant request read: a renewal carries the site's busy hours since the last one
/// (within a request body the server takes).
pub const MAX_GRANT_REQUEST_BYTES: usize = 48 * 1024;

impl GrantRequest {
    /// The request as one base64url line.
    pub fn to_line(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("plain values serialize"))
    }

    /// Reads a request from its JSON or its base64url line, and checks its fields: ids,
    /// 1 to [`MAX_GRANT_SEATS`] seats, the nonce, and a usable Ed25519 public key.
    pub fn parse(text: &str) -> Result<Self, OfflineError> {
        let r: GrantRequest =
            parse_document_within(text, "relay grant request", MAX_GRANT_REQUEST_BYTES)?;
        check_id("license_id", &r.license_id)?;
        check_id("hardware_id", &r.hardware_id)?;
        if r.created_at.len() > MAX_ID {
            return Err(OfflineError::BadField("created_at"));
        }
        if !(1..=MAX_GRANT_SEATS).contains(&r.seats) {
            return Err(OfflineError::BadField("seats"));
        }
        check_nonce(&r.nonce)?;
        let ed25519 = r.public_key.get("kty").and_then(|v| v.as_str()) == Some("OKP")
            && r.public_key.get("crv").and_then(|v| v.as_str()) == Some("Ed25519");
        let kid_ok = r
            .public_key
            .get("kid")
            .and_then(|v| v.as_str())
            .is_some_and(|k| check_id("public_key", k).is_ok());
        let usable = crate::token::KeySet::from_json_value(&serde_json::json!({
            "keys": [r.public_key.clone()]
        }))
        .is_ok();
        if !(ed25519 && kid_ok && usable) {
            return Err(OfflineError::BadField("public_key"));
        }
        Ok(r)
    }

    /// The relay key's id.
    pub fn kid(&self) -> &str {
        self.public_key
            .get("kid")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }
}

/// What an engine prints when it deletes its activation, for the vendor to free the seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeactivationCode {
    /// The activation token's `jti`.
    pub jti: String,
    /// The hardware id it was locked to.
    pub hwid: String,
    /// HMAC-SHA256 of `jti` and `hwid` keyed with the request's nonce, hex.
    pub mac: String,
}

fn mac_of(jti: &str, hwid: &str, nonce: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(nonce.as_bytes()).expect("HMAC takes any key");
    m.update(jti.as_bytes());
    m.update(b"\n");
    m.update(hwid.as_bytes());
    m
}

impl DeactivationCode {
    /// The code for the activation `jti` on `hwid`, whose request carried `nonce`.
    pub fn new(jti: &str, hwid: &str, nonce: &str) -> Self {
        DeactivationCode {
            jti: jti.to_string(),
            hwid: hwid.to_string(),
            mac: hex::encode(mac_of(jti, hwid, nonce).finalize().into_bytes()),
        }
    }

    /// The code as one base64url line.
    pub fn to_line(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("plain strings serialize"))
    }

    /// Reads a code from its base64url line or its JSON.
    pub fn parse(text: &str) -> Result<Self, OfflineError> {
        let c: DeactivationCode = parse_document(text, "deactivation code")?;
        check_id("jti", &c.jti)?;
        check_id("hwid", &c.hwid)?;
        Ok(c)
    }

    /// Whether the MAC is the one `nonce` gives (in constant time).
    pub fn verifies(&self, nonce: &str) -> bool {
        let Ok(mac) = hex::decode(&self.mac) else {
            return false;
        };
        mac_of(&self.jti, &self.hwid, nonce)
            .verify_slice(&mac)
            .is_ok()
    }
}

fn parse_document<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
) -> Result<T, OfflineError> {
    parse_document_within(text, what, MAX_DOCUMENT_BYTES)
}

fn parse_document_within<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
    max: usize,
) -> Result<T, OfflineError> {
    let text = text.trim();
    if text.len() > max {
        return Err(OfflineError::TooLarge(max));
    }
    let malformed = |reason: String| OfflineError::Malformed { what, reason };
    if text.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| malformed(e.to_string()));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| malformed(format!("neither JSON nor base64url: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))
}

fn check_id(name: &'static str, value: &str) -> Result<(), OfflineError> {
    if value.is_empty() || value.len() > MAX_ID || value.chars().any(char::is_control) {
        return Err(OfflineError::BadField(name));
    }
    Ok(())
}

fn check_nonce(nonce: &str) -> Result<(), OfflineError> {
    if nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(OfflineError::BadNonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ActivationRequest {
        ActivationRequest {
            license_id: "org-site".into(),
            hardware_id: "hw-1".into(),
            instance_id: "i-1".into(),
            version: "1.2.3".into(),
            nonce: "0123456789abcdef0123456789abcdef".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_request_reads_back_from_json_and_from_its_line() {
        let r = request();
        assert_eq!(ActivationRequest::parse(&r.to_line()).unwrap(), r);
        let json = serde_json::to_string_pretty(&r).unwrap();
        assert_eq!(ActivationRequest::parse(&format!("\n{json}\n")).unwrap(), r);
        assert!(!r.to_line().contains(['+', '/', '=', '\n']));
    }

    #[test]
    fn a_bad_request_says_what_is_wrong() {
        type Edit = fn(&mut ActivationRequest);
        let cases: [(&str, Edit); 4] = [
            ("field `license_id`", |r| r.license_id.clear()),
            ("field `hardware_id`", |r| r.hardware_id = "a\nb".into()),
            ("nonce", |r| r.nonce = "short".into()),
            ("field `instance_id`", |r| r.instance_id = "x".repeat(201)),
        ];
        for (want, edit) in cases {
            let mut r = request();
            edit(&mut r);
            let e = ActivationRequest::parse(&r.to_line()).unwrap_err();
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        for text in ["", "garbage!", "{\"license_id\": 3}", "e30"] {
            assert!(matches!(
                ActivationRequest::parse(text),
                Err(OfflineError::Malformed { .. })
            ));
        }
        let mut extra = serde_json::to_value(request()).unwrap();
        extra["seats"] = 5.into();
        assert!(ActivationRequest::parse(&extra.to_string()).is_err());
        assert_eq!(
            ActivationRequest::parse(&"A".repeat(MAX_DOCUMENT_BYTES + 1)),
            Err(OfflineError::TooLarge(MAX_DOCUMENT_BYTES))
        );
    }

    #[test]
    fn a_code_verifies_only_with_its_nonce_and_unchanged() {
        let nonce = "0123456789abcdef0123456789abcdef";
        let code = DeactivationCode::new("jti-1", "hw-1", nonce);
        let read = DeactivationCode::parse(&code.to_line()).unwrap();
        assert_eq!(read, code);
        assert!(read.verifies(nonce));
        assert!(!read.verifies("ffffffffffffffffffffffffffffffff"));
        for edit in [
            |c: &mut DeactivationCode| c.jti = "jti-2".into(),
            |c: &mut DeactivationCode| c.hwid = "hw-2".into(),
            |c: &mut DeactivationCode| c.mac = "00".repeat(32),
            |c: &mut DeactivationCode| c.mac = "not hex".into(),
        ] {
            let mut c = code.clone();
            edit(&mut c);
            assert!(!c.verifies(nonce), "{c:?}");
        }
    }

    #[test]
    fn a_grant_request_reads_back_and_refuses_what_cannot_be_granted() {
        let key = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "relay-1",
            "x": "efCzbMLZVdnHgP-CF2mT8I0hpavsG6hBCyCWh7W6gNc"});
        let good = GrantRequest {
            license_id: "org-site".into(),
            seats: 5,
            hardware_id: "relay-hw".into(),
            public_key: key.clone(),
            nonce: "0123456789abcdef0123456789abcdef".into(),
            created_at: "2026-12-07T00:00:00Z".into(),
            usage: None,
        };
        assert_eq!(GrantRequest::parse(&good.to_line()).unwrap(), good);
        let json = serde_json::to_string(&good).unwrap();
        assert_eq!(GrantRequest::parse(&json).unwrap().kid(), "relay-1");
        let bad = |edit: &dyn Fn(&mut GrantRequest)| {
            let mut r = good.clone();
            edit(&mut r);
            GrantRequest::parse(&r.to_line()).unwrap_err()
        };
        assert_eq!(bad(&|r| r.seats = 0), OfflineError::BadField("seats"));
        assert_eq!(
            bad(&|r| r.seats = MAX_GRANT_SEATS + 1),
            OfflineError::BadField("seats")
        );
        assert_eq!(bad(&|r| r.nonce = "short".into()), OfflineError::BadNonce);
        assert_eq!(
            bad(&|r| r.hardware_id = String::new()),
            OfflineError::BadField("hardware_id")
        );
        for key in [
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": key["x"]}),
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "short"}),
            serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k", "x": "a", "y": "b"}),
            serde_json::json!("a string"),
        ] {
            assert_eq!(
                bad(&|r| r.public_key = key.clone()),
                OfflineError::BadField("public_key"),
                "{key}"
            );
        }
    }
}
