//! Reaching Redis: one server, a Cluster or the master Sentinels name; connecting once
//! for concurrent callers, timeouts, and running scripts (loaded again on `NOSCRIPT`).

use std::sync::Arc;
use std::time::Duration;

use lic4es::clock::Clock;
use redis::aio::ConnectionManager;
use redis::{Script, Value};

use super::keys::*;
use super::*;

/// Where the seats live: one Redis, a Redis Cluster, or the master that a set of Sentinels
/// names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (`redis://host:port[/db]`, or `rediss://`).
    Single(String),
    /// A Redis Cluster, found from these seed nodes.
    Cluster(Vec<String>),
    /// The master Sentinel calls `master`, found by asking these Sentinels.
    Sentinel {
        /// The name the Sentinels monitor the master under.
        master: String,
        /// The Sentinels (`redis://host:port`, or `rediss://`).
        nodes: Vec<String>,
    },
}

/// How the store reaches its Redis.
pub(super) enum Target {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
    /// Asked for the master at every (re)connect, so a failover moves the store along.
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
}

/// A connection to one server, or to a whole cluster (which routes each command to the
/// master of its key's slot and follows `MOVED` and failovers itself).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Commands of several slots run at once on a cluster, at most this many in flight.
pub(super) const CLUSTER_FANOUT: usize = 64;
/// How long a single connect or answer may take.
pub(super) const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a cluster command may take in all, its retries through a failover included.
pub(super) const CLUSTER_OVERALL_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn tls_roots(
    ca_file: Option<&std::path::Path>,
) -> Result<Option<redis::TlsCertificates>, String> {
    ca_file
        .map(|path| {
            std::fs::read(path)
                .map(|pem| redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                })
                .map_err(|e| format!("redis-ca-file {}: {e}", path.display()))
        })
        .transpose()
}

impl RedisSeats {
    /// A store on `url` (`redis://host:port[/db]`). Nothing is connected until the first
    /// call, so a server starts while Redis is down and answers 503 until it is back.
    pub fn new(url: &str) -> Result<RedisSeats, String> {
        Self::with_tls(url, None)
    }

    /// [`RedisSeats::new`]; a `rediss://` URL speaks TLS (rustls), its server's
    /// certificate checked against `ca_file` (PEM) when given, else the platform's roots.
    pub fn with_tls(url: &str, ca_file: Option<&std::path::Path>) -> Result<RedisSeats, String> {
        Self::open(&Topology::Single(url.to_string()), ca_file)
    }

    /// A store on `topology`. `rediss://` addresses speak TLS (rustls), certificates
    /// checked against `ca_file` (PEM) when given, else the platform's roots. Nothing is
    /// connected until the first call.
    pub fn open(
        topology: &Topology,
        ca_file: Option<&std::path::Path>,
    ) -> Result<RedisSeats, String> {
        let roots = tls_roots(ca_file)?;
        let all_tls = |urls: &[String]| urls.iter().all(|u| u.starts_with("rediss://"));
        let target = match topology {
            Topology::Single(url) => {
                if roots.is_some() && !url.starts_with("rediss://") {
                    return Err("redis-ca-file needs a rediss:// redis-url".into());
                }
                match roots {
                    None => redis::Client::open(url.as_str()),
                    Some(roots) => redis::Client::build_with_tls(url.as_str(), roots),
                }
                .map(Target::Single)
                .map_err(|e| format!("redis-url: {e}"))?
            }
            Topology::Cluster(nodes) => {
                if nodes.is_empty() {
                    return Err("redis-cluster needs at least one seed node".into());
                }
                if roots.is_some() && !all_tls(nodes) {
                    return Err("redis-ca-file needs rediss:// redis-cluster nodes".into());
                }
                let mut b =
                    redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                        .connection_timeout(REDIS_TIMEOUT)
                        .response_timeout(REDIS_TIMEOUT)
                        .overall_response_timeout(Some(CLUSTER_OVERALL_TIMEOUT))
                        .retries(6)
                        .min_retry_wait(100)
                        .max_retry_wait(2_000);
                if let Some(roots) = roots {
                    b = b.certs(roots);
                }
                Target::Cluster(b.build().map_err(|e| format!("redis-cluster: {e}"))?)
            }
            Topology::Sentinel { master, nodes } => {
                if nodes.is_empty() || master.trim().is_empty() {
                    return Err("redis-sentinel needs a master name and at least one node".into());
                }
                let tls = all_tls(nodes);
                if !tls && nodes.iter().any(|u| u.starts_with("rediss://")) {
                    return Err("redis-sentinel nodes are all redis:// or all rediss://".into());
                }
                if roots.is_some() && !tls {
                    return Err("redis-ca-file needs rediss:// redis-sentinel nodes".into());
                }
                let addrs = nodes
                    .iter()
                    .map(|u| {
                        redis::IntoConnectionInfo::into_connection_info(u.as_str())
                            .map(|i| i.addr().clone())
                            .map_err(|e| format!("redis-sentinel node `{u}`: {e}"))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let mut b = redis::sentinel::SentinelClientBuilder::new(
                    addrs,
                    master.trim(),
                    redis::sentinel::SentinelServerType::Master,
                )
                .map_err(|e| format!("redis-sentinel: {e}"))?;
                if tls {
                    // The master speaks TLS as its Sentinels do.
                    b = b
                        .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure)
                        .set_client_to_redis_tls_mode(redis::TlsMode::Secure);
                    if let Some(roots) = roots {
                        b = b
                            .set_client_to_sentinel_certificates(roots.clone())
                            .set_client_to_redis_certificates(roots);
                    }
                }
                Target::Sentinel(tokio::sync::Mutex::new(
                    b.build().map_err(|e| format!("redis-sentinel: {e}"))?,
                ))
            }
        };
        Ok(RedisSeats {
            target,
            current: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            sweep_cursor: std::sync::Mutex::new((0, 0)),
            index_moved: OnceCell::new(),
            sessions_moved: OnceCell::new(),
            indexed: std::sync::Mutex::new((
                std::time::Instant::now(),
                std::collections::HashSet::new(),
            )),
            lapse_cursor: std::sync::Mutex::new(None),
            test_clock: None,
        })
    }

    /// Tests only: the scripts take the time from `clock` instead of Redis `TIME`, so a
    /// contract test can move hours in a step. A server never sets it.
    pub fn with_test_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.test_clock = Some(clock);
        self
    }

    pub(super) fn manager_config() -> redis::aio::ConnectionManagerConfig {
        redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
    }

    pub(super) async fn connect(&self) -> redis::RedisResult<Conn> {
        match &self.target {
            Target::Single(client) => {
                ConnectionManager::new_with_config(client.clone(), Self::manager_config())
                    .await
                    .map(Conn::Single)
            }
            Target::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
            Target::Sentinel(sentinel) => {
                let client = tokio::time::timeout(REDIS_TIMEOUT * 2, async {
                    sentinel.lock().await.async_get_client().await
                })
                .await
                .map_err(|_| {
                    redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no Sentinel named the master in time",
                    ))
                })??;
                ConnectionManager::new_with_config(client, Self::manager_config())
                    .await
                    .map(Conn::Single)
            }
        }
    }

    pub(super) async fn conn(&self) -> Result<Conn, SeatError> {
        let current = || {
            self.current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        if let Some(c) = current() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = current() {
            return Ok(c);
        }
        let c = self.connect().await.map_err(unavailable)?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Forgets the connection, so that the next call asks the Sentinels for the master
    /// again (the one it had is gone, or was demoted to a replica).
    pub(super) fn forget(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Runs `op` on the connection, and once more when the connection was refused. During
    /// an outage the manager keeps its last failed connect until the next request, which
    /// fails on it without reaching Redis and only then starts a new connect: without the
    /// second try, the first request on each instance after Redis is back would be a 503.
    /// A refused connection sent nothing, and a read-only replica ran nothing, so no
    /// command or script runs twice. Behind Sentinel, a lost or demoted master makes the
    /// next connect ask the Sentinels where the master is now.
    pub(super) async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, SeatError>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let sentinel = matches!(self.target, Target::Sentinel(_));
        let conn = self.conn().await?;
        match op(conn.clone()).await {
            Err(e) if e.is_connection_refusal() => {
                let conn = if sentinel {
                    self.forget();
                    self.conn().await?
                } else {
                    conn
                };
                op(conn).await
            }
            Err(e)
                if sentinel
                    && e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly) =>
            {
                self.forget();
                op(self.conn().await?).await
            }
            Err(e)
                if sentinel && (e.is_io_error() || e.is_timeout() || e.is_connection_dropped()) =>
            {
                self.forget();
                Err(e)
            }
            done => done,
        }
        .map_err(unavailable)
    }

    /// Runs `cmds` and answers their values in order: one pipeline on a single Redis; on
    /// a cluster, where a pipeline may not leave one slot, each command on its own, a
    /// bounded number at once.
    pub(super) async fn query_each(&self, cmds: Vec<redis::Cmd>) -> Result<Vec<Value>, SeatError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        if let Target::Cluster(_) = self.target {
            use futures_util::{StreamExt, TryStreamExt};
            let conn = self.conn().await?;
            return futures_util::stream::iter(cmds)
                .map(|cmd| {
                    let mut c = conn.clone();
                    async move { cmd.query_async::<Value>(&mut c).await }
                })
                .buffered(CLUSTER_FANOUT)
                .try_collect()
                .await
                .map_err(unavailable);
        }
        let mut pipe = redis::pipe();
        for cmd in cmds {
            pipe.add_command(cmd);
        }
        let pipe = &pipe;
        self.with_conn(|mut c| async move { pipe.query_async(&mut c).await })
            .await
    }

    /// Runs `script` over `license`'s keys with the common arguments (the time source,
    /// the lapse cap) followed by `args`.
    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        license: &str,
        args: &[String],
    ) -> Result<T, SeatError> {
        self.run_with(script, license, &[], args).await
    }

    /// [`RedisSeats::run`] with `extra` keys after the license's (outside its slot: never
    /// on a cluster).
    pub(super) async fn run_with<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        license: &str,
        extra: &[String],
        args: &[String],
    ) -> Result<T, SeatError> {
        let mut inv = script.prepare_invoke();
        for k in keys(license) {
            inv.key(k);
        }
        for k in extra {
            inv.key(k);
        }
        let time = match &self.test_clock {
            Some(c) => format!("={}", c.now_secs()),
            None => "TIME".to_string(),
        };
        inv.arg(time).arg(MAX_PENDING_LAPSES);
        for a in args {
            inv.arg(a);
        }
        let inv = &inv;
        self.with_conn(|mut c| async move { inv.invoke_async(&mut c).await })
            .await
    }

    /// On a cluster, where the discovery indexes are in other slots than a license's keys
    /// and so are kept apart from its scripts.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }
}
