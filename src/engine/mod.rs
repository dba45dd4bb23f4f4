//! The engine: resolves the license, owns the worker thread, answers tier and status.
//!
//! Pure Rust; the C ABI in `ffi/` is a thin layer over one of these. Tests create as many
//! engines as they like, each with its own cache directory, clock and backend.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::backend::{new_nonce, Backend, BackendError, TokenReply, TokenRequest};
use crate::cache::{read_bounded, CacheDir, INSTANCE_ID_FILE, TOKEN_FILE};
use crate::clock::{rfc3339, rfc3339_millis, Clock, SystemClock};
use crate::config::{Config, Entitlements};
use crate::log::{redact, stderr_sink, Level, LogSink, Logger};
use crate::telemetry::{Usage, PROCESS_USAGE};
use crate::tier::Tier;
use crate::token::{Checked, Claims, GracePhase, Policy, Standing};

mod refresh;

use self::refresh::{Command, Reply};

const DAY_SECS: i64 = 86_400;

/// How long the worker waits at shutdown for blocking work (a DNS lookup) to end.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(500);

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
    /// Nothing to refresh from.
    #[error("nothing to refresh from: {0}")]
    Unsupported(String),
    /// The backend could not be reached or refused.
    #[error("license refresh failed: {0}")]
    RefreshFailed(String),
}

/// What an engine is wired to besides its config.
#[derive(Clone)]
pub struct EngineOptions {
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// Where log records go (filtered by `log-level`).
    pub log: LogSink,
    /// A process-wide cell the tier is mirrored into, for a one-load hot path.
    pub tier_mirror: Option<&'static AtomicU8>,
    /// Usage figures that telemetry reports.
    pub usage: &'static Usage,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            clock: Arc::new(SystemClock),
            log: stderr_sink(),
            tier_mirror: None,
            usage: &PROCESS_USAGE,
        }
    }
}

/// The outcome of the last backend exchange, for the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshRecord {
    /// When (RFC 3339).
    pub at: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// The status document of `lic_status_json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Tier name, lower case.
    pub tier: &'static str,
    /// Where the license came from.
    pub source: Source,
    /// `Active`, `Expired (…)`, `No license`, `Revoked`.
    pub status: String,
    /// `none`, `early`, `mid`.
    pub grace: &'static str,
    /// `sub`.
    pub license_id: Option<String>,
    /// `org_name`.
    pub org_name: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// `trial`.
    pub trial: bool,
    /// Effective features.
    pub features: Vec<String>,
    /// Effective quotas (null = unlimited).
    pub quotas: std::collections::BTreeMap<String, Option<i64>>,
    /// Expiry of the license in use.
    pub expires_at: Option<String>,
    /// Whole days until expiry.
    pub days_remaining: Option<i64>,
    /// `static`, `api_key`, `none` (seat modes later).
    pub mode: &'static str,
    /// This engine's instance id.
    pub instance_id: String,
    /// Last backend exchange.
    pub last_refresh: Option<RefreshRecord>,
    /// Next scheduled refresh.
    pub next_refresh_at: Option<String>,
    /// The last body sent to the backend.
    pub last_telemetry: Option<Value>,
    /// Increments on every change of license or tier.
    pub generation: u64,
    /// Why the engine is where it is, in words.
    pub reason: Option<String>,
    /// The library version.
    pub version: &'static str,
}

struct Current {
    token: String,
    claims: Claims,
    source: Source,
}

struct State {
    current: Option<Current>,
    revoked: bool,
    reason: Option<String>,
    instance_id: String,
    last_refresh: Option<RefreshRecord>,
    /// Wall-clock milliseconds of the next scheduled refresh.
    next_refresh_at: Option<i64>,
    last_telemetry: Option<Value>,
    generation: u64,
    initialized: bool,
    /// When the last grace warning was logged (seconds), for the daily mid-grace reminder.
    grace_warned_at: Option<i64>,
}

struct Shared {
    config: Config,
    policy: Policy,
    clock: Arc<dyn Clock>,
    log: Logger,
    usage: &'static Usage,
    tier: AtomicU8,
    tier_mirror: Option<&'static AtomicU8>,
    state: Mutex<State>,
    entitlements: RwLock<Arc<Entitlements>>,
    cache: CacheDir,
    started_at_ms: i64,
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

struct Worker {
    /// None when the engine runs on a caller's runtime ([`Engine::start_on_runtime`]).
    thread: Option<JoinHandle<()>>,
    thread_id: Option<ThreadId>,
    stop: tokio::sync::oneshot::Sender<()>,
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
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
        let shared = Arc::new(Shared {
            entitlements: RwLock::new(Arc::new(config.community.clone())),
            started_at_ms: opts.clock.now_millis(),
            config,
            policy,
            clock: opts.clock,
            log,
            usage: opts.usage,
            tier: AtomicU8::new(Tier::Community as u8),
            tier_mirror: opts.tier_mirror,
            state: Mutex::new(State {
                current: None,
                revoked: false,
                reason: None,
                instance_id: String::new(),
                last_refresh: None,
                next_refresh_at: None,
                last_telemetry: None,
                generation: 0,
                initialized: false,
                grace_warned_at: None,
            }),
            cache,
        });
        if let Some(m) = shared.tier_mirror {
            m.store(Tier::Community as u8, Ordering::Release);
        }
        shared
    }

    /// Resolves the license (section 5 of the spec) and starts the worker thread. Returns
    /// once the tier is decided.
    pub fn start(config: Config, opts: EngineOptions) -> Result<Engine, EngineError> {
        let shared = Self::shared(config, opts);
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), String>>(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
        let worker_shared = shared.clone();
        let thread = thread::Builder::new()
            .name("lic4es-worker".into())
            .spawn(move || worker_main(worker_shared, ready_tx, stop_rx, cmd_rx))
            .map_err(|e| EngineError::Spawn(e.to_string()))?;
        let thread_id = thread.thread().id();
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Engine {
                shared,
                worker: Mutex::new(Some(Worker {
                    thread: Some(thread),
                    thread_id: Some(thread_id),
                    stop: stop_tx,
                    commands: cmd_tx,
                })),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(EngineError::Startup(e))
            }
            Err(_) => {
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
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut backend = None;
        let init = shared.resolve(&mut backend).await;
        let sched = shared.initial_schedule(init);
        let worker_shared = shared.clone();
        tokio::spawn(async move { worker_shared.run(stop_rx, cmd_rx, backend, sched).await });
        Engine {
            shared,
            worker: Mutex::new(Some(Worker {
                thread: None,
                thread_id: None,
                stop: stop_tx,
                commands: cmd_tx,
            })),
        }
    }

    /// The tier in effect: one atomic load.
    #[inline]
    pub fn tier(&self) -> Tier {
        Tier::from_u8(self.shared.tier.load(Ordering::Acquire))
    }

    /// The quota `name`; -1 when unlimited or not set by the license.
    pub fn quota(&self, name: &str) -> i64 {
        self.shared.read_entitlements().quota(name)
    }

    /// Whether the license grants `name`.
    pub fn has_feature(&self, name: &str) -> bool {
        self.shared.read_entitlements().has_feature(name)
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

    fn send(&self, reply: Reply) -> Result<(), EngineError> {
        let worker = lock(&self.worker);
        let worker = worker.as_ref().ok_or(EngineError::NotRunning)?;
        if worker.thread_id.is_some() && worker.thread_id == Some(thread::current().id()) {
            return Err(EngineError::Unsupported(
                "a refresh cannot be requested from the worker thread (log callback)".into(),
            ));
        }
        worker
            .commands
            .send(Command::RefreshNow(reply))
            .map_err(|_| EngineError::NotRunning)
    }

    /// One refresh, now, waiting for its outcome (bounded by the request timeouts).
    /// [`EngineError::Unsupported`] when there is nothing to refresh from,
    /// [`EngineError::RefreshFailed`] with the reason when it failed.
    pub fn refresh_now(&self) -> Result<(), EngineError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Reply::Blocking(tx))?;
        rx.recv().unwrap_or(Err(EngineError::NotRunning))
    }

    /// [`Engine::refresh_now`] for callers on the engine's own runtime.
    pub async fn refresh_now_async(&self) -> Result<(), EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Reply::Async(tx))?;
        rx.await.unwrap_or(Err(EngineError::NotRunning))
    }

    /// Stops the worker and joins its thread. A second call returns
    /// [`EngineError::NotRunning`].
    pub fn shutdown(&self) -> Result<(), EngineError> {
        let worker = lock(&self.worker).take().ok_or(EngineError::NotRunning)?;
        let _ = worker.stop.send(());
        let result = match worker.thread {
            // Called from the worker itself (a log callback): it ends once this returns.
            Some(_) if worker.thread_id == Some(thread::current().id()) => Ok(()),
            Some(t) => t.join().map_err(|_| EngineError::WorkerPanicked),
            None => Ok(()),
        };
        if let Some(m) = self.shared.tier_mirror {
            m.store(Tier::Community as u8, Ordering::Release);
        }
        result
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn worker_main(
    shared: Arc<Shared>,
    ready: mpsc::SyncSender<Result<(), String>>,
    stop: tokio::sync::oneshot::Receiver<()>,
    commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .thread_keep_alive(Duration::from_secs(1))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot build the async runtime: {e}")));
            return;
        }
    };
    let body = std::panic::AssertUnwindSafe(async {
        let mut backend = None;
        let init = shared.resolve(&mut backend).await;
        let sched = shared.initial_schedule(init);
        let _ = ready.send(Ok(()));
        shared.run(stop, commands, backend, sched).await;
    });
    let outcome = std::panic::catch_unwind(|| rt.block_on(body));
    if outcome.is_err() {
        shared
            .log
            .error("the license worker stopped after an internal error; the tier stays as it was");
    }
    // Outside async context, and bounded, so a hung DNS lookup cannot hold shutdown.
    rt.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
}

impl Shared {
    fn read_entitlements(&self) -> std::sync::RwLockReadGuard<'_, Arc<Entitlements>> {
        self.entitlements.read().unwrap_or_else(|p| p.into_inner())
    }

    fn now_secs(&self) -> i64 {
        self.clock.now_secs()
    }

    /// Drops a license that has aged past its grace period, and repeats the mid-grace
    /// warning once a day while it lasts.
    fn reassess(&self) {
        let now = self.now_secs();
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.state);
            let standing = st
                .current
                .as_ref()
                .map(|cur| self.policy.standing(&cur.claims, now));
            match standing {
                Some(Err(e)) => {
                    st.current = None;
                    st.reason = Some(format!("license {e}"));
                    self.publish(&mut st, &mut out);
                }
                Some(Ok(Standing::Grace {
                    phase: GracePhase::Mid,
                    days_ago,
                    days_left,
                })) if st.grace_warned_at.is_none_or(|t| now - t >= DAY_SECS) => {
                    out.push(
                        Level::Warn,
                        grace_message(GracePhase::Mid, days_ago, days_left),
                    );
                    st.grace_warned_at = Some(now);
                }
                _ => {}
            }
        }
        out.flush(&self.log);
    }

    fn uptime_hours(&self) -> f64 {
        let ms = self
            .clock
            .now_millis()
            .saturating_sub(self.started_at_ms)
            .max(0);
        (ms as f64 / 3_600_000.0 * 1000.0).round() / 1000.0
    }

    /// Section 5: static token, API key, cache, Community. Says whether a token fetch was
    /// attempted, and with what outcome, so the scheduler does not repeat it at once.
    async fn resolve(&self, backend: &mut Option<Backend>) -> InitFetch {
        let mut out = Outbox::default();
        let instance_id = self.load_instance_id(&mut out);
        self.cache.sweep_stale_temps();
        lock(&self.state).instance_id = instance_id.clone();
        let mut reasons: Vec<String> = Vec::new();

        // 1. Static token.
        if let Some(token) = self.static_token(&mut out, &mut reasons) {
            match self.policy.check(&token, self.now_secs()) {
                Ok(checked) => {
                    out.flush(&self.log);
                    self.adopt(token, checked, Source::Static, None);
                    return InitFetch::NotTried;
                }
                Err(e) => {
                    out.push(
                        Level::Warn,
                        format!("Static license {} rejected: {e}", redact(&token)),
                    );
                    reasons.push(format!("static license rejected: {e}"));
                }
            }
        }
        out.flush(&self.log);

        // 2. API key.
        let mut fetch_failed = false;
        if let Some(api_key) = &self.config.api_key {
            match self.fetch(backend, api_key).await {
                Ok((token, checked)) => {
                    self.adopt(token, checked, Source::ApiKey, None);
                    return InitFetch::Succeeded;
                }
                Err(FetchFailure::Revoked(message)) => {
                    self.revoke(&message);
                    return InitFetch::Failed;
                }
                Err(FetchFailure::Other(reason)) => {
                    self.log.warn(&format!(
                        "License fetch with API key {} failed: {reason}",
                        redact(api_key)
                    ));
                    reasons.push(format!("API key fetch failed: {reason}"));
                    fetch_failed = true;
                }
            }
        }

        // 3. Cached token.
        let mut out = Outbox::default();
        if self.policy.keys.is_empty() {
            // Without keys every cached token would look forged; keep it for a run that has them.
        } else {
            match self.cache.read(TOKEN_FILE) {
                Ok(Some(token)) => match self.policy.check(token.trim(), self.now_secs()) {
                    Ok(checked) => {
                        if fetch_failed {
                            out.push(Level::Warn, "Using cached license (API key fetch failed)");
                        }
                        if matches!(checked.standing, Standing::Grace { .. }) {
                            out.push(
                                Level::Warn,
                                "Using cached license (expired, within grace period)",
                            );
                        }
                        out.flush(&self.log);
                        let why = (!reasons.is_empty()).then(|| reasons.join("; "));
                        self.adopt(token.trim().to_string(), checked, Source::Cache, why);
                        return if fetch_failed {
                            InitFetch::Failed
                        } else {
                            InitFetch::NotTried
                        };
                    }
                    Err(e) => {
                        out.push(
                            Level::Warn,
                            format!("Cached license rejected ({e}); deleting it"),
                        );
                        reasons.push(format!("cached license rejected: {e}"));
                        if let Err(e) = self.cache.remove(TOKEN_FILE) {
                            out.push(
                                Level::Warn,
                                format!("Cannot delete the rejected cached license: {e}"),
                            );
                        }
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    out.push(Level::Warn, format!("License cache ignored: {e}"));
                    reasons.push(format!("license cache ignored: {e}"));
                }
            }
        }

        // 4. Community.
        if reasons.is_empty() {
            reasons.push("no license configured".into());
        }
        out.push(
            Level::Info,
            format!("Running as Community ({})", reasons.join("; ")),
        );
        out.flush(&self.log);
        let mut st = lock(&self.state);
        st.reason = Some(reasons.join("; "));
        st.initialized = true;
        st.generation += 1;
        if fetch_failed {
            InitFetch::Failed
        } else {
            InitFetch::NotTried
        }
    }

    fn static_token(&self, out: &mut Outbox, reasons: &mut Vec<String>) -> Option<String> {
        if let Some(k) = &self.config.key {
            return Some(k.clone());
        }
        let path = self.config.key_file.as_ref()?;
        match read_bounded(path, true) {
            Ok(Some(s)) => Some(s.trim_end().to_string()),
            Ok(None) => {
                out.push(
                    Level::Warn,
                    format!("key-file {} does not exist", path.display()),
                );
                reasons.push(format!("key-file {} does not exist", path.display()));
                None
            }
            Err(e) => {
                out.push(Level::Warn, format!("key-file not read: {e}"));
                reasons.push(format!("key-file not read: {e}"));
                None
            }
        }
    }

    /// The HTTP client, created on first use so that a static token without a
    /// `refresh_url` never builds one.
    fn client<'a>(&self, backend: &'a mut Option<Backend>) -> Result<&'a Backend, FetchFailure> {
        if backend.is_none() {
            *backend =
                Some(Backend::new(&self.config).map_err(|e| FetchFailure::Other(e.to_string()))?);
        }
        backend
            .as_ref()
            .ok_or_else(|| FetchFailure::Other("no HTTP client".into()))
    }

    fn request(&self) -> TokenRequest {
        TokenRequest {
            instance_id: lock(&self.state).instance_id.clone(),
            version: self.config.product_version.clone(),
            nonce: new_nonce(),
            uptime_hours: self.uptime_hours(),
            telemetry: self.usage.snapshot(&self.config.telemetry),
        }
    }

    /// Fetches a token with the API key (section 6) and caches it.
    async fn fetch(
        &self,
        backend: &mut Option<Backend>,
        api_key: &str,
    ) -> Result<(String, Checked), FetchFailure> {
        let req = self.request();
        let body = req.body();
        let outcome = match self.client(backend) {
            Ok(client) => match client.fetch_token(api_key, &req).await {
                Ok(reply) => self
                    .accept_reply(reply, &req.nonce)
                    .inspect(|(jwt, checked)| {
                        self.write_cache(jwt, &checked.claims);
                    }),
                Err(e) => Err(FetchFailure::from(e)),
            },
            Err(e) => Err(e),
        };
        self.record_exchange(body, &outcome);
        outcome
    }

    /// POSTs to a static token's `refresh_url`; `Ok(None)` when the backend says the
    /// token is unchanged (204). Nothing is cached: the configured token stays the source
    /// of truth across restarts.
    async fn refresh_static(
        &self,
        backend: &mut Option<Backend>,
        refresh_url: &str,
        current: &str,
        license_id: &str,
    ) -> Result<Option<(String, Checked)>, FetchFailure> {
        let req = self.request();
        let mut body = req.body();
        body["license_id"] = Value::from(license_id);
        let outcome = match self.client(backend) {
            Ok(client) => match client.refresh_static(refresh_url, current, &body).await {
                Ok(Some(reply)) => self.accept_reply(reply, &req.nonce).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(FetchFailure::from(e)),
            },
            Err(e) => Err(e),
        };
        self.record_exchange(body, &outcome);
        outcome
    }

    /// A token just received must be valid now and answer this request's nonce.
    fn accept_reply(
        &self,
        reply: TokenReply,
        nonce: &str,
    ) -> Result<(String, Checked), FetchFailure> {
        if let Some(m) = &reply.message {
            self.log.info(m);
        }
        match self.policy.check(&reply.jwt, self.now_secs()) {
            Ok(checked) if checked.standing != Standing::Valid => Err(FetchFailure::Other(
                "the backend returned an expired license".into(),
            )),
            Ok(checked) if checked.claims.nonce.as_ref().is_some_and(|n| n != nonce) => {
                Err(FetchFailure::Other(
                    "the returned license answers another request (nonce mismatch)".into(),
                ))
            }
            Ok(checked) => Ok((reply.jwt, checked)),
            Err(e) => Err(FetchFailure::Other(format!(
                "the returned license was rejected: {e}"
            ))),
        }
    }

    fn record_exchange<T>(&self, body: Value, outcome: &Result<T, FetchFailure>) {
        let mut st = lock(&self.state);
        st.last_telemetry = Some(body);
        st.last_refresh = Some(RefreshRecord {
            at: rfc3339_millis(self.clock.now_millis()),
            ok: outcome.is_ok(),
            error: match outcome {
                Ok(_) => None,
                Err(FetchFailure::Revoked(m)) | Err(FetchFailure::Other(m)) => Some(m.clone()),
            },
        });
    }

    /// Writes the token to the cache unless the cache holds an acceptable one that
    /// expires later (another process sharing the directory may have written it).
    fn write_cache(&self, token: &str, claims: &Claims) {
        if let Ok(Some(existing)) = self.cache.read(TOKEN_FILE) {
            if let Ok(c) = self.policy.check(existing.trim(), self.now_secs()) {
                if c.claims.exp > claims.exp {
                    self.log
                        .debug("License cache kept: it holds a license that expires later");
                    return;
                }
            }
        }
        if let Err(e) = self.cache.write(TOKEN_FILE, token) {
            self.log.warn(&format!(
                "License cache not written ({e}); carrying on in memory"
            ));
        }
    }

    fn revoke(&self, message: &str) {
        self.log.error(&format!("License revoked: {message}"));
        if let Err(e) = self.cache.remove(TOKEN_FILE) {
            self.log
                .warn(&format!("Cannot delete the cached license: {e}"));
        }
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.state);
            st.current = None;
            st.revoked = true;
            st.reason = Some(format!("revoked: {message}"));
            self.publish(&mut st, &mut out);
            st.initialized = true;
        }
        out.flush(&self.log);
    }

    /// Puts a checked license in use and logs grace warnings.
    fn adopt(&self, token: String, checked: Checked, source: Source, reason: Option<String>) {
        let mut out = Outbox::default();
        if let Standing::Grace {
            phase,
            days_ago,
            days_left,
        } = checked.standing
        {
            out.push(Level::Warn, grace_message(phase, days_ago, days_left));
        }
        {
            let mut st = lock(&self.state);
            st.grace_warned_at = (!out.0.is_empty()).then(|| self.now_secs());
            if !st.initialized {
                out.push(
                    Level::Info,
                    format!(
                        "License {}: {} (license {}, {}expires {})",
                        source_label(source),
                        checked.claims.tier,
                        checked.claims.sub,
                        if checked.claims.trial { "trial, " } else { "" },
                        rfc3339(checked.claims.exp)
                    ),
                );
            }
            st.current = Some(Current {
                token,
                claims: checked.claims,
                source,
            });
            st.revoked = false;
            st.reason = reason;
            self.publish(&mut st, &mut out);
            st.initialized = true;
        }
        out.flush(&self.log);
    }

    /// Makes tier and entitlements follow `st.current`; logs a change of tier after init.
    fn publish(&self, st: &mut State, out: &mut Outbox) {
        let (tier, ents) = match &st.current {
            Some(c) if c.claims.tier != Tier::Community => (
                c.claims.tier,
                Entitlements {
                    features: c.claims.features.clone(),
                    quotas: c.claims.quotas.clone(),
                },
            ),
            _ => (Tier::Community, self.config.community.clone()),
        };
        *self.entitlements.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ents);
        let old = Tier::from_u8(self.tier.swap(tier as u8, Ordering::AcqRel));
        if let Some(m) = self.tier_mirror {
            m.store(tier as u8, Ordering::Release);
        }
        st.generation += 1;
        if st.initialized && old != tier {
            if tier > old {
                out.push(
                    Level::Info,
                    format!("License upgraded from {old} to {tier}"),
                );
            } else {
                out.push(
                    Level::Warn,
                    format!("License downgraded from {old} to {tier}"),
                );
            }
        }
    }

    fn load_instance_id(&self, out: &mut Outbox) -> String {
        if let Some(id) = &self.config.instance_id {
            return id.clone();
        }
        match self.cache.read(INSTANCE_ID_FILE) {
            Ok(Some(s)) if uuid::Uuid::parse_str(s.trim()).is_ok() => return s.trim().to_string(),
            Ok(Some(_)) => out.push(
                Level::Warn,
                "instance-id file is not a UUID; creating a new one",
            ),
            Ok(None) => {}
            Err(e) => out.push(Level::Warn, format!("instance-id not read: {e}")),
        }
        let id = uuid::Uuid::new_v4().to_string();
        if let Err(e) = self.cache.write(INSTANCE_ID_FILE, &id) {
            out.push(
                Level::Warn,
                format!("instance id not persisted ({e}); using a fresh one for this run"),
            );
        }
        id
    }

    fn status(&self) -> Status {
        let now = self.now_secs();
        let st = lock(&self.state);
        let tier = Tier::from_u8(self.tier.load(Ordering::Acquire));
        let ents = self.read_entitlements().clone();
        let (source, status, grace, expires_at, days_remaining) = match &st.current {
            Some(c) => {
                let (status, grace) = match self.policy.standing(&c.claims, now) {
                    Ok(Standing::Valid) => ("Active".to_string(), "none"),
                    Ok(Standing::Grace {
                        phase: GracePhase::Early,
                        days_ago,
                        ..
                    }) => (
                        format!("Expired ({days_ago} days ago, in grace period)"),
                        "early",
                    ),
                    Ok(Standing::Grace {
                        phase: GracePhase::Mid,
                        days_ago,
                        days_left,
                    }) => (
                        format!(
                            "Expired ({days_ago} days ago, {days_left} days until Community fallback)"
                        ),
                        "mid",
                    ),
                    Err(e) => (format!("Expired ({e})"), "none"),
                };
                (
                    c.source,
                    status,
                    grace,
                    Some(rfc3339(c.claims.exp)),
                    Some((c.claims.exp - now).max(0) / DAY_SECS),
                )
            }
            None if st.revoked => (Source::None, "Revoked".to_string(), "none", None, None),
            None => (Source::None, "No license".to_string(), "none", None, None),
        };
        let claims = st.current.as_ref().map(|c| &c.claims);
        let mode = match source {
            Source::Static => "static",
            Source::ApiKey => "api_key",
            _ if self.config.api_key.is_some() => "api_key",
            _ if self.config.key.is_some() || self.config.key_file.is_some() => "static",
            _ => "none",
        };
        Status {
            tier: tier.as_str(),
            source,
            status,
            grace,
            license_id: claims.map(|c| c.sub.clone()),
            org_name: claims.and_then(|c| c.org_name.clone()),
            jti: claims.and_then(|c| c.jti.clone()),
            trial: claims.is_some_and(|c| c.trial),
            features: ents.features.iter().cloned().collect(),
            quotas: ents.quotas.clone(),
            expires_at,
            days_remaining,
            mode,
            instance_id: st.instance_id.clone(),
            last_refresh: st.last_refresh.clone(),
            next_refresh_at: st.next_refresh_at.map(rfc3339_millis),
            last_telemetry: st.last_telemetry.clone(),
            generation: st.generation,
            reason: st.reason.clone(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

fn source_label(source: Source) -> &'static str {
    match source {
        Source::Static => "from static token",
        Source::ApiKey => "fetched with API key",
        Source::Cache => "from cache",
        Source::Seat => "from seat",
        Source::None => "none",
    }
}

enum FetchFailure {
    Revoked(String),
    Other(String),
}

impl From<BackendError> for FetchFailure {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Revoked { code, message } => FetchFailure::Revoked(format!(
                "{} ({code})",
                if message.is_empty() {
                    "license revoked".to_string()
                } else {
                    message
                }
            )),
            e => FetchFailure::Other(e.to_string()),
        }
    }
}

/// What happened to the token fetch during init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitFetch {
    NotTried,
    Succeeded,
    Failed,
}

/// The grace warning of section 5.
pub fn grace_message(phase: GracePhase, days_ago: i64, days_left: i64) -> String {
    match phase {
        GracePhase::Early => format!("License expired {days_ago} days ago. Renew your license."),
        GracePhase::Mid => format!(
            "License expired {days_ago} days ago. Service will degrade to Community in {days_left} days."
        ),
    }
}
