//! Operating the server as its operator does: `license-server serve` as a process, the
//! offline-abuse WARN in its log, and the admin CLI (`abuse`, `audit`, every `--help`)
//! against the configured store while it runs.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::process::{request, ServerProcess};
use common::NONCE;
use serde_json::{json, Value};

fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn abuse_is_warned_about_once_and_the_cli_reads_it_and_the_audit_trail_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed port: `sessions list` finds the server through the config's `listen`.
    let port = common::free_port();
    let config = common::process::server_toml(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\nmetrics-listen = \"none\"\n\
             access-log = true\nadmin-token = \"adm-0123456789abcdef-0123456789ab\"\n"
        ),
    );
    let made = cli(&config, &["keygen"]);
    assert!(made.status.success());
    // A second keygen keeps the key and says where its public half is.
    let again = cli(&config, &["keygen"]);
    assert!(!again.status.success());
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(why.contains("`license-server jwks`"), "{why}");
    assert_eq!(stdout(&cli(&config, &["jwks"])), stdout(&made));
    let out = cli(
        &config,
        &[
            "api-key",
            "create",
            "--sub",
            "org-turns",
            "--tier",
            "pro",
            "--days",
            "30",
            "--seats",
            "1",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let key = stdout(&out).trim().to_string();
    let server = ServerProcess::start(&config);
    assert_eq!(server.port, port);

    // Nothing flagged yet: exit 0.
    let out = cli(&config, &["abuse"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("0 of 0 licenses"), "{}", stdout(&out));

    let now = common::wall_now();
    // Seven machines take turns on the seat, each back after four days offline from its
    // cached token: the acquire reports the period. The last one keeps the seat.
    let mut old = String::new();
    for i in 0..7 {
        let hw = if i == 6 {
            "hw".to_string()
        } else {
            format!("hw-{i}")
        };
        let body = json!({"hardware_id": hw, "instance_id": "i", "version": "1",
                          "nonce": NONCE, "offline_cycles_30d": 1,
                          "offline_since": lic4es::clock::rfc3339(now - 4 * 86_400)});
        let (code, v) = request(port, "POST", "/api/v1/licenses/acquire", &key, &body);
        assert_eq!(code, 200, "{v}");
        old = v["session_id"].as_str().unwrap().to_string();
        if i < 6 {
            let release = json!({"session_id": old});
            let (code, _) = request(port, "DELETE", "/api/v1/licenses/release", &key, &release);
            assert_eq!(code, 204);
        }
    }
    let logged = server.expect("Possible offline abuse");
    let warn = logged.last().unwrap();
    assert_eq!(
        warn,
        "license-server: WARN Possible offline abuse: org-turns (6 offline cycles, 24.0 days \
         offline in 30 days)"
    );
    // The seventh cycle keeps it flagged without a second warning.
    let (code, _) = request(
        port,
        "GET",
        "/admin/abuse",
        "adm-0123456789abcdef-0123456789ab",
        &Value::Null,
    );
    assert_eq!(code, 200);
    let (code, _) = request(port, "GET", "/healthz", "x", &Value::Null);
    assert_eq!(code, 200);
    std::thread::sleep(Duration::from_millis(200));
    let more: Vec<String> = server.lines.try_iter().collect();
    assert!(
        !more.iter().any(|l| l.contains("Possible offline abuse")),
        "warned twice: {more:?}"
    );

    // The CLI, against the store the server uses: flagged → exit 3.
    let out = cli(&config, &["abuse"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = stdout(&out);
    let row = text.lines().find(|l| l.starts_with("org-turns")).unwrap();
    assert!(
        row.contains(" 7 ") && row.contains("28.0") && row.ends_with("yes"),
        "{text}"
    );
    assert!(text.contains("1 of 1 licenses"), "{text}");

    // The audit trail: newest first, paged.
    let out = cli(
        &config,
        &["audit", "--license", "org-turns", "--limit", "3"],
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().skip(1).take(3).collect();
    assert!(
        rows[0].contains("acquire") && rows[1].contains("release"),
        "{text}"
    );
    assert!(rows
        .iter()
        .all(|r| r.contains("org-turns") && r.contains("127.0.0.1:")));
    let next = text
        .lines()
        .last()
        .unwrap()
        .split("--before ")
        .nth(1)
        .unwrap_or_else(|| panic!("no next page in {text}"))
        .to_string();
    let out = cli(
        &config,
        &["audit", "--license", "org-turns", "--before", &next],
    );
    let text = stdout(&out);
    // The CLI's own changes are in the trail too.
    let created = text.lines().find(|l| l.contains("license_create")).unwrap();
    assert!(
        created.contains(" cli ") && created.contains("tier pro"),
        "{text}"
    );
    assert!(text
        .lines()
        .any(|l| l.contains("api_key_create") && l.contains("key sk-")));
    assert!(text.lines().last().unwrap().ends_with("entries"), "{text}");
    let out = cli(&config, &["audit", "--license", "<b>"]);
    assert_eq!(out.status.code(), Some(2));

    // Sessions, through the running server's admin API.
    let out = cli(&config, &["sessions", "list", "--license", "org-turns"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with(&old))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("online") && row.ends_with("hw"), "{row}");
    assert!(
        text.contains("OFFLINE FOR") && text.ends_with("1 sessions\n"),
        "{text}"
    );
    let out = cli(&config, &["sessions", "kick", &old]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&cli(&config, &["sessions", "list"]));
    assert!(text.ends_with("0 sessions\n"), "{text}");
    assert_eq!(
        cli(&config, &["sessions", "kick", &old]).status.code(),
        Some(2)
    );
}

#[test]
fn every_command_has_its_own_help_naming_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("none.toml");
    std::fs::write(&config, "").unwrap();
    let commands: &[&[&str]] = &[
        &["serve"],
        &["keygen"],
        &["jwks"],
        &["mint"],
        &["api-key"],
        &["api-key", "create"],
        &["api-key", "revoke"],
        &["license"],
        &["license", "update"],
        &["license", "set-tier"],
        &["license", "revoke"],
        &["license", "show"],
        &["sessions"],
        &["sessions", "list"],
        &["sessions", "kick"],
        &["abuse"],
        &["audit"],
        &["migrate"],
    ];
    for words in commands {
        let mut args = words.to_vec();
        args.push("--help");
        let out = cli(&config, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        let text = stdout(&out);
        assert!(
            text.starts_with("usage: license-server"),
            "{args:?}: {text}"
        );
        assert!(text.contains(words[0]), "{args:?}: {text}");
        // A command's help is its own, not the whole list.
        assert!(!text.contains("commands:"), "{args:?}: {text}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
    let text = stdout(&cli(&config, &["serve", "--help"]));
    assert!(text.contains("127.0.0.1:8700") && text.contains("./license-server-data"));
    let out = cli(&config, &["--help"]);
    assert!(stdout(&out).contains("commands:"));
}

/// The CLI lists every session, page after page (the admin API answers 100 at a time),
/// and a session id is escaped as one path segment.
#[test]
fn sessions_list_pages_through_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = common::process::vendor_config(dir.path(), port, common::ADMIN);
    let key = stdout(&cli(
        &config,
        &[
            "api-key", "create", "--tier", "Team", "--sub", "org-many", "--days", "30", "--seats",
            "300",
        ],
    ))
    .trim()
    .to_string();
    let server = ServerProcess::start(&config);
    for n in 0..230 {
        let hw = format!("hw-{n}");
        assert_eq!(common::process::acquire_as(port, &key, &hw, n), 200);
    }
    let out = cli(&config, &["sessions", "list", "--license", "org-many"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    assert!(text.ends_with("230 sessions\n"), "{text}");
    let out = cli(&config, &["sessions", "kick", "a/../b c"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no session a/../b c"),
        "{out:?}"
    );
    server.stop();
}
