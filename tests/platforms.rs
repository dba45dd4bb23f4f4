//! The libraries `bindings/c/platforms.sh` builds for the four Linux platforms, each loaded
//! by the C harness (tests/c/harness.c) built for its platform with zig: the x86-64 ones
//! natively, the aarch64 ones under qemu-user. The musl libraries skip the harness's
//! unload checks (musl's `dlclose` never unmaps, by design), and it says so.
#![cfg(unix)] // The Linux platforms' libraries, built and run from Linux.

mod common;

use std::path::Path;
use std::process::Command;

use common::{build_c_harness, claims, jwks, mint, wall_now, DAY};
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
    let build = Command::new("bash")
        .arg(root.join("bindings/java/build.sh"))
        .arg("--platforms")
        .arg(root.join("target/platforms"))
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
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
