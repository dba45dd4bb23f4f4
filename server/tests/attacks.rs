//! The seat, tried as a customer who wants more seats than they paid for: holding the
//! host, its disk, its engine config and its network (a relay of theirs between the
//! engines and the vendor's server sees and answers every request), but not the vendor's
//! server or key. Each attack runs against the real server through such a relay, with
//! the honest path beside it. Engines run in this process on the server's own clock and
//! are driven by `refresh_now`, so the schedule is the test's.

mod common;

use std::sync::{Arc, Mutex};

use common::engine::{engine, status};
use common::relay::{Ans, Relay};
use common::*;
use lic4es::protocol::paths;
use lic4es::Tier;
use serde_json::{json, Value};

const DAY: i64 = 86_400;

fn online_sessions(s: &Server, license: &str) -> usize {
    let (_, v) = s.admin(
        "GET",
        &format!("/admin/sessions?license={license}&state=online"),
        Value::Null,
    );
    v.as_array().expect("a page of sessions").len()
}

/// Attack 1: one seat, N hosts, by replay. The relay forwards one acquire with the nonce
/// taken out (as a client written from the CODITECT ADR sends it) and hands the token it
/// got to every host, all configured with the same `seat.hardware-id`. The token answers
/// none of their requests: no host accepts it.
#[test]
fn one_captured_seat_token_handed_to_many_hosts_is_refused_by_all() {
    let s = Server::on_wall_time();
    let (license, key) = s.license("team", json!({"seats": 1}));
    let captured: Arc<Mutex<Option<Ans>>> = Arc::default();
    let relay = Relay::start(s.port, move |req, up| {
        if req.path != paths::ACQUIRE {
            return up.forward(req, &req.body);
        }
        let mut captured = captured.lock().unwrap();
        captured
            .get_or_insert_with(|| {
                let mut body = req.body.clone();
                body.as_object_mut().unwrap().remove("nonce");
                up.forward(req, &body)
            })
            .clone()
    });
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let cfg = json!({"api-url": relay.url(), "seat.enabled": true,
                     "seat.hardware-id": "hw-shared"});
    for d in &dirs {
        let (e, logs) = engine(&s, d.path(), &key, cfg.clone());
        assert_eq!(e.tier(), Tier::Community, "{}", logs.dump());
        assert!(logs.has("carries no nonce"), "{}", logs.dump());
    }
    assert_eq!(relay.seen().len(), 3);
    assert_eq!(
        online_sessions(&s, &license),
        1,
        "the one seat the relay took"
    );

    // The honest path: hosts of their own reach the server; one gets the one seat.
    let (free, key) = s.license("team", json!({"seats": 1}));
    let (e, logs) = engine(&s, dirs[0].path(), &key, json!({"seat.enabled": true}));
    assert_eq!(e.tier(), Tier::Team, "{}", logs.dump());
    let (other, _) = engine(&s, dirs[1].path(), &key, json!({"seat.enabled": true}));
    assert_eq!(other.tier(), Tier::Community, "the second finds no seat");
    assert_eq!(online_sessions(&s, &free), 1);
}

/// A relay that takes a seat for a host, gives it back on the server at once, and then
/// answers every heartbeat itself: `200` with the grant's token (a bare `200 {}` is
/// refused just the same). Whatever it answers, it has no token renewed for the
/// heartbeat's nonce.
fn self_answering_relay(s: &Server) -> Relay {
    let grant: Arc<Mutex<Option<String>>> = Arc::default();
    Relay::start(s.port, move |req, up| match req.path.as_str() {
        paths::ACQUIRE | paths::RECONNECT => {
            let a = up.forward(req, &req.body);
            if a.status == 200 {
                *grant.lock().unwrap() = a.body["license"].as_str().map(str::to_string);
                let release = common::relay::Req {
                    method: "DELETE".into(),
                    path: paths::RELEASE.into(),
                    ..req.clone()
                };
                let gone = up.forward(&release, &json!({"session_id": a.body["session_id"]}));
                assert_eq!(gone.status, 204);
            }
            a
        }
        paths::HEARTBEAT => Ans {
            status: 200,
            body: json!({"license": *grant.lock().unwrap(), "heartbeat_interval": 300}),
        },
        _ => up.forward(req, &req.body),
    })
}

/// Attack 2: N hosts on zero seats, by a relay that answers heartbeats itself. The server
/// holds no session; without a heartbeat proof no host stays online: an online-only
/// license drops to Community, one with an offline grace runs that grace and no longer.
#[test]
fn a_relay_that_answers_heartbeats_itself_keeps_no_host_online() {
    let s = Server::on_wall_time();
    let relay = self_answering_relay(&s);
    for grace_days in [0, 3] {
        let (license, key) = s.license(
            "team",
            json!({"seats": 1, "offline_grace_days": grace_days}),
        );
        let dir = tempfile::tempdir().unwrap();
        let (e, logs) = engine(
            &s,
            dir.path(),
            &key,
            json!({"api-url": relay.url(),
            "seat.enabled": true}),
        );
        assert_eq!(e.tier(), Tier::Team, "the grant itself is genuine");
        assert_eq!(online_sessions(&s, &license), 0, "released behind its back");
        // Three heartbeats, all within the session's TTL (660 s) of the grant: whether the
        // worker or the test looks first, the third failure is what takes the seat
        // offline (past the TTL, the worker may find the proof too old before the test's
        // third heartbeat and acquire again instead).
        for step in [300, 300, 50] {
            s.advance(step);
            assert!(e.refresh_now().is_err(), "{}", logs.dump());
            // The worker wakes on schedules of its own too, and may have sent one of the
            // heartbeats itself after the clock moved: the third failure is what counts,
            // and a refresh after it would be a reconnect.
            if logs.has("Seat heartbeat failed (3/3)") {
                break;
            }
        }
        assert!(logs.has("Seat heartbeat failed (3/3)"), "{}", logs.dump());
        let st = status(&e);
        if grace_days == 0 {
            assert_eq!(e.tier(), Tier::Community, "{st}");
            assert_eq!(st["seat"]["state"], "degraded");
        } else {
            // The signed grace runs from when contact was lost, and ends on time, however
            // many seats the relay takes and hands back meanwhile.
            assert_eq!(e.tier(), Tier::Team, "{st}");
            assert_eq!(st["seat"]["state"], "offline");
            for _ in 0..12 {
                s.advance(6 * 3600);
                let _ = e.refresh_now();
                assert_eq!(online_sessions(&s, &license), 0);
            }
            assert_eq!(e.tier(), Tier::Community, "{}", status(&e));
        }
        e.shutdown().unwrap();
    }

    // The honest path: the same host, straight to the server, stays online on its proofs.
    let (license, key) = s.license("team", json!({"seats": 1, "offline_grace_days": 0}));
    let dir = tempfile::tempdir().unwrap();
    let (e, logs) = engine(&s, dir.path(), &key, json!({"seat.enabled": true}));
    for _ in 0..6 {
        s.advance(300);
        e.refresh_now().unwrap();
    }
    assert_eq!(e.tier(), Tier::Team, "{}", logs.dump());
    assert_eq!(status(&e)["seat"]["state"], "online");
    assert_eq!(online_sessions(&s, &license), 1);
}

/// Attack 4: online-only becomes a day offline by editing the grace in `state.json`. The
/// grace is the seat token's, signed; what the file says of it is not read, and an
/// online-only seat's token lives one session TTL.
#[test]
fn an_edited_grace_in_state_json_buys_no_offline_time() {
    let s = Server::on_wall_time();
    let (_, key) = s.license("team", json!({"seats": 1, "offline_grace_days": 0}));
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = engine(&s, dir.path(), &key, json!({"seat.enabled": true}));
    assert_eq!(e.tier(), Tier::Team);
    let cached = std::fs::read_to_string(dir.path().join("license-cache.jwt")).unwrap();
    let c = s.jwks().verify(cached.trim()).unwrap();
    assert_eq!(c.grace_seconds, Some(0));
    assert_eq!(c.exp, c.iat.unwrap() + 660, "one session TTL");
    drop(e);

    // The copied machine: a day of grace written into the state, the server out of reach.
    let state = dir.path().join("state.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap())
        .unwrap_or_else(|_| json!({"version": 1}));
    doc["seat"]["grace_seconds"] = json!(DAY);
    std::fs::write(&state, doc.to_string()).unwrap();
    let away = format!("http://127.0.0.1:{}", free_port());
    let offline = |dir: &std::path::Path, key: &str| {
        engine(&s, dir, key, json!({"api-url": away, "seat.enabled": true}))
    };
    let (e, logs) = offline(dir.path(), &key);
    assert_eq!(e.tier(), Tier::Community, "{}", logs.dump());

    // The honest path: a license with a day of grace runs it offline, from its token.
    let (_, key) = s.license("team", json!({"seats": 1, "offline_grace_days": 1}));
    let dir = tempfile::tempdir().unwrap();
    drop(engine(&s, dir.path(), &key, json!({"seat.enabled": true})));
    let (e, logs) = offline(dir.path(), &key);
    assert_eq!(e.tier(), Tier::Team, "{}", logs.dump());
    assert_eq!(status(&e)["seat"]["state"], "offline");
}

/// Attack 5: seat sharing by turns. A relay in front of two hosts on a one-seat license
/// releases whoever holds the seat before it forwards the other's acquire; the host
/// whose heartbeat is then answered `410` acquires again at once. Every turn is a grant:
/// the license gets its hourly allowance (12 a seat by default) and no more, so within
/// the hour one host is left without a seat; the server never held two sessions.
#[test]
fn hosts_taking_turns_on_one_seat_run_out_of_turns_within_the_hour() {
    let s = Server::on_wall_time();
    // At the top of an hour: the allowance is counted by the clock hour.
    s.advance(3600 - lic4es::clock::Clock::now_secs(&*s.clock).rem_euclid(3600));
    let (license, key) = s.license("team", json!({"seats": 1}));
    let holder: Arc<Mutex<Option<Value>>> = Arc::default();
    let relay = Relay::start(s.port, move |req, up| match req.path.as_str() {
        paths::ACQUIRE | paths::RECONNECT => {
            let mut holder = holder.lock().unwrap();
            if let Some(sid) = holder.take() {
                let release = common::relay::Req {
                    method: "DELETE".into(),
                    path: paths::RELEASE.into(),
                    ..req.clone()
                };
                up.forward(&release, &json!({"session_id": sid}));
            }
            let a = up.forward(req, &req.body);
            if a.status == 200 {
                *holder = Some(a.body["session_id"].clone());
            }
            a
        }
        _ => up.forward(req, &req.body),
    });
    let cfg = json!({"api-url": relay.url(), "seat.enabled": true});
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts: Vec<_> = dirs
        .iter()
        .map(|d| engine(&s, d.path(), &key, cfg.clone()).0)
        .collect();
    let mut both_team = 0;
    for turn in 0..22 {
        s.advance(150);
        let _ = hosts[turn % 2].refresh_now();
        if hosts.iter().all(|h| h.tier() == Tier::Team) {
            both_team += 1;
        }
        assert!(online_sessions(&s, &license) <= 1);
    }
    let (_, trail) = s.admin(
        "GET",
        &format!("/admin/audit?license={license}&limit=500"),
        Value::Null,
    );
    let count = |kind: &str| {
        trail
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind)
            .count()
    };
    assert_eq!(count("acquire"), 12, "the hour's allowance, and no more");
    assert!(count("too_many_acquires") >= 1, "refusals are audited");
    let tiers: Vec<Tier> = hosts.iter().map(|h| h.tier()).collect();
    assert!(
        tiers.contains(&Tier::Community),
        "one host is left without a seat: {tiers:?}"
    );
    let st = status(hosts.iter().find(|h| h.tier() == Tier::Community).unwrap());
    assert_eq!(st["seat"]["state"], "no_seats", "{st}");
    println!("turns with both hosts at Team before the allowance ran out: {both_team} of 22");

    // Turns hour after hour: acquires over the budget in six clock hours of the month flag
    // the license for abuse, with no offline period at all.
    for _ in 0..5 {
        s.advance(3600 - lic4es::clock::Clock::now_secs(&*s.clock).rem_euclid(3600));
        for turn in 0..22 {
            s.advance(150);
            let _ = hosts[turn % 2].refresh_now();
        }
    }
    let (_, abuse) = s.admin("GET", "/admin/abuse", Value::Null);
    let verdict = abuse["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["license"] == license.as_str())
        .unwrap_or_else(|| panic!("{license} judged: {abuse}"));
    assert_eq!(verdict["over_budget_hours"], 6, "{abuse}");
    assert_eq!(verdict["cycles"], 0, "{abuse}");
    assert_eq!(verdict["flagged"], true, "{abuse}");
}
