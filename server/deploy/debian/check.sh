#!/usr/bin/env bash
# Builds the license-server .deb (cargo-deb), installs it with dpkg, checks what it set up
# (the system user, the 0700 data dir, the conffile and its mode, the systemd unit), runs
# the installed binary from the shipped conffile as that user and asks it /healthz, checks
# that a reinstall keeps an edited conffile, then purges the package (which keeps the data
# dir and its signing key) and cleans up. Needs root and dpkg; CI runs it.
set -euo pipefail
cd "$(dirname "$0")/../../.."
. server/deploy/debian/serving.sh

if ! command -v cargo-deb >/dev/null 2>&1; then
  cargo install cargo-deb --locked --quiet
fi
rm -rf target/debian
# The workspace's release build (the README's command, which CI has made by now): packed
# as built, so that the package and the book's commands share one build.
cargo build --release --workspace --quiet
cargo deb -p license-server --no-build --output target/debian/ >/dev/null
deb=$(ls target/debian/license-server_*.deb)
echo "license-server .deb: $(stat -c %s "$deb") bytes ($deb)"

conf=/etc/license-server/license-server.toml
dpkg -i "$deb" >/dev/null
getent passwd license-server
test "$(stat -c '%a %U %G' /var/lib/license-server)" = "700 license-server license-server"
test "$(stat -c '%a %U %G' "$conf")" = "640 root license-server"
dpkg-query -W -f='${Conffiles}\n' license-server | grep -q "$conf"
test -f /usr/lib/systemd/system/license-server.service
grep -q '^User=license-server$' /usr/lib/systemd/system/license-server.service
echo "installed: user, data dir 0700, conffile 0640, systemd unit"

# The installed server, as the unit would run it (without systemd).
log=$(mktemp)
runuser -u license-server -- /usr/bin/license-server --config "$conf" serve >"$log" 2>&1 &
pid=$!
stop() { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap stop EXIT
serves_healthz "$pid" "$log" 8700 "the installed license-server"
test "$(stat -c %U /var/lib/license-server/signing-key.jwk)" = license-server
test "$(stat -c %a /var/lib/license-server/signing-key.jwk)" = 600
stop
trap - EXIT
echo "served /healthz as the license-server user; the signing key is its own, 0600"

# A reinstall (an upgrade to the same version) keeps the operator's edit of the conffile.
echo '# edited by the operator' >>"$conf"
dpkg -i "$deb" >/dev/null
grep -q '^# edited by the operator$' "$conf"
echo "reinstall kept the edited conffile"

dpkg --purge license-server >/dev/null
test ! -e /usr/bin/license-server && test ! -e "$conf"
test -f /var/lib/license-server/signing-key.jwk
echo "purged; the data dir and signing key stay"
rm -rf /var/lib/license-server "$log"
deluser --system --quiet license-server >/dev/null 2>&1 || true
