#!/usr/bin/env bash
# The lic4es demo: a local reference license server, a host running the engine, and
# what happens as the license changes and the backend goes away.
# Everything lives under target/demo and is removed at the end; ~/.softclient4es is
# never touched. Keys and tokens made here are throwaway demo material.
set -euo pipefail
cd "$(dirname "$0")/.."

# The README's build command too: one feature set for the whole workspace, so running
# target/release/lic4es or license-server afterwards (or this build again) rebuilds nothing.
echo "building lic4es and license-server (release; a cold build takes a few minutes)..."
cargo build --release --workspace --bins
cli=$PWD/target/release/lic4es
srv=$PWD/target/release/license-server
demo=$PWD/target/demo
port=${DEMO_PORT:-18700}
rm -rf "$demo"
mkdir -p "$demo"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$demo"
}
trap cleanup EXIT

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is in use; set DEMO_PORT to a free port" >&2
  exit 1
fi

step() { printf '\n== %s\n' "$*"; }
# Two processes write at once: the server's lines are marked and indented, the host's and
# the vendor's commands' are not.
start_server() {
  "$srv" --config "$demo/server.toml" serve 2> >(sed -u 's/^/        server | /' >&2) &
  server_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "license-server did not start" >&2
  exit 1
}
stop_server() {
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

step "0. A reference license server on 127.0.0.1:$port with a fresh key and a Pro API key"
cat >"$demo/server.toml" <<TOML
listen = "127.0.0.1:$port"
data-dir = "$demo/server-data"
admin-token = "demo-admin-token-not-for-production"
# /metrics on an ephemeral loopback port (its address is logged); the demo prints every
# request it serves.
metrics-listen = "127.0.0.1:0"
access-log = true
TOML
jwks=$("$srv" --config "$demo/server.toml" keygen 2>/dev/null)
echo "-- org-demo: Pro with unlimited seats, so it is served by token (Pro and Team count"
echo "   seats by default, Enterprise does not)"
key=$("$srv" --config "$demo/server.toml" api-key create --tier pro --sub org-demo --days 30 \
  --org "Demo Org" --seats unlimited)
echo "public keys: $jwks"
echo "API key:     ${key:0:6}… (shown in full only once, stored hashed)"
start_server

cat >"$demo/host.json" <<JSON
{"api-key": "$key", "api-url": "http://127.0.0.1:$port", "public-keys": $jwks,
 "cache-dir": "$demo/host-cache", "product-version": "demo-1.0",
 "refresh": {"interval": "1s"}, "connect-timeout": "1s", "read-timeout": "2s"}
JSON

step "1. The host starts: Pro by API key; then the vendor upgrades the license; then the server stops"
"$cli" watch --config "$demo/host.json" --seconds 6 &
host=$!
sleep 2
echo "-- vendor: license set-tier enterprise"
"$srv" --config "$demo/server.toml" license set-tier --sub org-demo --tier enterprise
sleep 2
echo "-- the license server stops"
stop_server
wait "$host"

step "2. The host restarts while the server is down: Enterprise from the cache, with the warning"
"$cli" status --config "$demo/host.json" --summary

step "3. A static token without refresh_url: no traffic at all (the server logs every request)"
start_server
static=$("$srv" --config "$demo/server.toml" mint --tier team --sub org-static --days 365)
cat >"$demo/static.json" <<JSON
{"key": "$static", "public-keys": $jwks, "api-url": "http://127.0.0.1:$port",
 "cache-dir": "$demo/static-cache", "refresh": {"interval": "1s"}}
JSON
"$cli" watch --config "$demo/static.json" --seconds 3
echo "-- (no request lines from license-server above: nothing left the host)"
stop_server

step "4. Why? Inspect the static token"
"$cli" inspect "$static" --keys <(echo "$jwks") | tail -4

step "5. A seat-counted license, a host that set only its API key: it acquires a seat by itself; heartbeats; the server stops (offline after 3 failures) and returns (reconnect)"
start_server
seatkey=$("$srv" --config "$demo/server.toml" api-key create --tier team --sub org-seats --days 30 \
  --seats 2 --heartbeat-interval 1 --org "Seat Org")
echo "-- a Team license with 2 seats, a 1 s heartbeat (for the demo) and Team's 3-day offline grace"
cat >"$demo/seat.json" <<JSON
{"api-key": "$seatkey", "api-url": "http://127.0.0.1:$port", "public-keys": $jwks,
 "cache-dir": "$demo/seat-cache", "seat": {"reconnect-interval": "3s"},
 "connect-timeout": "1s", "read-timeout": "2s"}
JSON
echo "-- a host that turns seat mode off gets no license from a seat-counted one:"
cat >"$demo/no-seat.json" <<JSON
{"api-key": "$seatkey", "api-url": "http://127.0.0.1:$port", "public-keys": $jwks,
 "cache-dir": "$demo/no-seat-cache", "seat": {"enabled": false}}
JSON
"$cli" status --config "$demo/no-seat.json" --summary
"$cli" watch --config "$demo/seat.json" --seconds 14 &
host=$!
sleep 3
echo "-- the license server stops"
stop_server
sleep 6
echo "-- the license server returns (seats were in its memory: the reconnect takes a fresh one)"
start_server
wait "$host"
echo "-- the host released its seat at shutdown; the vendor's view:"
"$srv" --config "$demo/server.toml" sessions list --license org-seats

step "6. Operating it: the audit trail and offline-abuse check, read from the server's store"
"$srv" --config "$demo/server.toml" audit --license org-seats --limit 6
"$srv" --config "$demo/server.toml" abuse --all || true
echo "-- the live dashboard: http://127.0.0.1:$port/admin/ (admin token: demo-admin-token-not-for-production)"
if [ -t 0 ]; then
  # Someone is watching: the server stays up for the dashboard until they are done.
  read -r -p "-- the server keeps running for the dashboard; press Enter to stop it and remove target/demo " _
fi
stop_server
