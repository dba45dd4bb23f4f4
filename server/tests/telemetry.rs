//! Telemetry kept bounded: latest value per instance, a row per license and day, nothing
//! stored twice in a minute, a cap on instances, pruning by age.

mod common;

use common::*;
use serde_json::{json, Value};

fn rows(s: &Server, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(s.state.config.database_path()).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn report(s: &Server, key: &str, instance: &str, queries: u64, padding: usize) -> u16 {
    let mut body = fetch_body(NONCE);
    body["instance_id"] = json!(instance);
    body["telemetry"]["queries_total"] = json!(queries);
    if padding > 0 {
        body["telemetry"]["padding"] = json!("p".repeat(padding));
    }
    s.json("POST", "/api/v1/licenses/token", Some(key), body).0
}

#[test]
fn five_hundred_requests_from_one_key_keep_one_row_each() {
    let s = Server::start();
    let (_, key) = new_key(&s, "pro");
    let db = s.state.config.database_path();
    let size = || {
        ["", "-wal"]
            .iter()
            .map(|x| {
                std::fs::metadata(format!("{}{x}", db.display()))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum::<u64>()
    };
    let before = size();
    // Before: every body was a row (500 requests of 60 KB: +31 MB).
    for i in 0..500 {
        assert_eq!(report(&s, &key, "i-1", i, 60_000), 200, "answered as usual");
    }
    assert_eq!(rows(&s, "telemetry_latest"), 1);
    assert_eq!(rows(&s, "telemetry_daily"), 1);
    let (_, daily) = s.admin("GET", "/admin/telemetry/daily", Value::Null);
    assert_eq!(
        daily[0]["reports"], 1,
        "not stored twice in a minute: {daily}"
    );
    let grown = size() - before;
    assert!(grown < 256 * 1024, "store grew by {grown} bytes");
    println!("500 requests: store grew by {grown} bytes; rows: 1 latest, 1 daily");
}

#[test]
fn daily_rows_sum_what_instances_did() {
    let s = Server::start();
    let (license, key) = new_key(&s, "pro");
    for (q, instance) in [(10, "a"), (5, "b")] {
        report(&s, &key, instance, q, 0);
    }
    s.advance(61);
    report(&s, &key, "a", 25, 0); // +15
    s.advance(61);
    report(&s, &key, "b", 2, 0); // restarted: +2
    let (_, daily) = s.admin(
        "GET",
        &format!("/admin/telemetry/daily?license={license}"),
        Value::Null,
    );
    assert_eq!(daily[0]["reports"], 4, "{daily}");
    assert_eq!(daily[0]["instances"], 2);
    assert_eq!(daily[0]["queries"], 10 + 5 + 15 + 2);
    assert_eq!(daily[0]["peak_mvs_active"], 1);
    let (_, latest) = s.admin("GET", "/admin/telemetry", Value::Null);
    assert_eq!(latest.as_array().unwrap().len(), 2);
    assert_eq!(latest[0]["instance_id"], "b", "newest first: {latest}");
    assert_eq!(latest[0]["telemetry"]["queries_total"], 2);
}

#[test]
fn instances_per_license_are_capped_and_old_rows_pruned() {
    let s = Server::start();
    let state = s.state.clone();
    for i in 0..1100 {
        let sample = license_server::telemetry::Sample {
            queries_total: Some(i),
            ..Default::default()
        };
        state
            .store
            .record_telemetry("lic-cap", &format!("inst-{i}"), &sample, NOW + i as i64)
            .unwrap();
    }
    assert_eq!(
        rows(&s, "telemetry_latest"),
        license_server::telemetry::MAX_INSTANCES_PER_LICENSE as i64
    );
    // The least recently heard went first.
    let conn = rusqlite::Connection::open(s.state.config.database_path()).unwrap();
    let gone: i64 = conn
        .query_row(
            "SELECT count(*) FROM telemetry_latest WHERE instance_id = 'inst-0'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gone, 0);
    s.advance(91 * 86_400);
    common::block_on(license_server::service::audit::prune_old(&state)).unwrap();
    assert_eq!(rows(&s, "telemetry_latest"), 0);
    assert_eq!(rows(&s, "telemetry_daily"), 0);
}
