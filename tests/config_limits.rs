//! The operator's config shortens the vendor's terms and never lengthens them: grace,
//! leeway, Community entitlements and trusted keys. And plain http to a loopback backend
//! never leaves the machine through a proxy.

mod common;

use common::*;
use lic4es::log::Level;
use lic4es::token::KeySet;
use lic4es::Tier;
use serde_json::{json, Value};

#[test]
fn grace_and_leeway_in_the_config_cannot_revive_an_expired_license() {
    let f = Fixture::new();
    let old = mint(&claims("enterprise", NOW - 100 * DAY));
    let e = f.start(json!({"key": old}));
    assert_eq!(e.tier(), Tier::Community);
    drop(e);

    let e = f.start(json!({"key": old, "grace-period": "3650d"}));
    assert_eq!(e.tier(), Tier::Community, "at most the vendor's 14 days");
    assert!(f.logs.has(
        Level::Warn,
        "grace-period: 3650 days is longer than the license allows"
    ));
    drop(e);

    let e = f.start(json!({"key": old, "clock-skew": "3650d"}));
    assert_eq!(e.tier(), Tier::Community, "at most 5 minutes of leeway");
    assert_ne!(e.status().status, "Active");
    assert!(f.logs.has(
        Level::Warn,
        "clock-skew: 315360000 s is longer than the 300 s allowed"
    ));
    drop(e);

    // The vendor's own maximum, in the token, is what a longer grace may reach.
    let mut c = claims("enterprise", NOW - 100 * DAY);
    c["grace_days"] = json!(120);
    let generous = mint(&c);
    let e = f.start(json!({"key": generous, "grace-period": "3650d"}));
    assert_eq!(e.tier(), Tier::Enterprise);
    assert_eq!(e.status().grace, "mid");
    drop(e);
    // The default (14 days) is all it gets unless the operator asks for more.
    let e = f.start(json!({"key": generous}));
    assert_eq!(e.tier(), Tier::Community);
    drop(e);

    // Shortening works: a token three days expired, a one-day grace.
    let e = f.start(json!({"key": mint(&claims("pro", NOW - 3 * DAY)), "grace-period": "1d"}));
    assert_eq!(e.tier(), Tier::Community);
    // And a seat of the vendor's: grace_days 0 leaves no grace at all.
    let mut c = claims("pro", NOW - 60);
    c["grace_days"] = json!(0);
    let e = f.start(json!({"key": mint(&c)}));
    assert_eq!(e.tier(), Tier::Community, "{}", f.logs.dump());
}

#[test]
fn community_entitlements_in_the_config_only_narrow_the_vendors() {
    let f = Fixture::new();
    let e = f.start(json!({"community": {
        "features": ["everything", "jdbc_driver", "federation"],
        "quotas": {"max_clusters": 1000, "max_joins": 1, "max_materialized_views": null,
                   "max_new_thing": 3}
    }}));
    assert_eq!(e.tier(), Tier::Community);
    assert!(!e.has_feature("everything"), "not the vendor's");
    assert!(e.has_feature("jdbc_driver") && e.has_feature("federation"));
    assert!(!e.has_feature("repl"), "narrowed away");
    assert_eq!(e.quota("max_clusters"), 1, "clamped to the vendor's");
    assert_eq!(e.quota("max_joins"), 1, "narrowed");
    assert_eq!(
        e.quota("max_materialized_views"),
        1,
        "unlimited is above the vendor's"
    );
    assert_eq!(
        e.quota("max_new_thing"),
        3,
        "a limit the vendor did not set narrows"
    );
    assert_eq!(
        e.quota("max_result_rows"),
        10_000,
        "the vendor's, untouched"
    );
    for w in [
        "community.features: `everything` is not a Community feature",
        "community.quotas.max_clusters: 1000 is above the product's 1; clamped to 1",
        "community.quotas.max_materialized_views: unlimited is above the product's 1",
    ] {
        assert!(f.logs.has(Level::Warn, w), "{w}\n{}", f.logs.dump());
    }
    // -1 would read as unlimited through lic_quota.
    let err = lic4es::Config::from_json_with_env(
        &json!({"community": {"quotas": {"max_clusters": -1}}}).to_string(),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(err.key, "community.quotas.max_clusters");
}

#[test]
fn keys_given_in_config_can_narrow_a_built_in_set_and_never_add_to_it() {
    let builtin = KeySet::from_json_value(&jwks()).unwrap();
    let other: Value =
        serde_json::from_str(&std::fs::read_to_string(keys_dir().join("jwks-other.json")).unwrap())
            .unwrap();
    let mut mixed = jwks()["keys"].as_array().unwrap()[..1].to_vec();
    mixed.extend(other["keys"].as_array().unwrap().iter().cloned());
    let given = KeySet::from_json_value(&Value::Array(mixed)).unwrap();
    let (kept, dropped) = given.within(&builtin);
    assert_eq!(kept.kids(), vec!["test-ed-1"]);
    assert_eq!(dropped.len(), other["keys"].as_array().unwrap().len());
    // Same kid, another key: not the vendor's.
    let mut forged = other["keys"][0].clone();
    forged["kid"] = json!("test-ed-1");
    let forged = KeySet::from_json_value(&json!([forged])).unwrap();
    assert!(forged.within(&builtin).0.is_empty());
}

/// `lic4es status` in its own process (the proxy variables are process-wide), with every
/// proxy variable pointing at `proxy`.
fn status_through(proxy: &RecordingProxy, api_url: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("license.json");
    std::fs::write(
        &cfg,
        json!({"api-key": "sk-proxy-test", "api-url": api_url, "public-keys": jwks(),
               "seat.enabled": false, "connect-timeout": "2s", "read-timeout": "2s",
               "cache-dir": dir.path().join("c").to_str().unwrap()})
        .to_string(),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let out = cli()
        .args(["status", "--config", cfg.to_str().unwrap()])
        .env_remove("SOFTCLIENT4ES_API_KEY")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .envs(
            [
                "HTTP_PROXY",
                "http_proxy",
                "HTTPS_PROXY",
                "https_proxy",
                "ALL_PROXY",
                "all_proxy",
            ]
            .map(|v| (v, url.as_str())),
        )
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_loopback_backend_is_never_reached_through_a_proxy() {
    let proxy = RecordingProxy::start();
    let jwt = mint(&claims("pro", wall_now() + 30 * DAY));
    let backend = TestServer::start(move |r| Reply::token_for(r, &jwt));
    let s = status_through(&proxy, &backend.url());
    assert_eq!(s["tier"], "pro", "{s}");
    assert_eq!(backend.requests().len(), 1, "straight to the backend");
    assert!(
        proxy.seen().is_empty(),
        "the API key never went to the proxy: {:?}",
        proxy.seen()
    );

    // The same settings do reach the proxy for a backend elsewhere: the proxy is real and
    // the environment is followed.
    let s = status_through(&proxy, "https://license.example.com");
    assert_eq!(s["tier"], "community");
    proxy.expect("CONNECT license.example.com:443");
}
