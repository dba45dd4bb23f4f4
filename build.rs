//! Generates include/lic4es.h from src/ffi/ and embeds the build-time public key set.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));

    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=LIC4ES_PUBLIC_KEYS_FILE");
    // A soname lets the JNI shim and C++ hosts link against it by name.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblic4es.so");

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
