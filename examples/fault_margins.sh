#!/usr/bin/env bash
# The fault matrix's timing margin, measured: runs tests/reliability.rs RUNS times (default 50)
# and prints, per timing row, how far past its stated figure (docs/reliability.md, "The fault
# matrix") the measured time ran (the emulator's arrival times): minimum, median, 95th percentile
# and maximum, in ms.
# The bound each row asserts is its stated figure plus MARGIN (tests/reliability.rs); compare
# MARGIN with the largest excess here. Prints the load average before and after, since the
# excess is mostly other processes' CPU time.
#   examples/fault_margins.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}
cargo test --test reliability --no-run --quiet
# Every run's output stays here for a second look.
out=target/fault-margins.log
: >"$out"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
failed=0
for run in $(seq "$runs"); do
  cargo test --quiet --test reliability -- --nocapture >>"$out" 2>&1 || failed=$((failed + 1))
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); $runs runs, $failed failed"
python3 - "$out" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"timing (.+?) excess_ms=(-?[0-9.]+)", line)
    if m:
        rows.setdefault(m.group(1), []).append(float(m.group(2)))
def q(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]
print(f"{'row':40} {'n':>4} {'min':>7} {'median':>7} {'p95':>7} {'max':>7}")
every = []
for row in sorted(rows):
    v = rows[row]
    every += v
    print(f"{row:40} {len(v):4} {min(v):7.1f} {statistics.median(v):7.1f} {q(v, .95):7.1f} {max(v):7.1f}")
if every:
    print(f"{'all rows':40} {len(every):4} {min(every):7.1f} {statistics.median(every):7.1f} {q(every, .95):7.1f} {max(every):7.1f}")
PY
