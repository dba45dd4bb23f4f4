#!/usr/bin/env bash
# The Windows x86-64 build: the DLL (mingw-w64), then the engine's Rust tests built for
# x86_64-pc-windows-gnu and run under Wine. The test crates that drive Unix hosts (the C
# harness, C++, Java, install, the Linux platforms, libfaketime, the book's shell commands,
# /proc thread counts) are compiled out there by `#![cfg(unix)]`, each saying why.
#
# Needs: gcc-mingw-w64-x86-64 and wine64 (Debian), `rustup target add x86_64-pc-windows-gnu`.
# Usage: tests/wine/run.sh [extra cargo test arguments]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=x86_64-pc-windows-gnu
work=$root/target/wine
mkdir -p "$work"

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
# Rust's std on Windows needs ProcessPrng, which Wine 8 lacks: our stand-in, found on
# Wine's PATH and preferred over Wine's own (absent) one.
x86_64-w64-mingw32-gcc -O2 -shared -o "$work/bcryptprimitives.dll" \
  tests/wine/bcryptprimitives.c tests/wine/bcryptprimitives.def -lbcrypt
export WINEPATH
WINEPATH=$(winepath -w "$work" 2>/dev/null)
export WINEDLLOVERRIDES="bcryptprimitives=n"
export WINEPREFIX=$work/prefix WINEDEBUG=-all
wineboot --init >/dev/null 2>&1 || true

cargo build --release -p lic4es --lib --target $target
dll=target/$target/release/lic4es.dll
# What the DLL offers and needs: the C API and nothing else exported; system DLLs only.
exports=$(objdump -p "$dll" | sed -n 's/^\s*\[ *[0-9]*\] \(lic_[a-z_]*\)$/\1/p' | wc -l)
others=$(objdump -p "$dll" | sed -n 's/^\s*\[ *[0-9]*\] \([^ ]*\)$/\1/p' | grep -vc '^lic_' || true)
printf 'lic4es.dll %d bytes, %d lic_* exports, %d others; needs %s\n' "$(stat -c %s "$dll")" \
  "$exports" "$others" "$(objdump -p "$dll" | sed -n 's/.*DLL Name: //p' | sort -fu | tr '\n' ' ')"
[ "$exports" -gt 0 ] && [ "$others" -eq 0 ]

cargo test -p lic4es --target $target "$@"
