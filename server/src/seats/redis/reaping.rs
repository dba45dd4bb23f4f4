//! Lapsing due sessions across licenses, Redis's clock, and the fleet's usage and
//! summary computed from every license.

use redis::Value;

use super::keys::*;
use super::*;

impl RedisSeats {
    /// The licenses whose lapses the next [`SeatStore::take_lapsed`] collects: at most
    /// [`LAPSE_LICENSES`], going round the index from where the last call stopped, so a
    /// call costs the same however many licenses there are.
    pub(super) async fn lapse_round(&self) -> Result<Vec<String>, SeatError> {
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
    pub(super) async fn now(&self) -> Result<i64, SeatError> {
        if let Some(c) = &self.test_clock {
            return Ok(c.now_secs());
        }
        let (secs, _): (i64, i64) = self
            .with_conn(|mut c| async move { redis::cmd("TIME").query_async(&mut c).await })
            .await?;
        Ok(secs)
    }

    /// Usage and limit of each of `licenses` at `now`, in one round trip.
    pub(super) async fn usage_of(
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
    pub(super) async fn compute_summary(&self, nearest: usize) -> Result<Summary, SeatError> {
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
            ranked = crate::seats::nearest_limits(ranked, nearest);
            if chunk.len() < INDEX_CHUNK {
                break;
            }
            last = chunk.last().cloned();
        }
        summary.nearest = ranked;
        Ok(summary)
    }
}
