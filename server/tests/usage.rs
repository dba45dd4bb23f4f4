//! Seat usage reports (`docs/explanation/server.md`): seats sampled into hours, refusals counted as
//! they happen, and the report by hour or day from the admin API (JSON and CSV) and the
//! CLI. The server's clock is moved by the test and the sampler is called as the
//! server's minute timer calls it.

mod common;

use common::*;
use license_server::usage::HourUsage;
use serde_json::{json, Value};

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn acquire(s: &Server, key: &str, hw: &str) -> (u16, Value) {
    s.acquire(key, json!({"hardware_id": hw, "instance_id": format!("i-{hw}"), "version": "1", "nonce": NONCE}))
}

/// One run of the server's minute sampler.
fn sample(s: &Server) -> usize {
    common::block_on(license_server::service::usage::sample(&s.state)).unwrap()
}

fn rfc(t: i64) -> String {
    lic4es::clock::rfc3339(t)
}

#[test]
fn peaks_means_refusals_and_offline_hours_are_reported_by_hour_and_day() {
    let s = Server::start();
    let (license, key) = s.license("team", json!({"seats": 2}));
    let (other, other_key) = s.license("team", json!({"seats": 5}));
    let hour = s.state.now() - s.state.now().rem_euclid(HOUR);
    // Two seats in use for two minutes, a third machine refused, then one released.
    let (_, a) = acquire(&s, &key, "a");
    assert_eq!(acquire(&s, &key, "b").0, 200);
    assert_eq!(acquire(&s, &key, "c").0, 403);
    assert_eq!(acquire(&s, &other_key, "x").0, 200);
    assert_eq!(sample(&s), 2, "every license with sessions");
    s.advance(60);
    assert_eq!(sample(&s), 2);
    s.advance(60);
    let (code, _) = s.release(&key, json!({"session_id": a["session_id"]}));
    assert_eq!(code, 204);
    sample(&s);

    let path = format!(
        "/admin/usage?license={license}&bucket=hour&from={}&to={}",
        rfc(hour),
        rfc(hour + 2 * HOUR)
    );
    let (code, v) = s.admin("GET", &path, Value::Null);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["limit"], 2);
    assert_eq!(v["bucket"], "hour");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["start"], rfc(hour));
    assert_eq!(rows[0]["peak"], 2);
    assert_eq!(rows[0]["refusals"], 1);
    // 2 + 2 + 1 seats for a minute each: 300 seat-seconds in the hour.
    assert_eq!(rows[0]["mean"], 0.08);
    assert_eq!(rows[0]["offline_hours"], 0.0);
    assert_eq!(
        (rows[1]["peak"].as_u64(), rows[1]["mean"].as_f64()),
        (Some(0), Some(0.0))
    );
    // The other license is reported apart.
    let (_, v) = s.admin(
        "GET",
        &format!(
            "/admin/usage?license={other}&bucket=hour&from={}",
            rfc(hour)
        ),
        Value::Null,
    );
    assert_eq!(v["rows"][0]["peak"], 1, "{v}");
    assert_eq!(v["rows"][0]["refusals"], 0, "{v}");

    // By day, the last 30 days unless asked: the day holding the hour has its numbers.
    let (_, v) = s.admin(
        "GET",
        &format!("/admin/usage?license={license}"),
        Value::Null,
    );
    let rows = v["rows"].as_array().unwrap();
    assert!((30..=31).contains(&rows.len()), "{v}");
    let today = rows.last().unwrap();
    assert_eq!(
        (today["peak"].as_u64(), today["refusals"].as_u64()),
        (Some(2), Some(1))
    );

    // CSV for a spreadsheet.
    let auth = format!("Bearer {ADMIN}");
    let a = common::http::exchange(
        s.port,
        &format!("GET {path} HTTP/1.1"),
        &[("Authorization", auth.as_str()), ("Accept", "text/csv")],
        b"",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(a.status, 200);
    assert!(a.head.contains("content-type: text/csv"), "{}", a.head);
    let csv = a.text();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "license,start,peak,mean,refusals,offline_hours");
    assert_eq!(lines[1], format!("{license},{},2,0.08,1,0", rfc(hour)));
    assert_eq!(lines.len(), 3);

    for bad in [
        "/admin/usage".to_string(),
        format!("/admin/usage?license={license}&bucket=week"),
        format!("/admin/usage?license={license}&from=yesterday"),
        format!(
            "/admin/usage?license={license}&from={}&to={}",
            rfc(hour),
            rfc(hour - 1)
        ),
        format!("/admin/usage?license={license}&bucket=hour&from=2000-01-01"),
        "/admin/usage?license=%3Cscript%3E".to_string(),
    ] {
        let (code, v) = s.admin("GET", &bad, Value::Null);
        assert_eq!(code, 400, "{bad}: {v}");
        assert!(v["error"].is_string(), "{bad}: {v}");
    }
    let (code, _) = s.json("GET", &path, Some("wrong"), Value::Null);
    assert_eq!(code, 401);
}

#[test]
fn offline_sessions_count_as_offline_session_hours() {
    let s = Server::start();
    let (license, key) = s.license("team", json!({"seats": 3, "offline_grace_days": 3}));
    assert_eq!(acquire(&s, &key, "a").0, 200);
    // Silent past its TTL: it lapses into offline use, and each sample counts it.
    s.advance(2 * 300 + 61);
    let start = s.state.now();
    for _ in 0..30 {
        sample(&s);
        s.advance(60);
    }
    let (_, v) = s.admin(
        "GET",
        &format!(
            "/admin/usage?license={license}&bucket=day&from={}&to={}",
            rfc(start),
            rfc(start + DAY)
        ),
        Value::Null,
    );
    let rows = v["rows"].as_array().unwrap();
    let offline: f64 = rows
        .iter()
        .map(|r| r["offline_hours"].as_f64().unwrap())
        .sum();
    assert_eq!(offline, 0.5, "thirty offline minutes: {v}");
    assert!(rows.iter().all(|r| r["peak"] == 0), "{v}");
}

#[test]
fn the_cli_prints_the_report_from_the_store() {
    let s = Server::start();
    let (license, _) = s.license("team", json!({"seats": 4}));
    let day = s.state.now() - s.state.now().rem_euclid(DAY);
    let hours = [
        HourUsage::sample(&license, day - DAY + 10 * HOUR, 3, 1),
        HourUsage::sample(&license, day + 9 * HOUR, 4, 0),
        HourUsage::refusal(&license, day + 9 * HOUR, 4),
    ];
    s.state.store.add_usage(&hours).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    let data = s.state.config.data_dir.to_str().unwrap();
    std::fs::write(&config, format!("data-dir = {data:?}\n")).unwrap();
    let from = rfc(day - DAY);
    let to = rfc(day + DAY);
    let csv = common::process::cli(
        &config,
        &[
            "usage",
            "--license",
            &license,
            "--from",
            &from,
            "--to",
            &to,
            "--csv",
        ],
    );
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "license,start,peak,mean,refusals,offline_hours".to_string(),
            format!("{license},{},3,0,0,0.02", rfc(day - DAY)),
            format!("{license},{},4,0,1,0", rfc(day)),
        ]
    );
    let table = common::process::cli(
        &config,
        &[
            "usage",
            "--license",
            &license,
            "--from",
            &from[..10],
            "--to",
            &to[..10],
            "--bucket",
            "hour",
        ],
    );
    assert_eq!(table.lines().count(), 1 + 48, "{table}");
    assert!(table.lines().next().unwrap().starts_with("START"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(&config)
        .args(["usage", "--license", &license, "--bucket", "week"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bucket"));
}
