//! The engine: resolves the license, owns the worker, answers tier and status.
//!
//! Pure Rust; the C ABI in `ffi/` is a thin layer over one of these. Tests create as many
//! engines as they like, each with its own cache directory, clock and backend.
//!
//! The parts live apart: [`resolve`](self::resolve) (the resolution at init), `exchange`
//! (talking to the backend), `publish` (what the tier is, and telling the host),
//! `status`, `refresh` (the refresh schedule), `seat` (carrying out the seat state
//! machine's actions) and `worker` (the thread, its runtime and the one timer).

use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde::Serialize;
use serde_json::Value;

use crate::cache::CacheDir;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::log::{stderr_sink, Level, LogSink, Logger};
use crate::resolution::InitFetch;
use crate::seat::SeatMachine;
use crate::state::{Seal, StateFile};
use crate::telemetry::{Usage, PROCESS_USAGE};
use crate::tier::Tier;
use crate::token::{Claims, GracePhase, Policy};

pub mod airgap;
mod exchange;
mod identity;
mod license_time;
mod on_disk;
mod publish;
mod refresh;
mod resolve;
mod seat_borrow;
mod seat_exchange;
mod status;
mod thread;
mod worker;

pub use self::status::{BuildStatus, ClockStatus, RefreshRecord, SeatStatus, Status};

use self::exchange::Failure;
use self::license_time::LicenseTime;
use self::on_disk::OnDisk;
use self::publish::Published;
use self::thread::{slot, Doorbell};
use self::worker::{Command, Reply};
use crate::platform::RawThread;

const DAY_SECS: i64 = 86_400;

/// Where the license in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `key` or `key-file`.
    Static,
    /// Fetched with the API key.
    ApiKey,
    /// The disk cache.
    Cache,
    /// A seat.
    Seat,
    /// An air-gapped activation installed in `cache-dir`.
    Offline,
    /// No license.
    None,
}

/// Errors of the engine's own API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The worker thread could not be created.
    #[error("cannot start the worker thread: {0}")]
    Spawn(String),
    /// The worker stopped before it finished resolving the license.
    #[error("the worker thread failed during start-up: {0}")]
    Startup(String),
    /// The engine was already shut down.
    #[error("the engine is not running")]
    NotRunning,
    /// The worker thread panicked.
    #[error("the worker thread panicked")]
    WorkerPanicked,
    /// The request does not apply: nothing to refresh from, no seat to borrow or return.
    #[error("{0}")]
    Unsupported(String),
    /// The backend could not be reached or refused.
    #[error("license refresh failed: {0}")]
    RefreshFailed(String),
    /// A borrow or its return could not be made: the backend could not be reached or
    /// refused.
    #[error("borrow failed: {0}")]
    BorrowFailed(String),
}

/// What an engine is wired to besides its config.
#[derive(Clone)]
pub struct EngineOptions {
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// Where log records go (filtered by `log-level`).
    pub log: LogSink,
    /// A process-wide cell the tier is mirrored into, for a one-load hot path.
    pub tier_mirror: Option<&'static AtomicU32>,
    /// Usage figures that telemetry reports.
    pub usage: &'static Usage,
    /// A uniform draw in `[0, 1]` for the reconnect jitter (tests pin it).
    pub jitter: fn() -> f64,
    /// The machine id the hardware id is derived from; `None` reads `/etc/machine-id`
    /// (else the host name).
    pub machine_id: Option<String>,
}

/// A uniform draw in `[0, 1]` from the system's randomness.
pub fn random_jitter() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64;
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            clock: Arc::new(SystemClock),
            log: stderr_sink(),
            tier_mirror: None,
            usage: &PROCESS_USAGE,
            jitter: random_jitter,
            machine_id: None,
        }
    }
}

struct Current {
    token: String,
    claims: Claims,
    source: Source,
}

/// The seat machine of this run and the `state.json` slot it persists to.
struct SeatRun {
    machine: SeatMachine,
    /// The slot and the lock that owns it while this engine runs; `None` when
    /// `state.json` could not be used: the seat lives in memory only.
    slot: Option<(String, crate::state::SlotLock)>,
}

struct State {
    current: Option<Current>,
    revoked: bool,
    reason: Option<String>,
    instance_id: String,
    last_refresh: Option<RefreshRecord>,
    /// Wall-clock milliseconds of the next scheduled refresh (or seat exchange).
    next_refresh_at: Option<i64>,
    last_telemetry: Option<Value>,
    generation: u64,
    initialized: bool,
    /// When the last grace warning was logged (seconds), for the daily mid-grace reminder.
    grace_warned_at: Option<i64>,
    /// Seat mode, once a seat is sought (not when a static token holds).
    seat: Option<SeatRun>,
    /// The tier before the last change after init.
    previous_tier: Option<Tier>,
    /// The tier fell during this run (and has not risen since).
    degraded: bool,
}

struct Shared {
    config: Config,
    policy: Policy,
    log: Logger,
    /// License time: the clock read through its ledger.
    time: LicenseTime,
    usage: &'static Usage,
    jitter: fn() -> f64,
    /// This engine's hardware id (`docs/explanation/seats.md`), settled at start: it keys the seal of
    /// `state.json`, and in seat mode it is the one tokens must name.
    identity_hwid: String,
    /// Warnings of the start, logged when resolution begins.
    startup_notes: Mutex<Vec<String>>,
    /// `state.json`, and whether it is trusted.
    disk: OnDisk,
    /// What the host reads: tier and entitlements.
    published: Published,
    state: Mutex<State>,
    cache: CacheDir,
    /// Set in seat mode once the instance id is known.
    hardware_id: OnceLock<String>,
    /// Set when a refresh by API key learnt that the license is counted in seats
    /// (`seat.enabled: "auto"`): the worker starts seat mode.
    seat_wanted: AtomicBool,
}

/// Log records gathered under a lock and emitted after it is released, so a log callback
/// may call back into the engine.
#[derive(Default)]
struct Outbox(Vec<(Level, String)>);

impl Outbox {
    fn push(&mut self, level: Level, msg: impl Into<String>) {
        self.0.push((level, msg.into()));
    }
    fn flush(self, log: &Logger) {
        for (level, msg) in self.0 {
            log.log(level, &msg);
        }
    }
}

enum Worker {
    /// The engine's own thread, reached through its doorbell.
    Thread {
        thread: RawThread,
        bell: Arc<Doorbell>,
    },
    /// A task on a caller's runtime ([`Engine::start_on_runtime`]).
    Task {
        task: tokio::task::JoinHandle<()>,
        stop: tokio::sync::watch::Sender<bool>,
        commands: tokio::sync::mpsc::UnboundedSender<Command>,
    },
}

/// A running license engine.
pub struct Engine {
    shared: Arc<Shared>,
    worker: Mutex<Option<Worker>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data consistent enough to report on;
    // refusing to answer would turn one bug into a crash of the host.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    fn shared(config: Config, opts: EngineOptions) -> Arc<Shared> {
        let log = Logger::new(opts.log, config.log_level);
        let policy = Policy {
            keys: config.public_keys.clone(),
            issuer: config.issuer.clone(),
            skew_secs: config.clock_skew.as_secs() as i64,
            grace_secs: config.grace_period.as_secs() as i64,
        };
        let cache = CacheDir::new(config.cache_dir.clone());
        let id = identity::Identity::load(&config, &cache, opts.machine_id.as_deref());
        let state_file = StateFile::new(cache.clone(), Seal::new(&id.hardware_id));
        let (disk, persisted) = OnDisk::open(state_file, &cache);
        Arc::new(Shared {
            published: Published::community(config.community.clone(), opts.tier_mirror),
            time: LicenseTime::start(opts.clock, persisted),
            config,
            policy,
            log,
            usage: opts.usage,
            jitter: opts.jitter,
            identity_hwid: id.hardware_id,
            startup_notes: Mutex::new(id.notes),
            disk,
            state: Mutex::new(State {
                current: None,
                revoked: false,
                reason: None,
                instance_id: id.instance_id,
                last_refresh: None,
                next_refresh_at: None,
                last_telemetry: None,
                generation: 0,
                initialized: false,
                grace_warned_at: None,
                seat: None,
                previous_tier: None,
                degraded: false,
            }),
            cache,
            hardware_id: OnceLock::new(),
            seat_wanted: AtomicBool::new(false),
        })
    }

    /// Resolves the license (`docs/explanation/tier.md`) and starts the worker thread. Returns
    /// once the tier is decided.
    pub fn start(config: Config, opts: EngineOptions) -> Result<Engine, EngineError> {
        let shared = Self::shared(config, opts);
        let bell = Arc::new(Doorbell::new().map_err(|e| EngineError::Spawn(e.to_string()))?);
        let (ready_tx, ready_rx) = slot::<Result<(), String>>();
        let worker_shared = shared.clone();
        let worker_bell = bell.clone();
        let thread = RawThread::spawn("lic4es-worker", move || {
            worker::worker_main(worker_shared, ready_tx, worker_bell)
        })
        .map_err(|e| EngineError::Spawn(e.to_string()))?;
        match ready_rx.wait() {
            Some(Ok(())) => Ok(Engine {
                shared,
                worker: Mutex::new(Some(Worker::Thread { thread, bell })),
            }),
            Some(Err(e)) => {
                let _ = thread.join();
                Err(EngineError::Startup(e))
            }
            None => {
                let _ = thread.join();
                Err(EngineError::Startup("the worker thread ended early".into()))
            }
        }
    }

    /// Resolves the license and runs the background work as a task on the caller's tokio
    /// runtime instead of a thread of its own. Tests use this with tokio's paused time to
    /// run days of schedule in milliseconds.
    pub async fn start_on_runtime(config: Config, opts: EngineOptions) -> Engine {
        let shared = Self::shared(config, opts);
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut backend = None;
        let init = shared.resolve(&mut backend, &mut stop_rx).await;
        let sched = shared.initial_schedule(init);
        shared.note_clock();
        let worker_shared = shared.clone();
        let task =
            tokio::spawn(async move { worker_shared.run(stop_rx, cmd_rx, backend, sched).await });
        Engine {
            shared,
            worker: Mutex::new(Some(Worker::Task {
                task,
                stop: stop_tx,
                commands: cmd_tx,
            })),
        }
    }

    /// The tier in effect: one atomic load.
    #[inline]
    pub fn tier(&self) -> Tier {
        self.shared.published.tier()
    }

    /// The quota `name`; -1 when unlimited or not set by the license.
    pub fn quota(&self, name: &str) -> i64 {
        self.shared.published.entitlements().quota(name)
    }

    /// Whether the license grants `name`.
    pub fn has_feature(&self, name: &str) -> bool {
        self.shared.published.entitlements().has_feature(name)
    }

    /// The status document.
    pub fn status(&self) -> Status {
        self.shared.reassess();
        self.shared.status()
    }

    /// The status document as JSON.
    pub fn status_json(&self) -> String {
        serde_json::to_string(&self.status()).unwrap_or_else(|_| "{}".into())
    }

    fn send(&self, cmd: Command) -> Result<(), EngineError> {
        let worker = lock(&self.worker);
        match worker.as_ref().ok_or(EngineError::NotRunning)? {
            Worker::Thread { thread, .. } if thread.is_current() => Err(EngineError::Unsupported(
                "the license worker cannot be asked to wait for itself (from the log callback)"
                    .into(),
            )),
            Worker::Thread { bell, .. } => {
                bell.send(cmd);
                Ok(())
            }
            Worker::Task { commands, .. } => {
                commands.send(cmd).map_err(|_| EngineError::NotRunning)
            }
        }
    }

    /// Sends a command and waits for its outcome.
    fn request(&self, command: impl FnOnce(Reply) -> Command) -> Result<(), EngineError> {
        let (tx, rx) = slot();
        self.send(command(Reply::Blocking(tx)))?;
        rx.wait().unwrap_or(Err(EngineError::NotRunning))
    }

    /// Checks the online seat out for `seconds` (at most the license's `max-borrow`),
    /// waiting for the answer: the engine then runs on the borrowed token without
    /// heartbeats or offline grace until the borrow ends, across restarts.
    /// [`EngineError::Unsupported`] when no online seat is held, [`EngineError::BorrowFailed`]
    /// with the reason when the backend could not be reached or refused.
    pub fn borrow(&self, seconds: u64) -> Result<(), EngineError> {
        self.request(|reply| Command::Borrow(seconds, reply))
    }

    /// Gives a borrowed seat back before its end and acquires a seat again.
    /// [`EngineError::Unsupported`] when no seat is borrowed, [`EngineError::BorrowFailed`]
    /// when the backend could not be reached (the borrow then holds).
    pub fn return_borrow(&self) -> Result<(), EngineError> {
        self.request(Command::ReturnBorrow)
    }

    /// One refresh, now, waiting for its outcome (bounded by the request timeouts): a
    /// token fetch, a static refresh, or in seat mode a heartbeat (online) or a
    /// reconnect / acquire. [`EngineError::Unsupported`] when there is nothing to refresh
    /// from, [`EngineError::RefreshFailed`] with the reason when it failed.
    pub fn refresh_now(&self) -> Result<(), EngineError> {
        self.request(Command::RefreshNow)
    }

    /// [`Engine::refresh_now`] for callers on the engine's own runtime.
    pub async fn refresh_now_async(&self) -> Result<(), EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::RefreshNow(Reply::Async(tx)))?;
        rx.await.unwrap_or(Err(EngineError::NotRunning))
    }

    /// Stops the worker: an exchange in flight is abandoned, a held seat is released
    /// (bounded by `seat.release-timeout`), and the thread is joined. A second call
    /// returns [`EngineError::NotRunning`]. On a caller's runtime this only signals the
    /// task; [`Engine::shutdown_async`] also waits for it.
    pub fn shutdown(&self) -> Result<(), EngineError> {
        let worker = lock(&self.worker).take().ok_or(EngineError::NotRunning)?;
        let result = match worker {
            Worker::Thread { thread, bell } => {
                bell.stop();
                if thread.is_current() {
                    // Called from the worker itself (a log callback): it ends once this
                    // returns.
                    Ok(())
                } else {
                    thread.join().map_err(|()| EngineError::WorkerPanicked)
                }
            }
            Worker::Task { stop, .. } => {
                let _ = stop.send(true);
                Ok(())
            }
        };
        self.shared.drop_tier();
        result
    }

    /// [`Engine::shutdown`] for an engine started with [`Engine::start_on_runtime`]:
    /// waits for its task to finish (including the seat release).
    pub async fn shutdown_async(&self) -> Result<(), EngineError> {
        let worker = lock(&self.worker).take().ok_or(EngineError::NotRunning)?;
        let result = match worker {
            Worker::Task { task, stop, .. } => {
                let _ = stop.send(true);
                task.await.map_err(|_| EngineError::WorkerPanicked)
            }
            Worker::Thread { thread, bell } => {
                bell.stop();
                thread.join().map_err(|()| EngineError::WorkerPanicked)
            }
        };
        self.shared.drop_tier();
        result
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl Shared {
    /// License time (ms): the wall clock read through the ledger, so a clock set back
    /// never moves it back. Every expiry decision uses this.
    fn now_millis(&self) -> i64 {
        self.time.now_millis()
    }

    fn now_secs(&self) -> i64 {
        self.time.now_secs()
    }

    /// Logs once per episode that the wall clock reads behind the mark. Called where no
    /// lock is held, so a log callback may call back in.
    fn note_clock(&self) {
        for warning in self.time.warnings() {
            self.log.warn(&warning);
        }
    }

    /// A valid token vouches that time is at least its `iat`.
    fn trust_iat(&self, iat: Option<i64>) {
        if let Some(iat) = iat {
            self.time.trust(iat);
        }
    }

    /// Whether `state.json` does not verify (and so is neither trusted nor written).
    fn state_tampered(&self) -> bool {
        self.disk.tampered()
    }

    /// Why no token may be judged by this machine's clock: a state that is there and does
    /// not verify (the clock it protected may have been set back).
    fn tamper_blocks_the_clock(&self) -> Option<String> {
        self.disk.blocks_the_clock()
    }

    /// The backend answered with a token bound to this engine's request: time and
    /// standing are the vendor's again. A state that did not verify is sealed anew (the
    /// mark from now; in seat mode a fresh record of this engine's seat), and a machine
    /// without a state gets one at once, so that deleting it later is noticed.
    fn backend_answered(&self) {
        let was = self.disk.forgive();
        if was.is_none() {
            if !self.disk.file.present() {
                self.persist_mark(true);
            }
            return;
        }
        let mark = self.time.mark();
        match self.disk.file.reset(mark) {
            Ok(()) => {
                self.time.persisted(mark);
                self.log
                    .info("state.json sealed anew: the license server answered");
                self.reclaim_seat_slot();
            }
            Err(e) => {
                self.log.warn(&format!(
                    "state.json not sealed anew ({e}); carrying on in memory"
                ));
                self.disk.hold_again(was);
            }
        }
    }

    /// Writes the mark to `state.json` when it has moved an hour (`force`: at shutdown,
    /// whenever it moved). A failed write is warned about once; the mark stays in memory.
    /// Nothing is written over a state that does not verify.
    fn persist_mark(&self, force: bool) {
        if self.state_tampered() {
            return;
        }
        let Some(mark) = self.time.due(force) else {
            return;
        };
        match self.disk.file.merge_mark(mark) {
            Ok(_) => self.time.persisted(mark),
            Err(e) => {
                if self.disk.first_failed_write() {
                    self.log.warn(&format!(
                        "state.json not written ({e}); carrying on in memory"
                    ));
                }
                // Not retried before it moves another hour.
                self.time.persisted(mark);
            }
        }
    }

    /// The ledger's mark now, and whether the wall clock is behind it.
    fn clock_view(&self) -> (i64, bool) {
        self.time.view()
    }

    fn uptime_hours(&self) -> f64 {
        self.time.uptime_hours()
    }

    /// Whether a seat is sought (seat mode, and no static token holds).
    fn seat_mode(&self) -> bool {
        lock(&self.state).seat.is_some()
    }

    fn drop_tier(&self) {
        self.published.drop_mirror();
    }
}

fn source_label(source: Source) -> &'static str {
    match source {
        Source::Static => "from static token",
        Source::ApiKey => "fetched with API key",
        Source::Cache => "from cache",
        Source::Seat => "from seat",
        Source::Offline => "from air-gapped activation",
        Source::None => "none",
    }
}

/// The grace warning (`docs/explanation/tier.md`).
pub fn grace_message(phase: GracePhase, days_ago: i64, days_left: i64) -> String {
    match phase {
        GracePhase::Early => format!("License expired {days_ago} days ago. Renew your license."),
        GracePhase::Mid => format!(
            "License expired {days_ago} days ago. Service will degrade to Community in {days_left} days."
        ),
    }
}
