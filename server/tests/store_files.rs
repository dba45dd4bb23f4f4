//! The server's files on disk: private modes, and a warning for a data dir in a git tree.

use std::os::unix::fs::PermissionsExt;

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
    assert!(store.insert_license(&lic, 1).unwrap());
    store.create_api_key("org-1", 1).unwrap();
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
fn serving_from_a_work_tree_warns_unless_the_data_dir_is_ignored() {
    let have_git = std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_git {
        return;
    }
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
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut found = None;
    while std::time::Instant::now() < deadline {
        found = in_file();
        if found == Some(500) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(found, Some(500), "entries in the database file itself");
}
