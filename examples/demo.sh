#!/usr/bin/env bash
# The lic4es demo: what an operator sees as the license backend comes and goes.
# Everything lives under target/demo and is removed at the end; ~/.softclient4es is
# never touched. The demo key under examples/ is NOT a production key.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin lic4es
cli=target/release/lic4es
demo=target/demo
rm -rf "$demo"
mkdir -p "$demo"
trap 'rm -rf "$demo"' EXIT

keys=$(cat examples/demo-public-keys.json)
token=$(cat examples/demo-token.jwt)
# A loopback port on which nothing listens: the backend is down.
down="http://127.0.0.1:9"

step() { printf '\n== %s\n' "$*"; }

step "1. Static license token (key-file), no network"
"$cli" status --config examples/demo-config.json

step "2. API key, backend down, no cache yet: Community, and the status says why"
cat >"$demo/apikey.json" <<JSON
{"api-key": "sk-demo-not-a-real-key", "api-url": "$down", "public-keys": $keys,
 "cache-dir": "$demo/cache", "connect-timeout": "2s", "read-timeout": "2s"}
JSON
"$cli" status --config "$demo/apikey.json" --summary

step "3. Same, with a token cached by an earlier successful fetch: still Pro, with the warning"
install -m 600 examples/demo-token.jwt "$demo/cache/license-cache.jwt"
"$cli" status --config "$demo/apikey.json" --summary

step "4. A tampered cached token is refused and deleted"
printf '%s' "${token%?????}AAAAA" >"$demo/cache/license-cache.jwt"
"$cli" status --config "$demo/apikey.json" --summary
[ -e "$demo/cache/license-cache.jwt" ] || echo "(cache file deleted)"

step "5. Why? Inspect a token"
"$cli" inspect @examples/demo-token-enterprise.jwt --keys examples/demo-public-keys.json
