//! Wall-clock time behind one trait, so tests can simulate days in milliseconds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Current wall-clock time in milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

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
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    /// A clock reading `millis` since the epoch.
    pub fn new(millis: i64) -> Self {
        ManualClock {
            millis: AtomicI64::new(millis),
        }
    }

    /// A clock reading `secs` since the epoch.
    pub fn at_secs(secs: i64) -> Self {
        Self::new(secs.saturating_mul(1000))
    }

    /// Sets the time.
    pub fn set_millis(&self, millis: i64) {
        self.millis.store(millis, Ordering::SeqCst);
    }

    /// Moves the time forward (or back, with a negative value).
    pub fn advance_millis(&self, delta: i64) {
        self.millis.fetch_add(delta, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
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
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_secs(100);
        assert_eq!(c.now_secs(), 100);
        c.advance_millis(2_500);
        assert_eq!(c.now_millis(), 102_500);
        c.set_millis(-500);
        assert_eq!(c.now_secs(), -1);
    }
}
