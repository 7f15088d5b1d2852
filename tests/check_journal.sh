#!/bin/sh
# Under systemd with stderr connected to the journal (JOURNAL_STREAM names
# its device and inode), chat-server's log lines carry journald priorities
# ("<6>") and no time of their own; with JOURNAL_STREAM naming another file,
# or unset, the log is as always.  The "journal" here is a plain file whose
# device and inode we give.
set -u
server="${top_builddir:-.}/src/chat-server"
dir=$(mktemp -d /tmp/chat-journal-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
status=0

# Run the server with stderr on $1 and JOURNAL_STREAM=$2 until it listens,
# then stop it.
run() {
	log=$1
	: >"$log"
	JOURNAL_STREAM=$2 "$server" --port 0 --bind 127.0.0.1 2>>"$log" &
	pid=$!
	i=0
	while ! grep -q "listening on" "$log" && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -TERM $pid
	wait $pid
}

log="$dir/journal"
: >"$log"
stream="$(stat -c %d "$log"):$(stat -c %i "$log")"
run "$log" "$stream"
if grep -q '^<6>listening on 127\.0\.0\.1:[0-9]* (' "$log" && ! grep -q 'Z info ' "$log"; then
	echo "ok: journald priorities, no timestamps"
else
	echo "FAIL: under JOURNAL_STREAM=$stream the log was:"
	cat "$log"
	status=1
fi

other="$dir/other"
: >"$other"
run "$log" "$(stat -c %d "$other"):$(stat -c %i "$other")"
if grep -q 'Z info listening on 127\.0\.0\.1:' "$log" && ! grep -q '^<6>' "$log"; then
	echo "ok: JOURNAL_STREAM naming another file changes nothing"
else
	echo "FAIL: with JOURNAL_STREAM naming another file the log was:"
	cat "$log"
	status=1
fi
exit $status
