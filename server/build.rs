//! Marks the tests that need a Redis or PostgreSQL server (or promtool, or Chromium with
//! its WebDriver) ignored when those are not installed, and says the install command once
//! per tool as a build warning (so a test summary shows what did not run, and why).
//! Under `LIC4ES_REQUIRE_ALL=1` (CI) nothing is marked: a missing server fails its test.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=LIC4ES_REQUIRE_ALL");
    println!("cargo:rustc-check-cfg=cfg(lic4es_no_redis)");
    println!("cargo:rustc-check-cfg=cfg(lic4es_no_postgres)");
    println!("cargo:rustc-check-cfg=cfg(lic4es_no_shared_stores)");
    println!("cargo:rustc-check-cfg=cfg(lic4es_no_promtool)");
    println!("cargo:rustc-check-cfg=cfg(lic4es_no_chromium)");
    println!("cargo:rustc-check-cfg=cfg(lic4es_no_python)");
    println!("cargo:rustc-check-cfg=cfg(lic4es_no_git)");
    println!("cargo:rustc-check-cfg=cfg(lic4es_not_root)");
    // Every tool is required: nothing is marked, so nothing here depends on PATH or on
    // what is installed, and nothing is rebuilt when they change.
    if env::var("LIC4ES_REQUIRE_ALL").as_deref() == Ok("1") {
        return;
    }
    println!("cargo:rerun-if-env-changed=PATH");
    let path = env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = env::split_paths(&path).filter(|d| d.is_dir()).collect();
    for d in &dirs {
        println!("cargo:rerun-if-changed={}", d.display());
    }
    let pg_root = Path::new("/usr/lib/postgresql");
    if pg_root.is_dir() {
        println!("cargo:rerun-if-changed={}", pg_root.display());
    }
    let have_redis = dirs.iter().any(|d| d.join("redis-server").is_file());
    let have_pg = std::fs::read_dir(pg_root)
        .map(|rd| rd.flatten().any(|e| e.path().join("bin/initdb").is_file()))
        .unwrap_or(false);
    if !dirs.iter().any(|d| d.join("git").is_file()) {
        println!("cargo:rustc-cfg=lic4es_no_git");
        println!("cargo:warning=tests needing git are ignored: apt-get install git");
    }
    // Mounting a small tmpfs (a full disk under the audit trail) needs root; the tests
    // run as the user that builds them.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false);
    if !root {
        println!("cargo:rustc-cfg=lic4es_not_root");
        println!("cargo:warning=the full-disk test is ignored: it mounts a tmpfs, as root");
    }
    if !have_redis {
        println!("cargo:rustc-cfg=lic4es_no_redis");
        println!(
            "cargo:warning=tests needing redis-server are ignored: apt-get install redis-server"
        );
    }
    if !dirs.iter().any(|d| d.join("promtool").is_file()) {
        println!("cargo:rustc-cfg=lic4es_no_promtool");
        println!("cargo:warning=tests needing promtool are ignored: apt-get install prometheus");
    }
    let have_browser = ["chromium", "chromedriver"]
        .iter()
        .all(|t| dirs.iter().any(|d| d.join(t).is_file()));
    if !have_browser {
        println!("cargo:rustc-cfg=lic4es_no_chromium");
        println!(
            "cargo:warning=the dashboard's browser test is ignored: apt-get install chromium \
             chromium-driver"
        );
    }
    // The Python binding's tools live in a venv (`.ci/run` makes it; pip from PyPI).
    let venv = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("../target/python-venv/bin");
    println!("cargo:rerun-if-changed={}", venv.display());
    let have_venv = ["python", "maturin", "pytest", "mypy", "auditwheel"]
        .iter()
        .all(|t| venv.join(t).is_file());
    if !have_venv {
        println!("cargo:rustc-cfg=lic4es_no_python");
        println!(
            "cargo:warning=the Python binding's tests are ignored: python3 -m venv \
             target/python-venv && target/python-venv/bin/pip install -r \
             bindings/python/requirements-dev.txt"
        );
    }
    if !have_pg {
        println!("cargo:rustc-cfg=lic4es_no_postgres");
        println!("cargo:warning=tests needing PostgreSQL are ignored: apt-get install postgresql");
    }
    // Instances sharing a database and a seat store need both.
    if !(have_redis && have_pg) {
        println!("cargo:rustc-cfg=lic4es_no_shared_stores");
    }
}
