# Sourced by the benchmarks (from the repository's root): the server binary ($srv: this
# tree's release build, or LICENSE_SERVER=path to compare builds), a work dir ($work)
# removed at exit with every process in $pids, and free_port.
if [ -n "${LICENSE_SERVER:-}" ]; then
  srv=$(realpath "$LICENSE_SERVER")
else
  cargo build --release --quiet -p license-server --bin license-server
  srv=$PWD/target/release/license-server
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
