//! The seat state machine (`docs/explanation/seats.md`) without any I/O: every state against every event,
//! the rules one by one at day scale, and generated event sequences checked against the
//! invariants.

use lic4es::log::Level;
use lic4es::seat::*;

const S: i64 = 1_000;
const MIN: i64 = 60 * S;
const H: i64 = 60 * MIN;
const DAY: i64 = 24 * H;
const T0: i64 = 1_795_354_152_000;

const PARAMS: SeatParams = SeatParams {
    max_failures: 3,
    reconnect_cap_ms: H,
    refresh_interval_ms: 24 * H,
};

fn cx(now: i64) -> Ctx {
    Ctx { now, jitter: 1.0 }
}

fn online(session: &str, grace_days: i64, token_until: i64) -> Event {
    Event::Granted(Grant {
        mode: GrantMode::Online {
            session_id: session.into(),
            heartbeat_ms: 300 * S,
        },
        grace_ms: grace_days * DAY,
        token_until,
    })
}

fn plan(token_until: i64) -> Event {
    Event::Granted(Grant {
        mode: GrantMode::OfflinePlan,
        grace_ms: 0,
        token_until,
    })
}

/// An acquire that cannot reach the backend, with the token to fall back on (which
/// signs a 7-day grace) if any.
fn unreachable(token_until: Option<i64>) -> Event {
    unreachable_with(token_until, if token_until.is_some() { 7 * DAY } else { 0 })
}

fn unreachable_with(token_until: Option<i64>, grace_ms: i64) -> Event {
    Event::Unreachable {
        reason: "connection refused".into(),
        token_until,
        grace_ms,
    }
}

/// A heartbeat answered with its proof: a renewed token signing a 7-day grace.
fn beat(token_until: i64) -> Event {
    Event::HeartbeatOk {
        heartbeat_ms: None,
        token_until,
        grace_ms: 7 * DAY,
    }
}

/// A borrow granted until `until`.
fn borrowed(session: &str, until: i64) -> Event {
    Event::Borrowed {
        session_id: session.into(),
        token: format!("token-of-{session}"),
        until,
    }
}

fn no_seats(message: &str) -> Event {
    Event::NoSeats {
        message: message.into(),
        retry_after_ms: None,
    }
}

fn failed() -> Event {
    Event::HeartbeatFailed {
        reason: "timed out".into(),
    }
}

fn logs(actions: &[Action]) -> Vec<(Level, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(l, m) => Some((*l, m.clone())),
            _ => None,
        })
        .collect()
}

fn logged(actions: &[Action], level: Level, text: &str) -> bool {
    logs(actions)
        .iter()
        .any(|(l, m)| *l == level && m.contains(text))
}

fn exchange(actions: &[Action]) -> Option<&Action> {
    let ex: Vec<&Action> = actions.iter().filter(|a| a.is_exchange()).collect();
    assert!(ex.len() <= 1, "at most one exchange per event: {actions:?}");
    ex.first().copied()
}

/// A driver that keeps the clock for a machine.
struct M {
    m: SeatMachine,
    now: i64,
}

impl M {
    fn new(mem: SeatMemory) -> M {
        M {
            m: SeatMachine::new(PARAMS, mem),
            now: T0,
        }
    }
    fn on(&mut self, e: Event) -> Vec<Action> {
        self.m.handle(cx(self.now), e)
    }
    fn at(&mut self, t: i64, e: Event) -> Vec<Action> {
        self.now = t;
        self.on(e)
    }
    /// Moves to the machine's next deadline and delivers Due there.
    fn due(&mut self) -> Vec<Action> {
        let t = self.m.next_deadline().expect("a deadline");
        assert!(t >= self.now, "deadline in the past");
        self.at(t, Event::Due)
    }
    fn state(&self) -> SeatState {
        self.m.state()
    }
}

fn remembered() -> SeatMemory {
    SeatMemory {
        heartbeat_ms: Some(300 * S),
        ..SeatMemory::default()
    }
}

/// A machine in `state`, reached through the events that lead there.
fn machine_in(state: SeatState) -> M {
    let mut m = M::new(remembered());
    m.on(Event::Start);
    let token = T0 + 30 * DAY;
    match state {
        SeatState::Acquiring => {}
        SeatState::Online => {
            m.on(online("s-1", 7, token));
        }
        SeatState::Offline => {
            m.on(online("s-1", 7, token));
            for _ in 0..3 {
                m.due();
                m.on(failed());
            }
        }
        SeatState::Degraded => {
            m.on(online("s-1", 7, token));
            for _ in 0..3 {
                m.due();
                m.on(failed());
            }
            let end = m.m.grace_until().unwrap();
            let a = m.at(end, Event::Due);
            if exchange(&a).is_some() {
                m.on(unreachable(Some(token)));
            }
        }
        SeatState::OfflinePlan => {
            m.on(plan(token));
        }
        SeatState::NoSeats => {
            m.on(no_seats("All seats in use (5/5)"));
        }
        SeatState::Borrowed => {
            m.on(online("s-1", 7, token));
            m.on(borrowed("b-1", T0 + 3 * DAY));
        }
    }
    assert_eq!(m.state(), state, "setup");
    m
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ex {
    Idle,
    Acquire,
    Reconnect,
    Heartbeat,
    Release,
}

fn kind(a: Option<&Action>) -> Ex {
    match a {
        None => Ex::Idle,
        Some(Action::Acquire { .. }) => Ex::Acquire,
        Some(Action::Reconnect { .. }) => Ex::Reconnect,
        Some(Action::Heartbeat { .. }) => Ex::Heartbeat,
        Some(Action::Release { .. }) => Ex::Release,
        Some(other) => panic!("not an exchange: {other:?}"),
    }
}

#[test]
fn every_state_against_every_event() {
    use Ex::*;
    use SeatState::*;
    let token = T0 + 30 * DAY;
    let events: Vec<(&str, Event)> = vec![
        ("start", Event::Start),
        ("granted online", online("s-2", 7, token)),
        ("granted plan", plan(token)),
        ("no seats", no_seats("All seats in use (5/5)")),
        ("revoked", Event::Revoked),
        ("unreachable, token", unreachable(Some(token))),
        ("unreachable, none", unreachable(None)),
        ("heartbeat ok", beat(token)),
        ("heartbeat failed", failed()),
        ("session gone", Event::SessionGone),
        ("released", Event::Released),
        ("due", Event::Due),
        ("refresh", Event::RefreshRequested),
        ("shutdown", Event::Shutdown),
        ("borrowed", borrowed("b-1", T0 + 3 * DAY)),
        ("borrow returned", Event::BorrowReturned),
    ];
    // Per state, in the order of `events`: (next state, exchange asked for).
    let table: [(SeatState, [(SeatState, Ex); 16]); 7] = [
        (
            Acquiring,
            [
                (Acquiring, Acquire),
                (Online, Idle),
                (OfflinePlan, Idle),
                (NoSeats, Idle),
                (Acquiring, Idle),
                (Offline, Idle),
                (Degraded, Idle),
                (Acquiring, Idle),
                (Acquiring, Idle),
                (Acquiring, Idle),
                (Acquiring, Idle),
                (Acquiring, Idle),
                (Acquiring, Acquire),
                (Acquiring, Idle),
                (Acquiring, Idle),
                (Acquiring, Idle),
            ],
        ),
        (
            Online,
            [
                (Acquiring, Reconnect),
                (Online, Idle),
                (OfflinePlan, Idle),
                (NoSeats, Idle),
                (Acquiring, Idle),
                (Online, Idle),
                (Online, Idle),
                (Online, Idle),
                (Online, Idle),
                (Acquiring, Acquire),
                (Acquiring, Idle),
                (Online, Heartbeat),
                // A proof younger than half an interval: as fresh as a heartbeat makes it.
                (Online, Idle),
                (Online, Release),
                (Borrowed, Idle),
                (Online, Idle),
            ],
        ),
        (
            Offline,
            [
                (Acquiring, Reconnect),
                (Online, Idle),
                (OfflinePlan, Idle),
                (NoSeats, Idle),
                (Acquiring, Idle),
                (Offline, Idle),
                (Offline, Idle),
                (Offline, Idle),
                (Offline, Idle),
                (Offline, Idle),
                (Offline, Idle),
                (Offline, Reconnect),
                (Offline, Reconnect),
                (Offline, Idle),
                (Offline, Idle),
                (Offline, Idle),
            ],
        ),
        (
            Degraded,
            [
                (Acquiring, Reconnect),
                (Online, Idle),
                (OfflinePlan, Idle),
                (NoSeats, Idle),
                (Acquiring, Idle),
                (Degraded, Idle),
                (Degraded, Idle),
                (Degraded, Idle),
                (Degraded, Idle),
                (Degraded, Idle),
                (Degraded, Idle),
                (Degraded, Reconnect),
                (Degraded, Reconnect),
                (Degraded, Idle),
                (Degraded, Idle),
                (Degraded, Idle),
            ],
        ),
        (
            OfflinePlan,
            [
                (Acquiring, Acquire),
                (Online, Idle),
                (OfflinePlan, Idle),
                (NoSeats, Idle),
                (Acquiring, Idle),
                (OfflinePlan, Idle),
                (OfflinePlan, Idle),
                (OfflinePlan, Idle),
                (OfflinePlan, Idle),
                (OfflinePlan, Idle),
                (OfflinePlan, Idle),
                (OfflinePlan, Acquire),
                (OfflinePlan, Acquire),
                (OfflinePlan, Idle),
                (OfflinePlan, Idle),
                (OfflinePlan, Idle),
            ],
        ),
        (
            NoSeats,
            [
                (Acquiring, Acquire),
                (Online, Idle),
                (OfflinePlan, Idle),
                (NoSeats, Idle),
                (Acquiring, Idle),
                (NoSeats, Idle),
                (NoSeats, Idle),
                (NoSeats, Idle),
                (NoSeats, Idle),
                (NoSeats, Idle),
                (NoSeats, Idle),
                (NoSeats, Acquire),
                (NoSeats, Acquire),
                (NoSeats, Idle),
                (NoSeats, Idle),
                (NoSeats, Idle),
            ],
        ),
        (
            Borrowed,
            [
                (Borrowed, Idle),
                (Borrowed, Idle),
                (Borrowed, Idle),
                (Borrowed, Idle),
                (Acquiring, Idle),
                (Borrowed, Idle),
                (Borrowed, Idle),
                (Borrowed, Idle),
                (Borrowed, Idle),
                (Borrowed, Idle),
                (Borrowed, Idle),
                // The borrow's end: a seat is acquired.
                (Acquiring, Acquire),
                (Borrowed, Idle),
                // A borrowed seat is not released: it is held until its end.
                (Borrowed, Idle),
                (Borrowed, Idle),
                (Acquiring, Acquire),
            ],
        ),
    ];
    let mut cells = 0;
    for (from, row) in table {
        for ((name, event), (to, ex)) in events.iter().zip(row) {
            let mut m = machine_in(from);
            let actions = if *name == "due" && m.m.next_deadline().is_some() {
                m.due()
            } else {
                m.on(event.clone())
            };
            assert_eq!(
                (m.state(), kind(exchange(&actions))),
                (to, ex),
                "{from:?} + {name}: {actions:?}"
            );
            if m.state() != from {
                assert!(
                    !logs(&actions).is_empty(),
                    "{from:?} + {name}: a transition is logged"
                );
            }
            cells += 1;
        }
    }
    assert_eq!(cells, 7 * 16);
}

#[test]
fn offline_when_the_last_proof_outlives_the_session_ttl_then_degraded_when_the_grace_ends() {
    let mut m = M::new(SeatMemory::default());
    assert_eq!(m.on(Event::Start), vec![Action::ACQUIRE]);
    let token = T0 + 30 * DAY;
    let a = m.on(online("s-1", 7, token));
    assert!(logged(&a, Level::Info, "Seat acquired - online mode"));
    assert!(m.m.entitled(m.now));
    assert_eq!(m.m.next_deadline(), Some(T0 + 300 * S));
    // Two intervals and a minute: the server's lapse rule.
    assert_eq!(m.m.session_ttl_ms(), 660 * S);
    assert_eq!(m.m.proof_until(), Some(T0 + 660 * S));

    for i in 1..=2 {
        let a = m.due();
        assert_eq!(
            exchange(&a),
            Some(&Action::Heartbeat {
                session_id: "s-1".into()
            })
        );
        let a = m.on(failed());
        assert!(logged(
            &a,
            Level::Warn,
            &format!("Seat heartbeat failed ({i}/3)")
        ));
        assert_eq!(m.state(), SeatState::Online, "still online after {i}");
        assert_eq!(m.m.heartbeat_failures(), i);
    }
    // The third failure never comes: a TTL after the last proof the seat is gone,
    // whatever seat.max-heartbeat-failures says.
    assert!(m.m.entitled(T0 + 660 * S - 1));
    let a = m.due();
    let went = m.now;
    assert_eq!(went, T0 + 660 * S);
    assert_eq!(m.state(), SeatState::Offline);
    assert!(
        logged(&a, Level::Warn, "No heartbeat proof for 660 s"),
        "{a:?}"
    );
    assert!(
        logged(
            &a,
            Level::Warn,
            "Entered offline mode - grace period of 7 days active"
        ),
        "{a:?}"
    );
    assert_eq!(m.m.offline_since(), Some(went));
    assert_eq!(m.m.grace_until(), Some(went + 7 * DAY));
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Persist(mem) if mem.offline_since == Some(went))));

    // Reconnect attempts fail all week; the tier holds until the grace ends, not after.
    let mut warnings = 0;
    while m.state() == SeatState::Offline {
        let a = m.due();
        warnings += logs(&a)
            .iter()
            .filter(|(_, t)| t.starts_with("Offline grace period ends in"))
            .count();
        if exchange(&a).is_some() {
            m.on(unreachable(Some(token)));
        }
        if m.state() == SeatState::Offline {
            assert!(m.m.entitled(m.now));
            assert_eq!(m.m.offline_since(), Some(went), "offline_since is fixed");
        }
    }
    assert_eq!(
        m.now,
        went + 7 * DAY,
        "degraded exactly when the grace ends"
    );
    assert_eq!(m.state(), SeatState::Degraded);
    assert!(!m.m.entitled(m.now));
    assert!(
        (2..=3).contains(&warnings),
        "a warning a day in the last two days, got {warnings}"
    );
    // Reconnect attempts continue; a grant comes back online, but only a heartbeat's
    // proof ends the offline period (and with it the expired grace).
    let a = m.due();
    assert!(
        matches!(exchange(&a), Some(Action::Reconnect { old_session_id: Some(s), offline_since: Some(t), offline_cycles_30d: 1 }) if s == "s-1" && *t == went)
    );
    let a = m.on(online("s-9", 7, m.now + 30 * DAY));
    assert!(logged(&a, Level::Info, "Reconnected - online mode resumed"));
    assert_eq!(m.state(), SeatState::Online);
    assert_eq!(m.m.offline_since(), Some(went), "not ended by the grant");
    assert!(!m.m.entitled(m.now), "the grace is still over");
    assert_eq!(m.m.heartbeat_failures(), 0);
    // The confirming heartbeat comes sooner than a whole interval (after the server's
    // half-interval spacing).
    let granted = m.now;
    let a = m.due();
    assert_eq!(m.now, granted + 180 * S);
    assert!(matches!(exchange(&a), Some(Action::Heartbeat { .. })));
    m.on(beat(m.now + 8 * DAY));
    assert_eq!(
        m.m.offline_since(),
        None,
        "the proof ends the offline period"
    );
    assert!(m.m.entitled(m.now));
    assert_eq!(m.m.next_deadline(), Some(m.now + 300 * S));
}

#[test]
fn a_grant_handed_back_at_once_does_not_restart_the_grace() {
    // A relay takes a seat for the host and releases it on the server at once: the
    // host's heartbeats then fail. The offline period that began before the grant runs
    // on, so grants alone never buy more than the one grace.
    let mut m = machine_in(SeatState::Offline);
    let since = m.m.offline_since().unwrap();
    let end = since + 7 * DAY;
    let mut grants = 0;
    while m.now < end + DAY {
        let a = m.due();
        if matches!(
            exchange(&a),
            Some(Action::Reconnect { .. } | Action::Acquire { .. })
        ) {
            m.on(online(&format!("s-{grants}"), 7, m.now + 8 * DAY));
            grants += 1;
        } else if matches!(exchange(&a), Some(Action::Heartbeat { .. })) {
            m.on(failed());
        }
        assert_eq!(m.m.offline_since(), Some(since), "never restarted");
        if m.now >= end {
            assert!(!m.m.entitled(m.now), "no tier past the grace at {}", m.now);
        }
    }
    assert!(grants > 10, "the relay kept granting: {grants}");
}

#[test]
fn a_refresh_sends_a_heartbeat_only_when_the_proof_is_older_than_half_an_interval() {
    let mut m = machine_in(SeatState::Online);
    assert_eq!(exchange(&m.at(T0 + 149 * S, Event::RefreshRequested)), None);
    assert!(matches!(
        exchange(&m.at(T0 + 150 * S, Event::RefreshRequested)),
        Some(Action::Heartbeat { .. })
    ));
}

#[test]
fn the_degraded_line_is_the_contract_s() {
    let mut m = machine_in(SeatState::Offline);
    let end = m.m.grace_until().unwrap();
    let a = m.at(end, Event::Due);
    assert!(logged(
        &a,
        Level::Error,
        "Offline grace period expired - limited to Community features"
    ));
}

#[test]
fn strict_online_only_degrades_at_once() {
    let mut m = M::new(SeatMemory::default());
    m.on(Event::Start);
    m.on(online("s-1", 0, T0 + 30 * DAY));
    for _ in 0..3 {
        m.due();
        m.on(failed());
    }
    assert_eq!(m.state(), SeatState::Degraded);
    assert!(!m.m.entitled(m.now));
    // A free-plan token with grace 0 is simply used until it expires.
    let mut p = M::new(SeatMemory::default());
    p.on(Event::Start);
    p.on(plan(T0 + DAY));
    assert!(p.m.entitled(T0 + DAY - 1));
    assert!(!p.m.entitled(T0 + DAY));
}

#[test]
fn a_restart_while_offline_keeps_the_grace_end() {
    let m = machine_in(SeatState::Offline);
    let since = m.m.offline_since().unwrap();
    let end = m.m.grace_until().unwrap();
    let mem = m.m.memory().clone();

    // Day 3: the process restarts with what was persisted.
    let mut r = M::new(mem);
    r.now = since + 3 * DAY;
    let a = r.on(Event::Start);
    assert!(matches!(
        exchange(&a),
        Some(Action::Reconnect { old_session_id: Some(_), offline_since: Some(t), .. }) if *t == since
    ));
    let a = r.on(unreachable(Some(since + 30 * DAY)));
    assert_eq!(r.state(), SeatState::Offline);
    assert!(
        logged(&a, Level::Warn, "grace period of 4 days active"),
        "{a:?}"
    );
    assert_eq!(
        r.m.grace_until(),
        Some(end),
        "the grace still ends on day 7"
    );
    assert_eq!(r.m.offline_cycles_30d(r.now), 1, "not a new cycle");
    r.at(end - 1, Event::Due);
    assert!(r.m.entitled(end - 1));
    r.at(end, Event::Due);
    assert_eq!(r.state(), SeatState::Degraded);

    // A restart after the grace is over comes up degraded.
    let mut late = M::new(m.m.memory().clone());
    late.now = end + DAY;
    late.on(Event::Start);
    late.on(unreachable(Some(end + 30 * DAY)));
    assert_eq!(late.state(), SeatState::Degraded);
}

#[test]
fn an_acquire_that_cannot_reach_the_backend() {
    // With a cached token that signs a 7-day grace: offline at once.
    let mut m = M::new(remembered());
    m.on(Event::Start);
    let a = m.on(unreachable(Some(T0 + 10 * DAY)));
    assert_eq!(m.state(), SeatState::Offline);
    assert!(logged(
        &a,
        Level::Warn,
        "Entered offline mode - grace period of 7 days active"
    ));
    // A cached token that signs no grace (online-only, or minted before the claim):
    // no offline use, whatever was remembered.
    let mut first = M::new(remembered());
    first.on(Event::Start);
    first.on(unreachable_with(Some(T0 + 10 * DAY), 0));
    assert_eq!(first.state(), SeatState::Degraded);
    // Nothing to fall back on: degraded, not an offline period.
    let mut bare = M::new(remembered());
    bare.on(Event::Start);
    let a = bare.on(unreachable(None));
    assert_eq!(bare.state(), SeatState::Degraded);
    assert_eq!(bare.m.offline_since(), None);
    assert!(logged(&a, Level::Warn, "no usable license"));
    let a = bare.due();
    assert_eq!(exchange(&a), Some(&Action::ACQUIRE), "keeps trying");
}

#[test]
fn reconnect_backoff_doubles_with_jitter_and_never_exceeds_the_cap() {
    let delays: Vec<i64> = (0..10).map(|n| reconnect_delay(n, 1.0, H)).collect();
    assert_eq!(
        delays,
        vec![
            MIN,
            2 * MIN,
            4 * MIN,
            8 * MIN,
            16 * MIN,
            32 * MIN,
            H,
            H,
            H,
            H
        ]
    );
    for n in 0..80 {
        for j in [0.0, 0.25, 0.5, 0.99, 1.0, -3.0, 7.0, f64::NAN] {
            let d = reconnect_delay(n, j, H);
            assert!((MIN_RECONNECT_MS..=H).contains(&d), "{n} {j}: {d}");
        }
    }
    assert_eq!(reconnect_delay(0, 0.5, H), 30 * S, "full jitter");
    assert_eq!(
        reconnect_delay(3, 0.0, 500),
        500,
        "a cap under a second wins"
    );
}

#[test]
fn session_gone_reacquires_at_once_and_no_seats_backs_off_from_a_minute() {
    let mut m = machine_in(SeatState::Online);
    m.due();
    let a = m.on(Event::SessionGone);
    assert_eq!(exchange(&a), Some(&Action::ACQUIRE));
    assert_eq!(m.m.heartbeat_failures(), 0, "not a failure");
    let a = m.on(no_seats("All seats in use (2/2)"));
    assert!(logged(
        &a,
        Level::Error,
        "No seat available: All seats in use (2/2); next attempt in 60 s"
    ));
    assert!(!m.m.entitled(m.now));
    // Jitter 1.0 draws the ceiling: 1, 2, 4, 8, 16, 32 min, then the 1-hour cap.
    let mut waits = Vec::new();
    for _ in 0..8 {
        let before = m.now;
        let again = m.due();
        waits.push((m.now - before) / MIN);
        assert_eq!(exchange(&again), Some(&Action::ACQUIRE));
        let a = m.on(no_seats("All seats in use (2/2)"));
        assert!(
            !logged(&a, Level::Error, "No seat"),
            "logged once per transition"
        );
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    // Granted, then refused again: the backoff starts over.
    m.due();
    m.on(online("s-3", 7, m.now + 30 * DAY));
    m.on(Event::SessionGone);
    m.on(no_seats("All seats in use (2/2)"));
    assert_eq!(m.m.next_deadline(), Some(m.now + MIN));
    // An acquire that cannot reach the backend while refused keeps backing off.
    m.due();
    m.on(unreachable(None));
    assert_eq!(m.state(), SeatState::NoSeats);
    assert_eq!(m.m.next_deadline(), Some(m.now + 2 * MIN));
}

#[test]
fn no_seat_delay_is_full_jitter_under_the_backoff_and_honours_a_longer_retry_after() {
    let p = PARAMS;
    assert_eq!(no_seat_delay(0, 1.0, None, &p), MIN);
    assert_eq!(no_seat_delay(0, 0.5, None, &p), 30 * S, "full jitter");
    assert_eq!(no_seat_delay(0, 0.0, None, &p), S, "never below a second");
    assert_eq!(
        no_seat_delay(9, 1.0, None, &p),
        H,
        "seat.reconnect-interval caps it"
    );
    assert_eq!(
        no_seat_delay(0, 1.0, Some(5 * MIN), &p),
        5 * MIN,
        "a longer Retry-After wins"
    );
    assert_eq!(
        no_seat_delay(0, 1.0, Some(10 * S), &p),
        MIN,
        "a shorter one does not hurry the host"
    );
    assert_eq!(
        no_seat_delay(0, 1.0, Some(30 * DAY), &p),
        24 * H,
        "honoured up to the refresh interval"
    );
    assert_eq!(no_seat_delay(0, 1.0, Some(-5), &p), MIN);
    // A machine takes it from the event.
    let mut m = machine_in(SeatState::Acquiring);
    m.on(Event::NoSeats {
        message: "All seats in use (5/5)".into(),
        retry_after_ms: Some(10 * MIN),
    });
    assert_eq!(m.m.next_deadline(), Some(m.now + 10 * MIN));
}

#[test]
fn heartbeats_take_a_new_interval_and_a_renewed_token() {
    let mut m = machine_in(SeatState::Online);
    m.due();
    m.on(failed());
    m.due();
    m.on(Event::HeartbeatOk {
        heartbeat_ms: Some(60 * S),
        token_until: m.now + 60 * DAY,
        grace_ms: 7 * DAY,
    });
    assert_eq!(m.m.heartbeat_failures(), 0, "failures reset on success");
    assert_eq!(m.m.next_deadline(), Some(m.now + 60 * S));
    // The proof holds the seat online for the new interval's TTL (2 × 60 s + 60 s).
    assert!(m.m.entitled(m.now + 179 * S));
    assert!(!m.m.entitled(m.now + 180 * S));
    assert_eq!(heartbeat_ms_from_secs(0), 1_000);
    assert_eq!(heartbeat_ms_from_secs(i64::MAX), 86_400_000);
}

#[test]
fn offline_cycles_are_counted_reported_and_warned_from_the_third() {
    let mut m = M::new(SeatMemory::default());
    m.on(Event::Start);
    let mut warned = Vec::new();
    for cycle in 1..=4 {
        m.on(online(&format!("s-{cycle}"), 7, m.now + 60 * DAY));
        if cycle > 1 {
            // The grant ends an offline period only once a heartbeat proves it.
            m.due();
            m.on(beat(m.now + 60 * DAY));
            assert_eq!(m.m.offline_since(), None);
        }
        for _ in 0..3 {
            let due = m.due();
            let a = m.on(failed());
            if logged(&due, Level::Warn, "Offline mode entered")
                || logged(&a, Level::Warn, "Offline mode entered")
            {
                warned.push(cycle);
            }
        }
        assert_eq!(m.state(), SeatState::Offline);
        let a = m.due();
        let Some(Action::Reconnect {
            offline_cycles_30d, ..
        }) = exchange(&a)
        else {
            panic!("{a:?}")
        };
        assert_eq!(*offline_cycles_30d, cycle);
        m.now += DAY;
    }
    assert_eq!(warned, vec![3, 4]);
    // Thirty days later they no longer count.
    m.now += 31 * DAY;
    assert_eq!(m.m.offline_cycles_30d(m.now), 0);
}

#[test]
fn a_free_plan_acquires_again_every_refresh_interval() {
    let mut m = machine_in(SeatState::OfflinePlan);
    assert_eq!(m.m.next_deadline(), Some(T0 + 24 * H));
    let a = m.due();
    assert_eq!(exchange(&a), Some(&Action::ACQUIRE));
    let a = m.on(unreachable(Some(m.now + DAY)));
    assert_eq!(m.state(), SeatState::OfflinePlan);
    assert!(logged(&a, Level::Warn, "still unreachable"));
    let next = m.m.next_deadline().unwrap() - m.now;
    assert!(next <= H, "retries sooner than a day: {next}");
}

#[test]
fn shutdown_releases_only_an_online_seat() {
    let mut m = machine_in(SeatState::Online);
    let a = m.on(Event::Shutdown);
    assert_eq!(
        exchange(&a),
        Some(&Action::Release {
            session_id: "s-1".into()
        })
    );
    let a = m.on(Event::Released);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Persist(mem) if mem.session_id.is_none())));
    // Offline: the record stays for the next start.
    let mut o = machine_in(SeatState::Offline);
    assert_eq!(exchange(&o.on(Event::Shutdown)), None);
    assert!(o.m.memory().session_id.is_some());
}

/// xorshift64*: deterministic sequences without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn generated_sequences_keep_the_invariants() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut steps = 0;
    let mut seen = std::collections::HashSet::new();
    for run in 0..400 {
        let params = SeatParams {
            max_failures: 1 + rng.below(4) as u32,
            reconnect_cap_ms: [500, MIN, H, 6 * H][rng.below(4) as usize],
            refresh_interval_ms: [S, H, 24 * H][rng.below(3) as usize],
        };
        let mut m = SeatMachine::new(params, SeatMemory::default());
        let mut now = T0;
        let mut actions = m.handle(
            Ctx {
                now,
                jitter: rng.unit(),
            },
            Event::Start,
        );
        let mut token_until = None;
        for _ in 0..200 {
            now += match rng.below(4) {
                0 => 0,
                1 => rng.below(10 * MIN as u64) as i64,
                2 => rng.below(DAY as u64) as i64,
                _ => rng.below(4 * DAY as u64) as i64,
            };
            // Answer the exchange asked for, or deliver something else.
            let event = match (exchange(&actions).cloned(), rng.below(10)) {
                (Some(Action::Heartbeat { .. }), r) if r < 7 => match rng.below(5) {
                    0 | 4 => Event::HeartbeatOk {
                        heartbeat_ms: Some(heartbeat_ms_from_secs(1 + rng.below(900) as i64))
                            .filter(|_| rng.below(2) == 0),
                        token_until: now + rng.below(20 * DAY as u64) as i64,
                        grace_ms: rng.below(8) as i64 * DAY,
                    },
                    1 | 2 => failed(),
                    _ => Event::SessionGone,
                },
                (Some(Action::Acquire { .. } | Action::Reconnect { .. }), r) if r < 7 => {
                    let t = now + rng.below(30 * DAY as u64) as i64;
                    match rng.below(6) {
                        0 | 1 => online("s", rng.below(8) as i64, t),
                        2 => plan(t),
                        3 => no_seats("full"),
                        4 => unreachable(Some(t).filter(|_| rng.below(2) == 0)),
                        _ => Event::Revoked,
                    }
                }
                _ => match rng.below(6) {
                    0 => Event::RefreshRequested,
                    1 => Event::Shutdown,
                    2 if m.state() == SeatState::Online => {
                        borrowed("b", now + 1 + rng.below(14 * DAY as u64) as i64)
                    }
                    3 => Event::BorrowReturned,
                    _ => Event::Due,
                },
            };
            // The token the engine holds, as the events hand it over.
            let before = (m.state(), m.offline_since());
            match &event {
                Event::Granted(g) => token_until = Some(g.token_until),
                Event::HeartbeatOk { token_until: t, .. } if before.0 == SeatState::Online => {
                    token_until = Some(*t)
                }
                Event::Unreachable { token_until: t, .. } if before.0 == SeatState::Acquiring => {
                    token_until = *t
                }
                Event::Borrowed { until, .. } if before.0 == SeatState::Online => {
                    token_until = Some(*until)
                }
                Event::Revoked | Event::NoSeats { .. } if before.0 != SeatState::Borrowed => {
                    token_until = None
                }
                _ => {}
            }
            let cx = Ctx {
                now,
                jitter: rng.unit(),
            };
            let was_due = event == Event::Due;
            let ok_or_granted = matches!(event, Event::HeartbeatOk { .. } | Event::Granted(_));
            actions = m.handle(cx, event);
            steps += 1;
            seen.insert(m.state());

            // Never a paid tier beyond the token or after the offline grace.
            if m.entitled(now) {
                assert!(m.state() != SeatState::Degraded && m.state() != SeatState::NoSeats);
                assert!(
                    token_until.is_some_and(|t| now < t),
                    "run {run}: a paid tier beyond the token"
                );
                if m.state() == SeatState::Offline {
                    assert!(
                        now < m.grace_until().unwrap(),
                        "run {run}: after grace_until"
                    );
                }
                // Online only while the last proof is younger than a session's TTL,
                // and within the grace of an offline period no heartbeat has ended.
                if m.state() == SeatState::Online {
                    assert!(
                        m.proof_until().is_some_and(|p| now < p),
                        "run {run}: online on a stale proof"
                    );
                    if m.offline_since().is_some() {
                        assert!(now < m.grace_until().unwrap(), "run {run}");
                    }
                }
            }
            // A borrow is remembered exactly while the seat is borrowed, never releases its
            // seat, and holds the tier only until its end.
            assert_eq!(
                m.memory().borrow.is_some(),
                m.state() == SeatState::Borrowed,
                "run {run}"
            );
            if m.state() == SeatState::Borrowed {
                let until = m.borrowed_until().unwrap();
                assert_eq!(m.entitled(now), now < until, "run {run}");
                assert!(
                    !matches!(exchange(&actions), Some(Action::Release { .. })),
                    "run {run}"
                );
                // A restart before its end runs on it again, with no exchange.
                if rng.below(10) == 0 {
                    let mut r = SeatMachine::new(params, m.memory().clone());
                    let a = r.handle(cx, Event::Start);
                    let want = if now < until {
                        SeatState::Borrowed
                    } else {
                        SeatState::Acquiring
                    };
                    assert_eq!(r.state(), want, "run {run}");
                    assert_eq!(exchange(&a).is_some(), now >= until, "run {run}");
                }
            }
            // Only a heartbeat's proof ends an offline period (or a borrow, which the
            // server answers with a token bound to its nonce as a heartbeat is).
            if before.1.is_some() && m.offline_since().is_none() {
                assert!(
                    ok_or_granted
                        || m.state() == SeatState::Borrowed
                        || m.state() == SeatState::OfflinePlan
                        || m.state() == SeatState::NoSeats
                        || m.state() == SeatState::Acquiring,
                    "run {run}"
                );
            }
            // Failures reset on success.
            if ok_or_granted && before.0 != SeatState::Offline && before.0 != SeatState::Degraded {
                assert_eq!(m.heartbeat_failures(), 0, "run {run}");
            }
            // offline_since stays fixed while offline.
            if before.0 == SeatState::Offline && m.state() == SeatState::Offline {
                assert_eq!(m.offline_since(), before.1, "run {run}");
            }
            // Backoff never above the reconnect interval.
            if let Some(at) = m.next_reconnect_at() {
                if matches!(m.state(), SeatState::Offline | SeatState::Degraded) && at > now {
                    assert!(at - now <= params.reconnect_cap_ms.max(1), "run {run}");
                }
            }
            // After Due nothing is left overdue: the worker never spins.
            if was_due && exchange(&actions).is_none() {
                assert!(
                    m.next_deadline().is_none_or(|d| d > now),
                    "run {run}: {m:?}"
                );
            }
            // A restart from what was persisted keeps offline_since.
            if m.state() == SeatState::Offline && rng.below(20) == 0 {
                let mut r = SeatMachine::new(params, m.memory().clone());
                r.handle(cx, Event::Start);
                r.handle(cx, unreachable(Some(now + DAY)));
                assert_eq!(r.offline_since(), m.offline_since(), "run {run}");
            }
        }
    }
    assert_eq!(seen.len(), 7, "every state reached: {seen:?}");
    assert!(steps >= 80_000);
}
