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

mod connection;
mod index;
mod keys;
mod reaping;
mod scripts;
mod stored;

use std::sync::Arc;
use std::time::Duration;

use lic4es::clock::Clock;
use redis::AsyncCommands;
use tokio::sync::OnceCell;

pub use connection::Topology;
use connection::*;
use keys::*;
use scripts::*;
use stored::*;

use super::{
    Acquired, Beat, LicenseUsage, NewSession, Page, Replace, SeatError, SeatFuture, SeatStore,
    Session, SessionCursor, SessionQuery, SessionState, Summary, Usage,
};

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
pub(super) const INDEXED_FOR: Duration = Duration::from_secs(300);
/// Most licenses kept in [`RedisSeats::indexed`].
pub(super) const INDEXED_MAX: usize = 100_000;

pub(super) fn unavailable(e: redis::RedisError) -> SeatError {
    SeatError::Unavailable(format!("redis: {e}"))
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
