#!/bin/sh
# Builds consumer.c against the installed library with pkg-config, shared and static, and runs both.
# Usage: pkg_config.sh PREFIX CC OUTDIR
set -eu
prefix=$1 cc=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cflags=$(pkg-config --cflags intune_user_status)
libdir=$(pkg-config --variable=libdir intune_user_status)
# shellcheck disable=SC2046 # word splitting of pkg-config output is intended
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags "$here/consumer.c" -o "$out/consumer_shared" \
  $(pkg-config --libs intune_user_status) -Wl,-rpath,"$libdir"
# Static: only the archive is offered to the linker, plus the private libraries.
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags "$here/consumer.c" -o "$out/consumer_static" \
  "$libdir/libintune_user_status.a" $(pkg-config --static --libs-only-l intune_user_status | sed 's/-lintune_user_status//')
"$out/consumer_shared"
"$out/consumer_static"
if ldd "$out/consumer_static" | grep -q intune_user_status; then
  echo "consumer_static is linked to the shared library" >&2
  exit 1
fi
