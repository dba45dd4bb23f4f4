//! The refresh scheduler (`docs/explanation/tier.md`) on tokio's paused time: days of schedule run in
//! milliseconds, against an HTTP backend on loopback served from the same runtime.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::paused::{AsyncServer, PausedClock};
use common::*;
use lic4es::log::Level;
use lic4es::telemetry::{Counter, Usage};
use lic4es::{Config, Engine, EngineError, EngineOptions, Source, Tier};
use serde_json::{json, Value};

const H: u64 = 3600;

async fn wait_secs(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

struct Run {
    f: Fixture,
    usage: &'static Usage,
}

impl Run {
    fn new() -> Run {
        Run {
            f: Fixture::new(),
            usage: Box::leak(Box::new(Usage::new())),
        }
    }

    async fn start(&self, extra: Value) -> Engine {
        let cfg = Config::from_json_with_env(&self.f.config(extra).to_string(), &|_| None)
            .expect("valid config");
        Engine::start_on_runtime(
            cfg,
            EngineOptions {
                clock: Arc::new(PausedClock::new(NOW)),
                log: self.f.logs.sink(),
                machine_id: Some(MACHINE_ID.into()),
                tier_mirror: None,
                usage: self.usage,
                ..EngineOptions::default()
            },
        )
        .await
    }

    /// A backend that answers every token fetch with `first`, and an engine in API-key
    /// mode against it, with `extra` config.
    async fn api_key_engine(&self, first: String, extra: Value) -> (AsyncServer, Engine) {
        let server = AsyncServer::start(move |r| Reply::token_for(r, &first)).await;
        let mut cfg = json!({"api-key": "sk-test", "api-url": server.url()});
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let e = self.start(cfg).await;
        (server, e)
    }

    fn logs(&self) -> &Logs {
        &self.f.logs
    }
}

fn with_refresh_url(tier: &str, days: i64, url: &str) -> String {
    let mut c = claims(tier, NOW + days * DAY);
    c["refresh_url"] = Value::from(url);
    mint(&c)
}

#[tokio::test(start_paused = true)]
async fn api_key_mode_refreshes_every_interval_and_picks_up_an_upgrade() {
    let r = Run::new();
    let (server, e) = r
        .api_key_engine(token("pro", 30), json!({"refresh.interval": "24h"}))
        .await;
    assert_eq!(e.tier(), Tier::Pro);
    assert_eq!(server.count(), 1);
    assert_eq!(
        e.status().next_refresh_at.unwrap(),
        lic4es::clock::rfc3339_millis((NOW + DAY) * 1000)
    );

    let enterprise = token("enterprise", 30);
    let cached = enterprise.clone();
    server.answer(move |r| Reply::token_for(r, &enterprise));
    wait_secs(23 * H).await;
    assert_eq!(server.count(), 1, "nothing before the interval");
    assert_eq!(e.tier(), Tier::Pro);
    wait_secs(2 * H).await;
    assert_eq!(server.count(), 2);
    assert_eq!(server.seen()[1].at_ms, 24 * H * 1000);
    assert_eq!(e.tier(), Tier::Enterprise);
    assert!(
        r.logs()
            .has(Level::Info, "License upgraded from Pro to Enterprise"),
        "{}",
        r.logs().dump()
    );
    assert_eq!(
        claims_of(&r.f.read_cache().unwrap()),
        claims_of(&cached),
        "the refreshed token is cached"
    );
    let s = e.status();
    assert!(s.last_refresh.unwrap().ok);
    assert_eq!(
        s.next_refresh_at.unwrap(),
        lic4es::clock::rfc3339_millis((NOW + 2 * DAY) * 1000)
    );
    let body = server.seen()[1].req.json();
    assert_eq!(body["uptime_hours"], 24.0);
    assert_ne!(body["nonce"], server.seen()[0].req.json()["nonce"]);
}

#[tokio::test(start_paused = true)]
async fn failures_keep_the_token_and_the_schedule() {
    let r = Run::new();
    let (server, e) = r
        .api_key_engine(token("pro", 30), json!({"read-timeout": "5s"}))
        .await;
    let failures: Vec<(Reply, &str)> = vec![
        (
            Reply::json(503, json!({"error": "maintenance"})),
            "unexpected HTTP status 503",
        ),
        (Reply::raw(200, "<html>"), "malformed response"),
        (
            Reply::raw(200, format!("{{\"jwt\":\"{}\"}}", "a".repeat(70_000))),
            "64 KiB",
        ),
        (Reply::hang(), "timed out"),
        (Reply::json(200, json!({"jwt": null})), "no `jwt`"),
    ];
    for (i, (reply, reason)) in failures.into_iter().enumerate() {
        server.answer(move |_| reply.clone());
        wait_secs(24 * H).await;
        wait_secs(10).await;
        assert_eq!(
            server.count(),
            i + 2,
            "one attempt per interval, no retry storm"
        );
        assert_eq!(e.tier(), Tier::Pro);
        assert_eq!(r.logs().count("License refresh failed: "), i + 1);
        r.logs().expect(Level::Warn, "License refresh failed: ");
        let last = e.status().last_refresh.unwrap();
        assert!(!last.ok);
        assert!(last.error.as_deref().unwrap().contains(reason), "{last:?}");
    }
    // Every attempt was on the regular schedule: an interval after the previous one.
    let times: Vec<u64> = server.seen().iter().map(|s| s.at_ms / 1000).collect();
    // The timed-out attempt took the 5 s read timeout; the next is an interval after it.
    assert_eq!(times, vec![0, 86_400, 172_800, 259_200, 345_600, 432_005]);
}

#[tokio::test(start_paused = true)]
async fn revocation_while_running_drops_to_community_at_once() {
    let r = Run::new();
    let (server, e) = r.api_key_engine(token("pro", 30), json!({})).await;
    assert!(r.f.read_cache().is_some());
    server.answer(|_| {
        Reply::json(
            401,
            json!({"error": "api_key_revoked", "message": "key revoked by admin"}),
        )
    });
    wait_secs(24 * H + 1).await;
    assert_eq!(e.tier(), Tier::Community);
    assert_eq!(e.status().status, "Revoked");
    assert!(r.f.read_cache().is_none(), "revocation deletes the cache");
    r.logs().expect(Level::Error, "key revoked by admin");
    r.logs()
        .expect(Level::Warn, "License downgraded from Pro to Community");
}

#[tokio::test(start_paused = true)]
async fn static_token_is_refreshed_at_its_refresh_url() {
    let r = Run::new();
    let server = AsyncServer::start(|_| Reply::raw(500, "")).await;
    let url = format!("{}/v1/refresh", server.url());
    let original = with_refresh_url("pro", 30, &url);
    let upgraded = with_refresh_url("enterprise", 60, &url);
    server.answer(move |r| Reply::token_for(r, &upgraded));
    let e = r
        .start(
            json!({"key": original, "product-version": "2.1.0", "api-key": "sk-unused",
                      "api-url": server.url()}),
        )
        .await;
    assert_eq!(e.tier(), Tier::Pro);
    assert_eq!(
        server.count(),
        0,
        "a valid static token is not refreshed at init"
    );
    r.usage.add(Counter::Queries, 42);
    wait_secs(24 * H + 1).await;
    assert_eq!(server.count(), 1);
    let req = &server.seen()[0].req;
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/refresh");
    assert_eq!(
        req.header("authorization").unwrap(),
        format!("Bearer {original}")
    );
    let body = req.json();
    assert_eq!(body["license_id"], "org-acme-123");
    assert_eq!(body["version"], "2.1.0");
    assert_eq!(body["nonce"].as_str().unwrap().len(), 32);
    assert_eq!(body["telemetry"]["queries_total"], 42);
    assert!(body["instance_id"].is_string());
    assert_eq!(e.tier(), Tier::Enterprise);
    assert_eq!(e.status().source, Source::Static);
    assert!(r.f.read_cache().is_none(), "static mode writes no cache");
    assert_eq!(e.status().last_telemetry.unwrap(), body);

    server.answer(|_| Reply::raw(204, ""));
    wait_secs(24 * H).await;
    assert_eq!(server.count(), 2);
    assert_eq!(e.tier(), Tier::Enterprise);
    assert!(e.status().last_refresh.unwrap().ok);
}

#[tokio::test(start_paused = true)]
async fn static_token_without_refresh_url_makes_no_traffic_ever() {
    let r = Run::new();
    let server = AsyncServer::start(|_| Reply::raw(500, "")).await;
    let e = r
        .start(json!({"key": token("pro", 1), "api-key": "sk-x", "api-url": server.url()}))
        .await;
    wait_secs(10 * 24 * H).await;
    assert_eq!(server.count(), 0);
    assert!(e.status().next_refresh_at.is_none());
    assert!(matches!(
        e.refresh_now_async().await,
        Err(EngineError::Unsupported(_))
    ));
    assert_eq!(server.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn expiring_soon_refreshes_at_once_then_backs_off_then_settles() {
    let r = Run::new();
    let server = AsyncServer::start(|_| Reply::raw(502, "")).await;
    let url = format!("{}/refresh", server.url());
    let e = r
        .start(
            json!({"key": with_refresh_url("pro", 1, &url), "refresh.interval": "1h",
                      "refresh.force-before-expiry": "48h"}),
        )
        .await;
    wait_secs(1).await;
    assert_eq!(server.count(), 1, "refreshed at once at init");
    wait_secs(3 * H).await;
    let times: Vec<u64> = server.seen().iter().map(|s| s.at_ms / 1000).collect();
    // 1 min, doubling, capped at the 1 h interval.
    assert_eq!(times, vec![0, 60, 180, 420, 900, 1_860, 3_780, 7_380]);
    // The next retry (t = 10 980 s) succeeds with a short-lived token, already inside the
    // window: the one after waits a full interval, no storm.
    let short = with_refresh_url("pro", 1, &url);
    server.answer(move |r| Reply::token_for(r, &short));
    wait_secs(180).await;
    assert_eq!(server.count(), 9);
    assert_eq!(server.seen()[8].at_ms / 1000, 10_980);
    wait_secs(H - 2).await;
    assert_eq!(server.count(), 9, "next one waits a full interval");
    wait_secs(4).await;
    assert_eq!(server.count(), 10);
    assert_eq!(e.tier(), Tier::Pro);
}

#[tokio::test(start_paused = true)]
async fn a_running_token_entering_the_window_is_refreshed_at_that_moment() {
    let r = Run::new();
    let first = token("pro", 5);
    let server = AsyncServer::start(move |r| Reply::token_for(r, &first)).await;
    let e = r
        .start(
            json!({"api-key": "sk-test", "api-url": server.url(), "refresh.interval": "7d",
                      "refresh.force-before-expiry": "48h"}),
        )
        .await;
    let renewed = token("pro", 4);
    server.answer(move |r| Reply::token_for(r, &renewed));
    wait_secs(3 * 24 * H - 60).await;
    assert_eq!(server.count(), 1);
    wait_secs(120).await;
    assert_eq!(
        server.count(),
        2,
        "refreshed when the token entered the 48 h window"
    );
    assert_eq!(server.seen()[1].at_ms / 1000, 3 * 86_400);
    wait_secs(3 * 24 * H).await;
    assert_eq!(
        server.count(),
        2,
        "the renewed token was already in the window"
    );
    assert_eq!(e.tier(), Tier::Pro);
}

#[tokio::test(start_paused = true)]
async fn init_fetch_failure_inside_the_window_retries_after_a_minute() {
    let r = Run::new();
    r.f.write_cache(&token("pro", 1));
    let server = AsyncServer::start(|_| Reply::raw(500, "")).await;
    let e = r
        .start(json!({"api-key": "sk-test", "api-url": server.url()}))
        .await;
    assert_eq!(e.status().source, Source::Cache);
    assert_eq!(server.count(), 1);
    wait_secs(61).await;
    assert_eq!(server.count(), 2);
    let times: Vec<u64> = server.seen().iter().map(|s| s.at_ms / 1000).collect();
    assert_eq!(times, vec![0, 60]);
}

#[tokio::test(start_paused = true)]
async fn refreshed_token_with_another_nonce_is_rejected() {
    let r = Run::new();
    let (server, e) = r.api_key_engine(token("pro", 30), json!({})).await;
    server.answer(|_| {
        let mut c = claims("enterprise", NOW + 30 * DAY);
        c["nonce"] = Value::from("ffffffffffffffffffffffffffffffff");
        Reply::token(&mint(&c))
    });
    assert!(matches!(
        e.refresh_now_async().await,
        Err(EngineError::RefreshFailed(m)) if m.contains("nonce")
    ));
    assert_eq!(e.tier(), Tier::Pro);
    r.logs().expect(Level::Warn, "License refresh failed");
}

#[tokio::test(start_paused = true)]
async fn refresh_now_reports_the_outcome_and_resets_the_schedule() {
    let r = Run::new();
    let (server, e) = r.api_key_engine(token("pro", 30), json!({})).await;
    wait_secs(10 * H).await;
    let team = token("team", 30);
    server.answer(move |r| Reply::token_for(r, &team));
    e.refresh_now_async().await.unwrap();
    assert_eq!(e.tier(), Tier::Team);
    assert_eq!(
        e.status().next_refresh_at.unwrap(),
        lic4es::clock::rfc3339_millis((NOW + 34 * H as i64) * 1000)
    );
    server.answer(|_| Reply::json(500, json!({})));
    let err = e.refresh_now_async().await.unwrap_err();
    assert!(
        matches!(&err, EngineError::RefreshFailed(m) if m.contains("500")),
        "{err}"
    );
    assert_eq!(e.tier(), Tier::Team);
}

#[tokio::test(start_paused = true)]
async fn refresh_disabled_means_no_background_traffic() {
    let r = Run::new();
    let (server, e) = r
        .api_key_engine(token("pro", 30), json!({"refresh.enabled": false}))
        .await;
    wait_secs(5 * 24 * H).await;
    assert_eq!(server.count(), 1);
    assert!(e.status().next_refresh_at.is_none());
    e.refresh_now_async().await.unwrap();
    assert_eq!(server.count(), 2, "an explicit refresh still works");
}

#[tokio::test(start_paused = true)]
async fn tier_drops_at_the_end_of_grace_without_anyone_asking() {
    let r = Run::new();
    let e = r
        .start(json!({"key": mint(&claims("pro", NOW + 3600)), "grace-period": "1d"}))
        .await;
    wait_secs(H + 24 * H - 2).await;
    assert_eq!(e.tier(), Tier::Pro);
    wait_secs(4).await;
    assert_eq!(e.tier(), Tier::Community, "a timer, not a poll by status()");
    r.logs()
        .expect(Level::Warn, "License downgraded from Pro to Community");
}

#[tokio::test(start_paused = true)]
async fn telemetry_off_sends_no_counters_on_refresh() {
    let r = Run::new();
    let (server, e) = r
        .api_key_engine(token("pro", 30), json!({"telemetry.enabled": false}))
        .await;
    r.usage.add(Counter::Joins, 3);
    wait_secs(24 * H + 1).await;
    assert_eq!(server.count(), 2);
    for s in server.seen() {
        let body = s.req.json();
        assert!(body.get("telemetry").is_none());
        assert!(body.get("instance_id").is_some());
    }
    assert!(e
        .status()
        .last_telemetry
        .unwrap()
        .get("telemetry")
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn a_revoked_static_token_stops_the_schedule() {
    let r = Run::new();
    let server = AsyncServer::start(|_| {
        Reply::json(
            403,
            json!({"error": "license_revoked", "message": "revoked"}),
        )
    })
    .await;
    let url = format!("{}/refresh", server.url());
    let e = r
        .start(json!({"key": with_refresh_url("pro", 30, &url)}))
        .await;
    wait_secs(24 * H + 1).await;
    assert_eq!(server.count(), 1);
    assert_eq!(e.status().status, "Revoked");
    // Nothing is left to refresh from: the worker goes back to sleep instead of spinning.
    wait_secs(5 * 24 * H).await;
    assert_eq!(server.count(), 1);
    assert!(e.status().next_refresh_at.is_none());
}
