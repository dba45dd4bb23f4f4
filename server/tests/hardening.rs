//! What a customer can send to the port it reaches: a guessed admin token, a scrape of
//! everyone's metrics, paths and ids that are not what they seem, a forged client
//! address. And what the operator sees of it: the log they asked for.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::process::{request, ServerProcess};
use common::*;
use lic4es::protocol::paths;
use serde_json::{json, Value};

/// One HTTP/1.1 exchange with a request head of the test's making (a request line,
/// and header lines after it): (status, head, body).
fn raw(port: u16, head: &str, body: &str) -> (u16, String, String) {
    let (line, extra) = head.split_once("\r\n").unwrap_or((head, ""));
    let extra: Vec<(&str, &str)> = extra
        .split("\r\n")
        .filter_map(|h| h.split_once(": "))
        .chain([("Content-Type", "application/json")])
        .collect();
    let a = common::http::exchange(port, line, &extra, body.as_bytes(), Duration::from_secs(10))
        .expect("an answer");
    let body = a.text();
    (a.status, a.head, body)
}

fn server_toml(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let lines = format!("listen = \"127.0.0.1:0\"\nadmin-token = {ADMIN:?}\n{extra}");
    common::process::server_toml(dir, &lines)
}

#[test]
fn a_short_admin_token_keeps_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key) in [
        ("admin-token = \"a\"", "admin-token"),
        // Long enough, and guessed at once: one character, or one pattern, repeated.
        (
            "admin-token = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
            "admin-token must have at least 8 different characters",
        ),
        (
            "admin-token = \"0123456789abcdef0123456789abcdef\"",
            "admin-token is one pattern repeated",
        ),
        ("metrics-token = \"0123456789\"", "metrics-token"),
        ("trusted-proxies = [\"10.0.0.0/33\"]", "trusted-proxies"),
        ("metrics-listen = \"everywhere\"", "metrics-listen"),
        ("log-level = \"chatty\"", "log-level"),
        ("body-timeout-secs = 0", "body-timeout-secs"),
        ("log-format = \"xml\"", "log-format"),
        ("database-pool-size = 0", "database-pool-size"),
    ] {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, format!("listen = \"127.0.0.1:0\"\n{extra}\n")).unwrap();
        let err = common::process::refused_to_serve(&cfg);
        assert!(err.contains(key), "{extra}: {err}");
    }
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "admin-token = \"a\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 characters"));
}

#[test]
fn wrong_admin_tokens_are_throttled_per_client_address() {
    let s = Server::start();
    let started = Instant::now();
    let (mut wrong, mut throttled) = (0, 0);
    let mut retry_after = None;
    while started.elapsed() < Duration::from_secs(2) {
        let (status, head, _) = raw(
            s.port,
            "GET /admin/sessions HTTP/1.1\r\nAuthorization: Bearer guess-0123456789abcdef-0123456789",
            "",
        );
        match status {
            401 => wrong += 1,
            429 => {
                throttled += 1;
                retry_after = head
                    .lines()
                    .find_map(|l| l.strip_prefix("retry-after: ").map(str::to_string));
            }
            other => panic!("{other}"),
        }
    }
    let rate = wrong as f64 / started.elapsed().as_secs_f64();
    println!(
        "wrong admin tokens: {wrong} checked, {throttled} refused unchecked in {:?} \
         ({rate:.1} checked/s; at most 10 a minute per address)",
        started.elapsed()
    );
    assert_eq!(wrong, 10, "ten guesses a minute, then none");
    assert!(throttled > 0);
    let wait: i64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    // While refused, even the right token waits: nothing is compared.
    let (code, v) = s.admin("GET", "/admin/sessions", Value::Null);
    refused(code, &v, 429, "too_many_attempts");
    // A minute on, the window is over.
    s.advance(61);
    assert_eq!(s.admin("GET", "/admin/sessions", Value::Null).0, 200);
}

/// Acquires a seat with `headers` (`X-Forwarded-For` lines); the source the audit trail
/// kept for it.
fn source_of_acquire(s: &Server, license: &str, key: &str, headers: &str) -> String {
    let body = json!({"hardware_id": "hw", "instance_id": "i", "version": "1", "nonce": NONCE})
        .to_string();
    let (code, _, _) = raw(
        s.port,
        &format!(
            "POST {} HTTP/1.1\r\nAuthorization: Bearer {key}\r\n{headers}",
            paths::ACQUIRE
        ),
        &body,
    );
    assert_eq!(code, 200);
    let (_, trail) = s.admin(
        "GET",
        &format!("/admin/audit?license={license}"),
        Value::Null,
    );
    trail[0]["source"].as_str().unwrap().to_string()
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let s = Server::with_config("trusted-proxies = [\"127.0.0.0/8\"]");
    let (license, key) = s.license("pro", json!({"seats": 5}));
    assert_eq!(
        source_of_acquire(
            &s,
            &license,
            &key,
            "X-Forwarded-For: 198.51.100.9, 203.0.113.7, 127.0.0.1"
        ),
        "203.0.113.7",
        "the rightmost hop that is not a proxy"
    );
    // Throttling follows the client too: one forwarded client locked out, another not.
    let guess = |who: &str| {
        raw(
            s.port,
            &format!(
                "GET /admin/seats HTTP/1.1\r\nAuthorization: Bearer nope-0123456789abcdef\r\n\
                 X-Forwarded-For: {who}"
            ),
            "",
        )
        .0
    };
    for _ in 0..10 {
        assert_eq!(guess("192.0.2.1"), 401);
    }
    assert_eq!(guess("192.0.2.1"), 429);
    assert_eq!(guess("192.0.2.2"), 401);

    // Attack: a client behind the proxy sends an X-Forwarded-For line of its own; the
    // proxy adds the address it saw on a second line. Every line is one list, read from
    // the right: the client cannot choose the address it is audited under, nor lock
    // another address out of the admin API.
    let two_lines = |victim: &str, seen: &str| {
        raw(
            s.port,
            &format!(
                "GET /admin/seats HTTP/1.1\r\nAuthorization: Bearer nope-0123456789abcdef\r\n\
                 X-Forwarded-For: {victim}\r\nX-Forwarded-For: {seen}"
            ),
            "",
        )
        .0
    };
    for _ in 0..10 {
        assert_eq!(two_lines("192.0.2.50", "198.51.100.66"), 401);
    }
    assert_eq!(two_lines("192.0.2.50", "198.51.100.66"), 429);
    assert_eq!(
        guess("192.0.2.50"),
        401,
        "the named victim is not throttled"
    );
    assert_eq!(
        source_of_acquire(
            &s,
            &license,
            &key,
            "X-Forwarded-For: 192.0.2.77\r\nX-Forwarded-For: 198.51.100.8"
        ),
        "198.51.100.8",
        "the proxy's line decides"
    );

    // Without trusted proxies the header is the client's word, and ignored.
    let s = Server::start();
    let (license, key) = s.license("pro", json!({"seats": 5}));
    let source = source_of_acquire(&s, &license, &key, "X-Forwarded-For: 203.0.113.7");
    assert!(source.starts_with("127.0.0.1:"), "{source}");
}

#[test]
fn metrics_are_not_on_the_customers_port_without_the_metrics_token() {
    let s = Server::start();
    let (license, _) = s.license("pro", json!({"id": "org-secret-customer"}));
    assert_eq!(license, "org-secret-customer");
    let (code, _, body) = raw(s.port, "GET /metrics HTTP/1.1", "");
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains("org-secret-customer"));
    let (code, _, _) = raw(
        s.port,
        "GET /metrics HTTP/1.1\r\nAuthorization: Bearer wrong-wrong-wrong-wrong-wrong-wrong",
        "",
    );
    assert_eq!(code, 401);
    assert!(s.metrics().contains("lic4es_sessions"), "with the token");

    // Served on its own (loopback) listener by default; not at all on the main one.
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_toml(dir.path(), "metrics-listen = \"127.0.0.1:0\"\n");
    let p = ServerProcess::start(&cfg);
    let (code, v) = request(p.port, "GET", "/metrics", "x", &Value::Null);
    refused(code, &v, 404, "not_found");
    let dir2 = tempfile::tempdir().unwrap();
    let cfg = server_toml(dir2.path(), "metrics-listen = \"127.0.0.1:0\"\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = KillOnDrop(out);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out.0.stderr.take().unwrap()));
    let metrics_port: u16 = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            let addr = rest.split('/').next().unwrap();
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    let mut c = TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("lic4es_sessions{state=\"online\"}"), "{text}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn paths_and_ids_that_are_not_what_they_seem_get_json_errors() {
    let s = Server::start();
    for path in [
        "/admin/licenses/%ff",
        "/admin/licenses/%C0%AF",
        "/admin/audit?limit=%ff",
    ] {
        let (code, head, body) = raw(
            s.port,
            &format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {ADMIN}"),
            "",
        );
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            head.contains("content-type: application/json"),
            "{path}: {head}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"].is_string() && v["message"].is_string(),
            "{path}: {v}"
        );
    }
    let (_, key) = s.license("pro", json!({"seats": 5}));
    for hw in [
        "desk\u{202E}kcabtsap",
        "zero\u{200B}width",
        "bom\u{FEFF}",
        "tag\u{E0041}",
    ] {
        let (code, v) = s.acquire(
            &key,
            json!({"hardware_id": hw, "instance_id": "i", "version": "1", "nonce": NONCE}),
        );
        assert_eq!(code, 400, "{hw:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains("format characters"));
    }
    let (code, v) = s.release(&key, json!({"session_id": "ses-\u{202E}1"}));
    assert_eq!(code, 400, "{v}");
    // A session id is refused blank or over 256 characters, by every seat call.
    let long = "s".repeat(257);
    for id in ["", "  ", long.as_str()] {
        let (code, v) = s.heartbeat(&key, json!({"session_id": id, "nonce": NONCE}));
        assert_eq!(code, 400, "{id:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains("session_id"), "{v}");
        let (code, v) = s.release(&key, json!({"session_id": id}));
        assert_eq!(code, 400, "{id:?}: {v}");
    }
}

#[test]
fn the_access_log_is_off_unless_asked_for_and_the_log_level_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_toml(dir.path(), "metrics-listen = \"none\"\n");
    let quiet = ServerProcess::start(&cfg);
    for _ in 0..20 {
        let (code, _) = request(quiet.port, "GET", "/healthz", "x", &Value::Null);
        assert_eq!(code, 200);
    }
    std::thread::sleep(Duration::from_millis(200));
    let lines: Vec<String> = quiet.lines.try_iter().collect();
    assert!(lines.iter().all(|l| !l.contains("/healthz")), "{lines:?}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = server_toml(dir.path(), "metrics-listen = \"none\"\naccess-log = true\n");
    let loud = ServerProcess::start(&cfg);
    request(loud.port, "GET", "/healthz", "x", &Value::Null);
    loud.expect("GET /healthz 200");

    // At `error`, the WARN of a flagged license is not written.
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_toml(
        dir.path(),
        "metrics-listen = \"none\"\nlog-level = \"error\"\n",
    );
    let p = ServerProcess::start(&cfg);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(&cfg)
        .args([
            "api-key", "create", "--sub", "org-q", "--tier", "pro", "--days", "30", "--seats", "1",
        ])
        .output()
        .unwrap();
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let now = wall_now();
    for i in 0..7 {
        let body = json!({"hardware_id": format!("h{i}"), "instance_id": "i", "version": "1",
                          "nonce": NONCE, "offline_since": lic4es::clock::rfc3339(now - 4 * 86_400)});
        let (code, v) = request(p.port, "POST", paths::ACQUIRE, &key, &body);
        assert_eq!(code, 200, "{v}");
        let (code, _) = request(
            p.port,
            "DELETE",
            paths::RELEASE,
            &key,
            &json!({"session_id": v["session_id"]}),
        );
        assert_eq!(code, 204);
    }
    let (code, v) = request(p.port, "GET", "/admin/abuse", ADMIN, &Value::Null);
    assert_eq!((code, v["flagged"].as_i64()), (200, Some(1)), "{v}");
    std::thread::sleep(Duration::from_millis(200));
    let lines: Vec<String> = p.lines.try_iter().collect();
    assert!(lines.iter().all(|l| !l.contains("WARN")), "{lines:?}");
}

#[test]
fn log_format_json_writes_one_object_per_line_for_log_shippers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server_toml(
        dir.path(),
        "metrics-listen = \"none\"\naccess-log = true\nlog-format = \"json\"\n",
    );
    let p = ServerProcess::start(&cfg);
    request(p.port, "GET", "/healthz", "x", &Value::Null);
    let line = p.expect("GET /healthz 200").pop().unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["target"], "license_server::access", "{v}");
    assert_eq!(v["fields"]["message"], "GET /healthz 200", "{v}");
    assert!(v["timestamp"].is_string(), "{v}");
}

/// Attack on the record: an operator's change the audit trail cannot take is not made.
/// With a trigger refusing every audit entry, creating a license, changing its tier,
/// adding and revoking a key and revoking the license all fail and change nothing; without it, each change lands with its entry.
#[test]
fn no_admin_change_is_made_that_the_audit_trail_does_not_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("licenses.sqlite3");
    let s = Server::with_config(&format!("database = {:?}", db.to_str().unwrap()));
    let (license, key) = s.license("pro", json!({"seats": "unlimited"}));
    let refuse = |on: bool| {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        if on {
            c.execute_batch(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit \
                 BEGIN SELECT RAISE(ABORT, 'the audit trail refuses'); END;",
            )
            .unwrap();
        } else {
            c.execute_batch("DROP TRIGGER refuse_audit;").unwrap();
        }
    };
    refuse(true);
    let attempts = [
        (
            "POST",
            "/admin/licenses".to_string(),
            json!({"id": "org-new", "tier": "pro", "days": 30}),
        ),
        (
            "POST",
            format!("/admin/licenses/{license}/tier"),
            json!({"tier": "enterprise"}),
        ),
        (
            "PATCH",
            format!("/admin/licenses/{license}"),
            json!({"seats": 9}),
        ),
        (
            "POST",
            format!("/admin/licenses/{license}/api-keys"),
            Value::Null,
        ),
        (
            "POST",
            "/admin/api-keys/revoke".to_string(),
            json!({"api_key": key}),
        ),
        (
            "POST",
            format!("/admin/licenses/{license}/revoke"),
            Value::Null,
        ),
    ];
    for (method, path, body) in &attempts {
        // Refused by the store (a full disk answers 503; this trigger, a constraint, 409):
        // never acknowledged.
        let (code, v) = s.admin(method, path, body.clone());
        assert!(code == 503 || code == 409, "{method} {path}: {code} {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("audit trail refuses"),
            "{v}"
        );
    }
    let (code, _) = s.admin("GET", "/admin/licenses/org-new", Value::Null);
    assert_eq!(code, 404, "not created");
    let (_, v) = s.admin("GET", &format!("/admin/licenses/{license}"), Value::Null);
    assert_eq!(v["tier"], "pro", "{v}");
    assert_eq!(v["revoked"], false, "{v}");
    assert_eq!(s.fetch(&key).0, 200, "the key was not revoked");

    refuse(false);
    for (method, path, body) in &attempts {
        let (code, v) = s.admin(method, path, body.clone());
        assert!((200..300).contains(&code), "{method} {path}: {code} {v}");
    }
    let (_, trail) = s.admin(
        "GET",
        &format!("/admin/audit?license={license}"),
        Value::Null,
    );
    let kinds: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for k in [
        "license_tier",
        "license_update",
        "api_key_create",
        "api_key_revoke",
        "license_revoke",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
}

#[test]
fn an_address_taken_keeps_the_server_from_starting_and_says_which_setting() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let lines = format!("listen = \"{addr}\"\nmetrics-listen = \"none\"\n");
    let cfg = common::process::server_toml(dir.path(), &lines);
    let err = common::process::refused_to_serve(&cfg);
    assert!(err.contains(&format!("cannot listen on {addr}:")), "{err}");
    let lines = format!("listen = \"127.0.0.1:0\"\nmetrics-listen = \"{addr}\"\n");
    let cfg = common::process::server_toml(dir.path(), &lines);
    let err = common::process::refused_to_serve(&cfg);
    assert!(
        err.contains(&format!("cannot listen on {addr} (metrics-listen):")),
        "{err}"
    );
}
