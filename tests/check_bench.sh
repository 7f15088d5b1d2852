#!/bin/sh
# bench/chat-bench against a real chat-server (and redis-server, when it is
# installed): small runs that must come out clean, and runs built to lose
# or mangle lines, which it must report and fail on.  Figures are not
# checked here; they belong to bench/run-peers.
set -u
builddir="${top_builddir:-.}"
server="$builddir/src/chat-server"
bench="$builddir/bench/chat-bench"
tmp=$(mktemp -d)
pids=""
status=0

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

step_failed=0
fail() {
	echo "FAIL: $*"
	status=1
	step_failed=1
}

# ok MESSAGE: the step passed, unless something in it failed.
ok() {
	[ "$step_failed" -eq 0 ] && echo "ok: $*"
	step_failed=0
}

# start NAME [options]: a chat-server on 127.0.0.1, port 0; sets port, pid.
start() {
	name=$1
	shift
	"$server" -p 0 -b 127.0.0.1 "$@" >"$tmp/$name.log" 2>&1 &
	pid=$!
	pids="$pids $pid"
	i=0
	while [ $i -lt 100 ]; do
		port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$name.log")
		[ -n "$port" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	echo "FAIL: chat-server did not start"
	cat "$tmp/$name.log"
	exit 1
}

# field KEY: a value from the JSON line in $tmp/out.
field() {
	tail -1 "$tmp/out" | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

# bench EXPECTED-STATUS [options]: run chat-bench (bounded), keep its output.
bench() {
	want=$1
	shift
	timeout 60 "$bench" "$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ "$got" -ne "$want" ]; then
		fail "chat-bench $* exited $got, not $want"
		cat "$tmp/out" "$tmp/err"
	fi
}

start plain --flood-rate 0
bench 0 -p "$port" -c 20 -s 5 -m 50 -P 80 --label smoke
[ "$(field deliveries)" = 4750 ] || fail "fan-out: $(field deliveries) deliveries, not 5 x 50 x 19"
[ "$(field lost)" = 0 ] && [ "$(field corrupted)" = 0 ] && [ "$(field duplicated)" = 0 ] ||
	fail "fan-out: errors in a clean run: $(tail -1 "$tmp/out")"
grep -q '^latency ' "$tmp/out" || fail "no table"
ok "fan-out, 20 clients, 4750 deliveries checked"

bench 0 -p "$port" -c 30 -s 3 -m 20 -r 50 --label throttled
[ "$(field lost)" = 0 ] || fail "throttled: $(tail -1 "$tmp/out")"
ok "throttled senders"

# -p PORT,PORT spreads the clients over servers (a cluster's).  Two
# standalone servers are two rooms: the probe line sent before the run
# reaches only the two clients on its own server, and the bench says so.
first=$port
first_pid=$pid
start other --flood-rate 0
bench 2 -p "$first,$port" -c 4 -s 2 -m 5 -t 1
grep -q "only 2 of 4 connections heard the probe" "$tmp/err" ||
	fail "-p with two ports: $(cat "$tmp/err")"
bench 0 -p "$first,$first" -c 4 -s 2 -m 5
[ "$(field deliveries)" = 30 ] || fail "-p P,P: $(field deliveries) deliveries, not 2 x 5 x 3"
ok "-p PORT,PORT spreads the clients over the servers"
port=$first
pid=$first_pid

bench 0 -p "$port" --connect-only 300 --hold 0.2 --pid "$pid"
[ "$(field reached)" = 300 ] || fail "idle: a line reached $(field reached) of 300"
[ "$(field rss_before_kb)" -gt 0 ] 2>/dev/null || fail "idle: no server RSS read"
ok "300 idle connections, a line reached them all"

# Lines cut by the server fail the check of every byte.
start short --flood-rate 0 --max-line 40
bench 1 -p "$port" -c 3 -s 1 -m 5 -P 80 -t 2
[ "$(field corrupted)" = 10 ] || fail "cut lines: corrupted $(field corrupted), not 10"
ok "cut lines are counted as corrupted"

# A server holding lines back (flood control) past the bench's patience:
# what has not arrived is lost, and says so.
start slow --flood-rate 1 --flood-burst 1
bench 1 -p "$port" -c 3 -s 1 -m 10 -t 0.5
lost=$(field lost)
[ -n "$lost" ] && [ "$lost" -gt 0 ] || fail "held lines: lost '$lost', expected some"
ok "missing deliveries are reported as lost ($lost)"

# --rooms: each client in its room, each line due to its room only.
start rooms --flood-rate 0
bench 0 -p "$port" -c 40 --rooms 4 -s 8 -m 20
[ "$(field deliveries)" = 1440 ] && [ "$(field wrong_room)" = 0 ] ||
	fail "--rooms 4: $(tail -1 "$tmp/out") (want 8 x 20 x 9 deliveries)"
ok "--rooms 4: 1440 deliveries, each in its room"

# --movers: a /join storm while the others chat; every move answered, no
# line twice or in a room its mover had left, the senders' lines whole.
bench 0 -p "$port" -c 40 --rooms 4 -s 8 -m 20 -r 50 --movers 20 --moves 5
[ "$(field moves_done)" = 100 ] && [ "$(field deliveries)" = 1440 ] &&
	[ "$(field wrong_room)" = 0 ] && [ "$(field duplicated)" = 0 ] ||
	fail "--movers 20: $(tail -1 "$tmp/out") (want 100 moves, 1440 deliveries)"
ok "--movers 20 --moves 5: 100 moves under traffic, nothing lost, repeated or misplaced"

bench 2 -p "$port" --clients 1
grep -q "clients" "$tmp/err" || fail "bad --clients: no message"
ok "bad options are refused"

# --tls and --handshakes against a TLS listener (a certificate made here).
if grep -q '^#define HAVE_OPENSSL 1' "$builddir/config.h" 2>/dev/null &&
	command -v openssl >/dev/null 2>&1; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1 ||
		fail "cannot make a certificate"
	"$server" -p 0 -b 127.0.0.1 --flood-rate 0 --no-plain --tls-port 0 \
		--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" >"$tmp/tls.log" 2>&1 &
	pids="$pids $!"
	i=0
	tport=
	while [ $i -lt 100 ] && [ -z "$tport" ]; do
		tport=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) (tls).*/\1/p' "$tmp/tls.log")
		sleep 0.1
		i=$((i + 1))
	done
	bench 0 -p "$tport" --tls -c 20 -s 5 -m 50 -P 80
	[ "$(field deliveries)" = 4750 ] && [ "$(field lost)" = 0 ] ||
		fail "--tls: $(tail -1 "$tmp/out")"
	grep -q '(chat, TLS)' "$tmp/out" || fail "--tls: the table does not say TLS"
	bench 0 -p "$tport" --handshakes 0.5 -c 2
	[ "$(field done)" -gt 0 ] 2>/dev/null && [ "$(field failed)" = 0 ] ||
		fail "--handshakes: $(tail -1 "$tmp/out")"
	# A TLS bench against a plain port fails, saying why.
	bench 2 -p "$port" --tls -c 2 -s 1 -m 1 -t 1
	grep -q "TLS handshake failed" "$tmp/err" || fail "--tls on a plain port: $(cat "$tmp/err")"
	ok "--tls fan-out, 4750 deliveries checked; --handshakes"
else
	echo "note: no OpenSSL in this build; --tls not exercised"
fi

if command -v redis-server >/dev/null 2>&1; then
	rport=$("$bench" --free-port)
	redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
		--logfile "$tmp/redis.log" >/dev/null 2>&1 &
	rpid=$!
	pids="$pids $rpid"
	i=0
	while [ $i -lt 50 ] && ! "$bench" -p "$rport" --proto resp -c 2 -s 1 -m 1 >/dev/null 2>&1; do
		sleep 0.1
		i=$((i + 1))
	done
	bench 0 -p "$rport" --proto resp -c 20 -s 5 -m 50
	[ "$(field deliveries)" = 5000 ] || fail "resp: $(field deliveries) deliveries, not 5 x 50 x 20"
	bench 0 -p "$rport" --proto resp --connect-only 100 --hold 0.1 --pid "$rpid"
	ok "redis pub/sub, 5000 deliveries checked"
else
	echo "note: redis-server not installed; --proto resp not exercised"
fi
exit $status
