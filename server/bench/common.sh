# Sourced by the benchmarks (from the repository's root): the server binary ($srv: this
# tree's release build, or LICENSE_SERVER=path to compare builds), a work dir ($work)
# removed at exit with every process in $pids (after the commands in $at_exit),
# free_port, start_redis, wrk_threads_lua, and timed (a GET's median time).
if [ -n "${LICENSE_SERVER:-}" ]; then
  srv=$(realpath "$LICENSE_SERVER")
else
  cargo build --release --quiet -p license-server --bin license-server
  srv=$PWD/target/release/license-server
fi
work=$(mktemp -d)
pids=()
# Commands run at exit before the processes in $pids are killed (for a process that a
# signal to its pid does not stop).
at_exit=()
cleanup() {
  for c in "${at_exit[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Median time (ms) and size (bytes) of 5 GETs: timed PORT PATH BEARER.
timed() {
  local port=$1 path=$2 bearer=$3
  for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{time_total} %{size_download}\n' -H "Authorization: Bearer $bearer" \
      "http://127.0.0.1:$port$path"
  done | sort -n | sed -n 3p | awk '{printf "%.1f ms, %d B", $1 * 1000, $2}'
}

# A redis-server on a free port ($rport; its pid $redis_pid, and in $pids), keeping nothing
# on disk: start_redis DIR.
start_redis() {
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$1" >/dev/null &
  redis_pid=$!
  pids+=("$redis_pid")
}

# The start of a wrk script whose threads know their number, `id` (from 1).
wrk_threads_lua() {
  cat <<'LUA'
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
LUA
}
