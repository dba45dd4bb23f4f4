//! Several stateless instances on one Redis and one PostgreSQL (`docs/how-to/several-instances.md`): never one
//! seat too many under a race across instances, an instance killed mid-load loses or
//! doubles no seat, scripts and Redis itself come back, a revocation made on one
//! instance is refused on the other within a second, and offline abuse and the audit
//! trail read the same from every instance.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pg::PgProc;
use common::process::{request, ServerProcess};
use common::redis::RedisProc;
use common::{ADMIN, NONCE};
use serde_json::{json, Value};

fn acquire(port: u16, key: &str, hw: &str) -> (u16, Value) {
    request(
        port,
        "POST",
        "/api/v1/licenses/acquire",
        key,
        &json!({"hardware_id": hw, "instance_id": format!("i-{hw}"), "version": "1", "nonce": NONCE}),
    )
}

fn heartbeat(port: u16, key: &str, sid: &str) -> (u16, Value) {
    request(
        port,
        "PUT",
        "/api/v1/licenses/heartbeat",
        key,
        &json!({"session_id": sid, "nonce": NONCE}),
    )
}

fn admin(port: u16, method: &str, path: &str, body: Value) -> (u16, Value) {
    request(port, method, path, ADMIN, &body)
}

fn online(port: u16, license: &str) -> usize {
    let (status, v) = admin(
        port,
        "GET",
        &format!("/admin/sessions?license={license}"),
        Value::Null,
    );
    assert_eq!(status, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .filter(|s| s["mode"] == "online")
        .count()
}

struct Cluster {
    a: ServerProcess,
    b: ServerProcess,
    redis: RedisProc,
    _pg: PgProc,
    config: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let redis = RedisProc::start();
    let pg = PgProc::start();
    let dir = tempfile::tempdir().unwrap();
    let redis_url = format!("redis-url = {:?}", redis.url());
    let config = common::process::fleet_config(dir.path(), &pg.url(), &redis_url);
    let a = ServerProcess::start(&config);
    let b = ServerProcess::start(&config);
    Cluster {
        a,
        b,
        redis,
        _pg: pg,
        config: dir,
    }
}

fn new_license(port: u16, id: &str, seats: u32) -> String {
    let (status, v) = admin(
        port,
        "POST",
        "/admin/licenses",
        // A 1-second interval: the load renews sessions back to back (half of it is 0 s).
        json!({"id": id, "tier": "pro", "days": 30, "seats": seats, "heartbeat_interval": 1}),
    );
    assert_eq!(status, 201, "{v}");
    v["api_key"].as_str().unwrap().to_string()
}

#[test]
#[cfg_attr(lic4es_no_shared_stores, ignore = "needs Redis and PostgreSQL")]
fn two_instances_never_grant_one_seat_too_many_and_a_revocation_spreads_within_a_second() {
    let c = cluster();
    let key = new_license(c.a.port, "org-race", 10);
    let granted = Arc::new(AtomicUsize::new(0));
    let full = Arc::new(AtomicUsize::new(0));
    let ports = [c.a.port, c.b.port];
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let (key, granted, full) = (key.clone(), granted.clone(), full.clone());
            let port = ports[i % 2];
            std::thread::spawn(move || match acquire(port, &key, &format!("hw-{i}")) {
                (200, _) => granted.fetch_add(1, Ordering::SeqCst),
                (403, v) if v["error"] == "no_seats_available" => {
                    full.fetch_add(1, Ordering::SeqCst)
                }
                other => panic!("{other:?}"),
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    println!(
        "200 concurrent acquires over 2 instances for 10 seats: {} granted, {} refused",
        granted.load(Ordering::SeqCst),
        full.load(Ordering::SeqCst)
    );
    assert_eq!(granted.load(Ordering::SeqCst), 10);
    assert_eq!(full.load(Ordering::SeqCst), 190);
    assert_eq!(online(c.a.port, "org-race"), 10);
    assert_eq!(online(c.b.port, "org-race"), 10);

    // Revoked on A: B refuses within a second (its API key cache holds half a second).
    let (_, v) = acquire(c.b.port, &new_license(c.b.port, "org-rev", 2), "hw-r");
    let sid = v["session_id"].as_str().unwrap().to_string();
    let rev_key = {
        let (status, v) = admin(
            c.a.port,
            "POST",
            "/admin/licenses/org-rev/api-keys",
            Value::Null,
        );
        assert_eq!(status, 201);
        v["api_key"].as_str().unwrap().to_string()
    };
    assert_eq!(heartbeat(c.b.port, &rev_key, &sid).0, 200, "cached on B");
    let (status, _) = admin(
        c.a.port,
        "POST",
        "/admin/licenses/org-rev/revoke",
        Value::Null,
    );
    assert_eq!(status, 200);
    let revoked_at = Instant::now();
    let refused_after = loop {
        let (status, v) = heartbeat(c.b.port, &rev_key, &sid);
        if status == 403 && v["error"] == "license_revoked" {
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "never refused: {status} {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("revoked on A, refused on B after {refused_after:?}");
    assert!(refused_after < Duration::from_secs(1), "{refused_after:?}");
}

#[test]
#[cfg_attr(lic4es_no_shared_stores, ignore = "needs Redis and PostgreSQL")]
fn an_instance_killed_mid_load_loses_and_doubles_no_seat() {
    let mut c = cluster();
    let key = new_license(c.b.port, "org-kill", 10);
    let ports = [c.a.port, c.b.port];
    let granted_on_b = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let (key, on_b) = (key.clone(), granted_on_b.clone());
            let port = ports[i % 2];
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis((i as u64 % 10) * 5));
                let (status, _) = acquire(port, &key, &format!("hw-{i}"));
                if status == 200 && port == ports[1] {
                    on_b.fetch_add(1, Ordering::SeqCst);
                }
                status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(15));
    c.a.kill();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| [0, 200, 403].contains(s)),
        "{statuses:?}"
    );
    // B carries on; the seats A granted before dying are still counted, none twice.
    let filled = online(c.b.port, "org-kill");
    assert!(filled <= 10, "{filled}");
    for i in 0..20 {
        acquire(c.b.port, &key, &format!("hw-late-{i}"));
    }
    assert_eq!(online(c.b.port, "org-kill"), 10, "every seat taken once");
    assert_eq!(acquire(c.b.port, &key, "hw-one-more").0, 403);
    let _ = &c.config;
}

#[test]
#[cfg_attr(lic4es_no_shared_stores, ignore = "needs Redis and PostgreSQL")]
fn script_flush_and_a_redis_restart_mid_load_are_recovered_from() {
    let mut c = cluster();
    let key = new_license(c.a.port, "org-flush", 5);
    let (status, v) = acquire(c.a.port, &key, "hw-1");
    assert_eq!(status, 200, "{v}");
    let sid = v["session_id"].as_str().unwrap().to_string();
    // Scripts flushed (as after a failover): reloaded on NOSCRIPT, nothing noticed.
    let client = redis::Client::open(c.redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn).unwrap();
    assert_eq!(heartbeat(c.b.port, &key, &sid).0, 200);
    assert_eq!(acquire(c.b.port, &key, "hw-2").0, 200);

    // Redis down: 503 (engines hold their tier), never a grant; /healthz says so.
    let port = c.redis.port;
    c.redis.kill();
    let (status, v) = acquire(c.a.port, &key, "hw-3");
    assert_eq!(status, 503, "{v}");
    assert_eq!(heartbeat(c.b.port, &key, &sid).0, 503);
    assert_eq!(
        request(c.a.port, "GET", "/healthz", "", &Value::Null).0,
        503
    );

    // An outage longer than the client's reconnect attempts (one retry within 500 ms):
    // the first request on instance A afterwards must reach Redis, not the failed connect.
    std::thread::sleep(Duration::from_millis(1500));

    // Back without persistence: sessions are gone (410), engines acquire again.
    c.redis = RedisProc::start_on(port);
    let mut status = 0;
    common::wait_for("the restarted Redis answering", 10, || {
        status = heartbeat(c.b.port, &key, &sid).0;
        status != 503
    });
    assert_eq!(status, 410);
    assert_eq!(acquire(c.a.port, &key, "hw-1").0, 200);
    assert_eq!(
        request(c.b.port, "GET", "/healthz", "", &Value::Null).0,
        200
    );
}

#[test]
#[cfg_attr(lic4es_no_shared_stores, ignore = "needs Redis and PostgreSQL")]
fn offline_abuse_and_the_audit_trail_are_the_same_on_every_instance() {
    let c = cluster();
    let key = new_license(c.a.port, "org-turns", 1);
    let now = common::wall_now();
    // Six machines take turns on the seat, alternating instances, each back after four
    // days offline from its cached token: each acquire reports the period.
    for i in 0..6 {
        let port = [c.b.port, c.a.port][i % 2];
        let body = json!({"hardware_id": format!("hw-t{i}"), "instance_id": "i", "version": "1",
                          "nonce": NONCE, "offline_cycles_30d": 1,
                          "offline_since": lic4es::clock::rfc3339(now - 4 * 86_400)});
        let (status, v) = request(port, "POST", "/api/v1/licenses/acquire", &key, &body);
        assert_eq!(status, 200, "{v}");
        let release = json!({"session_id": v["session_id"]});
        let (status, _) = request(port, "DELETE", "/api/v1/licenses/release", &key, &release);
        assert_eq!(status, 204);
    }
    for port in [c.a.port, c.b.port] {
        let (status, v) = admin(port, "GET", "/admin/abuse", Value::Null);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["flagged"], 1, "{v}");
        assert_eq!(v["licenses"][0]["license"], "org-turns");
        assert_eq!(v["licenses"][0]["cycles"], 6);
        let (_, trail) = admin(port, "GET", "/admin/audit?license=org-turns", Value::Null);
        let reports = trail
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["type"] == "acquire"
                    && e["detail"].as_str().is_some_and(|d| {
                        // Four days, and the second or two the requests took.
                        let secs = d
                            .strip_prefix("offline ")
                            .and_then(|r| r.split(' ').next())
                            .and_then(|n| n.parse::<i64>().ok());
                        secs.is_some_and(|s| (4 * 86_400..4 * 86_400 + 60).contains(&s))
                    })
            })
            .count();
        assert_eq!(reports, 6, "{trail}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(c.config.path().join("server.toml"))
        .arg("abuse")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("org-turns"));
}
