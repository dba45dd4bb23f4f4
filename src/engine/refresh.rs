//! The worker's schedule: periodic refresh, the expiring-soon window with backoff,
//! refresh on request, and the moment a license leaves its grace period.
//!
//! All deadlines are wall-clock milliseconds from the engine's clock; the worker sleeps
//! on one tokio timer until the earliest of them, so idle it uses no CPU.

use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::{mpsc::UnboundedReceiver, oneshot};

use super::{lock, EngineError, FetchFailure, InitFetch, Shared, Source};
use crate::backend::Backend;
use crate::clock::rfc3339;
use crate::log::Level;

/// Longest the worker sleeps before looking at the clock again: wall time can jump, and
/// the mid-grace reminder is daily.
const MAX_SLEEP_MS: i64 = 86_400_000;
/// First retry delay inside the expiring-soon window.
const FIRST_BACKOFF_MS: i64 = 60_000;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A request to the worker.
pub(super) enum Command {
    RefreshNow(Reply),
}

/// Where the outcome of a requested refresh goes.
pub(super) enum Reply {
    Blocking(mpsc::SyncSender<Result<(), EngineError>>),
    Async(oneshot::Sender<Result<(), EngineError>>),
}

impl Reply {
    fn send(self, r: Result<(), EngineError>) {
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(r);
            }
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
        }
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

#[derive(Debug, Default)]
pub(super) struct Schedule {
    /// Next refresh attempt (ms).
    next: Option<i64>,
    /// Delay before the next retry inside the expiring-soon window (0: none yet).
    backoff: i64,
    /// When the token in use enters the expiring-soon window, if it has yet to.
    window_at: Option<i64>,
}

impl Shared {
    fn interval_ms(&self) -> i64 {
        millis(self.config.refresh.interval)
    }

    fn window_ms(&self) -> i64 {
        millis(self.config.refresh.force_before_expiry)
    }

    /// Expiry (ms) of the token in use.
    fn current_exp_ms(&self) -> Option<i64> {
        lock(&self.state)
            .current
            .as_ref()
            .map(|c| c.claims.exp.saturating_mul(1000))
    }

    fn in_window(&self, now: i64) -> bool {
        self.current_exp_ms()
            .is_some_and(|exp| exp.saturating_sub(now) < self.window_ms())
    }

    /// The moment the token in use enters the window, when that is still ahead. A token
    /// received already inside the window never "enters" it, so short-lived tokens do not
    /// cause a refresh storm.
    fn window_entry(&self, now: i64) -> Option<i64> {
        let at = self.current_exp_ms()?.saturating_sub(self.window_ms());
        (at > now).then_some(at)
    }

    fn grace_end_ms(&self) -> Option<i64> {
        let st = lock(&self.state);
        let c = st.current.as_ref()?;
        Some(self.policy.end_of_grace(c.claims.exp).saturating_mul(1000))
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
        lock(&self.state).next_refresh_at = sched.next;
    }

    /// The first refresh after init. Computed before `lic_init` returns so the status
    /// shows `next_refresh_at` at once.
    pub(super) fn initial_schedule(&self, init: InitFetch) -> Schedule {
        let mut sched = Schedule::default();
        let now = self.clock.now_millis();
        if self.config.refresh.enabled && self.target().is_some() {
            sched.next = Some(match init {
                InitFetch::Succeeded => now + self.interval_ms(),
                // The attempt at init counts as the first one inside the window.
                InitFetch::Failed if self.in_window(now) => {
                    sched.backoff = FIRST_BACKOFF_MS.min(self.interval_ms());
                    now + sched.backoff
                }
                InitFetch::Failed => now + self.interval_ms(),
                InitFetch::NotTried if self.in_window(now) => now,
                InitFetch::NotTried => now + self.interval_ms(),
            });
            sched.window_at = self.window_entry(now);
        }
        self.set_next(&sched);
        sched
    }

    /// The worker's main loop; returns when `stop` fires or the engine is dropped.
    pub(super) async fn run(
        &self,
        mut stop: oneshot::Receiver<()>,
        mut commands: UnboundedReceiver<Command>,
        mut backend: Option<Backend>,
        mut sched: Schedule,
    ) {
        let enabled = self.config.refresh.enabled;
        loop {
            let now = self.clock.now_millis();
            let wake = [
                sched.next,
                sched.window_at,
                self.grace_end_ms(),
                Some(now.saturating_add(MAX_SLEEP_MS)),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now);
            let sleep = Duration::from_millis(wake.saturating_sub(now).max(0) as u64);
            tokio::select! {
                biased;
                _ = &mut stop => return,
                cmd = commands.recv() => match cmd {
                    Some(Command::RefreshNow(reply)) => {
                        let r = self.refresh_once(&mut backend, &mut sched).await;
                        reply.send(r);
                        continue;
                    }
                    None => return,
                },
                _ = tokio::time::sleep(sleep) => {}
            }
            self.reassess();
            if !enabled {
                continue;
            }
            let now = self.clock.now_millis();
            let window_due = sched.window_at.is_some_and(|t| t <= now);
            if window_due {
                sched.window_at = None;
            }
            if window_due || sched.next.is_some_and(|t| t <= now) {
                let _ = self.refresh_once(&mut backend, &mut sched).await;
            }
        }
    }

    /// One refresh: fetch by API key, or POST to the static token's `refresh_url`.
    async fn refresh_once(
        &self,
        backend: &mut Option<Backend>,
        sched: &mut Schedule,
    ) -> Result<(), EngineError> {
        let Some(target) = self.target() else {
            // Nothing to refresh from any more (a revoked or lapsed static token): stop
            // the schedule rather than wake for nothing.
            sched.next = None;
            sched.window_at = None;
            self.set_next(sched);
            return Err(EngineError::Unsupported(
                "no API key, and the license in use has no refresh_url".into(),
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
        let now = self.clock.now_millis();
        let interval = self.interval_ms();
        let enabled = self.config.refresh.enabled;
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
                sched.backoff = 0;
                sched.next = enabled.then_some(now + interval);
                sched.window_at = if enabled {
                    self.window_entry(now)
                } else {
                    None
                };
                Ok(())
            }
            Err(FetchFailure::Revoked(message)) => {
                self.revoke(&message);
                sched.backoff = 0;
                sched.next = enabled.then_some(now + interval);
                sched.window_at = None;
                Err(EngineError::RefreshFailed(format!(
                    "license revoked: {message}"
                )))
            }
            Err(FetchFailure::Other(reason)) => {
                self.log
                    .log(Level::Warn, &format!("License refresh failed: {reason}"));
                if enabled {
                    sched.backoff = match (self.in_window(now), sched.backoff) {
                        (false, _) => 0,
                        (true, 0) => FIRST_BACKOFF_MS.min(interval),
                        (true, b) => b.saturating_mul(2).min(interval),
                    };
                    sched.next = Some(
                        now + if sched.backoff > 0 {
                            sched.backoff
                        } else {
                            interval
                        },
                    );
                }
                Err(EngineError::RefreshFailed(reason))
            }
        };
        self.set_next(sched);
        outcome
    }
}
