//! Builds tests/c/harness.c with -Wall -Wextra -Werror and runs it against the cdylib
//! through dlopen. With LIC4ES_VALGRIND=1 it also runs under valgrind and fails on any
//! error or definitely-lost block.
#![cfg(unix)] // The harness is a Linux C program that dlopens the .so.

mod common;

use std::process::Command;

use common::*;

/// The C compiler for the tests' target: `CC`, or `cc`; for another target, the one the
/// `cc` crate would take, `CC_<target>` (for example `zig cc -target aarch64-linux-gnu`).
fn target_cc() -> Command {
    let var = match cross_target() {
        Some(t) => format!("CC_{}", t.replace('-', "_")),
        None => "CC".into(),
    };
    let cc = std::env::var(&var).unwrap_or_else(|_| "cc".into());
    let mut words = cc.split_whitespace();
    let mut c = Command::new(words.next().unwrap_or("cc"));
    c.args(words);
    c
}
use serde_json::json;

#[test]
#[cfg_attr(lic4es_no_cc, ignore = "no C compiler: apt-get install gcc")]
fn c_harness_passes() {
    let lib = cdylib();
    let work = target_dir().join("c-harness");
    std::fs::create_dir_all(&work).unwrap();
    let exe = work.join("harness");

    build_c_harness(target_cc(), &exe);

    let cache = tempfile::tempdir().unwrap();
    let config = json!({
        "key": mint(&claims("pro", wall_now() + 30 * DAY)),
        "public-keys": jwks(),
        "cache-dir": cache.path().join("c").to_str().unwrap(),
        "log-level": "debug",
    });
    let config_path = work.join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();

    // The Community-only init inside the harness gets its own cache dir, so no test run
    // ever writes to ~/.softclient4es.
    let community_dir = cache.path().join("community");
    let run = target_command(&exe)
        .arg(&lib)
        .arg(&config_path)
        .arg(&community_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "harness failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");

    if std::env::var("LIC4ES_VALGRIND").as_deref() == Ok("1") {
        let vg = Command::new("valgrind")
            .args([
                "--error-exitcode=1",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite",
            ])
            .arg(&exe)
            .arg(&lib)
            .arg(&config_path)
            .arg(&community_dir)
            .output()
            .expect("valgrind");
        let report = String::from_utf8_lossy(&vg.stderr);
        assert!(vg.status.success(), "valgrind found errors:\n{report}");
        assert!(
            report.contains("definitely lost: 0 bytes") || !report.contains("definitely lost"),
            "{report}"
        );
        println!(
            "{}",
            report
                .lines()
                .filter(|l| l.contains("lost") || l.contains("ERROR SUMMARY"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// `docs/explanation/performance.md`: in the shipped (release) library, `lic_current_tier` is one load and a
/// return. Read off the machine code, since a timing cannot show it reliably.
#[test]
#[cfg(target_arch = "x86_64")]
#[cfg_attr(lic4es_no_binutils, ignore = "no objdump: apt-get install binutils")]
fn lic_current_tier_is_one_load_and_a_return() {
    // Where binutils is missing build.rs marks this test ignored.
    assert!(
        have_tool("objdump") && have_tool("nm"),
        "objdump and nm (binutils)"
    );
    let lib = cdylib();
    let nm = Command::new("nm").arg("-D").arg(&lib).output().unwrap();
    let syms = String::from_utf8_lossy(&nm.stdout);
    let addr = syms
        .lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            let (a, kind, name) = (it.next()?, it.next()?, it.next()?);
            (kind == "T" && name == "lic_current_tier").then(|| u64::from_str_radix(a, 16).ok())?
        })
        .expect("lic_current_tier exported");
    let dis = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(format!("--start-address={addr:#x}"))
        .arg(format!("--stop-address={:#x}", addr + 32))
        .arg(&lib)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dis.stdout);
    let insns: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once(":\t").map(|(_, i)| i.trim().to_string()))
        .take_while(|i| !i.starts_with("int3") && !i.starts_with("nop"))
        .collect();
    let end = insns.iter().position(|i| i == "ret").expect("a ret") + 1;
    let body = &insns[..end];
    assert_eq!(body.len(), 2, "expected a load and a return:\n{text}");
    assert!(
        body[0].starts_with("mov") && body[0].contains("(%rip)"),
        "{text}"
    );
}
