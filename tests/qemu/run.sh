#!/usr/bin/env bash
# The engine's Rust suite for another Linux target, run under qemu-user: the library's
# unit tests, the integration tests and the C harness, built by cargo-zigbuild (zig as C
# compiler and linker, for the target's C library) and each test binary run under
# qemu-<arch>, which also runs the programs the tests start (tests/common::target_command)
# and the harness (compiled for the target, tests/common::cdylib() building the library for
# it). Left out are the crates that drive this machine's own toolchains: C++ (g++), the
# install (make, pkg-config), Java, the platform builds (zig, qemu itself), libfaketime
# (an x86-64 preload library) and the book's shell commands.
#
# Needs: rustup target add TARGET; cargo-zigbuild and zig on PATH (.ci/tools.txt);
# qemu-user and the target's C library (Debian: libc6:arm64 or musl:arm64).
# Usage: tests/qemu/run.sh [TARGET] [cargo test arguments after --]
#        (TARGET: aarch64-unknown-linux-gnu, the default, or aarch64-unknown-linux-musl)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${1:-aarch64-unknown-linux-gnu}
shift || true
arch=${target%%-*}
var=$(echo "$target" | tr 'a-z-' 'A-Z_')
# glibc's loader is found in the multiarch root; musl's under /usr/lib/musl.
export "CARGO_TARGET_${var}_RUNNER=qemu-$arch"
case "$target" in
  *-musl)
    export "CARGO_TARGET_${var}_RUSTFLAGS=-C target-feature=-crt-static"
    ;;
esac
tests=()
for t in tests/*.rs; do
  name=$(basename "$t" .rs)
  case "$name" in
    cpp | install | java | platforms | faketime | docs) ;;
    *) tests+=(--test "$name") ;;
  esac
done
started=$SECONDS
cargo-zigbuild test -p lic4es --target "$target" --lib --bins "${tests[@]}" "$@"
echo "$target under qemu-$arch: $((SECONDS - started)) s"
