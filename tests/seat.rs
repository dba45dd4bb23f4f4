//! Seat mode (`docs/explanation/seats.md`) through the engine, on tokio's paused time against a seat
//! backend on loopback: days of heartbeats, outages, restarts and revocations run in
//! milliseconds.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::paused::{AsyncServer, PausedClock};
use common::seat::{Mode, SeatFake};
use common::*;
use lic4es::clock::{parse_rfc3339, rfc3339_millis, Clock};
use lic4es::log::Level;
use lic4es::protocol::paths;
use lic4es::seat::SeatState;
use lic4es::{Config, Engine, EngineOptions, Source, Tier};
use serde_json::{json, Value};

const MIN: u64 = 60;
const H: u64 = 3600;
const D: u64 = 86_400;

async fn wait_secs(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

struct Run {
    f: Fixture,
    clock: Arc<PausedClock>,
    fake: SeatFake,
    server: AsyncServer,
}

impl Run {
    async fn new() -> Run {
        let clock = Arc::new(PausedClock::new(NOW));
        let fake = SeatFake::new(clock.clone());
        let answer = fake.clone();
        let server = AsyncServer::start(move |r| answer.answer(r)).await;
        Run {
            f: Fixture::new(),
            clock,
            fake,
            server,
        }
    }

    fn config(&self, extra: Value) -> Config {
        let mut cfg = json!({
            "api-key": "sk-test",
            "api-url": self.server.url(),
            "seat.enabled": true,
            "seat.hardware-id": "hw-test",
        });
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        Config::from_json_with_env(&self.f.config(cfg).to_string(), &|_| None).unwrap()
    }

    async fn start(&self, extra: Value) -> Engine {
        Engine::start_on_runtime(
            self.config(extra),
            EngineOptions {
                clock: self.clock.clone(),
                machine_id: Some(MACHINE_ID.into()),
                log: self.f.logs.sink(),
                jitter: || 1.0,
                ..EngineOptions::default()
            },
        )
        .await
    }

    /// Paths of the requests seen so far.
    fn paths(&self) -> Vec<String> {
        self.server.seen().into_iter().map(|s| s.req.path).collect()
    }

    fn count(&self, path: &str) -> usize {
        self.paths().iter().filter(|p| *p == path).count()
    }

    fn logs(&self) -> &Logs {
        &self.f.logs
    }

    fn state_json(&self) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.f.cache_dir().join("state.json")).unwrap(),
        )
        .unwrap()
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_millis()
    }
}

fn seat_of(e: &Engine) -> lic4es::SeatStatus {
    e.status().seat.expect("seat mode")
}

#[tokio::test(start_paused = true)]
async fn acquires_at_init_heartbeats_every_interval_and_releases_at_shutdown() {
    let r = Run::new().await;
    let e = r.start(json!({})).await;
    assert_eq!(e.tier(), Tier::Pro, "{}", r.logs().dump());
    let s = e.status();
    assert_eq!((s.source, s.mode), (Source::Seat, "online"));
    let seat = s.seat.unwrap();
    assert_eq!(seat.state, SeatState::Online);
    assert_eq!(seat.session_id.as_deref(), Some("s-1"));
    assert_eq!(seat.hardware_id, "hw-test");
    assert_eq!(seat.heartbeat_interval, Some(300));
    assert!(r.logs().has(
        Level::Info,
        "Seat acquired - online mode, heartbeat every 300 s"
    ));
    r.logs()
        .expect(Level::Info, "License from seat: Pro (license org-acme-123");
    assert_eq!(r.logs().count("upgraded"), 0, "{}", r.logs().dump());
    let body = r.server.seen()[0].req.json();
    assert_eq!(body["hardware_id"], "hw-test");
    assert_eq!(body["instance_id"], s.instance_id);
    assert_eq!(body["nonce"].as_str().unwrap().len(), 32);
    assert!(r.f.read_cache().is_some(), "the seat token is cached");

    wait_secs(299).await;
    assert_eq!(r.paths(), vec![paths::ACQUIRE]);
    wait_secs(2).await;
    assert_eq!(r.paths(), vec![paths::ACQUIRE, paths::HEARTBEAT]);
    assert_eq!(r.server.seen()[1].at_ms, 300_000);
    assert_eq!(r.server.seen()[1].req.method, "PUT");
    wait_secs(3 * 300).await;
    assert_eq!(r.count(paths::HEARTBEAT), 4);
    assert_eq!(
        e.status().next_refresh_at.unwrap(),
        rfc3339_millis((NOW + 1500) * 1000)
    );
    assert_eq!(r.state_json()["seat"]["slots"][0]["session_id"], "s-1");

    e.shutdown_async().await.unwrap();
    assert_eq!(r.fake.get(|i| i.released.clone()), vec!["s-1".to_string()]);
    assert_eq!(r.server.seen().last().unwrap().req.method, "DELETE");
    assert!(
        r.state_json()["seat"]["slots"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a released seat leaves nothing to reconnect with"
    );
    // The grace is the signed token's, never a file's: it is not kept on disk.
    assert!(r.state_json()["seat"].get("grace_seconds").is_none());
}

#[tokio::test(start_paused = true)]
async fn offline_for_the_grace_then_degraded_then_reconnected() {
    let r = Run::new().await;
    let e = r.start(json!({})).await;
    r.fake.mode(Mode::Down);
    wait_secs(2 * 300 + 1).await;
    assert_eq!(seat_of(&e).heartbeat_failures, 2);
    assert_eq!(seat_of(&e).state, SeatState::Online);
    // The third failure never comes: the seat is offline a session TTL (2 × 300 s + 60 s)
    // after its last proof, the grant.
    wait_secs(60).await;
    let went = r.now_ms() - 1000;
    let seat = seat_of(&e);
    assert_eq!(seat.state, SeatState::Offline, "{}", r.logs().dump());
    r.logs().expect(Level::Warn, "No heartbeat proof for 660 s");
    assert!(r.logs().has(
        Level::Warn,
        "Entered offline mode - grace period of 7 days active"
    ));
    assert_eq!(seat.offline_since, Some(rfc3339_millis(went)));
    assert_eq!(
        seat.grace_until,
        Some(rfc3339_millis(went + 7 * 86_400_000))
    );
    assert!(seat.next_reconnect_at.is_some());
    assert_eq!(e.status().mode, "offline");
    assert_eq!(e.tier(), Tier::Pro, "the tier holds while offline");

    // A week of failed reconnects, never more than an hour apart.
    let grace_end = went + 7 * 86_400_000;
    let until_end = (grace_end - r.now_ms()) / 1000;
    wait_secs(until_end as u64 - MIN).await;
    assert_eq!(e.tier(), Tier::Pro);
    let reconnects: Vec<u64> = r
        .server
        .seen()
        .iter()
        .filter(|s| s.req.path == paths::RECONNECT)
        .map(|s| s.at_ms)
        .collect();
    assert!(reconnects.len() > 150, "{}", reconnects.len());
    assert!(reconnects.windows(2).all(|w| w[1] - w[0] <= 3_600_000));
    r.logs()
        .expect(Level::Warn, "Offline grace period ends in 1 days");
    wait_secs(2 * MIN).await;
    assert_eq!(e.tier(), Tier::Community);
    assert!(r.logs().has(
        Level::Error,
        "Offline grace period expired - limited to Community features"
    ));
    r.logs()
        .expect(Level::Warn, "License downgraded from Pro to Community");
    let s = e.status();
    assert_eq!(s.status, "Degraded (offline grace expired)");
    assert_eq!(
        (s.mode, s.seat.unwrap().state),
        ("degraded", SeatState::Degraded)
    );

    // The backend returns: the next attempt (at most an hour away) reconnects.
    r.fake.mode(Mode::Up);
    wait_secs(H + 1).await;
    assert_eq!(e.tier(), Tier::Pro, "{}", r.logs().dump());
    r.logs()
        .expect(Level::Info, "Reconnected - online mode resumed");
    let last = r.fake.get(|i| i.reconnects.last().cloned()).unwrap();
    assert_eq!(last.old_session_id.as_deref(), Some("s-1"));
    assert_eq!(last.offline_since, Some(rfc3339_millis(went)));
    assert_eq!(last.offline_cycles_30d, 1);
    let seat = seat_of(&e);
    assert_eq!((seat.state, seat.offline_since), (SeatState::Online, None));
    assert_eq!(seat.heartbeat_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_restart_on_day_three_still_ends_the_grace_on_day_seven() {
    let r = Run::new().await;
    let a = r.start(json!({})).await;
    r.fake.mode(Mode::Down);
    wait_secs(3 * 300 + 1).await;
    let seat = seat_of(&a);
    assert_eq!(seat.state, SeatState::Offline);
    let grace_until = parse_rfc3339(&seat.grace_until.unwrap()).unwrap();
    wait_secs(3 * D).await;
    a.shutdown_async().await.unwrap();
    assert!(
        r.fake.get(|i| i.released.is_empty()),
        "offline: nothing to release"
    );
    drop(a);

    let b = r.start(json!({})).await;
    assert_eq!(b.tier(), Tier::Pro, "{}", r.logs().dump());
    r.logs()
        .expect(Level::Warn, "Using cached license (seat acquire failed)");
    assert!(r.logs().has(
        Level::Warn,
        "Entered offline mode - grace period of 3 days active"
    ));
    let s = b.status();
    assert_eq!(s.source, Source::Cache);
    let seat = s.seat.unwrap();
    assert_eq!(seat.offline_since, Some(seat_of(&b).offline_since.unwrap()));
    assert_eq!(parse_rfc3339(&seat.grace_until.unwrap()), Some(grace_until));
    assert_eq!(seat.offline_cycles_30d, 1, "the same offline period");
    let left = (grace_until - r.now_ms()) / 1000;
    wait_secs(left as u64 - 1).await;
    assert_eq!(b.tier(), Tier::Pro);
    wait_secs(2).await;
    assert_eq!(b.tier(), Tier::Community, "day 7, not day 10");
}

#[tokio::test(start_paused = true)]
async fn strict_online_only_licenses_degrade_at_once() {
    let r = Run::new().await;
    r.fake.set(|i| i.grace_days = 0);
    let e = r.start(json!({"seat.max-heartbeat-failures": 2})).await;
    assert_eq!(e.tier(), Tier::Pro);
    r.fake.mode(Mode::Down);
    wait_secs(300 + 1).await;
    assert_eq!(e.tier(), Tier::Pro, "one failure of two");
    wait_secs(300).await;
    assert_eq!(e.tier(), Tier::Community);
    assert!(r.logs().has(
        Level::Error,
        "Offline grace period expired - limited to Community features (this license allows no offline use)"
    ));
    assert_eq!(seat_of(&e).state, SeatState::Degraded);
}

#[tokio::test(start_paused = true)]
async fn no_seats_is_community_with_the_backend_s_message_and_retried_after_a_minute_doubling() {
    let r = Run::new().await;
    r.fake.mode(Mode::NoSeats);
    r.f.write_cache_for(&token("pro", 30), "hw-test");
    let e = r.start(json!({"refresh.interval": "6h"})).await;
    assert_eq!(
        e.tier(),
        Tier::Community,
        "the cache never stands in for a seat"
    );
    assert!(r.logs().has(
        Level::Error,
        "No seat available: All seats in use (2/2); next attempt in 60 s"
    ));
    let s = e.status();
    assert_eq!(s.seat.as_ref().unwrap().state, SeatState::NoSeats);
    assert!(s.reason.unwrap().contains("All seats in use (2/2)"));
    assert_eq!(s.status, "No license");
    // The jitter is pinned to its ceiling: 1 min, then 2, then 4.
    wait_secs(MIN - 1).await;
    assert_eq!(r.count(paths::ACQUIRE), 1);
    wait_secs(2).await;
    assert_eq!(r.count(paths::ACQUIRE), 2);
    wait_secs(2 * MIN).await;
    assert_eq!(r.count(paths::ACQUIRE), 3);
    // The seat is free again (a predecessor released it): the next attempt gets it.
    r.fake.mode(Mode::Up);
    wait_secs(4 * MIN).await;
    assert_eq!(r.count(paths::ACQUIRE), 4);
    assert_eq!(e.tier(), Tier::Pro);
    r.logs()
        .expect(Level::Info, "License upgraded from Community to Pro");
}

#[tokio::test(start_paused = true)]
async fn a_refused_seat_waits_for_a_longer_retry_after() {
    let r = Run::new().await;
    r.fake.mode(Mode::NoSeats);
    r.fake.inner.lock().unwrap().retry_after = Some(600);
    let e = r.start(json!({})).await;
    assert_eq!(e.tier(), Tier::Community);
    assert!(r.logs().has(
        Level::Error,
        "All seats in use (2/2); next attempt in 600 s"
    ));
    wait_secs(10 * MIN - 1).await;
    assert_eq!(r.count(paths::ACQUIRE), 1, "not before the Retry-After");
    r.fake.mode(Mode::Up);
    wait_secs(2).await;
    assert_eq!(r.count(paths::ACQUIRE), 2);
    assert_eq!(e.tier(), Tier::Pro);
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_answered_410_acquires_a_new_seat_at_once() {
    let r = Run::new().await;
    let e = r.start(json!({})).await;
    r.fake.set(|i| i.sessions.clear()); // kicked by an admin
    wait_secs(300 + 1).await;
    let seen = r.server.seen();
    let n = seen.len();
    assert_eq!(
        (seen[n - 2].req.path.as_str(), seen[n - 1].req.path.as_str()),
        (paths::HEARTBEAT, paths::ACQUIRE)
    );
    assert_eq!(seen[n - 1].at_ms, seen[n - 2].at_ms, "at once");
    let seat = seat_of(&e);
    assert_eq!(seat.session_id.as_deref(), Some("s-2"));
    assert_eq!(seat.heartbeat_failures, 0, "not a failure");
    assert_eq!(e.tier(), Tier::Pro);
    assert_eq!(r.logs().count("downgraded"), 0, "the tier never flickered");
}

#[tokio::test(start_paused = true)]
async fn a_revocation_on_a_heartbeat_drops_to_community_at_once() {
    let r = Run::new().await;
    let e = r.start(json!({})).await;
    assert!(r.f.read_cache().is_some());
    r.fake.mode(Mode::Revoked);
    wait_secs(300 + 1).await;
    assert_eq!(e.tier(), Tier::Community);
    let s = e.status();
    assert_eq!(s.status, "Revoked");
    r.logs().expect(Level::Error, "License revoked");
    assert!(r.f.read_cache().is_none(), "cache deleted");
    assert_eq!(s.seat.unwrap().session_id, None);
    // No heartbeats for a seat that is gone; the next acquire waits for the schedule.
    let n = r.server.count();
    wait_secs(H).await;
    assert_eq!(r.server.count(), n);
}

#[tokio::test(start_paused = true)]
async fn a_running_engine_keeps_its_record_and_a_clean_shutdown_hands_it_on() {
    let r = Run::new().await;
    let a = r.start(json!({})).await;
    r.fake.mode(Mode::Down);
    wait_secs(3 * 300 + 1).await;
    let a_seat = seat_of(&a);
    assert_eq!(a_seat.state, SeatState::Offline);
    wait_secs(D).await;

    // A second engine on this cache-dir while the first runs (in this process, as a JVM
    // that inits again would): the first one's record is not taken over.
    let b = r.start(json!({})).await;
    let b_seat = seat_of(&b);
    assert_eq!(b_seat.state, SeatState::Offline, "{}", r.logs().dump());
    assert_ne!(b_seat.offline_since, a_seat.offline_since);
    assert_eq!(b_seat.session_id, None, "s-1 is the first engine's");
    assert_eq!(r.state_json()["seat"]["slots"].as_array().unwrap().len(), 2);

    // Both shut down cleanly: the next engine carries on the first one's offline period
    // rather than starting the grace from zero.
    b.shutdown_async().await.unwrap();
    a.shutdown_async().await.unwrap();
    drop((a, b));
    wait_secs(H).await;
    let c = r.start(json!({})).await;
    let c_seat = seat_of(&c);
    assert_eq!(c_seat.offline_since, a_seat.offline_since);
    assert_eq!(c_seat.grace_until, a_seat.grace_until);
    assert_eq!(c_seat.session_id.as_deref(), Some("s-1"));
}

/// Another process (the `lic4es` CLI) on a cache-dir whose record this process left when
/// it shut down: it carries on the offline period, although this process still runs.
#[test]
fn another_process_carries_on_the_record_a_live_process_gave_up() {
    let f = Fixture::new();
    let now = wall_now();
    let mut c = claims("pro", now + 8 * DAY);
    c["iat"] = json!(now - 3600);
    c["sid"] = json!("s-old");
    c["hwid"] = json!("hw-test");
    c["grace_seconds"] = json!(7 * DAY);
    let since = lic4es::clock::rfc3339(now - 2 * DAY);
    f.write_state_for(
        json!({"version": 1, "seat": {"heartbeat_interval": 300,
            "offline_cycles": [since],
            "slots": [{"id": "a1", "pid": std::process::id(), "session_id": "s-old",
                       "offline_since": since}]}}),
        "hw-test",
    );
    f.write_cache_for(&mint(&c), "hw-test");
    let cfg = f.cache_dir().join("../license.json");
    std::fs::write(
        &cfg,
        f.config(json!({
            "api-key": "sk-test",
            "api-url": refused_url(),
            "seat.enabled": true,
            "seat.hardware-id": "hw-test",
        }))
        .to_string(),
    )
    .unwrap();
    let out = cli()
        .args(["status", "--config", cfg.to_str().unwrap()])
        .env_remove("SOFTCLIENT4ES_API_KEY")
        .output()
        .unwrap();
    let s: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(s["tier"], "pro", "{s}");
    assert_eq!(s["seat"]["state"], "offline", "{s}");
    assert_eq!(
        parse_rfc3339(s["seat"]["offline_since"].as_str().unwrap()),
        parse_rfc3339(&since),
        "the grace runs from the recorded start, not from now: {s}"
    );
    assert_eq!(s["seat"]["session_id"], "s-old");
}

#[tokio::test(start_paused = true)]
async fn after_a_crash_the_next_start_reconnects_with_the_old_session() {
    let r = Run::new().await;
    // A process that held s-old died without releasing it.
    let dead = cli()
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    r.f.write_state_for(
        json!({"version": 1, "seat": {"heartbeat_interval": 300,
            "offline_cycles": [], "slots": [{"id": "a1", "pid": pid, "session_id": "s-old"}]}}),
        "hw-test",
    );
    let e = r.start(json!({})).await;
    assert_eq!(e.tier(), Tier::Pro);
    assert_eq!(r.paths(), vec![paths::RECONNECT]);
    let req = r.fake.get(|i| i.reconnects[0].clone());
    assert_eq!(req.old_session_id.as_deref(), Some("s-old"));
    assert_eq!(req.offline_since, None, "it was not offline, it crashed");
    let slot = &r.state_json()["seat"]["slots"][0];
    assert_eq!(slot["id"], "a1", "the slot is taken over");
    assert_eq!(slot["pid"], std::process::id());
    assert_eq!(slot["session_id"], "s-1");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_bring_renewed_tokens_and_new_intervals() {
    let r = Run::new().await;
    r.fake.set(|i| {
        i.renew = true;
        i.new_interval = Some(60);
    });
    let e = r.start(json!({})).await;
    let first = e.status().expires_at.unwrap();
    wait_secs(300 + 1).await;
    let s = e.status();
    assert_ne!(s.expires_at.unwrap(), first, "the renewed token is in use");
    assert_eq!(s.source, Source::Seat);
    assert_eq!(s.seat.unwrap().heartbeat_interval, Some(60));
    wait_secs(60).await;
    assert_eq!(r.count(paths::HEARTBEAT), 2);
    assert_eq!(r.server.seen()[2].at_ms, 360_000);
}

#[tokio::test(start_paused = true)]
async fn a_free_plan_runs_without_a_seat_and_acquires_again_each_interval() {
    let r = Run::new().await;
    r.fake.set(|i| {
        i.offline_plan = true;
        i.tier = "community".into();
        i.token_days = 1;
    });
    let e = r.start(json!({"refresh.interval": "12h"})).await;
    let s = e.status();
    assert_eq!(s.seat.unwrap().state, SeatState::OfflinePlan);
    assert_eq!(s.mode, "offline");
    assert_eq!(s.license_id.as_deref(), Some("org-acme-123"));
    r.logs().expect(Level::Info, "Offline plan");
    wait_secs(12 * H + 1).await;
    assert_eq!(
        r.paths(),
        vec![paths::ACQUIRE, paths::ACQUIRE],
        "no heartbeats"
    );
}

#[tokio::test(start_paused = true)]
async fn a_seat_token_for_another_machine_is_not_used() {
    let r = Run::new().await;
    r.fake.set(|i| i.other_hwid = Some("someone-else".into()));
    let e = r.start(json!({})).await;
    assert_eq!(e.tier(), Tier::Community);
    let s = e.status();
    assert!(
        s.reason
            .as_deref()
            .unwrap_or("")
            .contains("another machine"),
        "{:?}",
        s.reason
    );
    assert_eq!(s.seat.unwrap().state, SeatState::Degraded);
}

/// A backend that does not bind its seat tokens (no `sid`, no `hwid`) hands out tokens
/// any host could use: in seat mode they are refused.
#[tokio::test(start_paused = true)]
async fn in_seat_mode_a_token_not_bound_to_its_seat_is_refused() {
    let r = Run::new().await;
    r.fake.set(|i| i.unbound = true);
    let e = r.start(json!({})).await;
    assert_eq!(e.tier(), Tier::Community, "{}", r.logs().dump());
    r.logs()
        .expect(Level::Warn, "not bound to this seat session (`sid`)");
}

#[test]
fn a_seat_token_outside_seat_mode_is_rejected() {
    let f = Fixture::new();
    let mut c = claims("pro", NOW + 30 * DAY);
    c["sid"] = json!("s-1");
    c["hwid"] = json!("hw");
    let e = f.start(json!({"key": mint(&c)}));
    assert_eq!(e.tier(), Tier::Community);
    f.logs
        .expect(Level::Warn, "a seat token is bound to its seat");
    // A seat token in the cache is no fallback for an API-key engine either.
    let g = Fixture::new();
    g.write_cache(&mint(&c));
    let e = g.start(json!({"api-key": "sk-x", "api-url": refused_url()}));
    assert_eq!(e.tier(), Tier::Community);
    assert!(g.read_cache().is_none(), "rejected and deleted");
}

/// Real time and a real thread: a heartbeat that hangs does not hold `lic_shutdown`,
/// and the release is bounded by `seat.release-timeout`.
#[test]
fn shutdown_is_bounded_while_a_heartbeat_and_the_release_hang() {
    let f = Fixture::new();
    let fake = SeatFake::new(f.clock.clone());
    fake.set(|i| i.heartbeat_secs = 1);
    let answer = fake.clone();
    let server = TestServer::start(move |r| answer.answer(r));
    let cfg = Config::from_json_with_env(
        &f.config(json!({
            "api-key": "sk-test",
            "api-url": server.url(),
            "seat.enabled": true,
            "seat.hardware-id": "hw-test",
            "read-timeout": "60s",
            "seat.release-timeout": "300ms",
        }))
        .to_string(),
        &|_| None,
    )
    .unwrap();
    let e = f.start_config(cfg);
    assert_eq!(e.tier(), Tier::Pro);
    fake.mode(Mode::Hang);
    f.clock.advance_millis(2_000);
    common::wait_for("a heartbeat sent", 10, || {
        server.requests().iter().any(|r| r.path == paths::HEARTBEAT)
    });
    let t = Instant::now();
    e.shutdown().unwrap();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "shutdown waited {took:?} on a 60 s read timeout"
    );
    assert!(server.requests().iter().any(|r| r.path == paths::RELEASE));
    assert!(
        f.logs
            .has(Level::Warn, "Seat not released (no answer within 300 ms)"),
        "{}",
        f.logs.dump()
    );
    // The session stays on disk for the next start to free.
    let state = std::fs::read_to_string(f.cache_dir().join("state.json")).unwrap();
    assert!(state.contains("\"s-1\""), "{state}");
}

#[tokio::test(start_paused = true)]
async fn the_hardware_id_is_derived_from_the_machine_and_instance_ids() {
    let r = Run::new().await;
    let mut cfg = json!({
        "api-key": "sk-test",
        "api-url": r.server.url(),
        "seat.enabled": true,
        "instance-id": "inst-7",
    });
    cfg = r.f.config(cfg);
    let e = Engine::start_on_runtime(
        Config::from_json_with_env(&cfg.to_string(), &|_| None).unwrap(),
        EngineOptions {
            clock: r.clock.clone(),
            log: r.f.logs.sink(),
            machine_id: Some("machine-x".into()),
            ..EngineOptions::default()
        },
    )
    .await;
    // sha256("machine-x:inst-7")
    let expected = lic4es::seat::hardware_id("machine-x", "inst-7");
    assert_eq!(expected.len(), 64);
    assert_eq!(seat_of(&e).hardware_id, expected);
    assert_eq!(r.server.seen()[0].req.json()["hardware_id"], expected);
    assert_eq!(e.tier(), Tier::Pro, "the token is bound to that id");
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_state_file_is_reported_and_sealed_anew_once_the_server_answers() {
    let r = Run::new().await;
    write_private(
        &r.f.cache_dir(),
        "state.json",
        "{\"seat\": {\"slots\": \"nope\"",
    );
    let e = r.start(json!({})).await;
    assert_eq!(e.tier(), Tier::Pro, "the backend answers: nothing changes");
    assert!(
        r.logs().has(Level::Warn, "State file does not verify"),
        "{}",
        r.logs().dump()
    );
    assert!(r.logs().has(
        Level::Info,
        "state.json sealed anew: the license server answered"
    ));
    // The seat record is kept again, in a sealed file.
    wait_secs(301).await;
    assert_eq!(r.state_json()["seat"]["slots"][0]["session_id"], "s-1");
    assert!(r.state_json()["mac"].is_string());
}

#[tokio::test(start_paused = true)]
async fn a_revocation_answering_the_acquire_ends_resolution_at_community() {
    let r = Run::new().await;
    r.f.write_cache_for(&token("pro", 30), "hw-test");
    r.fake.mode(Mode::Revoked);
    let e = r.start(json!({})).await;
    assert_eq!(e.tier(), Tier::Community, "no fall-through to the cache");
    let s = e.status();
    assert_eq!(s.status, "Revoked");
    r.logs().expect(Level::Error, "License revoked");
    assert!(r.f.read_cache().is_none(), "cache deleted");
    assert_eq!(s.seat.unwrap().state, SeatState::Acquiring);
    // The next attempt waits for the refresh schedule.
    wait_secs(H).await;
    assert_eq!(r.count(paths::ACQUIRE), 1);
}

#[tokio::test(start_paused = true)]
async fn setting_the_clock_back_does_not_stretch_the_offline_grace() {
    let r = Run::new().await;
    let e = r.start(json!({})).await;
    r.fake.mode(Mode::Down);
    wait_secs(3 * 300 + 1).await;
    assert_eq!(seat_of(&e).state, SeatState::Offline);
    wait_secs(3 * D).await;
    // Three days into a seven-day grace, the clock is set back five days.
    r.clock.shift(-5 * 86_400_000);
    wait_secs(3 * D).await;
    assert_eq!(
        e.tier(),
        Tier::Pro,
        "six days offline: still within the grace"
    );
    wait_secs(D + H).await;
    assert_eq!(
        e.tier(),
        Tier::Community,
        "seven days have passed, whatever the wall clock says: {}",
        r.logs().dump()
    );
    assert_eq!(seat_of(&e).state, SeatState::Degraded);
    assert!(e.status().clock.clock_behind);
    r.logs().expect(Level::Warn, "System clock moved backwards");
}
