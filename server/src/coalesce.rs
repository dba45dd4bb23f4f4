//! Bounds on what one customer can make the server store: repeated refusals of a license
//! are coalesced into one audit entry per kind and minute (the first as it came, then one
//! entry counting the rest), and offline periods reported without a session of this
//! server's are kept at most [`MAX_REPORTS_PER_HOUR`] a license and hour. Pure: time is
//! passed in (seconds); per instance, in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::AuditEvent;

/// Offline periods kept from reports without a known session, per license and hour.
pub const MAX_REPORTS_PER_HOUR: u32 = 60;
/// Windows kept; past it every window is closed (its count written) at once.
const MAX_WINDOWS: usize = 100_000;

/// The refusals of one license and kind in one minute.
#[derive(Debug, Clone)]
struct Window {
    minute: i64,
    first: AuditEvent,
    more: u64,
}

impl Window {
    /// The entry that counts the refusals after the first, if there were any.
    fn summary(&self) -> Option<AuditEvent> {
        (self.more > 0).then(|| AuditEvent {
            at: self.minute * 60 + 59,
            detail: Some(format!(
                "{} more in this minute (coalesced: the first is recorded as it came)",
                self.more
            )),
            ..self.first.clone()
        })
    }
}

/// Repeated refusals, coalesced.
#[derive(Debug, Default)]
pub struct Coalescer {
    windows: Mutex<HashMap<(String, String), Window>>,
}

impl Coalescer {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Window>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entries to write for refusal `e`: itself when it is the first of its license
    /// and kind this minute (after the count of an earlier minute's, when there is one),
    /// else nothing (it is counted).
    pub fn admit(&self, e: AuditEvent) -> Vec<AuditEvent> {
        let minute = e.at.div_euclid(60);
        let key = (e.license.clone(), e.kind.as_str().to_string());
        let mut windows = self.lock();
        let mut out: Vec<AuditEvent> = Vec::new();
        if windows.len() >= MAX_WINDOWS && !windows.contains_key(&key) {
            out.extend(windows.drain().filter_map(|(_, w)| w.summary()));
        }
        match windows.get_mut(&key) {
            Some(w) if w.minute == minute => {
                w.more += 1;
            }
            Some(w) => {
                out.extend(w.summary());
                *w = Window {
                    minute,
                    first: e.clone(),
                    more: 0,
                };
                out.push(e);
            }
            None => {
                windows.insert(
                    key,
                    Window {
                        minute,
                        first: e.clone(),
                        more: 0,
                    },
                );
                out.push(e);
            }
        }
        out
    }

    /// Every count still held, to write (at shutdown); the windows go.
    pub fn drain(&self) -> Vec<AuditEvent> {
        self.lock()
            .drain()
            .filter_map(|(_, w)| w.summary())
            .collect()
    }

    /// The counts of the minutes that ended before `now`, to write; their windows go.
    pub fn due(&self, now: i64) -> Vec<AuditEvent> {
        let minute = now.div_euclid(60);
        let mut out = Vec::new();
        self.lock().retain(|_, w| {
            if w.minute < minute {
                out.extend(w.summary());
                false
            } else {
                true
            }
        });
        out
    }
}

/// Offline reports kept per license and hour.
#[derive(Debug, Default)]
pub struct ReportBudget {
    kept: Mutex<HashMap<String, (i64, u32)>>,
}

impl ReportBudget {
    /// Whether one more report of `license` is kept at `now`.
    pub fn take(&self, license: &str, now: i64) -> bool {
        let hour = now.div_euclid(3600);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= MAX_WINDOWS && !kept.contains_key(license) {
            kept.retain(|_, (h, _)| *h == hour);
        }
        let entry = kept.entry(license.to_string()).or_insert((hour, 0));
        if entry.0 != hour {
            *entry = (hour, 0);
        }
        if entry.1 >= MAX_REPORTS_PER_HOUR {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditKind;

    fn refused(license: &str, at: i64) -> AuditEvent {
        AuditEvent {
            at,
            kind: AuditKind::Refused,
            license: license.into(),
            detail: Some(format!("at {at}")),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn the_first_refusal_of_a_minute_is_written_and_the_rest_counted() {
        let c = Coalescer::default();
        let t = 1_000_020; // a minute's first second (16 667 × 60)
        assert_eq!(c.admit(refused("a", t)).len(), 1);
        for i in 1..=500 {
            assert!(c.admit(refused("a", t + i % 30)).is_empty());
        }
        // Another license, or another kind, has its own window.
        assert_eq!(c.admit(refused("b", t)).len(), 1);
        let mut other = refused("a", t);
        other.kind = AuditKind::TooSoon;
        assert_eq!(c.admit(other).len(), 1);
        // Nothing is due within the minute.
        assert!(c.due(t + 30).is_empty());
        // The next minute's first refusal writes the count of the last, then itself.
        let next = c.admit(refused("a", t + 60));
        assert_eq!(next.len(), 2);
        assert_eq!(next[0].at, 1_000_079, "the last second of its minute");
        assert_eq!(
            next[0].detail.as_deref(),
            Some("500 more in this minute (coalesced: the first is recorded as it came)")
        );
        assert_eq!(next[1].detail.as_deref(), Some("at 1000080"));
        // A sweep after the minute writes the counts left.
        for _ in 0..3 {
            c.admit(refused("a", t + 61));
        }
        let due = c.due(t + 200);
        assert_eq!(due.len(), 1, "only windows with a count: {due:?}");
        assert!(due[0].detail.as_deref().unwrap().starts_with("3 more"));
        assert!(c.due(t + 300).is_empty(), "written once");
        // At shutdown the counts of the minute under way are written too.
        c.admit(refused("a", t + 400));
        c.admit(refused("a", t + 401));
        let left = c.drain();
        assert_eq!(left.len(), 1);
        assert!(left[0].detail.as_deref().unwrap().starts_with("1 more"));
    }

    #[test]
    fn many_licenses_cannot_grow_it_without_bound() {
        let c = Coalescer::default();
        for i in 0..(MAX_WINDOWS + 10) {
            c.admit(refused(&format!("l{i}"), 0));
        }
        assert!(c.lock().len() <= MAX_WINDOWS);
    }

    #[test]
    fn reports_are_kept_at_most_sixty_a_license_and_hour() {
        let b = ReportBudget::default();
        let hour = 3600 * 1000;
        let kept = (0..100).filter(|i| b.take("a", hour + i)).count();
        assert_eq!(kept, MAX_REPORTS_PER_HOUR as usize);
        assert!(b.take("b", hour), "another license");
        assert!(b.take("a", hour + 3600), "the next hour");
    }
}
