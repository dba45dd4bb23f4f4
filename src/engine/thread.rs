//! The worker's OS thread and how a host thread talks to it, without leaving anything
//! behind on the host's threads.
//!
//! glibc keeps a `dlopen`ed library mapped while any live thread has a thread-local
//! destructor registered from it. A `std::thread::spawn` (spawn hooks), a blocking
//! `std::sync::mpsc` receive (the channel's wait context) and waking a tokio task (the
//! runtime's context) each register one on the calling thread, so a host thread that had
//! once called `lic_init` pinned the library for its lifetime and `dlclose` never
//! unmapped it. Here the worker is a plain pthread, the host wakes it through an eventfd
//! (one `write`), and waits on a mutex and condition variable: none of these touch a
//! thread-local with a destructor.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::lock;
use super::worker::Command;

/// Stack of the worker thread (the size `std::thread` gives its threads).
const STACK_BYTES: usize = 2 * 1024 * 1024;

struct Start {
    name: [u8; 16],
    body: Box<dyn FnOnce() + Send>,
    panicked: Arc<AtomicBool>,
}

extern "C" fn trampoline(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Box<Start>` leaked by `spawn`, handed over exactly once.
    let start = unsafe { Box::from_raw(arg.cast::<Start>()) };
    let Start {
        name,
        body,
        panicked,
    } = *start;
    // SAFETY: `name` is NUL-terminated and at most 16 bytes, as the call requires.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr().cast()) };
    // Nothing may unwind out of a C start routine.
    if catch_unwind(AssertUnwindSafe(body)).is_err() {
        panicked.store(true, Ordering::Release);
    }
    std::ptr::null_mut()
}

/// A joinable OS thread.
pub(super) struct RawThread {
    id: libc::pthread_t,
    panicked: Arc<AtomicBool>,
    joined: bool,
}

// SAFETY: a `pthread_t` is a handle that any thread may join or compare; it is an
// integer on glibc and a pointer on musl and macOS, where Rust would not infer `Send`.
// `join` consumes it, so it is joined once, by whichever thread holds it.
unsafe impl Send for RawThread {}

impl RawThread {
    /// Starts `body` on a new thread named `name` (cut to 15 bytes).
    pub(super) fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<Self> {
        let mut cname = [0u8; 16];
        for (d, s) in cname
            .iter_mut()
            .zip(name.bytes().filter(|b| *b != 0).take(15))
        {
            *d = s;
        }
        let panicked = Arc::new(AtomicBool::new(false));
        let start = Box::into_raw(Box::new(Start {
            name: cname,
            body: Box::new(body),
            panicked: panicked.clone(),
        }));
        // SAFETY: attr is initialised before use and destroyed after; `start` is passed
        // to the new thread, or reclaimed here when the thread could not be created.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            let rc = libc::pthread_attr_init(&mut attr);
            if rc != 0 {
                drop(Box::from_raw(start));
                return Err(io::Error::from_raw_os_error(rc));
            }
            libc::pthread_attr_setstacksize(&mut attr, STACK_BYTES);
            let mut id: libc::pthread_t = std::mem::zeroed();
            let rc = libc::pthread_create(&mut id, &attr, trampoline, start.cast());
            libc::pthread_attr_destroy(&mut attr);
            if rc != 0 {
                drop(Box::from_raw(start));
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(RawThread {
                id,
                panicked,
                joined: false,
            })
        }
    }

    /// Whether the calling thread is this one.
    pub(super) fn is_current(&self) -> bool {
        // SAFETY: both are valid thread ids.
        unsafe { libc::pthread_equal(self.id, libc::pthread_self()) != 0 }
    }

    /// Waits for the thread to end; `Err` when its body panicked.
    pub(super) fn join(mut self) -> Result<(), ()> {
        self.joined = true;
        // SAFETY: the thread is joinable and joined once.
        unsafe { libc::pthread_join(self.id, std::ptr::null_mut()) };
        if self.panicked.load(Ordering::Acquire) {
            Err(())
        } else {
            Ok(())
        }
    }
}

impl Drop for RawThread {
    fn drop(&mut self) {
        if !self.joined {
            // SAFETY: a joinable thread that will never be joined.
            unsafe { libc::pthread_detach(self.id) };
        }
    }
}

/// How host threads reach the worker: a stop flag and a command queue, and an eventfd
/// that the worker's runtime watches.
pub(super) struct Doorbell {
    fd: OwnedFd,
    stop: AtomicBool,
    commands: Mutex<VecDeque<Command>>,
}

impl Doorbell {
    pub(super) fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            // SAFETY: a fresh descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            stop: AtomicBool::new(false),
            commands: Mutex::new(VecDeque::new()),
        })
    }

    fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) means the
        // worker has not yet read earlier rings, so it will wake anyway.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Asks the worker to stop.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.ring();
    }

    /// Queues a command for the worker.
    pub(super) fn send(&self, cmd: Command) {
        lock(&self.commands).push_back(cmd);
        self.ring();
    }

    /// Forwards what host threads ring for into the worker's own channels, on the
    /// worker's runtime. Runs until the runtime drops it.
    pub(super) async fn serve(
        &self,
        stop: tokio::sync::watch::Sender<bool>,
        commands: tokio::sync::mpsc::UnboundedSender<Command>,
    ) {
        // SAFETY: the duplicate is an open descriptor that the AsyncFd owns for its whole
        // life.
        let fd = self.fd.try_clone().ok().and_then(|dup| unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(dup, tokio::io::Interest::READABLE)
                .ok()
        });
        loop {
            match &fd {
                Some(fd) => {
                    let Ok(mut guard) = fd.readable().await else {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    };
                    let mut count = 0u64;
                    // SAFETY: reads 8 bytes into a live u64; resets the eventfd counter.
                    unsafe {
                        libc::read(fd.get_ref().as_raw_fd(), (&mut count as *mut u64).cast(), 8)
                    };
                    // A ring after the read sets readiness again (the runtime tracks
                    // which event it clears), so no wake-up is lost.
                    guard.clear_ready();
                }
                // Could not watch the eventfd: look at the flags often enough that
                // shutdown stays prompt.
                None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
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

    #[test]
    fn a_raw_thread_runs_joins_and_reports_a_panic() {
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        let t = RawThread::spawn("lic4es-test", move || r2.store(true, Ordering::SeqCst)).unwrap();
        assert!(!t.is_current());
        assert_eq!(t.join(), Ok(()));
        assert!(ran.load(Ordering::SeqCst));
        // The panic's message reaches the test's output: it says it is meant.
        let t = RawThread::spawn("lic4es-test", || {
            panic!("a deliberate panic: this test checks that join reports it")
        })
        .unwrap();
        assert_eq!(t.join(), Err(()));
    }
}
