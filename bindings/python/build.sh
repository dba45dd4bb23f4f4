#!/usr/bin/env bash
# Builds the lic4es wheel with maturin into OUT_DIR: the engine library (a release build
# under target/cdylib, the same one the jar and `make install` take) and the Python
# package over its C API (ctypes; no compiled extension). `pip wheel bindings/python`
# builds the same wheel without this script (and without target/cdylib).
# Usage: build.sh OUT_DIR    (maturin and cffi from the Python environment on PATH, or
# MATURIN=path/to/maturin)
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# OUT_DIR as the caller meant it, before the cd below.
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$here"
"${MATURIN:-maturin}" build --release --target-dir "$root/target/cdylib" --out "$out"
