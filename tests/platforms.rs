//! The libraries `bindings/c/platforms.sh` builds for the four Linux platforms, each loaded
//! by the C harness (tests/c/harness.c) built for its platform with zig: the x86-64 ones
//! natively, the aarch64 ones under qemu-user. The musl libraries skip the harness's
//! unload checks (musl's `dlclose` never unmaps, by design), and it says so.
#![cfg(unix)] // The Linux platforms' libraries, built and run from Linux.

mod common;

use std::path::Path;
use std::process::Command;

use common::{build_c_harness, claims, jwks, mint, run, wall_now, DAY};
use serde_json::json;

/// Platform, zig's target for the harness, and the emulator it runs under (none: natively).
const PLATFORMS: [(&str, &str, Option<&str>); 4] = [
    ("linux-x86_64", "x86_64-linux-gnu.2.17", None),
    ("linux-x86_64-musl", "x86_64-linux-musl", None),
    (
        "linux-aarch64",
        "aarch64-linux-gnu.2.17",
        Some("qemu-aarch64"),
    ),
    (
        "linux-aarch64-musl",
        "aarch64-linux-musl",
        Some("qemu-aarch64"),
    ),
];

#[test]
#[ignore = "needs the platform libraries (bash bindings/c/platforms.sh), zig, qemu-user and \
            the aarch64 and musl loaders (see .ci/run); .ci/run builds them and runs it"]
fn every_platform_s_library_passes_the_c_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = root.join("target/platforms");
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = work.path().join("config.json");
    std::fs::write(
        &config,
        json!({
            "key": mint(&claims("pro", wall_now() + 30 * DAY)),
            "public-keys": jwks(),
            "cache-dir": cache.path().join("c").to_str().unwrap(),
        })
        .to_string(),
    )
    .unwrap();
    for (name, zig_target, emulator) in PLATFORMS {
        let lib = built.join(name).join("liblic4es.so");
        assert!(lib.is_file(), "{} is not built", lib.display());
        let exe = work.path().join(format!("harness-{name}"));
        let mut zig = Command::new("zig");
        // Dynamic, as hosts are (zig links a musl program statically by default, and a
        // static musl program cannot dlopen).
        zig.args(["cc", "-target", zig_target, "-dynamic"]);
        build_c_harness(zig, &exe);
        let mut run = match emulator {
            Some(qemu) => {
                let mut c = Command::new(qemu);
                c.arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let started = std::time::Instant::now();
        let run = run
            .arg(&lib)
            .arg(&config)
            .arg(cache.path().join(format!("community-{name}")))
            .output()
            .unwrap_or_else(|e| panic!("{name}: cannot run the harness: {e}"));
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && stdout.contains(" 0 failed"),
            "{name}: {}\n{stdout}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(
            stdout.contains("unload checks skipped"),
            name.ends_with("-musl"),
            "{name}: {stdout}"
        );
        println!(
            "{name}: {} ({:.1?}{})",
            stdout.lines().last().unwrap_or_default(),
            started.elapsed(),
            emulator.map(|q| format!(", under {q}")).unwrap_or_default()
        );
    }
}

/// The jar to ship (`bindings/java/build.sh --platforms`): the four platforms' engines and
/// shims inside, each needing only its C library (on glibc nothing past 2.17), and
/// this machine's JVM loading the x86-64 glibc pair from it. Which directory a JVM on
/// another platform takes is the loader's choice by platform string, tested in
/// LicenseEngineTest.
#[test]
#[ignore = "needs the platform libraries (bash bindings/c/platforms.sh), zig and a JDK; \
            .ci/run builds them and runs it"]
fn the_shipped_jar_carries_every_platform_and_loads_here() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    run(Command::new("bash")
        .arg(root.join("bindings/java/build.sh"))
        .arg("--platforms")
        .arg(root.join("target/platforms"))
        .arg(out.path()));
    // The rule the platform build checks its libraries by, for every engine and shim.
    for (name, _, _) in PLATFORMS {
        let libc = if name.ends_with("-musl") {
            "musl"
        } else {
            "gnu"
        };
        for file in ["liblic4es.so.0", "liblic4es_jni.so"] {
            let check = Command::new("bash")
                .arg(root.join("bindings/c/platforms.sh"))
                .arg("--check")
                .arg(out.path().join("native").join(name).join(file))
                .arg(libc)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{name}/{file}: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let jar = out.path().join("lic4es.jar");
    let host = out.path().join("Host.java");
    std::fs::write(
        &host,
        "public class Host { public static void main(String[] a) { \
         System.out.println(io.lic4es.LicenseEngine.version() + \" \" \
         + io.lic4es.LicenseEngine.currentTier() + \" \" \
         + io.lic4es.LicenseEngine.nativeOrigin()); } }",
    )
    .unwrap();
    let run = Command::new("java")
        .arg(format!("-Dlic4es.tmpdir={}", out.path().display()))
        .arg("-cp")
        .arg(&jar)
        .arg(&host)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success()
            && stdout.starts_with(&format!("{} COMMUNITY ", env!("CARGO_PKG_VERSION"))),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    println!(
        "lic4es.jar with four platforms: {} bytes; {stdout}",
        std::fs::metadata(&jar).unwrap().len()
    );
}

/// The four platforms' wheels (`bindings/python/build.sh --platforms`): each carries the
/// library the harness above passed, byte for byte; the manylinux ones are what auditwheel
/// calls manylinux_2_17; pip installs each for its platform; and the package runs the
/// smoke test on Python 3.11 for x86-64 (natively) and aarch64 (Debian's arm64 CPython
/// under qemu-user, unpacked in target/arm64-python by .ci/run). The musl wheels' Python
/// run is the one thing not done: neither Debian nor PyPI has a musl CPython to run it on.
#[test]
#[ignore = "needs the platform libraries (bash bindings/c/platforms.sh), the Python tools venv, \
            qemu-user and an arm64 CPython in target/arm64-python; .ci/run prepares them and \
            runs it"]
fn every_platform_s_wheel_installs_and_runs_the_smoke_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv_bin = root.join("target/python-venv/bin");
    let arm64_python = root.join("target/arm64-python");
    let out = tempfile::tempdir().unwrap();
    let wheels = out.path().join("wheels");
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ok = |what: &str, c: &mut Command| -> String {
        let o = c.env("PATH", &path).output().unwrap();
        assert!(
            o.status.success(),
            "{what}: {}\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(
        "build.sh --platforms",
        Command::new("bash")
            .arg(root.join("bindings/python/build.sh"))
            .arg("--platforms")
            .arg(root.join("target/platforms"))
            .arg(&wheels),
    );
    let cache = tempfile::tempdir().unwrap();
    let config = json!({
        "key": mint(&claims("pro", wall_now() + 30 * DAY)),
        "public-keys": jwks(),
        "cache-dir": cache.path().join("c").to_str().unwrap(),
    })
    .to_string();
    let smoke = out.path().join("smoke.py");
    std::fs::write(
        &smoke,
        "import platform, sys, lic4es\n\
         lic4es.init(sys.argv[1])\n\
         print(platform.machine(), lic4es.version(), lic4es.current_tier().name)\n\
         assert lic4es.shutdown()\n",
    )
    .unwrap();
    let tags = [
        ("linux-x86_64", "manylinux_2_17_x86_64"),
        ("linux-aarch64", "manylinux_2_17_aarch64"),
        ("linux-x86_64-musl", "musllinux_1_2_x86_64"),
        ("linux-aarch64-musl", "musllinux_1_2_aarch64"),
    ];
    for (name, tag) in tags {
        let wheel = std::fs::read_dir(&wheels)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(&format!("-{tag}")))
            .unwrap_or_else(|| panic!("no {tag} wheel in {}", wheels.display()));
        // Installed by pip as for that platform (tags and RECORD checked on the way).
        let site = out.path().join(format!("site-{name}"));
        ok(
            &format!("pip install {tag}"),
            Command::new(venv_bin.join("pip"))
                .args(["install", "--quiet", "--no-deps", "--no-index"])
                .args(["--only-binary=:all:", "--python-version", "3.11"])
                .args(["--platform", tag, "--target"])
                .arg(&site)
                .arg(&wheel),
        );
        let carried = std::fs::read(site.join("lic4es/_native/lib_native.so")).unwrap();
        let tested = std::fs::read(
            root.join("target/platforms")
                .join(name)
                .join("liblic4es.so"),
        )
        .unwrap();
        assert!(
            carried == tested,
            "{tag}: the wheel's library is not the one the harness passed"
        );
        if !name.ends_with("-musl") {
            let shown = ok(
                "auditwheel show",
                Command::new(venv_bin.join("auditwheel"))
                    .arg("show")
                    .arg(&wheel),
            );
            assert!(
                shown
                    .split_whitespace()
                    .collect::<String>()
                    .contains(&format!("consistentwiththefollowingplatformtag:\"{tag}\"")),
                "{shown}"
            );
        }
        let mut run = match name {
            "linux-x86_64" => {
                // A fresh venv, the wheel installed as a user would.
                let venv = out.path().join("venv");
                ok(
                    "venv",
                    Command::new("python3").args(["-m", "venv"]).arg(&venv),
                );
                ok(
                    "pip install",
                    Command::new(venv.join("bin/pip"))
                        .args(["install", "--quiet", "--no-index"])
                        .arg(&wheel),
                );
                let mut c = Command::new(venv.join("bin/python"));
                c.arg(&smoke);
                c
            }
            "linux-aarch64" => {
                let mut c = Command::new("qemu-aarch64");
                c.arg("-L")
                    .arg(&arm64_python)
                    .arg(arm64_python.join("usr/bin/python3.11"))
                    .arg(&smoke)
                    .env("PYTHONPATH", &site);
                c
            }
            _ => {
                println!("{tag}: installed; its library is the one the harness passed");
                continue;
            }
        };
        let printed = ok(&format!("smoke test on {name}"), run.arg(&config));
        let machine = if name.contains("aarch64") {
            "aarch64"
        } else {
            "x86_64"
        };
        assert_eq!(
            printed.trim(),
            format!("{machine} {} PRO", env!("CARGO_PKG_VERSION")),
            "{tag}"
        );
        println!("{tag}: {}", printed.trim());
    }
}
