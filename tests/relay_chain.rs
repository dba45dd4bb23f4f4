//! A relay's tokens (`docs/reference/protocol.md`, relays): signed by the relay's own key, accepted only
//! through the vendor's grant in their header — the chain vendor key → grant → relay key
//! → seat token, with the grant's license, tier and end as upper bounds and its
//! entitlements the only ones that count.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lic4es::token::{src, Policy, TokenError, GRANT_HEADER};
use lic4es::Tier;
use serde_json::{json, Value};

fn policy() -> Policy {
    test_policy()
}

/// The relay's public key, as the grant names it.
fn relay_jwk() -> Value {
    let set: Value =
        serde_json::from_str(&std::fs::read_to_string(keys_dir().join("jwks-other.json")).unwrap())
            .unwrap();
    set["keys"][0].clone()
}

/// The vendor's grant: Team, three seats, thirty days, for the relay key.
fn grant_claims() -> Value {
    let mut c = claims("team", NOW + 30 * DAY);
    c["src"] = json!(src::RELAY_GRANT);
    c["sub"] = json!("org-site");
    c["seats"] = json!(3);
    c["hwid"] = json!("relay-machine");
    c["cnf"] = json!({ "jwk": relay_jwk() });
    c
}

/// A seat token the relay signs, carrying `grant` in its header.
fn relayed(claims: &Value, grant: &str) -> String {
    relayed_by(claims, grant, "test-ed-other", "ed25519-other.pem")
}

fn relayed_by(claims: &Value, grant: &str, kid: &str, pem: &str) -> String {
    let key = EncodingKey::from_ed_pem(&std::fs::read(keys_dir().join(pem)).unwrap()).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.into());
    header.extras.insert(GRANT_HEADER, grant);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// What the relay writes: a seat token of the grant's license for a day.
fn seat_claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "org-site",
        "iat": NOW,
        "exp": NOW + DAY,
        "tier": "team",
        "src": "seat",
        "sid": "rel-ses-1",
        "hwid": "engine-machine",
        "nonce": "0123456789abcdef0123456789abcdef",
        "grace_seconds": 3 * DAY,
        "features": ["everything", "sso"],
        "quotas": {"max_clusters": null},
        "grace_days": 30,
        "org_name": "Not Acme"
    })
}

#[test]
fn a_relay_token_counts_through_its_grant_and_only_within_it() {
    let grant = mint(&grant_claims());
    let checked = policy()
        .check(&relayed(&seat_claims(), &grant), NOW)
        .expect("a relay's token through a valid grant");
    let c = &checked.claims;
    assert_eq!(c.tier, Tier::Team);
    assert_eq!(c.sid.as_deref(), Some("rel-ses-1"));
    let r = c.relay.as_ref().expect("accepted as a relay's");
    assert_eq!((r.kid.as_str(), r.seats), ("test-ed-other", 3));
    assert_eq!(r.hwid.as_deref(), Some("relay-machine"));
    // What it entitles to is the grant's; no grace after the token; never past the grant.
    let vendor = claims("team", NOW + 30 * DAY);
    let features: Vec<String> = serde_json::from_value(vendor["features"].clone()).unwrap();
    assert_eq!(c.features.iter().cloned().collect::<Vec<_>>(), {
        let mut f = features;
        f.sort();
        f
    });
    assert_eq!(c.quotas.get("max_clusters"), Some(&Some(5)));
    assert_eq!(c.org_name.as_deref(), Some("Acme Corp"));
    assert_eq!(c.grace_days, Some(0));
    assert_eq!(c.lic_exp, Some(NOW + 30 * DAY));
    // The clock's leeway is all it has past its end.
    assert_eq!(policy().end_of_grace(c), NOW + DAY + policy().skew_secs);
}

#[test]
fn a_relay_token_beyond_or_without_its_grant_is_refused() {
    let good = mint(&grant_claims());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = grant_claims();
        f(&mut c);
        mint(&c)
    };
    let seat = |f: &dyn Fn(&mut Value)| {
        let mut c = seat_claims();
        f(&mut c);
        c
    };
    let self_granted = relayed(&grant_claims(), "none");
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        let mut c = grant_claims();
        c["seats"] = json!(300);
        parts[1] = base64_url(&c);
        parts.join(".")
    };
    // (what, token, words the refusal must carry)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no grant in the header",
            jsonwebtoken::encode(
                &{
                    let mut h = Header::new(Algorithm::EdDSA);
                    h.kid = Some("test-ed-other".into());
                    h
                },
                &seat_claims(),
                &EncodingKey::from_ed_pem(
                    &std::fs::read(keys_dir().join("ed25519-other.pem")).unwrap(),
                )
                .unwrap(),
            )
            .unwrap(),
            "no trusted public key",
        ),
        (
            "a grant the relay signed itself",
            relayed(&seat_claims(), &self_granted),
            "grant does not verify",
        ),
        (
            "a grant changed after signing",
            relayed(&seat_claims(), &tampered),
            "grant does not verify",
        ),
        (
            "a grant that is a plain token",
            relayed(&seat_claims(), &mint(&claims("team", NOW + DAY))),
            "not issued as a relay's grant",
        ),
        (
            "a grant for another key",
            relayed(
                &seat_claims(),
                &with(&|c| c["cnf"]["jwk"] = jwks()["keys"][0].clone()),
            ),
            "not signed by the Ed25519 key its grant names",
        ),
        (
            "a grant with no key",
            relayed(&seat_claims(), &with(&|c| c["cnf"] = json!({}))),
            "names no relay key",
        ),
        (
            "a grant with no seats",
            relayed(&seat_claims(), &with(&|c| c["seats"] = json!("many"))),
            "names no number of seats",
        ),
        (
            "a token signed by another key under a good grant",
            relayed_by(&seat_claims(), &good, "test-ed-other", "ed25519-1.pem"),
            "signature does not verify",
        ),
        (
            "a higher tier",
            relayed(&seat(&|c| c["tier"] = json!("enterprise")), &good),
            "tier is above",
        ),
        (
            "a tier no one knows",
            relayed(&seat(&|c| c["tier"] = json!("gold")), &good),
            "tier is above",
        ),
        (
            "past the grant's end",
            relayed(&seat(&|c| c["exp"] = json!(NOW + 31 * DAY)), &good),
            "past its grant's end",
        ),
        (
            "another license",
            relayed(&seat(&|c| c["sub"] = json!("org-other")), &good),
            "names license `org-other`",
        ),
        (
            "another issuer",
            relayed(&seat(&|c| c["iss"] = json!("https://relay.local")), &good),
            "issuer is not its grant's",
        ),
        (
            "not a seat token",
            relayed(&seat(&|c| c["src"] = json!("api_key")), &good),
            "seat tokens only",
        ),
        (
            "a grant that is no string",
            {
                let key = EncodingKey::from_ed_pem(
                    &std::fs::read(keys_dir().join("ed25519-other.pem")).unwrap(),
                )
                .unwrap();
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some("test-ed-other".into());
                header.extras.insert(GRANT_HEADER, json!({"nested": good}));
                jsonwebtoken::encode(&header, &seat_claims(), &key).unwrap()
            },
            "grant is not a token",
        ),
    ];
    for (what, token, words) in cases {
        let err = policy().check(&token, NOW).map(|c| c.claims).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(words), "{what}: {text}");
        if words != "no trusted public key" && words != "signature does not verify" {
            assert!(matches!(err, TokenError::Relay(_)), "{what}: {err:?}");
        }
    }
}

#[test]
fn a_relay_token_ends_with_its_grant_under_a_moved_clock() {
    let grant = mint(&grant_claims());
    // The relay issued a token to the grant's last second; the clock moves past it.
    let last = relayed(&seat(NOW + 30 * DAY), &grant);
    assert!(policy().check(&last, NOW + 30 * DAY - 1).is_ok());
    let err = policy().check(&last, NOW + 30 * DAY + 61).unwrap_err();
    assert!(matches!(err, TokenError::Expired { .. }), "{err:?}");
}

fn seat(exp: i64) -> Value {
    let mut c = seat_claims();
    c["exp"] = json!(exp);
    c
}

fn base64_url(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}
