#!/usr/bin/env bash
# Builds liblic4es.so for the four Linux platforms the jar and the wheels carry, and checks
# what each needs from the system:
#
#   linux-x86_64        x86_64-unknown-linux-gnu, glibc >= 2.17 (manylinux2014)
#   linux-aarch64       aarch64-unknown-linux-gnu, glibc >= 2.17
#   linux-x86_64-musl   x86_64-unknown-linux-musl (Alpine)
#   linux-aarch64-musl  aarch64-unknown-linux-musl
#
# With cargo-zigbuild: zig is the C compiler (ring's C) and the linker, against glibc
# 2.17's symbols or musl, for every target from this one machine; its unwinder is linked
# in, so no library needs libgcc_s. Needs the Rust targets (rustup target add ...) and
# cargo-zigbuild and ziglang (pip). Usage: platforms.sh [OUT_DIR] (default target/platforms)
#        platforms.sh --check LIBRARY gnu|musl   only the check below, of one library
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

# name, cargo-zigbuild target (a glibc target carries the glibc version to link against)
platforms=(
  "linux-x86_64 x86_64-unknown-linux-gnu.2.17"
  "linux-aarch64 aarch64-unknown-linux-gnu.2.17"
  "linux-x86_64-musl x86_64-unknown-linux-musl"
  "linux-aarch64-musl aarch64-unknown-linux-musl"
)

# What a library may need: the C library and, on glibc 2.17, its parts that were separate
# libraries then (a JNI shim also the engine). Nothing else (no libgcc_s, no libstdc++).
check() {
  local so=$1 libc=$2 needed n newest
  needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  for n in $needed; do
    case "$libc:$n" in
      gnu:libc.so.6 | gnu:libm.so.6 | gnu:libdl.so.2 | gnu:libpthread.so.0 | gnu:librt.so.1 | gnu:ld-linux-*) ;;
      musl:libc.so) ;;
      *:liblic4es.so.*) ;;
      *) echo "$so needs $n: only the C library is allowed" >&2; return 1 ;;
    esac
  done
  if [ "$libc" = gnu ]; then
    newest=$(readelf --dyn-syms -W "$so" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -Vu | tail -n 1)
    if [ "$(printf '%s\n' "$newest" GLIBC_2.17 | sort -V | tail -n 1)" != GLIBC_2.17 ]; then
      echo "$so needs $newest: the floor is GLIBC_2.17" >&2
      return 1
    fi
  else
    newest="musl"
  fi
  printf '%-20s %8d bytes  needs %s (newest symbol %s)\n' "$(basename "$(dirname "$so")")" \
    "$(stat -c %s "$so")" "$(echo $needed | tr ' ' ',')" "$newest"
}

if [ "${1:-}" = --check ]; then
  check "$2" "$3"
  exit
fi

out=$(mkdir -p "${1:-$root/target/platforms}" && cd "${1:-$root/target/platforms}" && pwd)
cd "$root"

for entry in "${platforms[@]}"; do
  read -r name target <<<"$entry"
  triple=${target%.2.17}
  flags=""
  # musl's default is a static C runtime, which a shared library cannot have.
  case $triple in *-musl) flags="-C target-feature=-crt-static" ;; esac
  env "CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUSTFLAGS=$flags" \
    cargo-zigbuild rustc --quiet --profile release -p lic4es --lib --crate-type cdylib \
    --target "$target" --target-dir target/zig
  mkdir -p "$out/$name"
  cp "target/zig/$triple/release/liblic4es.so" "$out/$name/liblic4es.so"
  check "$out/$name/liblic4es.so" "$(case $triple in *-musl) echo musl ;; *) echo gnu ;; esac)"
done
