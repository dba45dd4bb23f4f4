//! The Java binding: jar built with the JDK alone, JUnit tests under -Xcheck:jni,
//! extraction from the jar, threads racing init/shutdown, JVM exit without shutdown, and
//! the per-call cost of currentTier(). Also the Scala example, compiled and run.
#![cfg(unix)] // The JVM hosts are driven with Unix signals and the Linux natives.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

const JUNIT: &str = "/usr/share/java/junit4.jar";
const HAMCREST: &str = "/usr/share/java/hamcrest-core.jar";
const TYPESAFE_CONFIG: &str = "/usr/share/java/typesafe-config.jar";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Built {
    jar: PathBuf,
    native: PathBuf,
    test_classes: PathBuf,
    config: PathBuf,
}

/// Builds once for the tests of this process (they run in parallel and share the output
/// directory); a runner that gives each test a process of its own (cargo-nextest) gets a
/// directory per process, so no build overwrites a jar another JVM is running.
/// The binding built once for every test of this file. The JDK and JUnit are there: the
/// build marks these tests ignored where they are not, and `LIC4ES_REQUIRE_ALL=1` makes
/// their absence a failure.
fn build() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(build_once)
}

fn build_once() -> Built {
    for tool in ["java", "javac", "jar", "cc"] {
        assert!(have_tool(tool), "{tool} is needed");
    }
    for file in [JUNIT, HAMCREST] {
        assert!(have_file(Path::new(file)), "{file} is needed");
    }
    let lib = cdylib();
    let all = target_dir().join("java");
    // Builds of processes that are gone go (by process, not by age: under the calendar
    // guard this process's clock is a year ahead of the files' times).
    for old in std::fs::read_dir(&all).into_iter().flatten().flatten() {
        let gone = old
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if gone {
            let _ = std::fs::remove_dir_all(old.path());
        }
    }
    let out = all.join(std::process::id().to_string());
    run(Command::new(root().join("bindings/java/build.sh"))
        .arg(&lib)
        .arg(&out));
    let jar = out.join("lic4es.jar");
    let test_classes = out.join("test-classes");
    std::fs::create_dir_all(&test_classes).unwrap();
    let sources: Vec<PathBuf> =
        std::fs::read_dir(root().join("bindings/java/src/test/java/io/lic4es"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    run(Command::new("javac")
        .arg("-cp")
        .arg(format!("{}:{JUNIT}", jar.display()))
        .arg("-d")
        .arg(&test_classes)
        .args(&sources));
    let config = out.join("test-config.json");
    let cache = out.join("test-cache");
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::write(&config, live_pro_config(&cache, "info").as_bytes()).unwrap();
    Built {
        jar,
        native: out.join("native/linux-x86_64"),
        test_classes,
        config,
    }
}

impl Built {
    /// A JVM running `main`, under -Xcheck:jni unless `extra` holds `--no-check` (the
    /// benchmark, where the checks would dominate what it measures).
    fn java(&self, main: &str, extra: &[String], with_library_path: bool) -> Command {
        let mut cmd = Command::new("java");
        if !extra.iter().any(|e| e == "--no-check") {
            cmd.arg("-Xcheck:jni");
        }
        cmd.arg(format!("-Dlic4es.test.config={}", self.config.display()))
            .args(extra.iter().filter(|e| *e != "--no-check"));
        if with_library_path {
            cmd.arg(format!("-Dlic4es.library.path={}", self.native.display()));
        }
        cmd.arg("-cp")
            .arg(format!(
                "{}:{}:{JUNIT}:{HAMCREST}",
                self.jar.display(),
                self.test_classes.display()
            ))
            .arg(main);
        cmd
    }
}

fn assert_no_jni_warnings(out: &Output) {
    let err = text(&out.stderr);
    assert!(
        !err.lines()
            .any(|l| l.contains("WARNING") && l.contains("JNI")),
        "-Xcheck:jni complained:\n{err}"
    );
}

#[test]
#[cfg_attr(lic4es_no_jdk, ignore = "needs a JDK and JUnit")]
fn java_binding() {
    let b = build();
    let jar_size = std::fs::metadata(&b.jar).unwrap().len();
    println!("lic4es.jar: {jar_size} bytes");

    // JUnit, under -Xcheck:jni.
    let mut cmd = b.java("org.junit.runner.JUnitCore", &[], true);
    cmd.arg("io.lic4es.LicenseEngineTest");
    let out = run(&mut cmd);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("OK ("), "{stdout}");
    assert_no_jni_warnings(&out);
    println!(
        "{}",
        stdout
            .lines()
            .filter(|l| l.starts_with("OK"))
            .collect::<String>()
    );

    // Loading from the jar alone: extraction into a unique dir under -Dlic4es.tmpdir.
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&mut b.java(
        "io.lic4es.ExtractMain",
        &[format!("-Dlic4es.tmpdir={}", tmp.path().display())],
        false,
    ));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tier=PRO"), "{stdout}");
    assert!(
        stdout.contains(&format!("origin={}/lic4es-", tmp.path().display())),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "extracted files are removed at exit"
    );

    // An unusable tmpdir: the error names the property to set.
    let out = b
        .java(
            "io.lic4es.ExtractMain",
            &["-Dlic4es.tmpdir=/nonexistent/lic4es".to_string()],
            false,
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("-Dlic4es.tmpdir"),
        "{}",
        text(&out.stderr)
    );

    // A tmpdir on a noexec filesystem (the classic /tmp case): the error says what to set.
    // Mounting needs privileges; without them this part is skipped.
    if let Some(noexec) = NoexecMount::new() {
        let out = b
            .java(
                "io.lic4es.ExtractMain",
                &[format!("-Dlic4es.tmpdir={}", noexec.path.display())],
                false,
            )
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("failed to map segment"), "{err}");
        assert!(err.contains("noexec, set -Dlic4es.tmpdir"), "{err}");
    }

    // 8 reader threads while init/shutdown cycles run, with -Xcheck:jni.
    let out = run(&mut b.java("io.lic4es.ConcurrencyMain", &[], true));
    assert!(text(&out.stdout).contains("bad=0"));
    assert_no_jni_warnings(&out);

    // The JVM exits by itself when shutdown() was never called.
    let mut child = b
        .java("io.lic4es.ExitMain", &[], true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the JVM did not exit without shutdown()");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());

    // Per-call cost, reported (without -Xcheck:jni, which wraps every native call).
    let out = run(&mut b.java("io.lic4es.BenchMain", &["--no-check".to_string()], true));
    println!("{}", text(&out.stdout).trim());
}

/// A JVM that holds a seat and exits without `shutdown()`.
fn seat_jvm(b: &Built, config: &Path, extra: &[&str], wait: bool) -> Command {
    let mut args = vec![format!("-Dlic4es.test.config={}", config.display())];
    args.extend(extra.iter().map(|e| e.to_string()));
    args.push("--no-check".into());
    let mut cmd = b.java("io.lic4es.SeatMain", &args, true);
    if wait {
        cmd.arg("wait");
    }
    cmd
}

#[test]
#[cfg_attr(lic4es_no_jdk, ignore = "needs a JDK and JUnit")]
fn a_jvm_gives_its_seat_back_at_exit_and_passes_its_proxy_properties() {
    use common::seat::SeatFake;
    use lic4es::protocol::paths;
    let b = build();
    let fake = SeatFake::new(std::sync::Arc::new(lic4es::clock::SystemClock));
    let answer = fake.clone();
    let server = TestServer::start(move |r| answer.answer(r));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("seat.json");
    std::fs::write(
        &config,
        serde_json::json!({"api-key": "sk-jvm", "api-url": server.url(), "seat.enabled": true,
                           "seat.hardware-id": "jvm-hook", "public-keys": jwks(),
                           "refresh.enabled": false,
                           "cache-dir": dir.path().join("cache").to_str().unwrap()})
        .to_string(),
    )
    .unwrap();
    let releases = || {
        server
            .requests()
            .iter()
            .filter(|r| r.path == paths::RELEASE)
            .count()
    };

    // main() returns, the JVM exits by itself: the hook releases.
    let out = run(&mut seat_jvm(b, &config, &[], false));
    assert!(
        text(&out.stdout).contains("tier=PRO"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(releases(), 1, "released at exit");
    assert!(fake.inner.lock().unwrap().sessions.is_empty());

    // SIGTERM, as Kubernetes stops a pod.
    let mut child = seat_jvm(b, &config, &[], true)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("tier=PRO"), "{line}");
    let sent = Instant::now();
    // SAFETY: signals a child of this process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    println!(
        "SIGTERM to exit with the release: {} ms",
        sent.elapsed().as_millis()
    );
    assert_eq!(releases(), 2, "released on SIGTERM");

    // Turned off: the seat stays taken until the server lapses it.
    let out = run(&mut seat_jvm(
        b,
        &config,
        &["-Dlic4es.shutdownHook=false"],
        false,
    ));
    assert!(text(&out.stdout).contains("tier=PRO"));
    assert_eq!(releases(), 2, "no release without the hook");
    assert_eq!(fake.inner.lock().unwrap().sessions.len(), 1);

    // The JVM's proxy properties reach the engine when the config names no proxy.
    let proxy = RecordingProxy::start();
    let remote = dir.path().join("remote.json");
    std::fs::write(
        &remote,
        serde_json::json!({"api-key": "sk-jvm", "api-url": "https://license.invalid",
                           "seat.enabled": false, "public-keys": jwks(),
                           "connect-timeout": "2s", "read-timeout": "2s",
                           "cache-dir": dir.path().join("cache2").to_str().unwrap()})
        .to_string(),
    )
    .unwrap();
    let port = format!("-Dhttps.proxyPort={}", proxy.port);
    let out = run(&mut seat_jvm(
        b,
        &remote,
        &[
            "-Dhttps.proxyHost=127.0.0.1",
            &port,
            "-Dlic4es.shutdownHook=false",
        ],
        false,
    ));
    assert!(text(&out.stdout).contains("tier=COMMUNITY"));
    proxy.expect("CONNECT license.invalid:443");
}

#[test]
#[cfg_attr(lic4es_no_scala, ignore = "needs Scala and a JDK")]
fn scala_example() {
    for tool in ["scalac", "scala"] {
        assert!(have_tool(tool), "{tool} is needed");
    }
    assert!(have_file(Path::new(TYPESAFE_CONFIG)), "{TYPESAFE_CONFIG}");
    let b = build();
    let out_dir = target_dir().join("scala-example");
    std::fs::create_dir_all(&out_dir).unwrap();
    let cp = format!("{}:{TYPESAFE_CONFIG}", b.jar.display());
    run(Command::new("scalac")
        .arg("-cp")
        .arg(&cp)
        .arg("-d")
        .arg(&out_dir)
        .arg(root().join("bindings/scala/LicenseExample.scala")));
    // The example reads an application.conf; this one holds the test's license block.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("application.conf");
    let json = std::fs::read_to_string(&b.config).unwrap();
    std::fs::write(&conf, format!("softclient4es {{ license = {json} }}\n")).unwrap();
    let out = run(Command::new("scala")
        .arg(format!("-Dlic4es.library.path={}", b.native.display()))
        .arg("-cp")
        .arg(format!("{cp}:{}", out_dir.display()))
        .arg("LicenseExample")
        .arg(&conf));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tier: PRO"), "{stdout}");
    assert!(
        stdout.contains("\"license_id\":\"org-acme-123\""),
        "{stdout}"
    );
    println!("{stdout}");
}

/// A tmpfs mounted noexec, unmounted on drop.
struct NoexecMount {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NoexecMount {
    fn new() -> Option<NoexecMount> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "noexec,size=32m", "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                !lic4es_test_support::require_all(),
                "cannot mount a noexec tmpfs and LIC4ES_REQUIRE_ALL=1 (it needs root)"
            );
            println!("SKIPPED: cannot mount a noexec tmpfs here (needs privileges)");
            return None;
        }
        Some(NoexecMount {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }
}

impl Drop for NoexecMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
