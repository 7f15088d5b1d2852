#!/bin/sh
# libthreadpool.so must export exactly the public tp_ API listed in
# tests/exported-symbols.txt, each name in its version node: no internal
# helper (tp__*, statics made global by mistake) may leak into the ABI, and
# no public name may lose or change its version.
set -u
lib="${top_builddir:-.}/lib/.libs/libthreadpool.so"
want="${top_srcdir:-.}/tests/exported-symbols.txt"

if [ ! -f "$lib" ]; then
	echo "SKIP: no shared library at $lib (built with --disable-shared?)"
	exit 77
fi
if ! command -v nm >/dev/null 2>&1; then
	echo "SKIP: nm not found"
	exit 77
fi

# Defined, dynamic, global symbols (T = text, D/B/R = data), minus the
# markers some toolchains add.
got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ { print $3 }' |
	grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' | sort)
expected=$(sort "$want")
# Each name carries its version node (lib/threadpool.sym).  A linker
# without version scripts (configure says so) exports bare names.
case $got in
*@@*) ;;
*)
	echo "note: no symbol versions in $lib (the linker took no version script)"
	expected=$(printf '%s\n' "$expected" | sed 's/@@.*//')
	;;
esac

# A thread's cache of futures is freed by a key destructor of ours when
# the thread exits, so the library must stay mapped: marked NODELETE, which
# dlclose honours (with the version script, so with a GNU-style linker).
case $got in
*@@*)
	if command -v readelf >/dev/null 2>&1 &&
		! readelf -d "$lib" | grep -q 'Flags:.*NODELETE'; then
		echo "FAIL: $lib is not marked NODELETE (-z nodelete)"
		exit 1
	fi
	;;
esac

if [ "$got" = "$expected" ]; then
	echo "PASS: $(echo "$got" | wc -l) exported symbols, all public tp_ API"
	exit 0
fi
echo "FAIL: exported symbols differ from tests/exported-symbols.txt"
echo "--- expected"
echo "+++ exported by $lib"
printf '%s\n' "$expected" > "${TMPDIR:-/tmp}/tp-expected.$$"
printf '%s\n' "$got" | diff -u "${TMPDIR:-/tmp}/tp-expected.$$" - | tail -n +3
rm -f "${TMPDIR:-/tmp}/tp-expected.$$"
exit 1
