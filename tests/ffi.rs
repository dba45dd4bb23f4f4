//! The C ABI driven from Rust: callbacks, re-entrancy, fork, and the last error. The
//! engine behind the C ABI is process-global, so these tests take turns.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Mutex;

use common::*;
use lic4es::ffi::*;
use serde_json::json;

static SERIAL: Mutex<()> = Mutex::new(());

fn last_error() -> String {
    let mut buf = vec![0 as c_char; 1024];
    assert_eq!(
        lic_last_error(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()),
        lic_result::LIC_OK
    );
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn status() -> Result<serde_json::Value, lic_result> {
    let mut buf = vec![0 as c_char; 16 * 1024];
    let mut n = 0usize;
    match lic_status_json(buf.as_mut_ptr(), buf.len(), &mut n) {
        lic_result::LIC_OK => {
            let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
            assert_eq!(s.len(), n);
            Ok(serde_json::from_str(s).unwrap())
        }
        e => Err(e),
    }
}

/// A Team token that expired two days ago: init logs a WARN about its grace from the
/// worker thread.
fn expired_team_config(cache_dir: &std::path::Path) -> CString {
    CString::new(
        json!({
            "key": mint(&claims("team", wall_now() - 2 * DAY)),
            "public-keys": jwks(),
            "cache-dir": cache_dir.to_str().unwrap(),
        })
        .to_string(),
    )
    .unwrap()
}

#[derive(Default)]
struct Seen {
    records: Vec<(u32, String)>,
    shutdown_result: Option<lic_result>,
    init_result: Option<lic_result>,
    set_callback_result: Option<lic_result>,
}

unsafe extern "C" fn reentrant_log(user: *mut c_void, level: lic_log_level, msg: *const c_char) {
    let seen = &*(user as *const Mutex<Seen>);
    let mut s = seen.lock().unwrap();
    s.records.push((
        level as u32,
        CStr::from_ptr(msg).to_string_lossy().into_owned(),
    ));
    s.shutdown_result.get_or_insert(lic_shutdown());
    s.init_result.get_or_insert(lic_init(c"{}".as_ptr()));
    s.set_callback_result
        .get_or_insert(lic_set_log_callback(None, std::ptr::null_mut()));
}

#[test]
fn log_callback_receives_records_and_cannot_init_or_shut_down() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let seen: &'static Mutex<Seen> = Box::leak(Box::new(Mutex::new(Seen::default())));
    assert_eq!(
        lic_set_log_callback(Some(reentrant_log), seen as *const _ as *mut c_void),
        lic_result::LIC_OK
    );
    // An expired license in grace logs a WARN at init, from the worker thread.
    let cfg = expired_team_config(dir.path());
    assert_eq!(lic_init(cfg.as_ptr()), lic_result::LIC_OK);
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_TEAM);
    {
        let s = seen.lock().unwrap();
        assert!(
            s.records
                .iter()
                .any(|(l, m)| *l == lic_log_level::LIC_LOG_WARN as u32
                    && m.contains("expired 2 days ago")),
            "{:?}",
            s.records
        );
        assert_eq!(
            s.shutdown_result,
            Some(lic_result::LIC_ERR_INVALID_ARGUMENT)
        );
        assert_eq!(s.init_result, Some(lic_result::LIC_ERR_INVALID_ARGUMENT));
        assert_eq!(
            s.set_callback_result,
            Some(lic_result::LIC_ERR_INVALID_ARGUMENT)
        );
    }
    assert_eq!(
        lic_set_log_callback(None, std::ptr::null_mut()),
        lic_result::LIC_OK
    );
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
}

/// Windows has no `fork`.
#[cfg(unix)]
#[test]
fn forked_child_gets_forked_errors_and_community() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cfg = live_pro_config(dir.path(), "debug");
    assert_eq!(lic_init(cfg.as_ptr()), lic_result::LIC_OK);
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_PRO);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut buf = [0 as c_char; 64];
        let mut n = 0usize;
        let ok = lic_current_tier() == lic_tier::LIC_TIER_COMMUNITY
            && lic_status_json(buf.as_mut_ptr(), buf.len(), &mut n) == lic_result::LIC_ERR_FORKED
            && lic_shutdown() == lic_result::LIC_ERR_FORKED
            && lic_init(cfg.as_ptr()) == lic_result::LIC_ERR_FORKED
            && lic_refresh_now() == lic_result::LIC_ERR_FORKED
            && lic_quota(c"max_joins".as_ptr()) == 2
            && lic_last_error(buf.as_mut_ptr(), buf.len(), &mut n) == lic_result::LIC_ERR_FORKED;
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut wstatus = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut wstatus, 0) }, pid);
    assert!(libc::WIFEXITED(wstatus));
    assert_eq!(
        libc::WEXITSTATUS(wstatus),
        0,
        "child saw the parent's engine"
    );
    assert_eq!(
        lic_current_tier(),
        lic_tier::LIC_TIER_PRO,
        "the parent is unaffected"
    );
    assert_eq!(status().unwrap()["tier"], "pro");
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
}

#[test]
fn last_error_is_per_thread_and_kept_until_the_next_failure() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(
        lic_init(c"{\"bogus\": 1}".as_ptr()),
        lic_result::LIC_ERR_CONFIG
    );
    assert!(last_error().contains("bogus"));
    let other = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other, "", "another thread has no error");
    assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_COMMUNITY);
    assert!(last_error().contains("bogus"));
    // A long message is kept up to its bound, cut at a character boundary.
    let long = format!("{{\"{}\": 1}}", "é".repeat(2000));
    let c = std::ffi::CString::new(long).unwrap();
    assert_eq!(lic_init(c.as_ptr()), lic_result::LIC_ERR_CONFIG);
    let msg = last_error();
    assert!(msg.len() <= 1024 && msg.contains("unknown key"), "{msg}");
}

#[test]
fn status_and_refresh_before_init() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(status().unwrap_err(), lic_result::LIC_ERR_NOT_INITIALIZED);
    assert_eq!(lic_refresh_now(), lic_result::LIC_ERR_NOT_INITIALIZED);
    assert_eq!(lic_shutdown(), lic_result::LIC_ERR_NOT_INITIALIZED);
    assert!(!lic_version().is_null());
    let v = unsafe { CStr::from_ptr(lic_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
}

#[test]
fn counters_feed_the_telemetry_sent_at_init() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    lic_counter_add(LIC_COUNTER_JOINS, 4);
    lic_gauge_set(LIC_GAUGE_MVS_ACTIVE, 9);
    let server = TestServer::start(|_| Reply::raw(503, ""));
    let dir = tempfile::tempdir().unwrap();
    let cfg = CString::new(
        json!({"api-key": "sk-test", "api-url": server.url(), "public-keys": jwks(),
               "cache-dir": dir.path().to_str().unwrap(), "log-level": "error"})
        .to_string(),
    )
    .unwrap();
    assert_eq!(lic_init(cfg.as_ptr()), lic_result::LIC_OK);
    // The backend keeps failing: a synchronous refresh says so, with the reason.
    assert_eq!(lic_refresh_now(), lic_result::LIC_ERR_REFRESH_FAILED);
    assert!(last_error().contains("503"), "{}", last_error());
    assert_eq!(server.requests().len(), 2);
    let body = server.requests()[0].json();
    assert!(body["telemetry"]["joins_total"].as_u64().unwrap() >= 4);
    assert_eq!(body["telemetry"]["mvs_active"], 9);
    assert_eq!(
        status().unwrap()["last_telemetry"],
        server.requests()[1].json(),
        "the status shows the last body sent"
    );
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
}

/// The first record blocks its delivery until the test lets it go.
struct Gate {
    first: std::sync::atomic::AtomicBool,
    entered: std::sync::mpsc::SyncSender<()>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

unsafe extern "C" fn gated_log(user: *mut c_void, _: lic_log_level, _: *const c_char) {
    let gate = &*(user as *const Gate);
    if !gate.first.swap(true, std::sync::atomic::Ordering::SeqCst) {
        gate.entered.send(()).unwrap();
        let _ = gate.release.lock().unwrap().recv();
    }
}

#[test]
fn replacing_the_log_callback_waits_for_a_record_in_flight() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered) = std::sync::mpsc::sync_channel(1);
    let (release, release_rx) = std::sync::mpsc::channel();
    let gate: &'static Gate = Box::leak(Box::new(Gate {
        first: std::sync::atomic::AtomicBool::new(false),
        entered: entered_tx,
        release: Mutex::new(release_rx),
    }));
    assert_eq!(
        lic_set_log_callback(Some(gated_log), gate as *const _ as *mut c_void),
        lic_result::LIC_OK
    );
    let cfg = expired_team_config(dir.path());
    // init's records are delivered on this thread or the worker's: init on its own thread.
    let init = std::thread::spawn(move || lic_init(cfg.as_ptr()));
    entered
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("a record reached the callback");
    let (done_tx, done) = std::sync::mpsc::channel();
    let setter = std::thread::spawn(move || {
        let r = lic_set_log_callback(None, std::ptr::null_mut());
        done_tx.send(()).unwrap();
        r
    });
    // While the record is in the callback, replacing it does not return. (A sleep, not a
    // timed receive that is meant to time out: under the calendar guard libfaketime moves
    // the monotonic clock, and std's timed waits hand the kernel an absolute deadline on
    // it, which the real clock reaches a year later.)
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        done.try_recv().is_err(),
        "returned while a record was in flight"
    );
    release.send(()).unwrap();
    done.recv_timeout(std::time::Duration::from_secs(10))
        .expect("returns once the record is delivered");
    assert_eq!(setter.join().unwrap(), lic_result::LIC_OK);
    assert_eq!(init.join().unwrap(), lic_result::LIC_OK);
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
}
