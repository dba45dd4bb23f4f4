//! The clock ledger for real: the `lic4es` CLI hosts the engine through the C ABI on the
//! system clock, and libfaketime (Debian's `faketime`) sets that clock back.
#![cfg(unix)] // libfaketime is a Linux preload library.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// The CLI's status, with the clock set `back_days` before this process's time. The time
/// is given absolutely (not as an offset from the kernel's), so that it is right also
/// under CI's calendar guard, which runs this test on a clock moved a year ahead.
fn status(cfg: &std::path::Path, back_days: Option<i64>) -> (Value, String) {
    let bin = env!("CARGO_BIN_EXE_lic4es");
    let mut cmd = match back_days {
        Some(d) => {
            let at = lic4es::clock::rfc3339(wall_now() - d * DAY);
            let mut c = Command::new("faketime");
            c.args([
                "-f",
                &format!("@{}", at.trim_end_matches('Z').replace('T', " ")),
            ])
            .arg(bin)
            .env("TZ", "UTC");
            c
        }
        None => Command::new(bin),
    };
    // Monotonic time stays real: only the wall clock is set back, as an operator would.
    let out = cmd
        .args(["status", "--config", cfg.to_str().unwrap()])
        .env("DONT_FAKE_MONOTONIC", "1")
        .env_remove("SOFTCLIENT4ES_LICENSE_KEY")
        .env_remove("SOFTCLIENT4ES_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

#[test]
#[cfg_attr(lic4es_no_faketime, ignore = "no faketime: apt-get install faketime")]
fn setting_the_system_clock_back_does_not_revive_an_expired_license() {
    // Where faketime is missing build.rs marks this test ignored.
    assert!(have_tool("faketime"), "faketime");
    let dir = tempfile::tempdir().unwrap();
    let now = wall_now();
    let mut c = claims("enterprise", now - DAY);
    c["iat"] = json!(now - 30 * DAY);
    let cfg = dir.path().join("license.json");
    std::fs::write(
        &cfg,
        json!({"key": mint(&c), "public-keys": jwks(), "grace-period": "0s",
               "cache-dir": dir.path().join("cache").to_str().unwrap()})
        .to_string(),
    )
    .unwrap();

    // Today the license has expired; the engine's mark records today.
    let (s, _) = status(&cfg, None);
    assert_eq!(s["tier"], "community");
    assert_eq!(s["clock"]["clock_behind"], false);

    // Five days back, it would still run: the ledger says otherwise.
    let (s, stderr) = status(&cfg, Some(5));
    assert_eq!(s["tier"], "community", "{s}");
    assert_eq!(s["clock"]["clock_behind"], true, "{s}");
    assert!(
        stderr.contains("WARN: System clock moved backwards"),
        "{stderr}"
    );

    // Control: without the ledger's file, faketime really does revive it.
    std::fs::remove_file(dir.path().join("cache/state.json")).unwrap();
    let (s, _) = status(&cfg, Some(5));
    assert_eq!(s["tier"], "enterprise", "{s}");
}
