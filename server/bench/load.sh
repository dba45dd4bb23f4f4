#!/usr/bin/env bash
# Load benchmark of one license-server instance with seats in Redis, on loopback, with
# wrk as the load generator (the server rows of docs/explanation/performance.md). Everything runs on this machine's
# cores, so the figure that travels is the ratio to /healthz measured in the same run.
#
#   server/bench/load.sh [SECONDS] [ROUNDS]   (default 10 s per endpoint, 3 rounds)
#
# The endpoints take turns, round after round, and each figure is the median of its
# rounds: the machine's own noise (another process, a cache) lands on every endpoint
# alike instead of on whichever ran at that moment.
#
# LICENSE_SERVER=path runs that binary instead of building this tree's (to compare two
# builds on the same machine). Acquires are also measured against the same tree built
# with the audit off (the `bench-audit-off` feature, in target/bench-audit-off, or
# AUDIT_OFF_SERVER=path), a second instance taking its turns with the others: section
# 12's acquire budget is a ratio to that.
#
# Needs redis-server and wrk (apt-get install redis-server wrk). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
rounds=${2:-3}
conns=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}

. server/bench/common.sh

if [ -n "${AUDIT_OFF_SERVER:-}" ]; then
  srv_off=$(realpath "$AUDIT_OFF_SERVER")
else
  cargo build --release --quiet -p license-server --bin license-server --features bench-audit-off \
    --target-dir target/bench-audit-off
  srv_off=$PWD/target/bench-audit-off/release/license-server
fi

start_redis "$work"
port=$(free_port)
cat >"$work/server.toml" <<TOML
listen = "127.0.0.1:$port"
metrics-listen = "none"
data-dir = "$work/data"
admin-token = "bench-admin-token-0123456789abcdef"
redis-url = "redis://127.0.0.1:$rport/"
TOML
"$srv" --config "$work/server.toml" keygen >/dev/null 2>&1
key=$("$srv" --config "$work/server.toml" api-key create --tier enterprise --sub org-bench \
  --days 365 --seats 10000000 --heartbeat-interval 1)
# The token endpoint serves only licenses not counted in seats (a counted one is refused
# there, whatever the client asks): its own license.
token_key=$("$srv" --config "$work/server.toml" api-key create --tier enterprise --sub org-bench-tokens \
  --days 365 --seats unlimited)
"$srv" --config "$work/server.toml" serve 2>"$work/server.log" &
server_pid=$!
pids+=("$server_pid")
# The same server without its audit, on its own store and Redis database.
port_off=$(free_port)
sed -e "s/:$port\"/:$port_off\"/" -e "s|$work/data|$work/data-off|" -e "s|:$rport/|:$rport/1|" \
  "$work/server.toml" >"$work/server-off.toml"
"$srv_off" --config "$work/server-off.toml" keygen >/dev/null 2>&1
key_off=$("$srv_off" --config "$work/server-off.toml" api-key create --tier enterprise --sub org-bench \
  --days 365 --seats 10000000 --heartbeat-interval 1)
"$srv_off" --config "$work/server-off.toml" serve 2>"$work/server-off.log" &
off_pid=$!
pids+=("$off_pid")
for p in "$port" "$port_off"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.05; done
done
grep -q bench-audit-off "$work/server-off.log" 2>/dev/null || { echo "$srv_off is not a bench-audit-off build" >&2; exit 1; }

nonce=0123456789abcdef0123456789abcdef
redis_mem() { redis-cli -p "$rport" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r'; }

# Sessions to beat: acquired first (also the memory figure).
sessions=2000
mem_before=$(redis_mem)
: >"$work/sids"
for i in $(seq "$sessions"); do
  curl -s -X POST "http://127.0.0.1:$port/api/v1/licenses/acquire" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' \
    -d "{\"hardware_id\":\"$(printf '%064x' "$i")\",\"instance_id\":\"bench-$i\",\"version\":\"1\",\"nonce\":\"$nonce\"}" |
    grep -o '"session_id":"[^"]*"' | cut -d'"' -f4 >>"$work/sids"
done
mem_after=$(redis_mem)
per_session=$(( (mem_after - mem_before) / sessions ))

cat >"$work/heartbeat.lua" <<LUA
local sids = {}
for line in io.lines("$work/sids") do sids[#sids + 1] = line end
local i = 0
wrk.method = "PUT"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #sids + 1
  return wrk.format(nil, "/api/v1/licenses/heartbeat", nil,
    '{"session_id":"' .. sids[i] .. '","nonce":"$nonce"}')
end
LUA
cat >"$work/acquire.lua" <<LUA
local i = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  return wrk.format(nil, "/api/v1/licenses/acquire", nil,
    '{"hardware_id":"hw-' .. i .. '","instance_id":"i-' .. i .. '","version":"1","nonce":"$nonce"}')
end
LUA
sed "s/$key/$key_off/" "$work/acquire.lua" >"$work/acquire_off.lua"
cat >"$work/token.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $token_key"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"instance_id":"bench","version":"1","nonce":"$nonce","uptime_hours":1}'
LUA
cat >"$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.0f %.2f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
LUA

# CPU time (clock ticks) a process has used, user and system.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # script path [port]: one round's requests/s, p50, p99, errors, appended to $work/NAME.results
  local script=$work/$1.run.lua r0 s0
  cat "$work/$1.lua" "$work/report.lua" >"$script" 2>/dev/null || cp "$work/report.lua" "$script"
  r0=$(ticks "$redis_pid")
  local pid=$server_pid
  [ -z "${3:-}" ] || pid=$off_pid
  s0=$(ticks "$pid")
  wrk -t"$threads" -c"$conns" -d"${secs}s" -s "$script" "http://127.0.0.1:${3:-$port}$2" |
    grep '^RESULT' | cut -d' ' -f2- >>"$work/$1.results"
  # The round's CPU ticks (server, Redis) and its requests.
  echo "$(($(ticks "$pid") - s0)) $(($(ticks "$redis_pid") - r0)) $(tail -1 "$work/$1.results" | awk -v s="$secs" '{print $1 * s}')" >>"$work/$1.cpu"
}
# Microseconds of CPU per request over every round of NAME: server / Redis.
cpu_per_request() {
  awk -v hz="$(getconf CLK_TCK)" '{s+=$1; r+=$2; n+=$3}
    END {printf "%.0f / %.0f µs", s * 1e6 / hz / n, r * 1e6 / hz / n}' "$work/$1.cpu"
}
# The median of each column of NAME's rounds (requests/s decides the row).
median() {
  sort -n -k1,1 "$work/$1.results" | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'
}
row() { # label name
  local rps p50 p99 errors
  read -r rps p50 p99 errors <<<"$(median "$2")"
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$rps" "$p50" "$p99" "$errors"
  eval "rps_$2=$rps"
}
: >"$work/healthz.lua"
for _ in $(seq "$rounds"); do
  run healthz /healthz
  run heartbeat /api/v1/licenses/heartbeat
  run acquire /api/v1/licenses/acquire
  run acquire_off /api/v1/licenses/acquire "$port_off"
  run token /api/v1/licenses/token
done
echo
echo "one instance, seats in Redis, SQLite store; wrk -t$threads -c$conns, ${secs} s per endpoint and round,"
echo "$rounds rounds taking turns, the median round of each; same 2 cores"
echo
echo "| endpoint | requests/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|"
row "GET /healthz" healthz
row "PUT heartbeat ($sessions sessions)" heartbeat
row "POST acquire" acquire
row "POST acquire, same build with the audit off" acquire_off
row "POST token" token
echo
echo "heartbeats / healthz: $(python3 -c "print(round($rps_heartbeat / $rps_healthz, 2))")"
echo "acquires / healthz: $(python3 -c "print(round($rps_acquire / $rps_healthz, 2))")"
echo "acquires / acquires with the audit off: $(python3 -c "print(round($rps_acquire / $rps_acquire_off, 2))")"
echo "tokens / healthz: $(python3 -c "print(round($rps_token / $rps_healthz, 2))")"
echo "Redis memory per online session: $per_session bytes"
echo "CPU per request, server / Redis (all rounds): healthz $(cpu_per_request healthz), heartbeat $(cpu_per_request heartbeat), acquire $(cpu_per_request acquire) (audit off $(cpu_per_request acquire_off)), token $(cpu_per_request token)"
# BENCH_ROUNDS_SHOWN=1: every round's requests/s too (how noisy the machine was).
[ -z "${BENCH_ROUNDS_SHOWN:-}" ] || for n in healthz heartbeat acquire token; do echo "$n rounds: $(cut -d" " -f1 "$work/$n.results" | tr "\n" " ")"; done
