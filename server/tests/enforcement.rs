//! The license decides: what a customer controls — the engine's config, a token replayed
//! at another endpoint, a released or kicked seat's token, a report of the past — never
//! yields a seat, a tier or a lifetime the vendor's license record does not grant. Engines
//! run in this process on the server's own clock, so days pass in milliseconds.

mod common;

use common::engine::{engine, status};
use common::*;
use lic4es::protocol::paths;
use lic4es::Tier;
use serde_json::{json, Value};

const DAY: i64 = 86_400;

fn write_cache(dir: &std::path::Path, token: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let p = dir.join("license-cache.jwt");
    std::fs::write(&p, token).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn acquire_body(hw: &str) -> Value {
    json!({"hardware_id": hw, "instance_id": format!("i-{hw}"), "version": "1", "nonce": NONCE})
}

fn refresh_body(license: &str) -> Value {
    json!({"license_id": license, "instance_id": "i-r", "version": "1", "uptime_hours": 1,
           "nonce": NONCE})
}

/// The engine runs on a seat, online.
fn holds_a_seat_online(e: &lic4es::Engine) {
    let st = status(e);
    let got = (st["source"].as_str(), st["mode"].as_str());
    assert_eq!(got, (Some("seat"), Some("online")), "{st}");
}

#[test]
fn the_seat_limit_holds_whatever_the_hosts_config_says() {
    let s = Server::start();
    let (license, key) = s.license("team", json!({"seats": 1}));
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();

    // A host that set only its API key gets the seat: the license asked for one.
    let (a, a_logs) = engine(&s, dirs[0].path(), &key, json!({}));
    assert_eq!(a.tier(), Tier::Team);
    holds_a_seat_online(&a);
    assert!(a_logs.has("The license is counted in seats"));

    // Another one, in seat mode, is refused.
    let (b, _) = engine(&s, dirs[1].path(), &key, json!({"seat.enabled": true}));
    assert_eq!(b.tier(), Tier::Community);
    assert!(status(&b)["reason"]
        .as_str()
        .unwrap()
        .contains("All seats in use (1/1)"));

    // One that turns seat mode off gets no license at all, and is told why; a token it
    // cached before the license counted seats is not kept to run on later.
    let lic = s.state.store.license(&license).unwrap().unwrap();
    let (earlier, _) = license_server::service::tokens::issue(
        &s.state,
        &lic,
        license_server::service::tokens::TokenSpec::default(),
    )
    .unwrap();
    write_cache(dirs[2].path(), &earlier);
    let (c, c_logs) = engine(&s, dirs[2].path(), &key, json!({"seat.enabled": false}));
    assert_eq!(c.tier(), Tier::Community);
    let st = status(&c);
    assert_eq!(
        st["reason"], "the license is counted in seats; seat mode is off",
        "{st}"
    );
    assert!(c_logs.has("seat.enabled: false"));
    assert!(
        !dirs[2].path().join("license-cache.jwt").exists(),
        "nothing cached to run on later"
    );
    let away = format!("http://127.0.0.1:{}", free_port());
    let (c2, _) = engine(
        &s,
        dirs[2].path(),
        &key,
        json!({"seat.enabled": false, "api-url": away}),
    );
    assert_eq!(
        c2.tier(),
        Tier::Community,
        "no cached Team while the server is away"
    );
    drop(c2);
    // Its refreshes are refused the same way.
    assert!(c.refresh_now().is_err());
    assert_eq!(c.tier(), Tier::Community);

    // Nor does the token endpoint serve the license to anyone asking by hand.
    let (code, v) = s.fetch(&key);
    common::refused(code, &v, 403, "seat_required");
    assert!(v.get("jwt").is_none());

    // Exactly one seat is in use, and the audit shows the refusal.
    let (_, seats) = s.admin("GET", "/admin/seats", Value::Null);
    assert_eq!(seats[0]["license"], license.as_str());
    assert_eq!(seats[0]["in_use"], 1);
    assert_eq!(seats[0]["limit"], 1);

    // The seat goes back at shutdown; the refused host gets it on its next attempt.
    a.shutdown().unwrap();
    b.refresh_now().unwrap();
    assert_eq!(b.tier(), Tier::Team);
    drop((b, c));
}

#[test]
fn a_license_not_counted_in_seats_is_served_by_token_and_an_acquire_answers_offline() {
    let s = Server::start();
    let (_, key) = s.license("enterprise", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = engine(&s, dir.path(), &key, json!({}));
    assert_eq!(e.tier(), Tier::Enterprise);
    assert_eq!(
        status(&e)["source"],
        "api_key",
        "Enterprise is unlimited by default"
    );

    let (code, v) = s.acquire(&key, acquire_body("hw"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["mode"], "offline");
    assert_eq!(v["grace_period_days"], 7, "the tier's grace");
    assert!(v.get("session_id").is_none());
    let (_, sessions) = s.admin("GET", "/admin/sessions", Value::Null);
    assert_eq!(sessions, json!([]));

    // In seat mode the engine uses it as an offline plan.
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = engine(&s, dir.path(), &key, json!({"seat.enabled": true}));
    assert_eq!(e.tier(), Tier::Enterprise);
    assert_eq!(status(&e)["seat"]["state"], "offline_plan");

    // A license changed to count seats moves a running host into seat mode at its next
    // refresh.
    let (license, key) = s.license("pro", json!({"seats": "unlimited"}));
    let dir = tempfile::tempdir().unwrap();
    let (e, logs) = engine(&s, dir.path(), &key, json!({}));
    assert_eq!(status(&e)["source"], "api_key");
    let (code, v) = s.admin(
        "PATCH",
        &format!("/admin/licenses/{license}"),
        json!({"seats": 2}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["seats"], 2);
    e.refresh_now().unwrap();
    holds_a_seat_online(&e);
    assert!(logs.has("acquiring a seat"));
    assert_eq!(e.tier(), Tier::Pro);
}

#[test]
fn refresh_exchanges_only_a_static_token_minted_with_a_refresh_url() {
    let s = Server::start();
    let url = format!("http://127.0.0.1:{}{}", s.port, paths::REFRESH);
    let refresh = |bearer: &str, license: &str| {
        s.json("POST", paths::REFRESH, Some(bearer), refresh_body(license))
    };
    let refused = |(code, v): (u16, Value), want: &str, what: &str| {
        assert_eq!(
            (code, v["error"].as_str()),
            (401, Some(want)),
            "{what}: {v}"
        );
        assert!(v.get("jwt").is_none(), "{what}: no token");
    };

    // Seat tokens: live, released, kicked.
    let (seated, key) = s.license("team", json!({"seats": 2}));
    let (_, v) = s.acquire(&key, acquire_body("hw-1"));
    let live = v["license"].as_str().unwrap().to_string();
    assert_eq!(
        s.jwks().verify(&live).unwrap().grace_days,
        Some(0),
        "a seat token's exp already holds the offline grace: no engine grace on top"
    );
    refused(
        refresh(&live, &seated),
        "invalid_token",
        "a live seat token",
    );
    let (code, _) = s.release(&key, json!({"session_id": v["session_id"]}));
    assert_eq!(code, 204);
    refused(
        refresh(&live, &seated),
        "invalid_token",
        "a released seat's token",
    );
    let (_, v) = s.acquire(&key, acquire_body("hw-2"));
    let kicked = v["license"].as_str().unwrap().to_string();
    let sid = v["session_id"].as_str().unwrap();
    let (code, _) = s.admin("DELETE", &format!("/admin/sessions/{sid}"), Value::Null);
    assert_eq!(code, 204);
    refused(
        refresh(&kicked, &seated),
        "invalid_token",
        "a kicked seat's token",
    );

    // An API-key token, before and after its key is revoked.
    let (plain, key) = s.license("pro", json!({"seats": "unlimited"}));
    let (_, v) = s.fetch(&key);
    let fetched = v["jwt"].as_str().unwrap().to_string();
    refused(
        refresh(&fetched, &plain),
        "invalid_token",
        "an API-key token",
    );
    let (code, _) = s.admin("POST", "/admin/api-keys/revoke", json!({"api_key": key}));
    assert_eq!(code, 200);
    refused(
        refresh(&fetched, &plain),
        "invalid_token",
        "a revoked key's token",
    );

    // A static token of a seat-counted license.
    let lic = s.state.store.license(&seated).unwrap().unwrap();
    let (counted, _) =
        license_server::service::tokens::issue_static(&s.state, &lic, Some(&url)).unwrap();
    refused(
        refresh(&counted, &seated),
        "invalid_token",
        "a seat-counted license's",
    );

    // A static token with a refresh_url: refreshed while it is at most 14 days expired.
    let (static_id, _) = s.license("pro", json!({"seats": "unlimited", "days": 30}));
    let lic = s.state.store.license(&static_id).unwrap().unwrap();
    let (old, exp) =
        license_server::service::tokens::issue_static(&s.state, &lic, Some(&url)).unwrap();
    let (code, v) = s.admin(
        "PATCH",
        &format!("/admin/licenses/{static_id}"),
        json!({"days": 800}),
    );
    assert_eq!(code, 200, "{v}");
    s.advance(exp - s.state.now() + 10 * DAY);
    let (code, v) = refresh(&old, &static_id);
    assert_eq!(code, 200, "ten days expired: {v}");
    let renewed = v["jwt"].as_str().unwrap().to_string();
    s.advance(290 * DAY);
    refused(
        refresh(&old, &static_id),
        "invalid_token",
        "a 300-day-old token",
    );
    let (code, _) = refresh(&renewed, &static_id);
    assert_eq!(code, 204, "the renewed one runs to the license's end");

    // A revoked license's token gets the revocation.
    let (code, _) = s.admin(
        "POST",
        &format!("/admin/licenses/{static_id}/revoke"),
        Value::Null,
    );
    assert_eq!(code, 200);
    let (code, v) = refresh(&renewed, &static_id);
    common::refused(code, &v, 403, "license_revoked");
}

/// An audit entry of `kind` for `license`, newest first.
fn entries(s: &Server, license: &str, kind: &str) -> Vec<Value> {
    let (_, v) = s.admin(
        "GET",
        &format!("/admin/audit?license={license}"),
        Value::Null,
    );
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .cloned()
        .collect()
}

fn abuse_row(s: &Server, license: &str) -> Value {
    let (_, v) = s.admin("GET", "/admin/abuse", Value::Null);
    v["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["license"] == license)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn an_acquire_reports_the_offline_period_no_session_is_left_to_end() {
    let s = Server::start();
    let (license, key) = s.license("pro", json!({"seats": 1}));
    let mut body = acquire_body("laptop");
    body["offline_since"] = json!(lic4es::clock::rfc3339(NOW - 2 * DAY));
    body["offline_cycles_30d"] = json!(3);
    let (code, v) = s.acquire(&key, body.clone());
    assert_eq!(code, 200, "{v}");
    let e = &entries(&s, &license, "acquire")[0];
    assert_eq!(e["detail"], "offline 172800 s; 3 offline cycles in 30 days");
    let row = abuse_row(&s, &license);
    assert_eq!(
        (row["cycles"].as_i64(), row["offline_secs"].as_i64()),
        (Some(1), Some(2 * DAY))
    );

    // The same report sent again (the answer was lost, or the seat was full) is one
    // period, even when refused.
    let (code, _) = s.acquire(&key, body);
    assert_eq!(code, 403);
    assert!(entries(&s, &license, "refused")[0]["detail"]
        .as_str()
        .unwrap()
        .contains("offline 172800 s"));
    assert_eq!(abuse_row(&s, &license)["cycles"], 1);

    // A report from 1970 counts no longer than a seat token lives, and says so.
    let (other, key) = s.license("pro", json!({"seats": 1}));
    let mut body = acquire_body("old-laptop");
    body["offline_since"] = json!("1970-01-01T00:00:00Z");
    let (code, _) = s.acquire(&key, body);
    assert_eq!(code, 200);
    let detail = entries(&s, &other, "acquire")[0]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("reported offline_since 1970-01-01T00:00:00Z clamped to"),
        "{detail}"
    );
    // The longest a seat token lives: the grace and one TTL.
    let life = 7 * DAY + 660;
    assert_eq!(abuse_row(&s, &other)["offline_secs"], life);
    assert!(
        !s.metrics()
            .contains("lic4es_offline_session_seconds_sum 17"),
        "the histogram never sees 1970"
    );

    // A reconnect cannot report more than its session lived, nor a future.
    let (code, v) = s.acquire(&key, acquire_body("pc"));
    assert_eq!(code, 403, "{v}");
    let (third, key) = s.license("pro", json!({"seats": 1, "heartbeat_interval": 86_400}));
    let (_, v) = s.acquire(&key, acquire_body("pc"));
    let mut old = v["session_id"].as_str().unwrap().to_string();
    s.advance(3600);
    for (since, want) in [(NOW - 30 * DAY, 3600), (NOW + 10 * DAY, 0)] {
        let mut body = acquire_body("pc");
        body["old_session_id"] = json!(old);
        body["offline_since"] = json!(lic4es::clock::rfc3339(since));
        let (code, v) = s.reconnect(&key, body);
        assert_eq!(code, 200, "{v}");
        old = v["session_id"].as_str().unwrap().to_string();
        let detail = entries(&s, &third, "reconnect")[0]["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(detail.starts_with(&format!("offline {want} s")), "{detail}");
        assert!(detail.contains("clamped"), "{detail}");
    }
}

#[test]
fn hosts_that_worked_offline_after_a_release_report_it_when_they_come_back() {
    let s = Server::start();
    let (license, key) = s.license("team", json!({"seats": 2, "offline_grace_days": 7}));
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs {
        let (e, _) = engine(&s, d.path(), &key, json!({}));
        assert_eq!(e.tier(), Tier::Team);
        e.shutdown().unwrap();
    }
    assert_eq!(entries(&s, &license, "release").len(), 2);

    // The backend is out of reach: both restart Team from their cached seat tokens.
    let away = format!("http://127.0.0.1:{}", free_port());
    let mut offline = Vec::new();
    for d in &dirs {
        let (e, _) = engine(&s, d.path(), &key, json!({"api-url": away}));
        assert_eq!(e.tier(), Tier::Team, "the airplane case");
        assert_eq!(status(&e)["seat"]["state"], "offline");
        assert!(status(&e)["seat"]["offline_since"].is_string());
        offline.push(e);
    }
    s.advance(2 * DAY);
    drop(offline);

    // Back in reach, each acquire reports its two days.
    for d in &dirs {
        let (e, _) = engine(&s, d.path(), &key, json!({}));
        assert_eq!(status(&e)["seat"]["state"], "online");
        e.shutdown().unwrap();
    }
    let reports: Vec<String> = entries(&s, &license, "acquire")
        .iter()
        .filter_map(|e| e["detail"].as_str().map(str::to_string))
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(
        reports.iter().all(|d| d.starts_with("offline 172800 s")),
        "{reports:?}"
    );
    let row = abuse_row(&s, &license);
    assert_eq!(
        (row["cycles"].as_i64(), row["offline_secs"].as_i64()),
        (Some(2), Some(4 * DAY))
    );
}

/// A tmpfs of `size`, unmounted on drop (mounting needs root: build.rs marks the test that
/// uses it ignored for anyone else).
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // Where it cannot be, build.rs marks the test ignored (not root).
        assert!(ok, "cannot mount a tmpfs (it needs root)");
        SmallDisk {
            path: dir.path().to_path_buf(),
            _dir: dir,
        }
    }

    /// Fills what is left with one file; returns it.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let p = self.path.join("filler");
        let mut f = std::fs::File::create(&p).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        p
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

#[test]
#[cfg_attr(lic4es_not_root, ignore = "mounting a tmpfs needs root")]
fn no_seat_is_granted_while_the_audit_trail_cannot_be_written() {
    let disk = SmallDisk::mount("4m");
    let s = Server::with_config(&format!(
        "database = {:?}",
        disk.path.join("licenses.sqlite3").to_str().unwrap()
    ));
    let (license, key) = s.license("team", json!({"seats": 1000}));
    let filler = disk.fill();
    let mut granted = 0;
    let mut unavailable = 0;
    for i in 0..300 {
        let (code, v) = s.acquire(&key, acquire_body(&format!("hw-{i}")));
        match code {
            200 => granted += 1,
            503 => {
                unavailable += 1;
                assert_eq!(v["error"], "store_unavailable", "{v}");
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert!(unavailable > 0, "the full disk refused entries");
    let (code, _) = s.json("GET", "/healthz", None, Value::Null);
    assert_eq!(
        code, 503,
        "an instance that cannot audit is out of rotation"
    );
    let (_, sessions) = s.admin(
        "GET",
        &format!("/admin/sessions?license={license}"),
        Value::Null,
    );
    assert_eq!(
        sessions.as_array().unwrap().len(),
        granted,
        "only audited seats are held"
    );

    // Space again: every acknowledged acquire has its entry.
    std::fs::remove_file(filler).unwrap();
    let (code, _) = s.json("GET", "/healthz", None, Value::Null);
    assert_eq!(code, 200);
    let audited = entries(&s, &license, "acquire").len();
    println!("acquires: {granted} acknowledged, {unavailable} answered 503, {audited} audited");
    assert_eq!(
        audited, granted,
        "acknowledged acquires without an audit row: 0"
    );
}

#[test]
#[cfg_attr(lic4es_no_postgres, ignore = "needs PostgreSQL")]
fn no_seat_is_granted_while_postgresql_is_down() {
    let mut pg = pg::PgProc::start();
    let s = Server::with_config(&format!("database-url = {:?}", pg.url()));
    let (license, key) = s.license("team", json!({"seats": 1000}));
    let (code, _) = s.acquire(&key, acquire_body("warm"));
    assert_eq!(code, 200, "the API key's lookup is cached");
    pg.kill();
    // Within the key cache's half second the seat store alone could grant: the audit
    // entry decides.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        let (code, v) = s.acquire(&key, acquire_body(&format!("hw-{n}")));
        assert_eq!(code, 503, "{v}");
        n += 1;
    }
    let (code, _) = s.json("GET", "/healthz", None, Value::Null);
    assert_eq!(code, 503);
    let online = s.state.seats.sessions(Some(&license));
    let online = common::block_on(online).unwrap();
    assert_eq!(
        online.len(),
        1,
        "{n} acquires while PostgreSQL was down granted nothing"
    );
}
