//! `make install`: the shared library under its full version with the soname and
//! development links, the static library, both headers and `lic4es.pc`; then a C host and
//! a C++ host built with nothing but `pkg-config --cflags --libs lic4es` against that
//! prefix, run, and a C host linked statically from `pkg-config --static`.
#![cfg(unix)] // `make install` lays out a Unix prefix.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn make_install(prefix: &Path, destdir: Option<&Path>) {
    let mut cmd = Command::new("make");
    on_real_clock(as_from_a_shell(&mut cmd));
    cmd.current_dir(root())
        .arg("--no-print-directory")
        .arg("install")
        .arg(format!("PREFIX={}", prefix.display()))
        .env(
            "CARGO",
            std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        );
    if let Some(d) = destdir {
        cmd.arg(format!("DESTDIR={}", d.display()));
    }
    run(&mut cmd);
}

fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    pkg_config_of(prefix, "lic4es", args)
}

fn pkg_config_of(prefix: &Path, package: &str, args: &[&str]) -> Vec<String> {
    let out = run(Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .env_remove("PKG_CONFIG_LIBDIR")
        .args(args)
        .arg(package));
    stdout(&out).split_whitespace().map(str::to_owned).collect()
}

/// The dynamic section's `NEEDED` and `SONAME` entries of an ELF file.
fn dynamic(file: &Path, tag: &str) -> Vec<String> {
    let out = run(Command::new("objdump").arg("-p").arg(file));
    stdout(&out)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(tag)).then(|| w.next().unwrap_or("").to_owned())
        })
        .collect()
}

#[test]
#[cfg_attr(
    lic4es_no_pkg_config,
    ignore = "no make, pkg-config or compilers: apt-get install make pkgconf g++ binutils"
)]
fn an_installed_lic4es_is_found_by_pkg_config_and_runs_c_and_cpp_hosts() {
    for tool in ["make", "pkg-config", "cc", "g++", "objdump"] {
        assert!(have_tool(tool), "{tool} is needed");
    }
    cdylib();
    let work = tempfile::tempdir().unwrap();
    let prefix = work.path().join("prefix");
    make_install(&prefix, None);

    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let lib = prefix.join("lib");
    let real = lib.join(format!("liblic4es.so.{version}"));
    assert!(real.is_file(), "{} installed", real.display());
    assert_eq!(
        std::fs::read_link(lib.join(format!("liblic4es.so.{major}"))).unwrap(),
        PathBuf::from(format!("liblic4es.so.{version}"))
    );
    assert_eq!(
        std::fs::read_link(lib.join("liblic4es.so")).unwrap(),
        PathBuf::from(format!("liblic4es.so.{major}"))
    );
    assert_eq!(dynamic(&real, "SONAME"), [format!("liblic4es.so.{major}")]);
    for f in ["lib/liblic4es.a", "include/lic4es.h", "include/lic4es.hpp"] {
        assert!(prefix.join(f).is_file(), "{f} installed");
    }
    assert_eq!(pkg_config(&prefix, &["--modversion"]), [version]);

    let config = work.path().join("config.json");
    std::fs::write(
        &config,
        live_pro_config(&work.path().join("cache"), "info").as_bytes(),
    )
    .unwrap();
    let ld_path = ("LD_LIBRARY_PATH", lib.as_os_str());

    // C, dynamically: the executable names the soname, not the file or the dev link.
    let flags = pkg_config(&prefix, &["--cflags", "--libs"]);
    let c_app = work.path().join("c_app");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(root().join("tests/c/installed_app.c"))
        .arg("-o")
        .arg(&c_app)
        .args(&flags));
    assert!(
        dynamic(&c_app, "NEEDED").contains(&format!("liblic4es.so.{major}")),
        "the C host needs liblic4es.so.{major}"
    );
    let out = run(Command::new(&c_app).arg(&config).env(ld_path.0, ld_path.1));
    assert_eq!(stdout(&out).trim(), format!("version {version} tier pro"));

    // C++, with the RAII wrapper from the same include directory.
    let cpp_app = work.path().join("cpp_app");
    run(Command::new("g++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror"])
        .arg(root().join("tests/cpp/engine_test.cpp"))
        .arg("-o")
        .arg(&cpp_app)
        .args(&flags)
        .arg("-lpthread"));
    let out = run(Command::new(&cpp_app)
        .arg(&config)
        .arg(work.path().join("community"))
        .env(ld_path.0, ld_path.1));
    assert!(stdout(&out).contains(" 0 failed"), "{}", stdout(&out));

    // C, statically, by what `lic4es-static` says alone (the archive and what it needs),
    // and no liblic4es at run time.
    let static_app = work.path().join("static_app");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .args(pkg_config_of(&prefix, "lic4es-static", &["--cflags"]))
        .arg(root().join("tests/c/installed_app.c"))
        .args(pkg_config_of(&prefix, "lic4es-static", &["--libs"]))
        .arg("-o")
        .arg(&static_app));
    assert!(
        !dynamic(&static_app, "NEEDED")
            .iter()
            .any(|n| n.starts_with("liblic4es")),
        "the static host needs no liblic4es"
    );
    let out = run(Command::new(&static_app).arg(&config));
    assert_eq!(stdout(&out).trim(), format!("version {version} tier pro"));

    // A staged install (a package build) names the final prefix, not the staging one.
    let stage = work.path().join("stage");
    make_install(Path::new("/opt/lic4es"), Some(&stage));
    let pc = std::fs::read_to_string(stage.join("opt/lic4es/lib/pkgconfig/lic4es.pc")).unwrap();
    assert!(pc.contains("prefix=/opt/lic4es\n"), "{pc}");
    assert!(!pc.contains(stage.to_str().unwrap()), "{pc}");
}
