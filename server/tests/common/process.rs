//! `license-server` as its own process, and plain HTTP to any port: for the tests that
//! run the binary as an operator does.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `license-server serve` on the config's listen address (`127.0.0.1:0` picks a port),
/// with its stderr read line by line; killed on drop.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub port: u16,
    /// Its log lines after the `listening on` line.
    pub lines: mpsc::Receiver<String>,
}

impl ServerProcess {
    pub fn start(config: &Path) -> ServerProcess {
        Self::start_with(config, |_| {})
    }

    /// [`ServerProcess::start`], with `configure` setting up the command first (limits,
    /// environment).
    pub fn start_with(config: &Path, configure: impl FnOnce(&mut Command)) -> ServerProcess {
        Self::start_args(config, &["serve"], configure)
    }

    /// `license-server --config CONFIG ARGS…` (`relay`, say), started as
    /// [`ServerProcess::start_with`] starts `serve`.
    pub fn start_args(
        config: &Path,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> ServerProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_license-server"));
        cmd.arg("--config")
            .arg(config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let port = loop {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                _ => panic!("license-server did not start:\n{}", seen.join("\n")),
            };
            seen.push(line.clone());
            let rest = line.split("listening on ").nth(1).and_then(|r| {
                r.strip_prefix("http://")
                    .or_else(|| r.strip_prefix("https://"))
            });
            if let Some(rest) = rest {
                let addr = rest.split_whitespace().next().unwrap();
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        ServerProcess {
            child,
            port,
            lines: rx,
        }
    }

    /// Every log line up to one holding `word` (at most 20 s).
    pub fn expect(&self, word: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l.contains(word);
                    seen.push(l);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "the server never logged `{word}`; it logged:\n{}",
            seen.join("\n")
        );
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(mut self) {
        // SAFETY: signals a child of this process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "license-server exited with {status}");
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 exchange with `127.0.0.1:port`: (status, JSON body or null); status 0
/// when the connection fails.
pub fn request(port: u16, method: &str, path: &str, bearer: &str, body: &Value) -> (u16, Value) {
    super::http::json(port, method, path, Some(bearer), body)
}

/// `dir/server.toml`: the data under `dir/data`, then `lines` (TOML, each ending in a
/// newline).
pub fn server_toml(dir: &Path, lines: &str) -> PathBuf {
    let config = dir.join("server.toml");
    let data = dir.join("data");
    std::fs::write(
        &config,
        format!("data-dir = {:?}\n{lines}", data.to_str().unwrap()),
    )
    .unwrap();
    config
}

/// The config of instances that share one PostgreSQL database (`database_url`) and the
/// seat store `seats` (its TOML line): each on a free port, the admin token
/// [`super::ADMIN`], no metrics listener; and their one signing key, made.
pub fn fleet_config(dir: &Path, database_url: &str, seats: &str) -> PathBuf {
    let config = server_toml(
        dir,
        &format!(
            "listen = \"127.0.0.1:0\"\nmetrics-listen = \"none\"\nadmin-token = {:?}\n\
             database-url = {database_url:?}\n{seats}\n",
            super::ADMIN
        ),
    );
    cli(&config, &["keygen"]);
    config
}

/// A server config in `dir` for `port`, its data under `dir/data`, the admin API behind
/// `admin_token` and no metrics listener: what a vendor runs, for the tests that start it
/// as its own process.
pub fn vendor_config(dir: &Path, port: u16, admin_token: &str) -> PathBuf {
    server_toml(
        dir,
        &format!(
            "listen = \"127.0.0.1:{port}\"\nmetrics-listen = \"none\"\n\
             admin-token = \"{admin_token}\"\n"
        ),
    )
}

/// A vendor's server as its operator sets it up, not yet started.
pub struct Vendor {
    pub port: u16,
    pub config: PathBuf,
    /// Its public keys (what `keygen` printed).
    pub jwks: Value,
}

/// [`vendor_config`] in `dir` on a free port with the admin token [`super::ADMIN`], and
/// its signing key made.
pub fn vendor(dir: &Path) -> Vendor {
    let port = super::free_port();
    let config = vendor_config(dir, port, super::ADMIN);
    let jwks = serde_json::from_str(&cli(&config, &["keygen"])).unwrap();
    Vendor { port, config, jwks }
}

/// An acquire of a seat with `key` by machine `hw` (its instance and nonce from `n`): the
/// HTTP status.
pub fn acquire_as(port: u16, key: &str, hw: &str, n: u32) -> u16 {
    let body = serde_json::json!({
        "hardware_id": hw,
        "instance_id": format!("i-{hw}"),
        "version": "1",
        "nonce": format!("{n:032x}"),
    });
    request(port, "POST", lic4es::protocol::paths::ACQUIRE, key, &body).0
}

/// `license-server --config CONFIG ARGS…`, which must succeed: its stdout, trimmed.
pub fn cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "license-server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `license-server api-key create --tier TIER --sub ID --days DAYS [EXTRA…]` (the license
/// created with it): the new key.
pub fn api_key(config: &Path, tier: &str, sub: &str, days: u32, extra: &[&str]) -> String {
    let days = days.to_string();
    let mut args = vec![
        "api-key", "create", "--tier", tier, "--sub", sub, "--days", &days,
    ];
    args.extend_from_slice(extra);
    cli(config, &args)
}

/// `lic4es status --config CONFIG` (no license from the environment): its document.
pub fn lic4es_status(config: &Path) -> Value {
    let out = Command::new(lic4es_cli())
        .args(["status", "--config"])
        .arg(config)
        .env_remove("SOFTCLIENT4ES_API_KEY")
        .env_remove("SOFTCLIENT4ES_LICENSE_KEY")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

/// The `lic4es` command-line tool of this workspace (built if a narrower test run did
/// not build it).
pub fn lic4es_cli() -> PathBuf {
    // target/debug/deps/<test> -> target/debug/lic4es
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("lic4es");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = super::as_from_a_shell(&mut Command::new(cargo))
            .args(["build", "--quiet", "-p", "lic4es", "--bin", "lic4es"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .unwrap();
        assert!(
            status.success() && bin.exists(),
            "{} not built",
            bin.display()
        );
    }
    bin
}

/// `license-server --config {config} serve` where it must not start: what it said.
pub fn refused_to_serve(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_license-server"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started on {config:?}: {err}");
    err
}

/// `dir/{name}.json`, the config of an engine run by `lic4es`: the vendor's `jwks`, a
/// cache of its own (`dir/{name}-cache`), warnings only, and the entries of `extra`.
pub fn engine_config(dir: &Path, name: &str, jwks: &Value, extra: Value) -> PathBuf {
    let config = dir.join(format!("{name}.json"));
    let mut body = serde_json::json!({
        "public-keys": jwks,
        "cache-dir": dir.join(format!("{name}-cache")).to_str().unwrap(),
        "log-level": "warn",
    });
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    std::fs::write(&config, body.to_string()).unwrap();
    config
}

/// An admin listing (`sessions`, `audit`) of `license` from the server on `port`.
pub fn listing(port: u16, what: &str, license: &str) -> Value {
    let path = format!("/admin/{what}?license={license}");
    let (status, v) = request(port, "GET", &path, super::ADMIN, &Value::Null);
    assert_eq!(status, 200, "{path}: {v}");
    v
}
