//! `state.json`: the seat record and the clock mark under `cache-dir`, sealed.
//!
//! The file carries a MAC (HMAC-SHA256 over its content) keyed from a key built into the
//! library (a vendor sets its own with `LIC4ES_STATE_KEY` at build time) and the engine's
//! hardware id ([`Seal`]): a state edited by hand, or copied from another machine, does
//! not verify, and is never written over until the license server has answered (see the
//! engine), so deleting or garbling it cannot launder it into a fresh one.
//!
//! This module is the file's only owner. Every change is a read-modify-write under an
//! advisory lock (`flock` on `state.lock` beside it) followed by an atomic replace, so
//! several processes sharing a `cache-dir` merge their records instead of overwriting
//! each other. Fields this version does not know are kept as they are.
//!
//! Each running engine owns one *slot*: its session and offline period. It owns it by a
//! lock it holds while it runs (`flock` on `state.<slot>.lock`), not by process id (every
//! container's first process is pid 1, and one process may run an engine after another).
//! A slot whose lock nobody holds — its engine crashed, exited while offline, or shut down
//! cleanly — is claimed by the next engine that starts, in this process or another, which
//! carries on its offline period or reconnects with its session id so the backend frees
//! that seat at once. The heartbeat interval of the last acquire, and the
//! offline cycles of the last 30 days, are shared by every slot.

use std::fs::{File, OpenOptions};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cache::{CacheDir, ReadError, WriteError};
use crate::clock::{parse_rfc3339, rfc3339_millis};
use crate::platform;
use crate::seat::{Borrow, SeatMemory, CYCLE_WINDOW_MS};

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

/// The key sealed states are keyed from, built in (`LIC4ES_STATE_KEY` at build time; the
/// project's own when unset).
const BUILTIN_STATE_KEY: &str = include_str!(concat!(env!("OUT_DIR"), "/builtin_state_key.txt"));

/// What seals `state.json` to this library and this machine: a key derived from the
/// built-in state key and the engine's hardware id.
#[derive(Clone)]
pub struct Seal {
    key: [u8; 32],
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(..)")
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

impl Seal {
    /// The seal of this library's built-in key for `hardware_id`.
    pub fn new(hardware_id: &str) -> Seal {
        Self::with_key(BUILTIN_STATE_KEY.trim().as_bytes(), hardware_id)
    }

    /// The seal of `state_key` for `hardware_id`.
    pub fn with_key(state_key: &[u8], hardware_id: &str) -> Seal {
        use hmac::Mac;
        let mut mac = <HmacSha256 as Mac>::new_from_slice(state_key).expect("HMAC takes any key");
        mac.update(b"lic4es state.json v1\0");
        mac.update(hardware_id.as_bytes());
        Seal {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// The MAC of `doc` (its `mac` field aside), hex.
    fn mac(&self, doc: &StateDoc) -> String {
        use hmac::Mac;
        let unsealed = StateDoc {
            mac: None,
            ..doc.clone()
        };
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(&serde_json::to_vec(&unsealed).unwrap_or_default());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Seals `doc`: sets its `mac`.
    pub fn seal(&self, doc: &mut StateDoc) {
        doc.mac = Some(self.mac(doc));
    }

    /// Whether `doc` carries this seal; why not.
    pub fn verify(&self, doc: &StateDoc) -> Result<(), &'static str> {
        use subtle::ConstantTimeEq;
        let Some(given) = doc.mac.as_deref() else {
            return Err("it is not sealed");
        };
        if bool::from(given.as_bytes().ct_eq(self.mac(doc).as_bytes())) {
            Ok(())
        } else {
            Err("its seal does not match its content on this machine")
        }
    }
}

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
    /// The file is there but does not verify (unsealed, edited, copied, malformed): it is
    /// neither trusted nor written over.
    #[error("state.json does not verify: {0}")]
    Tampered(String),
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
    /// The seal ([`Seal`]): HMAC-SHA256 of the rest, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
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
    /// Random id of the slot (it names the slot's lock file).
    pub id: String,
    /// Process that last owned it, for whoever reads the file; ownership is the lock.
    #[serde(default)]
    pub pid: u32,
    /// The session held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// When offline mode was entered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_since: Option<String>,
    /// The seat borrowed, while a borrow lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrow: Option<BorrowDisk>,
}

/// A borrowed seat as recorded: its token (which the engine verifies again at every start)
/// and its end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BorrowDisk {
    /// The borrowed token.
    pub token: String,
    /// The borrow's end (RFC 3339).
    pub until: String,
}

impl SlotDisk {
    fn is_idle(&self) -> bool {
        self.session_id.is_none() && self.offline_since.is_none() && self.borrow.is_none()
    }
}

/// Whether `id` can name a slot: it becomes part of a file name, so a hand-edited file
/// must not point anywhere else (`../x`).
fn sound_slot_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Who runs which slot, as [`claim_in`] and [`save_in`] need to know: by lock file for
/// the real state file, by a table in tests and the fuzzer.
pub trait SlotOwners {
    /// Takes slot `id` for this engine when no running engine holds it; true when it is
    /// now this engine's.
    fn take(&mut self, id: &str) -> bool;
    /// Whether a running engine (this one included) holds slot `id`.
    fn held(&mut self, id: &str) -> bool;
}

/// The lock by which a running engine owns its slot; dropping it gives the slot up.
#[derive(Debug)]
pub struct SlotLock {
    _file: File,
}

/// A slot claimed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The slot's id.
    pub slot: String,
    /// The seat memory to start from.
    pub memory: SeatMemory,
}

/// The state file of one `cache-dir`.
#[derive(Debug, Clone)]
pub struct StateFile {
    cache: CacheDir,
    seal: Seal,
}

/// Slot owners by lock files under `cache-dir`. A lock this engine took stays here
/// until the claim hands it out.
struct LockOwners<'a> {
    file: &'a StateFile,
    mine: Option<(String, File)>,
}

impl SlotOwners for LockOwners<'_> {
    fn take(&mut self, id: &str) -> bool {
        if self.mine.as_ref().is_some_and(|(m, _)| m == id) {
            return true;
        }
        match self.file.try_lock_slot(id) {
            Ok(Some(f)) => {
                self.mine = Some((id.to_string(), f));
                true
            }
            _ => false,
        }
    }

    fn held(&mut self, id: &str) -> bool {
        if self.mine.as_ref().is_some_and(|(m, _)| m == id) {
            return true;
        }
        // A lock that cannot even be opened is taken as held: the slot is kept.
        !matches!(self.file.try_lock_slot(id), Ok(Some(_)))
    }
}

fn secs_to_ms(s: Option<i64>) -> Option<i64> {
    s.map(|s| s.saturating_mul(1000))
}

impl StateFile {
    /// The state file under `cache`, sealed with `seal`.
    pub fn new(cache: CacheDir, seal: Seal) -> StateFile {
        StateFile { cache, seal }
    }

    /// Reads the document, `None` when there is no file. A file that cannot be read,
    /// is not a document of the right shape, or does not carry this machine's seal is
    /// [`StateError::Tampered`].
    pub fn read_present(&self) -> Result<Option<StateDoc>, StateError> {
        let text = match self.cache.read(STATE_FILE) {
            Ok(None) => return Ok(None),
            Ok(Some(text)) => text,
            Err(e) => return Err(StateError::Tampered(e.to_string())),
        };
        let doc = StateDoc::parse(&text)
            .map_err(|why| StateError::Tampered(format!("not a state document ({why})")))?;
        self.seal
            .verify(&doc)
            .map_err(|why| StateError::Tampered(why.into()))?;
        Ok(Some(doc))
    }

    /// Whether there is a state file (of any kind) at all.
    pub fn present(&self) -> bool {
        std::fs::symlink_metadata(self.cache.path(STATE_FILE)).is_ok()
    }

    /// Reads the document; a missing file is an empty document.
    pub fn read(&self) -> Result<StateDoc, StateError> {
        Ok(self.read_present()?.unwrap_or_default())
    }

    /// Replaces the file with a fresh sealed document holding `mark` and nothing else:
    /// after a state that did not verify, once the license server has answered.
    pub fn reset(&self, mark: i64) -> Result<(), StateError> {
        self.cache.ensure()?;
        let _lock = self.lock()?;
        let mut doc = StateDoc {
            clock: Some(ClockDisk {
                high_water_mark: Some(rfc3339_millis(mark)),
                ..ClockDisk::default()
            }),
            ..StateDoc::default()
        };
        self.write_doc(&mut doc)
    }

    fn write_doc(&self, doc: &mut StateDoc) -> Result<(), StateError> {
        doc.version = VERSION;
        self.seal.seal(doc);
        let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
        self.cache.write(STATE_FILE, &text)?;
        Ok(())
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

    /// Read-modify-write under the lock. A file that does not verify is an error and is
    /// left as it is: only [`StateFile::reset`] replaces it.
    pub fn update<R>(&self, f: impl FnOnce(&mut StateDoc) -> R) -> Result<R, StateError> {
        self.update_if(|doc| (f(doc), true))
    }

    /// [`StateFile::update`], writing only when `f` says it changed something.
    fn update_if<R>(&self, f: impl FnOnce(&mut StateDoc) -> (R, bool)) -> Result<R, StateError> {
        self.cache.ensure()?;
        let _lock = self.lock()?;
        let mut doc = self.read()?;
        let (r, changed) = f(&mut doc);
        if changed {
            self.write_doc(&mut doc)?;
        }
        Ok(r)
    }

    fn lock(&self) -> Result<File, StateError> {
        self.lock_file(LOCK_FILE, true)
    }

    /// Opens `name` (created 0600, never through a symbolic link or into a FIFO) and takes
    /// an exclusive `flock` on it, waiting up to [`LOCK_WAIT`] when `wait`; `Ok(None)`
    /// when it is held and not waited for.
    fn open_locked(&self, name: &str, wait: bool) -> Result<Option<File>, StateError> {
        let path = self.cache.path(name);
        let err = |reason: String| StateError::Lock {
            path: path.display().to_string(),
            reason,
        };
        // Not through a link, and a FIFO planted here must not block the open.
        let file = platform::open_no_follow(platform::private_file(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        ))
        .open(&path)
        .map_err(|e| err(e.to_string()))?;
        let meta = file.metadata().map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            // `flock` on Unix, `LockFileEx` on Windows; released when the file is closed.
            if file.try_lock().is_ok() {
                return Ok(Some(file));
            }
            if !wait {
                return Ok(None);
            }
            if std::time::Instant::now() >= deadline {
                return Err(err("held by another process for too long".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn lock_file(&self, name: &str, wait: bool) -> Result<File, StateError> {
        self.open_locked(name, wait)?
            .ok_or_else(|| StateError::Lock {
                path: self.cache.path(name).display().to_string(),
                reason: "held".into(),
            })
    }

    fn slot_lock_name(id: &str) -> String {
        format!("state.{id}.lock")
    }

    /// The lock of slot `id`, when no running engine holds it.
    fn try_lock_slot(&self, id: &str) -> Result<Option<File>, StateError> {
        if !sound_slot_id(id) {
            return Ok(None);
        }
        self.open_locked(&Self::slot_lock_name(id), false)
    }

    /// Deletes the lock file of a slot that is gone (its lock is not held: the caller
    /// could take it, under the state lock, so nobody can be about to).
    fn remove_slot_lock(&self, id: &str) {
        if sound_slot_id(id) {
            let _ = self.cache.remove(&Self::slot_lock_name(id));
        }
    }

    /// Claims a slot for this engine: one whose lock nobody holds (its engine crashed,
    /// exited while offline or shut down), preferring one with a session or an offline
    /// period to carry on with, else a new one. Returns the claim and the lock that owns
    /// the slot while this engine runs (`None` only when no lock file could be made:
    /// then the record lives in memory). The claim is written at once, under the state
    /// lock, so two engines starting together never take the same slot.
    pub fn claim_slot(
        &self,
        pid: u32,
        now_ms: i64,
    ) -> Result<(Claim, Option<SlotLock>), StateError> {
        let mut owners = LockOwners {
            file: self,
            mine: None,
        };
        let ((slot, memory), gone) = self.update_if(|doc| {
            let (claimed, gone, changed) = claim_in(doc, pid, now_ms, &mut owners);
            self.sweep_slot_locks(doc);
            ((claimed, gone), changed)
        })?;
        for id in gone {
            self.remove_slot_lock(&id);
        }
        let lock = owners
            .mine
            .filter(|(id, _)| *id == slot)
            .map(|(_, file)| SlotLock { _file: file });
        Ok((Claim { slot, memory }, lock))
    }

    /// Writes this engine's seat memory into its slot, merging the shared parts
    /// (heartbeat interval, offline cycles) with what other processes wrote. A slot left
    /// with nothing in it is removed.
    pub fn save_slot(
        &self,
        slot_id: &str,
        pid: u32,
        mem: &SeatMemory,
        now_ms: i64,
    ) -> Result<(), StateError> {
        let mut owners = LockOwners {
            file: self,
            mine: None,
        };
        let gone = self.update(|doc| save_in(doc, slot_id, pid, mem, now_ms, &mut owners))?;
        for id in gone.into_iter().filter(|id| id != slot_id) {
            self.remove_slot_lock(&id);
        }
        Ok(())
    }

    /// Gives the slot up (a clean shutdown): its record stays for the next engine on
    /// this `cache-dir` to carry on; a slot with no record left loses its lock file too.
    pub fn give_up_slot(&self, slot_id: &str, lock: SlotLock) {
        if let Ok(_state) = self.lock() {
            let recorded = self
                .read()
                .ok()
                .and_then(|d| d.seat)
                .is_some_and(|seat| seat.slots.iter().any(|s| s.id == slot_id));
            if !recorded {
                self.remove_slot_lock(slot_id);
            }
        }
        drop(lock);
    }

    /// Deletes slot lock files that no record names and nobody holds (left by engines
    /// that crashed with nothing to record). Called under the state lock.
    fn sweep_slot_locks(&self, doc: &StateDoc) {
        let Ok(entries) = std::fs::read_dir(self.cache.path("")) else {
            return;
        };
        let named: Vec<&str> = doc
            .seat
            .iter()
            .flat_map(|s| s.slots.iter().map(|s| s.id.as_str()))
            .collect();
        for entry in entries.flatten().take(256) {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("state."))
                .and_then(|n| n.strip_suffix(".lock"))
            else {
                continue;
            };
            if !named.contains(&id) && matches!(self.try_lock_slot(id), Ok(Some(_))) {
                self.remove_slot_lock(id);
            }
        }
    }
}

/// [`StateFile::claim_slot`] on a document in memory: the slot picked and the memory to
/// start from, the slots collected (whose lock files can go), and whether the document
/// changed. `owners` says which slots running engines hold; the one picked is taken.
/// Public so that the document handling can be fuzzed without the file.
#[doc(hidden)]
pub fn claim_in(
    doc: &mut StateDoc,
    pid: u32,
    now_ms: i64,
    owners: &mut dyn SlotOwners,
) -> ((String, SeatMemory), Vec<String>, bool) {
    let before = doc.clone();
    let seat = doc.seat.get_or_insert_with(SeatDisk::default);
    let gone = gc(seat, None, now_ms, owners);
    // Those with something to carry on first; the first nobody holds is ours.
    let order: Vec<usize> = (0..seat.slots.len())
        .filter(|i| !seat.slots[*i].is_idle())
        .chain((0..seat.slots.len()).filter(|i| seat.slots[*i].is_idle()))
        .collect();
    let pick = order.into_iter().find(|i| owners.take(&seat.slots[*i].id));
    let slot = match pick {
        Some(i) => {
            seat.slots[i].pid = pid;
            seat.slots[i].clone()
        }
        None => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            owners.take(&id);
            SlotDisk {
                id,
                pid,
                ..SlotDisk::default()
            }
        }
    };
    let mem = SeatMemory {
        session_id: slot.session_id.clone(),
        offline_since: slot.offline_since.as_deref().and_then(parse_rfc3339),
        heartbeat_ms: secs_to_ms(seat.heartbeat_interval),
        offline_cycles: cycles(seat, now_ms),
        borrow: slot.borrow.as_ref().and_then(|b| {
            Some(Borrow {
                token: b.token.clone(),
                until: parse_rfc3339(&b.until)?,
            })
        }),
    };
    // Nothing claimed and nothing collected: no write (and no fsync) at init.
    if before.seat.is_none() && doc.seat == Some(SeatDisk::default()) {
        doc.seat = None;
    }
    let changed = *doc != before;
    ((slot.id, mem), gone, changed)
}

/// [`StateFile::save_slot`] on a document in memory; returns the slots collected. Pure.
#[doc(hidden)]
pub fn save_in(
    doc: &mut StateDoc,
    slot_id: &str,
    pid: u32,
    mem: &SeatMemory,
    now_ms: i64,
    owners: &mut dyn SlotOwners,
) -> Vec<String> {
    let seat = doc.seat.get_or_insert_with(SeatDisk::default);
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
        borrow: mem.borrow.as_ref().map(|b| BorrowDisk {
            token: b.token.clone(),
            until: rfc3339_millis(b.until),
        }),
    };
    seat.slots.retain(|s| s.id != slot_id);
    if !record.is_idle() {
        seat.slots.push(record);
    }
    gc(seat, Some(slot_id), now_ms, owners)
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

/// Drops slots that hold nothing and that no running engine holds (but `mine`), slots
/// with an unusable id, offline periods too old to matter, and the oldest slots beyond
/// [`MAX_SLOTS`]. Returns the ids dropped.
fn gc(
    seat: &mut SeatDisk,
    mine: Option<&str>,
    now_ms: i64,
    owners: &mut dyn SlotOwners,
) -> Vec<String> {
    let mut gone = Vec::new();
    seat.slots.retain(|s| {
        let stale = s
            .offline_since
            .as_deref()
            .and_then(parse_rfc3339)
            .is_some_and(|t| now_ms.saturating_sub(t) > SLOT_MAX_AGE_MS);
        let keep = sound_slot_id(&s.id)
            && !stale
            && (!s.is_idle() || Some(s.id.as_str()) == mine || owners.held(&s.id));
        if !keep {
            gone.push(s.id.clone());
        }
        keep
    });
    let extra = seat.slots.len().saturating_sub(MAX_SLOTS);
    gone.extend(seat.slots.drain(..extra).map(|s| s.id));
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_354_152_000;

    fn file() -> (tempfile::TempDir, StateFile) {
        let d = tempfile::tempdir().unwrap();
        let f = StateFile::new(CacheDir::new(d.path().join("c")), Seal::new("hw-1"));
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
        let (claim, lock) = f.claim_slot(10, NOW).unwrap();
        assert!(lock.is_some());
        assert_eq!(claim.memory, SeatMemory::default());
        let mem = SeatMemory {
            session_id: Some("s-1".into()),
            offline_since: Some(NOW - 5_000),
            heartbeat_ms: Some(300_000),
            offline_cycles: vec![NOW - 5_000],
            borrow: Some(Borrow {
                token: "a.borrowed.token".into(),
                until: NOW + 3_600_000,
            }),
        };
        f.save_slot(&claim.slot, 10, &mem, NOW).unwrap();
        let doc = f.read().unwrap();
        assert_eq!(doc.other["future"]["mark"], 5, "unknown fields survive");
        // The engine is gone (its lock with it): the next one claims the slot and carries
        // on, whatever its process id.
        drop(lock);
        let (again, _lock) = f.claim_slot(10, NOW).unwrap();
        assert_eq!(again.slot, claim.slot);
        assert_eq!(again.memory, mem);
    }

    #[test]
    fn a_running_engine_keeps_its_slot_even_in_the_same_process() {
        let (_d, f) = file();
        let held = SeatMemory {
            offline_since: Some(NOW - 60_000),
            ..SeatMemory::default()
        };
        let (a, a_lock) = f.claim_slot(1, NOW).unwrap();
        f.save_slot(&a.slot, 1, &held, NOW).unwrap();
        // Same pid (a container's pid 1, or a second engine in one JVM): still not taken.
        let (b, b_lock) = f.claim_slot(1, NOW).unwrap();
        assert_ne!(a.slot, b.slot, "a slot whose engine runs is not taken");
        assert_eq!(b.memory.offline_since, None);
        // A clean shutdown gives it up: the next engine carries on its offline period.
        f.give_up_slot(&a.slot, a_lock.unwrap());
        let (c, _c_lock) = f.claim_slot(2, NOW).unwrap();
        assert_eq!(c.slot, a.slot);
        assert_eq!(c.memory.offline_since, Some(NOW - 60_000));
        // Released: the slot holds nothing and disappears, lock file and all.
        f.save_slot(&c.slot, 2, &SeatMemory::default(), NOW)
            .unwrap();
        assert!(f.read().unwrap().seat.unwrap().slots.is_empty());
        f.give_up_slot(&b.slot, b_lock.unwrap());
        f.give_up_slot(&c.slot, _c_lock.unwrap());
        let locks: Vec<_> = std::fs::read_dir(_d.path().join("c"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|n| n.starts_with("state.") && n.ends_with(".lock") && n != LOCK_FILE)
            .collect();
        assert!(locks.is_empty(), "{locks:?}");
    }

    #[test]
    fn a_slot_id_that_is_not_a_file_name_is_dropped() {
        let (_d, f) = file();
        f.update(|doc| {
            doc.seat = Some(SeatDisk {
                slots: vec![SlotDisk {
                    id: "../../escape".into(),
                    pid: 1,
                    session_id: Some("s".into()),
                    offline_since: None,
                    borrow: None,
                }],
                ..SeatDisk::default()
            });
        })
        .unwrap();
        let (c, _lock) = f.claim_slot(1, NOW).unwrap();
        assert_ne!(c.slot, "../../escape");
        assert_eq!(c.memory.session_id, None);
        assert!(f.read().unwrap().seat.unwrap().slots.is_empty());
    }

    /// Owners by table: the slots in `held` run elsewhere.
    struct Table {
        held: Vec<String>,
        taken: Vec<String>,
    }

    impl SlotOwners for Table {
        fn take(&mut self, id: &str) -> bool {
            if self.held.iter().any(|h| h == id) {
                return false;
            }
            self.taken.push(id.into());
            true
        }
        fn held(&mut self, id: &str) -> bool {
            self.held.iter().any(|h| h == id) || self.taken.iter().any(|t| t == id)
        }
    }

    #[test]
    fn a_claim_prefers_a_slot_with_something_to_carry_on() {
        let slot = |id: &str, session: Option<&str>| SlotDisk {
            id: id.into(),
            pid: 1,
            session_id: session.map(str::to_string),
            offline_since: None,
            borrow: None,
        };
        let mut doc = StateDoc {
            seat: Some(SeatDisk {
                slots: vec![
                    slot("idle", None),
                    slot("busy", Some("s-1")),
                    slot("run", Some("s-2")),
                ],
                ..SeatDisk::default()
            }),
            ..StateDoc::default()
        };
        let mut owners = Table {
            held: vec!["run".into(), "idle".into()],
            taken: vec![],
        };
        let ((id, mem), gone, _) = claim_in(&mut doc, 9, NOW, &mut owners);
        assert_eq!(
            (id.as_str(), mem.session_id.as_deref()),
            ("busy", Some("s-1"))
        );
        assert!(gone.is_empty(), "held idle slots stay");
        let mut owners = Table {
            held: vec![],
            taken: vec![],
        };
        let (_, gone, _) = claim_in(&mut doc, 9, NOW, &mut owners);
        assert_eq!(
            gone,
            vec!["idle".to_string()],
            "an idle slot nobody runs goes"
        );
    }

    #[test]
    fn shared_parts_merge_and_old_cycles_drop() {
        let (_d, f) = file();
        let day = 86_400_000;
        let a = SeatMemory {
            offline_cycles: vec![NOW - 40 * day, NOW - 2 * day],
            ..SeatMemory::default()
        };
        let b = SeatMemory {
            offline_cycles: vec![NOW - day],
            ..SeatMemory::default()
        };
        f.save_slot("a", 1, &a, NOW).unwrap();
        f.save_slot("b", 2, &b, NOW).unwrap();
        let mem = f.claim_slot(3, NOW).unwrap().0.memory;
        assert_eq!(mem.offline_cycles, vec![NOW - 2 * day, NOW - day]);
    }

    #[test]
    fn a_corrupt_file_does_not_verify_and_is_left_until_a_reset() {
        let (d, f) = file();
        let cache = crate::cache::CacheDir::new(d.path().join("c"));
        cache
            .write(STATE_FILE, "{\"seat\": {\"slots\": 5}}")
            .unwrap();
        assert!(matches!(f.read(), Err(StateError::Tampered(_))));
        assert!(matches!(f.claim_slot(1, NOW), Err(StateError::Tampered(_))));
        assert_eq!(
            cache.read(STATE_FILE).unwrap().as_deref(),
            Some("{\"seat\": {\"slots\": 5}}"),
            "not written over"
        );
        f.reset(NOW).unwrap();
        assert_eq!(f.read().unwrap().mark(), Some(NOW));
        assert!(f.claim_slot(1, NOW).is_ok());
    }

    #[test]
    fn a_state_edited_unsealed_or_from_another_machine_does_not_verify() {
        let (d, f) = file();
        let cache = crate::cache::CacheDir::new(d.path().join("c"));
        f.merge_mark(NOW).unwrap();
        let sealed = cache.read(STATE_FILE).unwrap().unwrap();
        assert_eq!(f.read().unwrap().mark(), Some(NOW));
        // Another machine (another hardware id), another vendor's key: no.
        let there = StateFile::new(cache.clone(), Seal::new("hw-2"));
        assert!(matches!(there.read(), Err(StateError::Tampered(_))));
        let vendor = StateFile::new(cache.clone(), Seal::with_key(b"another vendor's", "hw-1"));
        assert!(vendor.read().is_err());
        // The mark moved back by hand, the seal kept: no.
        let mut doc: StateDoc = StateDoc::parse(&sealed).unwrap();
        doc.clock.as_mut().unwrap().high_water_mark = Some(rfc3339_millis(NOW - 86_400_000));
        cache
            .write(STATE_FILE, &serde_json::to_string(&doc).unwrap())
            .unwrap();
        let e = f.read().unwrap_err().to_string();
        assert!(e.contains("seal does not match"), "{e}");
        // The seal taken off: no.
        doc.mac = None;
        cache
            .write(STATE_FILE, &serde_json::to_string(&doc).unwrap())
            .unwrap();
        assert!(f.read().unwrap_err().to_string().contains("not sealed"));
        // Reformatted, same content: still its seal.
        let v: Value = serde_json::from_str(&sealed).unwrap();
        cache
            .write(STATE_FILE, &serde_json::to_string(&v).unwrap())
            .unwrap();
        assert_eq!(f.read().unwrap().mark(), Some(NOW));
    }

    /// Fields of other versions are kept as they are, numbers included: a float that did
    /// not read back bit for bit once broke the seal of the state that held it.
    #[test]
    fn a_sealed_state_with_any_other_fields_verifies_once_written() {
        let seal = Seal::new("hw-1");
        for text in [
            r#"{"v2": 633336333333333333333333333333333333333}"#,
            r#"{"v2": [1e-300, 0.1, 1.7976931348623157e308, -0.0, 18446744073709551615]}"#,
            r#"{"v2": {"a": "\u00e9\ud83d\ude00", "b": null}}"#,
        ] {
            let mut doc = StateDoc::parse(text).unwrap();
            seal.seal(&mut doc);
            let written = serde_json::to_string_pretty(&doc).unwrap();
            let back = StateDoc::parse(&written).unwrap();
            assert_eq!(seal.verify(&back), Ok(()), "{text}");
        }
    }
}
