//! Seats in this process's memory: enough for one instance. One mutex makes every call
//! atomic; an index ordered by deadline makes lapsing cost only the sessions that lapse.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::ready;
use std::sync::{Arc, Mutex, MutexGuard};

use lic4es::clock::Clock;

use super::{Acquired, NewSession, Replace, SeatFuture, SeatStore, Session};

/// Most lapses kept for [`SeatStore::take_lapsed`] when nobody collects them.
const MAX_PENDING_LAPSES: usize = 10_000;

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    by_license: HashMap<String, HashSet<String>>,
    /// (deadline, id): when an online session lapses, or an offline one is dropped.
    deadlines: BTreeSet<(i64, String)>,
    lapsed: Vec<Session>,
}

fn deadline(s: &Session) -> i64 {
    match s.offline_until {
        Some(until) => until,
        None => s.last_seen.saturating_add(s.ttl),
    }
}

impl Inner {
    fn insert(&mut self, s: Session) {
        self.deadlines.insert((deadline(&s), s.id.clone()));
        self.by_license
            .entry(s.license.clone())
            .or_default()
            .insert(s.id.clone());
        self.sessions.insert(s.id.clone(), s);
    }

    fn remove(&mut self, id: &str) -> Option<Session> {
        let s = self.sessions.remove(id)?;
        self.deadlines.remove(&(deadline(&s), s.id.clone()));
        if let Some(ids) = self.by_license.get_mut(&s.license) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_license.remove(&s.license);
            }
        }
        Some(s)
    }

    /// Lapses online sessions past their TTL (kept offline until their grace would end)
    /// and drops offline sessions past their grace.
    fn reap(&mut self, now: i64) {
        while let Some((at, id)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            let Some(mut s) = self.remove(&id) else {
                self.deadlines.pop_first();
                continue;
            };
            if s.online() {
                let lapse = s.last_seen.saturating_add(s.ttl);
                s.offline_since = Some(s.last_seen);
                s.offline_until = Some(lapse.saturating_add(s.grace));
                if self.lapsed.len() < MAX_PENDING_LAPSES {
                    self.lapsed.push(s.clone());
                }
                if s.grace > 0 && deadline(&s) > now {
                    self.insert(s);
                }
            }
        }
    }

    fn online_count(&self, license: &str) -> u32 {
        self.by_license.get(license).map_or(0, |ids| {
            ids.iter()
                .filter(|id| self.sessions.get(*id).is_some_and(Session::online))
                .count() as u32
        })
    }
}

/// The in-memory seat store.
pub struct MemorySeats {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl MemorySeats {
    /// A store whose TTLs follow `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> MemorySeats {
        MemorySeats {
            clock,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The state after lapsing whatever is due now.
    fn now_inner(&self) -> (i64, MutexGuard<'_, Inner>) {
        let now = self.clock.now_secs();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.reap(now);
        (now, inner)
    }
}

impl SeatStore for MemorySeats {
    fn acquire(&self, new: NewSession, replace: Option<Replace>) -> SeatFuture<'_, Acquired> {
        let (now, mut inner) = self.now_inner();
        let ended = replace.and_then(|r| {
            let own = inner
                .sessions
                .get(&r.session_id)
                .is_some_and(|s| s.license == new.license && s.hardware_id == r.hardware_id);
            if own {
                inner.remove(&r.session_id)
            } else {
                None
            }
        });
        let in_use = inner.online_count(&new.license);
        let outcome = if in_use >= new.limit {
            Acquired::Full {
                in_use,
                limit: new.limit,
                ended,
            }
        } else {
            let session = Session {
                id: new.id,
                license: new.license,
                hardware_id: new.hardware_id,
                instance_id: new.instance_id,
                acquired_at: now,
                last_seen: now,
                ttl: new.ttl,
                grace: new.grace,
                offline_since: None,
                offline_until: None,
                tier: new.tier,
                token_exp: new.token_exp,
            };
            inner.insert(session.clone());
            Acquired::Granted { session, ended }
        };
        Box::pin(ready(Ok(outcome)))
    }

    fn heartbeat<'a>(
        &'a self,
        session_id: &'a str,
        license: &'a str,
    ) -> SeatFuture<'a, Option<Session>> {
        let (now, mut inner) = self.now_inner();
        let alive = inner
            .sessions
            .get(session_id)
            .is_some_and(|s| s.online() && s.license == license);
        let out = if alive {
            inner.remove(session_id).map(|mut s| {
                s.last_seen = now;
                inner.insert(s.clone());
                s
            })
        } else {
            None
        };
        Box::pin(ready(Ok(out)))
    }

    fn renewed<'a>(
        &'a self,
        session_id: &'a str,
        tier: &'a str,
        token_exp: i64,
    ) -> SeatFuture<'a, ()> {
        let (_, mut inner) = self.now_inner();
        if let Some(s) = inner.sessions.get_mut(session_id) {
            s.tier = tier.to_string();
            s.token_exp = token_exp;
        }
        Box::pin(ready(Ok(())))
    }

    fn release<'a>(
        &'a self,
        session_id: &'a str,
        license: &'a str,
    ) -> SeatFuture<'a, Option<Session>> {
        let (_, mut inner) = self.now_inner();
        let own = inner
            .sessions
            .get(session_id)
            .is_some_and(|s| s.license == license);
        let out = if own { inner.remove(session_id) } else { None };
        Box::pin(ready(Ok(out)))
    }

    fn kick<'a>(&'a self, session_id: &'a str) -> SeatFuture<'a, Option<Session>> {
        let (_, mut inner) = self.now_inner();
        Box::pin(ready(Ok(inner.remove(session_id))))
    }

    fn sessions<'a>(&'a self, license: Option<&'a str>) -> SeatFuture<'a, Vec<Session>> {
        let (_, inner) = self.now_inner();
        let mut v: Vec<Session> = match license {
            Some(l) => inner
                .by_license
                .get(l)
                .into_iter()
                .flatten()
                .filter_map(|id| inner.sessions.get(id).cloned())
                .collect(),
            None => inner.sessions.values().cloned().collect(),
        };
        v.sort_by(|a, b| (a.acquired_at, &a.id).cmp(&(b.acquired_at, &b.id)));
        Box::pin(ready(Ok(v)))
    }

    fn take_lapsed(&self) -> SeatFuture<'_, Vec<Session>> {
        let (_, mut inner) = self.now_inner();
        Box::pin(ready(Ok(std::mem::take(&mut inner.lapsed))))
    }

    fn ping(&self) -> SeatFuture<'_, ()> {
        Box::pin(ready(Ok(())))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
