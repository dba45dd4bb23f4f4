//! The reference server over real HTTP on loopback.

mod common;

use common::*;
use license_server::service::licenses::{self, NewLicense};
use license_server::ServerConfig;
use serde_json::{json, Value};

#[test]
fn token_for_an_api_key_is_signed_and_echoes_the_nonce() {
    let s = Server::start();
    let (license, key) = new_key(&s, "pro");
    assert!(key.starts_with("sk-"));
    let (status, v) = s.fetch(&key);
    assert_eq!(status, 200, "{v}");
    let claims = s.jwks().verify(v["jwt"].as_str().unwrap()).unwrap();
    assert_eq!(claims.sub, license);
    assert_eq!(claims.tier, lic4es::Tier::Pro);
    assert_eq!(claims.nonce.as_deref(), Some(NONCE));
    assert_eq!(claims.org_name.as_deref(), Some("Acme"));
    assert!(claims.features.contains("jdbc_driver"));
    let lifetime = claims.exp - claims.iat.unwrap();
    assert_eq!(lifetime, 24 * 3600);
    assert!((v["expires_in"].as_i64().unwrap() - lifetime).abs() <= 2);

    let (status, v) = s.admin("GET", "/admin/telemetry", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(v[0]["instance_id"], "i-1");
    assert_eq!(v[0]["telemetry"]["queries_total"], 10);
}

#[test]
fn unknown_and_revoked_keys_and_licenses() {
    let s = Server::start();
    let (status, v) = s.fetch("sk-nope");
    refused(status, &v, 401, "invalid_api_key");

    let (license, key) = new_key(&s, "team");
    let (status, _) = s.admin(
        "POST",
        &format!("/admin/licenses/{license}/revoke"),
        Value::Null,
    );
    assert_eq!(status, 200);
    let (status, v) = s.fetch(&key);
    refused(status, &v, 403, "license_revoked");

    let (_, key) = new_key(&s, "pro");
    let (status, _) = s.admin("POST", "/admin/api-keys/revoke", json!({"api_key": key}));
    assert_eq!(status, 200);
    let (status, v) = s.fetch(&key);
    refused(status, &v, 401, "api_key_revoked");
    assert!(v["message"].as_str().unwrap().contains("revoked"));
}

#[test]
fn bad_input_gets_a_json_4xx_never_a_500() {
    let s = Server::start();
    let (_, key) = new_key(&s, "pro");
    let big = vec![b'x'; 70 * 1024];
    // (method, path, bearer, body, expected status)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("POST", "/api/v1/licenses/token", Some(&key), b"{not json".to_vec(), 400),
        ("POST", "/api/v1/licenses/token", Some(&key), b"[1,2]".to_vec(), 400),
        ("POST", "/api/v1/licenses/token", Some(&key), br#"{"instance_id": 5, "nonce": "x"}"#.to_vec(), 400),
        ("POST", "/api/v1/licenses/token", Some(&key),
         br#"{"instance_id": "i", "nonce": "not-hex-at-all-not-hex-at-all!!"}"#.to_vec(), 400),
        ("POST", "/api/v1/licenses/token", Some(&key),
         br#"{"instance_id": "i", "nonce": "0123456789abcdef0123456789abcdef", "telemetry": [1]}"#.to_vec(), 400),
        ("POST", "/api/v1/licenses/token", Some(&key), big.clone(), 413),
        ("POST", "/api/v1/licenses/token", None, fetch_body(NONCE).to_string().into_bytes(), 401),
        ("POST", "/api/v1/licenses/refresh", Some("garbage.token.here"), fetch_body(NONCE).to_string().into_bytes(), 401),
        ("POST", "/api/v1/licenses/refresh", Some("x"), big, 413),
        ("GET", "/api/v1/licenses/token", Some(&key), vec![], 405),
        ("GET", "/no/such/path", None, vec![], 404),
        ("POST", "/admin/licenses", None, b"{}".to_vec(), 401),
        ("POST", "/admin/licenses", Some("wrong"), b"{}".to_vec(), 401),
        ("POST", "/admin/licenses", Some(ADMIN), br#"{"tier": "gold", "days": 3}"#.to_vec(), 400),
        ("POST", "/admin/licenses", Some(ADMIN), br#"{"tier": "pro", "days": -3}"#.to_vec(), 400),
    ];
    for (method, path, bearer, body, want) in cases {
        let (status, b) = s.call(method, path, bearer, &body);
        assert_eq!(
            status,
            want,
            "{method} {path}: {}",
            String::from_utf8_lossy(&b)
        );
        let v: Value = serde_json::from_slice(&b).unwrap_or_else(|_| {
            panic!("{method} {path}: not JSON: {}", String::from_utf8_lossy(&b))
        });
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    let (status, v) = s.json("GET", "/healthz", None, Value::Null);
    assert_eq!((status, v["status"].as_str()), (200, Some("ok")));
}

#[test]
fn fields_the_server_does_not_know_are_ignored() {
    let s = Server::start();
    let (_, key) = new_key(&s, "pro");
    let mut body = fetch_body(NONCE);
    body["from_a_newer_engine"] = json!({"x": [1, 2]});
    body["license_id"] = json!("not part of a token request");
    let (status, v) = s.json("POST", "/api/v1/licenses/token", Some(&key), body);
    assert_eq!(status, 200, "{v}");
}

#[test]
fn static_token_refresh_issues_a_new_token_or_204() {
    let s = Server::start();
    let lic = licenses::create(
        &s.state,
        NewLicense {
            org_name: Some("Acme".into()),
            overrides: license_server::domain::Overrides {
                seats: Some(license_server::store::Seats::Unlimited),
                ..Default::default()
            },
            ..NewLicense::new("org-static".parse().unwrap(), lic4es::Tier::Pro, 30)
        },
        "test",
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/api/v1/licenses/refresh", s.port);
    let (token, _) =
        license_server::service::tokens::issue_static(&s.state, &lic, Some(&url)).unwrap();
    let body = json!({"license_id": "org-static", "instance_id": "i-2", "version": "1",
                      "uptime_hours": 3, "nonce": NONCE});
    let refresh = |body: Value| s.json("POST", "/api/v1/licenses/refresh", Some(&token), body);
    let (status, _) = refresh(body.clone());
    assert_eq!(status, 204, "unchanged license: no new token");

    let (status, _) = s.admin(
        "POST",
        "/admin/licenses/org-static/tier",
        json!({"tier": "enterprise"}),
    );
    assert_eq!(status, 200);
    let (status, v) = refresh(body.clone());
    assert_eq!(status, 200, "{v}");
    let claims = s.jwks().verify(v["jwt"].as_str().unwrap()).unwrap();
    assert_eq!(claims.tier, lic4es::Tier::Enterprise);
    assert_eq!(claims.refresh_url.as_deref(), Some(url.as_str()));
    assert_eq!(claims.nonce.as_deref(), Some(NONCE));

    let mut other = body;
    other["license_id"] = json!("org-else");
    let (status, v) = refresh(other);
    refused(status, &v, 400, "license_mismatch");
}

#[test]
fn metrics_count_requests_tokens_and_telemetry() {
    let s = Server::start();
    let (_, key) = new_key(&s, "team");
    s.fetch(&key);
    s.fetch("sk-bad");
    let text = s.metrics();
    assert!(
        text.contains(
            "lic4es_http_requests_total{endpoint=\"/api/v1/licenses/token\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains(
        "lic4es_http_requests_total{endpoint=\"/api/v1/licenses/token\",status=\"401\"} 1"
    ));
    assert!(text.contains("lic4es_tokens_issued_total{tier=\"team\"} 1"));
    assert!(text.contains("lic4es_telemetry_received_total 1"));
}

#[test]
fn defaults_listen_on_8700_with_a_store_under_the_data_dir() {
    let c = ServerConfig::default();
    assert_eq!(c.listen, "127.0.0.1:8700");
    assert!(c.database_path().starts_with(&c.data_dir));
    assert_eq!(c.token_lifetime_hours, 24);
    assert_eq!(c.tiers["pro"].heartbeat_interval, 300);
    assert_eq!(c.tiers["pro"].offline_grace_days, 7);
    assert_eq!(c.tiers["team"].offline_grace_days, 3);
    assert_eq!(c.tiers["enterprise"].offline_grace_days, 7);
    use license_server::store::Seats;
    assert_eq!(
        c.tiers["community"].seats,
        Seats::Count(0),
        "the free plan holds no seat"
    );
    assert_eq!(
        c.tiers["pro"].seats,
        Seats::Count(5),
        "Pro is counted in seats"
    );
    assert_eq!(c.tiers["team"].seats, Seats::Count(20), "so is Team");
    assert_eq!(
        c.tiers["enterprise"].seats,
        Seats::Unlimited,
        "Enterprise is a site license, served by token"
    );
    assert_eq!(c.audit_retention_days, 90);
    assert!(ServerConfig::load(Some(std::path::Path::new("/nonexistent.toml"))).is_err());
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("listn = \"x\"", "listn"),
        ("[tiers.gold]\nfeatures = []", "gold"),
        ("token-lifetime-hours = 0", "token-lifetime-hours"),
        ("token-lifetime-hours = \"a day\"", "token-lifetime-hours"),
        ("[tiers.pro]\nfeatures = []\nseats = \"lots\"", "seats"),
    ] {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        let err = ServerConfig::load(Some(&p)).unwrap_err();
        assert!(err.contains(key), "{text}: {err}");
    }
}

#[test]
fn seats_go_to_one_redis_a_cluster_or_sentinel_and_never_to_two() {
    use license_server::seats::Topology;
    let dir = tempfile::tempdir().unwrap();
    let load = |text: &str| {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        ServerConfig::load(Some(&p)).and_then(|c| c.redis_topology())
    };
    assert_eq!(load("").unwrap(), None);
    assert_eq!(
        load("redis-url = \"redis://10.0.0.1:6379/\"").unwrap(),
        Some(Topology::Single("redis://10.0.0.1:6379/".into()))
    );
    assert_eq!(
        load("redis-cluster = [\"redis://a:7000\", \"rediss://b:7001\"]").unwrap(),
        Some(Topology::Cluster(vec![
            "redis://a:7000".into(),
            "rediss://b:7001".into()
        ]))
    );
    assert_eq!(
        load("redis-sentinel = { master = \"seats\", nodes = [\"redis://s1:26379\"] }").unwrap(),
        Some(Topology::Sentinel {
            master: "seats".into(),
            nodes: vec!["redis://s1:26379".into()]
        })
    );
    for (text, says) in [
        (
            "redis-url = \"redis://a/\"\nredis-cluster = [\"redis://b:7000\"]",
            "not several",
        ),
        ("redis-cluster = [\"b:7000\"]", "not a redis://"),
        (
            "redis-sentinel = { master = \"\", nodes = [\"redis://s:1\"] }",
            "master",
        ),
        ("redis-sentinel = { master = \"m\", nodes = [] }", "nodes"),
        (
            "redis-sentinel = { master = \"m\", node = [\"redis://s:1\"] }",
            "node",
        ),
        ("redis-ca-file = \"/ca.pem\"", "no Redis"),
    ] {
        let err = load(text).unwrap_err();
        assert!(err.contains(says), "{text}: {err}");
    }
    // A CA file needs TLS to the servers it is for.
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not read before the check").unwrap();
    let plain = Topology::Cluster(vec!["redis://a:7000".into()]);
    assert!(license_server::seats::RedisSeats::open(&plain, Some(&ca))
        .err()
        .unwrap()
        .contains("rediss://"));
}

#[test]
fn creating_a_license_whose_id_exists_is_409_and_never_lifts_a_revocation() {
    let s = Server::start();
    let body = json!({"id": "org-dup", "tier": "pro", "days": 30, "org_name": "Acme"});
    let (status, v) = s.admin("POST", "/admin/licenses", body.clone());
    assert_eq!(status, 201, "{v}");
    let old_key = v["api_key"].as_str().unwrap().to_string();
    let (status, _) = s.admin("POST", "/admin/licenses/org-dup/revoke", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(s.fetch(&old_key).1["error"], "license_revoked");

    // Before: this silently replaced the license, and the revoked key worked again.
    let mut again = body.clone();
    again["tier"] = json!("enterprise");
    let (status, v) = s.admin("POST", "/admin/licenses", again);
    refused(status, &v, 409, "license_exists");
    assert_eq!(s.fetch(&old_key).1["error"], "license_revoked");
    let (_, shown) = s.admin("GET", "/admin/licenses/org-dup", Value::Null);
    assert_eq!(
        (shown["tier"].as_str(), shown["revoked"].as_bool()),
        (Some("pro"), Some(true))
    );

    // Changing a license is explicit, and a revocation stays.
    let (status, v) = s.admin(
        "PATCH",
        "/admin/licenses/org-dup",
        json!({"tier": "team", "seats": 9}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["tier"].as_str(),
            v["seats"].as_u64(),
            v["revoked"].as_bool()
        ),
        (Some("team"), Some(9), Some(true))
    );
    let (status, _) = s.admin("PATCH", "/admin/licenses/nope", json!({"tier": "pro"}));
    assert_eq!(status, 404);

    // Another key for an existing license is its own call.
    let (_, v) = s.admin(
        "POST",
        "/admin/licenses",
        json!({"id": "org-two", "tier": "pro", "days": 3, "seats": "unlimited"}),
    );
    let first = v["api_key"].as_str().unwrap().to_string();
    let (status, v) = s.admin("POST", "/admin/licenses/org-two/api-keys", Value::Null);
    assert_eq!(status, 201, "{v}");
    let second = v["api_key"].as_str().unwrap();
    assert_ne!(first, second);
    assert_eq!(s.fetch(second).0, 200);
    let audit = s
        .admin("GET", "/admin/audit?license=org-dup", Value::Null)
        .1
        .to_string();
    assert!(audit.contains("license_update"), "{audit}");
}

#[test]
fn license_ids_outside_the_alphabet_are_400() {
    let s = Server::start();
    let long = "a".repeat(129);
    for id in [
        "",
        "has space",
        "semi;colon",
        "slash/x",
        "ünï",
        "{lic}",
        long.as_str(),
    ] {
        let (status, v) = s.admin(
            "POST",
            "/admin/licenses",
            json!({"id": id, "tier": "pro", "days": 3}),
        );
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("invalid_request")),
            "{id:?}: {v}"
        );
    }
    for id in ["a", "org-acme_1.2", &"Z".repeat(128)] {
        let (status, v) = s.admin(
            "POST",
            "/admin/licenses",
            json!({"id": id, "tier": "pro", "days": 3}),
        );
        assert_eq!(status, 201, "{id:?}: {v}");
    }
    let (status, _) = s.admin("GET", "/admin/licenses/bad%20id", Value::Null);
    assert_eq!(status, 400);
}

#[test]
fn a_tier_is_taken_in_any_case_and_said_in_one_spelling_and_a_bad_id_is_400() {
    let s = Server::start();
    let (status, v) = s.admin(
        "POST",
        "/admin/licenses",
        json!({"id": "org-case", "tier": "Pro", "days": 30}),
    );
    assert_eq!((status, v["tier"].as_str()), (201, Some("pro")), "{v}");
    let (status, v) = s.admin(
        "POST",
        "/admin/licenses/org-case/tier",
        json!({"tier": "ENTERPRISE"}),
    );
    assert_eq!(
        (status, v["tier"].as_str()),
        (200, Some("enterprise")),
        "{v}"
    );
    let (status, v) = s.admin("PATCH", "/admin/licenses/org-case", json!({"tier": "Team"}));
    assert_eq!((status, v["tier"].as_str()), (200, Some("team")), "{v}");
    let (status, v) = s.admin(
        "POST",
        "/admin/licenses",
        json!({"tier": "Gold", "days": 3}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("unknown tier"),
        "{v}"
    );
    for path in ["/admin/licenses/org%20case", "/admin/licenses/a%2Fb"] {
        let (status, v) = s.admin("GET", path, Value::Null);
        assert_eq!(status, 400, "{path}: {v}");
        assert!(v["message"].as_str().unwrap().contains("license id"), "{v}");
    }
    let (status, _) = s.admin("GET", "/admin/usage?license=a%20b", Value::Null);
    assert_eq!(status, 400);
}

#[tokio::test(start_paused = true)]
async fn a_failing_background_job_is_counted_until_it_works_again() {
    use license_server::jobs::{every, Job};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;
    let s = Server::start();
    let runs = std::sync::Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let job = every(&s.state, Job::Sample, Duration::from_secs(60), move |_| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 3 {
                Err("the store is down")
            } else {
                Ok(())
            }
        }
    });
    for _ in 0..6 {
        tokio::time::advance(Duration::from_secs(60)).await;
        tokio::task::yield_now().await;
    }
    job.abort();
    assert!(runs.load(Ordering::SeqCst) >= 5);
    let m = s.metrics();
    assert!(
        m.contains("lic4es_background_job_failures_total{job=\"sample\"} 3"),
        "{m}"
    );
}

#[test]
fn admin_bodies_refuse_keys_they_do_not_know_and_read_every_term() {
    let s = Server::start();
    // A typo is refused, naming the key, in a new license and in a change alike.
    let typo = json!({"tier": "pro", "days": 3, "seat": 3});
    let (status, v) = s.admin("POST", "/admin/licenses", typo);
    refused(status, &v, 400, "invalid_request");
    assert!(v["message"].as_str().unwrap().contains("`seat`"), "{v}");
    let terms = json!({"max_borrow": "2h", "relay_grant_days": 7, "offline_activation_days": 9});
    let (license, _) = s.license("pro", terms);
    let path = format!("/admin/licenses/{license}");
    let (status, v) = s.admin("PATCH", &path, json!({"seatz": 2}));
    refused(status, &v, 400, "invalid_request");
    assert!(v["message"].as_str().unwrap().contains("`seatz`"), "{v}");
    // Every term given reads back, a duration in seconds.
    let (status, v) = s.admin("GET", &path, Value::Null);
    assert_eq!(status, 200, "{v}");
    let got = ["max_borrow", "relay_grant_days", "offline_activation_days"].map(|k| v[k].as_u64());
    assert_eq!(got, [Some(7200), Some(7), Some(9)], "{v}");
}
