//! Generates include/lic4es.h from src/ffi/ and embeds the build-time public key set.

use std::env;
use std::fs;
use std::path::PathBuf;

/// The state key of builds that set none (`LIC4ES_STATE_KEY`).
const DEFAULT_STATE_KEY: &str = "lic4es-default-state-key-2026";

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));

    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=LIC4ES_PUBLIC_KEYS_FILE");
    // For the tests: built for another target than this machine's (and run under an
    // emulator), they build the library and the programs they start for it too.
    for (var, name) in [("TARGET", "LIC4ES_TARGET"), ("HOST", "LIC4ES_HOST")] {
        println!("cargo:rustc-env={name}={}", env::var(var).expect(var));
    }
    // A versioned soname, as C libraries have: a host linked against this release records
    // `liblic4es.so.<major>` and is never loaded against an incompatible one (the install
    // step, the jar and the wheel all carry the library under that name).
    // macOS records an install name instead; a Windows DLL has neither.
    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("CARGO_PKG_VERSION_MAJOR");
    match env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("macos" | "ios") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/liblic4es.{major}.dylib")
        }
        Ok("windows") => {}
        _ => println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblic4es.so.{major}"),
    }

    // Vendors build their public keys into the library so that no operator-editable file
    // decides which signatures are trusted.
    let keys = match env::var("LIC4ES_PUBLIC_KEYS_FILE") {
        Ok(path) if !path.trim().is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("LIC4ES_PUBLIC_KEYS_FILE {path}: {e}"))
        }
        _ => String::new(),
    };
    fs::write(out.join("builtin_public_keys.json"), keys).expect("write builtin keys");

    // The license server a vendor's build is fixed to, and the only certificate authority
    // trusted for it: the customer's config, network and trust store cannot choose them.
    println!("cargo:rerun-if-env-changed=LIC4ES_API_URL");
    let api_url = env::var("LIC4ES_API_URL").unwrap_or_default();
    fs::write(out.join("builtin_api_url.txt"), api_url.trim()).expect("write api url");
    println!("cargo:rerun-if-env-changed=LIC4ES_API_CA_FILE");
    let api_ca = match env::var("LIC4ES_API_CA_FILE") {
        Ok(path) if !path.trim().is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("LIC4ES_API_CA_FILE {path}: {e}"))
        }
        _ => String::new(),
    };
    fs::write(out.join("builtin_api_ca.pem"), api_ca).expect("write api ca");

    // The key `state.json` is sealed with: a vendor sets its own, so that a state sealed
    // by another vendor's build (or this project's) does not verify in theirs.
    println!("cargo:rerun-if-env-changed=LIC4ES_STATE_KEY");
    let state_key = match env::var("LIC4ES_STATE_KEY") {
        Ok(k) if !k.trim().is_empty() => {
            assert!(
                k.trim().len() >= 16,
                "LIC4ES_STATE_KEY must be at least 16 characters"
            );
            k.trim().to_string()
        }
        _ => DEFAULT_STATE_KEY.to_string(),
    };
    fs::write(out.join("builtin_state_key.txt"), state_key).expect("write state key");

    // The vendor's Community entitlements, likewise: an operator's config may narrow them
    // and never widen them. Unset: SoftClient4ES's own (src/config/entitlements.rs).
    println!("cargo:rerun-if-env-changed=LIC4ES_COMMUNITY_FILE");
    let community = match env::var("LIC4ES_COMMUNITY_FILE") {
        Ok(path) if !path.trim().is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("LIC4ES_COMMUNITY_FILE {path}: {e}"))
        }
        _ => String::new(),
    };
    fs::write(out.join("builtin_community.json"), community).expect("write builtin community");

    // The probe only matters where the integration tests are: the published package
    // leaves them out (Cargo.toml `exclude`), so a host that depends on the library never
    // runs it, nor rebuilds when a directory on its PATH changes.
    if root.join("tests").is_dir() {
        probe_test_tools();
    }

    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .expect("generate C header");
    let header = root.join("include/lic4es.h");
    let mut text = Vec::new();
    bindings.write(&mut text);
    // Rewriting an unchanged header would touch its mtime and dirty incremental builds.
    if fs::read(&header).ok().as_deref() != Some(text.as_slice()) {
        fs::create_dir_all(root.join("include")).expect("create include/");
        fs::write(&header, text).expect("write include/lic4es.h");
    }
}

/// Tools some tests need, and the cfg set when they are missing so that those tests are
/// marked ignored, with the install command, and a test summary shows what was not run.
/// Under `LIC4ES_REQUIRE_ALL=1` (CI) nothing is marked: a missing tool fails its test.
const TEST_TOOLS: [(&str, &[&str], &[&str], &str); 7] = [
    ("lic4es_no_cc", &["cc"], &[], "gcc"),
    ("lic4es_no_cxx", &["g++"], &[], "g++"),
    (
        "lic4es_no_jdk",
        &["java", "javac", "jar", "cc"],
        &[
            "/usr/share/java/junit4.jar",
            "/usr/share/java/hamcrest-core.jar",
        ],
        "openjdk-17-jdk-headless junit4",
    ),
    (
        "lic4es_no_scala",
        &["java", "javac", "jar", "scalac", "scala"],
        &["/usr/share/java/typesafe-config.jar"],
        "scala libtypesafe-config-java",
    ),
    ("lic4es_no_faketime", &["faketime"], &[], "faketime"),
    ("lic4es_no_binutils", &["objdump", "nm"], &[], "binutils"),
    (
        "lic4es_no_pkg_config",
        &["make", "pkg-config", "cc", "g++", "objdump"],
        &[],
        "make pkgconf g++ binutils",
    ),
];

fn probe_test_tools() {
    println!("cargo:rerun-if-env-changed=LIC4ES_REQUIRE_ALL");
    for (cfg, ..) in TEST_TOOLS {
        println!("cargo:rustc-check-cfg=cfg({cfg})");
    }
    // Every tool is required: nothing is marked, so nothing here depends on PATH, and a
    // test that puts a venv on PATH to build the wheel does not rebuild the library.
    if env::var("LIC4ES_REQUIRE_ALL").as_deref() == Ok("1") {
        return;
    }
    let path = env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = env::split_paths(&path).filter(|d| d.is_dir()).collect();
    // Installing a package changes the system's directories, which runs the probe again.
    // PATH itself is not watched, nor the directories on it that builds write or that come
    // and go (this tree's `target/release` once a reader puts it on PATH, the temporary
    // environment pip builds the wheel in): each would rebuild the library whenever a
    // build runs with another PATH, or at every build.
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let temp = env::temp_dir();
    for d in dirs
        .iter()
        .filter(|d| !d.starts_with(&root) && !d.starts_with(&temp))
    {
        println!("cargo:rerun-if-changed={}", d.display());
    }
    if std::path::Path::new("/usr/share/java").is_dir() {
        println!("cargo:rerun-if-changed=/usr/share/java");
    }
    for (cfg, tools, files, packages) in TEST_TOOLS {
        let missing: Vec<&str> = tools
            .iter()
            .copied()
            .filter(|t| !dirs.iter().any(|d| d.join(t).is_file()))
            .chain(
                files
                    .iter()
                    .copied()
                    .filter(|f| !std::path::Path::new(f).is_file()),
            )
            .collect();
        if !missing.is_empty() {
            println!("cargo:rustc-cfg={cfg}");
            println!(
                "cargo:warning=tests needing {} are ignored: apt-get install {packages}",
                missing.join(", ")
            );
        }
    }
}
