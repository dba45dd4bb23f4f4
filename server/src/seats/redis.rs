//! Seats in Redis, shared by any number of server instances.
//!
//! Every check-and-change is one Lua script over the keys of one license, which share the
//! hash tag `{lic:ID}` so that a license lives in one Redis Cluster slot:
//!
//! - `{lic:ID}:online`: sorted set of online session ids, scored by when they lapse;
//! - `{lic:ID}:offline`: sorted set of lapsed sessions, scored by when their grace ends;
//! - `{lic:ID}:sessions`: hash of session id → the session as JSON;
//! - `{lic:ID}:lapsed`: list of lapses not yet handed to the audit trail (capped).
//!
//! Time inside the scripts is Redis `TIME`, never an instance's clock, so instances with
//! skewed clocks agree on who lapsed. Scripts lapse due sessions lazily, a bounded number
//! per call, and count online seats by score, so the count is exact whatever is left to
//! reap. Scripts are run with EVALSHA and loaded again on `NOSCRIPT` (a Redis restart, a
//! failover, `SCRIPT FLUSH`). Two plain keys outside any license's slot serve discovery:
//! `lic4es:licenses` (licenses that have had sessions) and `lic4es:session-license` (session
//! id → license, for an operator's kick). Any Redis failure is
//! [`SeatError::Unavailable`]: a 503, never a grant.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use lic4es::clock::Clock;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::{Acquired, NewSession, Replace, SeatError, SeatFuture, SeatStore, Session};

/// Due sessions lapsed per call; the rest wait for the next call (the online count does
/// not depend on them being reaped).
const REAP_BUDGET: u32 = 100;
/// Due sessions lapsed before a listing (an operator's call, not on the hot path).
const LIST_REAP_BUDGET: u32 = 10_000;
/// Index entries checked per sweep for sessions that are gone.
const INDEX_SWEEP: u32 = 500;
/// Lapses kept per license for the audit trail when nobody collects them.
const MAX_PENDING_LAPSES: i64 = 1000;
/// Set of licenses that have had sessions (never pruned: removing one could race an
/// acquire on another instance and hide its sessions; it holds one entry per license).
const LICENSES_KEY: &str = "lic4es:licenses";
/// Hash of session id → license.
const SESSION_INDEX_KEY: &str = "lic4es:session-license";

/// Shared by every script: the clock and the lazy, bounded reaping.
const PRELUDE: &str = r#"
local ONLINE, OFFLINE, SESS, LAPSED = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
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
  end
end
local function drop(id)
  redis.call('HDEL', SESS, id)
  redis.call('ZREM', ONLINE, id)
  redis.call('ZREM', OFFLINE, id)
end
"#;

/// ARGV: time source, lapse cap, budget, limit, new session (JSON), replaced id, its hardware id.
const ACQUIRE: &str = r#"
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local ended = ''
if ARGV[6] ~= '' then
  local raw = redis.call('HGET', SESS, ARGV[6])
  if raw and cjson.decode(raw).hw == ARGV[7] then
    drop(ARGV[6])
    ended = raw
  end
end
local in_use = redis.call('ZCOUNT', ONLINE, '(' .. now, '+inf')
if in_use >= tonumber(ARGV[4]) then
  return {'full', tostring(in_use), ended}
end
local s = cjson.decode(ARGV[5])
s.acq = now
s.seen = now
local enc = cjson.encode(s)
redis.call('HSET', SESS, s.id, enc)
redis.call('ZADD', ONLINE, now + s.ttl, s.id)
return {'granted', enc, ended}
"#;

/// ARGV: time source, lapse cap, budget, session id.
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

/// ARGV: time source, lapse cap, budget, session id. Ends it, online or offline.
const END: &str = r#"
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local raw = redis.call('HGET', SESS, ARGV[4])
if not raw then
  return ''
end
drop(ARGV[4])
return raw
"#;

/// ARGV: time source, lapse cap, budget. Every session of the license.
const LIST: &str = r#"
local now = now_secs()
reap(now, tonumber(ARGV[3]))
return redis.call('HVALS', SESS)
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
fn keys(license: &str) -> [String; 4] {
    [
        format!("{{lic:{license}}}:online"),
        format!("{{lic:{license}}}:offline"),
        format!("{{lic:{license}}}:sessions"),
        format!("{{lic:{license}}}:lapsed"),
    ]
}

/// The Redis seat store.
pub struct RedisSeats {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    /// Where the next sweep of the session index resumes.
    sweep_cursor: std::sync::atomic::AtomicU64,
    /// Tests only: the time the scripts use instead of Redis `TIME`.
    test_clock: Option<Arc<dyn Clock>>,
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
        let client = match ca_file {
            None => redis::Client::open(url),
            Some(path) => {
                if !url.starts_with("rediss://") {
                    return Err("redis-ca-file needs a rediss:// redis-url".into());
                }
                let pem = std::fs::read(path)
                    .map_err(|e| format!("redis-ca-file {}: {e}", path.display()))?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
        }
        .map_err(|e| format!("redis-url: {e}"))?;
        Ok(RedisSeats {
            client,
            conn: OnceCell::new(),
            sweep_cursor: std::sync::atomic::AtomicU64::new(0),
            test_clock: None,
        })
    }

    /// Tests only: the scripts take the time from `clock` instead of Redis `TIME`, so a
    /// contract test can move hours in a step. A server never sets it.
    pub fn with_test_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.test_clock = Some(clock);
        self
    }

    async fn conn(&self) -> Result<ConnectionManager, SeatError> {
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        self.conn
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), cfg))
            .await
            .cloned()
            .map_err(unavailable)
    }

    /// Runs `op` on the connection, and once more when the connection was refused. During
    /// an outage the manager keeps its last failed connect until the next request, which
    /// fails on it without reaching Redis and only then starts a new connect: without the
    /// second try, the first request on each instance after Redis is back would be a 503.
    /// A refused connection sent nothing, so no command or script runs twice.
    async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, SeatError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        match op(conn.clone()).await {
            Err(e) if e.is_connection_refusal() => op(conn).await,
            done => done,
        }
        .map_err(unavailable)
    }

    /// Runs `script` over `license`'s keys with the common arguments (the time source,
    /// the lapse cap) followed by `args`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        license: &str,
        args: &[String],
    ) -> Result<T, SeatError> {
        let mut inv = script.prepare_invoke();
        for k in keys(license) {
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

    async fn index(&self, session: &Session) -> Result<(), SeatError> {
        let mut pipe = redis::pipe();
        pipe.sadd(LICENSES_KEY, &session.license)
            .ignore()
            .hset(SESSION_INDEX_KEY, &session.id, &session.license)
            .ignore();
        let pipe = &pipe;
        self.with_conn(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }

    async fn unindex(&self, session_id: &str) -> Result<(), SeatError> {
        self.with_conn(
            |mut c| async move { c.hdel::<_, _, ()>(SESSION_INDEX_KEY, session_id).await },
        )
        .await
    }

    async fn licenses(&self) -> Result<Vec<String>, SeatError> {
        self.with_conn(|mut c| async move { c.smembers(LICENSES_KEY).await })
            .await
    }

    /// Drops index entries of sessions that are gone (dropped after their offline grace
    /// inside a script, which cannot reach the index's slot), a bounded step per call.
    async fn sweep_index(&self) -> Result<(), SeatError> {
        use std::sync::atomic::Ordering;
        let cursor = self.sweep_cursor.load(Ordering::Relaxed);
        let mut scan = redis::cmd("HSCAN");
        scan.arg(SESSION_INDEX_KEY)
            .arg(cursor)
            .arg("COUNT")
            .arg(INDEX_SWEEP);
        let scan = &scan;
        let (next, pairs): (u64, Vec<(String, String)>) = self
            .with_conn(|mut c| async move { scan.query_async(&mut c).await })
            .await?;
        let mut conn = self.conn().await?;
        self.sweep_cursor.store(next, Ordering::Relaxed);
        for (sid, license) in pairs {
            let [_, _, sessions, _] = keys(&license);
            let exists: bool = conn.hexists(&sessions, &sid).await.map_err(unavailable)?;
            if !exists {
                conn.hdel::<_, _, ()>(SESSION_INDEX_KEY, &sid)
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(())
    }

    /// Runs a script that takes one session id and answers that session (or nothing).
    async fn on_session(
        &self,
        script: &Script,
        license: &str,
        session_id: &str,
    ) -> Result<Option<Session>, SeatError> {
        let raw: String = self
            .run(
                script,
                license,
                &[REAP_BUDGET.to_string(), session_id.to_string()],
            )
            .await?;
        parse(&raw)
    }

    /// The license a session was granted under, from the index.
    async fn license_of(&self, session_id: &str) -> Result<Option<String>, SeatError> {
        self.with_conn(|mut c| async move { c.hget(SESSION_INDEX_KEY, session_id).await })
            .await
    }

    async fn end(&self, session_id: &str, license: &str) -> Result<Option<Session>, SeatError> {
        let s = self.on_session(&END_SCRIPT, license, session_id).await?;
        if s.is_some() {
            self.unindex(session_id).await?;
        }
        Ok(s)
    }
}

impl SeatStore for RedisSeats {
    fn acquire(&self, new: NewSession, replace: Option<Replace>) -> SeatFuture<'_, Acquired> {
        Box::pin(async move {
            let stored = Stored {
                id: new.id,
                license: new.license.clone(),
                hw: new.hardware_id,
                inst: new.instance_id,
                acq: 0,
                seen: 0,
                ttl: new.ttl,
                grace: new.grace,
                off_since: None,
                off_until: None,
                tier: new.tier,
                exp: new.token_exp,
            };
            let json = serde_json::to_string(&stored)
                .map_err(|e| SeatError::Unavailable(e.to_string()))?;
            let (old_id, old_hw) = match &replace {
                Some(r) => (r.session_id.clone(), r.hardware_id.clone()),
                None => (String::new(), String::new()),
            };
            let out: Vec<String> = self
                .run(
                    &ACQUIRE_SCRIPT,
                    &new.license,
                    &[
                        REAP_BUDGET.to_string(),
                        new.limit.to_string(),
                        json,
                        old_id,
                        old_hw,
                    ],
                )
                .await?;
            let field = |i: usize| out.get(i).map(String::as_str).unwrap_or("");
            let ended = parse(field(2))?;
            if let Some(e) = &ended {
                self.unindex(&e.id).await?;
            }
            match field(0) {
                "granted" => {
                    let session = parse(field(1))?.ok_or_else(|| {
                        SeatError::Corrupt("redis: acquire returned no session".into())
                    })?;
                    self.index(&session).await?;
                    Ok(Acquired::Granted { session, ended })
                }
                "full" => Ok(Acquired::Full {
                    in_use: field(1).parse().unwrap_or(new.limit),
                    limit: new.limit,
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
    ) -> SeatFuture<'a, Option<Session>> {
        Box::pin(self.on_session(&HEARTBEAT_SCRIPT, license, session_id))
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
                    // A stale index entry (the session lapsed out) goes too.
                    self.unindex(session_id).await?;
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

    fn take_lapsed(&self) -> SeatFuture<'_, Vec<Session>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for l in self.licenses().await? {
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
