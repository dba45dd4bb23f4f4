//! Group commit of the audit trail. Every seat grant waits for its entry to be durable;
//! written one transaction per entry, acquires were bound by the database's commit rate.
//! Here one writer thread takes whatever entries are queued (at most [`MAX_BATCH`]),
//! appends them in one transaction, and only then answers each caller with the outcome
//! of that transaction. Under load batches grow by themselves (entries queue while one
//! commits) and a batch lingers [`LINGER`] for more; an entry on an idle server is
//! committed at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::{AuditEvent, LicenseStore, StoreError, StoreResult};

/// Entries appended in one transaction at most.
pub const MAX_BATCH: usize = 512;
/// How long a batch waits for more entries once the queue is empty, when the batch
/// before it held more than one (under load: a commit writes each page it touches once
/// per batch, so fuller batches cost less per entry). Every caller waits it out, so it
/// bounds acquires per connection: with 1 ms, acquires ran at 0.77× the same build with
/// the audit off (`server/bench/load.sh`, 32 connections), with 250 µs at 1.0× (their CPU
/// per acquire within 6 µs of each other). A lone entry on an idle server is committed at
/// once.
const LINGER: std::time::Duration = std::time::Duration::from_micros(250);
/// Entries queued at most; callers past it wait for room.
const QUEUE: usize = 8 * MAX_BATCH;

struct Pending {
    entry: AuditEvent,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The audit trail's writer over a store. Its thread starts with the first entry and
/// ends when this is dropped.
pub struct AuditWriter {
    store: Arc<dyn LicenseStore>,
    queue: OnceLock<Result<mpsc::Sender<Pending>, String>>,
    batches: Arc<AtomicU64>,
}

fn stopped(why: &str) -> StoreError {
    StoreError::Unavailable(format!("the audit writer {why}"))
}

impl AuditWriter {
    /// A writer of `store`'s audit trail.
    pub fn new(store: Arc<dyn LicenseStore>) -> Self {
        AuditWriter {
            store,
            queue: OnceLock::new(),
            batches: Arc::default(),
        }
    }

    /// Transactions written so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Appends `entry`; returns once the transaction that holds it committed (or failed).
    pub async fn append(&self, entry: AuditEvent) -> StoreResult<()> {
        if cfg!(feature = "bench-audit-off") {
            return Ok(());
        }
        let queue = self
            .queue
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let store = self.store.clone();
                let batches = self.batches.clone();
                std::thread::Builder::new()
                    .name("audit-writer".into())
                    .spawn(move || write_batches(store.as_ref(), rx, &batches))
                    .map(|_| tx)
                    .map_err(|e| format!("could not start: {e}"))
            })
            .as_ref()
            .map_err(|e| stopped(e))?;
        let (done, answer) = oneshot::channel();
        queue
            .send(Pending { entry, done })
            .await
            .map_err(|_| stopped("stopped"))?;
        answer.await.unwrap_or_else(|_| Err(stopped("stopped")))
    }
}

/// The writer thread: a batch of what is queued, one transaction, every caller answered.
fn write_batches(store: &dyn LicenseStore, mut rx: mpsc::Receiver<Pending>, batches: &AtomicU64) {
    let mut entries = Vec::with_capacity(MAX_BATCH);
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    let mut last_batch = 0;
    while let Some(first) = rx.blocking_recv() {
        entries.push(first.entry);
        waiting.push(first.done);
        let mut lingered = last_batch <= 1;
        while entries.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => {
                    entries.push(p.entry);
                    waiting.push(p.done);
                }
                Err(_) if !lingered => {
                    lingered = true;
                    std::thread::sleep(LINGER);
                }
                Err(_) => break,
            }
        }
        // A store that panics fails this batch, not every later one.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.append_audits(&entries)
        }))
        .unwrap_or_else(|_| Err(stopped("failed")));
        batches.fetch_add(1, Ordering::Relaxed);
        last_batch = entries.len();
        for done in waiting.drain(..) {
            let _ = done.send(outcome.clone());
        }
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuditQuery, SqliteStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_entry_is_durable_when_its_append_returns_and_batches_form_under_load() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn LicenseStore> =
            Arc::new(SqliteStore::open(&dir.path().join("a.sqlite3")).unwrap());
        let writer = Arc::new(AuditWriter::new(store.clone()));
        let appends = 2_000;
        let mut tasks = Vec::new();
        for i in 0..appends {
            let (writer, store) = (writer.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                let license = format!("lic-{i}");
                let entry = AuditEvent {
                    at: i,
                    kind: "acquire".into(),
                    license: license.clone(),
                    ..AuditEvent::default()
                };
                writer.append(entry).await.unwrap();
                // Committed, so any other connection reads it now.
                let q = AuditQuery {
                    license: Some(license),
                    ..AuditQuery::newest(10)
                };
                assert_eq!(store.audit(&q).unwrap().len(), 1, "entry {i}");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let all = store
            .audit(&AuditQuery::newest(appends as u32 + 1))
            .unwrap();
        assert_eq!(all.len(), appends as usize);
        let batches = writer.batches();
        assert!(
            batches < appends as u64 / 2,
            "{batches} transactions for {appends} concurrent entries"
        );
    }

    #[tokio::test]
    async fn a_failed_transaction_fails_its_callers_and_not_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite3");
        let store: Arc<dyn LicenseStore> = Arc::new(SqliteStore::open(&path).unwrap());
        let writer = AuditWriter::new(store.clone());
        let entry = || AuditEvent {
            kind: "acquire".into(),
            license: "l".into(),
            ..AuditEvent::default()
        };
        writer.append(entry()).await.unwrap();
        // The table gone: the next transaction fails, and its caller hears it.
        {
            let other = rusqlite::Connection::open(&path).unwrap();
            other
                .execute_batch("ALTER TABLE audit RENAME TO audit_away")
                .unwrap();
        }
        assert!(writer.append(entry()).await.is_err());
        {
            let other = rusqlite::Connection::open(&path).unwrap();
            other
                .execute_batch("ALTER TABLE audit_away RENAME TO audit")
                .unwrap();
        }
        writer.append(entry()).await.unwrap();
        assert_eq!(store.audit(&AuditQuery::newest(10)).unwrap().len(), 2);
    }
}
