//! `state.json` as the engine holds it: the file, whether it verified when read, and a
//! failed write said once. A state that does not verify is neither trusted nor written
//! over until the license server answers with a token bound to this engine's request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::lock;
use crate::cache::{CacheDir, TOKEN_FILE};
use crate::state::StateFile;

/// Why `state.json` is not trusted.
#[derive(Debug, Clone)]
pub(super) struct Tamper {
    reason: String,
    /// The file is there (edited, copied, unsealed); else it is missing while a cached
    /// license exists. Only a file that is there keeps the clock from judging a static
    /// token: a machine without one is a new machine.
    present: bool,
}

impl Tamper {
    fn warning(&self) -> String {
        let mut w = format!(
            "State file does not verify ({}): no cached license is used offline",
            self.reason
        );
        if self.present {
            w.push_str(
                ", and no license is judged by this machine's clock, until the license \
                 server answers once or state.json is deleted by hand",
            );
        } else {
            w.push_str(" until the license server answers once");
        }
        w
    }
}

pub(super) struct OnDisk {
    pub(super) file: StateFile,
    tamper: Mutex<Option<Tamper>>,
    write_warned: AtomicBool,
}

impl OnDisk {
    /// Reads `file`: the clock ledger's mark of a state that verifies. A missing state
    /// gives none (only the wall clock and the tokens' `iat` vouch for the time then). A
    /// state that does not verify, or none beside a cached license (deleted), is tampered
    /// with.
    pub(super) fn open(file: StateFile, cache: &CacheDir) -> (OnDisk, Option<i64>) {
        let (mark, tamper) = match file.read_present() {
            Ok(Some(doc)) => (doc.mark(), None),
            Ok(None) if matches!(cache.read(TOKEN_FILE), Ok(Some(_))) => (
                None,
                Some(Tamper {
                    reason: "it is missing while a cached license exists".into(),
                    present: false,
                }),
            ),
            Ok(None) => (None, None),
            Err(e) => (
                None,
                Some(Tamper {
                    reason: e.to_string(),
                    present: true,
                }),
            ),
        };
        let disk = OnDisk {
            file,
            tamper: Mutex::new(tamper),
            write_warned: AtomicBool::new(false),
        };
        (disk, mark)
    }

    /// Whether `state.json` does not verify (and so is neither trusted nor written).
    pub(super) fn tampered(&self) -> bool {
        lock(&self.tamper).is_some()
    }

    /// What the start says of a state that does not verify.
    pub(super) fn tamper_warning(&self) -> Option<String> {
        lock(&self.tamper).as_ref().map(Tamper::warning)
    }

    /// Why no token may be judged by this machine's clock: a state that is there and does
    /// not verify (the clock it protected may have been set back).
    pub(super) fn blocks_the_clock(&self) -> Option<String> {
        lock(&self.tamper)
            .as_ref()
            .filter(|t| t.present)
            .map(|t| format!("state.json does not verify ({})", t.reason))
    }

    /// The license server answered: the state is trusted again. What was held against it.
    pub(super) fn forgive(&self) -> Option<Tamper> {
        lock(&self.tamper).take()
    }

    /// The state could not be sealed anew: `was` holds again.
    pub(super) fn hold_again(&self, was: Option<Tamper>) {
        *lock(&self.tamper) = was;
    }

    /// A write failed: whether it is the first (said once, not at every heartbeat).
    pub(super) fn first_failed_write(&self) -> bool {
        !self.write_warned.swap(true, Ordering::Relaxed)
    }
}
