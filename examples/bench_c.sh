#!/usr/bin/env bash
# The C path against the Rust path and a hand-written libcurl client: builds the release library,
# examples/bench.rs and the two C benches (bindings-c/bench.c, bindings-c/bench_curl.c) with the
# compilers directly, starts nginx with a fixed 200 response on a loopback port (its config in a
# temporary folder), runs every client pinned to CPU 0 with the server, and prints one table:
# updates per second (median of RUNS alternating runs) and instructions per update (callgrind,
# client process only: the difference between a run of N2 and one of N1 updates, so set-up and
# tear-down cancel out).
# Needs: nginx (nginx-light), libcurl's headers (libcurl4-openssl-dev), valgrind, python3, taskset.
# Usage: examples/bench_c.sh [N] [RUNS]   (default 20000 updates per run, 5 runs)
# IUS_BENCH_STATUS=204 makes nginx answer 204 No Content (what Intune answers in practice; then
# there is no entity to parse or to hand to C) instead of the page's 200 with the entity.
set -euo pipefail
n=${1:-20000}
runs=${2:-5}
n1=${IUS_BENCH_N1:-500}
n2=${IUS_BENCH_N2:-2500}
answer=${IUS_BENCH_STATUS:-200}
cd "$(dirname "$0")/.."
root=$PWD
cc=${CC:-cc}
work=$(mktemp -d)
nginx_pid=
trap '[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release --quiet -p intune-user-status-c
cargo build --release --quiet --example bench
# The library's SONAME is libintune_user_status.so.0: the loader finds it through a link beside
# the program.
ln -s "$root/target/release/libintune_user_status.so" "$work/libintune_user_status.so.0"
"$cc" -O2 -Wall -Iinclude -Ibindings-c bindings-c/bench.c -o "$work/bench_c" \
  -L target/release -lintune_user_status -Wl,-rpath,"$work"
# shellcheck disable=SC2046
"$cc" -O2 -Wall -Ibindings-c bindings-c/bench_curl.c -o "$work/bench_curl" $(curl-config --cflags --libs)

# The documentation page's example response, compact, with Graph's request-id header. nginx reads
# "$" as a variable and "'" as the string's end: ${dollar} (a geo below) and \' stand for them.
body='{"@odata.context":"https://graph.microsoft.com/beta/${dollar}metadata#deviceManagement/deviceConfigurations(\'"'"'bench-config\'"'"')/userStatuses/${dollar}entity","@odata.type":"#microsoft.graph.deviceConfigurationUserStatus","id":"bench-status","userDisplayName":"User Display Name value","devicesCount":12,"status":"notApplicable","lastReportedDateTime":"2017-01-01T00:00:17.7769392-08:00","userPrincipalName":"User Principal Name value"}'
case $answer in
  200) reply="return 200 '$body';" ;;
  204) reply="return 204;" ;;
  *) echo "IUS_BENCH_STATUS is 200 or 204" >&2; exit 2 ;;
esac
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  geo \$dollar { default "$"; }
  server {
    listen 127.0.0.1:$port;
    location / {
      default_type application/json;
      add_header request-id 00000000-0000-0000-0000-000000000000;
      $reply
    }
  }
}
CONF
taskset -c 0 nginx -p "$work/nginx" -e "$work/nginx/logs/error.log" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 50); do (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
(: </dev/tcp/127.0.0.1/"$port") 2>/dev/null || { echo "nginx did not start" >&2; exit 1; }

run() { # run CLIENT COUNT [PREFIX...]: one JSON line
  local client=$1 count=$2
  shift 2
  case $client in
    rust) "$@" target/release/examples/bench --base-url "$url" --token bench --n "$count" ;;
    bare) "$@" target/release/examples/bench --base-url "$url" --token bench --n "$count" --bare ;;
    c) "$@" "$work/bench_c" "$url" bench "$count" ;;
    libcurl) "$@" "$work/bench_curl" "$url" bench "$count" ;;
  esac
}
clients="rust c libcurl bare"
for client in $clients; do run "$client" 2000 taskset -c 0 >/dev/null; done # warm-up
: >"$work/speed"
for _ in $(seq "$runs"); do
  for client in $clients; do run "$client" "$n" taskset -c 0 >>"$work/speed"; done
done
: >"$work/instructions"
for client in $clients; do
  for count in "$n1" "$n2"; do
    out="$work/callgrind.$client.$count"
    run "$client" "$count" taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" >/dev/null 2>&1
    echo "$client $count $(sed -n 's/^summary: //p' "$out")" >>"$work/instructions"
  done
done
python3 - "$work/speed" "$work/instructions" "$n1" "$n2" "$answer" <<'PY'
import json, statistics, sys
speed, instructions, n1, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print(f"nginx answers {sys.argv[5]}")
print()
rates = {}
for line in open(speed):
    row = json.loads(line)
    name = {"sdk": "rust", "bare": "bare"}.get(row["client"], row["client"])
    rates.setdefault(name, []).append(row["updates_per_s"])
counts = {}
for line in open(instructions):
    client, count, total = line.split()
    counts.setdefault(client, {})[int(count)] = int(total)
per = {c: (v[n2] - v[n1]) / (n2 - n1) for c, v in counts.items()}
med = {c: statistics.median(v) for c, v in rates.items()}
labels = {"rust": "Rust API (examples/bench.rs)", "c": "C API (bindings-c/bench.c)",
          "libcurl": "libcurl (bindings-c/bench_curl.c)", "bare": "bare ureq 3 (bench.rs --bare)"}
print("| client | updates/s (median, range) | instructions per update |")
print("|---|---|---|")
for c in ["rust", "c", "libcurl", "bare"]:
    print(f"| {labels[c]} | {med[c]:,.0f} ({min(rates[c]):,.0f} to {max(rates[c]):,.0f}) | {per[c] / 1000:.1f}k |")
print()
print(f"C / Rust: {med['c'] / med['rust']:.3f} updates/s, {per['rust'] / per['c']:.3f} by instructions")
print(f"C / libcurl: {med['c'] / med['libcurl']:.3f} updates/s, {per['libcurl'] / per['c']:.3f} by instructions")
PY
