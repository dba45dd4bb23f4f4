//! Disk state rules (`docs/explanation/security.md`): permissions, atomic writes, refusal of links and
//! oversized files, write failures, and never replacing a longer-lived token.

mod common;

use common::*;
use lic4es::log::Level;
use lic4es::{Source, Tier};
use serde_json::json;

#[test]
fn write_failure_is_a_warning_and_the_engine_carries_on() {
    let f = Fixture::new();
    // A regular file where a directory should be: no process, root included, can create it.
    let blocker = f.dir.path().join("blocker");
    std::fs::write(&blocker, "x").unwrap();
    let cache_dir = blocker.join("cache");
    let jwt = token("pro", 1);
    let server = TestServer::start(move |r| Reply::token_for(r, &jwt));
    let cfg = json!({"api-key": "sk-test", "api-url": server.url(), "cache-dir": cache_dir.to_str().unwrap()});
    let e = f.start(cfg.clone());
    assert_eq!(e.tier(), Tier::Pro, "{}", f.logs.dump());
    f.logs.expect(Level::Warn, "License cache not written");
    f.logs.expect(Level::Warn, "instance id not persisted");
    let first_id = e.status().instance_id;
    drop(e);
    let e = f.start(cfg);
    assert_ne!(
        e.status().instance_id,
        first_id,
        "an unwritable dir gives a fresh id per run"
    );
    assert!(uuid::Uuid::parse_str(&first_id).is_ok());
}

#[test]
fn oversized_cache_file_is_not_read() {
    let f = Fixture::new();
    let mut big = token("pro", 10);
    big.push_str(&" ".repeat(70_000 - big.len()));
    assert_eq!(big.len(), 70_000);
    f.write_cache(&big);
    let e = f.start(json!({}));
    assert_eq!(e.tier(), Tier::Community);
    f.logs.expect(Level::Warn, "over the 64 KiB limit");
}

#[test]
fn torn_temp_file_from_a_crash_is_ignored() {
    let f = Fixture::new();
    f.write_cache(&token("pro", 10));
    let torn = f.cache_dir().join(".license-cache.jwt.tmp.4242.deadbeef");
    std::fs::write(&torn, "eyJhbGciOiJFZERTQSJ9.eyJ").unwrap();
    let e = f.start(json!({}));
    assert_eq!(e.tier(), Tier::Pro);
    assert_eq!(e.status().source, Source::Cache);

    // Writing still works with the leftover there.
    let jwt = token("team", 20);
    let served = jwt.clone();
    let server = TestServer::start(move |r| Reply::token_for(r, &served));
    let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(e.tier(), Tier::Team);
    assert_eq!(claims_of(&f.read_cache().unwrap()), claims_of(&jwt));
}

#[test]
fn stale_temp_files_are_swept() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.cache_dir()).unwrap();
    let stale = f.cache_dir().join(".license-cache.jwt.tmp.1.old");
    let fresh = f.cache_dir().join(".license-cache.jwt.tmp.2.new");
    std::fs::write(&stale, "x").unwrap();
    std::fs::write(&fresh, "x").unwrap();
    // Both ages are set on this process's clock, which CI's calendar guard moves away
    // from the kernel's (the time a file is written with).
    let now = std::time::SystemTime::now();
    for (path, at) in [
        (&stale, now - std::time::Duration::from_secs(3600)),
        (&fresh, now),
    ] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }
    drop(f.start(json!({})));
    assert!(!stale.exists());
    assert!(
        fresh.exists(),
        "a recent temp file may belong to a live writer"
    );
}

#[test]
fn cached_token_is_never_replaced_by_one_expiring_earlier() {
    let f = Fixture::new();
    let long = token("pro", 30);
    f.write_cache(&long);
    let short = token("pro", 1);
    let server = TestServer::start(move |r| Reply::token_for(r, &short));
    let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
    assert_eq!(e.tier(), Tier::Pro);
    assert_eq!(f.read_cache().unwrap(), long);

    let f = Fixture::new();
    f.write_cache(&token("pro", 1));
    let longer = token("enterprise", 30);
    let served = longer.clone();
    let server = TestServer::start(move |r| Reply::token_for(r, &served));
    drop(f.start(json!({"api-key": "sk-test", "api-url": server.url()})));
    assert_eq!(claims_of(&f.read_cache().unwrap()), claims_of(&longer));
}

#[test]
fn a_forged_long_lived_cache_does_not_block_writes() {
    let f = Fixture::new();
    f.write_cache(&mint_with(
        &claims("enterprise", NOW + 3650 * DAY),
        jsonwebtoken::Algorithm::EdDSA,
        "test-ed-other",
    ));
    let jwt = token("pro", 1);
    let served = jwt.clone();
    let server = TestServer::start(move |r| Reply::token_for(r, &served));
    drop(f.start(json!({"api-key": "sk-test", "api-url": server.url()})));
    assert_eq!(claims_of(&f.read_cache().unwrap()), claims_of(&jwt));
}

#[test]
fn instance_id_is_persisted_reused_and_overridable() {
    let f = Fixture::new();
    let a = f.start(json!({})).status().instance_id;
    let b = f.start(json!({})).status().instance_id;
    assert_eq!(a, b);
    assert!(uuid::Uuid::parse_str(&a).is_ok());
    assert_eq!(
        std::fs::read_to_string(f.cache_dir().join("instance-id"))
            .unwrap()
            .trim(),
        a
    );
    let c = f
        .start(json!({"instance-id": "statefulset-0"}))
        .status()
        .instance_id;
    assert_eq!(c, "statefulset-0");
}

#[test]
fn garbage_instance_id_file_is_replaced() {
    let f = Fixture::new();
    write_private(&f.cache_dir(), "instance-id", "not a uuid\u{0}\u{1}");
    let id = f.start(json!({})).status().instance_id;
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    f.logs.expect(Level::Warn, "not a UUID");
}

#[test]
fn binary_cache_file_is_rejected_without_crashing() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.cache_dir()).unwrap();
    std::fs::write(
        f.cache_dir().join("license-cache.jwt"),
        [0xff, 0xfe, 0, 1, 2],
    )
    .unwrap();
    let e = f.start(json!({}));
    assert_eq!(e.tier(), Tier::Community);
    f.logs.expect(Level::Warn, "not UTF-8");
}

/// Links, FIFOs and mode bits: the Unix hazards the engine guards against.
#[cfg(unix)]
mod unix {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn symlinked_cache_file_is_not_read_nor_followed() {
        let f = Fixture::new();
        let target = f.dir.path().join("elsewhere.jwt");
        let tok = token("enterprise", 10);
        std::fs::write(&target, &tok).unwrap();
        std::fs::create_dir_all(f.cache_dir()).unwrap();
        symlink(&target, f.cache_dir().join("license-cache.jwt")).unwrap();
        let e = f.start(json!({}));
        assert_eq!(e.tier(), Tier::Community);
        f.logs.expect(Level::Warn, "symbolic link");
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            tok,
            "link target untouched"
        );
    }

    #[test]
    fn cache_write_replaces_a_symlink_instead_of_writing_through_it() {
        let f = Fixture::new();
        let target = f.dir.path().join("victim");
        std::fs::write(&target, "precious").unwrap();
        std::fs::create_dir_all(f.cache_dir()).unwrap();
        symlink(&target, f.cache_dir().join("license-cache.jwt")).unwrap();
        let jwt = token("pro", 1);
        let served = jwt.clone();
        let server = TestServer::start(move |r| Reply::token_for(r, &served));
        let e = f.start(json!({"api-key": "sk-test", "api-url": server.url()}));
        assert_eq!(e.tier(), Tier::Pro);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        let p = f.cache_dir().join("license-cache.jwt");
        assert!(!std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            claims_of(&std::fs::read_to_string(p).unwrap()),
            claims_of(&jwt)
        );
    }

    #[test]
    fn cache_dir_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let f = Fixture::new();
        let nested = f.dir.path().join("a/b/c");
        drop(f.start(json!({"cache-dir": nested.to_str().unwrap()})));
        let mode = std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    fn mkfifo(path: &std::path::Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    /// Starts an engine on another thread with `place` run first; fails (rather than hangs)
    /// if the start never returns. Gives the tier and the logs.
    fn start_guarded(
        place: impl FnOnce(&Fixture) -> serde_json::Value + Send + 'static,
    ) -> (Tier, Logs) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let f = Fixture::new();
            std::fs::create_dir_all(f.cache_dir()).unwrap();
            let extra = place(&f);
            let e = f.start(extra);
            let _ = tx.send((e.tier(), f.logs.clone()));
            drop(e);
            // Keeps the directory (and the FIFO) until the test has its answer.
            std::thread::sleep(std::time::Duration::from_millis(50));
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("lic_init returned (a FIFO must not block it)")
    }

    /// The start returned at Community (when `community`), and said why.
    fn assert_refused((tier, logs): (Tier, Logs), community: bool) {
        if community {
            assert_eq!(tier, Tier::Community);
        }
        assert!(
            logs.has(Level::Warn, "not a regular file"),
            "{}",
            logs.dump()
        );
    }

    /// Where a FIFO stands in for a file the engine reads, and the config it starts
    /// with: each start returns, says why it refused the file, and (where `true`) runs
    /// Community.
    type Plant = fn(&Fixture) -> serde_json::Value;

    #[test]
    fn a_fifo_in_place_of_any_file_the_engine_reads_is_refused_without_blocking() {
        let cases: [(&str, Plant, bool); 6] = [
            (
                "the cache file",
                |f| {
                    mkfifo(&f.cache_dir().join("license-cache.jwt"));
                    json!({})
                },
                true,
            ),
            (
                "the instance id",
                |f| {
                    mkfifo(&f.cache_dir().join("instance-id"));
                    json!({})
                },
                false,
            ),
            (
                "the key file",
                |f| {
                    let p = f.dir.path().join("key.jwt");
                    mkfifo(&p);
                    json!({"key-file": p.to_str().unwrap()})
                },
                true,
            ),
            (
                "a link to a FIFO as the key file",
                |f| {
                    let fifo = f.dir.path().join("fifo");
                    mkfifo(&fifo);
                    let link = f.dir.path().join("key.jwt");
                    symlink(&fifo, &link).unwrap();
                    json!({"key-file": link.to_str().unwrap()})
                },
                true,
            ),
            (
                "the state file, outside seat mode",
                |f| {
                    mkfifo(&f.cache_dir().join("state.json"));
                    json!({})
                },
                true,
            ),
            (
                "the state file, in seat mode",
                |f| {
                    mkfifo(&f.cache_dir().join("state.json"));
                    json!({"seat": {"enabled": true}, "api-key": "sk-test", "api-url": refused_url()})
                },
                false,
            ),
        ];
        for (what, plant, community) in cases {
            eprintln!("a FIFO as {what}");
            assert_refused(start_guarded(plant), community);
        }
    }
}
