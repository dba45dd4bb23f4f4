//! The operator CLI: `status` and `inspect`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::{json, Value};

fn cli(args: &[&str]) -> Output {
    common::cli()
        .args(args)
        .env_remove("SOFTCLIENT4ES_LICENSE_KEY")
        .env_remove("SOFTCLIENT4ES_API_KEY")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `dir/license.json`: the static token `key`, the test keys, a cache in `dir/c`, and the
/// entries of `extra`.
fn static_config(dir: &Path, key: &str, extra: Value) -> PathBuf {
    let cfg = dir.join("license.json");
    let mut body = json!({"key": key, "public-keys": jwks(), "cache-dir": dir.join("c")});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    std::fs::write(&cfg, body.to_string()).unwrap();
    cfg
}

#[test]
fn status_prints_the_document_and_logs_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = static_config(
        dir.path(),
        &mint(&claims("team", wall_now() + 10 * DAY)),
        json!({}),
    );
    let out = cli(&["status", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success());
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["tier"], "team");
    assert_eq!(v["source"], "static");
    let err = text(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("lic4es: INFO: License from static token: Team")),
        "{err}"
    );

    let out = cli(&["status", "--config", cfg.to_str().unwrap(), "--summary"]);
    assert!(text(&out.stdout).starts_with("tier=team source=static status=\"Active\""));
}

#[test]
fn status_with_a_bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("license.json");
    std::fs::write(&cfg, r#"{"refresh": {"every": "1h"}}"#).unwrap();
    let out = cli(&["status", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("refresh.every"));
}

#[test]
fn inspect_explains_acceptance_and_rejection() {
    let keys = keys_dir().join("jwks.json");
    let keys = keys.to_str().unwrap();

    let good = mint(&claims("enterprise", wall_now() + 5 * DAY));
    let out = cli(&["inspect", &good, "--keys", keys]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("signature: ok (kid test-ed-1)"), "{s}");
    assert!(s.contains("verdict: accepted as Enterprise"), "{s}");
    assert!(s.contains("\"org_name\": \"Acme Corp\""), "{s}");

    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        &parts[2][..parts[2].len() - 4]
    );
    let out = cli(&["inspect", &forged, "--keys", keys]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("signature: FAILED"));

    let expired = mint(&claims("pro", wall_now() - 30 * DAY));
    let out = cli(&["inspect", &expired, "--keys", keys]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("expired 30 days ago, beyond the grace period"));

    // Without keys: everything else is checked, and the verdict says what was not.
    let out = cli(&["inspect", &good]);
    assert_eq!(out.status.code(), Some(4));
    let s = text(&out.stdout);
    assert!(s.contains("signature: not checked (no --keys)"), "{s}");
    assert!(s.contains("expiry: valid until"), "{s}");
    assert!(
        s.contains("verdict: nothing wrong in the claims, issuer or expiry (Enterprise); signature not checked (no --keys)"),
        "{s}"
    );
    assert!(!s.contains("rejected"), "{s}");
    let out = cli(&["inspect", &expired]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unverified and expired is still rejected"
    );

    // A file name given bare gets a hint.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token.jwt");
    std::fs::write(&file, &good).unwrap();
    let out = cli(&["inspect", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "pass @{} to read the token from it",
            file.display()
        )),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["inspect", &format!("@{}", file.display()), "--keys", keys]);
    assert!(out.status.success());

    let out = cli(&["inspect", "garbage"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a token"));
}

#[test]
fn inspect_and_status_refuse_endless_input_instead_of_reading_it() {
    // Before the bound, `inspect @/dev/zero` read until memory ran out.
    let out = cli(&["inspect", "@/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("over 1024 KiB"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["status", "--config", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("over 1024 KiB"));
    // A token from a pipe is still read.
    let tok = mint(&claims("pro", wall_now() + 10 * DAY));
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, jwks().to_string()).unwrap();
    let mut child = common::cli()
        .args(["inspect", "-", "--keys", keys.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(tok.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stdout).contains("pro"), "{}", text(&out.stdout));
}

#[test]
fn show_license_prints_the_row_softclient4es_shows() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = claims("pro", wall_now() + 10 * DAY + 3600);
    c["trial"] = json!(true);
    c["platform"] = json!("staging");
    let cfg = static_config(dir.path(), &mint(&c), json!({}));
    let out = cli(&[
        "status",
        "--config",
        cfg.to_str().unwrap(),
        "--show-license",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(
        lines[0],
        [
            "license_type",
            "platform",
            "max_materialized_views",
            "max_result_rows",
            "max_clusters",
            "max_joins",
            "expires_at",
            "days_remaining",
            "status"
        ]
    );
    let row = &lines[1];
    assert_eq!(row[0], "Pro (trial)");
    assert_eq!(row[1], "STAGING");
    assert_eq!(&row[2..6], ["50", "unlimited", "5", "unlimited"]);
    assert!(row[6].ends_with('Z'), "{stdout}");
    assert_eq!(row[7], "10");
    assert_eq!(row[8], "Active");

    // Community: its quotas, no expiry.
    let cfg2 = dir.path().join("community.json");
    std::fs::write(
        &cfg2,
        json!({"cache-dir": dir.path().join("c2").to_str().unwrap()}).to_string(),
    )
    .unwrap();
    let out = cli(&[
        "status",
        "--config",
        cfg2.to_str().unwrap(),
        "--show-license",
    ]);
    let stdout = text(&out.stdout);
    let row: Vec<&str> = stdout
        .lines()
        .nth(1)
        .unwrap()
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(
        row,
        [
            "Community",
            "PRODUCTION",
            "1",
            "10000",
            "1",
            "2",
            "never",
            "-",
            "No license"
        ]
    );
}

#[test]
fn require_tier_exits_3_when_the_tier_is_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = static_config(
        dir.path(),
        &mint(&claims("team", wall_now() - 30 * DAY)),
        json!({"log-level": "error"}),
    );
    let c = cfg.to_str().unwrap();
    // The token expired beyond its grace: Community.
    let out = cli(&[
        "status",
        "--config",
        c,
        "--summary",
        "--require-tier",
        "pro",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("tier=community"));
    assert!(text(&out.stderr).contains("below the required one"));
    let out = cli(&[
        "status",
        "--config",
        c,
        "--summary",
        "--require-tier",
        "community",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = cli(&["status", "--config", c, "--require-tier", "gold"]);
    assert_eq!(out.status.code(), Some(2));
    // A valid Team token meets pro and team, not enterprise.
    std::fs::write(
        &cfg,
        json!({"key": mint(&claims("team", wall_now() + 30 * DAY)), "public-keys": jwks(),
               "cache-dir": dir.path().join("c").to_str().unwrap(), "log-level": "error"})
        .to_string(),
    )
    .unwrap();
    for (tier, code) in [("pro", 0), ("team", 0), ("enterprise", 3)] {
        let out = cli(&["status", "--config", c, "--summary", "--require-tier", tier]);
        assert_eq!(out.status.code(), Some(code), "{tier}");
    }
}

#[test]
fn relative_paths_in_a_config_file_are_taken_from_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("token.jwt"),
        mint(&claims("team", wall_now() + 10 * DAY)),
    )
    .unwrap();
    std::fs::write(
        conf.join("license.json"),
        json!({"key-file": "token.jwt", "public-keys": jwks(), "cache-dir": "cache"}).to_string(),
    )
    .unwrap();
    // Run from elsewhere: the paths still name the files beside the config.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = common::cli()
        .args(["status", "--config"])
        .arg(conf.join("license.json"))
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["tier"], "team", "{v}");
    assert!(
        conf.join("cache").is_dir(),
        "the cache is beside the config"
    );
    assert!(!elsewhere.path().join("cache").exists());
    // Relative to the working directory a relative --config works the same.
    let out = common::cli()
        .args(["status", "--summary", "--config", "conf/license.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).starts_with("tier=team"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn watch_says_how_long_it_watches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = static_config(
        dir.path(),
        &mint(&claims("pro", wall_now() + 10 * DAY)),
        json!({}),
    );
    let out = cli(&["watch", "--config", cfg.to_str().unwrap(), "--seconds", "0"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("tier=pro"));
    assert!(
        text(&out.stderr).contains("watching for 0 s"),
        "{}",
        text(&out.stderr)
    );
    let help = text(&cli(&["help"]).stdout);
    assert!(help.contains("watch --config FILE [--seconds N]") && help.contains("(default 10)"));
}

/// The demo tutorial's status command, with `examples/demo-config.json` as it is: paths in a
/// --config FILE are FILE's, so the demo's tier comes from any working directory and
/// nothing is left in it. The config is copied beside a token the demo key signs now
/// (the committed demo token would tie the test to its expiry).
#[test]
fn the_demo_status_command_gives_the_demo_tier_from_any_directory() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/tutorials/demo.md")).unwrap();
    assert!(page.contains("lic4es status --config examples/demo-config.json --summary"));

    let tree = tempfile::tempdir().unwrap();
    let examples = tree.path().join("examples");
    std::fs::create_dir(&examples).unwrap();
    std::fs::copy(
        root.join("examples/demo-config.json"),
        examples.join("demo-config.json"),
    )
    .unwrap();
    let key = jsonwebtoken::EncodingKey::from_ed_pem(
        &std::fs::read(root.join("examples/demo-private-key.pem")).unwrap(),
    )
    .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("demo-2026".into());
    let mut demo = claims("pro", wall_now() + 30 * DAY);
    demo["sub"] = json!("org-demo-001");
    std::fs::write(
        examples.join("demo-token.jwt"),
        jsonwebtoken::encode(&header, &demo, &key).unwrap(),
    )
    .unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let absolute = examples.join("demo-config.json");
    for (dir, config) in [
        (tree.path(), "examples/demo-config.json".to_string()),
        (elsewhere.path(), absolute.to_str().unwrap().to_string()),
    ] {
        let out = common::cli()
            .args(["status", "--summary", "--config", &config])
            .current_dir(dir)
            .env_remove("SOFTCLIENT4ES_LICENSE_KEY")
            .env_remove("SOFTCLIENT4ES_API_KEY")
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            stdout.starts_with("tier=pro source=static"),
            "from {}: {stdout}",
            dir.display()
        );
    }
    // Nothing left where it ran; the cache went where the config says, beside the tree.
    assert!(std::fs::read_dir(elsewhere.path())
        .unwrap()
        .next()
        .is_none());
    assert!(tree.path().join("target/demo/status-cache").is_dir());
}

#[path = "common/synopsis.rs"]
mod synopsis;

/// The `lic4es` reference's synopsis names only commands and flags the binary has.
#[test]
fn the_cli_reference_names_the_commands_and_flags_the_binary_has() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference/cli.md");
    let checked = synopsis::check_synopsis(&page, common::cli, "lic4es");
    assert!(checked >= 4, "checked {checked} lines");
}
