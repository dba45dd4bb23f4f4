//! The seat state machine (`docs/explanation/seats.md`) (hybrid online/offline seats).
//!
//! Pure: no I/O, no clock reads, no tokio. The engine feeds it [`Event`]s with the time
//! and a jitter draw ([`Ctx`]); it answers with [`Action`]s to carry out (an exchange
//! with the backend, a record to persist, a line to log) and tells when it next wants
//! to be woken ([`SeatMachine::next_deadline`]). Whether the seat entitles the host to
//! its paid tier at a given moment is [`SeatMachine::entitled`].
//!
//! All times are wall-clock milliseconds since the epoch.

use serde::Serialize;

use crate::log::Level;

/// First reconnect delay ceiling while offline; it doubles per attempt.
pub const FIRST_RECONNECT_MS: i64 = 60_000;
/// Shortest wait between two reconnect attempts, so an unlucky jitter draw never spins.
pub const MIN_RECONNECT_MS: i64 = 1_000;
/// The window in which offline cycles are counted.
pub const CYCLE_WINDOW_MS: i64 = 30 * DAY_MS;
/// Offline cycles from which each new one is logged at WARN.
pub const CYCLE_WARN_FROM: usize = 3;
/// How close to the end of the offline grace the daily warning starts.
pub const GRACE_WARN_MS: i64 = 2 * DAY_MS;
/// Bounds on a heartbeat interval received from the backend.
pub const HEARTBEAT_BOUNDS_MS: (i64, i64) = (1_000, DAY_MS);
/// At most this many offline cycles are remembered.
const MAX_CYCLES: usize = 64;
/// What a session's time to live adds to two heartbeat intervals (the server's lapse rule).
pub const SESSION_TTL_EXTRA_MS: i64 = 60_000;
/// After a grant that does not end an offline period, the heartbeat that ends it comes
/// this share of an interval later: after the server's minimum spacing of renewals (half
/// an interval), and sooner than a whole one.
const CONFIRM_AFTER: f64 = 0.6;
const DAY_MS: i64 = 86_400_000;

/// Where the seat stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    /// No seat yet: an acquire (or reconnect) is under way or scheduled.
    Acquiring,
    /// A seat is held and heartbeats reach the backend.
    Online,
    /// Contact lost: the tier holds until the offline grace ends; reconnecting.
    Offline,
    /// No paid tier: the offline grace is over (or there never was a seat); reconnecting.
    Degraded,
    /// A free plan: the token is used without a seat or heartbeats.
    OfflinePlan,
    /// The backend refused a seat (all in use); retried after a backoff (a rolling update's
    /// surge host gets the seat its predecessor releases within minutes).
    NoSeats,
    /// The seat is checked out until the borrow's end: held on the server without
    /// heartbeats, the tier kept with no offline grace; a seat is acquired after it.
    Borrowed,
}

impl SeatState {
    /// Every state, for tables.
    pub const ALL: [SeatState; 7] = [
        SeatState::Acquiring,
        SeatState::Online,
        SeatState::Offline,
        SeatState::Degraded,
        SeatState::OfflinePlan,
        SeatState::NoSeats,
        SeatState::Borrowed,
    ];

    /// The snake_case name used in the status and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatState::Acquiring => "acquiring",
            SeatState::Online => "online",
            SeatState::Offline => "offline",
            SeatState::Degraded => "degraded",
            SeatState::OfflinePlan => "offline_plan",
            SeatState::NoSeats => "no_seats",
            SeatState::Borrowed => "borrowed",
        }
    }
}

/// Settings from the engine's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatParams {
    /// `seat.max-heartbeat-failures`.
    pub max_failures: u32,
    /// `seat.reconnect-interval`: the longest wait between reconnect attempts.
    pub reconnect_cap_ms: i64,
    /// `refresh.interval`: when a free plan is tried again, and the longest a refused
    /// seat waits for a backend's `Retry-After`.
    pub refresh_interval_ms: i64,
}

/// What the machine keeps across restarts (the seat record of `state.json`). The offline
/// grace is not in it: it comes from the signed seat token in use, never from a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeatMemory {
    /// The session held (or held before a crash or while offline).
    pub session_id: Option<String>,
    /// When offline mode was entered; `None` once a heartbeat proof reached the engine
    /// after it (a grant alone does not end an offline period).
    pub offline_since: Option<i64>,
    /// The heartbeat interval of the last successful acquire (or heartbeat).
    pub heartbeat_ms: Option<i64>,
    /// When offline mode was entered, for the last 30 days (oldest first).
    pub offline_cycles: Vec<i64>,
    /// The seat borrowed, while a borrow lasts (its session is `session_id`).
    pub borrow: Option<Borrow>,
}

/// A borrowed seat: the server holds it without heartbeats until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Borrow {
    /// The borrowed seat's token, signed by the vendor's key (the engine checks it again
    /// at every start: the record on disk proves nothing by itself).
    pub token: String,
    /// When the borrow ends (ms): the token's `exp`.
    pub until: i64,
}

/// How a seat was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantMode {
    /// A seat with heartbeats.
    Online {
        /// The session.
        session_id: String,
        /// Heartbeat interval.
        heartbeat_ms: i64,
    },
    /// A free plan: no seat, no heartbeats.
    OfflinePlan,
}

/// A successful acquire or reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Online seat or offline plan.
    pub mode: GrantMode,
    /// The offline grace the seat token signs (`grace_seconds`; 0 = strict online-only).
    pub grace_ms: i64,
    /// When the token received stops counting (its expiry plus the grace period).
    pub token_until: i64,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The engine starts in seat mode.
    Start,
    /// An acquire or reconnect succeeded.
    Granted(Grant),
    /// An acquire or reconnect was refused: every seat is in use.
    NoSeats {
        /// The backend's message.
        message: String,
        /// The answer's `Retry-After`, in milliseconds, if it had one.
        retry_after_ms: Option<i64>,
    },
    /// A seat call answered with a revocation (the engine drops the license itself).
    Revoked,
    /// An acquire or reconnect could not reach the backend (network, timeout, 5xx, or an
    /// answer that could not be used). `token_until` is when the token the engine could
    /// fall back on (cached, or in use) stops counting, if it has one, and `grace_ms` the
    /// offline grace that token signs.
    Unreachable {
        /// Why, for the log.
        reason: String,
        /// End of the usable token, if any.
        token_until: Option<i64>,
        /// The usable token's signed offline grace (0 without one).
        grace_ms: i64,
    },
    /// A heartbeat was answered with its proof: a renewed seat token, signed, naming
    /// this session and machine and answering the heartbeat's nonce (the engine checks
    /// that before it says so).
    HeartbeatOk {
        /// A new interval, from the next beat on.
        heartbeat_ms: Option<i64>,
        /// End of the renewed token.
        token_until: i64,
        /// The offline grace the renewed token signs.
        grace_ms: i64,
    },
    /// A heartbeat failed (network, timeout, 5xx, or an answer without a valid proof).
    HeartbeatFailed {
        /// Why, for the log.
        reason: String,
    },
    /// A heartbeat was answered 404/410: the backend dropped the session.
    SessionGone,
    /// The release at shutdown went through.
    Released,
    /// A deadline the machine asked for has come.
    Due,
    /// The host asked for a refresh now (`lic_refresh_now`).
    RefreshRequested,
    /// The engine shuts down.
    Shutdown,
    /// A borrow of the online seat was granted: the server holds the seat as `session_id`
    /// until `until` without heartbeats (the engine checked the token first).
    Borrowed {
        /// The borrow's session (the token's `sid`).
        session_id: String,
        /// The borrowed token.
        token: String,
        /// The borrow's end (ms).
        until: i64,
    },
    /// The borrowed seat was given back before its end.
    BorrowReturned,
}

/// Something for the engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Acquire a seat, reporting an offline period that no session is left to end (after
    /// a release, a kick or a revocation the engine worked offline from its cached token).
    Acquire {
        /// When offline mode was entered, if it was.
        offline_since: Option<i64>,
        /// Offline cycles in the last 30 days (sent with a report).
        offline_cycles_30d: u32,
    },
    /// Reconnect, ending the old session and reporting the offline period.
    Reconnect {
        /// The session held before.
        old_session_id: Option<String>,
        /// When offline mode was entered.
        offline_since: Option<i64>,
        /// Offline cycles in the last 30 days.
        offline_cycles_30d: u32,
    },
    /// Send a heartbeat.
    Heartbeat {
        /// The session kept.
        session_id: String,
    },
    /// Give the seat back (at shutdown).
    Release {
        /// The session given back.
        session_id: String,
    },
    /// Write the seat record.
    Persist(SeatMemory),
    /// Log a line.
    Log(Level, String),
}

impl Action {
    /// A plain acquire: nothing to report.
    pub const ACQUIRE: Action = Action::Acquire {
        offline_since: None,
        offline_cycles_30d: 0,
    };

    /// Whether this action talks to the backend.
    pub fn is_exchange(&self) -> bool {
        matches!(
            self,
            Action::Acquire { .. }
                | Action::Reconnect { .. }
                | Action::Heartbeat { .. }
                | Action::Release { .. }
        )
    }
}

/// The time of an event, and a uniform draw in `[0, 1]` for the reconnect jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ctx {
    /// Now, in milliseconds.
    pub now: i64,
    /// Jitter draw in `[0, 1]` (values outside are clamped).
    pub jitter: f64,
}

/// The seat state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct SeatMachine {
    params: SeatParams,
    state: SeatState,
    mem: SeatMemory,
    /// Consecutive heartbeat failures.
    failures: u32,
    /// Reconnect (or free-plan retry) attempts since contact was lost.
    attempt: u32,
    /// Next heartbeat, reconnect or acquire; `None` while one is under way.
    next_at: Option<i64>,
    /// When the token in use stops counting.
    token_until: Option<i64>,
    /// The offline grace the token in use signs.
    grace_ms: Option<i64>,
    /// The last proof that the server holds the seat (a grant or a heartbeat's renewed
    /// token): online lasts a session's time to live past it, and no longer.
    last_heartbeat: Option<i64>,
    /// When the near-end-of-grace warning was last logged.
    grace_warned_at: Option<i64>,
    /// The time of the last event handled.
    last_event_at: i64,
}

/// The reconnect delay after `attempt` failed attempts: full jitter under a ceiling that
/// starts at one minute and doubles, never above `cap`, never below a second (or `cap`).
pub fn reconnect_delay(attempt: u32, jitter: f64, cap_ms: i64) -> i64 {
    let cap = cap_ms.max(1);
    let ceiling = FIRST_RECONNECT_MS
        .checked_shl(attempt.min(40))
        .unwrap_or(i64::MAX)
        .min(cap);
    let j = if jitter.is_nan() {
        1.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    ((j * ceiling as f64) as i64).clamp(MIN_RECONNECT_MS.min(ceiling), ceiling)
}

/// The wait before asking again for a seat after the `attempt`-th refusal in a row (0 for
/// the first): the reconnect backoff ([`reconnect_delay`]: one minute doubling, full
/// jitter, at most `seat.reconnect-interval`), or the backend's `Retry-After` when that is
/// longer. A `Retry-After` is honoured up to the longer of `refresh.interval` and
/// `seat.reconnect-interval`, so no answer parks a host for longer than the refresh
/// schedule would.
pub fn no_seat_delay(
    attempt: u32,
    jitter: f64,
    retry_after_ms: Option<i64>,
    params: &SeatParams,
) -> i64 {
    let backoff = reconnect_delay(attempt, jitter, params.reconnect_cap_ms);
    let bound = params.refresh_interval_ms.max(params.reconnect_cap_ms);
    match retry_after_ms {
        Some(r) => backoff.max(r.clamp(0, bound)),
        None => backoff,
    }
}

/// A heartbeat interval received from the backend (seconds), as milliseconds within
/// [`HEARTBEAT_BOUNDS_MS`].
pub fn heartbeat_ms_from_secs(secs: i64) -> i64 {
    secs.saturating_mul(1000)
        .clamp(HEARTBEAT_BOUNDS_MS.0, HEARTBEAT_BOUNDS_MS.1)
}

/// The hardware id (`docs/explanation/seats.md`): SHA-256 (hex) of `<machine id>:<instance id>`.
pub fn hardware_id(machine_id: &str, instance_id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        format!("{machine_id}:{instance_id}").as_bytes(),
    ))
}

fn days(ms: i64) -> i64 {
    ms.max(0) / DAY_MS
}

impl SeatMachine {
    /// A machine that starts from the seat record of a previous run (or an empty one).
    pub fn new(params: SeatParams, mem: SeatMemory) -> SeatMachine {
        SeatMachine {
            params,
            state: SeatState::Acquiring,
            mem,
            failures: 0,
            attempt: 0,
            next_at: None,
            token_until: None,
            grace_ms: None,
            last_heartbeat: None,
            grace_warned_at: None,
            last_event_at: i64::MIN,
        }
    }

    /// The current state.
    pub fn state(&self) -> SeatState {
        self.state
    }

    /// What would be persisted now.
    pub fn memory(&self) -> &SeatMemory {
        &self.mem
    }

    /// The session held, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.mem.session_id.as_deref()
    }

    /// Consecutive heartbeat failures.
    pub fn heartbeat_failures(&self) -> u32 {
        self.failures
    }

    /// The heartbeat interval in use.
    pub fn heartbeat_ms(&self) -> Option<i64> {
        self.mem.heartbeat_ms
    }

    /// The last proof that the server holds the seat: a heartbeat's renewed token, or
    /// the grant.
    pub fn last_heartbeat(&self) -> Option<i64> {
        self.last_heartbeat
    }

    /// A session's time to live at the heartbeat interval in use: two intervals and a
    /// minute, the server's lapse rule.
    pub fn session_ttl_ms(&self) -> i64 {
        self.interval()
            .saturating_mul(2)
            .saturating_add(SESSION_TTL_EXTRA_MS)
    }

    /// Until when the last proof keeps the seat online.
    pub fn proof_until(&self) -> Option<i64> {
        self.last_heartbeat
            .map(|t| t.saturating_add(self.session_ttl_ms()))
    }

    /// When offline mode was entered.
    pub fn offline_since(&self) -> Option<i64> {
        self.mem.offline_since
    }

    /// The end of the offline grace, while an offline period lasts (offline, degraded
    /// after losing contact, or online again on a grant no heartbeat has confirmed yet).
    pub fn grace_until(&self) -> Option<i64> {
        let since = self.mem.offline_since?;
        Some(since.saturating_add(self.grace_ms.unwrap_or(0)))
    }

    /// The end of the borrow, while the seat is borrowed.
    pub fn borrowed_until(&self) -> Option<i64> {
        match self.state {
            SeatState::Borrowed => self.mem.borrow.as_ref().map(|b| b.until),
            _ => None,
        }
    }

    /// The next heartbeat, reconnect or acquire.
    pub fn next_exchange_at(&self) -> Option<i64> {
        self.next_at
    }

    /// The next reconnect attempt, while offline or degraded.
    pub fn next_reconnect_at(&self) -> Option<i64> {
        match self.state {
            SeatState::Offline | SeatState::Degraded => self.next_at,
            _ => None,
        }
    }

    /// Offline cycles entered in the 30 days before `now`.
    pub fn offline_cycles_30d(&self, now: i64) -> u32 {
        self.mem
            .offline_cycles
            .iter()
            .filter(|t| now.saturating_sub(**t) < CYCLE_WINDOW_MS)
            .count() as u32
    }

    /// Whether the seat entitles the host to its token's tier at `now`: on a free plan
    /// while the token counts; online while the token counts and the last proof is
    /// younger than a session's time to live (and, while an offline period is not yet
    /// ended by a heartbeat, within its grace); offline while both the token and the
    /// offline grace do. Whichever ends first ends it.
    pub fn entitled(&self, now: i64) -> bool {
        let token_ok = self.token_until.is_some_and(|t| now < t);
        let in_grace = || self.grace_until().is_some_and(|g| now < g);
        match self.state {
            SeatState::OfflinePlan => token_ok,
            SeatState::Online => {
                token_ok
                    && self.proof_until().is_some_and(|p| now < p)
                    && (self.mem.offline_since.is_none() || in_grace())
            }
            SeatState::Offline => token_ok && in_grace(),
            SeatState::Borrowed => token_ok,
            SeatState::Acquiring | SeatState::Degraded | SeatState::NoSeats => false,
        }
    }

    /// When the machine next wants [`Event::Due`]: the next exchange; online, the moment
    /// the last proof gets too old; and while an offline period lasts, the end of the
    /// grace and (offline) the daily warning before it.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut at = self.next_at;
        let mut soonest = |t: i64| at = Some(at.map_or(t, |a| a.min(t)));
        if self.state == SeatState::Online {
            if let Some(p) = self.proof_until() {
                soonest(p);
            }
        }
        if matches!(self.state, SeatState::Offline | SeatState::Online) {
            // Online on a grant no heartbeat confirmed, the end of the grace changes the
            // tier but not the state: wanted once, not again once it has passed.
            let end = self
                .grace_until()
                .filter(|&e| self.state == SeatState::Offline || e > self.last_event_at);
            if let Some(end) = end {
                soonest(end);
                if self.state == SeatState::Offline {
                    if let Some(w) = self.next_grace_warning(end) {
                        soonest(w);
                    }
                }
            }
        }
        at
    }

    fn next_grace_warning(&self, end: i64) -> Option<i64> {
        let first = end.saturating_sub(GRACE_WARN_MS);
        let at = match self.grace_warned_at {
            Some(w) => first.max(w.saturating_add(DAY_MS)),
            None => first,
        };
        (at < end).then_some(at)
    }

    /// Handles one event and returns what to do, in order. At most one action is an
    /// exchange; its outcome is the next event.
    pub fn handle(&mut self, cx: Ctx, event: Event) -> Vec<Action> {
        let before = self.mem.clone();
        let mut out = Vec::new();
        let now = cx.now;
        self.last_event_at = self.last_event_at.max(now);
        match event {
            Event::Start if self.mem.borrow.as_ref().is_some_and(|b| now < b.until) => {
                let until = self.mem.borrow.as_ref().map_or(now, |b| b.until);
                self.hold_borrow(until);
                self.go(
                    SeatState::Borrowed,
                    Level::Info,
                    format!(
                        "Running on a borrowed seat until {} - no heartbeats until then",
                        crate::clock::rfc3339_millis(until)
                    ),
                    &mut out,
                );
            }
            Event::Start => {
                if self.mem.borrow.take().is_some() {
                    // The borrow ended while no engine ran: its session ended with it.
                    self.mem.session_id = None;
                    out.push(Action::Log(
                        Level::Info,
                        "The borrowed seat's time is over; acquiring a seat".into(),
                    ));
                }
                self.go(
                    SeatState::Acquiring,
                    Level::Info,
                    "Seat mode restarted; acquiring a seat".into(),
                    &mut out,
                );
                self.next_at = None;
                out.push(self.seek(now));
            }
            // A borrowed seat waits for no answer from the server: a grant or a refusal
            // now is a late one.
            Event::Granted(_) | Event::NoSeats { .. } if self.state == SeatState::Borrowed => {}
            Event::Granted(grant) => self.granted(now, grant, &mut out),
            Event::NoSeats {
                message,
                retry_after_ms,
            } => {
                self.mem.session_id = None;
                self.mem.offline_since = None;
                self.token_until = None;
                self.attempt = if self.state == SeatState::NoSeats {
                    self.attempt.saturating_add(1)
                } else {
                    0
                };
                let delay = no_seat_delay(self.attempt, cx.jitter, retry_after_ms, &self.params);
                self.next_at = Some(now.saturating_add(delay));
                if self.state == SeatState::NoSeats {
                    out.push(Action::Log(
                        Level::Debug,
                        format!(
                            "Still no seat available: {message}; next attempt in {} s",
                            delay / 1000
                        ),
                    ));
                } else {
                    self.go(
                        SeatState::NoSeats,
                        Level::Error,
                        format!(
                            "No seat available: {message}; next attempt in {} s",
                            delay / 1000
                        ),
                        &mut out,
                    );
                }
            }
            Event::Revoked => {
                self.mem.borrow = None;
                self.mem.session_id = None;
                self.mem.offline_since = None;
                self.token_until = None;
                self.failures = 0;
                self.next_at = Some(now.saturating_add(self.params.refresh_interval_ms));
                self.go(
                    SeatState::Acquiring,
                    Level::Info,
                    "Seat given up: the license was revoked".into(),
                    &mut out,
                );
            }
            Event::Unreachable {
                reason,
                token_until,
                grace_ms,
            } => self.unreachable(cx, reason, token_until, grace_ms, &mut out),
            Event::HeartbeatOk {
                heartbeat_ms,
                token_until,
                grace_ms,
            } if self.state == SeatState::Online => {
                self.failures = 0;
                self.last_heartbeat = Some(now);
                if let Some(h) = heartbeat_ms {
                    self.mem.heartbeat_ms = Some(h);
                }
                self.token_until = Some(token_until);
                self.grace_ms = Some(grace_ms.max(0));
                // The proof that the server holds this seat: the offline period ends here,
                // not at the grant before it.
                self.mem.offline_since = None;
                self.grace_warned_at = None;
                self.next_at = Some(now.saturating_add(self.interval()));
            }
            Event::HeartbeatFailed { reason } if self.state == SeatState::Online => {
                self.failures = self.failures.saturating_add(1);
                out.push(Action::Log(
                    Level::Warn,
                    format!(
                        "Seat heartbeat failed ({}/{}): {reason}",
                        self.failures, self.params.max_failures
                    ),
                ));
                if self.failures >= self.params.max_failures {
                    let (token, grace) = (self.token_until, self.grace_ms.unwrap_or(0));
                    self.lose_contact(cx, token, grace, &mut out);
                } else {
                    self.next_at = Some(now.saturating_add(self.interval()));
                }
            }
            Event::SessionGone if self.state == SeatState::Online => {
                self.mem.session_id = None;
                self.failures = 0;
                self.next_at = None;
                self.go(
                    SeatState::Acquiring,
                    Level::Info,
                    "The license server ended the seat session; acquiring a new seat".into(),
                    &mut out,
                );
                out.push(self.seek(now));
            }
            Event::Released if self.state == SeatState::Online => {
                self.mem.session_id = None;
                self.next_at = None;
                self.go(
                    SeatState::Acquiring,
                    Level::Info,
                    "Seat released".into(),
                    &mut out,
                );
            }
            Event::Borrowed {
                session_id,
                token,
                until,
            } if self.state == SeatState::Online => {
                self.mem.session_id = Some(session_id);
                self.mem.offline_since = None;
                self.mem.borrow = Some(Borrow { token, until });
                self.failures = 0;
                self.hold_borrow(until);
                self.go(
                    SeatState::Borrowed,
                    Level::Info,
                    format!(
                        "Seat borrowed until {} - running without the license server, no \
                         heartbeats until then",
                        crate::clock::rfc3339_millis(until)
                    ),
                    &mut out,
                );
            }
            Event::BorrowReturned if self.state == SeatState::Borrowed => {
                self.end_borrow(now, "Borrowed seat returned; acquiring a seat", &mut out);
            }
            Event::Due if self.state == SeatState::Borrowed => {
                if self.borrowed_until().is_none_or(|u| now >= u) {
                    self.end_borrow(now, "The borrow ended; acquiring a seat", &mut out);
                }
            }
            Event::Due => self.due(cx, &mut out),
            // A borrowed seat has nothing to refresh until it ends or is returned.
            Event::RefreshRequested if self.state == SeatState::Borrowed => {}
            Event::RefreshRequested => match (&self.state, &self.mem.session_id) {
                // The server renews a session at most once per half interval: a proof
                // younger than that is as fresh as a heartbeat could make it.
                (SeatState::Online, Some(_))
                    if self
                        .last_heartbeat
                        .is_some_and(|t| now.saturating_sub(t) < self.interval() / 2) => {}
                (SeatState::Online, Some(sid)) => {
                    let sid = sid.clone();
                    self.next_at = None;
                    out.push(Action::Heartbeat { session_id: sid });
                }
                _ => {
                    self.next_at = None;
                    out.push(self.seek(now));
                }
            },
            Event::Shutdown => {
                if let (SeatState::Online, Some(sid)) = (self.state, &self.mem.session_id) {
                    out.push(Action::Release {
                        session_id: sid.clone(),
                    });
                }
            }
            // Outcomes that do not fit the state (a late answer) change nothing.
            Event::HeartbeatOk { .. }
            | Event::HeartbeatFailed { .. }
            | Event::SessionGone
            | Event::Released
            | Event::Borrowed { .. }
            | Event::BorrowReturned => {}
        }
        self.prune_cycles(now);
        if self.mem != before {
            out.insert(0, Action::Persist(self.mem.clone()));
        }
        out
    }

    /// Holds the borrowed seat until `until`: its token counts until then, with no offline
    /// grace after it, and the machine wakes at its end.
    fn hold_borrow(&mut self, until: i64) {
        self.token_until = Some(until);
        self.grace_ms = Some(0);
        self.grace_warned_at = None;
        self.next_at = Some(until);
    }

    /// The borrow is over (returned, or its time up): the server no longer holds its
    /// session, and a seat is acquired.
    fn end_borrow(&mut self, now: i64, message: &str, out: &mut Vec<Action>) {
        self.mem.borrow = None;
        self.mem.session_id = None;
        self.token_until = None;
        self.go(SeatState::Acquiring, Level::Info, message.into(), out);
        out.push(self.seek(now));
    }

    fn interval(&self) -> i64 {
        self.mem.heartbeat_ms.unwrap_or(HEARTBEAT_BOUNDS_MS.1)
    }

    /// The exchange that gets a seat: a reconnect when there is an old session to end,
    /// else an acquire, which reports an offline period when there is one (every
    /// offline period reaches the server's abuse rule, not only those that end in a
    /// reconnect).
    fn seek(&mut self, now: i64) -> Action {
        self.next_at = None;
        let cycles = self.offline_cycles_30d(now);
        match (&self.mem.session_id, self.mem.offline_since) {
            (Some(old), since) => Action::Reconnect {
                old_session_id: Some(old.clone()),
                offline_since: since,
                offline_cycles_30d: cycles,
            },
            (None, Some(since)) => Action::Acquire {
                offline_since: Some(since),
                offline_cycles_30d: cycles,
            },
            (None, None) => Action::ACQUIRE,
        }
    }

    fn go(&mut self, to: SeatState, level: Level, message: String, out: &mut Vec<Action>) {
        if self.state != to {
            self.state = to;
            out.push(Action::Log(level, message));
        }
    }

    fn granted(&mut self, now: i64, grant: Grant, out: &mut Vec<Action>) {
        let was_cut_off = matches!(self.state, SeatState::Offline | SeatState::Degraded)
            || self.mem.offline_since.is_some();
        self.failures = 0;
        self.attempt = 0;
        self.token_until = Some(grant.token_until);
        self.grace_ms = Some(grant.grace_ms.max(0));
        self.last_heartbeat = Some(now);
        match grant.mode {
            GrantMode::Online {
                session_id,
                heartbeat_ms,
            } => {
                self.mem.session_id = Some(session_id);
                self.mem.heartbeat_ms = Some(heartbeat_ms);
                // An offline period ends with the first heartbeat proof, not with the
                // grant (a relay that takes a seat and hands it back at once must not
                // restart the grace): that heartbeat comes sooner.
                let wait = if self.mem.offline_since.is_some() {
                    (heartbeat_ms as f64 * CONFIRM_AFTER) as i64
                } else {
                    heartbeat_ms
                };
                self.next_at = Some(now.saturating_add(wait));
                let message = if was_cut_off {
                    "Reconnected - online mode resumed".to_string()
                } else {
                    format!(
                        "Seat acquired - online mode, heartbeat every {} s",
                        heartbeat_ms / 1000
                    )
                };
                self.go(SeatState::Online, Level::Info, message, out);
            }
            GrantMode::OfflinePlan => {
                // A free plan has no seat to lose: nothing is offline.
                self.mem.session_id = None;
                self.mem.offline_since = None;
                self.grace_warned_at = None;
                self.next_at = Some(now.saturating_add(self.params.refresh_interval_ms));
                self.go(
                    SeatState::OfflinePlan,
                    Level::Info,
                    "Offline plan - the license is used without a seat or heartbeats".into(),
                    out,
                );
            }
        }
    }

    /// Contact with the backend is lost while a seat is (or was) held: offline for the
    /// grace, or degraded at once when there is no grace left (or none at all), or no
    /// token to fall back on.
    fn lose_contact(
        &mut self,
        cx: Ctx,
        token_until: Option<i64>,
        grace_ms: i64,
        out: &mut Vec<Action>,
    ) {
        let now = cx.now;
        self.grace_ms = Some(grace_ms.max(0));
        self.failures = 0;
        self.attempt = 0;
        self.next_at =
            Some(now.saturating_add(reconnect_delay(0, cx.jitter, self.params.reconnect_cap_ms)));
        let token_ok = token_until.is_some_and(|t| now < t);
        if !token_ok && self.mem.offline_since.is_none() {
            // Nothing held to work offline with: not an offline period, just no license.
            self.go(
                SeatState::Degraded,
                Level::Warn,
                "License server unreachable and no usable license to fall back on - \
                 limited to Community features until a seat is acquired"
                    .into(),
                out,
            );
            return;
        }
        let since = match self.mem.offline_since {
            Some(s) => s,
            None => {
                self.mem.offline_since = Some(now);
                self.mem.offline_cycles.push(now);
                let n = self.offline_cycles_30d(now) as usize;
                if n >= CYCLE_WARN_FROM {
                    out.push(Action::Log(
                        Level::Warn,
                        format!("Offline mode entered {n} times in the last 30 days"),
                    ));
                }
                now
            }
        };
        let grace = grace_ms.max(0);
        let end = since.saturating_add(grace);
        if token_ok && now < end {
            self.token_until = token_until;
            self.go(
                SeatState::Offline,
                Level::Warn,
                format!(
                    "Entered offline mode - grace period of {} days active",
                    days(end - now)
                ),
                out,
            );
        } else if !token_ok {
            self.go(
                SeatState::Degraded,
                Level::Error,
                "Offline with no usable license to fall back on - limited to Community features"
                    .into(),
                out,
            );
        } else if grace == 0 {
            self.go(
                SeatState::Degraded,
                Level::Error,
                "Offline grace period expired - limited to Community features \
                 (this license allows no offline use)"
                    .into(),
                out,
            );
        } else {
            self.go(
                SeatState::Degraded,
                Level::Error,
                "Offline grace period expired - limited to Community features".into(),
                out,
            );
        }
    }

    fn unreachable(
        &mut self,
        cx: Ctx,
        reason: String,
        token_until: Option<i64>,
        grace_ms: i64,
        out: &mut Vec<Action>,
    ) {
        let now = cx.now;
        match self.state {
            SeatState::Acquiring => {
                out.push(Action::Log(
                    Level::Warn,
                    format!("Seat acquire failed: {reason}"),
                ));
                self.lose_contact(cx, token_until, grace_ms, out);
            }
            SeatState::Offline | SeatState::Degraded | SeatState::OfflinePlan => {
                self.attempt = self.attempt.saturating_add(1);
                let delay = reconnect_delay(self.attempt, cx.jitter, self.params.reconnect_cap_ms);
                self.next_at = Some(now.saturating_add(delay));
                let level = if self.state == SeatState::OfflinePlan {
                    Level::Warn
                } else {
                    Level::Debug
                };
                out.push(Action::Log(
                    level,
                    format!(
                        "License server still unreachable ({reason}); next attempt in {} s",
                        delay / 1000
                    ),
                ));
            }
            SeatState::NoSeats => {
                self.attempt = self.attempt.saturating_add(1);
                let delay = reconnect_delay(self.attempt, cx.jitter, self.params.reconnect_cap_ms);
                self.next_at = Some(now.saturating_add(delay));
                out.push(Action::Log(
                    Level::Warn,
                    format!("Seat acquire failed: {reason}"),
                ));
            }
            // Not waiting for an acquire: a late answer.
            SeatState::Online | SeatState::Borrowed => {}
        }
    }

    fn due(&mut self, cx: Ctx, out: &mut Vec<Action>) {
        let now = cx.now;
        if self.state == SeatState::Online && self.proof_until().is_some_and(|p| now >= p) {
            // No proof for a session's time to live: the server has let the seat lapse,
            // whatever the heartbeats that did not come back say.
            out.push(Action::Log(
                Level::Warn,
                format!(
                    "No heartbeat proof for {} s - the seat is no longer held",
                    self.session_ttl_ms() / 1000
                ),
            ));
            let (token, grace) = (self.token_until, self.grace_ms.unwrap_or(0));
            self.lose_contact(cx, token, grace, out);
        }
        if self.state == SeatState::Offline {
            if let Some(end) = self.grace_until() {
                if now >= end {
                    self.go(
                        SeatState::Degraded,
                        Level::Error,
                        "Offline grace period expired - limited to Community features".into(),
                        out,
                    );
                } else if self.next_grace_warning(end).is_some_and(|w| now >= w) {
                    self.grace_warned_at = Some(now);
                    out.push(Action::Log(
                        Level::Warn,
                        format!(
                            "Offline grace period ends in {} days - the license server must be \
                             reached before then",
                            days(end - now)
                        ),
                    ));
                }
            }
        }
        if self.next_at.is_some_and(|t| t <= now) {
            let action = match (&self.state, &self.mem.session_id) {
                (SeatState::Online, Some(sid)) => {
                    let a = Action::Heartbeat {
                        session_id: sid.clone(),
                    };
                    self.next_at = None;
                    a
                }
                _ => self.seek(now),
            };
            out.push(action);
        }
    }

    fn prune_cycles(&mut self, now: i64) {
        self.mem
            .offline_cycles
            .retain(|t| now.saturating_sub(*t) < CYCLE_WINDOW_MS);
        let extra = self.mem.offline_cycles.len().saturating_sub(MAX_CYCLES);
        self.mem.offline_cycles.drain(..extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hardware_id_is_the_sha256_of_machine_and_instance() {
        // printf 'm:i' | sha256sum
        assert_eq!(
            hardware_id("m", "i"),
            "89adb42d8522c649fa3bf81555648a727d954f408078436a7310b9627d6ca5b7"
        );
    }
}
