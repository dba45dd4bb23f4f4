#!/usr/bin/env bash
# Builds lic4es.jar with the JDK alone: the JNI shim (cc), classes for Java 8
# (javac --release 8), and both native libraries under /native/<platform>/ (the engine as
# liblic4es.so.<major>, as installed).
# Usage: build.sh PATH/TO/liblic4es.so OUT_DIR          this machine's library (cc)
#        build.sh --platforms DIR OUT_DIR                the jar to ship
# With --platforms, DIR is what `make platforms` builds (DIR/<platform>/liblic4es.so): the
# jar carries the four Linux platforms, each shim built by `zig cc` for its platform (on
# glibc against 2.17, like the engine), so the whole jar runs where the libraries do.
set -euo pipefail
if [ "$1" = --platforms ]; then
  platforms=$(readlink -f "$2")
  lib=$platforms/linux-x86_64/liblic4es.so
  out=$3
else
  platforms=""
  lib=$(readlink -f "$1")
  out=$2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
javac=$(command -v javac)
java_home=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$javac")")")}

rm -rf "$out/classes" "$out/native"
mkdir -p "$out/classes"
# The engine under its soname (liblic4es.so.<major>), the name the shim records.
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
soname=${soname:-liblic4es.so.0}

# native PLATFORM LIBRARY CC...: the engine and its shim under /native/PLATFORM/. The
# shim finds the engine next to itself ($ORIGIN), wherever it is extracted.
native() {
  local dir="$out/native/$1" engine=$2
  shift 2
  mkdir -p "$dir"
  cp "$engine" "$dir/$soname"
  chmod u+w "$dir/$soname"
  "$@" -shared -fPIC -O2 -std=c11 -Wall -Wextra -Werror \
    -I"$java_home/include" -I"$java_home/include/linux" -I"$root/include" \
    "$here/native/lic4es_jni.c" -o "$dir/liblic4es_jni.so" \
    -L"$dir" -l:"$soname" -lpthread -Wl,-rpath,'$ORIGIN' -Wl,--no-undefined
}
if [ -z "$platforms" ]; then
  native linux-x86_64 "$lib" cc
  strip --strip-unneeded "$out/native/linux-x86_64/$soname" 2>/dev/null || true
else
  for entry in linux-x86_64:x86_64-linux-gnu.2.17 linux-aarch64:aarch64-linux-gnu.2.17 \
    linux-x86_64-musl:x86_64-linux-musl linux-aarch64-musl:aarch64-linux-musl; do
    name=${entry%%:*}
    native "$name" "$platforms/$name/liblic4es.so" zig cc -target "${entry#*:}"
  done
fi

"$javac" --release 8 -Xlint:all,-options -Werror -d "$out/classes" \
  $(find "$here/src/main/java" -name '*.java')
jar cf "$out/lic4es.jar" -C "$out/classes" . -C "$out" native
echo "$out/lic4es.jar"
