#!/usr/bin/env bash
# Builds the lic4es wheel with maturin: the engine library (a release build under
# target/cdylib, the same one the jar and `make install` take) and the Python package
# over its C API (ctypes; no compiled extension).
# Usage: build.sh OUT_DIR    (maturin and cffi from the Python environment on PATH, or
# MATURIN=path/to/maturin)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$1
target=$root/target/cdylib
mkdir -p "$target"
# maturin's cffi layout is how it packs a plain C-ABI library; it wants the declarations
# without the preprocessor lines cffi cannot read. Its generated cffi module goes unused.
sed -e '/^#ifdef __cplusplus/,/^#endif/d' -e '/^#define LIC_[A-Z_]* [0-9]*$/b' -e '/^#/d' \
  "$root/include/lic4es.h" >"$target/header.h"
cd "$here"
"${MATURIN:-maturin}" build --release --target-dir "$target" --out "$out"
