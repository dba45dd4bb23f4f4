#!/usr/bin/env bash
# Builds the license-server .deb for arm64 from this x86-64 machine and checks it without
# installing it: the server cross-built by cargo-zigbuild against glibc 2.17's symbols
# (zig as C compiler and linker), packed by cargo-deb with the same assets and maintainer
# scripts as the amd64 package, then unpacked, its binary checked (AArch64, only the C
# library, nothing past GLIBC_2.17) and run under qemu-aarch64 from the shipped conffile
# (its data dir moved to a temporary one) until /healthz answers.
#
# Needs: rustup target add aarch64-unknown-linux-gnu; cargo-zigbuild, zig and cargo-deb
# on PATH; qemu-user and libc6:arm64 (Debian multiarch). Usage: arm64.sh [OUT_DIR]
# (default target/debian-arm64).
set -euo pipefail
cd "$(dirname "$0")/../../.."
. server/deploy/debian/serving.sh
out=${1:-target/debian-arm64}
target=aarch64-unknown-linux-gnu

cargo-zigbuild build --release -p license-server --bin license-server --target "$target.2.17"
rm -rf "$out"
cargo deb -p license-server --target "$target" --no-build --output "$out" >/dev/null
deb=$(ls "$out"/license-server_*_arm64.deb)
test "$(dpkg-deb -f "$deb" Architecture)" = arm64
echo "license-server arm64 .deb: $(stat -c %s "$deb") bytes, Depends: $(dpkg-deb -f "$deb" Depends)"

root=$(mktemp -d)
log=$(mktemp)
pid=""
stop() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
  rm -rf "$root" "$log"
}
trap stop EXIT
dpkg-deb -x "$deb" "$root"
bin=$root/usr/bin/license-server
readelf -h "$bin" | grep -q 'Machine:.*AArch64'
bash bindings/c/platforms.sh --check "$bin" gnu

# The shipped conffile, with the data dir in the unpacked tree and free ports.
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api=$(port)
metrics=$(port)
sed -e "s|^listen = .*|listen = \"127.0.0.1:$api\"|" \
  -e "s|^metrics-listen = .*|metrics-listen = \"127.0.0.1:$metrics\"|" \
  -e "s|^data-dir = .*|data-dir = \"$root/data\"|" \
  "$root/etc/license-server/license-server.toml" >"$root/server.toml"
qemu-aarch64 "$bin" --config "$root/server.toml" serve >"$log" 2>&1 &
pid=$!
serves_healthz "$pid" "$log" "$api" "the arm64 license-server"
echo "the arm64 license-server from the package served /healthz under qemu-aarch64"
