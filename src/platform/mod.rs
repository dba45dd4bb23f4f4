//! What differs between operating systems, behind one small surface: the worker's thread
//! and the bell host threads wake it with, private file modes and opening without
//! following links, the fork guard, and the host name. Everything else in the engine is
//! portable Rust; a port adds one file here.
//!
//! Unix (Linux with glibc or musl, macOS) is the supported family. The Windows variant
//! compiles and is checked in CI so the port does not rot; see the platforms reference.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as os;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as os;

pub(crate) use os::{
    host_name, is_link_refused, on_fork_in_child, open_no_block, open_no_follow, private_dir,
    private_file, writable_by_others, Bell, RawThread,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

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

    #[tokio::test]
    async fn a_ring_before_the_wait_is_not_lost_and_rings_coalesce() {
        let bell = Arc::new(Bell::new().unwrap());
        let mut waiter = bell.waiter();
        bell.ring();
        bell.ring();
        tokio::time::timeout(Duration::from_secs(5), waiter.wait())
            .await
            .expect("a ring made before the wait wakes it");
        // Both rings were consumed by the one wait: the next one sleeps until rung.
        let again = tokio::time::timeout(Duration::from_millis(50), waiter.wait()).await;
        assert!(again.is_err(), "two rings woke the worker twice");
        let b2 = bell.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b2.ring();
        });
        tokio::time::timeout(Duration::from_secs(5), waiter.wait())
            .await
            .expect("a ring from another thread wakes the wait");
        t.join().unwrap();
    }

    #[test]
    fn the_host_name_is_never_empty() {
        assert!(!host_name().is_empty());
    }
}
