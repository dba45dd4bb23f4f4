//! Seats: who holds one, who lapsed into offline use, behind one interface
//! ([`SeatStore`]) so the in-memory store of a single instance and a shared store for
//! several instances pass the same contract tests.
//!
//! Every check-and-change is one call: an acquire counts and grants atomically, a
//! reconnect ends the old session and acquires in the same step. Lapsing is lazy: a
//! session not heard from within its TTL is turned offline by whichever call comes
//! next, and the lapses found are handed out once by [`SeatStore::take_lapsed`] for the
//! audit trail. The store keeps its own time (the in-memory store from the server's
//! clock; a shared store from its server), never the caller's.

pub mod memory;
pub mod redis;

use std::future::Future;
use std::pin::Pin;

pub use self::memory::MemorySeats;
pub use self::redis::{RedisSeats, Topology};

/// One session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// Session id.
    pub id: String,
    /// The license it holds a seat of.
    pub license: String,
    /// The engine's hardware id.
    pub hardware_id: String,
    /// The engine's instance id.
    pub instance_id: String,
    /// When it was granted (seconds).
    pub acquired_at: i64,
    /// Its last acquire or heartbeat (seconds).
    pub last_seen: i64,
    /// Seconds of silence after which it lapses.
    pub ttl: i64,
    /// The license's offline grace, in seconds.
    pub grace: i64,
    /// Set once it lapsed: its last contact.
    pub offline_since: Option<i64>,
    /// When a lapsed session's offline grace would end; it is dropped then.
    pub offline_until: Option<i64>,
    /// The tier of the last token issued to it.
    pub tier: String,
    /// The expiry of the last token issued to it.
    pub token_exp: i64,
}

impl Session {
    /// Whether it holds a seat.
    pub fn online(&self) -> bool {
        self.offline_since.is_none()
    }
}

/// Sessions of one license, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Online sessions: seats in use.
    pub online: u32,
    /// Lapsed sessions still within their offline grace.
    pub offline: u32,
}

/// Whether a session holds a seat or lapsed into offline use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// It holds a seat.
    Online,
    /// It lapsed and is within its offline grace.
    Offline,
}

impl SessionState {
    /// Whether `s` is in this state.
    pub fn of(self, s: &Session) -> bool {
        s.online() == (self == SessionState::Online)
    }
}

/// Which sessions to list: a page of them, in (license, session id) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionQuery {
    /// Only this license's sessions.
    pub license: Option<String>,
    /// Only sessions in this state.
    pub state: Option<SessionState>,
    /// Only sessions after this one (the last of the page before).
    pub after: Option<SessionCursor>,
    /// At most this many.
    pub limit: u32,
}

/// Where a page of sessions ended: its last session. Shown to clients as
/// `LICENSE:SESSION_ID` (a license id has no `:`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionCursor {
    /// The license of the last session.
    pub license: String,
    /// Its id.
    pub session_id: String,
}

impl SessionCursor {
    /// The cursor after `s`.
    pub fn after(s: &Session) -> Self {
        SessionCursor {
            license: s.license.clone(),
            session_id: s.id.clone(),
        }
    }

    /// The cursor a client sent back, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        let (license, session_id) = text.split_once(':')?;
        (!license.is_empty() && !session_id.is_empty()).then(|| SessionCursor {
            license: license.to_string(),
            session_id: session_id.to_string(),
        })
    }
}

impl std::str::FromStr for SessionCursor {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        SessionCursor::parse(text).ok_or(())
    }
}

impl std::fmt::Display for SessionCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.license, self.session_id)
    }
}

/// A page of a listing and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    /// The entries.
    pub items: Vec<T>,
    /// The cursor of the next page, if there may be more.
    pub next: Option<C>,
}

/// Seats of one license with sessions, as the seat store knows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LicenseUsage {
    /// The license.
    pub license: String,
    /// Online and offline sessions.
    pub usage: Usage,
    /// Its seats at its last acquire.
    pub limit: u32,
}

impl LicenseUsage {
    /// How near its limit it is, for ranking (in use over seats; full is 1, over is more).
    pub fn fill(&self) -> f64 {
        f64::from(self.usage.online) / f64::from(self.limit.max(1))
    }
}

/// The fleet at a glance: what a scrape and the dashboard's tiles read, whatever the
/// number of sessions.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Online sessions.
    pub online: u64,
    /// Offline sessions.
    pub offline: u64,
    /// Licenses with sessions.
    pub licenses: u64,
    /// Licenses with online sessions nearest their limits (fullest first, then by id),
    /// at most as many as asked for.
    pub nearest: Vec<LicenseUsage>,
    /// When it was computed (the store's clock, seconds).
    pub at: i64,
}

/// The `n` licenses of `all` nearest their limits: fullest first, then by id.
pub fn nearest_limits(all: impl IntoIterator<Item = LicenseUsage>, n: usize) -> Vec<LicenseUsage> {
    let mut v: Vec<LicenseUsage> = all.into_iter().filter(|u| u.usage.online > 0).collect();
    v.sort_by(|a, b| {
        b.fill()
            .total_cmp(&a.fill())
            .then_with(|| b.usage.online.cmp(&a.usage.online))
            .then_with(|| a.license.cmp(&b.license))
    });
    v.truncate(n);
    v
}

/// A session to grant, if a seat is free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Session id (chosen by the caller, so the token can name it).
    pub id: String,
    /// The license.
    pub license: String,
    /// Seats of the license.
    pub limit: u32,
    /// The engine's hardware id.
    pub hardware_id: String,
    /// The engine's instance id.
    pub instance_id: String,
    /// Seconds of silence after which it lapses.
    pub ttl: i64,
    /// The license's offline grace, in seconds.
    pub grace: i64,
    /// The tier of the token issued with it.
    pub tier: String,
    /// The expiry of the token issued with it.
    pub token_exp: i64,
    /// Seats the license may grant in one clock hour (its seats times the tier's
    /// `acquires-per-seat-hour`); 0 sets no bound.
    pub grants_per_hour: u32,
}

/// The start of the clock hour of `now` and the seconds until the next: the window
/// [`NewSession::grants_per_hour`] counts in.
pub fn grant_hour(now: i64) -> (i64, i64) {
    let start = now.div_euclid(3600) * 3600;
    (start, start + 3600 - now)
}

/// The session a reconnecting engine held before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replace {
    /// Its id.
    pub session_id: String,
    /// The engine's hardware id: only its own session is ended.
    pub hardware_id: String,
}

/// What an acquire did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// A seat was granted.
    Granted {
        /// The new session.
        session: Session,
        /// The old session a reconnect ended, if any.
        ended: Option<Session>,
    },
    /// Every seat is in use.
    Full {
        /// Online sessions.
        in_use: u32,
        /// Seats.
        limit: u32,
        /// The old session a reconnect ended, if any.
        ended: Option<Session>,
    },
    /// The license granted [`NewSession::grants_per_hour`] seats this hour already: hosts
    /// taking turns on a seat (or one restarting in a loop) wait for the next hour.
    OverBudget {
        /// Seconds until the next hour.
        retry_after: i64,
        /// The old session a reconnect ended, if any.
        ended: Option<Session>,
    },
}

/// What a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// The session is kept; as it stands now.
    Kept(Session),
    /// The session was renewed less than the minimum spacing ago: not kept again.
    TooSoon {
        /// The session, as it stands.
        session: Session,
        /// Seconds until a heartbeat is taken again.
        wait: i64,
    },
}

/// Why the seat store could not answer. Never a grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeatError {
    /// The store is out of reach.
    #[error("seat store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with what no version of this server writes (a malformed
    /// session, an unexpected script answer).
    #[error("seat store answered what it should not: {0}")]
    Corrupt(String),
}

/// What a seat store call returns.
pub type SeatFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SeatError>> + Send + 'a>>;

/// Seats, whatever holds them.
pub trait SeatStore: Send + Sync {
    /// Grants `new` while fewer than `new.limit` sessions of its license are online;
    /// first ends `replace` (when it is a session of the same license and hardware id).
    fn acquire(&self, new: NewSession, replace: Option<Replace>) -> SeatFuture<'_, Acquired>;
    /// Records a heartbeat of an online session of `license`, unless its last one (or
    /// its acquire) was less than `min_gap` seconds ago; `None` when the session is
    /// unknown, lapsed, kicked, or of another license.
    fn heartbeat<'a>(
        &'a self,
        session_id: &'a str,
        license: &'a str,
        min_gap: i64,
    ) -> SeatFuture<'a, Option<Beat>>;
    /// Records the token just issued to a session.
    fn renewed<'a>(
        &'a self,
        session_id: &'a str,
        tier: &'a str,
        token_exp: i64,
    ) -> SeatFuture<'a, ()>;
    /// Ends a session of `license` (online or offline) at its holder's request.
    fn release<'a>(
        &'a self,
        session_id: &'a str,
        license: &'a str,
    ) -> SeatFuture<'a, Option<Session>>;
    /// Ends any session, at an operator's request.
    fn kick<'a>(&'a self, session_id: &'a str) -> SeatFuture<'a, Option<Session>>;
    /// Sessions, online and offline, optionally of one license (for the CLI and tests;
    /// operator views read [`SeatStore::sessions_page`]).
    fn sessions<'a>(&'a self, license: Option<&'a str>) -> SeatFuture<'a, Vec<Session>>;
    /// A page of sessions, in (license, session id) order.
    fn sessions_page(&self, q: SessionQuery) -> SeatFuture<'_, Page<Session, SessionCursor>>;
    /// A page of the licenses with sessions, in license order, after `after`.
    fn usage_page(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> SeatFuture<'_, Page<LicenseUsage, String>>;
    /// Totals and the `nearest` licenses nearest their limits. A shared store may answer
    /// what it computed up to `max_age` seconds ago, once for every instance.
    fn summary(&self, nearest: usize, max_age: i64) -> SeatFuture<'_, Summary>;
    /// Sessions that lapsed since the last call, each handed out once.
    fn take_lapsed(&self) -> SeatFuture<'_, Vec<Session>>;
    /// Takes the lease `name` for `ms` milliseconds unless some instance holds it: true
    /// when this caller got it (a store of one instance always grants it).
    fn lease<'a>(&'a self, name: &'a str, ms: u64) -> SeatFuture<'a, bool>;
    /// Whether the store answers.
    fn ping(&self) -> SeatFuture<'_, ()>;
    /// The store's kind, as `lic4es_store_up{store}` names it (`memory`, `redis`).
    fn kind(&self) -> &'static str;
}
