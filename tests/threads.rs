//! `lic_init` adds exactly one thread and `lic_shutdown` takes it away. Alone in its own
//! test binary so that no other test's threads are counted.
#![cfg(target_os = "linux")] // Threads are counted in /proc/self/task.

mod common;

use std::ffi::CString;

use common::*;
use lic4es::ffi::*;
use serde_json::json;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The thread count once it settles at `want`, or what it is after a second. A joined
/// thread can stay listed in `/proc/self/task` for a moment after `pthread_join` returns
/// (the kernel wakes the joiner before it has removed the task), which is not a leak.
fn settled_at(want: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let n = threads();
        if n == want || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn init_adds_exactly_one_thread_and_shutdown_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        json!({
            "key": mint(&claims("pro", wall_now() + 30 * DAY)),
            "public-keys": jwks(),
            "cache-dir": dir.path().join("a").to_str().unwrap(),
        }),
        // A backend that refuses: the fetch happens on the worker, no helper thread.
        json!({
            "api-key": "sk-test",
            "api-url": refused_url(),
            "public-keys": jwks(),
            "cache-dir": dir.path().join("b").to_str().unwrap(),
            "log-level": "error",
        }),
    ];
    for cfg in configs {
        let cfg = CString::new(cfg.to_string()).unwrap();
        let before = threads();
        assert_eq!(lic_init(cfg.as_ptr()), lic_result::LIC_OK);
        assert_eq!(threads(), before + 1, "lic_init adds exactly one thread");
        assert_eq!(lic_shutdown(), lic_result::LIC_OK);
        assert_eq!(settled_at(before), before, "lic_shutdown joins the worker");
    }
}
