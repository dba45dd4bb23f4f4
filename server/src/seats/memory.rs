//! Seats in this process's memory: enough for one instance. One mutex makes every call
//! atomic; an index ordered by deadline makes lapsing cost only the sessions that lapse.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::ready;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use lic4es::clock::Clock;

use super::{
    Acquired, Beat, LicenseUsage, NewSession, Page, Replace, SeatFuture, SeatStore, Session,
    SessionCursor, SessionQuery, Summary, Usage,
};

/// Most lapses kept for [`SeatStore::take_lapsed`] when nobody collects them.
const MAX_PENDING_LAPSES: usize = 10_000;

/// The sessions of one license, counted as they change.
#[derive(Default)]
struct LicenseSeats {
    ids: BTreeSet<String>,
    usage: Usage,
    /// Seats at its last acquire.
    limit: u32,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    by_license: BTreeMap<String, LicenseSeats>,
    /// (deadline, id): when an online session lapses, or an offline one is dropped.
    deadlines: BTreeSet<(i64, String)>,
    lapsed: Vec<Session>,
    /// Every license's usage summed.
    total: Usage,
    /// Seats granted per license in the current clock hour: (hour's start, grants).
    grants: HashMap<String, (i64, u32)>,
}

fn count(u: &mut Usage, s: &Session, up: bool) {
    let n = if s.online() {
        &mut u.online
    } else {
        &mut u.offline
    };
    *n = if up { *n + 1 } else { n.saturating_sub(1) };
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
        let l = self.by_license.entry(s.license.clone()).or_default();
        l.ids.insert(s.id.clone());
        count(&mut l.usage, &s, true);
        count(&mut self.total, &s, true);
        self.sessions.insert(s.id.clone(), s);
    }

    fn remove(&mut self, id: &str) -> Option<Session> {
        let s = self.sessions.remove(id)?;
        self.deadlines.remove(&(deadline(&s), s.id.clone()));
        if let Some(l) = self.by_license.get_mut(&s.license) {
            l.ids.remove(id);
            count(&mut l.usage, &s, false);
            if l.ids.is_empty() {
                self.by_license.remove(&s.license);
            }
        }
        count(&mut self.total, &s, false);
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
        self.by_license.get(license).map_or(0, |l| l.usage.online)
    }

    fn license_usage(license: &str, l: &LicenseSeats) -> LicenseUsage {
        LicenseUsage {
            license: license.to_string(),
            usage: l.usage,
            limit: l.limit,
        }
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
        let (hour, retry_after) = super::grant_hour(now);
        let granted = inner
            .grants
            .get(&new.license)
            .filter(|(h, _)| *h == hour)
            .map_or(0, |(_, n)| *n);
        let outcome = if in_use >= new.limit {
            Acquired::Full {
                in_use,
                limit: new.limit,
                ended,
            }
        } else if new.grants_per_hour > 0 && granted >= new.grants_per_hour {
            Acquired::OverBudget { retry_after, ended }
        } else {
            // Licenses with a count of an earlier hour are forgotten as they come back.
            if inner.grants.len() > 100_000 {
                inner.grants.retain(|_, (h, _)| *h == hour);
            }
            inner
                .grants
                .insert(new.license.clone(), (hour, granted + 1));
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
            if let Some(l) = inner.by_license.get_mut(&session.license) {
                l.limit = new.limit;
            }
            Acquired::Granted { session, ended }
        };
        Box::pin(ready(Ok(outcome)))
    }

    fn heartbeat<'a>(
        &'a self,
        session_id: &'a str,
        license: &'a str,
        min_gap: i64,
    ) -> SeatFuture<'a, Option<Beat>> {
        let (now, mut inner) = self.now_inner();
        let found = inner
            .sessions
            .get(session_id)
            .filter(|s| s.online() && s.license == license)
            .cloned();
        let out = match found {
            None => None,
            Some(s) if now - s.last_seen < min_gap => Some(Beat::TooSoon {
                wait: s.last_seen + min_gap - now,
                session: s,
            }),
            Some(_) => inner.remove(session_id).map(|mut s| {
                s.last_seen = now;
                inner.insert(s.clone());
                Beat::Kept(s)
            }),
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
                .flat_map(|l| l.ids.iter())
                .filter_map(|id| inner.sessions.get(id).cloned())
                .collect(),
            None => inner.sessions.values().cloned().collect(),
        };
        v.sort_by(|a, b| (a.acquired_at, &a.id).cmp(&(b.acquired_at, &b.id)));
        Box::pin(ready(Ok(v)))
    }

    fn sessions_page(&self, q: SessionQuery) -> SeatFuture<'_, Page<Session, SessionCursor>> {
        let (_, inner) = self.now_inner();
        let limit = q.limit.max(1) as usize;
        let from = match (&q.license, &q.after) {
            (Some(l), Some(a)) if a.license.as_str() < l.as_str() => Bound::Included(l.clone()),
            (_, Some(a)) => Bound::Included(a.license.clone()),
            (Some(l), None) => Bound::Included(l.clone()),
            (None, None) => Bound::Unbounded,
        };
        let mut items = Vec::with_capacity(limit + 1);
        'licenses: for (license, l) in inner.by_license.range((from, Bound::Unbounded)) {
            if q.license.as_ref().is_some_and(|want| want != license) {
                break;
            }
            let ids: Box<dyn Iterator<Item = &String>> = match &q.after {
                Some(a) if &a.license == license => Box::new(
                    l.ids
                        .range((Bound::Excluded(a.session_id.clone()), Bound::Unbounded)),
                ),
                _ => Box::new(l.ids.iter()),
            };
            for id in ids {
                let Some(s) = inner.sessions.get(id) else {
                    continue;
                };
                if q.state.is_none_or(|st| st.of(s)) {
                    items.push(s.clone());
                    if items.len() > limit {
                        break 'licenses;
                    }
                }
            }
        }
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            SessionCursor::after(&items[limit - 1])
        });
        Box::pin(ready(Ok(Page { items, next })))
    }

    fn usage_page(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> SeatFuture<'_, Page<LicenseUsage, String>> {
        let (_, inner) = self.now_inner();
        let limit = limit.max(1) as usize;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut items: Vec<LicenseUsage> = inner
            .by_license
            .range((from, Bound::Unbounded))
            .take(limit + 1)
            .map(|(id, l)| Inner::license_usage(id, l))
            .collect();
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items[limit - 1].license.clone()
        });
        Box::pin(ready(Ok(Page { items, next })))
    }

    fn summary(&self, nearest: usize, _max_age: i64) -> SeatFuture<'_, Summary> {
        let (now, inner) = self.now_inner();
        let summary = Summary {
            online: u64::from(inner.total.online),
            offline: u64::from(inner.total.offline),
            licenses: inner.by_license.len() as u64,
            nearest: super::nearest_limits(
                inner
                    .by_license
                    .iter()
                    .map(|(id, l)| Inner::license_usage(id, l)),
                nearest,
            ),
            at: now,
        };
        Box::pin(ready(Ok(summary)))
    }

    fn take_lapsed(&self) -> SeatFuture<'_, Vec<Session>> {
        let (_, mut inner) = self.now_inner();
        Box::pin(ready(Ok(std::mem::take(&mut inner.lapsed))))
    }

    fn lease<'a>(&'a self, _name: &'a str, _ms: u64) -> SeatFuture<'a, bool> {
        Box::pin(ready(Ok(true)))
    }

    fn ping(&self) -> SeatFuture<'_, ()> {
        Box::pin(ready(Ok(())))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
