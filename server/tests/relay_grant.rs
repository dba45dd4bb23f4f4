//! The vendor's side of an on-site relay: a grant answers the relay's request (admin API
//! and `license-server offline grant`), holds its seats among the license's until it ends,
//! is replaced by the relay's next grant, and makes an engine accept tokens the relay
//! signs with its own key — within the grant (`docs/reference/protocol.md`, relays).

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lic4es::offline::GrantRequest;
use lic4es::token::{KeySet, Policy, TokenError, GRANT_HEADER};
use lic4es::Tier;
use serde_json::{json, Value};

/// The relay's key pair: the engine crate's second test key.
fn relay_key() -> (Value, EncodingKey) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/keys");
    let set: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("jwks-other.json")).unwrap())
            .unwrap();
    let pem = std::fs::read(dir.join("ed25519-other.pem")).unwrap();
    (
        set["keys"][0].clone(),
        EncodingKey::from_ed_pem(&pem).unwrap(),
    )
}

fn request(license: &str, seats: u32, hw: &str) -> GrantRequest {
    GrantRequest {
        license_id: license.into(),
        seats,
        hardware_id: hw.into(),
        public_key: relay_key().0,
        nonce: NONCE.into(),
        created_at: "2026-12-07T00:00:00Z".into(),
        usage: None,
    }
}

/// The claims of a JWT, unverified.
fn claims_of(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn acquire(s: &Server, key: &str, n: u32) -> u16 {
    let body = json!({"hardware_id": format!("hw-{n}"), "instance_id": "i", "version": "1",
                      "nonce": NONCE});
    s.acquire(key, body).0
}

/// The vendor's answer to a relay's grant request `body` (`POST /admin/relay-grants`).
fn answer(s: &Server, body: Value) -> (u16, Value) {
    s.admin("POST", "/admin/relay-grants", body)
}

#[test]
fn a_grant_holds_its_seats_is_renewed_in_place_and_lets_the_relay_sign_within_it() {
    let s = Server::start();
    let (license, key) = s.license(
        "team",
        json!({"id": "org-site", "seats": 3, "relay_grant_days": 30}),
    );
    let (status, g) = answer(
        &s,
        json!({"request": request(&license, 2, "relay-hw").to_line()}),
    );
    assert_eq!(status, 201, "{g}");
    assert_eq!(
        (g["seats"].as_u64(), g["counted"].as_bool()),
        (Some(2), Some(true))
    );
    let grant = g["grant"].as_str().unwrap().to_string();
    let claims = claims_of(&grant);
    assert_eq!(claims["src"], "relay_grant");
    assert_eq!(claims["hwid"], "relay-hw");
    assert_eq!(claims["nonce"], NONCE);
    assert_eq!(claims["cnf"]["jwk"], relay_key().0);
    assert_eq!(claims["exp"].as_i64(), Some(NOW + 30 * 86_400));

    // Two of three seats are the relay's: one engine online, the next refused.
    assert_eq!(acquire(&s, &key, 1), 200);
    assert_eq!(acquire(&s, &key, 2), 403);

    // The relay's renewal replaces its grant: still two seats held, not four.
    let (status, renewed) = answer(
        &s,
        serde_json::to_value(request(&license, 2, "relay-hw")).unwrap(),
    );
    assert_eq!(status, 201, "{renewed}");
    assert_ne!(renewed["grant_id"], g["grant_id"]);
    let (_, sessions) = s.admin("GET", "/admin/sessions?license=org-site", Value::Null);
    let ids: Vec<&str> = common::strings(&sessions, "session_id");
    let relay_seats = ids.iter().filter(|i| i.starts_with("rel-")).count();
    assert_eq!(relay_seats, 2, "{ids:?}");
    assert!(ids
        .iter()
        .filter(|i| i.starts_with("rel-"))
        .all(|i| i.starts_with(renewed["grant_id"].as_str().unwrap())));

    // Asking for one seat more than is free is refused, and the grant in force keeps its
    // two.
    let (status, more) = answer(
        &s,
        serde_json::to_value(request(&license, 3, "relay-hw")).unwrap(),
    );
    refused(status, &more, 403, "no_seats_available");
    let (_, sessions) = s.admin("GET", "/admin/sessions?license=org-site", Value::Null);
    let held: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["session_id"].as_str())
        .filter(|i| i.starts_with(renewed["grant_id"].as_str().unwrap()))
        .collect();
    assert_eq!(held.len(), 2, "{sessions}");

    // An engine takes the relay's token through the grant, and only within it.
    let policy = Policy {
        keys: KeySet::from_json_value(&s.state.key.public_jwks()).unwrap(),
        issuer: s.state.config.issuer.clone(),
        skew_secs: 60,
        grace_secs: 0,
    };
    let (jwk, relay) = relay_key();
    let sign = |tier: &str, exp: i64| -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(jwk["kid"].as_str().unwrap().into());
        h.extras
            .insert(GRANT_HEADER, renewed["grant"].as_str().unwrap());
        let c = json!({"iss": s.state.config.issuer, "sub": "org-site", "iat": NOW,
                       "exp": exp, "tier": tier, "src": "seat", "sid": "rel-s-1",
                       "hwid": "engine", "nonce": NONCE, "features": ["made-up"]});
        jsonwebtoken::encode(&h, &c, &relay).unwrap()
    };
    let ok = policy.check(&sign("team", NOW + 600), NOW).unwrap();
    assert_eq!(ok.claims.tier, Tier::Team);
    assert_eq!(ok.claims.relay.as_ref().map(|r| r.seats), Some(2));
    assert!(!ok.claims.features.contains("made-up"));
    for bad in [
        sign("enterprise", NOW + 600),
        sign("team", NOW + 31 * 86_400),
    ] {
        let e = policy.check(&bad, NOW).unwrap_err();
        assert!(matches!(e, TokenError::Relay(_)), "{e}");
    }
}

#[test]
fn a_grant_is_refused_beyond_the_license_or_its_policy() {
    let s = Server::start();
    let (license, _) = s.license(
        "team",
        json!({"id": "org-small", "seats": 2, "relay_grant_days": 30}),
    );
    let (pro, _) = s.license("pro", json!({"id": "org-pro", "seats": 5}));
    let cases = [
        (request(&license, 3, "relay-hw"), 400, "invalid_request"),
        (request(&pro, 1, "relay-hw"), 403, "relay_grant_not_allowed"),
        (request("org-none", 1, "relay-hw"), 404, "not_found"),
    ];
    for (req, status, code) in cases {
        let (got, body) = answer(&s, serde_json::to_value(&req).unwrap());
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let (got, body) = answer(&s, json!({"request": "not a request"}));
    refused(got, &body, 400, "invalid_request");
    // Nothing was held by the refusals, and the audit trail names each seat granted.
    let (status, _) = answer(
        &s,
        serde_json::to_value(request(&license, 2, "relay-hw")).unwrap(),
    );
    assert_eq!(status, 201);
    let (_, audit) = s.admin("GET", "/admin/audit?license=org-small", Value::Null);
    let granted = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "relay_grant")
        .count();
    assert_eq!(granted, 2, "{audit}");
}

/// A stand-in for the on-site relay between an engine and the server: every seat token
/// the server answers is signed again by the relay's key, with the grant in its header
/// and the tier `tier` — as a relay that holds the grant would issue it.
fn signing_relay(s: &Server, grant: String, tier: &'static str) -> common::relay::Relay {
    common::relay::Relay::start(s.port, move |req, up| {
        let mut a = up.forward(req, &req.body);
        if let Some(jwt) = a.body["license"].as_str() {
            let mut c = claims_of(jwt);
            c["tier"] = json!(tier);
            let (jwk, key) = relay_key();
            let mut h = Header::new(Algorithm::EdDSA);
            h.kid = Some(jwk["kid"].as_str().unwrap().into());
            h.extras.insert(GRANT_HEADER, grant.as_str());
            a.body["license"] = json!(jsonwebtoken::encode(&h, &c, &key).unwrap());
        }
        a
    })
}

#[test]
fn an_engine_runs_on_a_relay_s_tokens_within_the_grant_and_says_so() {
    let s = Server::on_wall_time();
    let (license, key) = s.license(
        "team",
        json!({"id": "org-relayed", "seats": 4, "relay_grant_days": 30}),
    );
    let (_, g) = answer(
        &s,
        json!({"request": request(&license, 1, "relay-hw").to_line()}),
    );
    let grant = g["grant"].as_str().unwrap().to_string();

    let relay = signing_relay(&s, grant.clone(), "team");
    let dir = tempfile::tempdir().unwrap();
    let (e, logs) = common::engine::engine(
        &s,
        dir.path(),
        &key,
        json!({"api-url": relay.url(), "seat.enabled": true}),
    );
    assert_eq!(e.tier(), Tier::Team, "{}", logs.dump());
    let st = common::engine::status(&e);
    assert_eq!(st["seat"]["state"], "online", "{st}");
    assert_eq!(st["relay"]["key_id"], "test-ed-other", "{st}");
    assert_eq!(st["relay"]["seats"], 1, "{st}");
    assert_eq!(st["relay"]["grant_until"], g["expires_at"], "{st}");
    s.advance(300);
    e.refresh_now()
        .expect("a heartbeat answered through the relay");
    assert_eq!(e.tier(), Tier::Team);
    e.shutdown().unwrap();

    // A relay that writes a higher tier than its grant's gets nothing taken.
    let greedy = signing_relay(&s, grant, "enterprise");
    let dir = tempfile::tempdir().unwrap();
    let (e, logs) = common::engine::engine(
        &s,
        dir.path(),
        &key,
        json!({"api-url": greedy.url(), "seat.enabled": true}),
    );
    assert_eq!(e.tier(), Tier::Community, "{}", logs.dump());
    assert!(logs.has("tier is above its grant's"), "{}", logs.dump());
    assert_eq!(common::engine::status(&e)["relay"], Value::Null);
    e.shutdown().unwrap();

    // Behind `relay-url` an engine takes a relay's tokens, and refuses the vendor's own
    // even from a server that would grant it a seat.
    let relay = signing_relay(&s, g["grant"].as_str().unwrap().to_string(), "team");
    for (url, tier) in [
        (relay.url(), Tier::Team),
        (format!("http://127.0.0.1:{}", s.port), Tier::Community),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (e, logs) = common::engine::engine(
            &s,
            dir.path(),
            &key,
            json!({"relay-url": url, "seat.enabled": true}),
        );
        assert_eq!(e.tier(), tier, "{url}: {}", logs.dump());
        if tier == Tier::Community {
            assert!(
                logs.has("relay-url takes only a relay's tokens"),
                "{}",
                logs.dump()
            );
        }
        e.shutdown().unwrap();
    }
}

/// A renewal's usage report counts only when the relay's key (the request's) signed it, and
/// only for the request's license.
#[test]
fn a_usage_report_is_taken_only_as_the_relay_s_key_signed_it() {
    let s = Server::start();
    let (license, _) = s.license(
        "team",
        json!({"id": "org-reports", "seats": 2, "relay_grant_days": 30}),
    );
    let hour = common::NOW - common::NOW.rem_euclid(3_600) - 3_600;
    let report = |license: &str| json!({"license": license, "hours": [[hour, 1, 1]]});
    let signed = |claims: &Value, pem: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/keys");
        let key = EncodingKey::from_ed_pem(&std::fs::read(dir.join(pem)).unwrap()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).unwrap()
    };
    let with_usage = |usage: String| {
        let mut r = request(&license, 1, "relay-hw");
        r.usage = Some(usage);
        serde_json::to_value(r).unwrap()
    };
    for (usage, why) in [
        (
            signed(&report(&license), "ed25519-1.pem"),
            "another key signed it",
        ),
        (
            signed(&report("org-other"), "ed25519-other.pem"),
            "another license's",
        ),
        ("x.y.z".to_string(), "not a JWS"),
    ] {
        let (status, body) = answer(&s, with_usage(usage));
        assert_eq!(status, 400, "{why}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("usage report"),
            "{why}: {body}"
        );
    }
    let usage = signed(&report(&license), "ed25519-other.pem");
    let (status, body) = answer(&s, with_usage(usage));
    assert_eq!(status, 201, "{body}");
    let (_, audit) = s.admin("GET", "/admin/audit?license=org-reports", Value::Null);
    assert!(
        audit
            .to_string()
            .contains("1 hours of use, peak 1 seats, 1 refusals"),
        "{audit}"
    );
}
