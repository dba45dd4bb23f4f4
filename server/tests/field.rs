//! Corporate networks (sections 3 and 6): a real engine reaches a real license-server over
//! HTTPS through an authenticating CONNECT proxy, with the server's certificate issued by
//! a private CA the test makes; without `ca-file`, the proxy or its credentials it cannot.
//! And `api-url` as a list: a dead first backend fails over to the next.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{api_key, cli, ServerProcess};
use common::proxy::{ConnectProxy, InspectingProxy};
use common::tls::TestCa;
use lic4es::config::Config;
use lic4es::engine::{Engine, EngineOptions};
use lic4es::pins::Pins;
use lic4es::Tier;
use serde_json::{json, Value};

const CREDS: (&str, &str) = ("lic4es", "pr0xy-s3cret");

/// A license-server on HTTPS with a certificate for `license.test` from `ca`, and an
/// API key of an Enterprise license (served by token: not counted in seats).
struct Backend {
    server: ServerProcess,
    api_key: String,
    jwks: Value,
}

impl Backend {
    fn start(ca: &TestCa, name: &str) -> Backend {
        let (cert, key) = ca.issue(name, &["license.test", "127.0.0.1"]);
        let config = ca.dir().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata-dir = {:?}\nmetrics-listen = \"none\"\n\
                 tls-cert = {cert:?}\ntls-key = {key:?}\n",
                ca.dir().join(format!("{name}-data"))
            ),
        )
        .unwrap();
        let api_key = api_key(&config, "enterprise", "org-field", 30, &[]);
        let jwks: Value = serde_json::from_str(&cli(&config, &["jwks"])).unwrap();
        let server = ServerProcess::start(&config);
        Backend {
            server,
            api_key,
            jwks,
        }
    }
}

/// Records what an engine logs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    fn all(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// An engine on `extra` over a fresh cache (kept in the returned directory), started as
/// a host starts it, and what it logs.
fn start_engine(b: &Backend, extra: Value) -> (Engine, Logs, tempfile::TempDir) {
    start_built(b, extra, &Pins::default())
}

/// [`start_engine`] as a library built with `pins` (a vendor's build) would start it.
fn start_built(b: &Backend, extra: Value, pins: &Pins) -> (Engine, Logs, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = json!({
        "api-key": b.api_key, "public-keys": b.jwks, "refresh.enabled": false,
        "connect-timeout": "3s", "read-timeout": "3s",
        "cache-dir": dir.path().join("cache").to_str().unwrap(),
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let config = Config::from_json_pinned(&cfg.to_string(), &|_| None, pins).unwrap();
    let logs = Logs::default();
    let sink = logs.clone();
    let opts = EngineOptions {
        log: Arc::new(move |level, msg| sink.0.lock().unwrap().push(format!("{level}: {msg}"))),
        ..EngineOptions::default()
    };
    (Engine::start(config, opts).unwrap(), logs, dir)
}

/// An engine on `extra` over a fresh cache; its tier, its status, what it logged and how
/// long `init` took.
fn engine(b: &Backend, extra: Value) -> (Tier, Value, String, Duration) {
    engine_built(b, extra, &Pins::default())
}

/// [`engine`] as a library built with `pins` would run.
fn engine_built(b: &Backend, extra: Value, pins: &Pins) -> (Tier, Value, String, Duration) {
    let start = Instant::now();
    let (e, logs, _dir) = start_built(b, extra, pins);
    let took = start.elapsed();
    let out = (
        e.tier(),
        serde_json::from_str(&e.status_json()).unwrap(),
        logs.all(),
        took,
    );
    e.shutdown().unwrap();
    out
}

fn ca_file(ca: &TestCa) -> Value {
    json!(ca.ca_file.to_str().unwrap())
}

#[test]
fn an_engine_behind_an_authenticating_proxy_reaches_a_backend_of_a_private_ca() {
    let ca = TestCa::new("Corp Root CA");
    let b = Backend::start(&ca, "backend");
    let proxy = ConnectProxy::start(Some(CREDS));
    // `license.test` resolves nowhere but at the proxy: reaching it proves the proxy.
    let url = format!("https://license.test:{}", b.server.port);

    let (tier, status, logs, _) = engine(
        &b,
        json!({"api-url": url, "proxy": proxy.url(Some(CREDS)), "ca-file": ca_file(&ca)}),
    );
    assert_eq!(tier, Tier::Enterprise, "{status}\n{logs}");
    let target = format!("CONNECT license.test:{} -> 200", b.server.port);
    assert!(proxy.seen().contains(&target), "{:?}", proxy.seen());
    assert!(
        !logs.contains(CREDS.1),
        "the proxy password is never logged: {logs}"
    );

    // Without ca-file the private CA is not trusted: refused in the handshake.
    let (tier, status, logs, _) =
        engine(&b, json!({"api-url": url, "proxy": proxy.url(Some(CREDS))}));
    assert_eq!(tier, Tier::Community, "{status}");
    assert!(
        logs.contains("certificate") || logs.contains("UnknownIssuer"),
        "{logs}"
    );

    // Wrong credentials: the proxy says 407; the password is not echoed.
    let before = proxy.seen().len();
    let (tier, status, logs, _) = engine(
        &b,
        json!({"api-url": url, "proxy": proxy.url(Some(("lic4es", "wrong-pass"))),
               "ca-file": ca_file(&ca)}),
    );
    assert_eq!(tier, Tier::Community, "{status}");
    assert!(proxy.seen()[before..].iter().any(|l| l.ends_with("-> 407")));
    assert!(!logs.contains("wrong-pass") && !status.to_string().contains("wrong-pass"));

    // No proxy: the name does not resolve from here.
    let (tier, _, _, _) = engine(
        &b,
        json!({"api-url": url, "proxy": "none", "ca-file": ca_file(&ca)}),
    );
    assert_eq!(tier, Tier::Community);

    // no-proxy naming the backend's host: direct, so unreachable here too.
    let before = proxy.seen().len();
    let (tier, _, _, _) = engine(
        &b,
        json!({"api-url": url, "proxy": proxy.url(Some(CREDS)), "no-proxy": ".test",
               "ca-file": ca_file(&ca)}),
    );
    assert_eq!(tier, Tier::Community);
    assert_eq!(proxy.seen().len(), before, "no-proxy hosts skip the proxy");
}

/// Attack 3: a man in the middle by the customer's own CA. A TLS-inspecting proxy of the
/// customer's, with a CA the customer's hosts trust, reads and could answer everything an
/// ordinary build sends (the API key, every token) — which is what makes replays and
/// relays work against the vendor's real server. A vendor's build that pins its server
/// and its CA (`LIC4ES_API_URL`, `LIC4ES_API_CA_FILE`) refuses the proxy's certificate in
/// the handshake whatever the config and environment say, and still works through a
/// proxy that tunnels.
#[test]
fn a_pinned_build_refuses_a_tls_inspecting_proxy_of_the_customer_s_ca() {
    let vendor = TestCa::new("Vendor CA");
    let b = Backend::start(&vendor, "pinned");
    let customer = TestCa::new("Customer Inspection CA");
    let mitm = InspectingProxy::start(&customer, "license.test", &vendor.ca_file);
    let url = format!("https://license.test:{}", b.server.port);

    // An ordinary build, told to trust the customer's CA: the proxy reads the API key.
    let (tier, status, _, _) = engine(
        &b,
        json!({"api-url": url, "proxy": mitm.url(), "ca-file": ca_file(&customer)}),
    );
    assert_eq!(tier, Tier::Enterprise, "{status}");
    assert!(
        mitm.read().iter().any(|h| h.contains(&b.api_key)),
        "read in clear: {:?}",
        mitm.read()
    );

    // The vendor's build: its server and CA pinned. The customer's api-url and ca-file
    // are ignored (WARN), the proxy's certificate is refused, nothing is read.
    let vendor_pem = std::fs::read_to_string(&vendor.ca_file).unwrap();
    let pins = Pins::parse(&url, &vendor_pem).unwrap();
    let before = mitm.read().len();
    let (tier, status, logs, _) = engine_built(
        &b,
        json!({"api-url": "https://license.elsewhere.example", "proxy": mitm.url(),
               "ca-file": ca_file(&customer)}),
        &pins,
    );
    assert_eq!(tier, Tier::Community, "{status}");
    assert_eq!(mitm.read().len(), before, "nothing read in clear");
    assert!(logs.contains("api-url is ignored"), "{logs}");
    assert!(logs.contains("ca-file is ignored"), "{logs}");
    assert_eq!(
        status["build"],
        json!({"pinned_keys": false, "pinned_api_url": true, "pinned_ca": true})
    );

    // The honest path: the same build through a proxy that tunnels (CONNECT).
    let tunnel = ConnectProxy::start(None);
    let (tier, status, _, _) = engine_built(&b, json!({"proxy": tunnel.url(None)}), &pins);
    assert_eq!(tier, Tier::Enterprise, "{status}");
    // An ordinary build's status says nothing is pinned.
    let (_, status, _, _) = engine(
        &b,
        json!({"api-url": url, "proxy": tunnel.url(None),
        "ca-file": ca_file(&vendor)}),
    );
    assert_eq!(status["build"]["pinned_ca"], false);
}

/// Not a timing goal: the figures for the notes, printed (`--nocapture`).
#[test]
fn init_through_the_proxy_measured_against_direct() {
    let ca = TestCa::new("Corp Root CA");
    let b = Backend::start(&ca, "timed");
    let proxy = ConnectProxy::start(Some(CREDS));
    let via = json!({"api-url": format!("https://license.test:{}", b.server.port),
                     "proxy": proxy.url(Some(CREDS)), "ca-file": ca_file(&ca)});
    let direct = json!({"api-url": format!("https://127.0.0.1:{}", b.server.port),
                        "ca-file": ca_file(&ca)});
    let runs = 10;
    let median = |extra: &Value| {
        let mut took: Vec<Duration> = (0..runs)
            .map(|_| {
                let (tier, status, _, t) = engine(&b, extra.clone());
                assert_eq!(tier, Tier::Enterprise, "{status}");
                t
            })
            .collect();
        took.sort();
        took[runs / 2]
    };
    let (d, p) = (median(&direct), median(&via));
    eprintln!(
        "lic_init with a token fetch over HTTPS, median of {runs}: direct {:.1} ms, through \
         the CONNECT proxy {:.1} ms ({:.2}x)",
        d.as_secs_f64() * 1e3,
        p.as_secs_f64() * 1e3,
        p.as_secs_f64() / d.as_secs_f64()
    );
}

#[test]
fn a_dead_first_backend_fails_over_to_the_next_in_the_list() {
    let ca = TestCa::new("Corp Root CA");
    let b = Backend::start(&ca, "second");
    let dead = common::free_port();
    let list = json!([
        format!("https://127.0.0.1:{dead}"),
        format!("https://127.0.0.1:{}", b.server.port)
    ]);
    let (tier, status, logs, _) = engine(&b, json!({"api-url": list, "ca-file": ca_file(&ca)}));
    assert_eq!(tier, Tier::Enterprise, "{status}\n{logs}");
    // All of them down: a failure, the engine stays Community and says why.
    let list = json!([
        format!("https://127.0.0.1:{dead}"),
        format!("https://127.0.0.1:{}", common::free_port())
    ]);
    let (tier, _, logs, _) = engine(&b, json!({"api-url": list, "ca-file": ca_file(&ca)}));
    assert_eq!(tier, Tier::Community);
    assert!(logs.contains("cannot connect"), "{logs}");
}

/// A backend that answers every request 503 and counts them.
fn failing_backend() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = hits.clone();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = c.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, hits)
}

#[test]
fn the_next_call_starts_from_the_backend_that_last_answered() {
    let ca = TestCa::new("Corp Root CA");
    let b = Backend::start(&ca, "sticky");
    let (down, hits) = failing_backend();
    let list = json!([
        format!("http://127.0.0.1:{down}"),
        format!("https://127.0.0.1:{}", b.server.port)
    ]);
    let (e, logs, _dir) = start_engine(&b, json!({"api-url": list, "ca-file": ca_file(&ca)}));
    assert_eq!(e.tier(), Tier::Enterprise, "{}", logs.all());
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a 503 moves on"
    );
    e.refresh_now().unwrap();
    e.refresh_now().unwrap();
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "later calls start from the backend that answered"
    );
    e.shutdown().unwrap();
}
