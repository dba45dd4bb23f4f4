//! How a host thread talks to the worker without leaving anything behind on the host's
//! thread: it queues under a mutex and rings the platform's bell (one `write` on Unix),
//! and waits for answers on a mutex and condition variable. None of these touch a
//! thread-local with a destructor, which on glibc would pin a `dlopen`ed library (see
//! `platform`).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::lock;
use super::worker::Command;
use crate::platform::Bell;

/// How host threads reach the worker: a stop flag and a command queue, and a bell that
/// the worker's runtime waits on.
pub(super) struct Doorbell {
    bell: Bell,
    stop: AtomicBool,
    commands: Mutex<VecDeque<Command>>,
}

impl Doorbell {
    pub(super) fn new() -> io::Result<Self> {
        Ok(Doorbell {
            bell: Bell::new()?,
            stop: AtomicBool::new(false),
            commands: Mutex::new(VecDeque::new()),
        })
    }

    /// Asks the worker to stop.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.bell.ring();
    }

    /// Queues a command for the worker.
    pub(super) fn send(&self, cmd: Command) {
        lock(&self.commands).push_back(cmd);
        self.bell.ring();
    }

    /// Forwards what host threads ring for into the worker's own channels, on the
    /// worker's runtime. Runs until the runtime drops it.
    pub(super) async fn serve(
        &self,
        stop: tokio::sync::watch::Sender<bool>,
        commands: tokio::sync::mpsc::UnboundedSender<Command>,
    ) {
        let mut waiter = self.bell.waiter();
        loop {
            waiter.wait().await;
            let queued: Vec<Command> = lock(&self.commands).drain(..).collect();
            for cmd in queued {
                let _ = commands.send(cmd);
            }
            if self.stop.load(Ordering::Acquire) {
                let _ = stop.send(true);
            }
        }
    }
}

/// A one-shot value passed from the worker to a host thread that blocks for it. The
/// waiter wakes with `None` if the sender is dropped without sending.
pub(super) struct Slot<T> {
    inner: Arc<(Mutex<SlotState<T>>, Condvar)>,
}

struct SlotState<T> {
    value: Option<T>,
    closed: bool,
}

/// The sending half of a [`Slot`].
pub(super) struct SlotSender<T> {
    inner: Arc<(Mutex<SlotState<T>>, Condvar)>,
}

/// A slot and its sender.
pub(super) fn slot<T>() -> (SlotSender<T>, Slot<T>) {
    let inner = Arc::new((
        Mutex::new(SlotState {
            value: None,
            closed: false,
        }),
        Condvar::new(),
    ));
    (
        SlotSender {
            inner: inner.clone(),
        },
        Slot { inner },
    )
}

impl<T> SlotSender<T> {
    /// Hands the value over and wakes the waiter.
    pub(super) fn send(self, v: T) {
        lock(&self.inner.0).value = Some(v);
        // `self` drops here, which closes the slot and notifies.
    }
}

impl<T> Drop for SlotSender<T> {
    fn drop(&mut self) {
        lock(&self.inner.0).closed = true;
        self.inner.1.notify_all();
    }
}

impl<T> Slot<T> {
    /// Blocks until the value arrives, or the sender is gone (`None`).
    pub(super) fn wait(self) -> Option<T> {
        let (m, cv) = &*self.inner;
        let mut st = lock(m);
        loop {
            if let Some(v) = st.value.take() {
                return Some(v);
            }
            if st.closed {
                return None;
            }
            st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_delivers_once_or_reports_the_sender_gone() {
        let (tx, rx) = slot();
        let t = std::thread::spawn(move || tx.send(7));
        assert_eq!(rx.wait(), Some(7));
        t.join().unwrap();
        let (tx, rx) = slot::<u8>();
        drop(tx);
        assert_eq!(rx.wait(), None);
    }
}
