//! Wall-clock time behind one trait, so tests can simulate days in milliseconds, and the
//! clock ledger: the high-water mark that keeps a clock set back from extending a
//! license.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in milliseconds since the Unix epoch, and of monotonic
/// time, which no one can set back.
pub trait Clock: Send + Sync {
    /// Current wall-clock time in milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    /// Milliseconds since a fixed point of this process; never decreases, whatever is
    /// done to the wall clock.
    fn monotonic_millis(&self) -> i64;

    /// Current wall-clock time in whole seconds since the Unix epoch.
    fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // A clock before 1970 is broken; report the epoch rather than a negative time.
            Err(_) => 0,
        }
    }

    fn monotonic_millis(&self) -> i64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        i64::try_from(origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
    monotonic: AtomicI64,
}

impl ManualClock {
    /// A clock reading `millis` since the epoch.
    pub fn new(millis: i64) -> Self {
        ManualClock {
            millis: AtomicI64::new(millis),
            monotonic: AtomicI64::new(0),
        }
    }

    /// A clock reading `secs` since the epoch.
    pub fn at_secs(secs: i64) -> Self {
        Self::new(secs.saturating_mul(1000))
    }

    /// Sets the wall clock, as an operator would; monotonic time does not move.
    pub fn set_millis(&self, millis: i64) {
        self.millis.store(millis, Ordering::SeqCst);
    }

    /// Lets time pass (both clocks move); a negative value sets the wall clock back
    /// instead, leaving monotonic time where it is.
    pub fn advance_millis(&self, delta: i64) {
        self.millis.fetch_add(delta, Ordering::SeqCst);
        if delta > 0 {
            self.monotonic.fetch_add(delta, Ordering::SeqCst);
        }
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
    }

    fn monotonic_millis(&self) -> i64 {
        self.monotonic.load(Ordering::SeqCst)
    }
}

/// A wall clock read more than this before the mark is not believed.
pub const BEHIND_TOLERANCE_MS: i64 = 3_600_000;
/// The mark is persisted when it has moved this much since it last was.
pub const WRITE_STEP_MS: i64 = 3_600_000;
/// A persisted mark (or a token's `iat`) further than this ahead of the wall clock is
/// not believed: a hand-edited mark in the far future would otherwise expire every
/// license.
pub const MAX_AHEAD_MS: i64 = 366 * 86_400_000;

/// The clock ledger (`docs/explanation/time.md`): the latest time the engine has trusted. It moves with
/// the wall clock, with every valid token's `iat`, and, while the process runs, with
/// monotonic time, so setting the wall clock back, before a restart or during a run,
/// never moves license time back. Pure: times are passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ledger {
    /// The high-water mark, wall ms, as of `anchor`.
    mark: i64,
    /// Monotonic ms when `mark` was set; the mark runs on from there.
    anchor: i64,
    /// The mark as last persisted.
    written: Option<i64>,
}

/// One reading of time through the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// The time to judge expiry by (ms).
    pub effective: i64,
    /// The wall clock reads more than [`BEHIND_TOLERANCE_MS`] before the mark.
    pub behind: bool,
}

impl Ledger {
    /// A ledger at start: the persisted mark (when there is one and it is believable)
    /// and the wall clock, at monotonic time `mono`. Also says why a persisted mark was
    /// set aside.
    pub fn start(persisted: Option<i64>, wall: i64, mono: i64) -> (Ledger, Option<String>) {
        let (mark, why) = match persisted {
            Some(m) if m > wall.saturating_add(MAX_AHEAD_MS) => (
                wall,
                Some(format!(
                    "the clock mark in state.json ({}) is implausibly far ahead; not used",
                    rfc3339(m.div_euclid(1000))
                )),
            ),
            Some(m) => (m.max(wall), None),
            None => (wall, None),
        };
        (
            Ledger {
                mark,
                anchor: mono,
                // A mark set aside is replaced at the first write.
                written: persisted.filter(|_| why.is_none()),
            },
            why,
        )
    }

    /// The mark now: where it was set, plus the monotonic time since.
    pub fn mark(&self, mono: i64) -> i64 {
        self.mark
            .saturating_add(mono.saturating_sub(self.anchor).max(0))
    }

    /// Reads time: the wall clock, unless it is more than an hour behind the mark, when
    /// the mark is used. A wall clock ahead of the mark raises it.
    pub fn observe(&mut self, wall: i64, mono: i64) -> Reading {
        let mark = self.mark(mono);
        if wall >= mark {
            self.mark = wall;
            self.anchor = mono;
            Reading {
                effective: wall,
                behind: false,
            }
        } else if mark - wall > BEHIND_TOLERANCE_MS {
            Reading {
                effective: mark,
                behind: true,
            }
        } else {
            Reading {
                effective: wall,
                behind: false,
            }
        }
    }

    /// A valid token was issued at `iat_secs`: time is at least that. (The signature
    /// vouches for it, so it is believed however far the wall clock was set back.)
    pub fn trust(&mut self, iat_secs: i64, mono: i64) {
        let iat = iat_secs.saturating_mul(1000);
        if iat > self.mark(mono) {
            self.mark = iat;
            self.anchor = mono;
        }
    }

    /// The mark to persist now, when it has moved an hour or more since it last was
    /// (`force`: at shutdown, whenever it moved at all).
    pub fn due(&self, mono: i64, force: bool) -> Option<i64> {
        let m = self.mark(mono);
        match self.written {
            None => Some(m),
            Some(w) if m - w >= WRITE_STEP_MS || (force && m > w) => Some(m),
            Some(_) => None,
        }
    }

    /// Records that `mark` was persisted (or that the file holds at least it).
    pub fn persisted(&mut self, mark: i64) {
        self.written = Some(self.written.map_or(mark, |w| w.max(mark)));
    }
}

/// Formats seconds since the epoch as RFC 3339 in UTC (`2026-11-22T13:29:12Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        y,
        m,
        d,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC, with milliseconds.
pub fn rfc3339_millis(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let base = rfc3339(secs);
    format!("{}.{:03}Z", &base[..base.len() - 1], ms)
}

/// Parses an RFC 3339 instant (`2026-11-22T13:29:12Z`, `…12.5Z`, `…12+02:00`) into
/// milliseconds since the epoch; `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start || i - start > 9 {
            return None;
        }
        let frac = &s.trim()[start..i];
        millis = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = (oh * 60 + om) * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs * 1000 + millis)
}

// The inverse of civil_from_days (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// Howard Hinnant's days-to-civil algorithm: exact for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::{Ledger, Reading, MAX_AHEAD_MS};

    const H: i64 = 3_600_000;
    const T: i64 = 1_795_354_152_000;

    #[test]
    fn ledger_readings_table() {
        // (persisted mark, wall at start, then [(wall, mono, effective, behind)])
        type Step = (i64, i64, i64, bool);
        let cases: Vec<(Option<i64>, i64, Vec<Step>)> = vec![
            // No history: the wall clock is the time.
            (None, T, vec![(T, 0, T, false), (T + H, H, T + H, false)]),
            // Set back by less than the tolerance: believed.
            (Some(T), T - H / 2, vec![(T - H / 2, 0, T - H / 2, false)]),
            // Set back by a day across a restart: the mark is used, and runs on with
            // monotonic time.
            (
                Some(T),
                T - 24 * H,
                vec![(T - 24 * H, 0, T, true), (T - 23 * H, H, T + H, true)],
            ),
            // The wall clock catches up: it is believed again and raises the mark.
            (
                Some(T),
                T - 2 * H,
                vec![
                    (T + 2 * H, H, T + 2 * H, false),
                    (T + 2 * H, H, T + 2 * H, false),
                ],
            ),
            // Set back while running: the mark keeps running on monotonic time.
            (
                None,
                T,
                vec![
                    (T, 0, T, false),
                    (T - 48 * H, H, T + H, true),
                    (T - 47 * H, 2 * H, T + 2 * H, true),
                ],
            ),
            // A mark implausibly far ahead is not used.
            (Some(T + MAX_AHEAD_MS + H), T, vec![(T, 0, T, false)]),
        ];
        for (i, (persisted, start, steps)) in cases.into_iter().enumerate() {
            let (mut l, _) = Ledger::start(persisted, start, 0);
            for (wall, mono, effective, behind) in steps {
                assert_eq!(
                    l.observe(wall, mono),
                    Reading { effective, behind },
                    "case {i} at wall {wall} mono {mono}"
                );
            }
        }
    }

    #[test]
    fn ledger_trusts_iat_and_writes_by_the_hour() {
        let (mut l, why) = Ledger::start(None, T - 10 * 24 * H, 0);
        assert!(why.is_none());
        // A token issued at T vouches for T, however far back the wall clock is.
        l.trust(T / 1000, 0);
        assert_eq!(
            l.observe(T - 10 * 24 * H, 0),
            Reading {
                effective: T,
                behind: true
            }
        );
        assert_eq!(l.due(0, false), Some(T), "never written: due");
        l.persisted(T);
        assert_eq!(l.due(H - 1, false), None, "moved less than an hour");
        assert_eq!(
            l.due(H - 1, true),
            Some(T + H - 1),
            "at shutdown: whenever it moved"
        );
        assert_eq!(l.due(H, false), Some(T + H));
        // An older iat changes nothing.
        l.trust(T / 1000 - 3600, H);
        assert_eq!(l.mark(H), T + H);
        let (_, why) = Ledger::start(Some(T + MAX_AHEAD_MS + 1), T, 0);
        assert!(why.unwrap().contains("implausibly far ahead"));
    }

    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_354_152), "2026-11-22T13:29:12Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_millis(1_500), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn parses_what_it_formats_and_refuses_the_rest() {
        for secs in [0, 1_795_354_152, 951_782_400, -86_400, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs * 1000), "{secs}");
        }
        assert_eq!(parse_rfc3339(&rfc3339_millis(1_500)), Some(1_500));
        assert_eq!(
            parse_rfc3339("2026-11-22T15:29:12+02:00"),
            Some(1_795_354_152_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T13:29:12.1234Z"),
            Some(1_795_354_152_123)
        );
        for bad in [
            "",
            "2026-11-22",
            "2026-11-22T13:29:12",
            "2026-13-22T13:29:12Z",
            "2026-11-22T25:29:12Z",
            "2026-11-22T13:29:12.Z",
            "2026-11-22T13:29:12+2:00",
            "２026-11-22T13:29:12Z",
            "2026-11-22T13:29:12Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_secs(100);
        assert_eq!(c.now_secs(), 100);
        c.advance_millis(2_500);
        assert_eq!(c.now_millis(), 102_500);
        c.set_millis(-500);
        assert_eq!(c.now_secs(), -1);
    }
}
