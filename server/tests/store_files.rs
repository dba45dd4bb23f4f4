//! The server's files on disk: private modes, and a warning for a data dir in a git tree.

use std::os::unix::fs::PermissionsExt;

mod common;

use common::change_entry;

use common::process::{api_key, cli, request, ServerProcess};
use common::wall_now;
use license_server::store::{AuditEvent, License, LicenseStore, SqliteStore};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn database_wal_and_shm_are_created_0600_in_a_0700_dir() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/licenses.sqlite3");
    let store = SqliteStore::open(&db).unwrap();
    let lic = License {
        id: "org-1".into(),
        tier: "pro".into(),
        expires_at: 2_000_000_000,
        ..License::default()
    };
    assert!(store.insert_license(&lic, 1, &change_entry()).unwrap());
    store
        .add_api_key(
            "org-1",
            &license_server::store::new_api_key().unwrap(),
            1,
            &change_entry(),
        )
        .unwrap();
    let wal = dir.path().join("data/licenses.sqlite3-wal");
    let shm = dir.path().join("data/licenses.sqlite3-shm");
    assert!(
        wal.exists() && shm.exists(),
        "WAL mode keeps both while open"
    );
    for p in [&db, &wal, &shm] {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
    assert_eq!(mode(&dir.path().join("data")), 0o700);
}

#[test]
fn a_database_left_readable_by_others_is_made_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.sqlite3");
    drop(SqliteStore::open(&db).unwrap());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&db).unwrap();
    store.ping().unwrap();
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn a_data_dir_inside_a_git_work_tree_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    let data = repo.join("license-server-data");
    let found = license_server::git_work_tree_of(&data).expect("inside a work tree");
    assert_eq!(found, repo.canonicalize().unwrap());
    let outside = dir.path().join("elsewhere/data");
    assert_eq!(license_server::git_work_tree_of(&outside), None);
}

#[test]
fn the_default_data_dir_is_git_ignored() {
    let ignore =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.gitignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "license-server-data/"),
        "{ignore}"
    );
}

#[test]
#[cfg_attr(lic4es_no_git, ignore = "needs git: apt-get install git")]
fn serving_from_a_work_tree_warns_unless_the_data_dir_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    assert!(std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["init", "-q"])
        .status()
        .unwrap()
        .success());
    std::fs::write(repo.join(".gitignore"), "license-server-data/\n").unwrap();
    let mint = |data_dir: &str| {
        std::fs::write(repo.join("s.toml"), format!("data-dir = {data_dir:?}\n")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_license-server"))
            .current_dir(repo)
            .args([
                "--config", "s.toml", "mint", "--tier", "pro", "--sub", "org-x", "--days", "1",
            ])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{said}");
        said
    };
    assert!(!mint("license-server-data").contains("git work tree"));
    let warned = mint("keys-here");
    assert!(
        warned.contains("WARN data-dir keys-here is inside the git work tree"),
        "{warned}"
    );
}

#[test]
fn the_contract_s_server_defaults_hold() {
    let c: license_server::ServerConfig = toml::from_str("").unwrap();
    assert_eq!(c.header_timeout_secs, 10, "headers within 10 s");
    assert_eq!(
        c.idle_timeout_secs, 60,
        "idle connections closed after 60 s"
    );
    assert_eq!(c.audit_retention_days, 90);
    assert_eq!(c.telemetry_retention_days, 90);
    assert_eq!(
        c.max_connections, None,
        "capped by default below the fd limit"
    );
    assert_eq!(c.listen, "127.0.0.1:8700");
    assert!(
        c.database_url.is_none() && c.redis_url.is_none(),
        "embedded stores by default"
    );
}

/// The store checkpoints its WAL on a thread of its own (a commit that fills the WAL
/// would otherwise wait for the disk while every grant of its batch waits on it): what
/// was committed reaches the database file itself soon, long before the WAL would have
/// filled. The database file is read alone, without its WAL, from a copy.
#[test]
fn committed_entries_reach_the_database_file_without_filling_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("licenses.sqlite3");
    let store = SqliteStore::open(&db).unwrap();
    let entries: Vec<AuditEvent> = (0..500)
        .map(|i| AuditEvent {
            at: i,
            kind: "acquire".into(),
            license: format!("org-{i}"),
            ..AuditEvent::default()
        })
        .collect();
    store.append_audits(&entries).unwrap();
    let copy = dir.path().join("copy.sqlite3");
    let in_file = || -> Option<i64> {
        std::fs::copy(&db, &copy).ok()?;
        let c = rusqlite::Connection::open(&copy).ok()?;
        c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .ok()
    };
    common::wait_for("500 entries in the database file itself", 20, || {
        in_file() == Some(500)
    });
}

/// The size of the files in `dir`, in bytes.
fn bytes_in(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Attack on the disk: 20 000 refused acquires from one API key, each from another
/// hardware id and reporting another offline period. Refusals are coalesced (one entry
/// with a count per license, kind and minute) and reports without a session are kept at
/// most 60 a license and hour, so the data directory grows by less than 1 MB (it grew
/// 6.35 MB); the server stopped with SIGTERM leaves no write-ahead log behind.
#[test]
fn twenty_thousand_refused_requests_from_one_key_add_less_than_a_megabyte() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = common::process::server_toml(
        dir.path(),
        "listen = \"127.0.0.1:0\"\nmetrics-listen = \"none\"\n",
    );
    cli(&config, &["keygen"]);
    let key = api_key(&config, "team", "org-flood", 30, &["--seats", "1"]);
    let server = ServerProcess::start(&config);
    let port = server.port;
    let body = |i: usize| {
        serde_json::json!({"hardware_id": format!("hw-{i}"), "instance_id": "i", "version": "1",
            "nonce": "0123456789abcdef0123456789abcdef",
            "offline_since": lic4es::clock::rfc3339(wall_now() - 3600 - i as i64)})
    };
    let (code, _) = request(port, "POST", "/api/v1/licenses/acquire", &key, &body(0));
    assert_eq!(code, 200, "the one seat");
    let before = bytes_in(&data);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (key, body) = (&key, &body);
            scope.spawn(move || {
                for i in 0..5000 {
                    let (code, v) = request(
                        port,
                        "POST",
                        "/api/v1/licenses/acquire",
                        key,
                        &body(1 + t * 5000 + i),
                    );
                    assert_eq!(code, 403, "{v}");
                }
            });
        }
    });
    // Refusals reach the store counted, not one write each: the log stays small while
    // the flood lasts (a write per refused request grew it to 64 MB).
    let wal = data.join("licenses.sqlite3-wal");
    let wal_running = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    server.stop();
    let after = bytes_in(&data);
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    println!(
        "20 000 refused acquires: data dir {before} -> {after} bytes (+{}); write-ahead log \
         {wal_running} bytes during the flood, {wal_len} after SIGTERM",
        after.saturating_sub(before)
    );
    assert!(
        wal_running < 4_000_000,
        "write-ahead log of {wal_running} bytes"
    );
    assert!(after < before + 1_000_000, "{before} -> {after}");
    assert_eq!(wal_len, 0, "the write-ahead log is truncated at shutdown");
    let db = rusqlite::Connection::open(data.join("licenses.sqlite3")).unwrap();
    let refused: i64 = db
        .query_row(
            "SELECT count(*) FROM audit WHERE kind = 'refused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let periods: i64 = db
        .query_row("SELECT count(*) FROM offline_periods", [], |r| r.get(0))
        .unwrap();
    assert!(refused < 100, "{refused} refusal entries");
    assert!(periods <= 60, "{periods} offline periods kept");
    let counted: String = db
        .query_row(
            "SELECT detail FROM audit WHERE kind = 'refused' AND detail LIKE '% more in this minute%' \
             ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(counted.contains("coalesced"), "{counted}");
    // Every refusal still counted in the license's seat usage (written at shutdown).
    let usage_refusals: i64 = db
        .query_row("SELECT sum(refusals) FROM seat_usage", [], |r| r.get(0))
        .unwrap();
    assert_eq!(usage_refusals, 20_000);
}
