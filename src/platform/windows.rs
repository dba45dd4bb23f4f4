//! Windows (x86-64, mingw). Compiled and checked in CI; not yet tested under Windows
//! itself (the platforms reference says what blocks that).
//!
//! The glibc constraint that shapes the Unix variant (a thread-local destructor pins a
//! `dlopen`ed library) does not apply to `FreeLibrary`, so the worker is a `std` thread
//! and the bell a tokio `Notify`.

use std::fs::{DirBuilder, Metadata, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;

/// Opens a reparse point (a symbolic link or junction) itself instead of its target.
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;

/// A joinable OS thread.
pub(crate) struct RawThread {
    handle: std::thread::JoinHandle<()>,
}

impl RawThread {
    /// Starts `body` on a new thread named `name`.
    pub(crate) fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<Self> {
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(2 * 1024 * 1024)
            .spawn(body)?;
        Ok(RawThread { handle })
    }

    /// Whether the calling thread is this one.
    pub(crate) fn is_current(&self) -> bool {
        self.handle.thread().id() == std::thread::current().id()
    }

    /// Waits for the thread to end; `Err` when its body panicked.
    pub(crate) fn join(self) -> Result<(), ()> {
        self.handle.join().map_err(|_| ())
    }
}

/// A wake-up any thread can ring and the worker's runtime awaits. Rings between two
/// waits coalesce into one wake-up (a `Notify` keeps one permit); none is lost.
pub(crate) struct Bell {
    notify: tokio::sync::Notify,
}

impl Bell {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Bell {
            notify: tokio::sync::Notify::new(),
        })
    }

    /// Wakes the waiter (now, or at its next wait).
    pub(crate) fn ring(&self) {
        self.notify.notify_one();
    }

    /// What the worker waits on.
    pub(crate) fn waiter(&self) -> Waiter<'_> {
        Waiter { bell: self }
    }
}

/// The worker's side of a [`Bell`].
pub(crate) struct Waiter<'a> {
    bell: &'a Bell,
}

impl Waiter<'_> {
    /// Returns after at least one ring since the last return.
    pub(crate) async fn wait(&mut self) {
        self.bell.notify.notified().await;
    }
}

/// Directories get the default ACL of their parent (the user's profile for the default
/// cache directory); there are no mode bits to set.
pub(crate) fn private_dir(builder: &mut DirBuilder) -> &mut DirBuilder {
    builder
}

/// Files get the default ACL of their directory; there are no mode bits to set.
pub(crate) fn private_file(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts
}

/// Makes `opts` open a symbolic link itself, which the caller's "is it a regular file"
/// check then refuses (there are no FIFOs to guard against).
pub(crate) fn open_no_follow(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
}

/// Nothing to add: no FIFO can stand where a file is expected.
pub(crate) fn open_no_block(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts
}

/// A link opened by [`open_no_follow`] is refused by the file-type check instead.
pub(crate) fn is_link_refused(_e: &io::Error) -> bool {
    false
}

/// ACLs are not inspected: the engine does not warn about them.
pub(crate) fn writable_by_others(_meta: &Metadata) -> Option<u32> {
    None
}

/// Windows has no `fork`.
pub(crate) fn on_fork_in_child(_handler: extern "C" fn()) {}

/// The computer's name, or `unknown-host`.
pub(crate) fn host_name() -> String {
    std::env::var("COMPUTERNAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}
