//! Throwaway Redis on free loopback ports, stopped when dropped: one server, a Redis
//! Cluster of 3 masters and 3 replicas, and a master with a replica behind 3 Sentinels.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::wait_for;

pub struct RedisProc {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    /// Speaks TLS only (`--port 0 --tls-port`).
    tls: bool,
}

/// Fails the test when redis-server or redis-cli is missing: a test that needs them is
/// marked ignored where they are not installed (`build.rs`), so it never passes by
/// doing nothing.
fn need_redis() {
    for tool in ["redis-server", "redis-cli"] {
        assert!(
            super::have_tool(tool),
            "{tool} not found: apt-get install redis-server (build.rs marks the tests that need \
             it ignored when it is not installed)"
        );
    }
}

impl RedisProc {
    /// Starts one, without persistence. Without redis-server the test fails: tests that
    /// need it are marked ignored where it is not installed (`build.rs`).
    pub fn start() -> RedisProc {
        need_redis();
        Self::start_on(super::free_port())
    }

    /// Starts one that speaks TLS only, with a certificate for 127.0.0.1 issued by `ca`.
    pub fn start_tls(ca: &super::tls::TestCa) -> RedisProc {
        need_redis();
        let (cert, key) = ca.issue("redis", &["127.0.0.1", "localhost"]);
        let port = super::free_port();
        let tls = [
            "--port".to_string(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
            "--tls-ca-cert-file".into(),
            ca.ca_file.display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        Self::spawn(port, &tls)
    }

    /// The arguments that make a server on `port` speak TLS only, with a certificate for
    /// 127.0.0.1 from `ca`, its replication and cluster bus too.
    fn tls_args(ca: &super::tls::TestCa, port: u16) -> Vec<String> {
        let (cert, key) = ca.issue(&format!("redis-{port}"), &["127.0.0.1", "localhost"]);
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert.display().to_string(),
            "--tls-key-file",
            &key.display().to_string(),
            "--tls-ca-cert-file",
            &ca.ca_file.display().to_string(),
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
            "--tls-cluster",
            "yes",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Starts one on `port` (a restart of an earlier one).
    pub fn start_on(port: u16) -> RedisProc {
        Self::spawn(port, &["--port".to_string(), port.to_string()])
    }

    fn spawn(port: u16, listen: &[String]) -> RedisProc {
        Self::spawn_with(port, listen, &[])
    }

    /// A server on `port` started with `listen` and then `extra` arguments.
    fn spawn_with(port: u16, listen: &[String], extra: &[&str]) -> RedisProc {
        let dir = tempfile::tempdir().unwrap();
        let child = super::on_real_clock(&mut Command::new("redis-server"))
            .args(listen)
            .args(extra)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        listening(port, "redis-server");
        RedisProc {
            child,
            port,
            _dir: dir,
            tls: listen.iter().any(|a| a == "--tls-port"),
        }
    }

    /// A Sentinel on `port` with its config file `conf`.
    fn spawn_sentinel(port: u16, conf: &str) -> RedisProc {
        let dir = tempfile::tempdir().unwrap();
        let child = super::on_real_clock(&mut Command::new("redis-server"))
            .args([conf, "--sentinel"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        listening(port, "a Sentinel");
        RedisProc {
            child,
            port,
            _dir: dir,
            tls: false,
        }
    }

    /// `redis://`, or `rediss://` for one that speaks TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Stops it at once (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-cli -p PORT ARGS…` on the real clock (under the calendar guard's faketime it
/// never returns): what it printed, or `None` when it failed.
pub fn cli(port: u16, args: &[&str]) -> Option<String> {
    cli_tls(port, None, args)
}

/// [`cli`] over TLS, trusting the CA file `ca`, when given.
pub fn cli_tls(port: u16, ca: Option<&std::path::Path>, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("redis-cli");
    if let Some(ca) = ca {
        cmd.arg("--tls").arg("--cacert").arg(ca);
    }
    let out = super::on_real_clock(&mut cmd)
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let p = super::free_port();
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

/// A Redis Cluster on loopback: 3 masters, each with one replica.
pub struct RedisCluster {
    pub nodes: Vec<RedisProc>,
    /// The CA file clients trust, when the nodes speak TLS.
    ca: Option<std::path::PathBuf>,
}

/// How long Redis waits on a silent node before failing over, in milliseconds: long
/// where a test does not want a failover (a loaded machine can stall a node for a
/// second, and a failover then loses what the test just wrote), short where it kills a
/// node to see one.
const NO_FAILOVER_MS: u32 = 30_000;
const QUICK_FAILOVER_MS: u32 = 1_000;

impl RedisCluster {
    /// Starts six servers, joins them (`redis-cli --cluster create`) and waits until the
    /// cluster is up and every replica is in sync. No node fails over unless it is
    /// silent for half a minute.
    pub fn start() -> RedisCluster {
        Self::start_with(None, NO_FAILOVER_MS)
    }

    /// [`RedisCluster::start`], every node speaking TLS only (clients, replication and
    /// the cluster bus) with certificates from `ca`.
    pub fn start_tls(ca: &super::tls::TestCa) -> RedisCluster {
        Self::start_with(Some(ca), NO_FAILOVER_MS)
    }

    /// [`RedisCluster::start`] where a master silent for a second fails over: for tests
    /// that kill one.
    pub fn start_failing_over_fast() -> RedisCluster {
        Self::start_with(None, QUICK_FAILOVER_MS)
    }

    fn start_with(tls: Option<&super::tls::TestCa>, node_timeout_ms: u32) -> RedisCluster {
        need_redis();
        let nodes: Vec<RedisProc> = (0..6)
            .map(|_| {
                let port = cluster_port();
                let listen = match tls {
                    Some(ca) => RedisProc::tls_args(ca, port),
                    None => vec!["--port".to_string(), port.to_string()],
                };
                RedisProc::spawn_with(
                    port,
                    &listen,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        &node_timeout_ms.to_string(),
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let cluster = RedisCluster {
            nodes,
            ca: tls.map(|ca| ca.ca_file.clone()),
        };
        cluster
            .cli(cluster.nodes[0].port, &args)
            .expect("redis-cli --cluster create");
        for n in &cluster.nodes {
            wait_for("the cluster is up", 30, || {
                cluster
                    .cli(n.port, &["CLUSTER", "INFO"])
                    .is_some_and(|i| i.contains("cluster_state:ok"))
            });
        }
        for r in cluster.replicas() {
            wait_for("a replica is in sync", 30, || {
                cluster
                    .cli(r, &["INFO", "replication"])
                    .is_some_and(|i| i.contains("master_link_status:up"))
            });
        }
        cluster
    }

    /// `redis-cli` on the node at `port` (over TLS when the cluster speaks it).
    pub fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        cli_tls(port, self.ca.as_deref(), args)
    }

    /// Seed URLs: every node (`rediss://` when the cluster speaks TLS).
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.ca.is_some() { "rediss" } else { "redis" };
        self.nodes
            .iter()
            .map(|n| format!("{scheme}://127.0.0.1:{}/", n.port))
            .collect()
    }

    fn with_role(&self, role: &str) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| {
                self.cli(n.port, &["ROLE"])
                    .is_some_and(|r| r.lines().next() == Some(role))
            })
            .map(|n| n.port)
            .collect()
    }

    /// The ports of the replicas now.
    pub fn replicas(&self) -> Vec<u16> {
        self.with_role("slave")
    }

    /// The ports of the masters now.
    pub fn masters(&self) -> Vec<u16> {
        self.with_role("master")
    }

    /// The master that holds `key`'s slot now.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot = self
            .cli(self.nodes[0].port, &["CLUSTER", "KEYSLOT", key])
            .unwrap();
        let slot: u32 = slot.trim().parse().unwrap();
        *self
            .masters()
            .iter()
            .find(|&&m| {
                self.cli(m, &["CLUSTER", "NODES"]).is_some_and(|nodes| {
                    nodes
                        .lines()
                        .any(|l| l.contains("myself") && serves(l, slot))
                })
            })
            .expect("a master serves the slot")
    }

    /// The node with `port`.
    pub fn node(&mut self, port: u16) -> &mut RedisProc {
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }
}

/// Whether a `CLUSTER NODES` line serves `slot` (its ranges come after the 8th field).
fn serves(line: &str, slot: u32) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let mut ends = range.splitn(2, '-').map(|e| e.parse::<u32>().ok());
        match (ends.next().flatten(), ends.next()) {
            (Some(a), None) => a == slot,
            (Some(a), Some(Some(b))) => (a..=b).contains(&slot),
            _ => false,
        }
    })
}

/// A master and its replica behind three Sentinels (quorum 2), all on loopback.
pub struct RedisSentinel {
    pub master: RedisProc,
    pub replica: RedisProc,
    pub sentinels: Vec<RedisProc>,
    /// The CA file clients trust, when they all speak TLS.
    ca: Option<std::path::PathBuf>,
    _conf: tempfile::TempDir,
}

impl RedisSentinel {
    /// The name the Sentinels monitor the master under.
    pub const NAME: &'static str = "seats";

    /// Starts them and waits until the replica is in sync. The Sentinels fail over only
    /// a master silent for half a minute.
    pub fn start() -> RedisSentinel {
        Self::start_with(None, NO_FAILOVER_MS)
    }

    /// [`RedisSentinel::start`], every server and Sentinel speaking TLS only, with
    /// certificates from `ca`.
    pub fn start_tls(ca: &super::tls::TestCa) -> RedisSentinel {
        Self::start_with(Some(ca), NO_FAILOVER_MS)
    }

    /// [`RedisSentinel::start`] where the Sentinels fail over a master silent for a
    /// second: for tests that kill it.
    pub fn start_failing_over_fast() -> RedisSentinel {
        Self::start_with(None, QUICK_FAILOVER_MS)
    }

    fn start_with(tls: Option<&super::tls::TestCa>, down_after_ms: u32) -> RedisSentinel {
        need_redis();
        let listen = |port: u16| match tls {
            Some(ca) => RedisProc::tls_args(ca, port),
            None => vec!["--port".to_string(), port.to_string()],
        };
        let mport = super::free_port();
        let master = RedisProc::spawn_with(mport, &listen(mport), &[]);
        let rport = super::free_port();
        let replica = RedisProc::spawn_with(
            rport,
            &listen(rport),
            &["--replicaof", "127.0.0.1", &mport.to_string()],
        );
        let ca = tls.map(|ca| ca.ca_file.clone());
        wait_for("the replica is in sync", 30, || {
            cli_tls(replica.port, ca.as_deref(), &["INFO", "replication"])
                .is_some_and(|i| i.contains("master_link_status:up"))
        });
        let conf = tempfile::tempdir().unwrap();
        let sentinels = (0..3)
            .map(|i| {
                let port = super::free_port();
                let listen = match tls {
                    None => format!("port {port}\n"),
                    Some(ca) => {
                        let (cert, key) = ca.issue(&format!("sentinel-{port}"), &["127.0.0.1"]);
                        format!(
                            "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                             tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                            cert.display(),
                            key.display(),
                            ca.ca_file.display()
                        )
                    }
                };
                // Sentinel rewrites its config file: each has its own.
                let file = conf.path().join(format!("sentinel-{i}.conf"));
                std::fs::write(
                    &file,
                    format!(
                        "{listen}bind 127.0.0.1\nprotected-mode no\n\
                         sentinel monitor {name} 127.0.0.1 {mport} 2\n\
                         sentinel down-after-milliseconds {name} {down_after_ms}\n\
                         sentinel failover-timeout {name} 5000\n\
                         sentinel parallel-syncs {name} 1\n",
                        name = Self::NAME,
                    ),
                )
                .unwrap();
                let file = file.display().to_string();
                RedisProc::spawn_sentinel(port, &file)
            })
            .collect();
        RedisSentinel {
            master,
            replica,
            sentinels,
            ca,
            _conf: conf,
        }
    }

    fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        cli_tls(port, self.ca.as_deref(), args)
    }

    /// The Sentinels' URLs (`rediss://` when they speak TLS).
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.ca.is_some() { "rediss" } else { "redis" };
        self.sentinels
            .iter()
            .map(|s| format!("{scheme}://127.0.0.1:{}/", s.port))
            .collect()
    }

    /// Waits until every Sentinel knows the replica and the two other Sentinels, so a
    /// failover can be agreed on.
    pub fn wait_ready(&self) {
        for s in &self.sentinels {
            wait_for("the Sentinels know each other and the replica", 60, || {
                let known = |what: &str| {
                    self.cli(s.port, &["SENTINEL", what, Self::NAME])
                        .map(|o| o.lines().filter(|l| l.trim() == "name").count())
                        .unwrap_or(0)
                };
                known("sentinels") == 2 && known("replicas") == 1
            });
        }
    }

    /// The master's port as the first Sentinel names it now.
    pub fn master_port(&self) -> Option<u16> {
        let out = self.cli(
            self.sentinels[0].port,
            &["SENTINEL", "get-master-addr-by-name", Self::NAME],
        )?;
        out.lines().nth(1)?.trim().parse().ok()
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `what` listens on `port` (at most ten seconds).
fn listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}
