//! The indexes outside any license's slot: licenses that have had sessions, and session
//! id → license for an operator's kick, kept beside the scripts and swept of the gone.

use redis::AsyncCommands;

use super::keys::*;
use super::scripts::*;
use super::stored::*;
use super::*;

impl RedisSeats {
    /// Puts a granted session in the discovery indexes (the license index only when this
    /// instance has not lately).
    pub(super) async fn index(&self, session: &Session) -> Result<(), SeatError> {
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
    pub(super) fn lately_indexed(&self, license: &str) -> bool {
        let mut indexed = self.indexed.lock().unwrap_or_else(|p| p.into_inner());
        if indexed.0.elapsed() > INDEXED_FOR || indexed.1.len() >= INDEXED_MAX {
            *indexed = (std::time::Instant::now(), Default::default());
        }
        indexed.1.contains(license)
    }

    /// Notes that `license` was just put in the license index.
    pub(super) fn indexed_now(&self, license: &str) {
        self.indexed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .insert(license.to_string());
    }

    pub(super) async fn unindex(&self, session_id: &str) -> Result<(), SeatError> {
        let key = session_index_key(session_shard(session_id));
        let key = &key;
        self.with_conn(|mut c| async move { c.hdel::<_, _, ()>(key, session_id).await })
            .await
    }

    /// Moves an earlier version's one-hash session index into the shards, once (a chunk
    /// per round trip; entries are only copied, so instances doing it at once agree).
    pub(super) async fn move_old_sessions(&self) -> Result<(), SeatError> {
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
    pub(super) async fn move_old_index(&self) -> Result<(), SeatError> {
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
    pub(super) async fn licenses_after(
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
    pub(super) async fn licenses(&self) -> Result<Vec<String>, SeatError> {
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

    /// Drops index entries of sessions that are gone (dropped after their offline grace
    /// inside a script, which cannot reach the index's slot), a bounded step per call.
    pub(super) async fn sweep_index(&self) -> Result<(), SeatError> {
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
    pub(super) async fn license_of(&self, session_id: &str) -> Result<Option<String>, SeatError> {
        self.move_old_sessions().await?;
        let key = session_index_key(session_shard(session_id));
        let key = &key;
        self.with_conn(|mut c| async move { c.hget(key, session_id).await })
            .await
    }

    pub(super) async fn end(
        &self,
        session_id: &str,
        license: &str,
    ) -> Result<Option<Session>, SeatError> {
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
}
