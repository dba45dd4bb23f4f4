//! Token rules (`docs/reference/protocol.md`): allowed algorithms, key ids, claims and time.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lic4es::token::{GracePhase, KeySet, Policy, Standing, TokenError};
use lic4es::Tier;
use serde_json::{json, Value};

fn policy() -> Policy {
    test_policy()
}

fn check(tok: &str) -> Result<lic4es::token::Checked, TokenError> {
    policy().check(tok, NOW)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn eddsa_rs256_and_es256_tokens_verify() {
    let c = claims("Pro", NOW + DAY);
    for (alg, kid) in [
        (Algorithm::EdDSA, "test-ed-1"),
        (Algorithm::RS256, "test-rsa"),
        (Algorithm::ES256, "test-p256"),
    ] {
        let checked = check(&mint_with(&c, alg, kid)).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(checked.claims.tier, Tier::Pro);
        assert_eq!(checked.standing, Standing::Valid);
    }
}

#[test]
fn alg_none_is_rejected() {
    let c = claims("pro", NOW + DAY);
    let tok = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "test-ed-1"})),
        b64(&c)
    );
    assert_eq!(
        check(&tok).unwrap_err(),
        TokenError::AlgNotAllowed("none".into())
    );
}

#[test]
fn hs256_signed_with_the_public_key_bytes_is_rejected() {
    let jwk = &jwks()["keys"][0];
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-ed-1".into());
    for secret in [x.as_slice(), jwk["x"].as_str().unwrap().as_bytes()] {
        let tok = jsonwebtoken::encode(
            &header,
            &claims("enterprise", NOW + DAY),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_eq!(
            check(&tok).unwrap_err(),
            TokenError::AlgNotAllowed("HS256".into())
        );
    }
}

#[test]
fn other_algorithms_are_rejected() {
    for alg in ["HS512", "RS512", "PS256", "ES384", "eddsa", ""] {
        let tok = format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": alg, "kid": "test-ed-1"})),
            b64(&claims("pro", NOW + DAY))
        );
        assert!(
            matches!(check(&tok), Err(TokenError::AlgNotAllowed(_))),
            "{alg} accepted"
        );
    }
}

#[test]
fn unknown_or_missing_kid_is_rejected() {
    let c = claims("pro", NOW + DAY);
    let tok = mint_with(&c, Algorithm::EdDSA, "test-ed-other");
    assert_eq!(
        check(&tok).unwrap_err(),
        TokenError::UnknownKid("test-ed-other".into())
    );

    let key = EncodingKey::from_ed_pem(&std::fs::read(keys_dir().join("ed25519-1.pem")).unwrap())
        .unwrap();
    let tok = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &c, &key).unwrap();
    assert_eq!(check(&tok).unwrap_err(), TokenError::MissingKid);
}

#[test]
fn key_type_must_match_alg() {
    // An ES256 token whose kid names the Ed25519 key.
    let tok = mint_with(&claims("pro", NOW + DAY), Algorithm::ES256, "test-ed-1");
    assert!(matches!(check(&tok), Err(TokenError::KeyMismatch { .. })));
}

#[test]
fn wrong_issuer_is_rejected() {
    let mut c = claims("pro", NOW + DAY);
    c["iss"] = json!("https://evil.example.com");
    assert!(matches!(
        check(&mint(&c)),
        Err(TokenError::WrongIssuer { .. })
    ));
}

#[test]
fn tampered_payload_is_rejected() {
    let tok = token("pro", 1);
    let parts: Vec<&str> = tok.split('.').collect();
    let mut c = claims("pro", NOW + DAY);
    c["tier"] = json!("enterprise");
    let forged = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
    assert_eq!(check(&forged).unwrap_err(), TokenError::BadSignature);
}

#[test]
fn nbf_in_the_future_is_rejected() {
    let mut c = claims("pro", NOW + 10 * DAY);
    c["nbf"] = json!(NOW + 3600);
    assert!(matches!(check(&mint(&c)), Err(TokenError::NotYetValid(_))));
}

#[test]
fn oversized_token_is_rejected_before_parsing() {
    let mut c = claims("pro", NOW + DAY);
    c["padding"] = json!("x".repeat(17 * 1024));
    let tok = mint(&c);
    assert!(tok.len() > 16 * 1024);
    assert!(matches!(check(&tok), Err(TokenError::TooLarge(_))));
}

#[test]
fn garbage_strings_are_rejected_without_panicking() {
    let samples = [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "a.b.c.d",
        "🦀.🦀.🦀",
        "eyJhbGciOiJFZERTQSJ9..",
        "eyJhbGciOiJFZERTQSJ9.e30.",
        "e30.e30.e30",
        "W10.W10.W10",
        "bnVsbA.bnVsbA.bnVsbA",
        "\0\0\0",
        "eyJhbGciOiJFZERTQSIsImtpZCI6InRlc3QtZWQtMSJ9.eyJ9.AAAA",
        "eyJhbGciOiJFZERTQSIsImtpZCI6InRlc3QtZWQtMSJ9.e30.!!!",
    ];
    for s in samples {
        assert!(check(s).is_err(), "{s:?} accepted");
    }
    // Random bytes in every position.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let len = (seed % 200) as usize;
        let s: String = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b"eyJ.abcXYZ_-019+/="[(seed % 18) as usize] as char
            })
            .collect();
        let _ = check(&s);
    }
}

#[test]
fn wrong_claim_types_are_rejected_with_the_claim_named() {
    for (name, value) in [
        ("exp", json!("tomorrow")),
        ("features", json!("all")),
        ("quotas", json!({"max_joins": "many"})),
        ("trial", json!("yes")),
        ("sub", json!(42)),
    ] {
        let mut c = claims("pro", NOW + DAY);
        c[name] = value;
        let err = check(&mint(&c)).unwrap_err().to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
    let mut c = claims("pro", NOW + DAY);
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check(&mint(&c)).unwrap_err(),
        TokenError::MissingClaim("exp")
    );
    c = claims("pro", NOW + DAY);
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        check(&mint(&c)).unwrap_err(),
        TokenError::MissingClaim("sub")
    );
}

#[test]
fn grace_phases_and_day_counts() {
    let p = policy();
    let c = p.keys.verify(&token("pro", 0)).unwrap();
    let at = |secs: i64| p.standing(&c, NOW + secs);
    assert_eq!(at(59), Ok(Standing::Valid), "within skew");
    assert_eq!(
        at(DAY + 5),
        Ok(Standing::Grace {
            phase: GracePhase::Early,
            days_ago: 1,
            days_left: 12
        })
    );
    assert_eq!(
        at(7 * DAY),
        Ok(Standing::Grace {
            phase: GracePhase::Mid,
            days_ago: 7,
            days_left: 7
        })
    );
    assert_eq!(
        at(14 * DAY - 1),
        Ok(Standing::Grace {
            phase: GracePhase::Mid,
            days_ago: 13,
            days_left: 0
        })
    );
    assert_eq!(at(14 * DAY), Err(TokenError::Expired { days: 14 }));
}

#[test]
fn tier_claim_is_case_insensitive_and_trimmed() {
    let c = claims("  TEAM ", NOW + DAY);
    assert_eq!(check(&mint(&c)).unwrap().claims.tier, Tier::Team);
}

#[test]
fn bad_jwks_are_config_errors() {
    for bad in [
        json!({"kty": "OKP"}),
        json!([{"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "short"}]),
        json!([{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]),
        json!([{"kty": "OKP", "crv": "X25519", "x": "AAAA", "kid": "x"}]),
        json!({"keys": "nope"}),
        json!([jwks()["keys"][0], jwks()["keys"][0]]),
    ] {
        assert!(KeySet::from_json_value(&bad).is_err(), "{bad} accepted");
    }
    assert_eq!(
        KeySet::from_json_value(&jwks()).unwrap().kids(),
        vec!["test-ed-1", "test-rsa", "test-p256"]
    );
}

fn no_raw_control(s: &str) -> bool {
    !s.chars().any(|c| c.is_control())
}

#[test]
fn a_hostile_kid_cannot_forge_a_log_line() {
    let f = Fixture::new();
    let kid = "k\nlic4es: ERROR: License revoked: forged\u{1b}[31m";
    let e =
        f.start(json!({"key": mint_with(&claims("pro", NOW + 30 * DAY), Algorithm::EdDSA, kid)}));
    assert_eq!(e.tier(), Tier::Community);
    let logs = f.logs.all();
    assert!(!logs.is_empty());
    for (_, line) in &logs {
        assert!(no_raw_control(line), "raw control character in {line:?}");
    }
    assert!(
        f.logs
            .has(lic4es::log::Level::Warn, "kid `k\\nlic4es: ERROR"),
        "{}",
        f.logs.dump()
    );
    let reason = e.status().reason.unwrap();
    assert!(no_raw_control(&reason), "{reason:?}");
}

#[test]
fn received_strings_are_cut_at_200_characters_in_the_status() {
    let f = Fixture::new();
    let mut c = claims("pro", NOW + 30 * DAY);
    c["org_name"] = json!(format!("Acme\u{1b}[2J{}", "x".repeat(5000)));
    c["jti"] = json!("j\r\nk");
    c["features"] = json!(["f\nx", "y".repeat(300)]);
    let e = f.start(json!({"key": mint(&c)}));
    assert_eq!(e.tier(), Tier::Pro);
    let s = e.status();
    let org = s.org_name.unwrap();
    assert_eq!(org.chars().count(), 201, "200 characters and the cut mark");
    assert!(org.starts_with("Acme\\u{1b}[2J"), "{org}");
    assert_eq!(s.jti.as_deref(), Some("j\\r\\nk"));
    assert!(s
        .features
        .iter()
        .all(|f| no_raw_control(f) && f.chars().count() <= 201));
    for (_, line) in f.logs.all() {
        assert!(no_raw_control(&line), "{line:?}");
    }
}

#[test]
fn a_signed_token_with_an_unknown_tier_is_not_an_active_license() {
    let f = Fixture::new();
    let e = f.start(json!({"key": mint(&claims("Gold", NOW + 30 * DAY))}));
    assert_eq!(e.tier(), Tier::Community);
    let s = e.status();
    assert_ne!(s.status, "Active");
    assert_eq!(s.tier, "community");
    let reason = s.reason.expect("a reason");
    assert!(reason.contains("unknown tier \"Gold\""), "{reason}");
    assert!(
        s.features.contains(&"repl".to_string()),
        "Community entitlements apply: {:?}",
        s.features
    );
    assert!(
        f.logs
            .has(lic4es::log::Level::Warn, "unknown tier \"Gold\""),
        "{}",
        f.logs.dump()
    );
    // An explicit community token is simply Community, with no complaint.
    let f = Fixture::new();
    let e = f.start(json!({"key": mint(&claims(" community ", NOW + 30 * DAY))}));
    assert_eq!(e.status().status, "Active");
    assert!(e.status().reason.is_none());
}
