//! The seat-store contract, written once and run against every store: in memory, and in
//! a real `redis-server` started for each test.
//! A store passes when it never grants one seat too many, lapses silent sessions into
//! offline ones for their grace, and lets a reconnect end the old session at once.

use std::sync::Arc;

mod common;

use lic4es::clock::ManualClock;
use license_server::seats::{
    Acquired, Beat, MemorySeats, NewSession, RedisSeats, Replace, SeatStore, SessionQuery,
    SessionState, Topology, Usage,
};

use common::redis::{RedisCluster, RedisProc, RedisSentinel};
use common::tls::TestCa;

const NOW: i64 = 1_795_354_152;
const TTL: i64 = 660;
const GRACE: i64 = 7 * 86_400;

/// A store, and what must live as long as it (Redis servers).
type Made = (Arc<dyn SeatStore>, Option<Box<dyn std::any::Any>>);
type Make = fn(Arc<ManualClock>) -> Made;

fn memory(clock: Arc<ManualClock>) -> Made {
    (Arc::new(MemorySeats::new(clock)), None)
}

fn redis(clock: Arc<ManualClock>) -> Made {
    let server = RedisProc::start();
    let store = RedisSeats::new(&server.url())
        .unwrap()
        .with_test_clock(clock);
    (Arc::new(store), Some(Box::new(server)))
}

/// A Redis Cluster of three masters and three replicas, reached from its seed nodes.
fn redis_cluster(clock: Arc<ManualClock>) -> Made {
    let cluster = RedisCluster::start();
    let store = RedisSeats::open(&Topology::Cluster(cluster.urls()), None)
        .unwrap()
        .with_test_clock(clock);
    (Arc::new(store), Some(Box::new(cluster)))
}

/// A master and its replica, found through three Sentinels.
fn redis_sentinel(clock: Arc<ManualClock>) -> Made {
    let sentinel = RedisSentinel::start();
    let topology = Topology::Sentinel {
        master: RedisSentinel::NAME.into(),
        nodes: sentinel.urls(),
    };
    let store = RedisSeats::open(&topology, None)
        .unwrap()
        .with_test_clock(clock);
    (Arc::new(store), Some(Box::new(sentinel)))
}

/// Redis that speaks TLS only, reached by `rediss://` trusting the CA that issued its
/// certificate.
fn redis_tls(clock: Arc<ManualClock>) -> Made {
    let ca = TestCa::new("redis CA");
    let server = RedisProc::start_tls(&ca);
    let store = RedisSeats::with_tls(&server.url(), Some(&ca.ca_file))
        .unwrap()
        .with_test_clock(clock);
    // The CA's files may go: the client holds the roots it read.
    (Arc::new(store), Some(Box::new(server)))
}

/// Every store the contract tests run against: the Redis ones where redis-server is
/// installed (`build.rs` says so when it is not; under LIC4ES_REQUIRE_ALL=1 always).
fn stores() -> Vec<(&'static str, Make)> {
    let mut all: Vec<(&str, Make)> = vec![("memory", memory)];
    if cfg!(not(lic4es_no_redis)) {
        all.extend([
            ("redis", redis as Make),
            ("redis over TLS", redis_tls),
            ("redis cluster", redis_cluster),
            ("redis behind sentinel", redis_sentinel),
        ]);
    }
    all
}

fn session(id: &str, license: &str, limit: u32, hw: &str, grace: i64) -> NewSession {
    NewSession {
        id: id.into(),
        license: license.into(),
        limit,
        hardware_id: hw.into(),
        instance_id: format!("inst-{hw}"),
        ttl: TTL,
        grace,
        tier: "pro".into(),
        token_exp: NOW + 86_400,
        grants_per_hour: 0,
    }
}

/// A reconnect's old session `old` of machine `hw`.
fn replacing(old: &str, hw: &str) -> Option<Replace> {
    Some(Replace {
        session_id: old.into(),
        hardware_id: hw.into(),
    })
}

/// A new session's acquire, which must be granted.
async fn take(store: &(impl SeatStore + ?Sized), new: NewSession) {
    let got = store.acquire(new, None).await.unwrap();
    assert!(granted(&got), "{got:?}");
}

fn granted(a: &Acquired) -> bool {
    matches!(a, Acquired::Granted { .. })
}

use common::block_on;

/// Runs `test` against every store, all at once: most of the time goes to starting the
/// Redis topologies (a cluster, Sentinels), which is waiting, not work.
fn each_store(test: impl Fn(&str, Arc<ManualClock>, Arc<dyn SeatStore>) + Sync) {
    std::thread::scope(|scope| {
        let runs: Vec<_> = stores()
            .into_iter()
            .map(|(name, make)| {
                let test = &test;
                let run = scope.spawn(move || {
                    let clock = Arc::new(ManualClock::at_secs(NOW));
                    let (store, _server) = make(clock.clone());
                    test(name, clock, store);
                });
                (name, run)
            })
            .collect();
        for (name, run) in runs {
            if let Err(panic) = run.join() {
                eprintln!("store {name} failed");
                std::panic::resume_unwind(panic);
            }
        }
    });
}

#[test]
fn concurrent_acquires_never_grant_one_seat_too_many() {
    each_store(|name, _, store| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let results: Vec<Acquired> = rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .acquire(
                                session(&format!("s-{i}"), "lic-a", 5, &format!("h{i}"), GRACE),
                                None,
                            )
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        assert_eq!(results.iter().filter(|r| granted(r)).count(), 5, "{name}");
        for r in results.iter().filter(|r| !granted(r)) {
            assert!(
                matches!(
                    r,
                    Acquired::Full {
                        in_use: 5,
                        limit: 5,
                        ended: None
                    }
                ),
                "{name}: {r:?}"
            );
        }
        let listed = rt.block_on(store.sessions(Some("lic-a"))).unwrap();
        assert_eq!(listed.iter().filter(|s| s.online()).count(), 5, "{name}");
        // Another license is counted on its own.
        let other = rt
            .block_on(store.acquire(session("x-1", "lic-b", 1, "hx", GRACE), None))
            .unwrap();
        assert!(granted(&other), "{name}");
    });
}

#[test]
fn a_silent_session_lapses_into_offline_use_for_its_grace() {
    each_store(|name, clock, store| {
        block_on(async {
            take(&*store, session("s-1", "lic", 1, "h1", GRACE)).await;
            clock.advance_millis((TTL - 1) * 1000);
            assert!(
                store.heartbeat("s-1", "lic", 0).await.unwrap().is_some(),
                "{name}: alive"
            );
            clock.advance_millis((TTL - 1) * 1000);
            assert!(
                store.heartbeat("s-1", "lic", 0).await.unwrap().is_some(),
                "{name}: kept alive"
            );
            let last = NOW + 2 * (TTL - 1);
            clock.advance_millis((TTL + 1) * 1000);
            assert_eq!(
                store.heartbeat("s-1", "lic", 0).await.unwrap(),
                None,
                "{name}: lapsed"
            );

            let listed = store.sessions(Some("lic")).await.unwrap();
            assert_eq!(listed.len(), 1, "{name}: kept as an offline session");
            assert!(!listed[0].online());
            assert_eq!(listed[0].offline_since, Some(last));
            assert_eq!(listed[0].offline_until, Some(last + TTL + GRACE));
            let lapsed = store.take_lapsed().await.unwrap();
            assert_eq!(lapsed.len(), 1, "{name}");
            assert!(
                store.take_lapsed().await.unwrap().is_empty(),
                "{name}: handed out once"
            );

            // Its seat is free again.
            take(&*store, session("s-2", "lic", 1, "h2", GRACE)).await;
            // Past its grace it is gone.
            clock.advance_millis(GRACE * 1000);
            store.heartbeat("s-2", "lic", 0).await.unwrap();
            let ids: Vec<String> = store
                .sessions(Some("lic"))
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect();
            assert!(!ids.contains(&"s-1".to_string()), "{name}: {ids:?}");
        });
    });
}

/// Hosts taking turns on one seat: each turn is a grant, and a license gets at most its
/// hourly allowance of them (counted in the clock hour, on every instance alike).
#[test]
fn a_license_is_granted_at_most_its_hourly_allowance_of_seats() {
    each_store(|name, clock, store| {
        block_on(async {
            // Start at the top of an hour.
            let start = (NOW / 3600 + 1) * 3600;
            clock.advance_millis((start - NOW) * 1000);
            let turn = |i: u32| NewSession {
                grants_per_hour: 4,
                ..session(
                    &format!("t-{i}"),
                    "lic-turns",
                    1,
                    &format!("h{}", i % 2),
                    GRACE,
                )
            };
            for i in 0..4 {
                match store.acquire(turn(i), None).await.unwrap() {
                    Acquired::Granted { session, .. } => {
                        // Its host hands the seat over at once.
                        store.release(&session.id, "lic-turns").await.unwrap();
                    }
                    other => panic!("{name}: turn {i}: {other:?}"),
                }
                clock.advance_millis(60_000);
            }
            match store.acquire(turn(4), None).await.unwrap() {
                Acquired::OverBudget { retry_after, .. } => {
                    assert_eq!(retry_after, 3600 - 4 * 60, "{name}: until the next hour");
                }
                other => panic!("{name}: {other:?}"),
            }
            // Still none this hour; another license has its own allowance.
            assert!(
                !granted(&store.acquire(turn(5), None).await.unwrap()),
                "{name}"
            );
            let other = NewSession {
                license: "lic-other".into(),
                ..turn(6)
            };
            assert!(
                granted(&store.acquire(other, None).await.unwrap()),
                "{name}"
            );
            // The next hour grants again.
            clock.advance_millis((3600 - 4 * 60) * 1000);
            assert!(
                granted(&store.acquire(turn(7), None).await.unwrap()),
                "{name}"
            );
        });
    });
}

#[test]
fn a_session_is_renewed_at_most_once_per_spacing() {
    each_store(|name, clock, store| {
        block_on(async {
            let gap = 150;
            take(&*store, session("s-1", "lic", 1, "h1", GRACE)).await;
            // The acquire counts: a heartbeat right after it is too soon.
            clock.advance_millis(40 * 1000);
            match store.heartbeat("s-1", "lic", gap).await.unwrap() {
                Some(Beat::TooSoon { session, wait }) => {
                    assert_eq!(wait, gap - 40, "{name}");
                    assert_eq!(session.hardware_id, "h1", "{name}");
                    assert_eq!(session.last_seen, NOW, "{name}: not kept");
                }
                other => panic!("{name}: {other:?}"),
            }
            clock.advance_millis((gap - 40) * 1000);
            match store.heartbeat("s-1", "lic", gap).await.unwrap() {
                Some(Beat::Kept(s)) => assert_eq!(s.last_seen, NOW + gap, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
            // Refused beats did not keep it: it lapses a TTL after the last kept one.
            for _ in 0..3 {
                clock.advance_millis(10 * 1000);
                assert!(matches!(
                    store.heartbeat("s-1", "lic", gap).await.unwrap(),
                    Some(Beat::TooSoon { .. })
                ));
            }
            clock.advance_millis((TTL - 30 + 1) * 1000);
            assert_eq!(
                store.heartbeat("s-1", "lic", gap).await.unwrap(),
                None,
                "{name}: lapsed"
            );
        });
    });
}

#[test]
fn without_grace_a_lapsed_session_is_dropped() {
    each_store(|name, clock, store| {
        block_on(async {
            take(&*store, session("s-1", "lic", 1, "h1", 0)).await;
            clock.advance_millis((TTL + 1) * 1000);
            assert!(store.sessions(None).await.unwrap().is_empty(), "{name}");
            assert_eq!(
                store.take_lapsed().await.unwrap().len(),
                1,
                "{name}: still audited"
            );
        });
    });
}

#[test]
fn a_reconnect_ends_its_own_old_session_at_once() {
    each_store(|name, clock, store| {
        block_on(async {
            take(&*store, session("s-1", "lic", 1, "h1", GRACE)).await;
            // Another machine cannot end it.
            let stranger = store
                .acquire(
                    session("s-x", "lic", 1, "h9", GRACE),
                    replacing("s-1", "h9"),
                )
                .await
                .unwrap();
            assert!(
                matches!(stranger, Acquired::Full { ended: None, .. }),
                "{name}: {stranger:?}"
            );
            // Its own engine, back after a crash, frees the seat and takes a new one.
            clock.advance_millis(5_000);
            let back = store
                .acquire(
                    session("s-2", "lic", 1, "h1", GRACE),
                    replacing("s-1", "h1"),
                )
                .await
                .unwrap();
            let Acquired::Granted {
                session: s,
                ended: Some(old),
            } = back
            else {
                panic!("{name}: {back:?}")
            };
            assert_eq!((s.id.as_str(), old.id.as_str()), ("s-2", "s-1"));
            let ids: Vec<String> = store
                .sessions(None)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect();
            assert_eq!(ids, vec!["s-2".to_string()], "{name}");

            // A lapsed (offline) session is ended the same way.
            clock.advance_millis((TTL + 1) * 1000);
            let s3 = store
                .acquire(session("s-3", "lic", 1, "h3", GRACE), None)
                .await
                .unwrap();
            assert!(granted(&s3), "{name}: the lapsed s-2 freed its seat");
            let r = store
                .acquire(
                    session("s-4", "lic", 1, "h1", GRACE),
                    replacing("s-2", "h1"),
                )
                .await
                .unwrap();
            assert!(
                matches!(&r, Acquired::Full { in_use: 1, limit: 1, ended: Some(old) } if old.id == "s-2"),
                "{name}: the seat went to s-3 meanwhile: {r:?}"
            );
        });
    });
}

#[test]
fn release_and_kick_end_sessions_and_licenses_are_kept_apart() {
    each_store(|name, _, store| {
        block_on(async {
            take(&*store, session("s-1", "lic", 2, "h1", GRACE)).await;
            take(&*store, session("s-2", "lic", 2, "h2", GRACE)).await;
            assert_eq!(
                store.heartbeat("s-1", "other", 0).await.unwrap(),
                None,
                "{name}"
            );
            assert_eq!(store.release("s-1", "other").await.unwrap(), None, "{name}");
            assert!(
                store.release("s-1", "lic").await.unwrap().is_some(),
                "{name}"
            );
            assert!(store.kick("s-2").await.unwrap().is_some(), "{name}");
            assert_eq!(store.kick("s-2").await.unwrap(), None, "{name}");
            assert_eq!(
                store.heartbeat("s-2", "lic", 0).await.unwrap(),
                None,
                "{name}"
            );
            store.renewed("nope", "team", 1).await.unwrap();
            assert!(store.sessions(None).await.unwrap().is_empty(), "{name}");
            store.ping().await.unwrap();
        });
    });
}

/// Every session of `q`'s listing, page after page, and the number of pages.
async fn all_pages(store: &dyn SeatStore, mut q: SessionQuery) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.sessions_page(q.clone()).await.unwrap();
        assert!(page.items.len() <= q.limit as usize);
        pages += 1;
        ids.extend(page.items.iter().map(|s| format!("{}/{}", s.license, s.id)));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return (ids, pages),
        }
        assert!(pages < 100, "the pages do not end");
    }
}

#[test]
fn sessions_and_licenses_are_listed_by_the_page_and_summed_without_a_listing() {
    each_store(|name, clock, store| {
        block_on(async {
            let grant = |id: &str, lic: &str, limit: u32| {
                let store = store.clone();
                let new = session(id, lic, limit, &format!("hw-{id}"), GRACE);
                async move { assert!(granted(&store.acquire(new, None).await.unwrap())) }
            };
            // Two sessions of lic-c lapse into offline use; then lic-a fills its 5 seats
            // and lic-b takes 3 of its 10.
            grant("c-0", "lic-c", 4).await;
            grant("c-1", "lic-c", 4).await;
            clock.advance_millis((TTL + 1) * 1000);
            for i in 0..5 {
                grant(&format!("a-{i}"), "lic-a", 5).await;
            }
            for i in 0..3 {
                grant(&format!("b-{i}"), "lic-b", 10).await;
            }
            let mut every: Vec<String> = (0..5)
                .map(|i| format!("lic-a/a-{i}"))
                .chain((0..3).map(|i| format!("lic-b/b-{i}")))
                .chain((0..2).map(|i| format!("lic-c/c-{i}")))
                .collect();
            every.sort();
            let q = SessionQuery {
                limit: 3,
                ..SessionQuery::default()
            };
            let (ids, pages) = all_pages(store.as_ref(), q.clone()).await;
            assert_eq!(ids, every, "{name}: each session once, in order");
            assert_eq!(pages, 4, "{name}");
            let offline = SessionQuery {
                state: Some(SessionState::Offline),
                limit: 1,
                ..q.clone()
            };
            let (ids, _) = all_pages(store.as_ref(), offline).await;
            assert_eq!(ids, ["lic-c/c-0", "lic-c/c-1"], "{name}");
            let online_b = SessionQuery {
                license: Some("lic-b".into()),
                state: Some(SessionState::Online),
                limit: 2,
                ..q.clone()
            };
            let (ids, pages) = all_pages(store.as_ref(), online_b).await;
            assert_eq!(ids, ["lic-b/b-0", "lic-b/b-1", "lic-b/b-2"], "{name}");
            assert_eq!(pages, 2, "{name}");
            let none = SessionQuery {
                license: Some("lic-none".into()),
                ..q.clone()
            };
            assert_eq!(all_pages(store.as_ref(), none).await.0.len(), 0);

            let page = store.usage_page(None, 2).await.unwrap();
            let seen: Vec<(&str, u32, u32, u32)> = page
                .items
                .iter()
                .map(|u| (u.license.as_str(), u.usage.online, u.usage.offline, u.limit))
                .collect();
            assert_eq!(seen, [("lic-a", 5, 0, 5), ("lic-b", 3, 0, 10)], "{name}");
            let page = store.usage_page(page.next, 2).await.unwrap();
            assert_eq!(page.items.len(), 1, "{name}");
            assert_eq!(
                page.items[0].usage,
                Usage {
                    online: 0,
                    offline: 2
                }
            );
            assert_eq!(page.next, None, "{name}");

            let sum = store.summary(2, 0).await.unwrap();
            assert_eq!((sum.online, sum.offline, sum.licenses), (8, 2, 3), "{name}");
            let nearest: Vec<&str> = sum.nearest.iter().map(|u| u.license.as_str()).collect();
            assert_eq!(nearest, ["lic-a", "lic-b"], "{name}: fullest first");
            assert_eq!(store.summary(1, 0).await.unwrap().nearest.len(), 1);

            if name.starts_with("redis") {
                // Shared: reused while younger than the interval asked for, then
                // computed again.
                assert_eq!(store.summary(2, 60).await.unwrap().online, 8, "{name}");
                grant("b-3", "lic-b", 10).await;
                assert_eq!(store.summary(2, 60).await.unwrap().online, 8, "{name}");
                clock.advance_millis(60_000);
                assert_eq!(store.summary(2, 60).await.unwrap().online, 9, "{name}");
            }
        });
    });
}

#[test]
#[cfg_attr(lic4es_no_redis, ignore = "needs redis-server")]
fn redis_collects_lapses_a_bounded_round_of_licenses_at_a_time() {
    let (_server, clock, store) = redis_at_now();
    let rt = redis_rt();
    rt.block_on(async {
        for i in 0..450 {
            let new = session(&format!("s-{i}"), &format!("lic-{i:03}"), 1, "h", GRACE);
            assert!(granted(&store.acquire(new, None).await.unwrap()));
        }
        clock.advance_millis((TTL + 1) * 1000);
        let mut seen = std::collections::BTreeSet::new();
        let mut rounds = 0;
        while seen.len() < 450 {
            let lapsed = store.take_lapsed().await.unwrap();
            assert!(lapsed.len() <= 200, "a round is bounded: {}", lapsed.len());
            for l in lapsed {
                assert!(seen.insert(l.id.clone()), "{} handed out twice", l.id);
            }
            rounds += 1;
            assert!(rounds <= 3, "every license is visited within three rounds");
        }
        // Round and round: nothing is handed out again.
        for _ in 0..3 {
            assert!(store.take_lapsed().await.unwrap().is_empty());
        }
    });
}

#[test]
#[cfg_attr(lic4es_no_redis, ignore = "needs redis-server")]
fn redis_finds_the_sessions_an_earlier_version_wrote() {
    let (server, clock, store) = redis_at_now();
    let rt = redis_rt();
    rt.block_on(async {
        take(&store, session("s-1", "lic-old", 2, "h1", GRACE)).await;
    });
    // As an earlier version left them: the licenses in a set, no id index.
    let cli = |args: &[&str]| {
        common::redis::cli(server.port, args).expect("redis-cli");
    };
    cli(&["DEL", "lic4es:license-index", "{lic:lic-old}:ids"]);
    cli(&["SADD", "lic4es:licenses", "lic-old"]);
    // A new session of this version beside it.
    rt.block_on(async {
        let new = session("s-2", "lic-old", 2, "h2", GRACE);
        assert!(granted(&store.acquire(new, None).await.unwrap()));
    });
    cli(&["DEL", "lic4es:license-index"]);
    // And its session index in one hash, not in shards.
    let shards: Vec<String> = (0..64)
        .map(|n| format!("lic4es:session-license:{{{n:02}}}"))
        .collect();
    let mut del = vec!["DEL"];
    del.extend(shards.iter().map(String::as_str));
    cli(&del);
    cli(&[
        "HSET",
        "lic4es:session-license",
        "s-1",
        "lic-old",
        "s-2",
        "lic-old",
    ]);
    let store = RedisSeats::new(&server.url())
        .unwrap()
        .with_test_clock(clock);
    rt.block_on(async {
        let page = store
            .sessions_page(SessionQuery {
                limit: 10,
                ..SessionQuery::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = page.items.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["s-1", "s-2"]);
        assert_eq!(store.summary(10, 0).await.unwrap().online, 2);
        // An operator's kick finds the session through the moved index.
        assert_eq!(store.kick("s-1").await.unwrap().unwrap().id, "s-1");
        assert_eq!(store.summary(10, 0).await.unwrap().online, 1);
    });
    let exists = common::redis::cli(server.port, &["EXISTS", "lic4es:session-license"]);
    assert_eq!(exists.as_deref().map(str::trim), Some("0"));
}

/// A Redis server and a store on it whose scripts take the time from a test clock at
/// [`NOW`].
fn redis_at_now() -> (RedisProc, Arc<ManualClock>, RedisSeats) {
    let server = RedisProc::start();
    let clock = Arc::new(ManualClock::at_secs(NOW));
    let store = RedisSeats::new(&server.url())
        .unwrap()
        .with_test_clock(clock.clone());
    (server, clock, store)
}

fn redis_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
#[cfg_attr(lic4es_no_redis, ignore = "needs redis-server")]
fn redis_scripts_survive_script_flush_and_an_outage_is_never_a_grant() {
    let mut server = RedisProc::start();
    let clock = Arc::new(ManualClock::at_secs(NOW));
    let store = RedisSeats::new(&server.url())
        .unwrap()
        .with_test_clock(clock);
    redis_rt().block_on(async {
        take(&store, session("s-1", "lic", 2, "h1", GRACE)).await;
        // Scripts gone from the cache (as after a failover): loaded again on NOSCRIPT.
        let client = ::redis::Client::open(server.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = ::redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(store.heartbeat("s-1", "lic", 0).await.unwrap().is_some());
        take(&store, session("s-2", "lic", 2, "h2", GRACE)).await;
    });
    // Redis goes away: every call is an error, never a grant.
    let port = server.port;
    server.kill();
    redis_rt().block_on(async {
        let r = store
            .acquire(session("s-3", "lic", 9, "h3", GRACE), None)
            .await;
        assert!(r.is_err(), "{r:?}");
        assert!(store.heartbeat("s-1", "lic", 0).await.is_err());
        assert!(store.ping().await.is_err());
    });
    // It comes back empty (no persistence): sessions are gone, acquires work again.
    let _back = RedisProc::start_on(port);
    redis_rt().block_on(async {
        let mut ok = false;
        for _ in 0..50 {
            if store.ping().await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ok, "reconnected");
        assert_eq!(
            store.heartbeat("s-1", "lic", 0).await.unwrap(),
            None,
            "session gone: 410"
        );
        take(&store, session("s-4", "lic", 2, "h1", GRACE)).await;
    });
}

#[test]
#[cfg_attr(lic4es_no_redis, ignore = "needs redis-server")]
fn redis_keeps_an_online_session_in_under_a_kibibyte() {
    let server = RedisProc::start();
    let clock = Arc::new(ManualClock::at_secs(NOW));
    let store = RedisSeats::new(&server.url())
        .unwrap()
        .with_test_clock(clock);
    let used = |c: &mut ::redis::Connection| -> i64 {
        let info: String = ::redis::cmd("INFO").arg("memory").query(c).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let n = 2000;
    redis_rt().block_on(async {
        // Load the scripts and the index keys first, so only sessions are counted.
        take(&store, session("warm", "lic-0", 1, "h", GRACE)).await;
        let before = used(&mut c);
        for i in 0..n {
            let s = NewSession {
                hardware_id: format!("{:064x}", i),
                instance_id: uuid_like(i),
                ..session(
                    &format!("ses-{}", uuid_like(i).replace('-', "")),
                    &format!("org-{}", i % 50),
                    100,
                    "h",
                    GRACE,
                )
            };
            assert!(granted(&store.acquire(s, None).await.unwrap()));
        }
        let per = (used(&mut c) - before) / n;
        println!("redis memory per online session: {per} bytes");
        assert!(per <= 1024, "{per} bytes per session");
    });
}

/// A UUID-shaped id, as engines send.
fn uuid_like(i: i64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

/// A session acquired, listed, counted and kicked on a store over TLS.
fn round_trip(name: &str, store: RedisSeats) {
    let rt = redis_rt();
    rt.block_on(async {
        for (i, sid) in ["s-1", "s-2"].iter().enumerate() {
            let new = session(sid, &format!("lic-{i}"), 1, "h", GRACE);
            assert!(granted(&store.acquire(new, None).await.unwrap()), "{name}");
        }
        let full = session("s-3", "lic-0", 1, "h3", GRACE);
        assert!(
            !granted(&store.acquire(full, None).await.unwrap()),
            "{name}"
        );
        assert_eq!(store.summary(10, 0).await.unwrap().online, 2, "{name}");
        assert_eq!(
            store.kick("s-2").await.unwrap().unwrap().id,
            "s-2",
            "{name}"
        );
        let page = store
            .sessions_page(SessionQuery {
                limit: 10,
                ..SessionQuery::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = page.items.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["s-1"], "{name}");
    });
}

#[test]
#[cfg_attr(lic4es_no_redis, ignore = "needs redis-server")]
fn rediss_works_on_a_cluster_and_behind_sentinel() {
    let ca = TestCa::new("redis CA");
    let clock = Arc::new(ManualClock::at_secs(NOW));
    let cluster = RedisCluster::start_tls(&ca);
    assert!(cluster.urls().iter().all(|u| u.starts_with("rediss://")));
    let store = RedisSeats::open(&Topology::Cluster(cluster.urls()), Some(&ca.ca_file))
        .unwrap()
        .with_test_clock(clock.clone());
    round_trip("cluster", store);
    // Another CA's roots: refused.
    let other = TestCa::new("not the redis CA");
    let wrong = RedisSeats::open(&Topology::Cluster(cluster.urls()), Some(&other.ca_file)).unwrap();
    assert!(redis_rt().block_on(wrong.ping()).is_err());
    drop(cluster);

    let sentinel = RedisSentinel::start_tls(&ca);
    let topology = Topology::Sentinel {
        master: RedisSentinel::NAME.into(),
        nodes: sentinel.urls(),
    };
    let store = RedisSeats::open(&topology, Some(&ca.ca_file))
        .unwrap()
        .with_test_clock(clock);
    round_trip("sentinel", store);
    let wrong = RedisSeats::open(&topology, Some(&other.ca_file)).unwrap();
    assert!(redis_rt().block_on(wrong.ping()).is_err());
}

#[test]
#[cfg_attr(lic4es_no_redis, ignore = "needs redis-server")]
fn rediss_checks_the_server_certificate() {
    let ca = TestCa::new("redis CA");
    let server = RedisProc::start_tls(&ca);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ping = |store: RedisSeats| {
        use license_server::seats::SeatStore;
        rt.block_on(store.ping()).map_err(|e| e.to_string())
    };
    ping(RedisSeats::with_tls(&server.url(), Some(&ca.ca_file)).unwrap()).unwrap();
    // Another CA's roots: refused in the handshake, a 503 and never a grant.
    let other = TestCa::new("not the redis CA");
    let e = ping(RedisSeats::with_tls(&server.url(), Some(&other.ca_file)).unwrap()).unwrap_err();
    assert!(e.contains("redis"), "{e}");
    // Plain to a TLS-only server: no answer it can use.
    let plain = server.url().replace("rediss://", "redis://");
    assert!(ping(RedisSeats::new(&plain).unwrap()).is_err());
    // A CA file for a plain URL is a mistake worth naming.
    let e = RedisSeats::with_tls(&plain, Some(&ca.ca_file))
        .err()
        .unwrap();
    assert!(e.contains("rediss://"), "{e}");
}
