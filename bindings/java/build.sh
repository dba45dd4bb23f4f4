#!/usr/bin/env bash
# Builds lic4es.jar with the JDK alone: the JNI shim (cc), classes for Java 8
# (javac --release 8), and both native libraries under /native/linux-x86_64/ (the
# engine as liblic4es.so.<major>, as installed).
# Usage: build.sh PATH/TO/liblic4es.so OUT_DIR
set -euo pipefail
lib=$(readlink -f "$1")
out=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
javac=$(command -v javac)
java_home=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$javac")")")}

rm -rf "$out/classes" "$out/native"
mkdir -p "$out/classes" "$out/native/linux-x86_64"
native="$out/native/linux-x86_64"
# The engine under its soname (liblic4es.so.<major>), the name the shim records.
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
soname=${soname:-liblic4es.so.0}
cp "$lib" "$native/$soname"
chmod u+w "$native/$soname"
strip --strip-unneeded "$native/$soname" 2>/dev/null || true

# The shim finds the engine next to itself ($ORIGIN), wherever it is extracted.
cc -shared -fPIC -O2 -std=c11 -Wall -Wextra -Werror \
  -I"$java_home/include" -I"$java_home/include/linux" -I"$root/include" \
  "$here/native/lic4es_jni.c" -o "$native/liblic4es_jni.so" \
  -L"$native" -l:"$soname" -lpthread -Wl,-rpath,'$ORIGIN' -Wl,--no-undefined

"$javac" --release 8 -Xlint:all,-options -Werror -d "$out/classes" \
  $(find "$here/src/main/java" -name '*.java')
jar cf "$out/lic4es.jar" -C "$out/classes" . -C "$out" native
echo "$out/lic4es.jar"
