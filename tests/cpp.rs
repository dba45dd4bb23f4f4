//! bindings/cpp/lic4es.hpp compiled with -std=c++17 -Wall -Wextra -Werror by g++ (and
//! clang++ when present) and run against the shared library.
#![cfg(unix)] // The C++ binding is compiled by the host's g++ against the .so.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

#[test]
#[cfg_attr(lic4es_no_cxx, ignore = "no C++ compiler: apt-get install g++")]
fn cpp_wrapper_passes_with_every_compiler_present() {
    let compilers: Vec<&str> = ["g++", "clang++"]
        .into_iter()
        .filter(|c| *c == "g++" && have_tool(c) || *c == "clang++" && tool_exists(c))
        .collect();
    assert!(!compilers.is_empty(), "g++ is needed");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib = cdylib();
    let libdir = lib.parent().unwrap();
    let work = target_dir().join("cpp-test");
    std::fs::create_dir_all(&work).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = work.join("config.json");
    std::fs::write(
        &config,
        live_pro_config(&dir.path().join("pro"), "info").as_bytes(),
    )
    .unwrap();
    for cxx in compilers {
        let exe = work.join(format!("engine_test-{cxx}"));
        let out = Command::new(cxx)
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(root.join("include"))
            .arg("-I")
            .arg(root.join("bindings/cpp"))
            .arg(root.join("tests/cpp/engine_test.cpp"))
            .arg("-o")
            .arg(&exe)
            .arg(format!("-L{}", libdir.display()))
            .arg(format!("-Wl,-rpath,{}", libdir.display()))
            .args(["-llic4es", "-lpthread"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{cxx} does not compile the wrapper:\n{said}"
        );
        let run = Command::new(&exe)
            .arg(&config)
            .arg(dir.path().join("community"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && stdout.contains(" 0 failed"),
            "{cxx}: {stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        println!("{cxx}: {}", stdout.trim());
    }
}
