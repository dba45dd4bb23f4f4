//! What a vendor drops into their monitoring (`server/deploy/`): the Prometheus alert
//! rules with their promtool unit tests, the Grafana dashboard, the systemd unit.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The metric names `docs/reference/metrics.md` lists, plus Prometheus's own `up`.
const CONTRACT_METRICS: [&str; 10] = [
    "lic4es_sessions",
    "lic4es_seats_in_use",
    "lic4es_seats_limit",
    "lic4es_offline_abuse_flagged",
    "lic4es_offline_session_seconds",
    "lic4es_http_requests_total",
    "lic4es_http_request_duration_seconds",
    "lic4es_tokens_issued_total",
    "lic4es_store_up",
    "up",
];

/// Metric names used in a PromQL expression (identifiers followed by `{`, `[` or `)`).
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_') {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            if word.starts_with("lic4es_") {
                let base = word
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count")
                    .to_string();
                out.push(base);
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
#[cfg_attr(lic4es_no_promtool, ignore = "no promtool: apt-get install prometheus")]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    assert!(
        common::have_tool("promtool"),
        "promtool (build.rs marks this test ignored without it)"
    );
    let dir = deploy().join("prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn alert_rules_cover_the_contract_s_five_cases_with_contract_metrics() {
    let text = std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).unwrap();
    for alert in [
        "LicenseSessionsOffline",
        "LicenseOfflineAbuse",
        "LicenseSeatsNearlyFull",
        "LicenseServerDown",
        "LicenseStoreDown",
    ] {
        assert!(text.contains(&format!("alert: {alert}")), "{alert}");
    }
    for m in metrics_in(&text) {
        assert!(
            CONTRACT_METRICS.contains(&m.as_str()),
            "{m} is not a documented metric"
        );
    }
}

#[test]
fn the_grafana_dashboard_shows_what_the_contract_asks_with_its_metric_names() {
    let text = std::fs::read_to_string(deploy().join("grafana/license-server.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).expect("valid JSON");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    let used: Vec<String> = exprs.iter().flat_map(|e| metrics_in(e)).collect();
    for m in &used {
        assert!(
            CONTRACT_METRICS.contains(&m.as_str()),
            "{m} is not a documented metric"
        );
    }
    // Sessions online/offline, seats per license, offline durations, request rates and
    // latencies.
    for m in [
        "lic4es_sessions",
        "lic4es_seats_in_use",
        "lic4es_offline_session_seconds",
        "lic4es_http_requests_total",
        "lic4es_http_request_duration_seconds",
    ] {
        assert!(used.iter().any(|u| u == m), "{m} not shown");
    }
}

#[test]
fn the_systemd_unit_runs_serve_privately_and_restarts() {
    let unit = std::fs::read_to_string(deploy().join("systemd/license-server.service")).unwrap();
    for line in [
        "ExecStart=/usr/local/bin/license-server --config /etc/license-server/server.toml serve",
        "Restart=on-failure",
        "StateDirectoryMode=0700",
        "UMask=0077",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
}

#[test]
#[cfg_attr(lic4es_no_promtool, ignore = "no promtool: apt-get install prometheus")]
fn the_server_exports_every_contract_metric_in_a_form_promtool_accepts() {
    assert!(
        common::have_tool("promtool"),
        "promtool (build.rs marks this test ignored without it)"
    );
    let s = common::Server::start();
    let (_, key) = s.license("pro", serde_json::json!({"seats": 2}));
    let (status, _) = s.json(
        "POST",
        "/api/v1/licenses/acquire",
        Some(&key),
        serde_json::json!({"hardware_id": "h", "instance_id": "i", "version": "1",
                           "nonce": common::NONCE}),
    );
    assert_eq!(status, 200);
    let text = s.metrics();
    for name in CONTRACT_METRICS.iter().filter(|m| m.starts_with("lic4es_")) {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} is not exported:\n{text}"
        );
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
