# Sourced by check.sh and arm64.sh (from the repository's root).

# serves_healthz PID LOG PORT WHAT: waits (at most 30 s) until the license-server started
# in the background as PID says in LOG that it listens on 127.0.0.1:PORT, then asks it
# /healthz; prints LOG and fails, naming WHAT, when it does not start or answer.
serves_healthz() {
  local pid=$1 log=$2 port=$3 what=$4 ok="" health
  for _ in $(seq 600); do
    if grep -q "listening on http://127.0.0.1:$port" "$log"; then ok=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$ok" ]; then cat "$log"; echo "$what did not start" >&2; return 1; fi
  health=$(exec 3<>"/dev/tcp/127.0.0.1/$port" &&
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 && cat <&3)
  echo "$health" | grep -q '"status":"ok"' || { echo "$health"; return 1; }
}
