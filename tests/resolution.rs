//! The resolution chain (`docs/explanation/tier.md`), each step and each fall-through, against a real
//! HTTP backend on loopback.

mod common;

use common::*;
use lic4es::log::Level;
use lic4es::{Source, Tier};
use serde_json::{json, Value};

#[test]
fn static_token_valid_is_used_without_network_or_cache() {
    let f = Fixture::new();
    let server = TestServer::start(|_| Reply::raw(500, ""));
    let e =
        f.start(json!({"key": token("pro", 30), "api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(e.tier(), Tier::Pro);
    let s = e.status();
    assert_eq!(s.source, Source::Static);
    assert_eq!(s.status, "Active");
    assert_eq!(s.mode, "static");
    assert!(
        server.requests().is_empty(),
        "a valid static token never calls the backend"
    );
    assert!(f.read_cache().is_none(), "static mode writes no cache");
}

#[test]
fn key_file_is_read_with_trailing_whitespace_ignored() {
    let f = Fixture::new();
    let path = f.dir.path().join("license.jwt");
    std::fs::write(&path, format!("{}\n\n  ", token("team", 30))).unwrap();
    let e = f.start(json!({"key-file": path.to_str().unwrap()}));
    assert_eq!(e.tier(), Tier::Team);
}

#[test]
fn missing_key_file_falls_through_to_community_with_reason() {
    let f = Fixture::new();
    let e = f.start(json!({"key-file": f.dir.path().join("nope.jwt").to_str().unwrap()}));
    assert_eq!(e.tier(), Tier::Community);
    assert!(e.status().reason.unwrap().contains("does not exist"));
}

/// A static token in the early and the mid grace: its tier, the warning, the status.
#[test]
fn a_static_token_in_grace_keeps_its_tier_and_says_how_long() {
    // (tier, expired seconds ago, warning, grace, status)
    let cases = [
        (
            "pro",
            3 * DAY + 60,
            "License expired 3 days ago. Renew your license.",
            "early",
            "Expired (3 days ago, in grace period)",
        ),
        (
            "enterprise",
            10 * DAY + 3600,
            "License expired 10 days ago. Service will degrade to Community in 3 days.",
            "mid",
            "Expired (10 days ago, 3 days until Community fallback)",
        ),
    ];
    for (tier, ago, warning, grace, status) in cases {
        let f = Fixture::new();
        let e = f.start(json!({"key": mint(&claims(tier, NOW - ago))}));
        assert_eq!(e.tier().as_str(), tier);
        assert!(f.logs.has(Level::Warn, warning), "{}", f.logs.dump());
        let s = e.status();
        assert_eq!(s.grace, grace);
        assert_eq!(s.status, status);
        assert_eq!(s.days_remaining, Some(0));
    }
}

#[test]
fn grace_period_is_configurable() {
    let f = Fixture::new();
    let e = f.start(json!({"key": token("pro", -3), "grace-period": "2d"}));
    assert_eq!(e.tier(), Tier::Community);
    let f = Fixture::new();
    let e = f.start(json!({"key": token("pro", -3), "grace-period": "4 days"}));
    assert_eq!(e.tier(), Tier::Pro);
    assert_eq!(e.status().grace, "mid");
}

#[test]
fn expired_static_token_falls_through_to_api_key() {
    let f = Fixture::new();
    let fetched = token("enterprise", 1);
    let server = TestServer::start(move |r| Reply::token_for(r, &fetched));
    let e =
        f.start(json!({"key": token("pro", -20), "api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(e.tier(), Tier::Enterprise);
    assert_eq!(e.status().source, Source::ApiKey);
    assert_eq!(server.requests().len(), 1);
    f.logs.expect(Level::Warn, "Static license");
}

#[test]
fn expired_static_token_alone_gives_community() {
    let f = Fixture::new();
    let e = f.start(json!({"key": token("pro", -20)}));
    assert_eq!(e.tier(), Tier::Community);
    let s = e.status();
    assert_eq!(s.status, "No license");
    assert_eq!(s.source, Source::None);
    assert!(s.reason.unwrap().contains("expired 20 days ago"));
}

#[test]
fn api_key_fetch_uses_token_and_writes_private_cache() {
    let f = Fixture::new();
    let fetched = token("pro", 1);
    let served = fetched.clone();
    let server = TestServer::start(move |r| {
        Reply::json(
            200,
            json!({"jwt": answering(r, &served), "expires_in": 86400, "message": "Welcome back, Acme"}),
        )
    });
    let e = f.start(json!({"api-key": "sk-live-abcdef123", "api-url": server.url(), "product-version": "0.9.1"}));
    assert_eq!(e.tier(), Tier::Pro);
    f.logs.expect(Level::Info, "Welcome back, Acme");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/api/v1/licenses/token");
    assert_eq!(r.header("authorization"), Some("Bearer sk-live-abcdef123"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("lic4es/"));
    let body = r.json();
    assert_eq!(body["version"], "0.9.1");
    assert_eq!(body["instance_id"], e.status().instance_id);
    let nonce = body["nonce"].as_str().unwrap();
    assert_eq!(nonce.len(), 32);
    assert!(nonce.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(body["uptime_hours"].is_number());
    assert!(body["telemetry"].is_object());

    assert_eq!(claims_of(&f.read_cache().unwrap()), claims_of(&fetched));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(f.cache_dir()), 0o700);
        assert_eq!(mode(f.cache_dir().join("license-cache.jwt")), 0o600);
        assert_eq!(mode(f.cache_dir().join("instance-id")), 0o600);
    }

    let s = e.status();
    assert_eq!(s.source, Source::ApiKey);
    assert_eq!(s.mode, "api_key");
    assert!(s.last_refresh.as_ref().unwrap().ok);
    assert_eq!(s.last_telemetry.unwrap()["nonce"], nonce);
    assert!(
        !f.logs.dump().contains("sk-live-abcdef123"),
        "API key logged in full"
    );
}

#[test]
fn each_request_carries_a_fresh_nonce() {
    let f = Fixture::new();
    let server = TestServer::start(|_| Reply::raw(503, ""));
    let url = server.url();
    drop(f.start(json!({"api-key": "sk-test", "api-url": url})));
    drop(f.start(json!({"api-key": "sk-test", "api-url": url})));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_ne!(reqs[0].json()["nonce"], reqs[1].json()["nonce"]);
}

#[test]
fn telemetry_disabled_or_excluded_is_not_sent() {
    let f = Fixture::new();
    let server = TestServer::start(|_| Reply::raw(503, ""));
    drop(f.start(
        json!({"api-key": "sk-test", "api-url": server.url(), "telemetry": {"enabled": false}}),
    ));
    drop(f.start(json!({"api-key": "sk-test", "api-url": server.url(), "telemetry.exclude": ["queries_total"]})));
    let reqs = server.requests();
    let (off, some) = (reqs[0].json(), reqs[1].json());
    assert!(off.get("telemetry").is_none());
    assert!(off.get("instance_id").is_some() && off.get("version").is_some());
    assert!(some["telemetry"].get("queries_total").is_none());
    assert!(some["telemetry"].get("joins_total").is_some());
}

fn fetch_failure_falls_back_to_cache(reply: Reply) -> (Fixture, lic4es::Engine) {
    let f = Fixture::new();
    f.write_cache(&token("pro", 5));
    let server = TestServer::start(move |_| reply.clone());
    let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
    (f, e)
}

/// The engine's last refresh failed, saying `why`.
fn assert_refresh_failed(e: &lic4es::Engine, why: &str) {
    let error = e.status().last_refresh.and_then(|r| r.error);
    assert!(
        error.as_deref().is_some_and(|m| m.contains(why)),
        "{error:?}"
    );
}

fn assert_cached_pro(f: &Fixture, e: &lic4es::Engine) {
    assert_eq!(e.tier(), Tier::Pro, "{}", f.logs.dump());
    assert_eq!(e.status().source, Source::Cache);
    f.logs
        .expect(Level::Warn, "Using cached license (API key fetch failed)");
    assert!(f
        .logs
        .has(Level::Warn, "License fetch with API key sk-tes… failed"));
}

#[test]
fn server_error_falls_back_to_cache() {
    let (f, e) = fetch_failure_falls_back_to_cache(Reply::json(500, json!({"error": "boom"})));
    assert_cached_pro(&f, &e);
    let s = e.status();
    assert!(!s.last_refresh.as_ref().unwrap().ok);
    assert!(s.last_refresh.unwrap().error.unwrap().contains("500"));
}

#[test]
fn unauthorized_without_revocation_falls_back_to_cache() {
    let (f, e) = fetch_failure_falls_back_to_cache(Reply::json(
        401,
        json!({"error": "invalid_api_key", "message": "unknown key"}),
    ));
    assert_cached_pro(&f, &e);
    assert!(f.read_cache().is_some());
}

#[test]
fn null_jwt_is_a_failure() {
    let (f, e) = fetch_failure_falls_back_to_cache(Reply::json(200, json!({"jwt": null})));
    assert_cached_pro(&f, &e);
}

#[test]
fn garbage_body_is_a_failure() {
    let (f, e) = fetch_failure_falls_back_to_cache(Reply::raw(200, "<html>hello</html>"));
    assert_cached_pro(&f, &e);
}

#[test]
fn oversized_body_is_a_failure() {
    let big = format!("{{\"jwt\": \"{}\"}}", "a".repeat(70_000));
    let (f, e) = fetch_failure_falls_back_to_cache(Reply::raw(200, big));
    assert_cached_pro(&f, &e);
    assert_refresh_failed(&e, "64 KiB");
}

#[test]
fn redirects_are_not_followed() {
    let f = Fixture::new();
    f.write_cache(&token("pro", 5));
    let jwt = token("enterprise", 1);
    let server = TestServer::start(move |r| {
        if r.path == "/elsewhere" {
            Reply::token_for(r, &jwt)
        } else {
            let mut rep = Reply::raw(307, "");
            rep.headers.push(("Location".into(), "/elsewhere".into()));
            rep
        }
    });
    let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(server.requests().len(), 1);
    assert_cached_pro(&f, &e);
}

#[test]
fn refused_connection_falls_through_to_cache() {
    let f = Fixture::new();
    f.write_cache(&token("pro", 5));
    let e = f.start(json!({"api-key": "sk-test", "api-url": refused_url()}));
    assert_cached_pro(&f, &e);
}

#[test]
fn read_timeout_bounds_a_silent_backend() {
    let f = Fixture::new();
    f.write_cache(&token("pro", 5));
    let server = TestServer::start(|_| Reply::hang());
    let e =
        f.start(json!({"api-key": "sk-test", "api-url": server.url(), "read-timeout": "300ms"}));
    assert_cached_pro(&f, &e);
    assert_refresh_failed(&e, "timed out");
}

#[test]
fn fetch_failure_without_cache_gives_community() {
    let f = Fixture::new();
    let e = f.start(json!({"api-key": "sk-test", "api-url": refused_url()}));
    assert_eq!(e.tier(), Tier::Community);
    assert_eq!(e.status().status, "No license");
    assert!(e.status().reason.unwrap().contains("API key fetch failed"));
}

#[test]
fn cached_token_in_grace_with_failed_fetch_logs_both_warnings() {
    let f = Fixture::new();
    f.write_cache(&token("team", -2));
    let e = f.start(json!({"api-key": "sk-test", "api-url": refused_url()}));
    assert_eq!(e.tier(), Tier::Team);
    assert!(f
        .logs
        .has(Level::Warn, "Using cached license (API key fetch failed)"));
    assert!(f.logs.has(
        Level::Warn,
        "Using cached license (expired, within grace period)"
    ));
    assert!(f.logs.has(
        Level::Warn,
        "License expired 2 days ago. Renew your license."
    ));
}

#[test]
fn cached_token_is_used_without_any_source_configured_as_fallback() {
    // An expired static token, no API key: the cache from an earlier API-key run counts.
    let f = Fixture::new();
    f.write_cache(&token("pro", 10));
    let e = f.start(json!({"key": token("pro", -30)}));
    assert_eq!(e.tier(), Tier::Pro);
    assert_eq!(e.status().source, Source::Cache);
    assert!(!f.logs.has(Level::Warn, "API key fetch failed"));
}

fn revoked(status: u16, code: &str) {
    let f = Fixture::new();
    f.write_cache(&token("pro", 5));
    let code = code.to_string();
    let server = TestServer::start(move |_| {
        Reply::json(
            status,
            json!({"error": code, "message": "License revoked by vendor"}),
        )
    });
    let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(e.tier(), Tier::Community);
    let s = e.status();
    assert_eq!(s.status, "Revoked");
    assert_eq!(s.source, Source::None);
    assert!(f.read_cache().is_none(), "revocation deletes the cache");
    f.logs.expect(Level::Error, "License revoked by vendor");
    assert!(!f.logs.has(Level::Warn, "Using cached license"));
}

#[test]
fn revoked_api_key_ends_resolution_and_deletes_cache() {
    revoked(401, "api_key_revoked");
}

#[test]
fn revoked_license_on_403_ends_resolution_and_deletes_cache() {
    revoked(403, "license_revoked");
}

#[test]
fn forbidden_without_revocation_code_falls_back() {
    let (f, e) = fetch_failure_falls_back_to_cache(Reply::json(403, json!({"error": "forbidden"})));
    assert_cached_pro(&f, &e);
}

#[test]
fn nonce_must_match_the_request() {
    let f = Fixture::new();
    let server = TestServer::start(|r| {
        let mut c = claims("pro", NOW + DAY);
        c["nonce"] = r.json()["nonce"].clone();
        Reply::token(&mint(&c))
    });
    let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(e.tier(), Tier::Pro);

    let f = Fixture::new();
    let server = TestServer::start(|_| {
        let mut c = claims("pro", NOW + DAY);
        c["nonce"] = Value::from("0123456789abcdef0123456789abcdef");
        Reply::token(&mint(&c))
    });
    let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(e.tier(), Tier::Community);
    assert!(e.status().reason.unwrap().contains("nonce"));
    assert!(f.read_cache().is_none(), "a replayed token is not cached");
}

#[test]
fn fetched_token_signed_by_unknown_key_is_rejected() {
    let f = Fixture::new();
    let server = TestServer::start(|_| {
        Reply::token(&mint_with(
            &claims("enterprise", NOW + DAY),
            jsonwebtoken::Algorithm::EdDSA,
            "test-ed-other",
        ))
    });
    let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(e.tier(), Tier::Community);
    assert!(e.status().reason.unwrap().contains("test-ed-other"));
}

#[test]
fn rejected_cached_token_is_deleted() {
    let f = Fixture::new();
    let good = token("pro", 5);
    let (h, p, s) = {
        let v: Vec<&str> = good.split('.').collect();
        (v[0].to_string(), v[1].to_string(), v[2].to_string())
    };
    let mut sig = s.into_bytes();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    f.write_cache(&format!("{h}.{p}.{}", String::from_utf8(sig).unwrap()));
    let e = f.start(json!({}));
    assert_eq!(e.tier(), Tier::Community);
    assert!(f.read_cache().is_none());
    f.logs.expect(Level::Warn, "Cached license rejected");
}

#[test]
fn cached_token_beyond_grace_is_deleted() {
    let f = Fixture::new();
    f.write_cache(&token("pro", -40));
    let e = f.start(json!({}));
    assert_eq!(e.tier(), Tier::Community);
    assert!(f.read_cache().is_none());
}

#[test]
fn status_reports_license_details() {
    let f = Fixture::new();
    let e = f.start(json!({"key": token("enterprise", 45), "instance-id": "pod-7"}));
    let v: Value = serde_json::from_str(&e.status_json()).unwrap();
    assert_eq!(v["tier"], "enterprise");
    assert_eq!(v["source"], "static");
    assert_eq!(v["status"], "Active");
    assert_eq!(v["grace"], "none");
    assert_eq!(v["license_id"], "org-acme-123");
    assert_eq!(v["org_name"], "Acme Corp");
    assert_eq!(v["jti"], "tok-1");
    assert_eq!(v["trial"], false);
    assert_eq!(v["days_remaining"], 45);
    assert_eq!(v["expires_at"], lic4es::clock::rfc3339(NOW + 45 * DAY));
    // A static token without `lic_exp` is its license: both ends are its `exp`.
    assert_eq!(v["license_expires_at"], v["expires_at"]);
    assert_eq!(v["instance_id"], "pod-7");
    assert_eq!(v["mode"], "static");
    assert!(v["last_refresh"].is_null());
    assert!(v["last_telemetry"].is_null());
    assert!(v["generation"].as_u64().unwrap() >= 1);
    for k in ["features", "quotas", "next_refresh_at"] {
        assert!(v.get(k).is_some(), "status lacks {k}");
    }
    assert_eq!(v["quotas"]["max_clusters"], 5);
    assert!(v["quotas"]["max_result_rows"].is_null());
}

#[test]
fn paid_entitlements_are_exactly_the_tokens() {
    let f = Fixture::new();
    let e = f.start(json!({"key": token("pro", 30)}));
    assert!(e.has_feature("unlimited_joins"));
    assert!(
        !e.has_feature("repl"),
        "Community features do not leak into a paid tier"
    );
    assert_eq!(e.quota("max_clusters"), 5);
    assert_eq!(e.quota("max_result_rows"), -1, "null quota is unlimited");
    assert_eq!(e.quota("max_joins"), -1, "absent quota is unlimited");
}

#[test]
fn community_entitlements_in_config_narrow_the_vendors() {
    let f = Fixture::new();
    let e = f.start(json!({}));
    assert!(e.has_feature("repl"));
    assert_eq!(e.quota("max_joins"), 2);
    assert_eq!(e.quota("max_result_rows"), 10_000);
    let f = Fixture::new();
    let e =
        f.start(json!({"community": {"features": ["jdbc_driver"], "quotas": {"max_joins": 1}}}));
    assert!(e.has_feature("jdbc_driver"));
    assert!(!e.has_feature("repl"));
    assert_eq!(e.quota("max_joins"), 1);
    assert_eq!(
        e.quota("max_result_rows"),
        10_000,
        "a quota the config does not name stays the vendor's"
    );
}

#[test]
fn unknown_tier_claim_is_community() {
    let f = Fixture::new();
    let e = f.start(json!({"key": token("platinum", 30)}));
    assert_eq!(e.tier(), Tier::Community);
    assert!(e.has_feature("repl"), "Community entitlements apply");
}

#[test]
fn tier_drops_when_the_running_license_leaves_grace() {
    let f = Fixture::new();
    let e = f.start(json!({"key": token("pro", 1), "grace-period": "1d"}));
    assert_eq!(e.tier(), Tier::Pro);
    let gen = e.status().generation;
    f.clock.advance_millis((2 * DAY + 60) * 1000);
    let s = e.status();
    assert_eq!(e.tier(), Tier::Community);
    assert!(s.generation > gen);
    assert!(
        f.logs
            .has(Level::Warn, "License downgraded from Pro to Community"),
        "{}",
        f.logs.dump()
    );
}

#[test]
fn nbf_in_the_future_is_rejected_and_skew_tolerated() {
    let f = Fixture::new();
    let mut c = claims("pro", NOW + 30 * DAY);
    c["nbf"] = json!(NOW + 3600);
    let e = f.start(json!({"key": mint(&c)}));
    assert_eq!(e.tier(), Tier::Community);
    let f = Fixture::new();
    c["nbf"] = json!(NOW + 30);
    let e = f.start(json!({"key": mint(&c)}));
    assert_eq!(e.tier(), Tier::Pro, "within the 60 s clock skew");
}

#[test]
fn mid_grace_warning_repeats_once_a_day() {
    let f = Fixture::new();
    // Early grace at init (2 days past exp of a 14-day grace).
    let e = f.start(json!({"key": token("pro", -2)}));
    assert_eq!(f.logs.count("Renew your license."), 1);
    let mid = "Service will degrade to Community in";
    assert_eq!(f.logs.count(mid), 0);
    // Five days on: mid grace, a day after the last warning.
    f.clock.advance_millis(5 * DAY * 1000);
    e.status();
    assert!(
        f.logs.has(
            Level::Warn,
            "License expired 7 days ago. Service will degrade to Community in 7 days."
        ),
        "{}",
        f.logs.dump()
    );
    // Within the same day: no repeat.
    f.clock.advance_millis(3600 * 1000);
    e.status();
    assert_eq!(f.logs.count(mid), 1);
    // The next day: once more.
    f.clock.advance_millis(DAY * 1000);
    e.status();
    assert_eq!(f.logs.count(mid), 2);
    assert_eq!(e.tier(), Tier::Pro);
}

#[test]
fn log_level_filters_and_tokens_are_never_logged_in_full() {
    let f = Fixture::new();
    let expired = token("pro", -30);
    let e = f.start(json!({"key": expired, "log-level": "warn"}));
    assert_eq!(e.tier(), Tier::Community);
    f.logs.expect(Level::Warn, "Static license");
    assert!(
        f.logs.all().iter().all(|(l, _)| *l <= Level::Warn),
        "records below log-level were delivered: {}",
        f.logs.dump()
    );
    let dump = f.logs.dump();
    assert!(!dump.contains(&expired), "a token was logged in full");
    assert!(dump.contains(&format!("{}…", &expired[..6])));
}

#[test]
fn backend_messages_are_cleaned_before_they_are_logged_or_shown() {
    let f = Fixture::new();
    let server = TestServer::start(|_| {
        Reply::error(
            403,
            "license_revoked",
            &format!(
                "gone\n\u{1b}[1mlic4es: INFO: License upgraded{}",
                "!".repeat(400)
            ),
        )
    });
    let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(e.tier(), Tier::Community);
    for (_, line) in f.logs.all() {
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    let reason = e.status().reason.unwrap();
    assert!(reason.contains("gone\\n\\u{1b}[1m"), "{reason}");
    assert!(reason.chars().count() < 300, "message cut: {reason}");
}

/// Attack: a fake backend on the customer's network hands one captured token to every
/// host that asks. It answers none of their requests, so none accepts it, whatever the
/// config says about `require-nonce`; the token answering the request is accepted.
#[test]
fn a_replayed_token_without_the_request_s_nonce_is_refused_whatever_the_config_says() {
    let f = Fixture::new();
    let captured = token("pro", 30);
    let replayed = captured.clone();
    let replay = TestServer::start(move |_| Reply::token(&replayed));
    for (dir, require) in [("a", None), ("b", Some(false)), ("c", Some(true))] {
        let mut cfg = json!({"api-key": "sk-test", "api-url": replay.url(),
            "cache-dir": f.dir.path().join(dir).to_str().unwrap()});
        if let Some(r) = require {
            cfg["require-nonce"] = json!(r);
        }
        let e = f.start(cfg);
        assert_eq!(e.tier(), Tier::Community, "require-nonce {require:?}");
        let reason = e.status().reason.unwrap();
        assert!(reason.contains("carries no nonce"), "{reason}");
        assert!(
            !f.dir.path().join(dir).join("license-cache.jwt").exists(),
            "a replayed token is not cached"
        );
    }
    f.logs
        .expect(Level::Warn, "require-nonce: false is ignored");
    // The honest backend answers the request: accepted.
    let honest = TestServer::start(move |r| Reply::token_for(r, &captured));
    let e = f.start(json!({"api-key": "sk-test", "api-url": honest.url(),
        "cache-dir": f.dir.path().join("d").to_str().unwrap()}));
    assert_eq!(e.tier(), Tier::Pro, "{}", f.logs.dump());
}

/// Mode bits are Unix's; Windows ACLs are not inspected.
#[cfg(unix)]
#[test]
fn a_cache_dir_others_can_write_to_is_warned_about_and_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    std::fs::create_dir_all(f.cache_dir()).unwrap();
    std::fs::set_permissions(f.cache_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    drop(f.start(json!({})));
    assert!(
        f.logs
            .has(Level::Warn, "can be written by others (mode 777)"),
        "{}",
        f.logs.dump()
    );
    let mode = std::fs::metadata(f.cache_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o777, "the operator's directory is not changed");
    let f = Fixture::new();
    drop(f.start(json!({})));
    assert!(!f.logs.has(Level::Warn, "can be written by others"));
}

#[test]
fn status_shows_platform_degraded_previous_tier_clock_and_a_null_seat() {
    let f = Fixture::new();
    let e = f.start(json!({"key": mint(&claims("team", NOW - 13 * DAY))}));
    let v: Value = serde_json::from_str(&e.status_json()).unwrap();
    assert_eq!(v["platform"], "PRODUCTION", "absent = PRODUCTION");
    assert_eq!(v["degraded"], false);
    assert_eq!(v["previous_tier"], Value::Null, "no change yet");
    assert!(v["seat"].is_null() && v.as_object().unwrap().contains_key("seat"));
    assert_eq!(v["clock"]["clock_behind"], false);
    assert!(v["clock"]["high_water_mark"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    f.clock.advance_millis(2 * DAY * 1000);
    let v: Value = serde_json::from_str(&e.status_json()).unwrap();
    assert_eq!(v["tier"], "community");
    assert_eq!(v["degraded"], true, "{v}");
    assert_eq!(v["previous_tier"], "team");

    let mut c = claims("pro", NOW + 30 * DAY);
    c["platform"] = json!(" development ");
    let f = Fixture::new();
    let e = f.start(json!({"key": mint(&c)}));
    assert_eq!(e.status().platform, "DEVELOPMENT");
}
