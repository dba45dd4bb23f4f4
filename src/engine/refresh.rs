//! The refresh schedule (`docs/explanation/tier.md`) and one refresh exchange.
//!
//! [`Schedule`] is pure: it takes the time, the settings and the expiry of the token in
//! use, and says when to refresh next — periodically, at once when a token enters the
//! expiring-soon window, with backoff for failures inside the window. All deadlines are
//! wall-clock milliseconds from the engine's clock.

use std::time::Duration;

use super::exchange::{SEAT_AUTO_MESSAGE, SEAT_REQUIRED_REASON};
use super::{lock, EngineError, Failure, InitFetch, Shared, Source};
use crate::backend::Backend;
use crate::clock::rfc3339;
use crate::config::SeatChoice;
use crate::log::Level;

/// First retry delay inside the expiring-soon window.
const FIRST_BACKOFF_MS: i64 = 60_000;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The settings a schedule follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timing {
    /// `refresh.enabled`.
    pub enabled: bool,
    /// `refresh.interval`.
    pub interval: i64,
    /// `refresh.force-before-expiry`.
    pub window: i64,
}

impl Timing {
    fn in_window(&self, now: i64, exp: Option<i64>) -> bool {
        exp.is_some_and(|e| e.saturating_sub(now) < self.window)
    }

    /// The moment a token expiring at `exp` enters the window, when that is still ahead.
    /// A token received already inside the window never "enters" it, so short-lived
    /// tokens do not cause a refresh storm.
    fn window_entry(&self, now: i64, exp: Option<i64>) -> Option<i64> {
        let at = exp?.saturating_sub(self.window);
        (at > now).then_some(at)
    }
}

/// When the next refresh happens.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Schedule {
    /// Next refresh attempt.
    next: Option<i64>,
    /// Delay before the next retry inside the expiring-soon window (0: none yet).
    backoff: i64,
    /// When the token in use enters the expiring-soon window, if it has yet to.
    window_at: Option<i64>,
}

impl Schedule {
    /// The first refresh after init; empty when there is nothing to refresh from.
    pub(super) fn initial(
        t: Timing,
        has_target: bool,
        init: InitFetch,
        now: i64,
        exp: Option<i64>,
    ) -> Schedule {
        let mut s = Schedule::default();
        if !(t.enabled && has_target) {
            return s;
        }
        s.next = Some(match init {
            InitFetch::Succeeded => now.saturating_add(t.interval),
            // The attempt at init counts as the first one inside the window.
            InitFetch::Failed if t.in_window(now, exp) => {
                s.backoff = FIRST_BACKOFF_MS.min(t.interval);
                now.saturating_add(s.backoff)
            }
            InitFetch::Failed => now.saturating_add(t.interval),
            InitFetch::NotTried if t.in_window(now, exp) => now,
            InitFetch::NotTried => now.saturating_add(t.interval),
        });
        s.window_at = t.window_entry(now, exp);
        s
    }

    /// When the worker must wake for this schedule.
    pub(super) fn wake(&self) -> Option<i64> {
        [self.next, self.window_at].into_iter().flatten().min()
    }

    /// The next scheduled refresh.
    pub(super) fn next(&self) -> Option<i64> {
        self.next
    }

    /// Whether a refresh is due at `now`; entering the window is consumed here.
    pub(super) fn take_due(&mut self, now: i64) -> bool {
        let window_due = self.window_at.is_some_and(|t| t <= now);
        if window_due {
            self.window_at = None;
        }
        window_due || self.next.is_some_and(|t| t <= now)
    }

    /// A refresh succeeded: the next one a full interval later.
    pub(super) fn succeeded(&mut self, t: Timing, now: i64, exp: Option<i64>) {
        self.backoff = 0;
        self.next = t.enabled.then(|| now.saturating_add(t.interval));
        self.window_at = if t.enabled {
            t.window_entry(now, exp)
        } else {
            None
        };
    }

    /// The license was revoked.
    pub(super) fn revoked(&mut self, t: Timing, now: i64) {
        self.backoff = 0;
        self.next = t.enabled.then(|| now.saturating_add(t.interval));
        self.window_at = None;
    }

    /// A refresh failed: inside the window, retry with backoff (1 min doubling, at most
    /// the interval); outside it, one interval later.
    pub(super) fn failed(&mut self, t: Timing, now: i64, exp: Option<i64>) {
        if !t.enabled {
            return;
        }
        self.backoff = match (t.in_window(now, exp), self.backoff) {
            (false, _) => 0,
            (true, 0) => FIRST_BACKOFF_MS.min(t.interval),
            (true, b) => b.saturating_mul(2).min(t.interval),
        };
        self.next = Some(now.saturating_add(if self.backoff > 0 {
            self.backoff
        } else {
            t.interval
        }));
    }

    /// Nothing left to refresh from.
    pub(super) fn stop(&mut self) {
        *self = Schedule::default();
    }
}

/// What a refresh talks to.
enum Target {
    ApiKey(String),
    Static {
        url: String,
        token: String,
        license_id: String,
    },
}

impl Shared {
    fn timing(&self) -> Timing {
        Timing {
            enabled: self.config.refresh.enabled,
            interval: millis(self.config.refresh.interval),
            window: millis(self.config.refresh.force_before_expiry),
        }
    }

    /// Expiry (ms) of the token in use.
    fn current_exp_ms(&self) -> Option<i64> {
        lock(&self.state)
            .current
            .as_ref()
            .map(|c| c.claims.exp.saturating_mul(1000))
    }

    fn target(&self) -> Option<Target> {
        let st = lock(&self.state);
        match &st.current {
            Some(c) if c.source == Source::Static => {
                c.claims.refresh_url.as_ref().map(|url| Target::Static {
                    url: url.clone(),
                    token: c.token.clone(),
                    license_id: c.claims.sub.clone(),
                })
            }
            _ => self.config.api_key.clone().map(Target::ApiKey),
        }
    }

    fn set_next(&self, sched: &Schedule) {
        lock(&self.state).next_refresh_at = sched.next();
    }

    /// The first refresh after init. Computed before `lic_init` returns so the status
    /// shows `next_refresh_at` at once. In seat mode the seat machine schedules instead.
    pub(super) fn initial_schedule(&self, init: InitFetch) -> Schedule {
        if self.seat_mode() {
            return Schedule::default();
        }
        let sched = Schedule::initial(
            self.timing(),
            self.target().is_some(),
            init,
            self.now_millis(),
            self.current_exp_ms(),
        );
        self.set_next(&sched);
        sched
    }

    /// One refresh: fetch by API key, or POST to the static token's `refresh_url`.
    pub(super) async fn refresh_once(
        &self,
        backend: &mut Option<Backend>,
        sched: &mut Schedule,
    ) -> Result<(), EngineError> {
        let Some(target) = self.target() else {
            // Nothing to refresh from any more (a revoked or lapsed static token): stop
            // the schedule rather than wake for nothing.
            sched.stop();
            self.set_next(sched);
            return Err(EngineError::Unsupported(
                "nothing to refresh from: no API key, and the license in use has no refresh_url"
                    .into(),
            ));
        };
        let result = match &target {
            Target::ApiKey(key) => self
                .fetch(backend, key)
                .await
                .map(|r| Some((r, Source::ApiKey))),
            Target::Static {
                url,
                token,
                license_id,
            } => self
                .refresh_static(backend, url, token, license_id)
                .await
                .map(|r| r.map(|r| (r, Source::Static))),
        };
        let now = self.now_millis();
        let timing = self.timing();
        let outcome = match result {
            Ok(fresh) => {
                if let Some(((token, checked), source)) = fresh {
                    self.log.info(&format!(
                        "License refreshed: {} (license {}, expires {})",
                        checked.claims.tier,
                        checked.claims.sub,
                        rfc3339(checked.claims.exp)
                    ));
                    self.adopt(token, checked, source, None);
                } else {
                    self.log.debug("License refresh: unchanged");
                }
                sched.succeeded(timing, now, self.current_exp_ms());
                Ok(())
            }
            Err(Failure::Revoked(message)) => {
                self.revoke(&message);
                sched.revoked(timing, now);
                Err(EngineError::RefreshFailed(format!(
                    "license revoked: {message}"
                )))
            }
            Err(Failure::SeatRequired(message)) if self.config.seat.enabled == SeatChoice::Auto => {
                // The license became seat-counted: from now on the seat machine
                // schedules (the worker starts it when this returns).
                self.log.info(SEAT_AUTO_MESSAGE);
                self.log
                    .debug(&format!("license server: {}", crate::log::clean(&message)));
                self.seat_wanted
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                sched.stop();
                Ok(())
            }
            Err(Failure::SeatRequired(_)) => {
                self.decline_seat();
                sched.succeeded(timing, now, None);
                Err(EngineError::RefreshFailed(SEAT_REQUIRED_REASON.into()))
            }
            Err(failure) => {
                let reason = failure.reason();
                self.log
                    .log(Level::Warn, &format!("License refresh failed: {reason}"));
                sched.failed(timing, now, self.current_exp_ms());
                Err(EngineError::RefreshFailed(reason))
            }
        };
        self.set_next(sched);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const H: i64 = 60 * MIN;
    const T: Timing = Timing {
        enabled: true,
        interval: 24 * H,
        window: 48 * H,
    };

    #[test]
    fn first_refresh_after_init() {
        let now = 1_000 * H;
        let far_exp = now + 30 * 24 * H;
        let far = Some(far_exp);
        let soon = Some(now + 10 * H);
        // (init, expiry, next, window entry)
        let cases = [
            (
                InitFetch::Succeeded,
                far,
                Some(now + 24 * H),
                Some(far_exp - 48 * H),
            ),
            (
                InitFetch::NotTried,
                far,
                Some(now + 24 * H),
                Some(far_exp - 48 * H),
            ),
            (
                InitFetch::Failed,
                far,
                Some(now + 24 * H),
                Some(far_exp - 48 * H),
            ),
            (InitFetch::NotTried, soon, Some(now), None),
            (InitFetch::Failed, soon, Some(now + MIN), None),
            (InitFetch::Succeeded, soon, Some(now + 24 * H), None),
        ];
        for (init, exp, next, window) in cases {
            let s = Schedule::initial(T, true, init, now, exp);
            assert_eq!((s.next, s.window_at), (next, window), "{init:?} {exp:?}");
        }
        assert_eq!(
            Schedule::initial(T, false, InitFetch::NotTried, now, far),
            Schedule::default()
        );
        let off = Timing {
            enabled: false,
            ..T
        };
        assert_eq!(
            Schedule::initial(off, true, InitFetch::NotTried, now, soon),
            Schedule::default()
        );
    }

    #[test]
    fn backoff_inside_the_window_doubles_up_to_the_interval_and_resets_on_success() {
        let now = 1_000 * H;
        let exp = Some(now + 10 * H);
        let mut s = Schedule::initial(T, true, InitFetch::NotTried, now, exp);
        let mut delays = Vec::new();
        let mut t = now;
        for _ in 0..14 {
            s.failed(T, t, exp);
            delays.push(s.next.unwrap() - t);
            t = s.next.unwrap();
        }
        assert_eq!(&delays[..4], &[MIN, 2 * MIN, 4 * MIN, 8 * MIN]);
        assert!(delays.iter().all(|d| *d <= T.interval));
        assert_eq!(*delays.last().unwrap(), T.interval);
        s.succeeded(T, t, Some(t + 24 * H));
        assert_eq!((s.next, s.backoff), (Some(t + 24 * H), 0));
        // Outside the window a failure waits a full interval.
        s.failed(T, t, Some(t + 30 * 24 * H));
        assert_eq!(s.next, Some(t + 24 * H));
    }

    #[test]
    fn entering_the_window_is_due_once() {
        let now = 0;
        let mut s = Schedule::initial(T, true, InitFetch::Succeeded, now, Some(60 * H));
        assert_eq!(s.wake(), Some(12 * H));
        assert!(!s.take_due(11 * H));
        assert!(s.take_due(12 * H));
        assert!(!s.take_due(12 * H), "consumed");
        s.revoked(T, 12 * H);
        assert_eq!((s.next, s.window_at), (Some(36 * H), None));
        s.stop();
        assert_eq!(s.wake(), None);
    }
}
