//! Seats in Redis, shared by any number of server instances.
//!
//! Every check-and-change is one Lua script over the keys of one license, which share the
//! hash tag `{lic:ID}` so that a license lives in one Redis Cluster slot:
//!
//! - `{lic:ID}:online`: sorted set of online session ids, scored by when they lapse;
//! - `{lic:ID}:offline`: sorted set of lapsed sessions, scored by when their grace ends;
//! - `{lic:ID}:sessions`: hash of session id → the session as JSON;
//! - `{lic:ID}:lapsed`: list of lapses not yet handed to the audit trail (capped);
//! - `{lic:ID}:ids`: sorted set of its session ids (score 0), for paging in id order;
//! - `{lic:ID}:limit`: its seats at its last acquire (for the summary's ranking).
//!
//! Time inside the scripts is Redis `TIME`, never an instance's clock, so instances with
//! skewed clocks agree on who lapsed. Scripts lapse due sessions lazily, a bounded number
//! per call, and count online seats by score, so the count is exact whatever is left to
//! reap. Scripts are run with EVALSHA and loaded again on `NOSCRIPT` (a Redis restart, a
//! failover, `SCRIPT FLUSH`).
//!
//! Discovery lives outside any license's slot: `lic4es:license-index` (licenses that have
//! had sessions, a sorted set paged in id order) and the session index, session id →
//! license for an operator's kick, spread over 64 hashes `lic4es:session-license:{NN}`
//! (each its own slot, so no one cluster node holds it all). On one Redis the acquire
//! and end scripts keep both, so an acquire is one round trip; on a Redis Cluster no
//! script touches two slots, and the store writes them beside the script (the license
//! index at most once per license and instance every few minutes). `lic4es:summary`
//! holds the fleet's totals, computed by one instance at most once per interval (under
//! the lease `lic4es:summary-lease`) and read by every instance's scrape.
//!
//! The store runs on one Redis, on a Redis Cluster (the client routes each command to
//! its slot's master and follows failovers) or behind Sentinel (asked for the master at
//! each connect, and again when the master is lost or answers as a read-only replica).
//! Any Redis failure is [`SeatError::Unavailable`]: a 503, never a grant. Replication is
//! asynchronous: a failover can lose the last writes a master acknowledged, and an
//! engine whose session was among them is answered 410 at its next heartbeat and
//! acquires again.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use lic4es::clock::Clock;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::{
    Acquired, Beat, LicenseUsage, NewSession, Page, Replace, SeatError, SeatFuture, SeatStore,
    Session, SessionCursor, SessionQuery, SessionState, Summary, Usage,
};

/// Due sessions lapsed per call; the rest wait for the next call (the online count does
/// not depend on them being reaped).
const REAP_BUDGET: u32 = 100;
/// Due sessions lapsed before a listing (an operator's call, not on the hot path).
const LIST_REAP_BUDGET: u32 = 10_000;
/// Index entries checked per sweep for sessions that are gone.
const INDEX_SWEEP: u32 = 500;
/// Lapses kept per license for the audit trail when nobody collects them.
const MAX_PENDING_LAPSES: i64 = 1000;
/// Sorted set (score 0, so in id order) of licenses that have had sessions (never
/// pruned: removing one could race an acquire on another instance and hide its sessions;
/// it holds one entry per license).
const LICENSE_INDEX_KEY: &str = "lic4es:license-index";
/// The set an earlier version kept the licenses in; moved into the index once.
const OLD_LICENSES_KEY: &str = "lic4es:licenses";
/// The fleet's summary (JSON), shared by every instance.
const SUMMARY_KEY: &str = "lic4es:summary";
/// Held by the instance computing the summary, so that one does it per interval.
const SUMMARY_LEASE_KEY: &str = "lic4es:summary-lease";
/// How long a summary lease lasts at most (a crashed holder's lease runs out).
const SUMMARY_LEASE_MS: u64 = 30_000;
/// Licenses read per round trip when the whole index is walked.
const INDEX_CHUNK: usize = 1000;
/// Session ids a page script looks at at most (a state filter may skip most of them).
const PAGE_SCAN_MAX: u32 = 10_000;
/// Licenses whose lapses one collection takes at most (the rest wait for the next ones).
const LAPSE_LICENSES: usize = 200;
/// Licenses a page of every license's sessions visits at most.
const PAGE_LICENSES_MAX: usize = 1000;
/// The session index (session id → license) is spread over this many hashes, each in
/// its own cluster slot, so that no one node holds (and serves) all of it.
const SESSION_SHARDS: u32 = 64;
/// The one hash an earlier version kept the session index in; moved into the shards once.
const OLD_SESSION_INDEX_KEY: &str = "lic4es:session-license";
/// Index entries moved per round trip from the earlier version's hash.
const MOVE_CHUNK: u32 = 1000;

/// The session index's hash that holds `session_id`'s entry. The hash is FNV-1a, fixed
/// forever: every instance, of every version, must find the same shard.
fn session_shard(session_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in session_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SESSION_SHARDS
}

fn session_index_key(shard: u32) -> String {
    format!("lic4es:session-license:{{{shard:02}}}")
}

/// Shared by every script: the clock and the lazy, bounded reaping.
const PRELUDE: &str = r#"
local ONLINE, OFFLINE, SESS, LAPSED, IDS, LIMIT, GRANTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local function now_secs()
  if string.sub(ARGV[1], 1, 1) == '=' then
    return tonumber(string.sub(ARGV[1], 2))
  end
  local t = redis.call('TIME')
  return tonumber(t[1])
end
local function reap(now, budget)
  local due = redis.call('ZRANGEBYSCORE', ONLINE, '-inf', now, 'LIMIT', 0, budget)
  for _, id in ipairs(due) do
    redis.call('ZREM', ONLINE, id)
    local raw = redis.call('HGET', SESS, id)
    if raw then
      local s = cjson.decode(raw)
      s.off_since = s.seen
      s.off_until = s.seen + s.ttl + s.grace
      local enc = cjson.encode(s)
      redis.call('RPUSH', LAPSED, enc)
      if s.grace > 0 and s.off_until > now then
        redis.call('HSET', SESS, id, enc)
        redis.call('ZADD', OFFLINE, s.off_until, id)
      else
        redis.call('HDEL', SESS, id)
        redis.call('ZREM', IDS, id)
      end
    end
  end
  if #due > 0 then
    redis.call('LTRIM', LAPSED, -tonumber(ARGV[2]), -1)
  end
  local gone = redis.call('ZRANGEBYSCORE', OFFLINE, '-inf', now, 'LIMIT', 0, budget)
  for _, id in ipairs(gone) do
    redis.call('ZREM', OFFLINE, id)
    redis.call('HDEL', SESS, id)
    redis.call('ZREM', IDS, id)
  end
end
local function drop(id)
  redis.call('HDEL', SESS, id)
  redis.call('ZREM', ONLINE, id)
  redis.call('ZREM', OFFLINE, id)
  redis.call('ZREM', IDS, id)
end
"#;

/// ARGV: time source, lapse cap, budget, limit, new session (JSON without `acq` and
/// `seen`), replaced id, its hardware id, the new session's id, its TTL, its license,
/// seats it may grant per clock hour (0: no bound; GRANTS holds `hour:count`).
/// The new session's JSON is completed by concatenation, not decoded and encoded again:
/// that was a fifth of the script's time.
/// On one Redis (not a cluster, where they are in other slots) KEYS 8 and 9 are the new
/// session's index shard and the replaced session's, and KEYS[10], given when this
/// instance has not put the license there lately, the license index: kept here so that
/// an acquire is one round trip.
const ACQUIRE: &str = r#"
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local ended = ''
if ARGV[6] ~= '' then
  local raw = redis.call('HGET', SESS, ARGV[6])
  if raw and cjson.decode(raw).hw == ARGV[7] then
    drop(ARGV[6])
    ended = raw
    if KEYS[9] then
      redis.call('HDEL', KEYS[9], ARGV[6])
    end
  end
end
local in_use = redis.call('ZCOUNT', ONLINE, '(' .. now, '+inf')
if in_use >= tonumber(ARGV[4]) then
  return {'full', tostring(in_use), ended}
end
local hour = now - now % 3600
local granted = 0
local g = redis.call('GET', GRANTS)
if g then
  local h, n = string.match(g, '^(%d+):(%d+)$')
  if h and tonumber(h) == hour then
    granted = tonumber(n)
  end
end
local per_hour = tonumber(ARGV[11])
if per_hour > 0 and granted >= per_hour then
  return {'budget', tostring(hour + 3600 - now), ended}
end
redis.call('SET', GRANTS, hour .. ':' .. (granted + 1), 'EX', 7200)
local id = ARGV[8]
local enc = '{"acq":' .. now .. ',"seen":' .. now .. ',' .. string.sub(ARGV[5], 2)
redis.call('HSET', SESS, id, enc)
redis.call('ZADD', ONLINE, now + tonumber(ARGV[9]), id)
redis.call('ZADD', IDS, 0, id)
redis.call('SET', LIMIT, ARGV[4])
if KEYS[8] then
  redis.call('HSET', KEYS[8], id, ARGV[10])
end
if KEYS[10] then
  redis.call('ZADD', KEYS[10], 0, ARGV[10])
end
return {'granted', enc, ended}
"#;

/// ARGV: time source, lapse cap, budget, session id, the shortest spacing of renewals
/// (seconds). A heartbeat sooner than that after the last one answers `soon:<wait>:` and
/// the session, unchanged.
const HEARTBEAT: &str = r#"
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local score = redis.call('ZSCORE', ONLINE, ARGV[4])
if not score or tonumber(score) <= now then
  return ''
end
local raw = redis.call('HGET', SESS, ARGV[4])
if not raw then
  return ''
end
local s = cjson.decode(raw)
local gap = tonumber(ARGV[5])
if now - s.seen < gap then
  return 'soon:' .. (s.seen + gap - now) .. ':' .. raw
end
s.seen = now
local enc = cjson.encode(s)
redis.call('HSET', SESS, s.id, enc)
redis.call('ZADD', ONLINE, now + s.ttl, s.id)
return enc
"#;

/// ARGV: time source, lapse cap, session id, tier, token expiry.
const RENEWED: &str = r#"
local raw = redis.call('HGET', SESS, ARGV[3])
if raw then
  local s = cjson.decode(raw)
  s.tier = ARGV[4]
  s.exp = tonumber(ARGV[5])
  redis.call('HSET', SESS, ARGV[3], cjson.encode(s))
end
return ''
"#;

/// ARGV: time source, lapse cap, budget, session id. Ends it, online or offline. On one
/// Redis KEYS[8] is its index shard.
const END: &str = r#"
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local raw = redis.call('HGET', SESS, ARGV[4])
if not raw then
  return ''
end
drop(ARGV[4])
if KEYS[8] then
  redis.call('HDEL', KEYS[8], ARGV[4])
end
return raw
"#;

/// ARGV: time source, lapse cap, budget. Every session of the license.
const LIST: &str = r#"
local now = now_secs()
reap(now, tonumber(ARGV[3]))
return redis.call('HVALS', SESS)
"#;

/// ARGV: time source, lapse cap, budget, after id ('' for the first), most sessions,
/// state ('', 'online', 'offline'), most ids looked at. Answers the last id looked at,
/// whether ids may follow it ('more' or 'done'), then the sessions of the page.
const PAGE: &str = r#"
local now = now_secs()
reap(now, tonumber(ARGV[3]))
if redis.call('ZCARD', IDS) < redis.call('HLEN', SESS) then
  -- Sessions of an earlier version, which kept no id index.
  for _, id in ipairs(redis.call('HKEYS', SESS)) do
    redis.call('ZADD', IDS, 0, id)
  end
end
local from = '-'
if ARGV[4] ~= '' then
  from = '(' .. ARGV[4]
end
local want, state, scan = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local ids = redis.call('ZRANGEBYLEX', IDS, from, '+', 'LIMIT', 0, scan)
local out = {ARGV[4], 'done'}
if #ids == scan then
  out[2] = 'more'
end
for i, id in ipairs(ids) do
  out[1] = id
  local raw = redis.call('HGET', SESS, id)
  if raw then
    local keep = true
    if state ~= '' then
      local score = redis.call('ZSCORE', ONLINE, id)
      local online = score ~= false and score ~= nil and tonumber(score) > now
      keep = (state == 'online') == online
    end
    if keep then
      out[#out + 1] = raw
      if #out - 2 >= want then
        if i < #ids then
          out[2] = 'more'
        end
        break
      end
    end
  else
    redis.call('ZREM', IDS, id)
  end
end
return out
"#;

/// ARGV: time source, lapse cap, budget. The lapses not yet handed out.
const TAKE_LAPSED: &str = r#"
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local out = redis.call('LRANGE', LAPSED, 0, -1)
redis.call('DEL', LAPSED)
return out
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(ACQUIRE));
static HEARTBEAT_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(HEARTBEAT));
static RENEWED_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(RENEWED));
static END_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(END));
static LIST_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(LIST));
static TAKE_LAPSED_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TAKE_LAPSED));
static PAGE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(PAGE));

/// A new session as the acquire script takes it: [`Stored`] without `acq` and `seen`,
/// which the script puts in front from its clock.
#[derive(Serialize)]
struct NewStored<'a> {
    id: &'a str,
    license: &'a str,
    hw: &'a str,
    inst: &'a str,
    ttl: i64,
    grace: i64,
    tier: &'a str,
    exp: i64,
}

/// A session as the scripts store it (short names: this is per-session memory).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    id: String,
    license: String,
    hw: String,
    inst: String,
    #[serde(default)]
    acq: i64,
    #[serde(default)]
    seen: i64,
    ttl: i64,
    grace: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    off_since: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    off_until: Option<i64>,
    tier: String,
    exp: i64,
}

impl From<Stored> for Session {
    fn from(s: Stored) -> Session {
        Session {
            id: s.id,
            license: s.license,
            hardware_id: s.hw,
            instance_id: s.inst,
            acquired_at: s.acq,
            last_seen: s.seen,
            ttl: s.ttl,
            grace: s.grace,
            offline_since: s.off_since,
            offline_until: s.off_until,
            tier: s.tier,
            token_exp: s.exp,
        }
    }
}

fn parse(raw: &str) -> Result<Option<Session>, SeatError> {
    if raw.is_empty() {
        return Ok(None);
    }
    serde_json::from_str::<Stored>(raw)
        .map(|s| Some(s.into()))
        .map_err(|e| SeatError::Corrupt(format!("a session in Redis is malformed: {e}")))
}

fn unavailable(e: redis::RedisError) -> SeatError {
    SeatError::Unavailable(format!("redis: {e}"))
}

/// The keys of one license, in script order.
fn keys(license: &str) -> [String; 7] {
    [
        format!("{{lic:{license}}}:online"),
        format!("{{lic:{license}}}:offline"),
        format!("{{lic:{license}}}:sessions"),
        format!("{{lic:{license}}}:lapsed"),
        format!("{{lic:{license}}}:ids"),
        format!("{{lic:{license}}}:limit"),
        format!("{{lic:{license}}}:grants"),
    ]
}

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
enum Target {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
    /// Asked for the master at every (re)connect, so a failover moves the store along.
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
}

/// A connection to one server, or to a whole cluster (which routes each command to the
/// master of its key's slot and follows `MOVED` and failovers itself).
#[derive(Clone)]
enum Conn {
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
const CLUSTER_FANOUT: usize = 64;
/// How long a single connect or answer may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a cluster command may take in all, its retries through a failover included.
const CLUSTER_OVERALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The Redis seat store.
pub struct RedisSeats {
    target: Target,
    /// The connection in use; `None` until the first call, and again after a Sentinel
    /// master was lost.
    current: std::sync::Mutex<Option<Conn>>,
    /// Held while connecting, so that concurrent callers share one connect.
    connecting: tokio::sync::Mutex<()>,
    /// Where the next sweep of the session index resumes: its shard and `HSCAN` cursor.
    sweep_cursor: std::sync::Mutex<(u32, u64)>,
    /// The licenses of an earlier version's set were moved into the index.
    index_moved: OnceCell<()>,
    /// The session index of an earlier version (one hash) was moved into the shards.
    sessions_moved: OnceCell<()>,
    /// Licenses this instance put in the index lately: an acquire under one of them
    /// skips the index write. Emptied every [`INDEXED_FOR`], so an entry that a
    /// failover lost is written again.
    indexed: std::sync::Mutex<(std::time::Instant, std::collections::HashSet<String>)>,
    /// Where the next collection of lapses goes on in the index.
    lapse_cursor: std::sync::Mutex<Option<String>>,
    /// Tests only: the time the scripts use instead of Redis `TIME`.
    test_clock: Option<Arc<dyn Clock>>,
}

/// How long a license stays in [`RedisSeats::indexed`].
const INDEXED_FOR: Duration = Duration::from_secs(300);
/// Most licenses kept in [`RedisSeats::indexed`].
const INDEXED_MAX: usize = 100_000;

fn tls_roots(ca_file: Option<&std::path::Path>) -> Result<Option<redis::TlsCertificates>, String> {
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

    fn manager_config() -> redis::aio::ConnectionManagerConfig {
        redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
    }

    async fn connect(&self) -> redis::RedisResult<Conn> {
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

    async fn conn(&self) -> Result<Conn, SeatError> {
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
    fn forget(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Runs `op` on the connection, and once more when the connection was refused. During
    /// an outage the manager keeps its last failed connect until the next request, which
    /// fails on it without reaching Redis and only then starts a new connect: without the
    /// second try, the first request on each instance after Redis is back would be a 503.
    /// A refused connection sent nothing, and a read-only replica ran nothing, so no
    /// command or script runs twice. Behind Sentinel, a lost or demoted master makes the
    /// next connect ask the Sentinels where the master is now.
    async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, SeatError>
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
    async fn query_each(&self, cmds: Vec<redis::Cmd>) -> Result<Vec<Value>, SeatError> {
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
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        license: &str,
        args: &[String],
    ) -> Result<T, SeatError> {
        self.run_with(script, license, &[], args).await
    }

    /// [`RedisSeats::run`] with `extra` keys after the license's (outside its slot: never
    /// on a cluster).
    async fn run_with<T: redis::FromRedisValue>(
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

    /// Puts a granted session in the discovery indexes (the license index only when this
    /// instance has not lately).
    async fn index(&self, session: &Session) -> Result<(), SeatError> {
        self.move_old_sessions().await?;
        let mut cmds = Vec::with_capacity(2);
        let mut hset = redis::cmd("HSET");
        hset.arg(session_index_key(session_shard(&session.id)))
            .arg(&session.id)
            .arg(&session.license);
        cmds.push(hset);
        let fresh = !self.lately_indexed(&session.license);
        if fresh {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(LICENSE_INDEX_KEY).arg(0).arg(&session.license);
            cmds.push(zadd);
        }
        self.query_each(cmds).await?;
        if fresh {
            self.indexed_now(&session.license);
        }
        Ok(())
    }

    /// Whether this instance put `license` in the license index lately.
    fn lately_indexed(&self, license: &str) -> bool {
        let mut indexed = self.indexed.lock().unwrap_or_else(|p| p.into_inner());
        if indexed.0.elapsed() > INDEXED_FOR || indexed.1.len() >= INDEXED_MAX {
            *indexed = (std::time::Instant::now(), Default::default());
        }
        indexed.1.contains(license)
    }

    /// Notes that `license` was just put in the license index.
    fn indexed_now(&self, license: &str) {
        self.indexed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .insert(license.to_string());
    }

    async fn unindex(&self, session_id: &str) -> Result<(), SeatError> {
        let key = session_index_key(session_shard(session_id));
        let key = &key;
        self.with_conn(|mut c| async move { c.hdel::<_, _, ()>(key, session_id).await })
            .await
    }

    /// Moves an earlier version's one-hash session index into the shards, once (a chunk
    /// per round trip; entries are only copied, so instances doing it at once agree).
    async fn move_old_sessions(&self) -> Result<(), SeatError> {
        self.sessions_moved
            .get_or_try_init(|| async {
                let mut cursor: u64 = 0;
                loop {
                    let mut scan = redis::cmd("HSCAN");
                    scan.arg(OLD_SESSION_INDEX_KEY)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(MOVE_CHUNK);
                    let scan = &scan;
                    let (next, pairs): (u64, Vec<(String, String)>) = self
                        .with_conn(|mut c| async move { scan.query_async(&mut c).await })
                        .await?;
                    let cmds = pairs
                        .iter()
                        .map(|(sid, license)| {
                            let mut hset = redis::cmd("HSET");
                            hset.arg(session_index_key(session_shard(sid)))
                                .arg(sid)
                                .arg(license);
                            hset
                        })
                        .collect();
                    self.query_each(cmds).await?;
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                self.with_conn(|mut c| async move { c.del::<_, ()>(OLD_SESSION_INDEX_KEY).await })
                    .await
            })
            .await
            .map(|_| ())
    }

    /// Moves an earlier version's set of licenses into the index, once.
    async fn move_old_index(&self) -> Result<(), SeatError> {
        self.index_moved
            .get_or_try_init(|| async {
                let old: Vec<String> = self
                    .with_conn(|mut c| async move { c.smembers(OLD_LICENSES_KEY).await })
                    .await?;
                if !old.is_empty() {
                    let members: Vec<(i64, &String)> = old.iter().map(|l| (0, l)).collect();
                    let members = &members;
                    self.with_conn(|mut c| async move {
                        c.zadd_multiple::<_, _, _, ()>(LICENSE_INDEX_KEY, members)
                            .await
                    })
                    .await?;
                    self.with_conn(|mut c| async move { c.del::<_, ()>(OLD_LICENSES_KEY).await })
                        .await?;
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Up to `n` licenses of the index after `after` (from `from` itself when
    /// `inclusive`), in id order.
    async fn licenses_after(
        &self,
        after: Option<&str>,
        inclusive: bool,
        n: usize,
    ) -> Result<Vec<String>, SeatError> {
        self.move_old_index().await?;
        let from = match after {
            None => "-".to_string(),
            Some(l) if inclusive => format!("[{l}"),
            Some(l) => format!("({l}"),
        };
        let mut cmd = redis::cmd("ZRANGEBYLEX");
        cmd.arg(LICENSE_INDEX_KEY)
            .arg(from)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(n);
        let cmd = &cmd;
        self.with_conn(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    /// Every license of the index, a chunk per round trip.
    async fn licenses(&self) -> Result<Vec<String>, SeatError> {
        let mut all: Vec<String> = Vec::new();
        loop {
            let chunk = self
                .licenses_after(all.last().map(String::as_str), false, INDEX_CHUNK)
                .await?;
            let done = chunk.len() < INDEX_CHUNK;
            all.extend(chunk);
            if done {
                return Ok(all);
            }
        }
    }

    /// The licenses whose lapses the next [`SeatStore::take_lapsed`] collects: at most
    /// [`LAPSE_LICENSES`], going round the index from where the last call stopped, so a
    /// call costs the same however many licenses there are.
    async fn lapse_round(&self) -> Result<Vec<String>, SeatError> {
        let cursor = self
            .lapse_cursor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut round = self
            .licenses_after(cursor.as_deref(), false, LAPSE_LICENSES)
            .await?;
        let mut whole = cursor.is_none() && round.len() < LAPSE_LICENSES;
        if let Some(c) = &cursor {
            if round.len() < LAPSE_LICENSES {
                // The end of the index: on from its start, up to where this round began.
                let rest = self
                    .licenses_after(None, false, LAPSE_LICENSES - round.len())
                    .await?;
                let before: Vec<String> = rest.into_iter().filter(|l| l <= c).collect();
                whole = before.last() == Some(c) || before.len() < LAPSE_LICENSES - round.len();
                round.extend(before);
            }
        }
        *self.lapse_cursor.lock().unwrap_or_else(|p| p.into_inner()) =
            if whole { None } else { round.last().cloned() };
        Ok(round)
    }

    /// The store's time: Redis `TIME`, or the test clock.
    async fn now(&self) -> Result<i64, SeatError> {
        if let Some(c) = &self.test_clock {
            return Ok(c.now_secs());
        }
        let (secs, _): (i64, i64) = self
            .with_conn(|mut c| async move { redis::cmd("TIME").query_async(&mut c).await })
            .await?;
        Ok(secs)
    }

    /// Usage and limit of each of `licenses` at `now`, in one round trip.
    async fn usage_of(
        &self,
        licenses: &[String],
        now: i64,
    ) -> Result<Vec<LicenseUsage>, SeatError> {
        let mut cmds = Vec::with_capacity(licenses.len() * 3);
        for l in licenses {
            let [online, offline, _, _, _, limit, _] = keys(l);
            let mut c = redis::cmd("ZCOUNT");
            c.arg(&online).arg(format!("({now}")).arg("+inf");
            cmds.push(c);
            let mut c = redis::cmd("ZCOUNT");
            c.arg(&offline).arg(format!("({now}")).arg("+inf");
            cmds.push(c);
            let mut c = redis::cmd("GET");
            c.arg(&limit);
            cmds.push(c);
        }
        let flat = self.query_each(cmds).await?;
        let counts: Vec<(u32, u32, Option<u32>)> = flat
            .chunks(3)
            .map(|c| {
                let n = |v: &Value| redis::from_redis_value::<Option<u32>>(v.clone());
                Ok((
                    n(&c[0])?.unwrap_or(0),
                    n(&c[1])?.unwrap_or(0),
                    c.get(2).map(n).transpose()?.flatten(),
                ))
            })
            .collect::<redis::RedisResult<_>>()
            .map_err(|e| SeatError::Corrupt(format!("redis: a count is malformed: {e}")))?;
        Ok(licenses
            .iter()
            .zip(counts)
            .map(|(l, (online, offline, limit))| LicenseUsage {
                license: l.clone(),
                usage: Usage { online, offline },
                limit: limit.unwrap_or(0),
            })
            .collect())
    }

    /// The summary computed now from every license of the index.
    async fn compute_summary(&self, nearest: usize) -> Result<Summary, SeatError> {
        let now = self.now().await?;
        let mut summary = Summary {
            at: now,
            ..Summary::default()
        };
        let mut ranked: Vec<LicenseUsage> = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let chunk = self
                .licenses_after(last.as_deref(), false, INDEX_CHUNK)
                .await?;
            for u in self.usage_of(&chunk, now).await? {
                summary.online += u64::from(u.usage.online);
                summary.offline += u64::from(u.usage.offline);
                if u.usage.online + u.usage.offline > 0 {
                    summary.licenses += 1;
                }
                ranked.push(u);
            }
            // Bounded memory: only the nearest are kept between chunks.
            ranked = super::nearest_limits(ranked, nearest);
            if chunk.len() < INDEX_CHUNK {
                break;
            }
            last = chunk.last().cloned();
        }
        summary.nearest = ranked;
        Ok(summary)
    }

    /// Drops index entries of sessions that are gone (dropped after their offline grace
    /// inside a script, which cannot reach the index's slot), a bounded step per call.
    async fn sweep_index(&self) -> Result<(), SeatError> {
        self.move_old_sessions().await?;
        let (shard, cursor) = *self.sweep_cursor.lock().unwrap_or_else(|p| p.into_inner());
        let key = session_index_key(shard);
        let mut scan = redis::cmd("HSCAN");
        scan.arg(&key).arg(cursor).arg("COUNT").arg(INDEX_SWEEP);
        let scan = &scan;
        let (next, pairs): (u64, Vec<(String, String)>) = self
            .with_conn(|mut c| async move { scan.query_async(&mut c).await })
            .await?;
        // A shard's end: the next sweep takes the next shard.
        *self.sweep_cursor.lock().unwrap_or_else(|p| p.into_inner()) = if next == 0 {
            ((shard + 1) % SESSION_SHARDS, 0)
        } else {
            (shard, next)
        };
        if pairs.is_empty() {
            return Ok(());
        }
        // One round trip to look (on a cluster, a command per entry, 64 at once), one to
        // drop what is gone.
        let look = pairs
            .iter()
            .map(|(sid, license)| {
                let [_, _, sessions, ..] = keys(license);
                let mut c = redis::cmd("HEXISTS");
                c.arg(sessions).arg(sid);
                c
            })
            .collect();
        let exists = self.query_each(look).await?;
        let gone: Vec<&String> = pairs
            .iter()
            .zip(exists)
            .filter(|(_, e)| !matches!(redis::from_redis_value::<bool>(e.clone()), Ok(true)))
            .map(|((sid, _), _)| sid)
            .collect();
        if !gone.is_empty() {
            let (key, gone) = (&key, &gone);
            self.with_conn(|mut c| async move { c.hdel::<_, _, ()>(key, gone.as_slice()).await })
                .await?;
        }
        Ok(())
    }

    /// The license a session was granted under, from the index.
    async fn license_of(&self, session_id: &str) -> Result<Option<String>, SeatError> {
        self.move_old_sessions().await?;
        let key = session_index_key(session_shard(session_id));
        let key = &key;
        self.with_conn(|mut c| async move { c.hget(key, session_id).await })
            .await
    }

    async fn end(&self, session_id: &str, license: &str) -> Result<Option<Session>, SeatError> {
        let args = [REAP_BUDGET.to_string(), session_id.to_string()];
        if !self.is_cluster() {
            self.move_old_sessions().await?;
            let shard = [session_index_key(session_shard(session_id))];
            let raw: String = self.run_with(&END_SCRIPT, license, &shard, &args).await?;
            return parse(&raw);
        }
        let s = parse(&self.run::<String>(&END_SCRIPT, license, &args).await?)?;
        if s.is_some() {
            self.unindex(session_id).await?;
        }
        Ok(s)
    }

    /// On a cluster, where the discovery indexes are in other slots than a license's keys
    /// and so are kept apart from its scripts.
    fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }
}

impl SeatStore for RedisSeats {
    fn acquire(&self, new: NewSession, replace: Option<Replace>) -> SeatFuture<'_, Acquired> {
        Box::pin(async move {
            let stored = NewStored {
                id: &new.id,
                license: &new.license,
                hw: &new.hardware_id,
                inst: &new.instance_id,
                ttl: new.ttl,
                grace: new.grace,
                tier: &new.tier,
                exp: new.token_exp,
            };
            let json = serde_json::to_string(&stored)
                .map_err(|e| SeatError::Unavailable(e.to_string()))?;
            let (old_id, old_hw) = match &replace {
                Some(r) => (r.session_id.clone(), r.hardware_id.clone()),
                None => (String::new(), String::new()),
            };
            let cluster = self.is_cluster();
            let mut license_indexed = false;
            let extra = if cluster {
                Vec::new()
            } else {
                self.move_old_sessions().await?;
                let mut extra = vec![
                    session_index_key(session_shard(&new.id)),
                    session_index_key(session_shard(&old_id)),
                ];
                if !self.lately_indexed(&new.license) {
                    extra.push(LICENSE_INDEX_KEY.to_string());
                    license_indexed = true;
                }
                extra
            };
            let out: Vec<String> = self
                .run_with(
                    &ACQUIRE_SCRIPT,
                    &new.license,
                    &extra,
                    &[
                        REAP_BUDGET.to_string(),
                        new.limit.to_string(),
                        json,
                        old_id,
                        old_hw,
                        new.id.clone(),
                        new.ttl.to_string(),
                        new.license.clone(),
                        new.grants_per_hour.to_string(),
                    ],
                )
                .await?;
            let field = |i: usize| out.get(i).map(String::as_str).unwrap_or("");
            let ended = parse(field(2))?;
            if let Some(e) = ended.as_ref().filter(|_| cluster) {
                self.unindex(&e.id).await?;
            }
            match field(0) {
                "granted" => {
                    let session = parse(field(1))?.ok_or_else(|| {
                        SeatError::Corrupt("redis: acquire returned no session".into())
                    })?;
                    if cluster {
                        self.index(&session).await?;
                    } else if license_indexed {
                        self.indexed_now(&session.license);
                    }
                    Ok(Acquired::Granted { session, ended })
                }
                "full" => Ok(Acquired::Full {
                    in_use: field(1).parse().unwrap_or(new.limit),
                    limit: new.limit,
                    ended,
                }),
                "budget" => Ok(Acquired::OverBudget {
                    retry_after: field(1).parse().unwrap_or(3600),
                    ended,
                }),
                other => Err(SeatError::Corrupt(format!(
                    "redis: unexpected acquire answer `{other}`"
                ))),
            }
        })
    }

    fn heartbeat<'a>(
        &'a self,
        session_id: &'a str,
        license: &'a str,
        min_gap: i64,
    ) -> SeatFuture<'a, Option<Beat>> {
        Box::pin(async move {
            let args = [
                REAP_BUDGET.to_string(),
                session_id.to_string(),
                min_gap.to_string(),
            ];
            let raw: String = self.run(&HEARTBEAT_SCRIPT, license, &args).await?;
            match raw.strip_prefix("soon:") {
                Some(rest) => {
                    let (wait, session) = rest.split_once(':').ok_or_else(|| {
                        SeatError::Corrupt(format!("redis: unexpected heartbeat answer `{raw}`"))
                    })?;
                    let wait = wait.parse::<i64>().map_err(|_| {
                        SeatError::Corrupt(format!("redis: unexpected heartbeat answer `{raw}`"))
                    })?;
                    Ok(parse(session)?.map(|session| Beat::TooSoon { session, wait }))
                }
                None => Ok(parse(&raw)?.map(Beat::Kept)),
            }
        })
    }

    fn renewed<'a>(
        &'a self,
        session_id: &'a str,
        tier: &'a str,
        token_exp: i64,
    ) -> SeatFuture<'a, ()> {
        Box::pin(async move {
            let Some(license) = self.license_of(session_id).await? else {
                return Ok(());
            };
            let _: String = self
                .run(
                    &RENEWED_SCRIPT,
                    &license,
                    &[
                        session_id.to_string(),
                        tier.to_string(),
                        token_exp.to_string(),
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn release<'a>(
        &'a self,
        session_id: &'a str,
        license: &'a str,
    ) -> SeatFuture<'a, Option<Session>> {
        Box::pin(self.end(session_id, license))
    }

    fn kick<'a>(&'a self, session_id: &'a str) -> SeatFuture<'a, Option<Session>> {
        Box::pin(async move {
            match self.license_of(session_id).await? {
                Some(l) => {
                    let s = self.end(session_id, &l).await?;
                    // A stale index entry (the session lapsed out) goes too; `end`
                    // dropped the entry of a session it ended.
                    if s.is_none() {
                        self.unindex(session_id).await?;
                    }
                    Ok(s)
                }
                None => Ok(None),
            }
        })
    }

    fn sessions<'a>(&'a self, license: Option<&'a str>) -> SeatFuture<'a, Vec<Session>> {
        Box::pin(async move {
            let licenses = match license {
                Some(l) => vec![l.to_string()],
                None => self.licenses().await?,
            };
            let mut v = Vec::new();
            for l in licenses {
                let raws: Vec<String> = self
                    .run(&LIST_SCRIPT, &l, &[LIST_REAP_BUDGET.to_string()])
                    .await?;
                for raw in raws {
                    v.extend(parse(&raw)?);
                }
            }
            v.sort_by(|a, b| (a.acquired_at, &a.id).cmp(&(b.acquired_at, &b.id)));
            Ok(v)
        })
    }

    fn sessions_page(&self, q: SessionQuery) -> SeatFuture<'_, Page<Session, SessionCursor>> {
        Box::pin(async move {
            let want = q.limit.max(1) as usize;
            let state = match q.state {
                None => "",
                Some(SessionState::Online) => "online",
                Some(SessionState::Offline) => "offline",
            };
            // The licenses to visit, starting with the cursor's.
            let start = q.after.as_ref().map(|a| a.license.as_str());
            let licenses = match &q.license {
                Some(l) if start.is_some_and(|a| a > l.as_str()) => Vec::new(),
                Some(l) => vec![l.clone()],
                None => self.licenses_after(start, true, PAGE_LICENSES_MAX).await?,
            };
            let visited_all = q.license.is_some() || licenses.len() < PAGE_LICENSES_MAX;
            let mut items: Vec<Session> = Vec::with_capacity(want + 1);
            let mut resume: Option<SessionCursor> = None;
            for license in &licenses {
                let after = match &q.after {
                    Some(a) if &a.license == license => a.session_id.clone(),
                    _ => String::new(),
                };
                let out: Vec<String> = self
                    .run(
                        &PAGE_SCRIPT,
                        license,
                        &[
                            LIST_REAP_BUDGET.to_string(),
                            after,
                            (want + 1 - items.len()).to_string(),
                            state.to_string(),
                            PAGE_SCAN_MAX.to_string(),
                        ],
                    )
                    .await?;
                let (last, more) = match out.as_slice() {
                    [last, more, ..] => (last.clone(), more == "more"),
                    _ => {
                        return Err(SeatError::Corrupt(
                            "redis: a page answer without its cursor".into(),
                        ))
                    }
                };
                for raw in &out[2..] {
                    items.extend(parse(raw)?);
                }
                resume = Some(SessionCursor {
                    license: license.clone(),
                    session_id: last,
                });
                if items.len() > want {
                    break;
                }
                if more {
                    // The script looked at as many ids as it may: the page ends here,
                    // short, and the next one resumes after the last id looked at.
                    return Ok(Page {
                        items,
                        next: resume,
                    });
                }
            }
            if items.len() > want {
                items.truncate(want);
                let next = Some(SessionCursor::after(&items[want - 1]));
                return Ok(Page { items, next });
            }
            let next = if visited_all { None } else { resume };
            Ok(Page { items, next })
        })
    }

    fn usage_page(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> SeatFuture<'_, Page<LicenseUsage, String>> {
        Box::pin(async move {
            let want = limit.max(1) as usize;
            let licenses = self
                .licenses_after(after.as_deref(), false, want + 1)
                .await?;
            let more = licenses.len() > want;
            let licenses = &licenses[..licenses.len().min(want)];
            let now = self.now().await?;
            let next = more.then(|| licenses[want - 1].clone());
            // The index keeps licenses whose sessions all ended: they are left out, so a
            // page may hold fewer than `limit`.
            let items = self
                .usage_of(licenses, now)
                .await?
                .into_iter()
                .filter(|u| u.usage.online + u.usage.offline > 0)
                .collect();
            Ok(Page { items, next })
        })
    }

    fn summary(&self, nearest: usize, max_age: i64) -> SeatFuture<'_, Summary> {
        Box::pin(async move {
            let now = self.now().await?;
            let cached: Option<String> = self
                .with_conn(|mut c| async move { c.get(SUMMARY_KEY).await })
                .await?;
            let cached: Option<Summary> = cached.and_then(|raw| serde_json::from_str(&raw).ok());
            let trimmed = |mut s: Summary| {
                s.nearest.truncate(nearest);
                s
            };
            if let Some(s) = cached.as_ref().filter(|s| now - s.at < max_age) {
                return Ok(trimmed(s.clone()));
            }
            // One instance computes it; the others answer the last one meanwhile.
            let mut lease = redis::cmd("SET");
            lease
                .arg(SUMMARY_LEASE_KEY)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(SUMMARY_LEASE_MS);
            let lease = &lease;
            let leased: Option<String> = self
                .with_conn(|mut c| async move { lease.query_async(&mut c).await })
                .await?;
            if leased.is_none() {
                if let Some(s) = cached {
                    return Ok(trimmed(s));
                }
            }
            let computed = self.compute_summary(nearest).await;
            if let Ok(summary) = &computed {
                let json = serde_json::to_string(summary)
                    .map_err(|e| SeatError::Corrupt(e.to_string()))?;
                let json = &json;
                self.with_conn(|mut c| async move { c.set::<_, _, ()>(SUMMARY_KEY, json).await })
                    .await?;
            }
            if leased.is_some() {
                self.with_conn(|mut c| async move { c.del::<_, ()>(SUMMARY_LEASE_KEY).await })
                    .await?;
            }
            computed
        })
    }

    fn take_lapsed(&self) -> SeatFuture<'_, Vec<Session>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for l in self.lapse_round().await? {
                let raws: Vec<String> = self
                    .run(&TAKE_LAPSED_SCRIPT, &l, &[REAP_BUDGET.to_string()])
                    .await?;
                for raw in raws {
                    out.extend(parse(&raw)?);
                }
            }
            self.sweep_index().await?;
            Ok(out)
        })
    }

    fn lease<'a>(&'a self, name: &'a str, ms: u64) -> SeatFuture<'a, bool> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(format!("lic4es:lease:{name}"))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ms.max(1));
            let cmd = &cmd;
            let got: Option<String> = self
                .with_conn(|mut c| async move { cmd.query_async(&mut c).await })
                .await?;
            Ok(got.is_some())
        })
    }

    fn ping(&self) -> SeatFuture<'_, ()> {
        Box::pin(async move {
            self.with_conn(
                |mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await },
            )
            .await
            .map(|_| ())
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
