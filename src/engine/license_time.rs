//! License time: the wall clock read through the clock ledger ([`Ledger`]), so that a
//! clock set back never moves it back. Every expiry decision of the engine reads it here;
//! the ledger's mark is what `state.json` keeps between runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::lock;
use crate::clock::{self, Clock, Ledger};

pub(super) struct LicenseTime {
    clock: Arc<dyn Clock>,
    ledger: Mutex<Ledger>,
    /// Why the persisted mark was set aside, said once at resolution.
    note: Mutex<Option<String>>,
    /// The last reading was behind the mark (shown in the status).
    behind: AtomicBool,
    /// "System clock moved backwards" was said for the current episode.
    warned: AtomicBool,
    /// Monotonic ms at start, for `uptime_hours`.
    started_at_mono: i64,
}

impl LicenseTime {
    /// Starts from the mark `state.json` kept (`None`: no state, or one not trusted).
    pub(super) fn start(clock: Arc<dyn Clock>, persisted: Option<i64>) -> LicenseTime {
        let mono = clock.monotonic_millis();
        let (ledger, note) = Ledger::start(persisted, clock.now_millis(), mono);
        LicenseTime {
            clock,
            ledger: Mutex::new(ledger),
            note: Mutex::new(note),
            behind: AtomicBool::new(false),
            warned: AtomicBool::new(false),
            started_at_mono: mono,
        }
    }

    /// License time, in ms.
    pub(super) fn now_millis(&self) -> i64 {
        let c = &self.clock;
        let r = lock(&self.ledger).observe(c.now_millis(), c.monotonic_millis());
        self.behind.store(r.behind, Ordering::Relaxed);
        r.effective
    }

    /// License time, in seconds.
    pub(super) fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// What is to be said about the clock now: why the persisted mark was set aside
    /// (once), and, once per episode, that the wall clock reads behind the mark.
    pub(super) fn warnings(&self) -> Vec<String> {
        let mut said: Vec<String> = lock(&self.note).take().into_iter().collect();
        let wall = self.clock.now_millis();
        let effective = self.now_millis();
        if !self.behind.load(Ordering::Relaxed) {
            self.warned.store(false, Ordering::Relaxed);
        } else if !self.warned.swap(true, Ordering::Relaxed) {
            said.push(format!(
                "System clock moved backwards: it reads {}, before {} already seen; license \
                 time follows the latter",
                clock::rfc3339(wall.div_euclid(1000)),
                clock::rfc3339(effective.div_euclid(1000))
            ));
        }
        said
    }

    /// A valid token vouches that time is at least its `iat` (seconds).
    pub(super) fn trust(&self, iat: i64) {
        lock(&self.ledger).trust(iat, self.clock.monotonic_millis());
    }

    /// The ledger's mark now.
    pub(super) fn mark(&self) -> i64 {
        lock(&self.ledger).mark(self.clock.monotonic_millis())
    }

    /// The mark to write to `state.json`, when it has moved an hour since the last one
    /// written (`force`: whenever it moved).
    pub(super) fn due(&self, force: bool) -> Option<i64> {
        lock(&self.ledger).due(self.clock.monotonic_millis(), force)
    }

    /// `mark` was written (or will not be retried before it moves another hour).
    pub(super) fn persisted(&self, mark: i64) {
        lock(&self.ledger).persisted(mark);
    }

    /// The mark now, and whether the wall clock is behind it.
    pub(super) fn view(&self) -> (i64, bool) {
        (self.mark(), self.behind.load(Ordering::Relaxed))
    }

    /// Hours since start, to three decimals.
    pub(super) fn uptime_hours(&self) -> f64 {
        let ms = self
            .clock
            .monotonic_millis()
            .saturating_sub(self.started_at_mono)
            .max(0);
        (ms as f64 / 3_600_000.0 * 1000.0).round() / 1000.0
    }
}
