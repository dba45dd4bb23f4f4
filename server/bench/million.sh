#!/usr/bin/env bash
# A million online sessions across 100 000 licenses, seats in one Redis, two license-server
# instances on one PostgreSQL, all on this machine's cores, wrk the load (one per
# instance). Heartbeat and acquire rates and p99 with the store nearly empty and then
# full, in the same run; the latency of a /metrics scrape and of each admin page at both
# sizes; Redis memory per session.
#
#   server/bench/million.sh [SESSIONS] [LICENSES]   (default 1000000 100000)
#
# Sessions are made by acquires through both instances (10 per license at the default
# sizes; each license has 2 × SESSIONS / LICENSES seats, so acquires still find room when
# full) and nothing heartbeats them: the licenses' heartbeat interval is an hour, so a
# session stays online for two (the fill takes minutes, and at the default five-minute
# interval the first sessions would lapse before the last were made).
#
# A session is renewed at most once per half interval (429 heartbeat_too_soon), so the
# measured heartbeats go to sessions that are due: before each measurement, HB_SESSIONS
# sessions are acquired on another 1 000 licenses whose interval is a minute, and once
# half a minute has passed each of them is heartbeaten once, as its host would. They sit
# in the same Redis as the million and cost the server what any heartbeat costs.
# PostgreSQL runs with fsync off: this measures the seat store, not the disk.
# LICENSE_SERVER=path runs that binary instead of building this tree's. Needs
# redis-server, PostgreSQL, wrk, curl and python3. Prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000000}
licenses=${2:-100000}
secs=${BENCH_SECONDS:-10}
seats=$(( (2 * n + licenses - 1) / licenses ))
hb_sessions=${HB_SESSIONS:-60000}
hb_licenses=1000
hb_interval=60

. server/bench/common.sh
admin=bench-admin-token-0123456789abcdef
nonce=0123456789abcdef0123456789abcdef
chmod 755 "$work"

# PostgreSQL: initdb and the server as the postgres user when run as root.
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$work/pg"
[ "$(id -u)" != 0 ] || chown postgres "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg/data" -U postgres -A trust >/dev/null
pport=$(free_port)
as_pg "$pgbin/postgres" -D "$work/pg/data" -p "$pport" -k "$work/pg" -c listen_addresses=127.0.0.1 \
  -c fsync=off -c max_connections=100 >"$work/pg.log" 2>&1 &
pids+=($!)
# runuser does not pass the exit's SIGTERM on to PostgreSQL: stop it by its data dir.
at_exit+=('as_pg "$pgbin/pg_ctl" -D "$work/pg/data" stop -m immediate')
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$pport") 2>/dev/null && break; sleep 0.05; done

start_redis "$work"
redis_mem() { redis-cli -p "$rport" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r'; }

ports=()
mports=()
for i in a b; do
  port=$(free_port)
  mport=$(free_port)
  cat >"$work/$i.toml" <<TOML
listen = "127.0.0.1:$port"
metrics-listen = "127.0.0.1:$mport"
data-dir = "$work/data"
admin-token = "$admin"
database-url = "postgres://postgres@127.0.0.1:$pport/postgres"
redis-url = "redis://127.0.0.1:$rport/"
TOML
  ports+=("$port")
  mports+=("$mport")
done
"$srv" --config "$work/a.toml" keygen >/dev/null 2>&1
for i in a b; do
  "$srv" --config "$work/$i.toml" serve 2>"$work/$i.log" &
  pids+=($!)
done
for port in "${ports[@]}"; do
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
done

# wrk scripts. Each thread writes what it must keep (API keys, session ids) to its own
# file, $OUT-<thread>; a thread stops after its share of WANT requests.
{
  wrk_threads_lua
  cat <<'LUA'
function init()
  n = 0
  share = math.ceil(tonumber(os.getenv("WANT")) / tonumber(os.getenv("THREADS")))
  out = io.open(os.getenv("OUT") .. "-" .. id, "a")
  keys = {}
  local f = os.getenv("KEYS_FILE")
  if f and f ~= "" then for line in io.lines(f) do keys[#keys + 1] = line end end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.2f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
-- Keeps the captures of `first` and `second` in `body` as one line when both match; the
-- thread stops after its share.
function keep(body, first, second)
  local a, b = body:match(first), body:match(second)
  if a and b then out:write(a, " ", b, "\n") end
  if n >= share then wrk.thread:stop() end
end
LUA
} >"$work/common.lua"
cat >"$work/licenses.lua" <<LUA
request = function()
  n = n + 1
  return wrk.format("POST", "/admin/licenses",
    { ["Authorization"] = "Bearer $admin", ["Content-Type"] = "application/json" },
    '{"id":"org-' .. os.getenv("RUN") .. '-' .. id .. '-' .. n .. '","tier":"pro","days":365,"seats":' .. os.getenv("SEATS") .. ',"heartbeat_interval":' .. os.getenv("INTERVAL") .. '}')
end
response = function(status, headers, body)
  keep(body, '"license_id":"([^"]+)"', '"api_key":"([^"]+)"')
end
LUA
# Acquires round-robin over the keys, GROUP in a row with each; every granted session's
# token and id kept (a response may answer another request than the last one made: its
# token says whose).
cat >"$work/acquire.lua" <<LUA
request = function()
  n = n + 1
  local i = (math.floor((n - 1) / tonumber(os.getenv("GROUP"))) * tonumber(os.getenv("THREADS")) + id - 1) % #keys + 1
  local key = keys[(i + tonumber(os.getenv("SHIFT"))) % #keys + 1]
  return wrk.format("POST", "/api/v1/licenses/acquire",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" },
    '{"hardware_id":"hw-' .. os.getenv("RUN") .. '-' .. id .. '-' .. n ..
      '","instance_id":"i","version":"1","nonce":"$nonce"}')
end
response = function(status, headers, body)
  keep(body, '"license":"([^"]+)"', '"session_id":"([^"]+)"')
end
LUA
# Heartbeats over "key session" lines, each line once: instance SHIFT (1 or 2) takes
# every other line. Once its lines are done a connection asks /healthz until the thread
# stops (a second heartbeat of a session would be refused as too soon).
cat >"$work/heartbeat.lua" <<LUA
request = function()
  n = n + 1
  local at = (n - 1) * 2 + tonumber(os.getenv("SHIFT"))
  if at > #keys then
    if not exhausted then exhausted = true; out:write("exhausted\n") end
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  local key, sid = keys[at]:match("(%S+) (%S+)")
  return wrk.format("PUT", "/api/v1/licenses/heartbeat",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" },
    '{"session_id":"' .. sid .. '","nonce":"$nonce"}')
end
bad = 0
response = function(status, headers, body)
  if status ~= 200 and bad < 3 then bad = bad + 1; out:write(status, " ", body, "\n") end
end
LUA

run=0
# Both instances at once, a wrk each: script, seconds, want, out prefix, keys file, shift,
# group. With a group above 1 (the fill) the instances start half the keys apart, so
# neither fills the licenses the other is filling.
both() {
  local script=$1 d=$2 want=$3 out=$4 keys=${5:-} shift=${6:-0} group=${7:-1}
  run=$((run + 1))
  cat "$work/common.lua" "$work/$script.lua" >"$work/$script.run.lua"
  local i=0 w=() at
  for port in "${ports[@]}"; do
    i=$((i + 1))
    at=$((shift + i))
    [ "$group" = 1 ] || at=$((shift + (i - 1) * licenses / 2))
    RUN="$run$i" SEATS=${SEATS:-$seats} INTERVAL=${INTERVAL:-3600} WANT=$(((want + 1) / 2)) THREADS=1 OUT="$out-$i" KEYS_FILE=$keys SHIFT=$at GROUP=$group \
      wrk -t1 -c16 -d"${d}s" -s "$work/$script.run.lua" "http://127.0.0.1:$port" |
      grep '^RESULT' >"$work/result-$i" &
    w+=($!)
  done
  wait "${w[@]}"
  # Rates add up; the slower instance's percentiles stand.
  cat "$work/result-1" "$work/result-2" | awk '{r+=$2; if ($3>p50) p50=$3; if ($4>p99) p99=$4; e+=$5}
    END {printf "%.0f %.2f %.2f %d\n", r, p50, p99, e}'
}
count() { { cat "$1"-* 2>/dev/null || true; } | wc -l; }
# Sessions online, from the fleet's summary (recomputed every metrics-interval-secs, 10 s:
# `fresh` waits for the next one).
fresh() { sleep 11; }
online() {
  curl -s -H "Authorization: Bearer $admin" "http://127.0.0.1:${ports[0]}/admin/summary" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["online"])'
}

started=$(date +%s)
echo "creating $licenses licenses ($seats seats each)..." >&2
while [ "$(count "$work/keys")" -lt "$licenses" ]; do
  had=$(count "$work/keys")
  both licenses 5 $((licenses - had)) "$work/keys" >/dev/null
  [ "$(count "$work/keys")" -gt "$had" ] || { echo "no license was created: $work/a.log" >&2; exit 1; }
done
cat "$work/keys"-* | head -n "$licenses" >"$work/licenses.all"
cut -d' ' -f2 "$work/licenses.all" >"$work/keys.all"
echo "creating $hb_licenses licenses for the measured heartbeats (a $hb_interval s interval)..." >&2
while [ "$(count "$work/hbkeys")" -lt "$hb_licenses" ]; do
  had=$(count "$work/hbkeys")
  SEATS=$hb_sessions INTERVAL=$hb_interval both licenses 5 $((hb_licenses - had)) "$work/hbkeys" >/dev/null
  [ "$(count "$work/hbkeys")" -gt "$had" ] || { echo "no license was created: $work/a.log" >&2; exit 1; }
done
cat "$work/hbkeys"-* | head -n "$hb_licenses" >"$work/hblicenses.all"
cut -d' ' -f2 "$work/hblicenses.all" >"$work/hbkeys.all"

views() { # label
  local lic
  lic=$(curl -s -H "Authorization: Bearer $admin" "http://127.0.0.1:${ports[0]}/admin/seats?limit=1" |
    python3 -c 'import json,sys; s=json.load(sys.stdin)[0]; print(s.get("license") or s.get("license_id") or s["id"])')
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(online)" \
    "$(timed "${mports[0]}" /metrics "")" \
    "$(timed "${ports[0]}" /admin/summary "$admin")" \
    "$(timed "${ports[0]}" /admin/seats "$admin")" \
    "$(timed "${ports[0]}" /admin/sessions "$admin")" \
    "$(timed "${ports[0]}" "/admin/sessions?license=$lic&state=online" "$admin")" \
    "$(timed "${ports[0]}" /admin/audit "$admin")"
}
rates() { # label shift: acquires, then heartbeats of sessions that are due
  local a h
  a=$(both acquire "$secs" 100000000 "$work/measure-$2" "$work/keys.all" "$2")
  # Sessions to heartbeat, on the one-minute licenses, each due half a minute later (wrk
  # runs for its whole -d whatever its threads do: short runs until there are enough).
  while [ "$(count "$work/due-$2")" -lt "$hb_sessions" ]; do
    local had
    had=$(count "$work/due-$2")
    both acquire 5 $((hb_sessions - had)) "$work/due-$2" "$work/hbkeys.all" "$((had + $2))" >/dev/null
    [ "$(count "$work/due-$2")" -gt "$had" ] || { echo "no acquire was granted: $work/a.log" >&2; exit 1; }
  done
  sleep $((hb_interval / 2 + 1))
  # "key session" lines: the token's subject names the license, and so its key.
  cat "$work/due-$2"-* | python3 -c '
import base64, json, sys
keys = dict(l.split() for l in open(sys.argv[1]))
for line in sys.stdin:
    jwt, sid = line.split()
    body = jwt.split(".")[1]
    sub = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["sub"]
    print(keys[sub], sid)' "$work/hblicenses.all" >"$work/beat-$2"
  [ -s "$work/beat-$2" ] || { echo "no acquire was granted: $work/a.log" >&2; exit 1; }
  h=$(both heartbeat "$secs" 100000000 "$work/refused-$2" "$work/beat-$2" 0)
  # A connection that ran out of due sessions asked /healthz: then the rate is a floor.
  if grep -q '^exhausted' "$work/refused-$2"-* 2>/dev/null; then
    echo "every due session was beaten within the run: the heartbeat rate is a floor" >&2
  fi
  cat "$work/refused-$2"-* >&2 2>/dev/null || true
  read -r ar _ ap99 ae <<<"$a"
  read -r hr _ hp99 he <<<"$h"
  printf '| %s | %s | %s ms | %s | %s | %s ms | %s |\n' "$1" "$hr" "$hp99" "$he" "$ar" "$ap99" "$ae"
}

empty_rates=$(rates "nearly empty" 0)
fresh
empty_views=$(views "nearly empty")
mem_small=$(redis_mem)
on_small=$(online)

# The fill takes each key for GROUP acquires in a row, as a customer's hosts start
# together, so most find the key in the server's cache; the measured acquires above and
# below take a new key each time.
group=$(( n / licenses / 2 > 1 ? n / licenses / 2 : 1 ))
echo "filling to $n sessions..." >&2
while [ "$(online)" -lt "$n" ]; do
  have=$(online)
  both acquire 60 $((n - have)) "$work/fill" "$work/keys.all" "$(( have / (2 * group) % licenses ))" "$group" >/dev/null
  fresh
  now_online=$(online)
  echo "  $now_online online after $(( $(date +%s) - started )) s" >&2
  [ "$now_online" -gt "$have" ] || { echo "no session was added: $work/a.log" >&2; exit 1; }
done
mem_full=$(redis_mem)
on_full=$(online)
full_rates=$(rates "$on_full online" 3)
fresh
full_views=$(views "$(online) online")

echo
echo "two instances (one PostgreSQL, one Redis), $licenses licenses; wrk -t1 -c16 per instance, ${secs} s each; same 2 cores"
echo
echo "| store | heartbeats/s | p99 | errors | acquires/s | p99 | errors |"
echo "|---|---|---|---|---|---|---|"
echo "$empty_rates"
echo "$full_rates"
echo
echo "median of 5 requests, each answer's size"
echo
echo "| store | online | /metrics | /admin/summary | /admin/seats | /admin/sessions | one license's online sessions | /admin/audit |"
echo "|---|---|---|---|---|---|---|---|"
echo "$empty_views"
echo "$full_views"
echo
[ "$on_full" -gt "$on_small" ] || { echo "no session was added by the fill" >&2; exit 1; }
echo "Redis memory per online session: $(( (mem_full - mem_small) / (on_full - on_small) )) bytes (from $on_small to $on_full sessions; $(( $(date +%s) - started )) s in all)"
