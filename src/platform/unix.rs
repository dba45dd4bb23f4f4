//! Linux (glibc and musl) and macOS.
//!
//! glibc keeps a `dlopen`ed library mapped while any live thread has a thread-local
//! destructor registered from it. A `std::thread::spawn` (spawn hooks), a blocking
//! `std::sync::mpsc` receive (the channel's wait context) and waking a tokio task (the
//! runtime's context) each register one on the calling thread, so a host thread that had
//! once called `lic_init` pinned the library for its lifetime and `dlclose` never
//! unmapped it. Here the worker is a plain pthread and the host rings it through an
//! eventfd (a pipe on macOS): one `write`, no thread-local with a destructor.

use std::ffi::c_void;
use std::fs::{DirBuilder, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    set_thread_name(&name);
    // Nothing may unwind out of a C start routine.
    if catch_unwind(AssertUnwindSafe(body)).is_err() {
        panicked.store(true, Ordering::Release);
    }
    std::ptr::null_mut()
}

#[cfg(target_os = "macos")]
fn set_thread_name(name: &[u8; 16]) {
    // SAFETY: `name` is NUL-terminated; macOS names only the calling thread.
    unsafe { libc::pthread_setname_np(name.as_ptr().cast()) };
}

#[cfg(not(target_os = "macos"))]
fn set_thread_name(name: &[u8; 16]) {
    // SAFETY: `name` is NUL-terminated and at most 16 bytes, as the call requires.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr().cast()) };
}

/// A joinable OS thread.
pub(crate) struct RawThread {
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
    pub(crate) fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<Self> {
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
    pub(crate) fn is_current(&self) -> bool {
        // SAFETY: both are valid thread ids.
        unsafe { libc::pthread_equal(self.id, libc::pthread_self()) != 0 }
    }

    /// Waits for the thread to end; `Err` when its body panicked.
    pub(crate) fn join(mut self) -> Result<(), ()> {
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

/// A wake-up any thread can ring and the worker's runtime awaits. Rings between two
/// waits coalesce into one wake-up; none is lost.
pub(crate) struct Bell {
    /// Read end (the eventfd itself on Linux).
    read: OwnedFd,
    /// Write end of the pipe where there is no eventfd.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    write: OwnedFd,
}

impl Bell {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Bell {
            // SAFETY: a fresh descriptor that nothing else owns.
            read: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn new() -> io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe writes two descriptors into a live array of two.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            // SAFETY: fcntl on descriptors we own.
            unsafe {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
            }
        }
        Ok(Bell { read, write })
    }

    fn write_fd(&self) -> libc::c_int {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return self.read.as_raw_fd();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return self.write.as_raw_fd();
    }

    /// Wakes the waiter (now, or at its next wait).
    pub(crate) fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter or pipe (EAGAIN) means
        // the worker has not yet read earlier rings, so it will wake anyway.
        unsafe { libc::write(self.write_fd(), (&one as *const u64).cast(), 8) };
    }

    /// What the worker waits on. It lives on the worker's runtime and is dropped there:
    /// dropping a registration touches the runtime's thread-locals, which a host thread
    /// must never do.
    pub(crate) fn waiter(&self) -> Waiter<'_> {
        // SAFETY: the duplicate is an open descriptor that the AsyncFd owns for its whole
        // life.
        let fd = self.read.try_clone().ok().and_then(|dup| unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(dup, tokio::io::Interest::READABLE)
                .ok()
        });
        Waiter {
            fd,
            _bell: std::marker::PhantomData,
        }
    }
}

/// The worker's side of a [`Bell`].
pub(crate) struct Waiter<'a> {
    fd: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
    _bell: std::marker::PhantomData<&'a Bell>,
}

impl Waiter<'_> {
    /// Returns after at least one ring since the last return. Must be awaited on a
    /// runtime with I/O enabled; where the descriptor could not be watched, it returns
    /// every 20 ms so that the caller's flags are still looked at promptly.
    pub(crate) async fn wait(&mut self) {
        let Some(fd) = &self.fd else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        };
        let Ok(mut guard) = fd.readable().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        };
        let mut buf = [0u8; 64];
        // SAFETY: reads at most 64 bytes into a live buffer; on Linux one 8-byte read
        // resets the eventfd counter, a pipe is drained by reading until it is empty.
        while unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
            == buf.len() as isize
        {}
        // A ring after the read sets readiness again (the runtime tracks which event it
        // clears), so no wake-up is lost.
        guard.clear_ready();
    }
}

/// Makes `builder` create directories readable by their owner only (0700).
pub(crate) fn private_dir(builder: &mut DirBuilder) -> &mut DirBuilder {
    builder.mode(0o700)
}

/// Makes `opts` create files readable by their owner only (0600).
pub(crate) fn private_file(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts.mode(0o600)
}

/// Makes `opts` refuse a symbolic link in the last component, and never block on a FIFO
/// swapped in for the file (it does not affect reads of a regular file).
pub(crate) fn open_no_follow(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
}

/// Makes `opts` never block on a FIFO (links are followed).
pub(crate) fn open_no_block(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts.custom_flags(libc::O_NONBLOCK)
}

/// Whether an open failed because [`open_no_follow`] met a symbolic link.
pub(crate) fn is_link_refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// The permission bits of a directory that group or others may write to.
pub(crate) fn writable_by_others(meta: &Metadata) -> Option<u32> {
    let mode = meta.permissions().mode() & 0o7777;
    (mode & 0o022 != 0).then_some(mode)
}

/// Registers `handler` to run in the child after every `fork()`. It runs where only
/// async-signal-safe work is allowed.
pub(crate) fn on_fork_in_child(handler: extern "C" fn()) {
    // SAFETY: registers a handler; the caller's handler only stores atomics.
    unsafe { libc::pthread_atfork(None, None, Some(handler)) };
}

/// The machine's host name, or `unknown-host`.
pub(crate) fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if rc != 0 || end == 0 {
        return "unknown-host".into();
    }
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
