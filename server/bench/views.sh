#!/usr/bin/env bash
# What an operator's view and a scrape cost as the fleet grows: one license-server
# instance with N online sessions across L licenses, seats in memory and then in Redis;
# the time of a /metrics scrape, a page of /admin/seats, of /admin/sessions and
# /admin/summary, and each answer's size. Sessions are made by wrk (acquires, each with
# its own hardware id), N of them unless acquires run slower than 1 500/s (the table says
# how many are online).
#
#   server/bench/views.sh [SESSIONS...]        (default: 10000 50000)
#
# LICENSE_SERVER=path runs that binary instead of building this tree's. Needs
# redis-server, wrk and curl. Prints a Markdown table: the median of 5 requests each.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 50000)
licenses=${BENCH_LICENSES:-100}

. server/bench/common.sh
admin=bench-admin-token-0123456789abcdef
nonce=0123456789abcdef0123456789abcdef

# wrk script: acquires round-robin over the keys in $work/keys, each thread stopping after
# its share of $want acquires.
{
  wrk_threads_lua
  cat <<'LUA'
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local want = tonumber(os.getenv("WANT"))
local threads = tonumber(os.getenv("THREADS"))
function init()
  n = 0
  share = math.ceil(want / threads)
end
request = function()
  n = n + 1
  local key = keys[(n + id * 7919) % #keys + 1]
  return wrk.format("POST", "/api/v1/licenses/acquire",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" },
    '{"hardware_id":"hw-' .. id .. '-' .. n .. '","instance_id":"i","version":"1","nonce":"' ..
      os.getenv("NONCE") .. '"}')
end
response = function()
  if n >= share then wrk.thread:stop() end
end
LUA
} >"$work/fill.lua"


run() { # store sessions
  local store=$1 n=$2
  local dir=$work/$store-$n
  mkdir -p "$dir"
  local port mport
  port=$(free_port)
  mport=$(free_port)
  {
    echo "listen = \"127.0.0.1:$port\""
    echo "metrics-listen = \"127.0.0.1:$mport\""
    echo "data-dir = \"$dir/data\""
    echo "admin-token = \"$admin\""
    if [ "$store" = redis ]; then
      start_redis "$dir"
      echo "redis-url = \"redis://127.0.0.1:$rport/\""
    fi
  } >"$dir/server.toml"
  "$srv" --config "$dir/server.toml" keygen >/dev/null 2>&1
  : >"$dir/keys"
  for i in $(seq "$licenses"); do
    "$srv" --config "$dir/server.toml" api-key create --tier enterprise --sub "org-$i" \
      --days 365 --seats 10000000 --heartbeat-interval 3600 >>"$dir/keys" 2>/dev/null
  done
  "$srv" --config "$dir/server.toml" serve 2>"$dir/server.log" &
  local spid=$!
  pids+=($spid)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  KEYS_FILE=$dir/keys WANT=$n THREADS=2 NONCE=$nonce \
    wrk -t2 -c16 -d"$((n / 1500 + 3))s" -s "$work/fill.lua" "http://127.0.0.1:$port" >/dev/null
  local online
  online=$(curl -s -H "Authorization: Bearer $admin" "http://127.0.0.1:$port/admin/summary" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["online"])' 2>/dev/null ||
    echo "$n (asked)")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$store" "$online" \
    "$(timed "$mport" /metrics "")" \
    "$(timed "$port" /admin/seats "$admin")" \
    "$(timed "$port" /admin/sessions "$admin")" \
    "$(timed "$port" /admin/summary "$admin")"
  kill "$spid"
}

echo
echo "one instance, $licenses licenses; median of 5 requests, each answer's size"
echo
echo "| seats | sessions online | /metrics | /admin/seats | /admin/sessions | /admin/summary |"
echo "|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  run memory "$n"
  run redis "$n"
done
