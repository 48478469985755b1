#!/usr/bin/env bash
# Builds every fuzz target (a plain build: libFuzzer linked, no coverage instrumentation, no
# fuzzing run) and replays each corpus and regression input through its binary, which runs the
# given files once each and exits non-zero on the first that fails. CI runs this (.ci/run); it
# needs no nightly toolchain and no cargo-fuzz. The build shares the workspace's target/ (the
# crate's dependencies are the workspace's), so it costs little after `cargo test`.
#   fuzz/replay.sh
set -euo pipefail
cd "$(dirname "$0")"
target_dir=${CARGO_TARGET_DIR:-../target}
cargo build --quiet --bins --target-dir "$target_dir"
mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^intune-user-status-fuzz$')
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets in fuzz/Cargo.toml"; exit 1; }
total=0
# The c_outbox target's files.
export IUS_FUZZ_DIR
IUS_FUZZ_DIR=$(mktemp -d)
trap 'rm -rf "$IUS_FUZZ_DIR"' EXIT
for target in "${targets[@]}"; do
  inputs=()
  for folder in "corpus/$target" "regressions/$target"; do
    [ -d "$folder" ] && while IFS= read -r -d '' file; do inputs+=("$file"); done \
      < <(find "$folder" -type f -print0 | sort -z)
  done
  [ ${#inputs[@]} -gt 0 ] || { echo "$target: no corpus"; exit 1; }
  log=$(mktemp)
  if ! "$target_dir/debug/$target" "${inputs[@]}" >"$log" 2>&1; then
    tail -40 "$log"
    echo "$target: an input failed"
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  printf '%-16s %4d inputs replayed\n' "$target" "${#inputs[@]}"
  total=$((total + ${#inputs[@]}))
done
echo "fuzz replay: ${#targets[@]} targets, $total inputs, 0 failed"
