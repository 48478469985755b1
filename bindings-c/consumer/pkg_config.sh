#!/bin/sh
# Builds consumer.c against the installed library with pkg-config, shared and static, and runs both.
# Usage: pkg_config.sh PREFIX CC OUTDIR [RUNNER]; RUNNER (e.g. wine64) runs the programs when CC
# builds for Windows (mingw-w64).
set -eu
prefix=$1 cc=$2 out=$3 runner=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cflags=$(pkg-config --cflags intune_user_status)
libdir=$(pkg-config --variable=libdir intune_user_status)
case "$("$cc" -dumpmachine)" in
  *mingw*)
    # `-lintune_user_status` finds the import library (libintune_user_status.dll.a) first; the
    # DLL goes beside the program, where Windows looks for it.
    # shellcheck disable=SC2046 # word splitting of pkg-config output is intended
    "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags "$here/consumer.c" -o "$out/consumer_shared.exe" \
      $(pkg-config --libs intune_user_status)
    cp "$prefix/bin/intune_user_status.dll" "$out/"
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags "$here/consumer.c" -o "$out/consumer_static.exe" \
      "$libdir/libintune_user_status.a" $(pkg-config --static --libs-only-l intune_user_status | sed 's/-lintune_user_status//')
    $runner "$out/consumer_shared.exe"
    $runner "$out/consumer_static.exe"
    objdump=$("$cc" -print-prog-name=objdump)
    command -v "$objdump" >/dev/null 2>&1 || objdump=x86_64-w64-mingw32-objdump
    if "$objdump" -p "$out/consumer_static.exe" | grep -qi 'DLL Name: intune_user_status.dll'; then
      echo "consumer_static.exe imports the DLL" >&2
      exit 1
    fi
    if ! "$objdump" -p "$out/consumer_shared.exe" | grep -qi 'DLL Name: intune_user_status.dll'; then
      echo "consumer_shared.exe does not import intune_user_status.dll" >&2
      exit 1
    fi
    ;;
  *)
    # shellcheck disable=SC2046 # word splitting of pkg-config output is intended
    "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags "$here/consumer.c" -o "$out/consumer_shared" \
      $(pkg-config --libs intune_user_status) -Wl,-rpath,"$libdir"
    # Static: only the archive is offered to the linker, plus the private libraries.
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $cflags "$here/consumer.c" -o "$out/consumer_static" \
      "$libdir/libintune_user_status.a" $(pkg-config --static --libs-only-l intune_user_status | sed 's/-lintune_user_status//')
    "$out/consumer_shared"
    "$out/consumer_static"
    if ldd "$out/consumer_static" | grep -q intune_user_status; then
      echo "consumer_static is linked to the shared library" >&2
      exit 1
    fi
    ;;
esac
