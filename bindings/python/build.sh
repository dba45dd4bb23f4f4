#!/usr/bin/env bash
# Builds the lic4es wheel with maturin into OUT_DIR: the engine library (a release build
# under target/cdylib, the same one the jar and `make install` take) and the Python
# package over its C API (ctypes; no compiled extension). `pip wheel bindings/python`
# builds the same wheel without this script (and without target/cdylib).
#
# With --platforms, DIR is what `make platforms` builds (DIR/<platform>/liblic4es.so):
# OUT_DIR gets the four Linux platforms' wheels (manylinux2014 and musllinux_1_2, x86-64
# and aarch64), each the wheel built here with that platform's library (platform_wheels.py).
#
# Usage: build.sh OUT_DIR
#        build.sh --platforms DIR OUT_DIR
# (maturin and cffi from the Python environment on PATH, or MATURIN=path/to/maturin)
set -euo pipefail
platforms=""
if [ "${1:-}" = --platforms ] && [ $# = 3 ]; then
  platforms=$(cd "$2" && pwd)
  shift 2
fi
[ $# = 1 ] || { echo "usage: $0 [--platforms DIR] OUT_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# OUT_DIR as the caller meant it, before the cd below.
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$here"
if [ -z "$platforms" ]; then
  "${MATURIN:-maturin}" build --release --target-dir "$root/target/cdylib" --out "$out"
  exit
fi
host=$(mktemp -d)
trap 'rm -rf "$host"' EXIT
"${MATURIN:-maturin}" build --release --target-dir "$root/target/cdylib" --out "$host" >&2
python3 "$here/platform_wheels.py" "$host"/*.whl "$platforms" "$out"
