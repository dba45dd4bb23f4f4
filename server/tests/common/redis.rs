//! A throwaway `redis-server` on a free loopback port, stopped when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisProc {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
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

    /// Starts one on `port` (a restart of an earlier one).
    pub fn start_on(port: u16) -> RedisProc {
        let dir = tempfile::tempdir().unwrap();
        let child = super::on_real_clock(&mut Command::new("redis-server"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
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
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
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
