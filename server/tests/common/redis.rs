//! A throwaway `redis-server` on a free loopback port, stopped when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisProc {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    /// Speaks TLS only (`--port 0 --tls-port`).
    tls: bool,
}

impl RedisProc {
    /// Starts one, without persistence; `None` (with a SKIPPED line) when redis-server is
    /// not installed, unless LIC4ES_REQUIRE_ALL=1, where that fails the test.
    pub fn start() -> Option<RedisProc> {
        if !super::have_tool("redis-server") {
            return None;
        }
        Some(Self::start_on(super::free_port()))
    }

    /// Starts one that speaks TLS only, with a certificate for 127.0.0.1 issued by `ca`.
    pub fn start_tls(ca: &super::tls::TestCa) -> Option<RedisProc> {
        if !super::have_tool("redis-server") {
            return None;
        }
        let (cert, key) = ca.issue("redis", &["127.0.0.1", "localhost"]);
        let port = super::free_port();
        let tls = [
            "--port".to_string(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
            "--tls-ca-cert-file".into(),
            ca.ca_file.display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        Some(Self::spawn(port, &tls))
    }

    /// Starts one on `port` (a restart of an earlier one).
    pub fn start_on(port: u16) -> RedisProc {
        Self::spawn(port, &["--port".to_string(), port.to_string()])
    }

    fn spawn(port: u16, listen: &[String]) -> RedisProc {
        let dir = tempfile::tempdir().unwrap();
        let child = super::on_real_clock(&mut Command::new("redis-server"))
            .args(listen)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        RedisProc {
            child,
            port,
            _dir: dir,
            tls: listen.iter().any(|a| a == "--tls-port"),
        }
    }

    /// `redis://`, or `rediss://` for one that speaks TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Stops it at once (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        self.kill();
    }
}
