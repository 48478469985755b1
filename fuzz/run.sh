#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 75) and prints executions and crashes per
# target. libFuzzer on the stable toolchain: cargo-fuzz passes nightly-only flags, which
# RUSTC_BOOTSTRAP=1 allows. New inputs go to target/fuzz-corpus (scratch); the seeds in corpus/
# stay as committed. Crashes land in fuzz/artifacts/<target>/; copy each into regressions/<target>/
# (replayed by `cargo test` at the root) once it is fixed.
#   fuzz/run.sh [SECONDS] [TARGET...]      needs: cargo install cargo-fuzz
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:-75}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && mapfile -t targets < <(cargo fuzz list 2>/dev/null)
export RUSTC_BOOTSTRAP=1
# The c_outbox target's files, removed at the end.
export IUS_FUZZ_DIR
IUS_FUZZ_DIR=$(mktemp -d)
trap 'rm -rf "$IUS_FUZZ_DIR"' EXIT
cargo fuzz build -O >/dev/null 2>&1 || { echo "cargo fuzz build failed"; exit 1; }
printf '%-16s %12s %8s %8s\n' target executions exec/s crashes
for target in "${targets[@]}"; do
  scratch=../target/fuzz-corpus/$target
  mkdir -p "$scratch" "artifacts/$target"
  log=../target/fuzz-$target.log
  cargo fuzz run -O "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "artifacts/$target" -type f | wc -l)
  printf '%-16s %12s %8s %8s\n' "$target" "${execs:-?}" "${speed:-?}" "$crashes"
done
