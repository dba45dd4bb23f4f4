//! Versioned migrations against real databases: a database created before migrations
//! were versioned (SQLite as the first release made it, PostgreSQL as the last
//! unversioned release made it) is adopted with its data, a second open applies nothing,
//! `license-server migrate` reports the version, and a database migrated past what this
//! server knows is refused.

use std::process::Command;

mod common;

use common::{change_entry, seats};

use common::pg::PgProc;
use license_server::store::{migrate, AuditQuery, LicenseStore, PgStore, Seats, SqliteStore};

fn versions(s: &dyn LicenseStore) -> Vec<i64> {
    s.migrations().unwrap().iter().map(|m| m.version).collect()
}

/// What every adopted fixture holds, read back through the store.
fn check_fixture_data(name: &str, s: &dyn LicenseStore) {
    let lic = s.license("org-old").unwrap().expect("the old license");
    assert_eq!(
        (lic.tier.as_str(), lic.org_name.as_deref()),
        ("team", Some("Old Co")),
        "{name}"
    );
    let key = s.api_key("sk-old").unwrap().expect("the old API key");
    assert_eq!(key.license_id, "org-old", "{name}");
    let audit = s.audit(&AuditQuery::newest(10)).unwrap();
    assert_eq!(audit.len(), 1, "{name}");
    assert_eq!(audit[0].kind, "license_create", "{name}");
    // And the store works on the new schema.
    let change = license_server::store::LicenseChange {
        overrides: seats(Seats::Count(9)),
        ..Default::default()
    };
    let changed = s
        .change_license("org-old", &change, &change_entry())
        .unwrap()
        .unwrap();
    assert_eq!(changed.overrides.seats, Some(Seats::Count(9)), "{name}");
    s.ping_write(1_795_354_152).unwrap();
}

#[test]
fn an_unversioned_sqlite_database_of_the_first_release_is_adopted_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("licenses.sqlite3");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(include_str!("fixtures/unversioned.sqlite.sql"))
            .unwrap();
    }
    let all: Vec<i64> = migrate::SQLITE.iter().map(|m| m.version).collect();
    {
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(versions(&s), all);
        check_fixture_data("sqlite", &s);
    }
    let c = rusqlite::Connection::open(&path).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !tables.iter().any(|t| t == "telemetry"),
        "unbounded telemetry dropped: {tables:?}"
    );
    for t in [
        "schema_version",
        "telemetry_daily",
        "offline_periods",
        "health",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t}: {tables:?}");
    }
    drop(c);
    // A second open applies nothing again.
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(versions(&s), all);
    let applied = s.migrations().unwrap();
    assert!(applied.iter().all(|m| m.applied_at > 0), "{applied:?}");
}

#[test]
fn a_sqlite_database_migrated_further_than_this_server_knows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("licenses.sqlite3");
    drop(SqliteStore::open(&path).unwrap());
    let next = migrate::SQLITE.len() as i64 + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO schema_version VALUES (?1, 'from a newer server', 0)",
            [next],
        )
        .unwrap();
    let err = SqliteStore::open(&path).err().expect("refused");
    assert!(err.contains(&format!("schema version {next}")), "{err}");
}

#[test]
fn the_migrate_command_applies_and_lists_the_versions() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::process::server_toml(dir.path(), "");
    let run = || {
        common::on_real_clock(&mut Command::new(env!("CARGO_BIN_EXE_license-server")))
            .arg("--config")
            .arg(&config)
            .arg("migrate")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let last = migrate::SQLITE.last().unwrap();
    let out = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        out.contains(&format!("schema version {}", last.version)),
        "{out}"
    );
    assert!(out.contains(last.name), "{out}");
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("migrated to schema version"),
        "{first:?}"
    );
    let second = run();
    assert!(second.status.success());
    assert!(
        !String::from_utf8_lossy(&second.stderr).contains("migrated"),
        "nothing left to apply: {second:?}"
    );
}

#[test]
#[cfg_attr(lic4es_no_postgres, ignore = "needs PostgreSQL")]
fn an_unversioned_postgres_database_is_adopted_with_its_data() {
    let pg = PgProc::start();
    let mut c = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    // The release before versioned migrations created exactly the first migration's
    // schema; its data is the fixture.
    c.batch_execute(include_str!(
        "../src/store/migrations/postgres/V1__initial.sql"
    ))
    .unwrap();
    c.batch_execute(include_str!("fixtures/unversioned.postgres.data.sql"))
        .unwrap();
    let all: Vec<i64> = migrate::POSTGRES.iter().map(|m| m.version).collect();
    let s = PgStore::open(&pg.url()).unwrap();
    assert_eq!(versions(&s), all);
    check_fixture_data("postgres", &s);
    assert_eq!(
        s.license("org-old").unwrap().unwrap().overrides.seats,
        Some(Seats::Count(9))
    );
    drop(s);
    let s = PgStore::open(&pg.url()).unwrap();
    assert_eq!(versions(&s), all, "nothing applied twice");
    let next = all.len() as i64 + 1;
    c.execute(
        "INSERT INTO schema_version VALUES ($1, 'from a newer server', 0)",
        &[&next],
    )
    .unwrap();
    let err = PgStore::open(&pg.url()).err().expect("refused");
    assert!(err.contains(&format!("schema version {next}")), "{err}");
}

#[test]
#[cfg_attr(lic4es_no_postgres, ignore = "needs PostgreSQL")]
fn the_postgres_pool_holds_no_more_connections_than_configured() {
    let pg = PgProc::start();
    let s = std::sync::Arc::new(PgStore::open_with(&pg.url(), 3).unwrap());
    // The connection the store migrated on (before its pool existed) is closed; its
    // backend process may take a moment to leave pg_stat_activity.
    let client_backends = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let mut c = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    let settled = std::time::Instant::now();
    while client_backends(&mut c) > 0 && settled.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // 24 callers at once, each holding its connection a moment.
    let threads: Vec<_> = (0..24)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    s.ping().unwrap();
                }
            })
        })
        .collect();
    let watcher = std::thread::spawn(move || {
        let mut most = 0i64;
        for _ in 0..50 {
            most = most.max(client_backends(&mut c));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        most
    });
    for t in threads {
        t.join().unwrap();
    }
    let most = watcher.join().unwrap();
    println!("most PostgreSQL connections of the store at once: {most} (pool size 3)");
    assert!(most <= 3, "{most} connections");
}
