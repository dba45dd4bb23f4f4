//! End to end: the engine, through its C ABI, against the real `license-server` binary.

use std::ffi::{c_char, c_void, CStr, CString};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lic4es::ffi::*;
use serde_json::{json, Value};

static LOGS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

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

fn server(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "license-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    Some(r)
}

/// Starts `serve` and waits until it answers /healthz.
fn serve(config: &Path, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if get(port, "/healthz").is_some_and(|r| r.contains("\"ok\"")) {
            return child;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("license-server did not come up on port {port}");
}

fn stop(mut child: Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
}

fn status() -> Value {
    let mut buf = vec![0 as c_char; 64 * 1024];
    assert_eq!(
        lic_status_json(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()),
        lic_result::LIC_OK
    );
    serde_json::from_str(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap()).unwrap()
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
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata-dir = {:?}\n",
            dir.path().join("data").to_str().unwrap()
        ),
    )
    .unwrap();
    let jwks: Value = serde_json::from_str(&server(&config, &["keygen"])).unwrap();
    let key = server(
        &config,
        &[
            "api-key", "create", "--tier", "pro", "--sub", "org-e2e", "--days", "30",
        ],
    );
    let mut child = serve(&config, port);

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
    assert_eq!(status()["source"], "api_key");
    assert!(cache.join("license-cache.jwt").exists());

    // Upgrade on the server, picked up by a refresh.
    server(
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
    assert_eq!(lic_refresh_now(), lic_result::LIC_OK, "{}", last_error());
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_ENTERPRISE);
    assert!(logged(
        lic_log_level::LIC_LOG_INFO,
        "License upgraded from Pro to Enterprise"
    ));

    // Server stopped: the refresh fails, the tier stays; a restarted host uses the cache.
    stop(child);
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
    assert_eq!(status()["source"], "cache");
    assert!(logged(
        lic_log_level::LIC_LOG_WARN,
        "Using cached license (API key fetch failed)"
    ));

    // Server back: the next refresh succeeds.
    child = serve(&config, port);
    assert_eq!(lic_refresh_now(), lic_result::LIC_OK, "{}", last_error());
    assert_eq!(status()["source"], "api_key");
    assert_eq!(status()["last_telemetry"]["version"], "e2e");

    // Revocation: Community at once, cache deleted.
    server(&config, &["api-key", "revoke", &key]);
    assert_eq!(lic_refresh_now(), lic_result::LIC_ERR_REFRESH_FAILED);
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_COMMUNITY);
    assert_eq!(status()["status"], "Revoked");
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
    let plain = server(
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

    let with_url = server(
        &config,
        &[
            "mint",
            "--tier",
            "team",
            "--sub",
            "org-static",
            "--days",
            "10",
            "--refresh-url",
            "default",
        ],
    );
    server(
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while lic_current_tier() != lic_tier::LIC_TIER_ENTERPRISE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        lic_current_tier(),
        lic_tier::LIC_TIER_ENTERPRISE,
        "scheduled refresh upgraded"
    );
    assert_eq!(status()["source"], "static");
    assert!(api_requests() > before);
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
    stop(child);
}
