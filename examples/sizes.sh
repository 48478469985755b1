#!/usr/bin/env bash
# The size figures of docs/performance.md ("Size", "The outbox"): builds the C library in release
# with and without the outbox and prints the shared object's size as built and stripped (strip
# drops only the symbol table, as those figures measure). Needs binutils' strip.
#   examples/sizes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
measure() {
  local what=$1; shift
  cargo build --quiet --release -p intune-user-status-c "$@"
  local so=target/release/libintune_user_status.so stripped
  stripped=$(mktemp)
  strip -o "$stripped" "$so"
  printf '%-28s %10d bytes built, %10d bytes stripped (%.3f MiB)\n' "$what" \
    "$(stat -c %s "$so")" "$(stat -c %s "$stripped")" \
    "$(awk -v b="$(stat -c %s "$stripped")" 'BEGIN { print b / 1048576 }')"
  rm -f "$stripped"
}
echo "$(date -u +%Y-%m-%d) $(rustc --version)"
measure "without the outbox" --no-default-features
measure "with the outbox (default)"
