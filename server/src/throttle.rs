//! Throttling failed admin sign-ins per client address: after [`MAX_FAILURES`] wrong
//! tokens within [`WINDOW_SECS`], the address is refused (`429`) until the window it
//! started ends, whatever it sends. Pure: time is passed in (seconds).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Wrong tokens an address may send in one window.
pub const MAX_FAILURES: u32 = 10;
/// The window, in seconds.
pub const WINDOW_SECS: i64 = 60;
/// Addresses remembered; past it the windows that ended are forgotten first, then all.
const MAX_ADDRESSES: usize = 100_000;

/// One address's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: i64,
    failures: u32,
}

/// Failed attempts per address.
#[derive(Debug, Default)]
pub struct Throttle {
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(seconds to wait)` when `ip` is refused at `now`; checked before the token is.
    pub fn check(&self, ip: IpAddr, now: i64) -> Result<(), i64> {
        match self.lock().get(&ip) {
            Some(w) if now - w.start < WINDOW_SECS && w.failures >= MAX_FAILURES => {
                Err((w.start + WINDOW_SECS - now).max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a wrong token from `ip` at `now`.
    pub fn failed(&self, ip: IpAddr, now: i64) {
        let mut map = self.lock();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, w| now - w.start < WINDOW_SECS);
            if map.len() >= MAX_ADDRESSES {
                map.clear();
            }
        }
        let w = map.entry(ip).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now - w.start >= WINDOW_SECS {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_a_minute_then_refused_until_the_window_ends() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        // (seconds, failures so far) → refused?
        for i in 0..MAX_FAILURES {
            assert_eq!(t.check(a, i as i64), Ok(()), "attempt {i}");
            t.failed(a, i as i64);
        }
        assert_eq!(t.check(a, 10), Err(50));
        assert_eq!(t.check(a, 59), Err(1));
        assert_eq!(t.check(b, 10), Ok(()), "another address is not affected");
        assert_eq!(t.check(a, 60), Ok(()), "a new window");
        t.failed(a, 60);
        assert_eq!(t.check(a, 61), Ok(()), "one failure in the new window");
    }

    #[test]
    fn many_addresses_cannot_grow_it_without_bound() {
        let t = Throttle::default();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            t.failed(IpAddr::from(i.to_be_bytes()), 0);
        }
        assert!(t.lock().len() <= MAX_ADDRESSES);
    }
}
