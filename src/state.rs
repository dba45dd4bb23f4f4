//! `state.json`: the seat record (and, later, the clock mark) under `cache-dir`.
//!
//! This module is the file's only owner. Every change is a read-modify-write under an
//! advisory lock (`flock` on `state.lock` beside it) followed by an atomic replace, so
//! several processes sharing a `cache-dir` merge their records instead of overwriting
//! each other. Fields this version does not know are kept as they are.
//!
//! Each running engine owns one *slot*: its session and offline period. A slot whose
//! process is gone (a crash, or an exit while offline) is claimed by the next engine that
//! starts, which then reconnects with the old session id so the backend frees that seat
//! at once. The grace and heartbeat interval of the last acquire, and the offline cycles
//! of the last 30 days, are shared by every slot.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cache::{CacheDir, ReadError, WriteError};
use crate::clock::{parse_rfc3339, rfc3339_millis};
use crate::seat::{SeatMemory, CYCLE_WINDOW_MS};

/// The state file.
pub const STATE_FILE: &str = "state.json";
/// The lock file beside it.
pub const LOCK_FILE: &str = "state.lock";

/// Format version written.
const VERSION: u32 = 1;
/// Most slots kept; the oldest idle ones go first.
const MAX_SLOTS: usize = 32;
/// How long to try for the lock before carrying on without the file.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Offline periods older than this are forgotten even if their process never came back.
const SLOT_MAX_AGE_MS: i64 = 90 * 86_400_000;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The lock could not be taken.
    #[error("cannot lock {path}: {reason}")]
    Lock {
        /// The lock file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The document on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateDoc {
    /// Format version.
    #[serde(default)]
    pub version: u32,
    /// Seat records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat: Option<SeatDisk>,
    /// The clock ledger's mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockDisk>,
    /// Fields of other versions, kept untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl StateDoc {
    /// Parses the file's text; why not, cleaned, when it is not a document of this shape.
    pub fn parse(text: &str) -> Result<StateDoc, String> {
        serde_json::from_str(text).map_err(|e| crate::log::clean(&e.to_string()))
    }

    /// The clock mark it holds (ms), if readable.
    pub fn mark(&self) -> Option<i64> {
        self.clock.as_ref().and_then(ClockDisk::mark)
    }
}

/// The clock part of the document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockDisk {
    /// The latest time trusted by any engine sharing the directory (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_water_mark: Option<String>,
    /// Fields of other versions, kept untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ClockDisk {
    fn mark(&self) -> Option<i64> {
        self.high_water_mark.as_deref().and_then(parse_rfc3339)
    }
}

/// The seat part of the document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeatDisk {
    /// Offline grace of the last successful acquire, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<i64>,
    /// Heartbeat interval of the last successful acquire, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<i64>,
    /// When offline mode was entered in the last 30 days (RFC 3339).
    #[serde(default)]
    pub offline_cycles: Vec<String>,
    /// One record per engine.
    #[serde(default)]
    pub slots: Vec<SlotDisk>,
}

/// One engine's seat record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotDisk {
    /// Random id of the slot.
    pub id: String,
    /// Process that owns it.
    pub pid: u32,
    /// The session held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// When offline mode was entered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_since: Option<String>,
}

impl SlotDisk {
    fn is_idle(&self) -> bool {
        self.session_id.is_none() && self.offline_since.is_none()
    }
}

/// A slot claimed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The slot's id.
    pub slot: String,
    /// The seat memory to start from.
    pub memory: SeatMemory,
    /// Why the file on disk was discarded (unreadable or malformed), if it was.
    pub discarded: Option<String>,
}

/// The state file of one `cache-dir`.
#[derive(Debug, Clone)]
pub struct StateFile {
    cache: CacheDir,
}

/// Whether process `pid` exists. A process we may not signal (EPERM) exists too.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn secs_to_ms(s: Option<i64>) -> Option<i64> {
    s.map(|s| s.saturating_mul(1000))
}

impl StateFile {
    /// The state file under `cache`.
    pub fn new(cache: CacheDir) -> StateFile {
        StateFile { cache }
    }

    /// Reads the document; a missing file is an empty document. A file that is not
    /// valid JSON of the right shape is an error (the caller logs it and starts empty).
    pub fn read(&self) -> Result<StateDoc, StateError> {
        match self.cache.read(STATE_FILE)? {
            None => Ok(StateDoc::default()),
            Some(text) => StateDoc::parse(&text).map_err(|reason| {
                StateError::Read(ReadError::Malformed {
                    path: self.cache.path(STATE_FILE),
                    reason,
                })
            }),
        }
    }

    /// The persisted clock mark (ms), when the file holds a readable one.
    pub fn read_mark(&self) -> Result<Option<i64>, StateError> {
        Ok(self.read()?.clock.and_then(|c| c.mark()))
    }

    /// Merges `mark` into the file: the later of it and what the file holds (another
    /// process sharing the directory may have moved it further). Returns the result.
    pub fn merge_mark(&self, mark: i64) -> Result<i64, StateError> {
        self.update_if(|doc| {
            let clock = doc.clock.get_or_insert_with(ClockDisk::default);
            match clock.mark() {
                // An implausible mark (far ahead of ours) is replaced, not kept forever.
                Some(m) if m >= mark && m - mark <= crate::clock::MAX_AHEAD_MS => (m, false),
                _ => {
                    clock.high_water_mark = Some(rfc3339_millis(mark));
                    (mark, true)
                }
            }
        })
    }

    /// Read-modify-write under the lock. An unreadable document is replaced by one that
    /// holds only what `f` puts in.
    pub fn update<R>(&self, f: impl FnOnce(&mut StateDoc) -> R) -> Result<R, StateError> {
        self.update_if(|doc| (f(doc), true))
    }

    /// [`StateFile::update`], writing only when `f` says it changed something (or the
    /// file was unreadable, so that it is replaced by a sound one).
    fn update_if<R>(&self, f: impl FnOnce(&mut StateDoc) -> (R, bool)) -> Result<R, StateError> {
        self.update_inner(f).map(|(r, _)| r)
    }

    /// Also says why the file on disk was discarded, when it was.
    fn update_inner<R>(
        &self,
        f: impl FnOnce(&mut StateDoc) -> (R, bool),
    ) -> Result<(R, Option<String>), StateError> {
        self.cache.ensure()?;
        let _lock = self.lock()?;
        let (mut doc, discarded) = match self.read() {
            Ok(doc) => (doc, None),
            Err(e) => (StateDoc::default(), Some(e.to_string())),
        };
        let (r, changed) = f(&mut doc);
        if changed || discarded.is_some() {
            doc.version = VERSION;
            let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
            self.cache.write(STATE_FILE, &text)?;
        }
        Ok((r, discarded))
    }

    fn lock(&self) -> Result<File, StateError> {
        let path = self.cache.path(LOCK_FILE);
        let err = |reason: String| StateError::Lock {
            path: path.display().to_string(),
            reason,
        };
        // O_NONBLOCK: a FIFO planted here must not block the open.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| err(e.to_string()))?;
        let meta = file.metadata().map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            // SAFETY: flock on a descriptor we own; released when the file is closed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(file);
            }
            if std::time::Instant::now() >= deadline {
                return Err(err("held by another process for too long".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Claims a slot for this process: one left by a process that is gone (or by an
    /// earlier engine of this process), preferring one with a session or an offline
    /// period to carry on with. Returns its id, the memory to start the seat machine
    /// from, and why the file was discarded if it was unreadable. The claim is written
    /// at once, so two engines starting together never take the same slot.
    pub fn claim_slot(
        &self,
        pid: u32,
        now_ms: i64,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<Claim, StateError> {
        let ((slot, memory), discarded) =
            self.update_inner(|doc| claim_in(doc, pid, now_ms, alive))?;
        Ok(Claim {
            slot,
            memory,
            discarded,
        })
    }

    /// Writes this engine's seat memory into its slot, merging the shared parts (grace,
    /// heartbeat interval, offline cycles) with what other processes wrote. A slot left
    /// with nothing in it is removed.
    pub fn save_slot(
        &self,
        slot_id: &str,
        pid: u32,
        mem: &SeatMemory,
        now_ms: i64,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<(), StateError> {
        self.update(|doc| save_in(doc, slot_id, pid, mem, now_ms, alive))
    }
}

/// [`StateFile::claim_slot`] on a document in memory: the slot picked, the memory to
/// start from, and whether the document changed. Pure; public so that the document
/// handling can be fuzzed without the file.
#[doc(hidden)]
pub fn claim_in(
    doc: &mut StateDoc,
    pid: u32,
    now_ms: i64,
    alive: &dyn Fn(u32) -> bool,
) -> ((String, SeatMemory), bool) {
    let before = doc.clone();
    let seat = doc.seat.get_or_insert_with(SeatDisk::default);
    gc(seat, pid, now_ms, alive);
    let free = |s: &SlotDisk| s.pid == pid || !alive(s.pid);
    let pick = seat
        .slots
        .iter()
        .position(|s| free(s) && !s.is_idle())
        .or_else(|| seat.slots.iter().position(free));
    let slot = match pick {
        Some(i) => {
            seat.slots[i].pid = pid;
            seat.slots[i].clone()
        }
        None => SlotDisk {
            id: uuid::Uuid::new_v4().simple().to_string(),
            pid,
            ..SlotDisk::default()
        },
    };
    let mem = SeatMemory {
        session_id: slot.session_id.clone(),
        offline_since: slot.offline_since.as_deref().and_then(parse_rfc3339),
        grace_ms: secs_to_ms(seat.grace_seconds),
        heartbeat_ms: secs_to_ms(seat.heartbeat_interval),
        offline_cycles: cycles(seat, now_ms),
    };
    // Nothing claimed and nothing collected: no write (and no fsync) at init.
    if before.seat.is_none() && doc.seat == Some(SeatDisk::default()) {
        doc.seat = None;
    }
    let changed = *doc != before;
    ((slot.id, mem), changed)
}

/// [`StateFile::save_slot`] on a document in memory. Pure.
#[doc(hidden)]
pub fn save_in(
    doc: &mut StateDoc,
    slot_id: &str,
    pid: u32,
    mem: &SeatMemory,
    now_ms: i64,
    alive: &dyn Fn(u32) -> bool,
) {
    let seat = doc.seat.get_or_insert_with(SeatDisk::default);
    if let Some(g) = mem.grace_ms {
        seat.grace_seconds = Some(g / 1000);
    }
    if let Some(h) = mem.heartbeat_ms {
        seat.heartbeat_interval = Some(h / 1000);
    }
    let mut all = cycles(seat, now_ms);
    all.extend(mem.offline_cycles.iter().copied());
    all.sort_unstable();
    all.dedup();
    seat.offline_cycles = all.into_iter().map(rfc3339_millis).collect();
    let record = SlotDisk {
        id: slot_id.to_string(),
        pid,
        session_id: mem.session_id.clone(),
        offline_since: mem.offline_since.map(rfc3339_millis),
    };
    seat.slots.retain(|s| s.id != slot_id);
    if !record.is_idle() {
        seat.slots.push(record);
    }
    gc(seat, pid, now_ms, alive);
}

/// The offline cycles recorded on disk that fall within the 30 days before `now`.
fn cycles(seat: &SeatDisk, now_ms: i64) -> Vec<i64> {
    let mut v: Vec<i64> = seat
        .offline_cycles
        .iter()
        .filter_map(|s| parse_rfc3339(s))
        .filter(|t| now_ms.saturating_sub(*t) < CYCLE_WINDOW_MS && *t <= now_ms)
        .collect();
    v.sort_unstable();
    v
}

/// Drops slots that hold nothing and whose process is gone, offline periods too old to
/// matter, and the oldest slots beyond [`MAX_SLOTS`].
fn gc(seat: &mut SeatDisk, pid: u32, now_ms: i64, alive: &dyn Fn(u32) -> bool) {
    seat.slots.retain(|s| {
        let stale = s
            .offline_since
            .as_deref()
            .and_then(parse_rfc3339)
            .is_some_and(|t| now_ms.saturating_sub(t) > SLOT_MAX_AGE_MS);
        let orphan = s.pid != pid && !alive(s.pid);
        !(stale || (orphan && s.is_idle()))
    });
    let extra = seat.slots.len().saturating_sub(MAX_SLOTS);
    seat.slots.drain(..extra);
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_354_152_000;

    fn file() -> (tempfile::TempDir, StateFile) {
        let d = tempfile::tempdir().unwrap();
        let f = StateFile::new(CacheDir::new(d.path().join("c")));
        (d, f)
    }

    #[test]
    fn a_slot_round_trips_and_keeps_unknown_fields() {
        let (_d, f) = file();
        f.update(|doc| {
            doc.other
                .insert("future".into(), serde_json::json!({"mark": 5}));
        })
        .unwrap();
        let Claim {
            slot: id,
            memory: mem,
            ..
        } = f.claim_slot(10, NOW, &|_| false).unwrap();
        assert_eq!(mem, SeatMemory::default());
        let mem = SeatMemory {
            session_id: Some("s-1".into()),
            offline_since: Some(NOW - 5_000),
            grace_ms: Some(7 * 86_400_000),
            heartbeat_ms: Some(300_000),
            offline_cycles: vec![NOW - 5_000],
        };
        f.save_slot(&id, 10, &mem, NOW, &|_| false).unwrap();
        let doc = f.read().unwrap();
        assert_eq!(doc.other["future"]["mark"], 5, "unknown fields survive");
        // The process is gone: the next engine claims the slot and carries on.
        let again = f.claim_slot(11, NOW, &|_| false).unwrap();
        assert_eq!(again.slot, id);
        assert_eq!(again.memory, mem);
    }

    #[test]
    fn a_live_process_keeps_its_slot_and_idle_slots_are_removed() {
        let (_d, f) = file();
        let held = SeatMemory {
            session_id: Some("s-live".into()),
            ..SeatMemory::default()
        };
        let a = f.claim_slot(100, NOW, &|_| true).unwrap().slot;
        f.save_slot(&a, 100, &held, NOW, &|_| true).unwrap();
        let b = f.claim_slot(200, NOW, &|p| p == 100).unwrap();
        assert_ne!(a, b.slot, "a slot whose process runs is not taken");
        assert_eq!(b.memory.session_id, None);
        // Released: the slot holds nothing and disappears.
        f.save_slot(&a, 100, &SeatMemory::default(), NOW, &|_| true)
            .unwrap();
        assert!(f.read().unwrap().seat.unwrap().slots.is_empty());
    }

    #[test]
    fn shared_parts_merge_and_old_cycles_drop() {
        let (_d, f) = file();
        let day = 86_400_000;
        let a = SeatMemory {
            offline_cycles: vec![NOW - 40 * day, NOW - 2 * day],
            grace_ms: Some(3 * day),
            ..SeatMemory::default()
        };
        let b = SeatMemory {
            offline_cycles: vec![NOW - day],
            ..SeatMemory::default()
        };
        f.save_slot("a", 1, &a, NOW, &|_| true).unwrap();
        f.save_slot("b", 2, &b, NOW, &|_| true).unwrap();
        let mem = f.claim_slot(3, NOW, &|_| true).unwrap().memory;
        assert_eq!(mem.offline_cycles, vec![NOW - 2 * day, NOW - day]);
        assert_eq!(mem.grace_ms, Some(3 * day), "kept when b did not set it");
    }

    #[test]
    fn a_corrupt_file_is_an_error_to_read_and_replaced_on_write() {
        let (_d, f) = file();
        crate::cache::CacheDir::new(_d.path().join("c"))
            .write(STATE_FILE, "{\"seat\": {\"slots\": 5}}")
            .unwrap();
        assert!(f.read().is_err());
        let c = f.claim_slot(1, NOW, &|_| false).unwrap();
        assert_eq!(c.memory, SeatMemory::default());
        assert!(c.discarded.unwrap().contains("malformed"));
        assert!(f.read().is_ok(), "replaced by a sound file");
        assert_eq!(f.claim_slot(1, NOW, &|_| false).unwrap().discarded, None);
    }
}
