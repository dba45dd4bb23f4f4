//! End to end: the engine, through its C ABI, against the real `license-server` binary,
//! including a rolling update at the seat limit.
//! Engines in other processes are this test binary run again as a host (`seat_host`).

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{cli, lic4es_cli, server_toml, vendor, ServerProcess, Vendor};
use common::{engine_status, free_port, METRICS};
use lic4es::ffi::*;
use serde_json::{json, Value};

static LOGS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());
/// The C ABI holds one engine per process: the tests here take turns.
static ENGINE: Mutex<()> = Mutex::new(());

fn one_engine() -> std::sync::MutexGuard<'static, ()> {
    ENGINE.lock().unwrap_or_else(|p| p.into_inner())
}

unsafe extern "C" fn capture(_: *mut c_void, level: lic_log_level, msg: *const c_char) {
    let msg = CStr::from_ptr(msg).to_string_lossy().into_owned();
    LOGS.lock().unwrap().push((level as u32, msg));
}

fn logged(level: lic_log_level, text: &str) -> bool {
    LOGS.lock()
        .unwrap()
        .iter()
        .any(|(l, m)| *l == level as u32 && m.contains(text))
}

/// A server config on a free port in `dir` with a signing key and an API key of a Pro
/// license `sub` counted in `seats`: (config, port, public keys, API key).
fn seat_server(dir: &Path, sub: &str, seats: u32) -> (PathBuf, u16, Value, String) {
    let Vendor { port, config, jwks } = vendor(dir);
    let seats = seats.to_string();
    let key = cli(
        &config,
        &[
            "api-key", "create", "--tier", "pro", "--sub", sub, "--days", "30", "--seats", &seats,
        ],
    );
    (config, port, jwks, key)
}

/// Refreshes until `done` (a change made with the CLI reaches a running server within its
/// half-second API key cache), for at most 5 s.
fn refresh_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() && Instant::now() < deadline {
        let _ = lic_refresh_now();
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(port: u16, path: &str) -> Option<String> {
    let auth = format!("Bearer {METRICS}");
    common::http::exchange(
        port,
        &format!("GET {path} HTTP/1.1"),
        &[("Authorization", auth.as_str())],
        b"",
        Duration::from_secs(5),
    )
    .map(|a| format!("{}\r\n\r\n{}", a.head, a.text()))
}

fn last_error() -> String {
    let mut buf = vec![0 as c_char; 4096];
    lic_last_error(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut());
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn engine_against_the_reference_server() {
    let _one = one_engine();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = server_toml(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\nmetrics-listen = \"none\"\n\
             metrics-token = \"{METRICS}\"\naccess-log = true\n"
        ),
    );
    let jwks: Value = serde_json::from_str(&cli(&config, &["keygen"])).unwrap();
    let key = cli(
        &config,
        &[
            "api-key",
            "create",
            "--tier",
            "pro",
            "--sub",
            "org-e2e",
            "--days",
            "30",
            // Served by token: this test is the API-key flow (seat_required is tested in
            // enforcement.rs).
            "--seats",
            "unlimited",
        ],
    );
    let mut child = ServerProcess::start(&config);

    let cache = dir.path().join("cache");
    let engine_config = CString::new(
        json!({
            "api-key": key,
            "api-url": format!("http://127.0.0.1:{port}"),
            "public-keys": jwks,
            "cache-dir": cache.to_str().unwrap(),
            "product-version": "e2e",
            "connect-timeout": "2s",
            "read-timeout": "5s",
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(
        lic_set_log_callback(Some(capture), std::ptr::null_mut()),
        lic_result::LIC_OK
    );

    // Fetch by API key, cache it.
    assert_eq!(lic_init(engine_config.as_ptr()), lic_result::LIC_OK);
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_PRO);
    assert_eq!(engine_status()["source"], "api_key");
    assert!(cache.join("license-cache.jwt").exists());

    // Upgrade on the server, picked up by a refresh.
    cli(
        &config,
        &[
            "license",
            "set-tier",
            "--sub",
            "org-e2e",
            "--tier",
            "enterprise",
        ],
    );
    // The CLI writes the database; a running instance sees it once its API key cache
    // (half a second) lets go.
    refresh_until(|| lic_current_tier() == lic_tier::LIC_TIER_ENTERPRISE);
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_ENTERPRISE);
    assert!(logged(
        lic_log_level::LIC_LOG_INFO,
        "License upgraded from Pro to Enterprise"
    ));

    // Server stopped: the refresh fails, the tier stays; a restarted host uses the cache.
    child.stop();
    assert_eq!(lic_refresh_now(), lic_result::LIC_ERR_REFRESH_FAILED);
    assert!(last_error().contains("cannot connect"), "{}", last_error());
    assert!(logged(
        lic_log_level::LIC_LOG_WARN,
        "License refresh failed"
    ));
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_ENTERPRISE);
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
    assert_eq!(lic_init(engine_config.as_ptr()), lic_result::LIC_OK);
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_ENTERPRISE);
    assert_eq!(engine_status()["source"], "cache");
    assert!(logged(
        lic_log_level::LIC_LOG_WARN,
        "Using cached license (API key fetch failed)"
    ));

    // Server back: the next refresh succeeds.
    child = ServerProcess::start(&config);
    assert_eq!(lic_refresh_now(), lic_result::LIC_OK, "{}", last_error());
    assert_eq!(engine_status()["source"], "api_key");
    assert_eq!(engine_status()["last_telemetry"]["version"], "e2e");

    // Revocation: Community at once, cache deleted.
    cli(&config, &["api-key", "revoke", &key]);
    refresh_until(|| lic_current_tier() == lic_tier::LIC_TIER_COMMUNITY);
    assert_eq!(lic_refresh_now(), lic_result::LIC_ERR_REFRESH_FAILED);
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_COMMUNITY);
    assert_eq!(engine_status()["status"], "Revoked");
    assert!(!cache.join("license-cache.jwt").exists());
    assert!(logged(lic_log_level::LIC_LOG_ERROR, "revoked"));
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);

    // A static token without refresh_url makes no traffic, even on a 50 ms schedule; one
    // with it is refreshed by the schedule itself.
    let api_requests = || -> u64 {
        get(port, "/metrics")
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("lic4es_http_requests_total{endpoint=\"/api/v1"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let plain = cli(
        &config,
        &[
            "mint",
            "--tier",
            "team",
            "--sub",
            "org-static",
            "--days",
            "10",
        ],
    );
    let static_config = |token: &str| {
        CString::new(
            json!({"key": token, "public-keys": jwks, "cache-dir": cache.to_str().unwrap(),
                   "api-url": format!("http://127.0.0.1:{port}"), "refresh.interval": "50ms"})
            .to_string(),
        )
        .unwrap()
    };
    let before = api_requests();
    assert_eq!(lic_init(static_config(&plain).as_ptr()), lic_result::LIC_OK);
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_TEAM);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lic_refresh_now(), lic_result::LIC_ERR_UNSUPPORTED);
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
    assert_eq!(
        api_requests(),
        before,
        "no request for a token without refresh_url"
    );

    // The license exists now: minting for it again names it alone.
    let with_url = cli(
        &config,
        &["mint", "--sub", "org-static", "--refresh-url", "default"],
    );
    cli(
        &config,
        &[
            "license",
            "set-tier",
            "--sub",
            "org-static",
            "--tier",
            "enterprise",
        ],
    );
    assert_eq!(
        lic_init(static_config(&with_url).as_ptr()),
        lic_result::LIC_OK
    );
    common::wait_for("the scheduled refresh's upgrade", 10, || {
        lic_current_tier() == lic_tier::LIC_TIER_ENTERPRISE
    });
    assert_eq!(engine_status()["source"], "static");
    assert!(api_requests() > before);
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
    child.stop();
}

/// An HTTP GET with the admin token, parsed as JSON.
fn admin_get(port: u16, path: &str) -> Value {
    common::http::json(port, "GET", path, Some(common::ADMIN), &Value::Null).1
}

/// Another process running the engine through the C ABI: this test binary, as
/// `seat_host`. It prints `tier=N` whenever its tier changes and shuts down cleanly
/// when its stdin closes.
struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Host {
    fn start(config: &Path) -> Host {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "seat_host",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("LIC4ES_E2E_HOST", config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Host {
            stdin: child.stdin.take(),
            child,
            lines: rx,
        }
    }

    /// Waits for a line holding `word` (the test harness may print its own words
    /// before it on the same line).
    fn expect(&self, word: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(word) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("the host never printed `{word}`");
    }

    /// Closes stdin: the host calls lic_shutdown (releasing its seat) and exits.
    fn stop(mut self) {
        drop(self.stdin.take());
        self.expect("shutdown");
        assert!(self.child.wait().unwrap().success());
    }

    /// SIGTERM, as Kubernetes stops a pod; waits for a clean exit.
    fn terminate(mut self) {
        // SAFETY: signals a child of this process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.expect("shutdown");
        assert!(self.child.wait().unwrap().success());
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Not a test on its own: the engine of another process, which `seats_end_to_end` runs
/// with `--ignored`.
#[test]
#[ignore = "the engine of another process: seats_end_to_end starts it with --ignored"]
fn seat_host() {
    let path = std::env::var("LIC4ES_E2E_HOST").expect("LIC4ES_E2E_HOST names the config");
    let config = CString::new(std::fs::read_to_string(path).unwrap()).unwrap();
    // As a C host stops on SIGTERM: the handler only raises a flag; the main loop calls
    // lic_shutdown (which gives the seat back), never the handler itself.
    static TERMINATED: AtomicBool = AtomicBool::new(false);
    extern "C" fn on_term(_: libc::c_int) {
        TERMINATED.store(true, Ordering::SeqCst);
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
    assert_eq!(lic_init(config.as_ptr()), lic_result::LIC_OK);
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        flag.store(true, Ordering::SeqCst);
    });
    let mut shown = None;
    while !done.load(Ordering::SeqCst) && !TERMINATED.load(Ordering::SeqCst) {
        let tier = lic_current_tier() as u32;
        if shown != Some(tier) {
            println!("tier={tier}");
            let _ = std::io::stdout().flush();
            shown = Some(tier);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
    println!("shutdown");
}

fn online_sessions(port: u16, license: &str) -> Vec<Value> {
    admin_get(port, &format!("/admin/sessions?license={license}"))
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["mode"] == "online")
        .cloned()
        .collect()
}

/// A seat host's config, `dir/NAME.json`, with its own cache dir and `seat` settings.
fn host_config(dir: &Path, name: &str, key: &str, port: u16, jwks: &Value, seat: Value) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let cfg = json!({
        "api-key": key,
        "api-url": format!("http://127.0.0.1:{port}"),
        "public-keys": jwks,
        "cache-dir": dir.join(format!("cache-{name}")).to_str().unwrap(),
        "seat": seat,
        "connect-timeout": "2s",
        "read-timeout": "5s",
    });
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

#[test]
fn seats_end_to_end() {
    let _one = one_engine();
    let dir = tempfile::tempdir().unwrap();
    let (config, port, jwks, key) = seat_server(dir.path(), "org-seats", 2);
    let child = ServerProcess::start(&config);
    let host_config = |name: &str| {
        host_config(
            dir.path(),
            name,
            &key,
            port,
            &jwks,
            json!({"enabled": true}),
        )
    };

    // Two engines take the two seats; a third runs as Community with the reason.
    let a = Host::start(&host_config("a"));
    a.expect("tier=1");
    let b = Host::start(&host_config("b"));
    b.expect("tier=1");
    let c = CString::new(std::fs::read_to_string(host_config("c")).unwrap()).unwrap();
    assert_eq!(lic_init(c.as_ptr()), lic_result::LIC_OK);
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_COMMUNITY);
    let st = engine_status();
    assert_eq!(st["seat"]["state"], "no_seats");
    assert!(
        st["reason"]
            .as_str()
            .unwrap()
            .contains("All seats in use (2/2)"),
        "{st}"
    );
    let held = online_sessions(port, "org-seats");
    assert_eq!(held.len(), 2);

    // kill -9 one: its seat stays held until it comes back with the same cache-dir,
    // which frees the stale seat at once instead of taking a third.
    let a_session = {
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("cache-a/state.json")).unwrap(),
        )
        .unwrap();
        state["seat"]["slots"][0]["session_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    a.kill9();
    assert_eq!(
        online_sessions(port, "org-seats").len(),
        2,
        "not yet lapsed"
    );
    let a = Host::start(&host_config("a"));
    a.expect("tier=1");
    let now_held = online_sessions(port, "org-seats");
    assert_eq!(now_held.len(), 2, "no third seat: {now_held:?}");
    assert!(now_held
        .iter()
        .all(|s| s["session_id"] != a_session.as_str()));
    let audit = admin_get(port, "/admin/audit?license=org-seats");
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "reconnect" && e["session_id"] == a_session.as_str()));

    // A clean shutdown gives its seat back; the Community engine takes it on refresh.
    b.stop();
    assert_eq!(online_sessions(port, "org-seats").len(), 1);
    assert_eq!(lic_refresh_now(), lic_result::LIC_OK, "{}", last_error());
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_PRO);
    assert_eq!(engine_status()["seat"]["state"], "online");

    // The operator's view from the command line.
    let listing = cli(&config, &["sessions", "list", "--license", "org-seats"]);
    assert!(listing.contains("2 sessions"), "{listing}");
    let victim = online_sessions(port, "org-seats")[0]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let kicked = cli(&config, &["sessions", "kick", &victim]);
    assert!(kicked.contains("kicked"), "{kicked}");
    assert_eq!(online_sessions(port, "org-seats").len(), 1);

    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
    a.stop();
    child.stop();
}

/// Kubernetes' rolling update at the seat limit (`maxSurge: 1`): N hosts hold the N seats,
/// the surge host is refused and backs off, an old host gets SIGTERM and gives its seat
/// back, and the surge host has it within its backoff; never more than N online.
#[test]
fn a_rolling_update_at_the_seat_limit_hands_the_seat_over_within_the_backoff() {
    const N: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let (config, port, jwks, key) = seat_server(dir.path(), "org-roll", N as u32);
    let child = ServerProcess::start(&config);
    // The backoff's ceiling: 1 min doubling, capped by seat.reconnect-interval (4 s here,
    // so the test takes seconds; the default 1 h caps the doubling, not the first minute).
    let reconnect = Duration::from_secs(4);
    let host_config = |name: &str| -> PathBuf {
        let path = dir.path().join(format!("{name}.json"));
        let cfg = json!({
            "api-key": key,
            "api-url": format!("http://127.0.0.1:{port}"),
            "public-keys": jwks,
            "cache-dir": dir.path().join(format!("cache-{name}")).to_str().unwrap(),
            "seat": {"enabled": true, "reconnect-interval": "4s", "hardware-id": name},
            "connect-timeout": "2s",
            "read-timeout": "5s",
        });
        std::fs::write(&path, cfg.to_string()).unwrap();
        path
    };

    let mut old: Vec<Host> = (0..N)
        .map(|i| {
            let h = Host::start(&host_config(&format!("pod-old-{i}")));
            h.expect("tier=1");
            h
        })
        .collect();
    assert_eq!(online_sessions(port, "org-roll").len(), N);

    // A watcher counts the online sessions all along.
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watcher = {
        let (stop, most) = (stop.clone(), most.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let n = online_sessions(port, "org-roll").len();
                most.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };

    // The surge pod: refused, Community, backing off.
    let surge = Host::start(&host_config("pod-new-0"));
    surge.expect("tier=0");
    let refused = Instant::now();
    let audit = admin_get(port, "/admin/audit?license=org-roll");
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "refused"));

    // Kubernetes stops an old pod once the new one is up.
    let term = Instant::now();
    old.remove(0).terminate();
    let released = term.elapsed();
    surge.expect("tier=1");
    let granted = term.elapsed();
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    println!(
        "rolling update: surge refused, SIGTERM to the old pod's release {} ms, SIGTERM to \
         the surge pod on Pro {} ms (refusal to seat {} ms; backoff ceiling {} s)",
        released.as_millis(),
        granted.as_millis(),
        refused.elapsed().as_millis(),
        reconnect.as_secs()
    );
    assert!(
        granted <= reconnect + Duration::from_secs(3),
        "the seat within the backoff, not at a daily refresh: {granted:?}"
    );
    assert!(
        most.load(Ordering::SeqCst) <= N,
        "never more than {N} online"
    );
    assert_eq!(online_sessions(port, "org-roll").len(), N);
    surge.stop();
    for h in old {
        h.stop();
    }
    child.stop();
}

/// A `lic4es watch` host, and the lines it prints (its tier as it changes).
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(config: &Path) -> Watcher {
        let mut child = Command::new(lic4es_cli())
            .args(["watch", "--seconds", "120", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Watcher { child, lines }
    }

    fn first_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("watch printed its tier")
    }

    /// Sends `signal` and waits for the exit; its code.
    fn stop_with(mut self, signal: libc::c_int) -> Option<i32> {
        // SAFETY: a signal to a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
        let mut status = None;
        common::wait_for(&format!("watch stopping on {signal}"), 15, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.and_then(|s| s.code())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lic4es watch` holds a seat like a host; stopped by Ctrl-C or by its supervisor's
/// SIGTERM, it gives the seat back before it exits (before, the process died of the
/// signal and the seat stayed taken until its session lapsed), so a waiting host finds
/// it free.
#[test]
fn a_watching_cli_stopped_by_a_signal_gives_its_seat_back() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port, jwks, key) = seat_server(dir.path(), "org-watch", 2);
    let _server = ServerProcess::start(&config);
    let host_config = |name: &str| {
        let seat = json!({"enabled": true, "hardware-id": format!("hw-{name}")});
        host_config(dir.path(), name, &key, port, &jwks, seat)
    };
    let held_by = |hw: &str| {
        online_sessions(port, "org-watch")
            .iter()
            .any(|s| s["hardware_id"] == hw)
    };
    let a = Watcher::start(&host_config("a"));
    let line = a.first_line();
    assert!(line.starts_with("tier=pro"), "a holds a seat: {line}");
    let b = Watcher::start(&host_config("b"));
    let line = b.first_line();
    assert!(line.starts_with("tier=pro"), "b holds a seat: {line}");
    let c = Watcher::start(&host_config("c"));
    let line = c.first_line();
    assert!(line.contains("seat=no_seats"), "none is left for c: {line}");
    assert!(held_by("hw-a") && held_by("hw-b"));

    // Ctrl-C: the seat is free when the process has exited, not minutes later (c, waiting
    // on its backoff, may take it at any moment after).
    assert_eq!(a.stop_with(libc::SIGINT), Some(128 + libc::SIGINT));
    assert!(!held_by("hw-a"), "a's seat given back");
    // A supervisor's SIGTERM likewise.
    assert_eq!(b.stop_with(libc::SIGTERM), Some(128 + libc::SIGTERM));
    assert!(!held_by("hw-b"), "b's seat given back");
    drop(c);
}

/// The ```sh block that follows `heading` in the README.
fn readme_block(readme: &str, heading: &str) -> String {
    let at = readme
        .find(heading)
        .unwrap_or_else(|| panic!("the README has {heading:?}"));
    let start = at + readme[at..].find("```sh\n").unwrap() + "```sh\n".len();
    readme[start..start + readme[start..].find("```").unwrap()].to_string()
}

/// A newcomer's path through the README, as written: the server set up and started by
/// the "Run the server" commands, a license minted by the "Mint and ship" ones, and a
/// host on that license, all with the binaries this workspace built (on another port
/// than the README's, which may be taken).
#[test]
fn the_readme_s_server_and_license_commands_work_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let port = free_port().to_string();
    let serve =
        readme_block(&readme, "## Run the server for your customers").replace("8700", &port);
    let mint = readme_block(&readme, "## Mint and ship a license");
    assert!(serve.contains("keygen") && mint.contains("api-key create"));
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{serve}\n\
         for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; \
         sleep 0.05; done\n{mint}\n\
         key=$(license-server --config server.toml api-key create --sub org-acme)\n\
         printf '{{\"api-key\": \"%s\", \"api-url\": \"http://127.0.0.1:{port}\", \
         \"public-keys\": %s, \"cache-dir\": \"host-cache\"}}' \"$key\" \"$(cat jwks.json)\" \
         > host.json\nlic4es status --config host.json --summary\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let bins = format!(
        "{}:{}:{}",
        Path::new(env!("CARGO_BIN_EXE_license-server"))
            .parent()
            .unwrap()
            .display(),
        lic4es_cli().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", bins)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("\"license_id\": \"org-acme\""),
        "license show: {stdout}"
    );
    assert!(stdout.contains("0 sessions"), "sessions list: {stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("tier=team source=seat"),
        "the host holds a seat of the minted license: {stdout}\n{stderr}"
    );
}
