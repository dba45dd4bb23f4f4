//! Seats over HTTP (`docs/reference/protocol.md`): acquire, heartbeat, reconnect, release, lapsing, the free
//! plan, revocation, admin sessions and audit, metrics. The server's clock is moved by
//! the tests, so TTLs and lapses need no sleeping.

mod common;

use common::*;
use lic4es::protocol::paths;
use serde_json::{json, Value};

const HB: i64 = 300;
const TTL: i64 = 2 * HB + 60;
const DAY: i64 = 86_400;

fn acquire_body(hw: &str) -> Value {
    json!({"hardware_id": hw, "instance_id": format!("inst-{hw}"), "version": "2.1", "nonce": NONCE})
}

fn acquire(s: &Server, key: &str, hw: &str) -> (u16, Value) {
    s.acquire(key, acquire_body(hw))
}

/// The `id`s of a page of audit entries.
fn ids(page: &Value) -> Vec<i64> {
    let entries = page.as_array().unwrap().iter();
    entries.map(|e| e["id"].as_i64().unwrap()).collect()
}

/// A seat taken by machine `hw`: its session id.
fn seat(s: &Server, key: &str, hw: &str) -> String {
    let (status, v) = acquire(s, key, hw);
    assert_eq!(status, 200, "{v}");
    v["session_id"].as_str().unwrap().to_string()
}

fn heartbeat(s: &Server, key: &str, sid: &str) -> (u16, Value) {
    s.heartbeat(key, json!({"session_id": sid, "nonce": NONCE}))
}

fn sessions(s: &Server, license: &str) -> Vec<Value> {
    s.listing("sessions", license)
}

/// The license's audit trail, newest first.
fn trail(s: &Server, license: &str) -> Vec<Value> {
    s.listing("audit", license)
}

/// The license's newest audit entry of type `kind`.
fn entry(s: &Server, license: &str, kind: &str) -> Value {
    let all = trail(s, license);
    all.iter()
        .find(|e| e["type"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} in {all:?}"))
}

fn audit_types(s: &Server, license: &str) -> Vec<String> {
    trail(s, license)
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_acquire_grants_a_seat_token_that_outlives_the_grace() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({}));
    let (status, v) = acquire(&s, &key, "hw-1");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["mode"], "online");
    assert_eq!(v["heartbeat_interval"], HB);
    assert_eq!(v["grace_period_days"], 7);
    let sid = v["session_id"].as_str().unwrap();
    let claims = s.jwks().verify(v["license"].as_str().unwrap()).unwrap();
    assert_eq!(claims.sid.as_deref(), Some(sid));
    assert_eq!(claims.hwid.as_deref(), Some("hw-1"));
    assert_eq!(claims.nonce.as_deref(), Some(NONCE));
    assert_eq!(claims.sub, license);
    assert!(
        claims.exp >= NOW + 7 * DAY + TTL,
        "a seat that loses contact keeps a valid token for its whole grace"
    );
    let listed = sessions(&s, &license);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["session_id"], sid);
    assert_eq!(listed[0]["mode"], "online");
    assert_eq!(listed[0]["hardware_id"], "hw-1");
    assert_eq!(listed[0]["instance_id"], "inst-hw-1");
    let acq = entry(&s, &license, "acquire");
    assert_eq!(acq["session_id"], sid);
    assert_eq!(acq["hardware_id"], "hw-1");
    assert!(acq["source"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(acq["at"], lic4es::clock::rfc3339(NOW));
}

#[test]
fn seats_are_counted_and_the_refusal_names_the_count() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({"seats": 2}));
    assert_eq!(acquire(&s, &key, "a").0, 200);
    assert_eq!(acquire(&s, &key, "b").0, 200);
    let (status, v) = acquire(&s, &key, "c");
    assert_eq!(status, 403);
    assert_eq!(v["error"], "no_seats_available");
    assert_eq!(v["message"], "All seats in use (2/2)");
    assert_eq!(
        audit_types(&s, &license),
        vec![
            "license_create",
            "api_key_create",
            "acquire",
            "acquire",
            "refused"
        ]
    );
    let m = s.metrics();
    assert!(m.contains("lic4es_sessions{state=\"online\"} 2"), "{m}");
    assert!(m.contains(&format!("lic4es_seats_in_use{{license=\"{license}\"}} 2")));
    assert!(m.contains(&format!("lic4es_seats_limit{{license=\"{license}\"}} 2")));
    assert!(m.contains("lic4es_store_up{store=\"database\"} 1"), "{m}");
    assert!(m.contains("lic4es_store_up{store=\"memory\"} 1"), "{m}");
}

/// Every heartbeat answers with its proof: the seat token renewed for this session,
/// machine and request, running the grace and one TTL from now (no lifetime on top). The
/// audit trail records a renewal on a tier change and once per half a token lifetime,
/// not every proof.
#[test]
fn every_heartbeat_answers_with_a_renewed_token_bound_to_its_nonce() {
    let s = Server::start();
    // An hourly heartbeat makes the 12 hours before an audited renewal a dozen beats.
    let (license, key) = s.license("pro", json!({"heartbeat_interval": 3600}));
    let ttl = 2 * 3600 + 60;
    let (_, v) = acquire(&s, &key, "hw");
    let sid = v["session_id"].as_str().unwrap().to_string();
    let first = s.jwks().verify(v["license"].as_str().unwrap()).unwrap();
    assert_eq!(first.exp, NOW + 7 * DAY + ttl, "the grace and one TTL");
    assert_eq!(first.grace_seconds, Some(7 * DAY), "the grace is signed");
    assert_eq!(first.src.as_deref(), Some("seat"));
    let renews = |s: &Server| {
        audit_types(s, &license)
            .iter()
            .filter(|t| *t == "renew")
            .count()
    };
    for hour in 1..=14 {
        s.advance(3600);
        let nonce = format!("{hour:032x}");
        let (status, v) = s.heartbeat(&key, json!({"session_id": sid, "nonce": nonce}));
        assert_eq!(status, 200, "hour {hour}: {v}");
        assert_eq!(v["heartbeat_interval"], 3600);
        let c = s.jwks().verify(v["license"].as_str().unwrap()).unwrap();
        assert_eq!(c.sid.as_deref(), Some(sid.as_str()));
        assert_eq!(c.hwid.as_deref(), Some("hw"));
        assert_eq!(c.nonce.as_deref(), Some(nonce.as_str()), "hour {hour}");
        assert_eq!(c.iat, Some(NOW + hour * 3600));
        assert_eq!(c.exp, NOW + hour * 3600 + 7 * DAY + ttl);
        assert_eq!(c.grace_seconds, Some(7 * DAY));
        assert_eq!(renews(&s), usize::from(hour >= 12), "hour {hour}");
    }

    // A tier change reaches the engine at its next heartbeat, and is recorded.
    s.admin(
        "POST",
        &format!("/admin/licenses/{license}/tier"),
        json!({"tier": "enterprise"}),
    );
    s.advance(3600);
    let (_, v) = heartbeat(&s, &key, &sid);
    let c = s.jwks().verify(v["license"].as_str().unwrap()).unwrap();
    assert_eq!(c.tier, lic4es::Tier::Enterprise);
    assert_eq!(renews(&s), 2);
}

/// One session's proofs must not feed several hosts behind a relay: a heartbeat sooner
/// than half an interval after the last renewal (or the acquire) is `429
/// heartbeat_too_soon` with `Retry-After`, audited, and renews nothing.
#[test]
fn a_heartbeat_sooner_than_half_an_interval_is_refused_and_audited() {
    let s = Server::start();
    let (license, key) = s.license("team", json!({"heartbeat_interval": 300}));
    let (_, v) = acquire(&s, &key, "hw");
    let sid = v["session_id"].as_str().unwrap().to_string();
    s.advance(100);
    let body = json!({"session_id": sid, "nonce": NONCE}).to_string();
    let auth = format!("Bearer {key}");
    let a = common::http::exchange(
        s.port,
        &format!("PUT {} HTTP/1.1", paths::HEARTBEAT),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
        ],
        body.as_bytes(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(a.status, 429);
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["error"], "heartbeat_too_soon", "{v}");
    assert!(
        a.head.to_ascii_lowercase().contains("retry-after: 50\r\n"),
        "{}",
        a.head
    );
    let e = entry(&s, &license, "heartbeat_too_soon");
    assert_eq!(e["session_id"], sid);
    assert_eq!(e["hardware_id"], "hw");
    // At half the interval it is taken.
    s.advance(50);
    assert_eq!(heartbeat(&s, &key, &sid).0, 200);
    s.advance(149);
    assert_eq!(heartbeat(&s, &key, &sid).0, 429);
    s.advance(1);
    assert_eq!(heartbeat(&s, &key, &sid).0, 200);
}

#[test]
fn a_silent_session_lapses_frees_its_seat_and_is_shown_offline_until_its_grace_ends() {
    let s = Server::start();
    let (license, key) = s.license("team", json!({"seats": 1}));
    let sid = seat(&s, &key, "laptop");
    s.advance(TTL - 1);
    assert_eq!(heartbeat(&s, &key, &sid).0, 200);
    s.advance(TTL + 1);
    let (status, v) = heartbeat(&s, &key, &sid);
    refused(status, &v, 410, "session_gone");

    let listed = sessions(&s, &license);
    assert_eq!(listed[0]["mode"], "offline");
    assert_eq!(
        listed[0]["offline_since"],
        lic4es::clock::rfc3339(NOW + TTL - 1)
    );
    let m = s.metrics();
    assert!(m.contains("lic4es_sessions{state=\"offline\"} 1"), "{m}");
    assert!(audit_types(&s, &license).contains(&"lapse".to_string()));

    // Its seat is free for someone else; the team grace is 3 days.
    assert_eq!(acquire(&s, &key, "desktop").0, 200);
    s.advance(3 * DAY);
    let listed = sessions(&s, &license);
    assert_eq!(
        listed.len(),
        1,
        "the lapsed session is gone after its grace: {listed:?}"
    );
    assert_eq!(listed[0]["hardware_id"], "desktop");
}

#[test]
fn a_reconnect_frees_the_old_seat_at_once_and_records_the_offline_period() {
    let s = Server::start();
    // Heartbeats every two hours: the session outlives the test's three hours online.
    let (license, key) = s.license("pro", json!({"seats": 1, "heartbeat_interval": 7200}));
    let old = seat(&s, &key, "hw");
    // The engine lost contact two hours ago; its session is still online on the server.
    s.advance(3 * 3600);
    let mut body = acquire_body("hw");
    body["old_session_id"] = json!(old);
    body["offline_since"] = json!(lic4es::clock::rfc3339(NOW + 3 * 3600 - 7200));
    body["offline_cycles_30d"] = json!(2);
    let (status, v) = s.reconnect(&key, body);
    assert_eq!(status, 200, "{v}");
    let new = v["session_id"].as_str().unwrap();
    assert_ne!(new, old);
    let listed = sessions(&s, &license);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["session_id"], new);
    let rec = entry(&s, &license, "reconnect");
    assert_eq!(rec["session_id"], old);
    assert_eq!(rec["detail"], "offline 7200 s; 2 offline cycles in 30 days");
    // Without an old session it is a plain acquire; the seat is taken now.
    let (status, _) = s.reconnect(&key, acquire_body("other"));
    assert_eq!(status, 403);
}

#[test]
fn a_free_plan_answers_offline_without_a_seat() {
    let s = Server::start();
    let (license, key) = s.license("community", json!({}));
    for hw in ["a", "b", "c"] {
        let (status, v) = acquire(&s, &key, hw);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["mode"], "offline");
        assert_eq!(v["grace_period_days"], 0);
        assert!(v.get("session_id").is_none());
        let c = s.jwks().verify(v["license"].as_str().unwrap()).unwrap();
        assert_eq!(c.sid, None);
        assert_eq!(c.hwid.as_deref(), Some(hw));
        assert_eq!(c.exp - c.iat.unwrap(), DAY);
    }
    assert!(sessions(&s, &license).is_empty());
}

#[test]
fn a_strict_online_only_license_has_no_offline_sessions() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({"offline_grace_days": 0}));
    let (_, v) = acquire(&s, &key, "hw");
    assert_eq!(v["grace_period_days"], 0);
    s.advance(TTL + 1);
    assert!(sessions(&s, &license).is_empty());
}

#[test]
fn revocations_answer_every_seat_call() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({}));
    let sid = seat(&s, &key, "hw");
    s.admin(
        "POST",
        &format!("/admin/licenses/{license}/revoke"),
        Value::Null,
    );
    let (status, v) = heartbeat(&s, &key, &sid);
    refused(status, &v, 403, "license_revoked");
    let (status, v) = acquire(&s, &key, "hw");
    refused(status, &v, 403, "license_revoked");

    let (_, key2) = s.license("pro", json!({}));
    s.admin("POST", "/admin/api-keys/revoke", json!({"api_key": key2}));
    let (status, v) = acquire(&s, &key2, "hw");
    refused(status, &v, 401, "api_key_revoked");
}

#[test]
fn an_admin_kick_ends_a_session_and_its_next_heartbeat_is_410() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({}));
    let sid = seat(&s, &key, "hw");
    let (status, _) = s.admin("DELETE", &format!("/admin/sessions/{sid}"), Value::Null);
    assert_eq!(status, 204);
    assert_eq!(heartbeat(&s, &key, &sid).0, 410);
    assert_eq!(
        s.admin("DELETE", &format!("/admin/sessions/{sid}"), Value::Null)
            .0,
        404
    );
    assert!(audit_types(&s, &license).contains(&"kick".to_string()));
    // A path that cannot be a session id is refused as such, not looked up.
    let (status, v) = s.admin("DELETE", "/admin/sessions/a%0Ab", Value::Null);
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("session_id"),
        "{v}"
    );
    // Another license's key cannot keep (or release) this license's session.
    let sid2 = seat(&s, &key, "hw2");
    let (_, other) = s.license("pro", json!({}));
    assert_eq!(heartbeat(&s, &other, &sid2).0, 410);
    let (status, _) = s.release(&other, json!({"session_id": sid2}));
    assert_eq!(status, 204);
    assert_eq!(sessions(&s, &license).len(), 1, "still held");
    let (status, _) = s.release(&key, json!({"session_id": sid2}));
    assert_eq!(status, 204);
    assert!(sessions(&s, &license).is_empty());
    assert_eq!(audit_types(&s, &license).last().unwrap(), "release");
}

#[test]
fn bad_seat_requests_get_a_json_4xx() {
    let s = Server::start();
    let (_, key) = s.license("pro", json!({}));
    let long = "x".repeat(300);
    let cases: Vec<(&str, &str, Option<&str>, Value, u16)> = vec![
        (
            "POST",
            paths::ACQUIRE,
            Some(&key),
            json!({"instance_id": "i", "nonce": NONCE}),
            400,
        ),
        (
            "POST",
            paths::ACQUIRE,
            Some(&key),
            json!({"hardware_id": "", "instance_id": "i", "nonce": NONCE}),
            400,
        ),
        (
            "POST",
            paths::ACQUIRE,
            Some(&key),
            json!({"hardware_id": "h\u{1b}[31m", "instance_id": "i", "nonce": NONCE}),
            400,
        ),
        (
            "POST",
            paths::ACQUIRE,
            Some(&key),
            json!({"hardware_id": "h", "instance_id": "i", "nonce": "xyz"}),
            400,
        ),
        ("POST", paths::ACQUIRE, None, acquire_body("h"), 401),
        (
            "POST",
            paths::ACQUIRE,
            Some("sk-unknown"),
            acquire_body("h"),
            401,
        ),
        (
            "PUT",
            paths::HEARTBEAT,
            Some(&key),
            json!({"session_id": long, "nonce": NONCE}),
            400,
        ),
        (
            "PUT",
            paths::HEARTBEAT,
            Some(&key),
            json!({"session_id": "nope", "nonce": NONCE}),
            410,
        ),
        (
            "POST",
            paths::RECONNECT,
            Some(&key),
            json!({"hardware_id": "h", "instance_id": "i", "nonce": NONCE, "offline_since": "yesterday"}),
            400,
        ),
        ("DELETE", paths::RELEASE, Some(&key), json!({}), 400),
        ("GET", paths::ACQUIRE, Some(&key), Value::Null, 405),
        ("POST", paths::HEARTBEAT, Some(&key), json!({}), 405),
        ("GET", "/admin/sessions", Some("wrong"), Value::Null, 401),
        ("DELETE", "/admin/sessions/x", None, Value::Null, 401),
    ];
    for (method, path, bearer, body, want) in cases {
        let (status, v) = s.json(method, path, bearer, body.clone());
        assert_eq!(status, want, "{method} {path} {body}: {v}");
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
}

fn key_lookups(s: &Server) -> u64 {
    s.metrics()
        .lines()
        .find_map(|l| l.strip_prefix("lic4es_api_key_lookups_total "))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn heartbeats_reach_the_database_at_most_twice_a_second() {
    let s = Server::start();
    // A 1-second interval: renewals may come back to back (half of it is 0 s).
    let (_, key) = s.license("pro", json!({"heartbeat_interval": 1}));
    let sid = seat(&s, &key, "hw-1");
    let before = key_lookups(&s);
    let started = std::time::Instant::now();
    for _ in 0..300 {
        assert_eq!(heartbeat(&s, &key, &sid).0, 200);
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let lookups = key_lookups(&s) - before;
    // One lookup per half second at most, whatever the heartbeat rate.
    assert!(
        lookups <= 1 + elapsed_ms / 500 + 1,
        "{lookups} lookups for 300 heartbeats in {elapsed_ms} ms"
    );
}

#[test]
fn a_revocation_through_the_admin_api_applies_at_once_on_its_instance() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({"heartbeat_interval": 1}));
    let sid = seat(&s, &key, "hw-1");
    assert_eq!(heartbeat(&s, &key, &sid).0, 200, "cached now");
    let (status, _) = s.admin(
        "POST",
        &format!("/admin/licenses/{license}/revoke"),
        Value::Null,
    );
    assert_eq!(status, 200);
    let (status, v) = heartbeat(&s, &key, &sid);
    refused(status, &v, 403, "license_revoked");
}

/// The body of a reconnect of `old`, offline since `since`.
fn reconnect_body(hw: &str, old: &str, since: i64) -> Value {
    let mut body = acquire_body(hw);
    body["old_session_id"] = json!(old);
    body["offline_since"] = json!(lic4es::clock::rfc3339(since));
    body
}

fn abuse(s: &Server) -> Value {
    let (status, v) = s.admin("GET", "/admin/abuse", Value::Null);
    assert_eq!(status, 200, "{v}");
    v
}

fn metric(s: &Server, name: &str) -> f64 {
    let text = s.metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn lapses_and_reconnects_feed_the_offline_abuse_rule() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({"seats": 1, "offline_grace_days": 7}));
    let (honest, honest_key) = s.license("pro", json!({"seats": 1}));
    let mut sid = seat(&s, &key, "laptop");
    let honest_sid = seat(&s, &honest_key, "desk");
    let mut last_contact = NOW;
    for cycle in 1..=6 {
        // Four days without a word: the session lapses and is shown offline.
        s.advance(4 * DAY);
        let listed = sessions(&s, &license);
        assert_eq!(listed[0]["mode"], "offline", "cycle {cycle}");
        assert_eq!(listed[0]["offline_secs"], 4 * DAY);
        assert_eq!(listed[0]["grace_left_secs"], 3 * DAY + TTL);
        let (status, v) = s.reconnect(&key, reconnect_body("laptop", &sid, last_contact));
        assert_eq!(status, 200, "{v}");
        sid = v["session_id"].as_str().unwrap().to_string();
        last_contact = NOW + cycle * 4 * DAY;
        let report = abuse(&s);
        let mine = report["licenses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["license"] == license.as_str())
            .unwrap()
            .clone();
        assert_eq!(mine["cycles"], cycle, "{report}");
        // Five cycles of four days (20 days) are not enough; the sixth flags it.
        assert_eq!(mine["flagged"], cycle == 6, "{report}");
        assert_eq!(report["flagged"], u64::from(cycle == 6));
    }
    let report = abuse(&s);
    assert_eq!(
        report["licenses"][0]["license"],
        license.as_str(),
        "flagged first"
    );
    assert_eq!(
        report["licenses"][0]["message"],
        format!(
            "Possible offline abuse: {license} (6 offline cycles, 24.0 days offline in 30 days)"
        )
    );
    // The honest license's session lapsed long ago and never came back: one cycle.
    let honest_row = report["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["license"] == honest.as_str())
        .cloned();
    assert_eq!(honest_row.map(|r| r["cycles"].clone()), Some(json!(1)));
    assert_eq!(heartbeat(&s, &honest_key, &honest_sid).0, 410);
    assert_eq!(metric(&s, "lic4es_offline_abuse_flagged"), 1.0);
    assert_eq!(metric(&s, "lic4es_offline_session_seconds_count"), 6.0);
    assert_eq!(
        metric(&s, "lic4es_offline_session_seconds_sum"),
        (6 * 4 * DAY) as f64
    );
    let text = s.metrics();
    assert!(text.contains("lic4es_offline_session_seconds_bucket{le=\"259200\"} 0\n"));
    assert!(text.contains("lic4es_offline_session_seconds_bucket{le=\"604800\"} 6\n"));
    assert!(text.contains(
        "lic4es_http_request_duration_seconds_count{endpoint=\"/api/v1/licenses/reconnect\"} 6\n"
    ));
    assert!(text.contains(
        "lic4es_http_request_duration_seconds_bucket{endpoint=\"/api/v1/licenses/reconnect\",le=\"+Inf\"} 6\n"
    ));
    // 30 days later the periods have left the window.
    s.advance(31 * DAY);
    assert_eq!(abuse(&s)["flagged"], 0);
    assert_eq!(metric(&s, "lic4es_offline_abuse_flagged"), 0.0);
}

#[test]
fn the_audit_trail_pages_and_filters_by_license() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({"seats": 10}));
    let (other, other_key) = s.license("pro", json!({}));
    for i in 0..5 {
        assert_eq!(acquire(&s, &key, &format!("hw-{i}")).0, 200);
    }
    assert_eq!(acquire(&s, &other_key, "x").0, 200);
    let page = |q: &str| -> Vec<Value> {
        let (status, v) = s.admin("GET", &format!("/admin/audit?{q}"), Value::Null);
        assert_eq!(status, 200, "{v}");
        v.as_array().unwrap().clone()
    };
    let first = page(&format!("license={license}&limit=2"));
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["hardware_id"], "hw-4");
    let last_id = first[1]["id"].as_i64().unwrap();
    let second = page(&format!("license={license}&limit=2&before={last_id}"));
    let hw: Vec<&str> = second
        .iter()
        .map(|e| e["hardware_id"].as_str().unwrap())
        .collect();
    assert_eq!(hw, ["hw-2", "hw-1"]);
    let rest = page(&format!(
        "license={license}&before={}",
        second[1]["id"].as_i64().unwrap()
    ));
    // hw-0's acquire, the first API key and the license's creation.
    let types: Vec<&str> = rest.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["acquire", "api_key_create", "license_create"]);
    assert!(page(&format!("license={other}"))
        .iter()
        .all(|e| e["license"] == other.as_str()));
    for e in page("limit=1000") {
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
        assert!(
            e["source"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{e}"
        );
    }
    for bad in ["before=soon", "limit=-1", "license=a%20b"] {
        let (status, v) = s.admin("GET", &format!("/admin/audit?{bad}"), Value::Null);
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["error"], "invalid_request", "{bad}: {v}");
    }
}

#[test]
fn the_seat_summary_shows_use_and_limit_per_license() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({"seats": 3, "org_name": "<b>Acme</b>"}));
    acquire(&s, &key, "a");
    acquire(&s, &key, "b");
    s.advance(TTL + 1);
    acquire(&s, &key, "c");
    let (status, v) = s.admin("GET", "/admin/seats", Value::Null);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!([{"license": license, "org_name": "<b>Acme</b>", "tier": "pro",
                "in_use": 1, "offline": 2, "limit": 3}])
    );
    let (status, _) = s.json("GET", "/admin/seats", Some("wrong"), Value::Null);
    assert_eq!(status, 401);
}

#[test]
fn a_reconnect_for_a_session_the_server_forgot_still_reports_its_offline_period() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({"seats": 2}));
    // As after a restart of a server keeping seats in memory: the old id is unknown.
    let (status, v) = s.reconnect(&key, reconnect_body("hw", "ses-forgotten", NOW - 3 * DAY));
    assert_eq!(status, 200, "{v}");
    let rec = entry(&s, &license, "reconnect");
    assert_eq!(rec["session_id"], "ses-forgotten");
    assert_eq!(rec["hardware_id"], "hw");
    assert_eq!(
        rec["detail"],
        "offline 259200 s; 0 offline cycles in 30 days (the previous session was not known here)"
    );
    let row = abuse(&s)["licenses"][0].clone();
    assert_eq!(row["license"], license.as_str());
    assert_eq!(row["cycles"], 1);
    assert_eq!(row["offline_secs"], 3 * DAY);
    // Without a reported start, an unknown old session adds nothing.
    let mut body = acquire_body("hw2");
    body["old_session_id"] = json!("ses-other");
    assert_eq!(s.reconnect(&key, body).0, 200);
    assert_eq!(abuse(&s)["licenses"][0]["cycles"], 1);
}

#[test]
fn the_audit_trail_is_kept_for_its_configured_days_and_offline_periods_for_30() {
    let s = Server::with_config("audit-retention-days = 2\n");
    let (license, key) = s.license("pro", json!({"seats": 1, "offline_grace_days": 7}));
    let old = seat(&s, &key, "old");
    s.advance(3 * DAY);
    assert_eq!(
        sessions(&s, &license)[0]["mode"],
        "offline",
        "lapse audited"
    );
    let (status, v) = s.reconnect(&key, reconnect_body("old", &old, NOW));
    assert_eq!(status, 200, "{v}");
    let prune = || common::block_on(license_server::service::audit::prune_old(&s.state)).unwrap();
    prune();
    // The creation, the first acquire and its lapse are over two days old: gone.
    assert_eq!(audit_types(&s, &license), ["reconnect", "acquire"]);
    let periods = |since| s.state.store.offline_periods(None, since).unwrap();
    assert_eq!(periods(0).len(), 1);
    s.advance(30 * DAY + 1);
    prune();
    assert!(
        periods(0).is_empty(),
        "offline periods outlive the 30-day window"
    );
}

/// The bodies of the CODITECT ADR's `HybridLicenseValidator`, exactly: no `instance_id`,
/// `version` or `nonce`.
#[test]
fn the_coditect_adr_client_s_bodies_are_served() {
    let s = Server::start();
    let (license, key) = s.license("team", json!({"seats": 1, "heartbeat_interval": 3600}));
    let (status, v) = s.acquire(&key, json!({"hardware_id": "adr-laptop"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["mode"], "online");
    assert_eq!(v["heartbeat_interval"], 3600);
    assert_eq!(v["grace_period_days"], 3);
    let sid = v["session_id"].as_str().unwrap().to_string();
    let c = s.jwks().verify(v["license"].as_str().unwrap()).unwrap();
    assert_eq!(c.nonce, None, "no nonce in the request, none in the token");
    assert_eq!(c.sid.as_deref(), Some(sid.as_str()));
    assert_eq!(sessions(&s, &license)[0]["instance_id"], "");

    // A second machine is refused by count.
    let (status, v) = s.acquire(&key, json!({"hardware_id": "adr-desktop"}));
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["message"], "All seats in use (1/1)");

    // Heartbeats keep the seat, and the renewal half-way through carries no nonce.
    let mut renewed = None;
    for _ in 0..12 {
        s.advance(3600);
        let (status, v) = s.heartbeat(&key, json!({"session_id": sid}));
        assert_eq!(status, 200, "{v}");
        if let Some(jwt) = v["license"].as_str() {
            renewed = Some(s.jwks().verify(jwt).unwrap());
        }
    }
    let renewed = renewed.expect("renewed within twelve hourly beats");
    assert_eq!(renewed.nonce, None);
    assert_eq!(renewed.sid.as_deref(), Some(sid.as_str()));

    // A reconnect with the old session frees its seat at once.
    let (status, v) = s.reconnect(
        &key,
        json!({"old_session_id": sid, "hardware_id": "adr-laptop"}),
    );
    assert_eq!(status, 200, "{v}");
    let new = v["session_id"].as_str().unwrap().to_string();
    assert_ne!(new, sid);
    assert_eq!(sessions(&s, &license).len(), 1);
    let (status, _) = s.release(&key, json!({"session_id": new}));
    assert_eq!(status, 204);
    assert!(sessions(&s, &license).is_empty());

    // A nonce that is given must still have the engine's form.
    let (status, v) = s.acquire(&key, json!({"hardware_id": "adr-laptop", "nonce": "xyz"}));
    assert_eq!(status, 400, "{v}");

    // The free plan: offline mode, grace 0, no seat.
    let (_, free) = s.license("community", json!({}));
    let (status, v) = s.acquire(&free, json!({"hardware_id": "adr-laptop"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["mode"], "offline");
    assert_eq!(v["grace_period_days"], 0);
}

/// An admin GET: (status, body, the path of the `Link` header's next page).
fn admin_page(s: &Server, path: &str) -> (u16, Value, Option<String>) {
    let auth = format!("Bearer {ADMIN}");
    let a = common::http::exchange(
        s.port,
        &format!("GET {path} HTTP/1.1"),
        &[("Authorization", auth.as_str())],
        b"",
        std::time::Duration::from_secs(10),
    )
    .expect("an answer");
    let next = a
        .head
        .lines()
        .find_map(|l| l.strip_prefix("link: <"))
        .map(|l| {
            assert!(l.trim_end().ends_with(">; rel=\"next\""), "{l}");
            l.split('>').next().unwrap().to_string()
        });
    (a.status, a.json(), next)
}

#[test]
fn admin_views_come_by_the_page_with_the_next_page_linked() {
    let s = Server::start();
    let (lic_a, key_a) = s.license("pro", json!({"seats": 5}));
    let (lic_b, key_b) = s.license("pro", json!({"seats": 2}));
    for hw in ["a", "b", "c", "d", "e"] {
        assert_eq!(acquire(&s, &key_a, hw).0, 200);
    }
    assert_eq!(acquire(&s, &key_b, "f").0, 200);

    // Five sessions of A in pages of two, each once, the last page unlinked.
    let mut path = format!("/admin/sessions?license={lic_a}&limit=2");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, v, next) = admin_page(&s, &path);
        assert_eq!(status, 200, "{v}");
        let items = v.as_array().unwrap();
        assert!(items.len() <= 2, "{v}");
        seen.extend(
            items
                .iter()
                .map(|x| x["hardware_id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match next {
            Some(n) => {
                assert!(n.contains(&format!("license={lic_a}")), "{n}");
                path = n;
            }
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);
    // Without a limit: a page of 100 at most; every license's.
    let (_, v, next) = admin_page(&s, "/admin/sessions");
    assert_eq!((v.as_array().unwrap().len(), next), (6, None));
    let (_, v, _) = admin_page(&s, "/admin/sessions?state=offline");
    assert_eq!(v.as_array().unwrap().len(), 0, "{v}");
    for bad in [
        "/admin/sessions?state=asleep",
        "/admin/sessions?cursor=no-colon",
        "/admin/sessions?limit=many",
        "/admin/audit?cursor=x",
        "/admin/seats?cursor=%E2%80%AE",
    ] {
        let (status, v, _) = admin_page(&s, bad);
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(v["error"].is_string(), "{bad}: {v}");
    }

    // Licenses with sessions, a page of one.
    let (_, v, next) = admin_page(&s, "/admin/seats?limit=1");
    let first = v[0]["license"].as_str().unwrap().to_string();
    let (_, v, last) = admin_page(&s, &next.expect("a second page"));
    let second = v[0]["license"].as_str().unwrap().to_string();
    let mut both = [first, second];
    both.sort();
    let mut want = [lic_a.clone(), lic_b.clone()];
    want.sort();
    assert_eq!(both, want);
    assert_eq!(last, None);

    // The tiles' numbers, whatever the fleet's size.
    let (status, v) = s.admin("GET", "/admin/summary", Value::Null);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["online"].as_u64(), v["offline"].as_u64()),
        (Some(6), Some(0))
    );
    assert_eq!(v["licenses"], 2);
    assert_eq!(v["nearest"][0]["license"], lic_a, "full first: {v}");
    assert_eq!(v["nearest"][0]["in_use"], 5);

    // The audit trail by the page, newest first, linked by the last id.
    let (_, v, next) = admin_page(&s, &format!("/admin/audit?license={lic_a}&limit=3"));
    let page1 = ids(&v);
    let (_, v, _) = admin_page(&s, &next.expect("older entries"));
    let page2 = ids(&v);
    assert_eq!(page1.len(), 3);
    assert!(
        !page2.is_empty() && page2[0] < page1[2],
        "{page1:?} {page2:?}"
    );
}

#[test]
fn per_license_series_are_bounded_to_the_licenses_nearest_their_limits() {
    let s = Server::with_config("metrics-max-licenses = 1");
    let (full, full_key) = s.license("pro", json!({"seats": 2}));
    let (half, half_key) = s.license("pro", json!({"seats": 4}));
    for hw in ["a", "b"] {
        assert_eq!(acquire(&s, &full_key, hw).0, 200);
        assert_eq!(acquire(&s, &half_key, hw).0, 200);
    }
    let m = s.metrics();
    assert!(
        m.contains(&format!("lic4es_seats_in_use{{license=\"{full}\"}} 2")),
        "{m}"
    );
    assert!(
        m.contains(&format!("lic4es_seats_limit{{license=\"{full}\"}} 2")),
        "{m}"
    );
    assert!(
        !m.contains(&half),
        "only the fullest license has its own series: {m}"
    );
    // The fleet's totals count every license.
    assert!(m.contains("lic4es_sessions{state=\"online\"} 4"), "{m}");
}

/// A seat token lives one session's grace; the license a year. The status names both,
/// each for what it is (`license_expires_at` from the token's signed `lic_exp`).
#[test]
fn the_status_shows_the_token_s_expiry_and_the_license_s_end() {
    let s = Server::on_wall_time();
    let (_, key) = s.license("team", json!({"seats": 1, "days": 365}));
    let start = lic4es::clock::Clock::now_secs(s.clock.as_ref());
    let dir = tempfile::tempdir().unwrap();
    let (e, logs) = common::engine::engine(&s, dir.path(), &key, json!({"seat.enabled": true}));
    let st = common::engine::status(&e);
    assert_eq!(st["tier"], "team", "{}", logs.dump());
    assert_eq!(
        st["license_expires_at"],
        lic4es::clock::rfc3339(start + 365 * DAY)
    );
    let token_end = st["expires_at"].as_str().unwrap();
    assert!(
        token_end < st["license_expires_at"].as_str().unwrap(),
        "the seat token ends first: {st}"
    );
}
