#!/usr/bin/env bash
# Runs the SDK and the bare ureq baseline against the fixed-response server, all pinned to CPU 0
# (loopback figures on a 2-core machine are steady only then), and prints both lines and the ratio.
# Usage: examples/bench.sh [N]   (default 20000 updates per client)
set -euo pipefail
n=${1:-20000}
cd "$(dirname "$0")/.."
cargo build --release --quiet --example fixed_server --example bench
server_out=$(mktemp)
taskset -c 0 target/release/examples/fixed_server 127.0.0.1:0 >"$server_out" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$server_out"' EXIT
for _ in $(seq 50); do grep -q listening "$server_out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$server_out")
bench() { taskset -c 0 target/release/examples/bench --base-url "$url" --token bench --n "$n" "$@"; }
bench --bare >/dev/null # warm-up
bare=$(bench --bare)
sdk=$(bench)
echo "$bare"
echo "$sdk"
python3 - "$bare" "$sdk" <<'PY'
import json, sys
bare, sdk = (json.loads(line) for line in sys.argv[1:3])
print(f"sdk/bare updates per second: {sdk['updates_per_s'] / bare['updates_per_s']:.3f}")
PY
