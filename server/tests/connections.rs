//! Slow and idle clients cannot exhaust the server: headers within the header timeout,
//! no-progress connections closed, connections capped below the open-file limit. The
//! server runs as its own process with a 1024-descriptor limit, as in production.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `license-server serve` with `extra` config, its descriptors limited to `nofile`.
fn start(extra: &str, nofile: u64) -> Proc {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\ndata-dir = {:?}\n{extra}",
            dir.path().join("data").to_str().unwrap()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_license-server"));
    cmd.arg("--config")
        .arg(&cfg)
        .arg("serve")
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap();
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining its log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Proc {
        child,
        port,
        _dir: dir,
    }
}

fn healthz(port: u16, wait: Duration) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    Some(r)
}

/// Whether the server closed `s` (EOF or reset) within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn raise_own_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[test]
fn a_client_that_never_finishes_its_headers_is_closed() {
    let p = start("header-timeout-secs = 1\n", 1024);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(20)));
    // An idle connection that never sends anything goes the same way.
    let mut idle = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(20)));
}

#[test]
fn a_client_that_stops_sending_its_body_is_closed() {
    let p = start("idle-timeout-secs = 1\n", 1024);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.write_all(
        b"POST /api/v1/licenses/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Authorization: Bearer sk-x\r\nContent-Length: 1000\r\n\r\n{\"instance_id\":",
    )
    .unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(20)));
}

#[test]
fn healthz_answers_while_1100_idle_connections_are_held_under_a_1024_fd_limit() {
    raise_own_limit();
    let p = start("header-timeout-secs = 2\n", 1024);
    let opening = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..1100 {
        match TcpStream::connect(("127.0.0.1", p.port)) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    assert!(idle.len() >= 1000, "opened {}", idle.len());
    // Before the limits, /healthz got no answer for as long as these stayed open.
    let started = Instant::now();
    let answer = healthz(p.port, Duration::from_secs(60)).expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Connections beyond the cap and the listen backlog wait in connect() until idle
    // ones are closed, so the figure that matters is the whole span.
    println!(
        "{} idle connections opened in {:?}; /healthz then answered in {:?}",
        idle.len(),
        started - opening,
        started.elapsed()
    );
    drop(idle);
    assert!(healthz(p.port, Duration::from_secs(10)).is_some());
}
