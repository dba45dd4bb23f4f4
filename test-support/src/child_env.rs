//! What a test takes out of a child process's environment.

/// `cmd`, which runs cargo, without what cargo sets in a test's environment
/// (`CARGO_MANIFEST_DIR`, `OUT_DIR`, ...): build scripts that watch one of them (ring's
/// watches both) would otherwise see another value from each test crate
/// and rebuild the release library that the C tests, the jar and the wheel share.
pub fn as_from_a_shell(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for (name, _) in std::env::vars_os() {
        let Some(n) = name.to_str() else { continue };
        let set_for_tests = n.starts_with("CARGO_PKG_")
            || n.starts_with("CARGO_BIN_EXE_")
            || matches!(
                n,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
            );
        if set_for_tests {
            cmd.env_remove(n);
        }
    }
    cmd
}

/// `cmd` with the calendar guard's libfaketime taken out of its environment. CI runs the
/// suites a second time with their clock moved a year ahead (`faketime`), which every
/// child inherits; third-party services (Redis, whose allocator cannot start under
/// libfaketime, PostgreSQL, Chromium, cargo) stay on the real clock.
pub fn on_real_clock(cmd: &mut std::process::Command) -> &mut std::process::Command {
    if std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains("faketime")) {
        cmd.env_remove("LD_PRELOAD");
    }
    for v in [
        "FAKETIME",
        "DONT_FAKE_MONOTONIC",
        "FAKETIME_DONT_FAKE_MONOTONIC",
    ] {
        cmd.env_remove(v);
    }
    cmd
}
