//! Shared test support: key fixtures, token minting, a loopback HTTP backend, log capture.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lic4es::clock::ManualClock;
use lic4es::log::{Level, LogSink};
use lic4es::telemetry::Usage;
use lic4es::{Config, Engine, EngineOptions};
use serde_json::{json, Value};

// What the server's tests use too; not every test binary uses all of it (as with dead
// code, above).
#[allow(unused_imports)]
pub use lic4es_test_support::{
    as_from_a_shell, free_port, have_file, have_tool, on_real_clock, refused_url, run, tool_exists,
    wait_for, wall_now, DAY, NOW,
};

pub mod paused;
pub mod seat;

pub const ISSUER: &str = "https://license.softclient4es.com";

pub fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

pub fn jwks() -> Value {
    serde_json::from_str(&std::fs::read_to_string(keys_dir().join("jwks.json")).unwrap()).unwrap()
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(keys_dir().join(name)).unwrap()
}

/// The token rules of an engine that trusts the test keys: the default issuer, a minute's
/// leeway, fourteen days of grace.
pub fn test_policy() -> lic4es::token::Policy {
    lic4es::token::Policy {
        keys: lic4es::token::KeySet::from_json_value(&jwks()).unwrap(),
        issuer: ISSUER.into(),
        skew_secs: 60,
        grace_secs: 14 * DAY,
    }
}

/// Signs `claims` with the Ed25519 test key (kid `test-ed-1`).
pub fn mint(claims: &Value) -> String {
    mint_with(claims, Algorithm::EdDSA, "test-ed-1")
}

/// Signs with the fixture key that fits `alg`, naming `kid` in the header.
pub fn mint_with(claims: &Value, alg: Algorithm, kid: &str) -> String {
    let key = match alg {
        Algorithm::EdDSA if kid == "test-ed-other" => {
            EncodingKey::from_ed_pem(&pem("ed25519-other.pem")).unwrap()
        }
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem("ed25519-1.pem")).unwrap(),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem("rsa.pem")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem("p256.pem")).unwrap(),
        other => panic!("no fixture for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Claims of a paid license expiring at `exp`.
pub fn claims(tier: &str, exp: i64) -> Value {
    json!({
        "iss": ISSUER,
        "sub": "org-acme-123",
        "iat": (exp - 30 * DAY).min(NOW),
        "exp": exp,
        "tier": tier,
        "features": ["materialized_views", "jdbc_driver", "federation", "unlimited_joins"],
        "quotas": {"max_materialized_views": 50, "max_result_rows": null, "max_clusters": 5},
        "jti": "tok-1",
        "org_name": "Acme Corp",
        "trial": false
    })
}

/// A C-ABI config with a Pro static token valid for 30 real days.
pub fn live_pro_config(cache_dir: &Path, log_level: &str) -> std::ffi::CString {
    std::ffi::CString::new(
        json!({
            "key": mint(&claims("pro", wall_now() + 30 * DAY)),
            "public-keys": jwks(),
            "cache-dir": cache_dir.to_str().unwrap(),
            "log-level": log_level,
        })
        .to_string(),
    )
    .unwrap()
}

/// A token of `tier` expiring `days` days from NOW (negative: expired).
pub fn token(tier: &str, days: i64) -> String {
    mint(&claims(tier, NOW + days * DAY))
}

/// Captured log records.
#[derive(Clone, Default)]
pub struct Logs(pub Arc<Mutex<Vec<(Level, String)>>>);

impl Logs {
    pub fn sink(&self) -> LogSink {
        let logs = self.0.clone();
        Arc::new(move |l, m| logs.lock().unwrap().push((l, m.to_string())))
    }
    pub fn all(&self) -> Vec<(Level, String)> {
        self.0.lock().unwrap().clone()
    }
    pub fn has(&self, level: Level, text: &str) -> bool {
        self.all()
            .iter()
            .any(|(l, m)| *l == level && m.contains(text))
    }
    /// Asserts a record of `level` containing `text` was logged (showing every record if
    /// not).
    pub fn expect(&self, level: Level, text: &str) {
        assert!(
            self.has(level, text),
            "no {level} `{text}` in:\n{}",
            self.dump()
        );
    }
    pub fn count(&self, text: &str) -> usize {
        self.all().iter().filter(|(_, m)| m.contains(text)).count()
    }
    pub fn dump(&self) -> String {
        self.all()
            .iter()
            .map(|(l, m)| format!("{l}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The machine id of the fixture's engines (`EngineOptions::machine_id`), so their
/// hardware id, and the seal of their `state.json`, are known to the tests.
pub const MACHINE_ID: &str = "test-machine";

/// A test fixture: a temporary cache dir, a clock at NOW, captured logs.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub logs: Logs,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::at_secs(NOW)),
            logs: Logs::default(),
        }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// A config with the test keys and this fixture's cache dir, merged with `extra`.
    pub fn config(&self, extra: Value) -> Value {
        let mut base = json!({
            "public-keys": jwks(),
            "cache-dir": self.cache_dir().to_str().unwrap(),
            "connect-timeout": "2s",
            "read-timeout": "2s",
            "log-level": "debug",
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    pub fn start(&self, extra: Value) -> Engine {
        let cfg = Config::from_json_with_env(&self.config(extra).to_string(), &|_| None)
            .expect("valid config");
        self.start_config(cfg)
    }

    pub fn start_config(&self, cfg: Config) -> Engine {
        Engine::start(
            cfg,
            EngineOptions {
                clock: self.clock.clone(),
                log: self.logs.sink(),
                tier_mirror: None,
                usage: Box::leak(Box::new(Usage::new())),
                machine_id: Some(MACHINE_ID.into()),
                ..EngineOptions::default()
            },
        )
        .expect("engine starts")
    }

    /// Puts `token` in the cache as an engine that fetched it would leave it: beside a
    /// sealed `state.json` (for the engine of this fixture, without `seat.hardware-id`),
    /// unless one is there already.
    pub fn write_cache(&self, token: &str) {
        self.write_cache_for(token, &self.hardware_id());
    }

    /// [`Fixture::write_cache`] for an engine whose `seat.hardware-id` is `hwid`.
    pub fn write_cache_for(&self, token: &str, hwid: &str) {
        write_private(&self.cache_dir(), "license-cache.jwt", token);
        if !self.cache_dir().join("state.json").exists() {
            self.write_state_for(
                json!({"version": 1, "clock": {
                    "high_water_mark": lic4es::clock::rfc3339_millis(lic4es::clock::Clock::now_millis(&*self.clock))}}),
                hwid,
            );
        }
    }

    /// The hardware id of this fixture's engines that set no `seat.hardware-id`: from
    /// the test machine id and the instance id (written now when there is none yet).
    pub fn hardware_id(&self) -> String {
        let path = self.cache_dir().join("instance-id");
        let id = match std::fs::read_to_string(&path) {
            Ok(id) => id.trim().to_string(),
            Err(_) => {
                let id = uuid::Uuid::new_v4().to_string();
                write_private(&self.cache_dir(), "instance-id", &id);
                id
            }
        };
        lic4es::seat::hardware_id(MACHINE_ID, &id)
    }

    /// Writes `doc` as `state.json`, sealed for an engine of hardware id `hwid`, as the
    /// engine would.
    pub fn write_state_for(&self, doc: Value, hwid: &str) {
        let mut doc: lic4es::state::StateDoc = serde_json::from_value(doc).unwrap();
        lic4es::state::Seal::new(hwid).seal(&mut doc);
        write_private(
            &self.cache_dir(),
            "state.json",
            &serde_json::to_string_pretty(&doc).unwrap(),
        );
    }

    pub fn read_cache(&self) -> Option<String> {
        std::fs::read_to_string(self.cache_dir().join("license-cache.jwt")).ok()
    }
}

/// Writes `dir/name` as the engine would: 0600 in a 0700 directory (on Unix).
pub fn write_private(dir: &Path, name: &str, contents: &str) {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// One request as the test backend saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A request from its request line and header lines, with a zeroed body of the
    /// announced Content-Length for the caller to fill.
    pub fn from_head(lines: &[String]) -> Request {
        let mut parts = lines
            .first()
            .map(String::as_str)
            .unwrap_or("")
            .split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .iter()
            .skip(1)
            .filter_map(|h| h.trim_end().split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        Request {
            method,
            path,
            headers,
            body: vec![0; len],
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// `jwt` (signed with the test key) with its `nonce` set to the one `req` carries: what
/// a backend answers that request with.
pub fn answering(req: &Request, jwt: &str) -> String {
    let (_, mut claims) = lic4es::token::decode_unverified(jwt).unwrap();
    claims["nonce"] = req.json()["nonce"].clone();
    mint(&claims)
}

/// The claims of `jwt`, unverified, without its `nonce`: what two answers of one
/// backend to two requests have in common.
pub fn claims_of(jwt: &str) -> Value {
    let (_, mut claims) = lic4es::token::decode_unverified(jwt).unwrap();
    claims.as_object_mut().unwrap().remove("nonce");
    claims
}

/// What the test backend answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Accept the request but never answer (until the server stops).
    pub hang: bool,
}

impl Reply {
    pub fn json(status: u16, v: Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
            hang: false,
        }
    }
    pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: body.into(),
            hang: false,
        }
    }
    pub fn hang() -> Reply {
        Reply {
            hang: true,
            ..Reply::raw(200, "")
        }
    }
    /// A protocol answer (`lic4es::protocol`) as JSON.
    pub fn answer(status: u16, body: &impl serde::Serialize) -> Reply {
        Reply::json(status, serde_json::to_value(body).unwrap())
    }
    /// A protocol error answer.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::answer(
            status,
            &lic4es::protocol::ErrorBody {
                error: code.into(),
                message: message.into(),
            },
        )
    }
    /// A token answer to `req`: `jwt`'s claims, signed again with the request's nonce,
    /// as the backend answers (the engine accepts no token that does not answer its
    /// own request).
    pub fn token_for(req: &Request, jwt: &str) -> Reply {
        Reply::token(&answering(req, jwt))
    }
    pub fn token(jwt: &str) -> Reply {
        Reply::answer(
            200,
            &lic4es::protocol::TokenAnswer {
                jwt: Some(jwt.into()),
                expires_in: Some(86_400),
                message: None,
            },
        )
    }

    /// Status line and headers, through the blank line.
    pub fn head(&self) -> String {
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.body.len()
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A real HTTP/1.1 server on 127.0.0.1 that records requests and answers from a closure.
pub struct TestServer {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, stop2) = (requests.clone(), stop.clone());
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, r, s) = (handler.clone(), reqs.clone(), stop2.clone());
                thread::spawn(move || serve(conn, &*h, &r, &s));
            }
        });
        TestServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, handler: &Handler, reqs: &Mutex<Vec<Request>>, stop: &AtomicBool) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        lines.push(line);
    }
    let mut req = Request::from_head(&lines);
    if reader.read_exact(&mut req.body).is_err() {
        return;
    }
    let reply = handler(&req);
    reqs.lock().unwrap().push(req);
    let mut conn = conn;
    if reply.hang {
        let until = Instant::now() + Duration::from_secs(20);
        while !stop.load(Ordering::SeqCst) && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        return;
    }
    let _ = conn.write_all(reply.head().as_bytes());
    let _ = conn.write_all(&reply.body);
    let _ = conn.flush();
}

/// target/debug (or target/release) of the running test binary.
pub fn target_dir() -> PathBuf {
    // target/debug/deps/<test>-<hash> -> target/debug
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The target the tests were built for when it is not this machine's (`cargo test
/// --target T`, the tests run under the emulator cargo's runner names).
pub fn cross_target() -> Option<&'static str> {
    let (target, host): (&'static str, &'static str) = (env!("LIC4ES_TARGET"), env!("LIC4ES_HOST"));
    (target != host).then_some(target)
}

/// `exe`, a program built for the tests' target, as a command: under the runner that
/// cargo runs the tests themselves with (`CARGO_TARGET_<T>_RUNNER`) when the target is
/// another machine's, so that no binfmt_misc registration is needed.
pub fn target_command(exe: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    // Under Wine the tests are Windows processes themselves: they start a Windows program
    // directly, and the host's runner (`wine`) is no program there.
    if cfg!(windows) {
        return std::process::Command::new(exe);
    }
    if let Some(target) = cross_target() {
        let var = format!(
            "CARGO_TARGET_{}_RUNNER",
            target.to_uppercase().replace(['-', '.'], "_")
        );
        if let Ok(runner) = std::env::var(&var) {
            let mut words = runner.split_whitespace();
            if let Some(first) = words.next() {
                let mut c = std::process::Command::new(first);
                c.args(words).arg(exe);
                return c;
            }
        }
    }
    std::process::Command::new(exe)
}

/// The `lic4es` CLI of this build, as a command (see [`target_command`]).
pub fn cli() -> std::process::Command {
    target_command(env!("CARGO_BIN_EXE_lic4es"))
}

/// `liblic4es.so` as it ships (in the jar, the wheel, and from `make install`): the
/// release build under `target/cdylib`, by the command the Makefile and maturin also run
/// (the same command, so none of them compiles it again after another), where CI's size
/// check finds it again. The C tests (and valgrind) run against it rather than a debug
/// build: the test build's library carries the features the whole workspace unifies
/// (tokio's signal driver, from the server's graph), which a shipped library does not,
/// and one release build serves every test that loads the library.
pub fn cdylib() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cdylib");
    // Said once per test binary, past the test harness's capture (a direct write, not
    // eprintln!): on a cold tree this build takes minutes with nothing else to show.
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "lic4es tests: the release library for the C, C++, Java and install tests \
             (target/cdylib; minutes when it must be built first)"
        );
    });
    let mut cmd = std::process::Command::new(cargo);
    on_real_clock(as_from_a_shell(&mut cmd));
    cmd.args(["rustc", "--profile", "release", "-p", "lic4es", "--lib"])
        .args(["--crate-type", "cdylib", "--quiet", "--target-dir"])
        .arg(&dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // For the tests' target when they were built for another (its linker and runner come
    // from the same CARGO_TARGET_<T>_* variables that built and run them).
    let mut out = dir.clone();
    if let Some(target) = cross_target() {
        cmd.args(["--target", target]);
        out = out.join(target);
    }
    let status = cmd.status().expect("run cargo rustc");
    assert!(status.success(), "cargo rustc --crate-type cdylib failed");
    let lib = out.join("release/liblic4es.so");
    assert!(lib.exists(), "{} not built", lib.display());
    with_soname_link(lib)
}

/// `lib` with `liblic4es.so.<major>` beside it: the library's soname, which a host linked
/// against it looks for, as after an install (where `ldconfig` or `make install` makes
/// the link).
fn with_soname_link(lib: PathBuf) -> PathBuf {
    let soname = lib.with_file_name(format!("liblic4es.so.{}", env!("CARGO_PKG_VERSION_MAJOR")));
    if std::fs::read_link(&soname).is_err() {
        let _ = std::fs::remove_file(&soname);
        // Tests racing here may both try; the second finds the link made.
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink("liblic4es.so", &soname);
    }
    lib
}

/// A proxy that records the first line of every request it gets and answers 502.
pub struct RecordingProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    pub fn start() -> RecordingProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for mut conn in l.incoming().flatten() {
                let mut line = String::new();
                let _ = BufReader::new(conn.try_clone().unwrap()).read_line(&mut line);
                log.lock().unwrap().push(line.trim().to_string());
                let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            }
        });
        RecordingProxy { port, seen }
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Asserts a request line starting with `start` reached the proxy.
    pub fn expect(&self, start: &str) {
        let seen = self.seen();
        assert!(
            seen.iter().any(|l| l.starts_with(start)),
            "{start}: {seen:?}"
        );
    }
}

/// The repository root (the `lic4es` crate's manifest directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds tests/c/harness.c into `exe` with `cc` (a C compiler, with its target's flags
/// already given), warnings as errors; says which compiler failed, and why.
pub fn build_c_harness(mut cc: std::process::Command, exe: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = cc
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-I"])
        .arg(root.join("include"))
        .arg(root.join("tests/c/harness.c"))
        .arg("-o")
        .arg(exe)
        .args(["-ldl", "-lpthread"])
        .output()
        .unwrap_or_else(|e| panic!("{:?}: {e}", cc.get_program()));
    assert!(
        out.status.success(),
        "the C harness does not compile with {:?}:\n{}",
        cc.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
}
