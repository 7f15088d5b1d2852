#!/bin/sh
# Every man page in docs/ must lint cleanly (mandoc -T lint, or groff with
# warnings on when mandoc is absent), so `man ./docs/X` renders as written.
set -u
srcdir="${top_srcdir:-.}"
status=0
found=0

for page in "$srcdir"/docs/*.[1-9]; do
	[ -f "$page" ] || continue
	found=1
	if command -v mandoc >/dev/null 2>&1; then
		# -W warning: report warnings and worse; style hints are not failures.
		out=$(mandoc -T lint -W warning "$page" 2>&1)
	elif command -v groff >/dev/null 2>&1; then
		out=$(groff -mandoc -ww -z "$page" 2>&1)
	else
		echo "SKIP: neither mandoc nor groff is installed"
		exit 77
	fi
	if [ -n "$out" ]; then
		echo "FAIL: $page"
		echo "$out"
		status=1
	else
		echo "ok: $page"
	fi
done
[ "$found" -eq 1 ] || { echo "FAIL: no man pages in $srcdir/docs"; exit 1; }

# `make install` links each name of threadpool(3)'s NAME section to it
# (Makefile.am, TP_MAN_LINKS): the list must be exactly those names.
if [ -n "${tp_man_links+x}" ]; then
	names=$(sed -n 's/^\.Nm \(tp_[a-z_]*\).*/\1/p' "$srcdir/docs/threadpool.3" | sort -u)
	links=$(printf '%s\n' $tp_man_links | sort -u)
	if [ "$names" != "$links" ]; then
		echo "FAIL: TP_MAN_LINKS in Makefile.am differs from threadpool.3's NAME section:"
		printf 'page:  %s\nlinks: %s\n' "$(echo $names)" "$(echo $links)"
		status=1
	else
		echo "ok: $(echo "$links" | wc -l) function names link to threadpool.3"
	fi
fi
exit $status
