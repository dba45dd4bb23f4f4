//! The worker: one OS thread running a current-thread tokio runtime, and the one loop
//! that sleeps on one timer until the earliest of the next refresh, heartbeat,
//! reconnect, end of a grace period, or a command. Every exchange races shutdown, so
//! `lic_shutdown` is bounded even while a request hangs; a held seat is then released
//! within `seat.release-timeout`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{oneshot, watch};

use super::refresh::Schedule;
use super::thread::{Doorbell, SlotSender};
use super::{EngineError, Shared};
use crate::backend::Backend;
use crate::seat::Event;

/// Longest the worker sleeps before looking at the clock again: wall time can jump, the
/// mid-grace reminder is daily, and the clock mark is persisted by the hour.
const MAX_SLEEP_MS: i64 = 3_600_000;

/// How long the worker waits at shutdown for blocking work (a DNS lookup) to end.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(500);

/// The shutdown signal as the worker sees it.
pub(super) type Stop = watch::Receiver<bool>;

/// A request to the worker.
pub(super) enum Command {
    RefreshNow(Reply),
    /// Check the online seat out for this many seconds.
    Borrow(u64, Reply),
    ReturnBorrow(Reply),
}

/// Where the outcome of a requested refresh goes.
pub(super) enum Reply {
    Blocking(SlotSender<Result<(), EngineError>>),
    Async(oneshot::Sender<Result<(), EngineError>>),
}

impl Reply {
    fn send(self, r: Result<(), EngineError>) {
        match self {
            Reply::Blocking(tx) => tx.send(r),
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

/// Resolves once shutdown is signalled (or the engine is gone).
async fn stopped(stop: &mut Stop) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs `fut` unless shutdown comes first; `None` when it did.
pub(super) async fn race<T>(stop: &mut Stop, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        _ = stopped(stop) => None,
        v = fut => Some(v),
    }
}

pub(super) fn worker_main(
    shared: Arc<Shared>,
    ready: SlotSender<Result<(), String>>,
    bell: Arc<Doorbell>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .thread_keep_alive(Duration::from_secs(1))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ready.send(Err(format!("cannot build the async runtime: {e}")));
            return;
        }
    };
    let body = std::panic::AssertUnwindSafe(async {
        // The channels live on this thread: host threads only ring the doorbell, which
        // forwards into them here.
        let (stop_tx, mut stop) = watch::channel(false);
        let (cmd_tx, commands) = tokio::sync::mpsc::unbounded_channel();
        let work = async {
            let mut backend = None;
            let init = shared.resolve(&mut backend, &mut stop).await;
            let sched = shared.initial_schedule(init);
            shared.note_clock();
            ready.send(Ok(()));
            shared.run(stop, commands, backend, sched).await;
        };
        tokio::select! {
            _ = work => {}
            _ = bell.serve(stop_tx, cmd_tx) => {}
        }
    });
    let outcome = std::panic::catch_unwind(|| rt.block_on(body));
    if outcome.is_err() {
        shared
            .log
            .error("the license worker stopped after an internal error; the tier stays as it was");
    }
    // Outside async context, and bounded, so a hung DNS lookup cannot hold shutdown.
    rt.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
}

impl Shared {
    /// The worker's main loop; returns when shutdown is signalled, after releasing a
    /// held seat.
    pub(super) async fn run(
        &self,
        mut stop: Stop,
        mut commands: UnboundedReceiver<Command>,
        mut backend: Option<Backend>,
        mut sched: Schedule,
    ) {
        loop {
            self.persist_mark(false);
            let now = self.now_millis();
            let wake = [
                sched.wake(),
                self.seat_deadline(),
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
                _ = stopped(&mut stop) => break,
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    let (outcome, reply) = match cmd {
                        Command::RefreshNow(reply) => {
                            let outcome = if self.seat_mode() {
                                self.seat_refresh_now(&mut backend, &mut stop).await
                            } else {
                                match race(&mut stop, self.refresh_once(&mut backend, &mut sched))
                                    .await
                                {
                                    Some(Ok(())) if self.take_seat_wanted() => self
                                        .begin_seat(&mut backend, &mut stop)
                                        .await
                                        .map(|r| r.map_err(EngineError::RefreshFailed)),
                                    other => other,
                                }
                            };
                            (outcome, reply)
                        }
                        Command::Borrow(seconds, reply) => {
                            (self.seat_borrow(seconds, &mut backend, &mut stop).await, reply)
                        }
                        Command::ReturnBorrow(reply) => {
                            (self.seat_return_borrow(&mut backend, &mut stop).await, reply)
                        }
                    };
                    match outcome {
                        Some(r) => reply.send(r),
                        None => {
                            reply.send(Err(EngineError::NotRunning));
                            break;
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep(sleep) => {}
            }
            self.reassess();
            if self.seat_mode() {
                if self
                    .seat_event(Event::Due, &mut backend, &mut stop)
                    .await
                    .is_none()
                {
                    break;
                }
            } else if self.config.refresh.enabled && sched.take_due(self.now_millis()) {
                if race(&mut stop, self.refresh_once(&mut backend, &mut sched))
                    .await
                    .is_none()
                {
                    break;
                }
                if self.take_seat_wanted()
                    && self.begin_seat(&mut backend, &mut stop).await.is_none()
                {
                    break;
                }
            }
        }
        self.seat_shutdown(&mut backend).await;
        self.persist_mark(true);
    }

    /// When the token in use stops counting (ms).
    pub(super) fn grace_end_ms(&self) -> Option<i64> {
        let st = super::lock(&self.state);
        let c = st.current.as_ref()?;
        Some(self.policy.end_of_grace(&c.claims).saturating_mul(1000))
    }
}
