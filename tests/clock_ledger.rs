//! The clock ledger (`docs/explanation/time.md`) through the engine, on the injected clock: setting the clock
//! back never extends a license, across a restart, while running, or through the grace
//! period. (Seat mode's offline grace is in `seat.rs`; the real clock through the C ABI,
//! under faketime, in `faketime.rs`.)

mod common;

use common::*;
use lic4es::clock::{parse_rfc3339, Clock};
use lic4es::log::Level;
use lic4es::Tier;
use serde_json::json;

fn state_mark(f: &Fixture) -> Option<i64> {
    let text = std::fs::read_to_string(f.cache_dir().join("state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    parse_rfc3339(v["clock"]["high_water_mark"].as_str()?)
}

#[test]
fn a_clock_set_back_before_a_restart_does_not_revive_a_license_past_its_grace() {
    let f = Fixture::new();
    // Expired 10 days ago, 4 days of grace left.
    let cfg = json!({"key": mint(&claims("pro", NOW - 10 * DAY))});
    let e = f.start(cfg.clone());
    assert_eq!(e.tier(), Tier::Pro);
    f.clock.advance_millis(5 * DAY * 1000);
    assert_eq!(e.status().tier, "community", "grace over");
    drop(e);
    let mark = state_mark(&f).expect("the mark is written at shutdown");
    assert_eq!(mark, (NOW + 5 * DAY) * 1000);

    // The operator sets the clock back five days and restarts.
    f.clock.set_millis(NOW * 1000);
    let e = f.start(cfg.clone());
    assert_eq!(e.tier(), Tier::Community, "{}", f.logs.dump());
    let s = e.status();
    assert!(s.clock.clock_behind);
    assert_eq!(parse_rfc3339(&s.clock.high_water_mark), Some(mark));
    f.logs.expect(Level::Warn, "System clock moved backwards");
    drop(e);

    // Control: with the ledger gone, the same clock would have revived it.
    std::fs::remove_file(f.cache_dir().join("state.json")).unwrap();
    let e = f.start(cfg);
    assert_eq!(e.tier(), Tier::Pro, "without state.json only iat vouches");
    assert!(!e.status().clock.clock_behind);
}

#[test]
fn a_clock_set_back_while_running_does_not_extend_a_license() {
    let f = Fixture::new();
    let e = f.start(json!({"key": mint(&claims("team", NOW + 2 * DAY)), "grace-period": "0s"}));
    assert_eq!(e.tier(), Tier::Team);
    f.clock.advance_millis(DAY * 1000);
    f.clock.advance_millis(-DAY * 1000); // set back a day; monotonic time runs on
    assert_eq!(e.status().tier, "team");
    assert!(e.status().clock.clock_behind);
    // The wall clock reads NOW + 1.5 days; two and a half days have really passed.
    f.clock.advance_millis(3 * DAY * 1000 / 2);
    assert_eq!(f.clock.now_millis(), (NOW + 3 * DAY / 2) * 1000);
    let s = e.status();
    assert_eq!(s.tier, "community", "{}", f.logs.dump());
    assert_eq!(e.tier(), Tier::Community);
    assert_eq!(
        parse_rfc3339(&s.clock.high_water_mark),
        Some((NOW + 5 * DAY / 2) * 1000)
    );
    assert_eq!(
        f.logs.count("System clock moved backwards"),
        1,
        "logged once"
    );
}

#[test]
fn a_small_set_back_is_tolerated_and_the_wall_clock_catching_up_is_believed_again() {
    let f = Fixture::new();
    let e = f.start(json!({"key": mint(&claims("pro", NOW + 30 * DAY))}));
    f.clock.advance_millis(-30 * 60 * 1000);
    assert!(
        !e.status().clock.clock_behind,
        "half an hour is within tolerance"
    );
    f.clock.advance_millis(-2 * 3600 * 1000);
    assert!(e.status().clock.clock_behind);
    // The operator puts the clock right: it is believed again.
    f.clock.set_millis(NOW * 1000);
    assert!(!e.status().clock.clock_behind);
    assert!(!f.logs.has(Level::Error, ""));
}

#[test]
fn a_far_future_mark_is_not_trusted_and_is_replaced() {
    let f = Fixture::new();
    f.write_state_for(
        json!({"version": 1, "clock": {"high_water_mark": "2199-01-01T00:00:00.000Z"}}),
        &f.hardware_id(),
    );
    let e = f.start(json!({"key": mint(&claims("pro", NOW + 30 * DAY))}));
    assert_eq!(e.tier(), Tier::Pro, "{}", f.logs.dump());
    assert!(!e.status().clock.clock_behind);
    f.logs.expect(Level::Warn, "implausibly far ahead");
    drop(e);
    assert_eq!(state_mark(&f), Some(NOW * 1000), "replaced by a sound mark");
}

/// Attack 6: the clock ledger is a JSON field. Edited by hand (or garbled, or copied from
/// another machine) the state does not verify: the clock it protected is not trusted,
/// so no license is judged by it until the license server answers or the file is
/// deleted by hand (a new machine, which the security model says is what that allows).
#[test]
fn an_edited_state_does_not_verify_and_no_license_is_judged_by_the_clock() {
    let f = Fixture::new();
    let key = mint(&claims("pro", NOW + 30 * DAY));
    drop(f.start(json!({"key": key})));
    let state = f.cache_dir().join("state.json");
    let sealed = std::fs::read_to_string(&state).unwrap();
    for edited in [
        sealed.replace("2026-11-22", "2026-10-22"),
        r#"{"version": 1}"#.to_string(),
        "garbage".to_string(),
    ] {
        std::fs::write(&state, &edited).unwrap();
        let e = f.start(json!({"key": key}));
        assert_eq!(e.tier(), Tier::Community, "{edited}");
        f.logs.expect(Level::Warn, "State file does not verify");
        assert!(e
            .status()
            .reason
            .unwrap()
            .contains("state.json does not verify"));
        drop(e);
        assert_eq!(
            std::fs::read_to_string(&state).unwrap(),
            edited,
            "not written over"
        );
    }
    // Deleted by hand: a new machine, whose clock judges the static token.
    std::fs::remove_file(&state).unwrap();
    assert_eq!(f.start(json!({"key": key})).tier(), Tier::Pro);
}

/// At its `iat` a token is valid, so a clock set back to before it would make any token
/// look fresh: a clock that reads before a token's `iat` is a clock set back, and the
/// token is not accepted by it (nor is the `iat` taken as the time instead).
#[test]
fn a_clock_before_a_token_s_iat_is_set_back_and_the_token_is_refused() {
    let f = Fixture::new();
    let mut c = claims("pro", NOW + 30 * DAY);
    c["iat"] = json!(NOW);
    f.clock.set_millis((NOW - 10 * DAY) * 1000);
    let e = f.start(json!({"key": mint(&c)}));
    assert_eq!(e.tier(), Tier::Community);
    let reason = e.status().reason.unwrap();
    assert!(reason.contains("the clock was set back"), "{reason}");
    // Within the clock skew of it, the honest case of a clock a little slow: accepted.
    f.clock.set_millis((NOW - 30) * 1000);
    let e = f.start(json!({"key": mint(&c)}));
    assert_eq!(e.tier(), Tier::Pro, "{}", f.logs.dump());
}

#[test]
fn the_mark_is_written_by_the_hour_not_per_call_and_merged_between_processes() {
    let f = Fixture::new();
    let e = f.start(json!({"key": mint(&claims("pro", NOW + 30 * DAY))}));
    for _ in 0..50 {
        let _ = e.status();
    }
    // The first mark is written by the engine's worker once it has started (on a slow
    // machine, after the calls above): wait for it, real time, a few seconds at most.
    common::wait_for("the mark written at start", 10, || state_mark(&f).is_some());
    let first = state_mark(&f);
    f.clock.advance_millis(30 * 60 * 1000);
    let _ = e.status();
    assert_eq!(
        state_mark(&f),
        first,
        "half an hour later: not rewritten by a call"
    );
    drop(e);
    assert_eq!(
        state_mark(&f),
        Some((NOW + 1800) * 1000),
        "written at shutdown"
    );
    // A process with an older clock does not move the shared mark back.
    f.clock.set_millis((NOW - DAY) * 1000);
    drop(f.start(json!({})));
    assert_eq!(state_mark(&f), Some((NOW + 1800) * 1000));
}
