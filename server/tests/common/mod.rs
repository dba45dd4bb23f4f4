//! The reference server on loopback for tests: a real listener, a temporary data dir, and
//! a clock the test moves.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use lic4es::clock::ManualClock;

// What the engine's tests use too; not every test binary uses all of it (as with dead
// code, above).
#[allow(unused_imports)]
pub use lic4es_test_support::{
    as_from_a_shell, free_port, have_tool, on_real_clock, run, wait_for, wall_now, NOW,
};

pub mod engine;
pub mod http;
pub mod pg;
pub mod process;
pub mod proxy;
pub mod redis;
pub mod relay;
pub mod tls;
pub mod webdriver;
use license_server::{AppState, ServerConfig};
use serde_json::{json, Value};

pub const NONCE: &str = "0123456789abcdef0123456789abcdef";

/// The admin token of every test server (at least 32 characters, or it would not start).
pub const ADMIN: &str = "admin-secret-0123456789abcdef-tests";
/// The token that opens `/metrics` on a test server's main listener.
pub const METRICS: &str = "metrics-secret-0123456789abcdef-tests";

pub struct Server {
    pub port: u16,
    pub state: Arc<AppState>,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        Self::with_config("")
    }

    /// A server on a clock that starts at the real time rather than at [`NOW`]: for tests
    /// that host a real engine, which checks every token against the system clock. The
    /// clock still moves only when the test moves it.
    pub fn on_wall_time() -> Server {
        Self::with_config_at("", wall_now())
    }

    /// A server whose config is `extra` (TOML) plus a data dir, an admin token and a
    /// free port.
    pub fn with_config(extra: &str) -> Server {
        Self::with_config_at(extra, NOW)
    }

    /// [`Server::with_config`] on a clock that starts at `start` (seconds).
    pub fn with_config_at(extra: &str, start: i64) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config: ServerConfig = toml::from_str(&format!(
            "data-dir = {:?}\nadmin-token = {ADMIN:?}\nmetrics-token = {METRICS:?}\n\
             listen = \"127.0.0.1:0\"\n{extra}",
            dir.path().to_str().unwrap()
        ))
        .unwrap();
        let clock = Arc::new(ManualClock::at_secs(start));
        let state = license_server::open_with_clock(config, clock.clone()).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(l.local_addr().unwrap().port()).unwrap();
                license_server::serve(l, st, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        Server {
            port: port_rx.recv().unwrap(),
            state,
            clock,
            _dir: dir,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Moves the server's clock.
    pub fn advance(&self, secs: i64) {
        self.clock.advance_millis(secs * 1000);
    }

    /// One HTTP/1.1 exchange: (status, body).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let a = http::exchange(
            self.port,
            &format!("{method} {path} HTTP/1.1"),
            &headers,
            body,
            Duration::from_secs(10),
        )
        .expect("an answer");
        (a.status, a.body)
    }

    pub fn json(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (status, b) = self.call(method, path, bearer, &bytes);
        (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// A token fetch with `key`, as the engine sends it.
    pub fn fetch(&self, key: &str) -> (u16, Value) {
        self.json(
            "POST",
            "/api/v1/licenses/token",
            Some(key),
            fetch_body(NONCE),
        )
    }

    /// A seat acquire with `key`.
    pub fn acquire(&self, key: &str, body: Value) -> (u16, Value) {
        self.json("POST", lic4es::protocol::paths::ACQUIRE, Some(key), body)
    }

    /// A reconnect with `key`.
    pub fn reconnect(&self, key: &str, body: Value) -> (u16, Value) {
        self.json("POST", lic4es::protocol::paths::RECONNECT, Some(key), body)
    }

    /// A heartbeat with `key`.
    pub fn heartbeat(&self, key: &str, body: Value) -> (u16, Value) {
        self.json("PUT", lic4es::protocol::paths::HEARTBEAT, Some(key), body)
    }

    /// A seat release with `key`.
    pub fn release(&self, key: &str, body: Value) -> (u16, Value) {
        self.json("DELETE", lic4es::protocol::paths::RELEASE, Some(key), body)
    }

    pub fn admin(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.json(method, path, Some(ADMIN), body)
    }

    /// An admin listing (`sessions`, `audit`) of `license`: its first page.
    pub fn listing(&self, what: &str, license: &str) -> Vec<Value> {
        let path = format!("/admin/{what}?license={license}");
        let (status, v) = self.admin("GET", &path, Value::Null);
        assert_eq!(status, 200, "{path}: {v}");
        v.as_array().expect("a list").clone()
    }

    pub fn jwks(&self) -> lic4es::token::KeySet {
        let (_, v) = self.json("GET", "/.well-known/jwks.json", None, Value::Null);
        lic4es::token::KeySet::from_json_value(&v).unwrap()
    }

    pub fn metrics(&self) -> String {
        let (status, body) = self.call("GET", "/metrics", Some(METRICS), b"");
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    }

    /// Creates a license through the admin API (`extra` adds fields) and returns
    /// (license id, API key).
    pub fn license(&self, tier: &str, extra: Value) -> (String, String) {
        let mut body = json!({"tier": tier, "org_name": "Acme", "days": 30});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, v) = self.admin("POST", "/admin/licenses", body);
        assert_eq!(status, 201, "{v}");
        (
            v["license_id"].as_str().unwrap().to_string(),
            v["api_key"].as_str().unwrap().to_string(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
    }
}

/// Runs `f` to completion on a runtime of its own: a test's call into the server's async
/// parts (a background job's one run, a seat store's operation).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The `field` strings of a JSON list's items (an audit page's types, a session list's ids).
pub fn strings<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    let items = list.as_array().expect("a JSON list");
    items.iter().filter_map(|x| x[field].as_str()).collect()
}

/// A license's own terms: `seats`, nothing else.
pub fn seats(seats: license_server::store::Seats) -> license_server::domain::Overrides {
    license_server::domain::Overrides {
        seats: Some(seats),
        ..Default::default()
    }
}

/// Asserts an answer is a refusal: `status`, with the JSON error code `error`.
pub fn refused(status: u16, body: &Value, want_status: u16, error: &str) {
    let got = (status, body["error"].as_str());
    assert_eq!(got, (want_status, Some(error)), "{body}");
}

pub fn fetch_body(nonce: &str) -> Value {
    json!({"instance_id": "i-1", "version": "1.0", "nonce": nonce, "uptime_hours": 1.5,
           "telemetry": {"queries_total": 10, "joins_total": 2, "mvs_active": 1, "clusters_connected": 1}})
}

/// A license of `tier` that the token endpoint serves (not counted in seats), and its
/// API key.
pub fn new_key(s: &Server, tier: &str) -> (String, String) {
    s.license(tier, json!({"seats": "unlimited"}))
}

/// The audit entry an operator's change commits with.
pub fn change_entry() -> license_server::store::AuditEvent {
    license_server::store::AuditEvent {
        kind: license_server::store::AuditKind::LicenseUpdate,
        license: "any".into(),
        source: Some("test".into()),
        ..Default::default()
    }
}

/// The status of this process's engine, through the C ABI.
pub fn engine_status() -> Value {
    use std::ffi::{c_char, CStr};
    let mut buf = vec![0 as c_char; 64 * 1024];
    assert_eq!(
        lic4es::ffi::lic_status_json(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()),
        lic4es::ffi::lic_result::LIC_OK
    );
    // SAFETY: lic_status_json wrote a NUL-terminated string into buf.
    serde_json::from_str(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap()).unwrap()
}
