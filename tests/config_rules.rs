//! The engine configuration (`docs/reference/engine-config.md`): every key parsed and validated, errors naming the key.

mod common;

use std::time::Duration;

use common::*;
use lic4es::config::SeatChoice;
use lic4es::log::Level;
use lic4es::Config;
use serde_json::{json, Value};

fn parse(v: Value) -> Result<Config, lic4es::ConfigError> {
    Config::from_json_with_env(&v.to_string(), &|_| None)
}

fn err_key(v: Value) -> String {
    parse(v).expect_err("config accepted").key
}

#[test]
fn empty_object_is_valid_community_config() {
    let c = parse(json!({})).unwrap();
    assert!(!c.has_license_source());
    assert_eq!(c.api_urls[0].as_str(), "https://license.softclient4es.com/");
    assert_eq!(c.grace_period, Duration::from_secs(14 * DAY as u64));
    assert_eq!(c.clock_skew, Duration::from_secs(60));
    assert_eq!(c.refresh.interval, Duration::from_secs(86_400));
    assert_eq!(
        c.refresh.force_before_expiry,
        Duration::from_secs(48 * 3600)
    );
    assert!(c.refresh.enabled && c.telemetry.enabled);
    assert_eq!(
        c.seat.enabled,
        SeatChoice::Auto,
        "the license decides by default"
    );
    assert_eq!(c.seat.max_heartbeat_failures, 3);
    assert_eq!(c.seat.release_timeout, Duration::from_secs(2));
    assert_eq!(c.seat.reconnect_interval, Duration::from_secs(3600));
    assert_eq!(c.log_level, Level::Info);
    assert!(c.cache_dir.ends_with(".softclient4es"));
}

#[test]
fn not_an_object_or_not_json_is_an_error() {
    for s in ["", "[]", "42", "\"x\"", "null", "{", "{\"key\": }"] {
        let e = Config::from_json_with_env(s, &|_| None).unwrap_err();
        assert_eq!(e.key, "(config)", "{s}");
    }
}

#[test]
fn every_key_is_accepted_nested_or_dotted() {
    let full = json!({
        "key": token("pro", 1),
        "api-key": "sk-abc",
        "api-url": "http://127.0.0.1:8700",
        "public-keys": jwks(),
        "issuer": ISSUER,
        "cache-dir": "/tmp/lic4es-test",
        "grace-period": "7d",
        "clock-skew": "30s",
        "connect-timeout": "3s",
        "read-timeout": 4000,
        "product-version": "1.2.3",
        "instance-id": "pod-1",
        "refresh": {"enabled": false, "interval": "1h", "force-before-expiry": "2h"},
        "telemetry": {"enabled": "off", "exclude": ["joins_total"]},
        "seat": {"enabled": true, "reconnect-interval": "10m", "max-heartbeat-failures": 5,
                 "release-timeout": "500ms", "hardware-id": "hw-1"},
        "community": {"features": ["repl"], "quotas": {"max_joins": 1, "max_clusters": null}},
        "log-level": "WARN"
    });
    let c = parse(full).unwrap();
    assert_eq!(c.read_timeout, Duration::from_secs(4));
    assert_eq!(c.refresh.interval, Duration::from_secs(3600));
    assert!(!c.refresh.enabled && !c.telemetry.enabled);
    assert_eq!(c.seat.enabled, SeatChoice::On);
    assert_eq!(c.telemetry.exclude, vec!["joins_total"]);
    assert_eq!(c.seat.max_heartbeat_failures, 5);
    assert_eq!(c.seat.hardware_id.as_deref(), Some("hw-1"));
    assert_eq!(c.community.quota("max_joins"), 1);
    assert_eq!(
        c.community.quota("max_clusters"),
        1,
        "unlimited is above the vendor's: clamped"
    );
    assert!(c.warnings.iter().any(|w| w.contains("max_clusters")));
    assert_eq!(c.log_level, Level::Warn);

    let dotted = parse(json!({"refresh.interval": "2h", "seat.release-timeout": "1s"})).unwrap();
    assert_eq!(dotted.refresh.interval, Duration::from_secs(7200));
    assert_eq!(dotted.seat.release_timeout, Duration::from_secs(1));
}

#[test]
fn unknown_keys_are_named() {
    assert_eq!(err_key(json!({"colour": "blue"})), "colour");
    assert_eq!(
        err_key(json!({"refresh": {"intervall": "1h"}})),
        "refresh.intervall"
    );
    assert_eq!(err_key(json!({"seat.enable": true})), "seat.enable");
    assert_eq!(
        err_key(json!({"community": {"quotas.max_joins": 3}})),
        "community.quotas.max_joins"
    );
    let msg = parse(json!({"telemetry": {"enabeld": true}}))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("telemetry.enabeld") && msg.contains("unknown key"),
        "{msg}"
    );
}

#[test]
fn same_key_twice_is_an_error() {
    assert_eq!(
        err_key(json!({"refresh": {"interval": "1h"}, "refresh.interval": "2h"})),
        "refresh.interval"
    );
}

#[test]
fn bad_durations_are_named() {
    for (k, v) in [
        ("grace-period", json!("fortnight")),
        ("clock-skew", json!("-5s")),
        ("connect-timeout", json!("0s")),
        ("read-timeout", json!(true)),
        ("refresh.interval", json!("0")),
        ("refresh.force-before-expiry", json!("5 weeks")),
        ("seat.reconnect-interval", json!([])),
        ("seat.release-timeout", json!("1e9d")),
    ] {
        let mut doc = json!({});
        doc[k] = v.clone();
        assert_eq!(err_key(doc), k, "{k} = {v}");
    }
}

#[test]
fn bad_api_keys_are_rejected() {
    for bad in [
        "abc",
        "sk-",
        "SK-abc",
        "sk-has space",
        "sk-tab\there",
        "pk-live-1",
    ] {
        assert_eq!(
            err_key(json!({"api-key": bad, "public-keys": jwks()})),
            "api-key",
            "{bad}"
        );
    }
    assert!(parse(json!({"api-key": "sk-x", "public-keys": jwks()})).is_ok());
}

#[test]
fn blank_strings_and_nulls_are_absent() {
    let c = parse(
        json!({"key": "  ", "api-key": "", "api-url": "", "cache-dir": null, "refresh": null}),
    )
    .unwrap();
    assert!(!c.has_license_source());
    assert_eq!(c.api_urls[0].as_str(), "https://license.softclient4es.com/");
}

#[test]
fn environment_supplies_key_and_api_key() {
    let env = |name: &str| match name {
        "SOFTCLIENT4ES_LICENSE_KEY" => Some("eyJ.from.env".to_string()),
        "SOFTCLIENT4ES_API_KEY" => Some("sk-from-env".to_string()),
        _ => None,
    };
    let doc = json!({"public-keys": jwks()}).to_string();
    let c = Config::from_json_with_env(&doc, &env).unwrap();
    assert_eq!(c.key.as_deref(), Some("eyJ.from.env"));
    assert_eq!(c.api_key.as_deref(), Some("sk-from-env"));

    let doc = json!({"public-keys": jwks(), "key": "eyJ.from.config", "api-key": "sk-config"})
        .to_string();
    let c = Config::from_json_with_env(&doc, &env).unwrap();
    assert_eq!(c.key.as_deref(), Some("eyJ.from.config"));
    assert_eq!(c.api_key.as_deref(), Some("sk-config"));

    let bad_env = |name: &str| (name == "SOFTCLIENT4ES_API_KEY").then(|| "nope".to_string());
    let e = Config::from_json_with_env(&json!({"public-keys": jwks()}).to_string(), &bad_env)
        .unwrap_err();
    assert_eq!(e.key, "api-key");
}

#[test]
fn seat_mode_needs_an_api_key() {
    assert_eq!(err_key(json!({"seat": {"enabled": true}})), "seat.enabled");
    // "auto" without an API key is not an error: there is nothing to count.
    let c = Config::from_json_with_env(&json!({"seat.enabled": "auto"}).to_string(), &|_| None)
        .unwrap();
    assert_eq!(c.seat.enabled, SeatChoice::Auto);
    for (v, want) in [
        (json!("AUTO"), SeatChoice::Auto),
        (json!(false), SeatChoice::Off),
        (json!("off"), SeatChoice::Off),
        (json!("yes"), SeatChoice::On),
    ] {
        let cfg = json!({"seat.enabled": v, "api-key": "sk-x", "public-keys": jwks()});
        let c = Config::from_json_with_env(&cfg.to_string(), &|_| None).unwrap();
        assert_eq!(c.seat.enabled, want, "{v}");
    }
    for bad in [json!("sometimes"), json!(1)] {
        assert_eq!(err_key(json!({"seat.enabled": bad})), "seat.enabled");
    }
}

#[test]
fn plain_http_is_only_for_loopback() {
    assert_eq!(
        err_key(json!({"api-url": "http://license.example.com"})),
        "api-url"
    );
    assert_eq!(err_key(json!({"api-url": "not a url"})), "api-url");
    assert_eq!(err_key(json!({"api-url": "file:///etc/passwd"})), "api-url");
    assert!(parse(json!({"api-url": "http://localhost:8700"})).is_ok());
    assert!(parse(json!({"api-url": "https://license.example.com/base/"})).is_ok());
}

#[test]
fn a_license_source_needs_public_keys() {
    assert_eq!(err_key(json!({"key": "eyJ.x.y"})), "public-keys");
    assert_eq!(err_key(json!({"api-key": "sk-x"})), "public-keys");
    assert_eq!(
        err_key(json!({"key": "eyJ.x.y", "public-keys": []})),
        "public-keys"
    );
}

#[test]
fn key_and_key_file_together_are_ambiguous() {
    assert_eq!(
        err_key(json!({"key": "a.b.c", "key-file": "/tmp/x", "public-keys": jwks()})),
        "key-file"
    );
}

#[test]
fn wrong_types_are_named() {
    for (k, v) in [
        ("key", json!(["a"])),
        ("refresh.enabled", json!("maybe")),
        ("telemetry.exclude", json!("queries_total")),
        ("telemetry.exclude", json!(["instance_id"])),
        ("seat.max-heartbeat-failures", json!(0)),
        ("seat.max-heartbeat-failures", json!(-1)),
        ("community.features", json!([1, 2])),
        ("community.quotas", json!([])),
        ("log-level", json!("verbose")),
        ("refresh", json!("24h")),
        ("instance-id", json!("a\u{0007}b")),
    ] {
        let mut doc = json!({});
        doc[k] = v.clone();
        let key = err_key(doc);
        assert!(key.starts_with(k), "{k} = {v}: error named {key}");
    }
}

#[test]
fn home_is_expanded_in_cache_dir() {
    let c = parse(json!({"cache-dir": "~/lic-cache"})).unwrap();
    if let Some(home) = dirs::home_dir() {
        assert_eq!(c.cache_dir, home.join("lic-cache"));
    }
}

#[test]
fn paths_must_be_strings() {
    assert_eq!(err_key(json!({"cache-dir": 5})), "cache-dir");
    assert_eq!(err_key(json!({"key-file": 5})), "key-file");
    assert_eq!(err_key(json!({"cache-dir": true})), "cache-dir");
}

#[test]
fn a_timeout_below_a_millisecond_is_refused_like_zero() {
    for v in [json!("0.0001ms"), json!(0.0001), json!("10us"), json!("0s")] {
        assert_eq!(
            err_key(json!({"read-timeout": v.clone()})),
            "read-timeout",
            "{v}"
        );
        assert_eq!(
            err_key(json!({"connect-timeout": v.clone()})),
            "connect-timeout"
        );
    }
    assert_eq!(
        parse(json!({"read-timeout": "1ms"})).unwrap().read_timeout,
        Duration::from_millis(1)
    );
}

#[test]
fn an_oversized_config_is_refused_before_it_is_parsed() {
    let huge = format!(
        "{{\"community\": {{\"features\": [{}\"x\"]}}}}",
        "\"f\",".repeat(2_500_000)
    );
    assert!(huge.len() > 10_000_000);
    let e = Config::from_json_with_env(&huge, &|_| None).expect_err("refused");
    assert_eq!(e.key, "(config)");
    assert!(e.message.contains("limit"), "{}", e.message);
    // A large but sane document (a JWKS with many keys, long feature lists) still parses.
    let features: Vec<String> = (0..2000).map(|i| format!("feature_{i}")).collect();
    assert!(parse(json!({"community": {"features": features}})).is_ok());
}

#[test]
fn a_token_under_the_wrong_key_is_not_echoed_in_the_error() {
    let tok = token("enterprise", 30);
    let tail = &tok[10..40];
    for doc in [
        json!({"log-level": tok}),
        json!({"refresh.interval": tok}),
        json!({"api-url": tok}),
        json!({"refresh.enabled": tok}),
        json!({"telemetry.exclude": [tok]}),
        json!({tok.clone(): "x"}),
        json!({"seat": {tok.clone(): 1}}),
    ] {
        let e = parse(doc.clone()).expect_err("refused");
        let shown = e.to_string();
        assert!(!shown.contains(tail), "token echoed: {shown}");
        assert!(shown.len() < 300, "{shown}");
    }
    // Short values are still shown, so the operator sees the typo.
    let e = parse(json!({"log-level": "verbose"})).unwrap_err();
    assert!(e.to_string().contains("`verbose`"), "{e}");
}

#[test]
fn require_nonce_is_no_longer_a_setting_but_old_configs_still_load() {
    // The nonce is always required; SoftClient4ES configs that name the key still load.
    let quiet =
        |c: &lic4es::config::Config| !c.warnings.iter().any(|w| w.contains("require-nonce"));
    assert!(quiet(&parse(json!({})).unwrap()));
    assert!(quiet(&parse(json!({"require-nonce": true})).unwrap()));
    assert!(quiet(&parse(json!({"require-nonce": "yes"})).unwrap()));
    let c = parse(json!({"require-nonce": false})).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("require-nonce: false is ignored")),
        "{:?}",
        c.warnings
    );
    assert_eq!(err_key(json!({"require-nonce": 3})), "require-nonce");
}

#[test]
fn max_heartbeat_failures_is_clamped_to_ten() {
    let c = parse(json!({"seat": {"max-heartbeat-failures": 1000}})).unwrap();
    assert_eq!(c.seat.max_heartbeat_failures, 10);
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("seat.max-heartbeat-failures: 1000 is clamped to 10")));
    let c = parse(json!({"seat": {"max-heartbeat-failures": 10}})).unwrap();
    assert_eq!(c.seat.max_heartbeat_failures, 10);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn a_long_url_is_not_echoed_whole() {
    // Found by the config fuzzer: an http URL of 2 KB came back whole in the error.
    let long = format!("http://{}.example.com/{}", "a".repeat(60), "p".repeat(2000));
    let e = parse(json!({"api-url": long})).unwrap_err();
    assert_eq!(e.key, "api-url");
    assert!(e.to_string().len() < 200, "{e}");
    assert!(e.to_string().contains("must use https"), "{e}");
}

#[test]
fn a_runaway_value_in_public_keys_is_not_echoed_whole() {
    // Found by the config fuzz target: a 2 000-character `kty` made a 2 390-byte error.
    let long = "K".repeat(2000);
    for jwk in [
        json!({"kty": long, "kid": "k"}),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "k", "alg": long,
               "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
    ] {
        let e = parse(json!({"public-keys": [jwk]})).unwrap_err();
        assert_eq!(e.key, "public-keys");
        assert!(e.to_string().len() < 200, "{}", e.to_string().len());
    }
    let dup = "d".repeat(2000);
    let key = json!({"kty": "OKP", "crv": "Ed25519", "kid": dup,
                     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    let e = parse(json!({"public-keys": [key.clone(), key]})).unwrap_err();
    assert!(e.to_string().len() < 200, "{}", e.to_string().len());
}

#[test]
fn relay_url_replaces_the_server_even_a_pinned_one_and_takes_only_relays_tokens() {
    let c = parse(json!({})).unwrap();
    assert!(!c.relay_only);
    let c = parse(json!({"relay-url": "https://relay.plant.example:8700"})).unwrap();
    assert!(c.relay_only);
    assert_eq!(c.api_urls[0].as_str(), "https://relay.plant.example:8700/");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Beside api-url, the relay is the server and api-url is said to be ignored.
    let c = parse(json!({"api-url": "https://vendor.example", "relay-url":
                         ["https://relay-a.example", "https://relay-b.example"]}))
    .unwrap();
    assert_eq!(c.api_urls.len(), 2);
    assert!(
        c.warnings.iter().any(|w| w.contains("relay-url")),
        "{:?}",
        c.warnings
    );
    // In a build that pins its server, relay-url is still how a relay is reached.
    let pins = lic4es::pins::Pins::parse("https://license.vendor.example", "").unwrap();
    let c = Config::from_json_pinned(
        &json!({"relay-url": "http://127.0.0.1:8700"}).to_string(),
        &|_| None,
        &pins,
    )
    .unwrap();
    assert!(c.relay_only);
    assert_eq!(c.api_urls[0].as_str(), "http://127.0.0.1:8700/");
    // The https rule holds for it as for api-url.
    assert_eq!(
        err_key(json!({"relay-url": "http://relay.plant.example"})),
        "relay-url"
    );
    assert_eq!(err_key(json!({"relay-url": []})), "relay-url");
}
