//! Seats on a Redis Cluster (3 masters, 3 replicas) and behind Redis Sentinel (a master,
//! its replica, 3 Sentinels), through two server instances, while the master holding a
//! license fails over under load: never more sessions online than the license has seats,
//! and every engine whose session the failover lost is told so (410) and acquires again.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::PgProc;
use common::process::{request, ServerProcess};
use common::redis::{cli, RedisCluster, RedisSentinel};
use common::wait_for;
use common::{ADMIN, NONCE};
use serde_json::{json, Value};

const SEATS: usize = 5;
const ENGINES: usize = 8;

/// Two instances on one PostgreSQL and the seats where `redis` (a config line) says.
struct Fleet {
    ports: [u16; 2],
    _servers: [ServerProcess; 2],
    _pg: PgProc,
    _dir: tempfile::TempDir,
}

fn fleet(redis: &str) -> Fleet {
    let pg = PgProc::start();
    let dir = tempfile::tempdir().unwrap();
    let config = common::process::fleet_config(dir.path(), &pg.url(), redis);
    let servers = [ServerProcess::start(&config), ServerProcess::start(&config)];
    Fleet {
        ports: [servers[0].port, servers[1].port],
        _servers: servers,
        _pg: pg,
        _dir: dir,
    }
}

fn new_license(port: u16, id: &str) -> String {
    let (status, v) = request(
        port,
        "POST",
        "/admin/licenses",
        ADMIN,
        // A 1-second interval: the engines beat back to back (half of it is 0 s).
        &json!({"id": id, "tier": "pro", "days": 30, "seats": SEATS, "heartbeat_interval": 1}),
    );
    assert_eq!(status, 201, "{v}");
    v["api_key"].as_str().unwrap().to_string()
}

/// Sessions online under `license` as an instance lists them (`None` while its Redis
/// is failing over).
fn online(port: u16, license: &str) -> Option<usize> {
    let (status, v) = request(
        port,
        "GET",
        &format!("/admin/sessions?license={license}&state=online&limit=1000"),
        ADMIN,
        &Value::Null,
    );
    (status == 200).then(|| v.as_array().map_or(0, Vec::len))
}

/// What the engines saw.
#[derive(Default, Debug)]
struct Seen {
    /// Heartbeats answered 410: sessions the store no longer had.
    lost: usize,
    /// Acquires granted after a loss.
    reacquired: usize,
    /// Answers by status, acquires and heartbeats alike.
    statuses: HashMap<u16, usize>,
}

/// `ENGINES` engines on `SEATS` seats, alternating between the instances, until `stop`:
/// each acquires until granted, then heartbeats; a 410 sends it back to acquiring.
fn engines(fleet: &Fleet, key: &str, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<Seen>> {
    (0..ENGINES)
        .map(|i| {
            let (key, stop, ports) = (key.to_string(), stop.clone(), fleet.ports);
            std::thread::spawn(move || {
                let mut seen = Seen::default();
                let mut session: Option<String> = None;
                let mut lost_one = false;
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let port = ports[(i + n) % 2];
                    match &session {
                        None => {
                            let (status, v) = request(
                                port,
                                "POST",
                                "/api/v1/licenses/acquire",
                                &key,
                                &json!({"hardware_id": format!("hw-{i}"), "instance_id": format!("i-{i}"), "version": "1", "nonce": NONCE}),
                            );
                            *seen.statuses.entry(status).or_default() += 1;
                            if status == 200 {
                                session = v["session_id"].as_str().map(String::from);
                                if lost_one {
                                    seen.reacquired += 1;
                                    lost_one = false;
                                }
                            }
                        }
                        Some(sid) => {
                            let (status, _) = request(
                                port,
                                "PUT",
                                "/api/v1/licenses/heartbeat",
                                &key,
                                &json!({"session_id": sid, "nonce": NONCE}),
                            );
                            *seen.statuses.entry(status).or_default() += 1;
                            if status == 410 {
                                seen.lost += 1;
                                lost_one = true;
                                session = None;
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                seen
            })
        })
        .collect()
}

/// Runs the engines, calls `fail` once they hold every seat, samples the online count
/// throughout, and after the failover checks the seats are full again and never
/// exceeded. Answers what the engines saw, summed.
fn under_load(fleet: &Fleet, license: &str, fail: impl FnOnce()) -> Seen {
    let key = new_license(fleet.ports[0], license);
    let stop = Arc::new(AtomicBool::new(false));
    let threads = engines(fleet, &key, stop.clone());
    let most = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(0usize));
    let sampler = {
        let (stop, most, samples, ports, license) = (
            stop.clone(),
            most.clone(),
            samples.clone(),
            fleet.ports,
            license.to_string(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for port in ports {
                    if let Some(n) = online(port, &license) {
                        most.fetch_max(n, Ordering::Relaxed);
                        *samples.lock().unwrap() += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    wait_for("the engines hold every seat", 30, || {
        online(fleet.ports[0], license) == Some(SEATS)
    });
    let since = Instant::now();
    fail();
    // The seats are full again once the failover is over, seen from both instances.
    wait_for("the seats are full again after the failover", 60, || {
        fleet
            .ports
            .iter()
            .all(|&p| online(p, license) == Some(SEATS))
    });
    let back = since.elapsed();
    // And the engines settle on them: heartbeats answered on either instance.
    std::thread::sleep(Duration::from_secs(1));
    // A loaded machine answers the sampler's listings slowly (and none while the
    // cluster is down): the engines run on until the count was seen often enough.
    wait_for("more than ten samples of the online count", 60, || {
        *samples.lock().unwrap() > 10
    });
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let mut all = Seen::default();
    for t in threads {
        let s = t.join().unwrap();
        all.lost += s.lost;
        all.reacquired += s.reacquired;
        for (k, v) in s.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
    }
    let most = most.load(Ordering::Relaxed);
    println!(
        "{license}: seats full again {back:?} after the failure; {} samples, at most {most} online; {all:?}",
        samples.lock().unwrap()
    );
    assert!(most <= SEATS, "{most} sessions online on {SEATS} seats");
    // Every engine whose session was lost acquired again or waits for a seat: the
    // seats are full (checked above), and no loss went unanswered by a 200 later on.
    assert!(
        all.reacquired + (ENGINES - SEATS) >= all.lost,
        "{} sessions lost, {} acquired again",
        all.lost,
        all.reacquired
    );
    assert!(
        all.statuses
            .keys()
            .all(|s| [200, 403, 410, 503].contains(s)),
        "{all:?}"
    );
    all
}

#[test]
#[cfg_attr(lic4es_no_shared_stores, ignore = "needs Redis and PostgreSQL")]
fn a_cluster_master_killed_under_load_fails_over_without_one_seat_too_many() {
    let mut cluster = RedisCluster::start_failing_over_fast();
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("{u:?}")).collect();
    let fleet = fleet(&format!("redis-cluster = [{}]", nodes.join(", ")));
    // A graceful failover (the replica takes over once it has every write): nothing lost.
    let license = "org-graceful";
    let master = cluster.master_of(&format!("{{lic:{license}}}:online"));
    let seen = under_load(&fleet, license, || {
        let replica = cluster
            .replicas()
            .into_iter()
            .find(|&r| {
                cli(r, &["INFO", "replication"])
                    .is_some_and(|i| i.contains(&format!("master_port:{master}")))
            })
            .expect("the master's replica");
        cli(replica, &["CLUSTER", "FAILOVER"]).expect("CLUSTER FAILOVER");
        wait_for("the replica took over", 30, || {
            cli(replica, &["ROLE"]).is_some_and(|r| r.starts_with("master"))
        });
    });
    assert_eq!(seen.lost, 0, "a graceful failover lost sessions: {seen:?}");

    // A master killed: its replica is promoted after the node timeout; whatever it had
    // not replicated yet is lost, and the engines holding it hear so.
    let license = "org-killed";
    let master = cluster.master_of(&format!("{{lic:{license}}}:online"));
    under_load(&fleet, license, || {
        cluster.node(master).kill();
    });
}

#[test]
#[cfg_attr(lic4es_no_shared_stores, ignore = "needs Redis and PostgreSQL")]
fn a_sentinel_master_killed_under_load_fails_over_without_one_seat_too_many() {
    let mut sentinel = RedisSentinel::start_failing_over_fast();
    sentinel.wait_ready();
    let nodes: Vec<String> = sentinel.urls().iter().map(|u| format!("{u:?}")).collect();
    let fleet = fleet(&format!(
        "redis-sentinel = {{ master = {:?}, nodes = [{}] }}",
        RedisSentinel::NAME,
        nodes.join(", ")
    ));
    let old = sentinel.master.port;
    under_load(&fleet, "org-sentinel", || {
        sentinel.master.kill();
        wait_for("the Sentinels promoted the replica", 60, || {
            sentinel.master_port().is_some_and(|p| p != old)
        });
    });
    assert_eq!(sentinel.master_port(), Some(sentinel.replica.port));
}
