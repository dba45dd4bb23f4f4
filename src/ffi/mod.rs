//! The C ABI: a thin layer over one process-global [`Engine`].
//!
//! Every export runs behind the panic boundary, checks its pointers, writes out-params
//! only on success and records failures in a thread-local last error. The tier is
//! mirrored into one process-wide atomic so `lic_current_tier` is a single load.

#![allow(non_camel_case_types)]
// Pointer arguments are checked for NULL here; their validity is the C caller's contract,
// documented on each function in the header.
#![allow(clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref)]

mod boundary;

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock};

use self::boundary::{as_callback, in_callback, run, run_or, str_arg, write_str, CallError};
use crate::config::{Config, COMMUNITY_FEATURES, COMMUNITY_QUOTAS};
use crate::engine::{Engine, EngineOptions};
use crate::log::Level;
use crate::telemetry::{Counter, Gauge, PROCESS_USAGE};
use crate::tier::Tier;

/// License tier.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum lic_tier {
    /// No paid license holds (also before init, after shutdown, and in a forked child).
    LIC_TIER_COMMUNITY = 0,
    /// Pro.
    LIC_TIER_PRO = 1,
    /// Team.
    LIC_TIER_TEAM = 2,
    /// Enterprise.
    LIC_TIER_ENTERPRISE = 3,
}

/// Result of a call.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum lic_result {
    /// Success.
    LIC_OK = 0,
    /// NULL where a value is needed, or invalid UTF-8.
    LIC_ERR_INVALID_ARGUMENT = 1,
    /// The config is not valid JSON, has an unknown key or a bad value; the message names the key.
    LIC_ERR_CONFIG = 2,
    /// lic_init was already called without lic_shutdown.
    LIC_ERR_ALREADY_INITIALIZED = 3,
    /// lic_init has not been called (or lic_shutdown has).
    LIC_ERR_NOT_INITIALIZED = 4,
    /// *out_len holds the size needed, including the NUL.
    LIC_ERR_BUFFER_TOO_SMALL = 5,
    /// lic_refresh_now, lic_borrow, lic_return_borrow: the backend could not be reached or
    /// refused.
    LIC_ERR_REFRESH_FAILED = 6,
    /// lic_refresh_now with nothing to refresh from; lic_borrow with no online seat;
    /// lic_return_borrow with no seat borrowed.
    LIC_ERR_UNSUPPORTED = 7,
    /// Called in a child process after fork(); the child must not use the parent's engine.
    LIC_ERR_FORKED = 8,
    /// A bug; see lic_last_error.
    LIC_ERR_INTERNAL = 99,
}

/// Severity of a log record.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum lic_log_level {
    /// Something failed and the operator must act.
    LIC_LOG_ERROR = 0,
    /// Degraded but working.
    LIC_LOG_WARN = 1,
    /// Normal, noteworthy events.
    LIC_LOG_INFO = 2,
    /// Detail for troubleshooting.
    LIC_LOG_DEBUG = 3,
}

/// A usage counter (LIC_COUNTER_*). An integer rather than a C enum so that any value a
/// caller passes is well defined: unknown values are ignored.
pub type lic_counter = u32;
/// Queries run.
pub const LIC_COUNTER_QUERIES: lic_counter = 0;
/// Joins run.
pub const LIC_COUNTER_JOINS: lic_counter = 1;

/// A usage gauge (LIC_GAUGE_*). Unknown values are ignored.
pub type lic_gauge = u32;
/// Materialized views active.
pub const LIC_GAUGE_MVS_ACTIVE: lic_gauge = 0;
/// Clusters connected.
pub const LIC_GAUGE_CLUSTERS_CONNECTED: lic_gauge = 1;

/// Log callback. Called from the worker thread and from callers' threads, one record at a
/// time per thread; `message` is valid only during the call. It may call lic_status_json,
/// lic_current_tier and the like, but not lic_init, lic_shutdown or lic_refresh_now.
pub type lic_log_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, level: lic_log_level, message: *const c_char),
>;

static ENGINE: RwLock<Option<Arc<Engine>>> = RwLock::new(None);
/// Serialises init and shutdown.
static LIFECYCLE: Mutex<()> = Mutex::new(());
static TIER: AtomicU32 = AtomicU32::new(0);
/// Process id at init, 0 when no engine is live.
static INIT_PID: AtomicU32 = AtomicU32::new(0);
/// Set in a child forked while an engine was live.
static FORKED: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicBool = AtomicBool::new(false);
static ATFORK: Once = Once::new();
static LOG_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
// Held for reading while a record is delivered, so that replacing the callback waits for
// deliveries in flight: a host may free `user_data`, or a runtime tear itself down, once
// lic_set_log_callback returns.
static LOG_CALLBACK: RwLock<Option<(LogFn, usize)>> = RwLock::new(None);

type LogFn = unsafe extern "C" fn(*mut c_void, lic_log_level, *const c_char);

extern "C" fn after_fork_in_child() {
    // Runs in the child right after fork(): only async-signal-safe work (atomic stores).
    if LIVE.load(Ordering::Relaxed) {
        FORKED.store(true, Ordering::Relaxed);
        TIER.store(Tier::Community as u32, Ordering::Relaxed);
    }
}

/// Set by the atfork handler: no syscall, so the per-query calls can ask.
fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

/// The thorough check for the calls that are not per-query: also compares the pid, in
/// case a child was created by a raw `clone` that skipped the atfork handlers.
fn forked_or_pid_changed() -> bool {
    if forked() {
        return true;
    }
    let pid = INIT_PID.load(Ordering::Relaxed);
    pid != 0 && pid != std::process::id()
}

fn check_not_forked() -> Result<(), CallError> {
    if forked_or_pid_changed() {
        return Err(CallError::new(
            lic_result::LIC_ERR_FORKED,
            "called in a child process after fork(); initialise a new engine only in a process \
             that did not inherit one",
        ));
    }
    Ok(())
}

/// Runs `f` on the live engine under the read lock, without touching its refcount.
fn with_engine<T>(f: impl FnOnce(Option<&Engine>) -> T) -> T {
    let guard = ENGINE.read().unwrap_or_else(|p| p.into_inner());
    f(guard.as_deref())
}

fn engine() -> Result<Arc<Engine>, CallError> {
    ENGINE
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or_else(|| {
            CallError::new(
                lic_result::LIC_ERR_NOT_INITIALIZED,
                "lic_init has not been called",
            )
        })
}

/// Sends a record to the log callback, or to stderr when none is set.
pub(crate) fn emit_log(level: Level, msg: &str) {
    if level as u8 > LOG_LEVEL.load(Ordering::Relaxed) || forked() {
        return;
    }
    // A record emitted by a call made from inside the callback: this thread already holds
    // the lock, and waiting for it again behind a writer would deadlock.
    let guard = if in_callback() {
        match LOG_CALLBACK.try_read() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                eprintln!("lic4es: {level}: {msg}");
                return;
            }
        }
    } else {
        LOG_CALLBACK.read().unwrap_or_else(|p| p.into_inner())
    };
    match *guard {
        Some((f, user_data)) => {
            let c_msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
            let c_level = match level {
                Level::Error => lic_log_level::LIC_LOG_ERROR,
                Level::Warn => lic_log_level::LIC_LOG_WARN,
                Level::Info => lic_log_level::LIC_LOG_INFO,
                Level::Debug => lic_log_level::LIC_LOG_DEBUG,
            };
            // SAFETY: the host registered `f` with `user_data` through lic_set_log_callback.
            as_callback(|| unsafe { f(user_data as *mut c_void, c_level, c_msg.as_ptr()) });
        }
        None => eprintln!("lic4es: {level}: {msg}"),
    }
}

/// Parses the config (a JSON object with the keys of SoftClient4ES's
/// `softclient4es.license` block), resolves the license before returning, and starts the
/// background worker. A missing, invalid or expired license is not an error: the tier is
/// Community and lic_status_json says why. Returns LIC_ERR_CONFIG (message naming the key)
/// for a bad config, LIC_ERR_ALREADY_INITIALIZED when an engine is running.
#[no_mangle]
pub extern "C" fn lic_init(config_json: *const c_char) -> lic_result {
    run("lic_init", || {
        check_not_forked()?;
        not_from_callback("lic_init")?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let json = unsafe { str_arg(config_json, "config_json") }?;
        let _guard = LIFECYCLE.lock().unwrap_or_else(|p| p.into_inner());
        if ENGINE.read().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Err(CallError::new(
                lic_result::LIC_ERR_ALREADY_INITIALIZED,
                "lic_init was already called; call lic_shutdown first",
            ));
        }
        let config = Config::from_json(json)?;
        ATFORK.call_once(|| crate::platform::on_fork_in_child(after_fork_in_child));
        LOG_LEVEL.store(config.log_level as u8, Ordering::Relaxed);
        INIT_PID.store(std::process::id(), Ordering::Relaxed);
        LIVE.store(true, Ordering::Relaxed);
        let opts = EngineOptions {
            log: Arc::new(emit_log),
            tier_mirror: Some(&TIER),
            usage: &PROCESS_USAGE,
            ..EngineOptions::default()
        };
        match Engine::start(config, opts) {
            Ok(engine) => {
                *ENGINE.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(engine));
                Ok(())
            }
            Err(e) => {
                LIVE.store(false, Ordering::Relaxed);
                INIT_PID.store(0, Ordering::Relaxed);
                TIER.store(Tier::Community as u32, Ordering::Relaxed);
                Err(e.into())
            }
        }
    })
}

/// The tier in effect: one atomic load, no lock, no allocation, no syscall. Community
/// before lic_init, after lic_shutdown and in a forked child.
#[no_mangle]
pub extern "C" fn lic_current_tier() -> lic_tier {
    // No panic boundary: a relaxed load cannot panic, and the function must compile to
    // the load and a return (`docs/explanation/performance.md`), with no range check or decode.
    let v = TIER.load(Ordering::Relaxed);
    // SAFETY: TIER only ever holds `Tier as u32` (0..=3), stored by this module and by the
    // engine's tier mirror, and lic_tier is a C enum with those discriminants.
    unsafe { std::mem::transmute::<u32, lic_tier>(v) }
}

// lic_tier's discriminants are Tier's, so the value in TIER is already a lic_tier.
const _: () = {
    assert!(lic_tier::LIC_TIER_COMMUNITY as u8 == Tier::Community as u8);
    assert!(lic_tier::LIC_TIER_PRO as u8 == Tier::Pro as u8);
    assert!(lic_tier::LIC_TIER_TEAM as u8 == Tier::Team as u8);
    assert!(lic_tier::LIC_TIER_ENTERPRISE as u8 == Tier::Enterprise as u8);
};

/// Stops the worker and joins its thread; afterwards lic_init may be called again.
/// Bounded even while a backend exchange is in flight (it is abandoned); in seat mode
/// the seat is released first, within seat.release-timeout (a seat that could not be
/// released is freed by the next start with the same cache-dir).
/// A second call returns LIC_ERR_NOT_INITIALIZED. From inside the log callback it returns
/// LIC_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn lic_shutdown() -> lic_result {
    run("lic_shutdown", || {
        check_not_forked()?;
        not_from_callback("lic_shutdown")?;
        let _guard = LIFECYCLE.lock().unwrap_or_else(|p| p.into_inner());
        let engine = ENGINE
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                CallError::new(
                    lic_result::LIC_ERR_NOT_INITIALIZED,
                    "lic_init has not been called",
                )
            })?;
        let result = engine.shutdown();
        TIER.store(Tier::Community as u32, Ordering::Relaxed);
        LIVE.store(false, Ordering::Relaxed);
        INIT_PID.store(0, Ordering::Relaxed);
        drop(engine);
        result.map_err(CallError::from)
    })
}

/// Writes the status JSON and a NUL into buf. On LIC_ERR_BUFFER_TOO_SMALL, *out_len
/// receives the size needed (including the NUL) and buf is untouched; on LIC_OK, *out_len
/// (when not NULL) is the length written, excluding the NUL. buf may be NULL with len 0
/// to ask for the size. LIC_ERR_NOT_INITIALIZED before lic_init.
#[no_mangle]
pub extern "C" fn lic_status_json(buf: *mut c_char, len: usize, out_len: *mut usize) -> lic_result {
    run("lic_status_json", || {
        check_not_forked()?;
        let json = engine()?.status_json();
        // SAFETY: the caller passes a buffer of `len` bytes (or NULL) and a valid out_len (or NULL).
        unsafe { write_str(&json, buf, len, out_len) }
    })
}

/// Writes the message of the last failed call on this thread (empty when none) and a
/// NUL into buf, with the same buffer rules as lic_status_json.
#[no_mangle]
pub extern "C" fn lic_last_error(buf: *mut c_char, len: usize, out_len: *mut usize) -> lic_result {
    run_or("lic_last_error", lic_result::LIC_ERR_INTERNAL, || {
        // Like every other call: a child must not read state inherited from the parent's
        // engine, and must learn that it forked.
        if forked_or_pid_changed() {
            return lic_result::LIC_ERR_FORKED;
        }
        let msg = boundary::last_error();
        // SAFETY: as for lic_status_json. Not routed through `run`, so asking for the
        // size does not overwrite the message being asked for.
        match unsafe { write_str(&msg, buf, len, out_len) } {
            Ok(()) => lic_result::LIC_OK,
            Err(CallError(code, _)) => code,
        }
    })
}

/// Community defaults, for calls made before lic_init or in a forked child.
fn default_quota(name: &str) -> i64 {
    COMMUNITY_QUOTAS
        .iter()
        .find(|(k, _)| *k == name)
        .map_or(-1, |(_, v)| *v)
}

fn default_feature(name: &str) -> bool {
    COMMUNITY_FEATURES.contains(&name)
}

/// The quota `name` of the license in effect; -1 means unlimited, also for a name the
/// license does not set (and for a NULL or non-UTF-8 name, which also sets the last
/// error). Before lic_init, the Community defaults apply.
#[no_mangle]
pub extern "C" fn lic_quota(name: *const c_char) -> i64 {
    run_or("lic_quota", -1, || {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let name = match unsafe { str_arg(name, "name") } {
            Ok(n) => n,
            Err(CallError(_, msg)) => {
                boundary::set_last_error(&msg);
                return -1;
            }
        };
        if forked() {
            return default_quota(name);
        }
        with_engine(|e| match e {
            Some(e) => e.quota(name),
            None => default_quota(name),
        })
    })
}

/// Whether the license in effect grants feature `name` (false for NULL or non-UTF-8).
/// Before lic_init, the Community defaults apply.
#[no_mangle]
pub extern "C" fn lic_has_feature(name: *const c_char) -> bool {
    run_or("lic_has_feature", false, || {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let name = match unsafe { str_arg(name, "name") } {
            Ok(n) => n,
            Err(CallError(_, msg)) => {
                boundary::set_last_error(&msg);
                return false;
            }
        };
        if forked() {
            return default_feature(name);
        }
        with_engine(|e| match e {
            Some(e) => e.has_feature(name),
            None => default_feature(name),
        })
    })
}

/// Adds n to a usage counter (a relaxed atomic add; usable before lic_init).
#[no_mangle]
pub extern "C" fn lic_counter_add(counter: lic_counter, n: u64) {
    run_or("lic_counter_add", (), || match counter {
        LIC_COUNTER_QUERIES => PROCESS_USAGE.add(Counter::Queries, n),
        LIC_COUNTER_JOINS => PROCESS_USAGE.add(Counter::Joins, n),
        _ => {}
    })
}

/// Sets a usage gauge (a relaxed atomic store; usable before lic_init).
#[no_mangle]
pub extern "C" fn lic_gauge_set(gauge: lic_gauge, value: u64) {
    run_or("lic_gauge_set", (), || match gauge {
        LIC_GAUGE_MVS_ACTIVE => PROCESS_USAGE.set(Gauge::MvsActive, value),
        LIC_GAUGE_CLUSTERS_CONNECTED => PROCESS_USAGE.set(Gauge::ClustersConnected, value),
        _ => {}
    })
}

/// Refreshes the license synchronously (for REFRESH LICENSE): a token fetch, a static
/// token's refresh, or in seat mode a heartbeat (online) or a reconnect / acquire.
/// LIC_ERR_REFRESH_FAILED with the reason in lic_last_error when the backend could not be
/// reached or refused; LIC_ERR_UNSUPPORTED when there is nothing to refresh from.
#[no_mangle]
pub extern "C" fn lic_refresh_now() -> lic_result {
    run("lic_refresh_now", || {
        check_not_forked()?;
        not_from_callback("lic_refresh_now")?;
        engine()?.refresh_now().map_err(CallError::from)
    })
}

/// Refuses a call that would wait on the thread calling it: from inside the log callback
/// (which may run on the worker), `name` is LIC_ERR_INVALID_ARGUMENT.
fn not_from_callback(name: &str) -> Result<(), CallError> {
    if in_callback() {
        return Err(CallError::new(
            lic_result::LIC_ERR_INVALID_ARGUMENT,
            format!("{name} cannot be called from the log callback"),
        ));
    }
    Ok(())
}

/// Checks the online seat out for `seconds` (at most the license's max-borrow), waiting for
/// the answer (bounded by the request timeouts): the engine then keeps its tier without
/// heartbeats or offline grace until the borrow ends, across restarts (the borrow is kept
/// in cache-dir), and the license server counts the seat meanwhile. LIC_ERR_UNSUPPORTED
/// when no online seat is held; LIC_ERR_REFRESH_FAILED with the reason in lic_last_error
/// when the backend could not be reached or refused (the seat then stays online);
/// LIC_ERR_INVALID_ARGUMENT for 0 seconds.
#[no_mangle]
pub extern "C" fn lic_borrow(seconds: u64) -> lic_result {
    run("lic_borrow", || {
        check_not_forked()?;
        not_from_callback("lic_borrow")?;
        if seconds == 0 {
            return Err(CallError::new(
                lic_result::LIC_ERR_INVALID_ARGUMENT,
                "lic_borrow: seconds must be at least 1",
            ));
        }
        engine()?.borrow(seconds).map_err(CallError::from)
    })
}

/// Gives a borrowed seat back before its end and acquires a seat again, waiting for the
/// answer. LIC_ERR_UNSUPPORTED when no seat is borrowed; LIC_ERR_REFRESH_FAILED when the
/// backend could not be reached (the borrow then holds until its end).
#[no_mangle]
pub extern "C" fn lic_return_borrow() -> lic_result {
    run("lic_return_borrow", || {
        check_not_forked()?;
        not_from_callback("lic_return_borrow")?;
        engine()?.return_borrow().map_err(CallError::from)
    })
}

/// Routes log records to callback(user_data, level, message); NULL restores stderr. Records
/// below the configured log-level are not delivered. It returns once no thread is still
/// delivering a record to the previous callback, which is then never called again (its
/// user_data may be freed). Called from inside the callback it returns
/// LIC_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn lic_set_log_callback(callback: lic_log_fn, user_data: *mut c_void) -> lic_result {
    run("lic_set_log_callback", || {
        check_not_forked()?;
        if in_callback() {
            return Err(CallError::new(
                lic_result::LIC_ERR_INVALID_ARGUMENT,
                "lic_set_log_callback called from inside the log callback",
            ));
        }
        *LOG_CALLBACK.write().unwrap_or_else(|p| p.into_inner()) =
            callback.map(|f| (f, user_data as usize));
        Ok(())
    })
}

/// The library version, a static string that is never freed.
#[no_mangle]
pub extern "C" fn lic_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
