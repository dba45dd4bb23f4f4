//! Engines in this process against a test server, on the server's own clock (so days
//! pass in milliseconds), each with its own cache dir and captured log lines.

use std::sync::{Arc, Mutex};

use lic4es::{Config, Engine, EngineOptions};
use serde_json::{json, Value};

use super::Server;

/// Log records of one engine.
#[derive(Clone, Default)]
pub struct Logs(pub Arc<Mutex<Vec<String>>>);

impl Logs {
    pub fn has(&self, text: &str) -> bool {
        self.0.lock().unwrap().iter().any(|m| m.contains(text))
    }

    pub fn dump(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// An engine against `s`, on the server's clock, with its own cache dir; `extra` adds
/// config keys (an `api-url` of a relay, say).
pub fn engine(s: &Server, cache: &std::path::Path, key: &str, extra: Value) -> (Engine, Logs) {
    let mut cfg = json!({
        "api-key": key,
        "api-url": format!("http://127.0.0.1:{}", s.port),
        "public-keys": s.state.key.public_jwks(),
        "cache-dir": cache.to_str().unwrap(),
        "connect-timeout": "2s",
        "read-timeout": "2s",
        "log-level": "debug",
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let cfg = Config::from_json_with_env(&cfg.to_string(), &|_| None).unwrap();
    let logs = Logs::default();
    let sink = logs.0.clone();
    let e = Engine::start(
        cfg,
        EngineOptions {
            clock: s.clock.clone(),
            log: Arc::new(move |_, m| sink.lock().unwrap().push(m.to_string())),
            usage: Box::leak(Box::new(lic4es::telemetry::Usage::new())),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    (e, logs)
}

/// The engine's status document.
pub fn status(e: &Engine) -> Value {
    serde_json::from_str(&e.status_json()).unwrap()
}
