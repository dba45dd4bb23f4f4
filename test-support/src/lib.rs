//! What the engine's tests (`tests/`) and the server's (`server/tests/`) share: the
//! fixed test clock, the tools a test needs (a missing one skips it loudly, or fails it
//! under `LIC4ES_REQUIRE_ALL=1`), loopback ports, bounded waiting, and what a child
//! process must not inherit from a test's environment.

mod child_env;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use child_env::{as_from_a_shell, on_real_clock};

/// 2026-11-22T13:29:12Z: where every test clock starts.
pub const NOW: i64 = 1_795_354_152;
/// A day, in seconds.
pub const DAY: i64 = 86_400;

/// The real time (seconds), for what meets the system clock: the C ABI's engine, a
/// server that an engine on the system clock talks to.
pub fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is after 1970")
        .as_secs() as i64
}

/// Whether the run must have every tool (`LIC4ES_REQUIRE_ALL=1`, as CI sets it).
pub fn require_all() -> bool {
    std::env::var("LIC4ES_REQUIRE_ALL").as_deref() == Ok("1")
}

/// Says loudly that `what` is missing and the test skips it; fails the test instead
/// under [`require_all`].
fn missing(what: &str) {
    if require_all() {
        panic!("{what} not found and LIC4ES_REQUIRE_ALL=1");
    }
    eprintln!("SKIPPED: {what} not found");
    println!("SKIPPED: {what} not found");
}

/// Whether `tool` is on the PATH; when it is not, see [`missing`].
pub fn have_tool(tool: &str) -> bool {
    let found = tool_exists(tool);
    if !found {
        missing(tool);
    }
    found
}

/// Whether `tool` is on the PATH, quietly.
pub fn tool_exists(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether a file a test needs exists; like [`have_tool`] when it does not.
pub fn have_file(path: &Path) -> bool {
    let found = path.exists();
    if !found {
        missing(&path.display().to_string());
    }
    found
}

/// Runs `cmd` and returns its output; a failure to start or a non-zero exit fails the
/// test with both streams.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A loopback URL on which nothing listens (connection refused).
pub fn refused_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Polls `check` every 50 ms until it holds; fails the test, naming `what`, after
/// `secs` seconds of real time. For what another process or thread does on its own
/// time (a server starting, a worker's first write), never to let simulated time pass.
pub fn wait_for(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_url_refuses_and_a_wait_ends_when_its_check_holds() {
        let url = refused_url();
        let addr = url.trim_start_matches("http://");
        assert!(std::net::TcpStream::connect(addr).is_err(), "{url}");
        let mut polls = 0;
        wait_for("the third poll", 5, || {
            polls += 1;
            polls == 3
        });
        assert_eq!(polls, 3);
        assert!(tool_exists("sh") && !tool_exists("no-such-tool-lic4es"));
    }

    #[test]
    #[should_panic(expected = "never: not within 0 s")]
    fn a_wait_that_never_holds_fails_naming_what_it_waited_for() {
        wait_for("never", 0, || false);
    }
}
