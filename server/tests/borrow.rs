//! Borrowing through the real processes: `lic4es borrow` checks an online seat out, the
//! engine then runs its paid tier with the server stopped and no network at all (a
//! restart included), the server counts the seat throughout (across its own restart),
//! and `lic4es return` gives it back. A license whose policy allows no borrowing says so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::process::{
    acquire_as, api_key, cli, engine_config, lic4es_cli, listing, vendor, ServerProcess, Vendor,
};
use serde_json::{json, Value};

/// `lic4es ARGS`; with `offline`, in a network namespace of its own where nothing can be
/// reached (`unshare --map-root-user --net`).
fn lic4es(args: &[&str], offline: bool) -> Output {
    let mut cmd = if offline {
        let mut c = Command::new("unshare");
        c.args(["--map-root-user", "--net"]).arg(lic4es_cli());
        c
    } else {
        Command::new(lic4es_cli())
    };
    cmd.args(args)
        .env_remove("SOFTCLIENT4ES_API_KEY")
        .env_remove("SOFTCLIENT4ES_LICENSE_KEY")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// An engine in seat mode with the license's API key.
fn engine(dir: &Path, name: &str, port: u16, key: &str, jwks: &Value) -> PathBuf {
    let url = format!("http://127.0.0.1:{port}");
    let seat = json!({"api-url": url, "api-key": key, "seat.enabled": true});
    engine_config(dir, name, jwks, seat)
}

fn status(config: &Path, offline: bool) -> Value {
    let out = lic4es(&["status", "--config", config.to_str().unwrap()], offline);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("status: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

/// An acquire of one seat by another machine: the HTTP status.
fn acquire(port: u16, key: &str, n: u32) -> u16 {
    acquire_as(port, key, &format!("hw-other-{n}"), n)
}

fn audit_kinds(port: u16) -> Vec<String> {
    let audit = listing(port, "audit", "org-trip");
    let kinds = common::strings(&audit, "type");
    kinds.into_iter().map(str::to_string).collect()
}

#[test]
fn a_borrowed_seat_runs_offline_across_restarts_counts_on_the_server_and_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let Vendor { port, config, jwks } = vendor(dir.path());
    // A Team license of one seat whose own terms allow borrows of an hour (Team's policy
    // allows none), and a Pro one that keeps its tier's: none.
    let key = api_key(
        &config,
        "team",
        "org-trip",
        365,
        &["--seats", "1", "--max-borrow", "1h"],
    );
    let pro_key = cli(
        &config,
        &[
            "api-key", "create", "--tier", "pro", "--sub", "org-pro", "--days", "365",
        ],
    );
    let mut server = ServerProcess::start(&config);
    let laptop = engine(dir.path(), "laptop", port, &key, &jwks);

    // Two hours asked, one granted: the license's max-borrow.
    let asked_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let out = lic4es(
        &[
            "borrow",
            "--config",
            laptop.to_str().unwrap(),
            "--seconds",
            "7200",
        ],
        false,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let until = said
        .strip_prefix("seat borrowed until ")
        .unwrap_or_else(|| panic!("{said}"));
    let until_ms = lic4es::clock::parse_rfc3339(until).unwrap();
    let hour = 3_600_000;
    assert!(
        (asked_at + hour - 5_000..=asked_at + hour + 60_000).contains(&until_ms),
        "{until} for a borrow asked at {asked_at}"
    );

    // The server counts it: the license's one seat is taken, by a session of the borrow.
    assert_eq!(acquire(port, &key, 1), 403, "the one seat is borrowed");
    let sessions = listing(port, "sessions", "org-trip");
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    assert!(sessions[0]["session_id"]
        .as_str()
        .unwrap()
        .starts_with("bor-"));

    // The server stopped and no network at all: the laptop runs Team on the borrow, a
    // fresh engine on its cache-dir (a restart) included, and no longer than the borrow.
    server.kill();
    for _ in 0..2 {
        let s = status(&laptop, true);
        assert_eq!(s["tier"], "team", "{s}");
        assert_eq!(s["mode"], "borrowed", "{s}");
        assert_eq!(s["seat"]["state"], "borrowed", "{s}");
        let borrowed_until = s["seat"]["borrowed_until"].as_str().unwrap();
        assert_eq!(
            lic4es::clock::parse_rfc3339(borrowed_until),
            Some(until_ms),
            "{s}"
        );
        // The token in use is the borrow's and ends with it: no grace after it.
        assert_eq!(
            lic4es::clock::parse_rfc3339(s["expires_at"].as_str().unwrap()),
            Some(until_ms / 1000 * 1000),
            "{s}"
        );
        assert_eq!(s["seat"]["grace_until"], Value::Null, "{s}");
    }

    // Restarted with its seats in memory, the server holds the borrow again.
    let server = ServerProcess::start(&config);
    assert_eq!(
        acquire(port, &key, 2),
        403,
        "still borrowed after the restart"
    );

    // A license that allows no borrowing says so; its seat stays online.
    let desk = engine(dir.path(), "desk", port, &pro_key, &jwks);
    let out = lic4es(
        &[
            "borrow",
            "--config",
            desk.to_str().unwrap(),
            "--seconds",
            "60",
        ],
        false,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("allows no borrowing"), "{err}");
    assert!(err.contains("LIC_ERR_REFRESH_FAILED"), "{err}");

    // Returned: the seat is free again once the engine that took it back has stopped.
    let out = lic4es(&["return", "--config", laptop.to_str().unwrap()], false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "borrowed seat returned");
    assert_eq!(acquire(port, &key, 3), 200, "the seat is free again");
    let s = status(&laptop, true);
    assert_ne!(s["mode"], "borrowed", "{s}");
    let out = lic4es(&["return", "--config", laptop.to_str().unwrap()], false);
    assert_eq!(out.status.code(), Some(1), "nothing left to return");
    assert!(text(&out.stderr).contains("no seat is borrowed"));

    let kinds = audit_kinds(port);
    for kind in ["borrow", "borrow_return"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    server.stop();
}
