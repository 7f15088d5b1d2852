#!/bin/sh
# Every program the build makes is ignored by git, so that `git status` is
# clean after `./configure && make && make check` in the source tree.
# The programs come from the Makefile (AM_TESTS_ENVIRONMENT: programs).
set -u
srcdir="${top_srcdir:-.}"

if ! command -v git >/dev/null 2>&1 || ! git -C "$srcdir" rev-parse --git-dir >/dev/null 2>&1; then
	echo "SKIP: $srcdir is not a git checkout (a release tarball has no .gitignore to check)"
	exit 77
fi
status=0
for p in ${programs:?the Makefile passes the list of programs}; do
	if ! git -C "$srcdir" check-ignore -q --no-index "$p"; then
		echo "not ignored by .gitignore: $p"
		status=1
	fi
done
[ $status = 0 ] && echo "ok: every program is ignored by git"
exit $status
