//! The Python binding (`bindings/python`): the wheel `pip wheel` builds from the source
//! tree in a fresh venv (and `build.sh`'s), installed into a fresh
//! venv where it imports with nothing else; `auditwheel show` on it; `mypy --strict` on the
//! package and the example; and its pytest suite against real license-server processes
//! (this crate's binary), run from the tools venv with the wheel installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{on_real_clock, run};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(
    lic4es_no_python,
    ignore = "no Python tools venv: python3 -m venv target/python-venv && \
              target/python-venv/bin/pip install -r bindings/python/requirements-dev.txt"
)]
fn the_python_wheel_installs_alone_is_typed_and_passes_its_tests() {
    let root = root();
    let venv = root.join("target/python-venv");
    let bin = venv.join("bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let work = root.join("target/python-test");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    // The wheel as a Python user builds it: `pip wheel` on the source tree from a fresh
    // venv, maturin and cffi fetched by pip's build isolation, nothing of this project's
    // tooling. The only help is where cargo builds: target/cdylib, where the jar's and the
    // C tests' library already is (the same command, so no second build).
    let wheels = work.join("wheels");
    let builder = work.join("builder-venv");
    run(on_real_clock(
        Command::new(bin.join("python"))
            .args(["-m", "venv"])
            .arg(&builder),
    ));
    run(on_real_clock(common::as_from_a_shell(
        Command::new(builder.join("bin/pip"))
            .args([
                "wheel",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--wheel-dir")
            .arg(&wheels)
            // Built in target/cdylib, beside the library the other tests use
            // (bindings/python/.cargo/config.toml), as a reader's `pip install` is.
            .arg(root.join("bindings/python"))
            .env(
                "CARGO",
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            ),
    )));
    let find_wheel = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .unwrap_or_else(|| panic!("no wheel in {}", dir.display()))
    };
    let wheel = find_wheel(&wheels);

    // build.sh (the tools venv's maturin) puts its wheel where it is asked, relative to
    // where it was called from.
    run(on_real_clock(common::as_from_a_shell(
        Command::new(root.join("bindings/python/build.sh"))
            .arg("by-script")
            .current_dir(&work)
            .env("PATH", &path)
            .env("VIRTUAL_ENV", &venv)
            .env(
                "CARGO",
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            ),
    )));
    find_wheel(&work.join("by-script"));
    let size = std::fs::metadata(&wheel).unwrap().len();
    println!(
        "wheel {}: {size} bytes",
        wheel.file_name().unwrap().to_string_lossy()
    );

    // A manylinux tag, and nothing outside the wheel but what manylinux allows.
    let show = text(&run(Command::new(bin.join("auditwheel"))
        .arg("show")
        .arg(&wheel)));
    println!("auditwheel show:\n{show}");
    assert!(show.contains("manylinux_"), "{show}");
    // Only libc and libgcc_s, which every manylinux system provides: nothing to vendor.
    assert!(
        !show.contains("external shared libraries are required"),
        "{show}"
    );
    assert!(
        !show.contains("libssl") && !show.contains("libcrypto"),
        "{show}"
    );

    // A fresh venv and nothing else: pip installs the wheel offline, and it imports.
    let fresh = work.join("fresh-venv");
    run(on_real_clock(
        Command::new(bin.join("python"))
            .args(["-m", "venv"])
            .arg(&fresh),
    ));
    run(Command::new(fresh.join("bin/pip"))
        .args([
            "install",
            "--no-index",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(&wheel));
    let probe = "import time; t = time.perf_counter(); import lic4es; \
                 ms = (time.perf_counter() - t) * 1e3; \
                 print(lic4es.version(), lic4es.current_tier().name, lic4es.library_path(), \
                 f'{ms:.1f}')";
    let out = text(&run(Command::new(fresh.join("bin/python"))
        .args(["-c", probe])
        .current_dir(&work)));
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        fields[..2],
        [env!("CARGO_PKG_VERSION"), "COMMUNITY"],
        "{out}"
    );
    assert!(
        fields[2].starts_with(fresh.to_str().unwrap()),
        "loaded from the venv: {out}"
    );
    println!("import lic4es in a fresh venv: {} ms", fields[3]);
    let soname = text(&run(Command::new("objdump").arg("-p").arg(fields[2])));
    assert!(
        soname.contains("SONAME               liblic4es.so.0"),
        "the wheel carries the versioned library: {soname}"
    );

    // Typed: the package and the example under mypy --strict.
    run(Command::new(bin.join("mypy"))
        .arg("--strict")
        .arg(root.join("bindings/python/python/lic4es"))
        .arg(root.join("examples/python/coditect_cli.py"))
        .env("MYPYPATH", root.join("bindings/python/python"))
        .env("MYPY_CACHE_DIR", work.join("mypy-cache")));

    // The suite, against this crate's license-server.
    run(Command::new(bin.join("pip"))
        .args([
            "install",
            "--no-index",
            "--no-deps",
            "--force-reinstall",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(&wheel));
    let out = Command::new(bin.join("pytest"))
        .args(["-q", "-s", "-p", "no:cacheprovider", "--basetemp"])
        .arg(work.join("pytest"))
        .arg(root.join("bindings/python/tests"))
        .current_dir(&work)
        .env("LIC4ES_SERVER", env!("CARGO_BIN_EXE_license-server"))
        .output()
        .unwrap();
    let stdout = text(&out);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "pytest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(" passed") && !stdout.contains(" skipped"),
        "{stdout}"
    );
}
