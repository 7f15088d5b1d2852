/* The relay job; see relay.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "log.h"
#include "relay.h"
#include "stats.h"
#include "wake.h"

/* Bytes one job may read before it yields the worker to others. */
#define READ_BUDGET (64 * 1024)
/* Lines handed to the broadcast module together. */
#define BATCH 64
/*
 * How long queued output may wait for more to join it while jobs keep
 * coming: short against a person's perception, long against a syscall.
 * Measured (docs/performance.md, workload (c)): 1 ms forced a pass too
 * often, and the extra writes cost more than they saved, p99 6.4-6.9 ms;
 * 2 ms gave 4.1-4.5 ms, and 4 ms no better.
 */
#define FLUSH_AFTER_NS 2000000

/* Lines of one job, formatted and waiting to be fanned out together. */
struct batch {
	struct relay *r;
	struct conn *c;
	struct msg *msgs[BATCH];
	size_t n;
	bool quit; /* the client sent /quit: ignore what follows */
	char reason[COMMAND_MAX];
	bool unlimited;  /* stopping, or the connection dropped: no flood limit */
	int64_t wait_ns; /* > 0: out of tokens, the next one due in this long */
};

static void
batch_flush(struct batch *bt)
{
	if (bt->n == 0)
		return;
	broadcast_send_chat(bt->r->cmd.bc, bt->c, bt->msgs, bt->n);
	for (size_t i = 0; i < bt->n; i++)
		msg_unref(bt->msgs[i]);
	bt->n = 0;
}

/* The notice of c's join: under its nick if its first line took one. */
static struct msg *
join_notice(const struct conn *c, size_t online)
{
	if (c->nick[0] != '\0')
		return msg_notice("%s (%s) joined (%zu online)", c->nick, c->shown, online);
	return msg_notice("%s joined (%zu online)", c->shown, online);
}

/*
 * Tell the others c has joined: at its first line (or the cluster's answer
 * to the nick that line asked for), or late (a quiet connection that
 * stayed).  Only those who were there before it hear of it, as for any
 * join; the count is the one at its join, or today's for a quiet one.
 */
static void
announce_self(struct relay *r, struct conn *c)
{
	struct msg *m;

	c->joining = false;
	c->nick_hold = false;
	atomic_store_explicit(&c->announced, true, memory_order_relaxed);
	m = join_notice(c, c->quiet ? broadcast_online(r->cmd.bc) : c->joined_online);
	if (m != NULL) {
		broadcast_send_except(r->cmd.bc, &m, &c, 1);
		msg_unref(m);
	}
	if (c->quiet)
		log_info("%s connected (announced late)", c->addr);
}

/*
 * c's first line was /nick NAME: announce it under the nick it took (or
 * under its address, if the nick was refused); in a cluster, once the
 * cluster has answered, and what c sends meanwhile waits (nick_hold).
 */
static void
joined_as(struct relay *r, struct conn *c)
{
	char asked[CONN_NICK_MAX + 1];

	if (r->cmd.bc->bus.claim_nick != NULL) {
		conn_asked_nick(c, asked, sizeof(asked));
		if (asked[0] != '\0') {
			c->nick_hold = true; /* command_nick_answer() announces */
			return;
		}
	}
	announce_self(r, c);
}

/* One line the client may send now: a command, or chat to relay. */
static void
relay_line(struct batch *bt, const char *line, size_t len, bool truncated)
{
	struct relay *r = bt->r;
	struct msg *m;
	bool cut, first_nick;

	if (line[0] == '/' && !(len > 1 && line[1] == '/')) {
		/* Sanitised as a chat line would be, whole: a command's text
		 * (/me, /msg) follows --max-line like any other line. */
		char small[COMMAND_MAX], *text = small;
		size_t cap = len <= r->cmd.max_line / 3 ? 3 * len : r->cmd.max_line, n;

		if (cap > sizeof(small) && (text = malloc(cap)) == NULL) {
			msg_tell(bt->c, msg_notice("out of memory: command not run"));
			return;
		}
		if (text == small)
			cap = sizeof(small);
		n = line_sanitize(line, len, text, cap, &cut);
		batch_flush(bt); /* the lines before a command go first */
		first_nick = bt->c->joining && command_is_nick(text, n);
		if (bt->c->joining && !first_nick)
			announce_self(r, bt->c);
		bt->quit = command_run(&r->cmd, bt->c, text, n, truncated || cut, bt->reason,
		                       sizeof(bt->reason));
		if (first_nick)
			joined_as(r, bt->c);
		if (text != small)
			free(text);
		return;
	}
	if (bt->c->joining)
		announce_self(r, bt->c); /* before its first line */
	if (line[0] == '/') {
		line++; /* "//text" sends "/text" */
		len--;
	}
	m = msg_chat(bt->c->name, line, len, r->cmd.max_line, false, &cut);
	if (truncated || cut)
		msg_tell(bt->c, msg_notice("line too long: cut to %zu bytes", r->cmd.max_line));
	if (m == NULL)
		return; /* nothing left once sanitised (or out of memory) */
	log_debug("%s: %.*s", bt->c->logname, (int)len, line);
	bt->msgs[bt->n++] = m;
	if (bt->n == BATCH)
		batch_flush(bt);
}

/* Take a flood token for one line, if there is one now. */
static bool
may_send(struct batch *bt)
{
	int64_t wait;

	if (bt->unlimited)
		return true;
	if (bt->wait_ns > 0)
		return false; /* out for the rest of this job */
	wait = flood_take(&bt->r->flood, &bt->c->bucket, mono_ns());
	bt->wait_ns = wait;
	return wait == 0;
}

/* Every line read, from line_feed(): relayed now if it has a token and
 * none is waiting before it, else held. */
static void
on_line(void *ctx, const char *line, size_t len, bool truncated)
{
	struct batch *bt = ctx;
	struct conn *c = bt->c;

	if (len == 0 || bt->quit)
		return; /* empty lines are not relayed; nothing after /quit is */
	stats_add(STATS_LINES_IN, 1);
	if (!c->nick_hold && !flood_hold_any(&c->held) && may_send(bt)) {
		relay_line(bt, line, len, truncated);
		return;
	}
	if (flood_hold_push(&c->held, line, len, truncated) != 0)
		log_warn("%s: out of memory: a line lost", c->addr);
}

/* Relay held lines, oldest first, as far as tokens allow. */
static void
release_held(struct batch *bt)
{
	struct conn *c = bt->c;
	const char *line;
	size_t len;
	bool truncated, any = false;

	while (!bt->quit && !c->nick_hold && flood_hold_any(&c->held) && may_send(bt)) {
		flood_hold_pop(&c->held, &line, &len, &truncated);
		relay_line(bt, line, len, truncated);
		any = true;
	}
	/* A line going out now counts as heard now: a flooder we keep
	 * waiting is not silent, and must not be closed as idle. */
	if (any)
		atomic_store_explicit(&c->last_heard_ms, mono_ms(), memory_order_relaxed);
	if (bt->quit)
		flood_hold_free(&c->held); /* nothing after /quit is relayed */
}

/*
 * The connection is gone or going: hand it to the reaper, then tell the
 * others.  In that order, so that by the time anyone hears of the
 * departure, the accept loop can see it (--max-per-ip counts on that).
 * reason is the client's own (/quit), or NULL.
 */
static void
leave(struct relay *r, struct conn *c, int err, const char *reason)
{
	char why[96];
	bool warn = false, dropped = conn_is_dead(c, why, sizeof(why), &warn);
	struct room *was;
	size_t online = broadcast_leave_room(r->cmd.bc, c, &was);
	bool told = atomic_load_explicit(&c->announced, memory_order_relaxed);
	struct msg *notice = NULL;

	if (told && !atomic_load(r->stopping)) {
		if (reason != NULL && reason[0] != '\0')
			notice = msg_notice("%s left (%zu online): %s", c->name, online, reason);
		else
			notice = msg_notice("%s left (%zu online)", c->name, online);
	}
	if (!told && !(dropped && warn))
		log_debug("%s left unannounced (%zu online)", c->logname, online);
	else if (reason != NULL)
		log_info("%s quit (%zu online)", c->logname, online);
	else if (dropped && warn)
		log_warn("%s dropped: %s (%zu online)", c->logname, why, online);
	else if (dropped || err != 0)
		log_info("%s disconnected: %s (%zu online)", c->logname, dropped ? why : strerror(err),
		         online);
	else
		log_info("%s disconnected (%zu online)", c->logname, online);
	r->reap(r->reap_arg, c);                    /* c is not ours any more */
	msg_broadcast_room(r->cmd.bc, was, notice); /* to the room it was in */
	room_unref(was);
}

void
relay_submitted(struct relay *r)
{
	atomic_fetch_add(&r->inflight, 1);
	atomic_fetch_add(&r->unwritten, 1);
}

void
relay_unsubmitted(struct relay *r)
{
	/* The job that will not run may have been the one to write. */
	if (atomic_fetch_sub(&r->unwritten, 1) == 1)
		broadcast_flush(r->cmd.bc);
	atomic_fetch_sub(&r->inflight, 1);
}

/*
 * A job is over: write what the fan-outs queued if it is the last job
 * submitted (nothing more is coming soon, so waiting would only add
 * latency), or if the oldest note has waited FLUSH_AFTER_NS (jobs keep
 * coming, and their lines must not wait for a lull).  Between the two,
 * lines that pile up for a recipient leave together.  Every fan-out of a
 * job happens before its decrement, so the last job's pass sees them all.
 * Then the server may be waiting for the last job to finish.
 */
void
relay_done(struct relay *r)
{
	if (atomic_fetch_sub(&r->unwritten, 1) == 1 ||
	    broadcast_flush_age(r->cmd.bc, mono_ns()) >= FLUSH_AFTER_NS)
		broadcast_flush(r->cmd.bc);

	if (atomic_fetch_sub(&r->inflight, 1) == 1 && atomic_load(r->stopping))
		wake_signal(r->wakefd);
}

int
relay_announce_job(void *arg, void **result)
{
	struct relay_joins *j = arg;
	struct relay *r = j->conns[0]->relay;
	struct msg *msgs[RELAY_JOIN_BATCH];
	struct conn *skip[RELAY_JOIN_BATCH];
	size_t i, k = 0;

	size_t online = broadcast_online(r->cmd.bc);

	(void)result;
	for (i = 0; i < j->n; i++) {
		struct conn *c = j->conns[i];

		if (atomic_load_explicit(&c->announced, memory_order_relaxed) || c->nick_hold)
			continue; /* by its own first line, or at the cluster's answer */
		msgs[k] = join_notice(c, c->quiet ? online : c->joined_online);
		if (msgs[k] != NULL)
			skip[k++] = c;
		if (c->quiet)
			log_info("%s connected (announced late)", c->addr);
	}
	if (k > 0)
		broadcast_send_except(r->cmd.bc, msgs, skip, k);
	for (i = 0; i < k; i++)
		msg_unref(msgs[i]);
	for (i = 0; i < j->n; i++) {
		struct conn *c = j->conns[i];

		if (!c->nick_hold) {
			c->joining = false; /* a /nick from now on is a rename */
			atomic_store_explicit(&c->announced, true, memory_order_relaxed);
		}
		conn_job_end(c); /* anything it sent meanwhile is reported now */
		conn_unref(c);
	}
	free(j);
	relay_done(r);
	return 0;
}

/* Take telnet commands out of what was read (telnet.h), answering those
 * that ask; returns the length of the text left in buf. */
static size_t
drop_telnet(struct conn *c, char *buf, size_t n)
{
	unsigned char reply[TELNET_REPLY_MAX];
	size_t rlen = 0;
	struct msg *m;

	if (memchr(buf, TELNET_IAC, n) == NULL && c->telnet.state == 0)
		return n; /* the usual case: text */
	n = telnet_filter(&c->telnet, buf, n, reply, &rlen);
	if (rlen > 0 && (m = msg_new(rlen)) != NULL) {
		memcpy(m->data, reply, rlen);
		msg_tell(c, m);
	}
	return n;
}

/*
 * Read until the socket is empty, the budget is spent, or lines are held
 * (the client is out of tokens: leave the rest in the kernel).  Sets
 * c->eof at end of input or on an error.
 */
static void
read_input(struct batch *bt)
{
	struct relay *r = bt->r;
	struct conn *c = bt->c;
	char buf[16384];
	size_t budget = READ_BUDGET;

	while (!atomic_load(r->stopping) && budget > 0 && !bt->quit && !flood_hold_any(&c->held)) {
		ssize_t n = conn_read(c, buf, sizeof(buf));

		if (n > 0) {
			size_t len;

			atomic_store_explicit(&c->last_heard_ms, mono_ms(), memory_order_relaxed);
			stats_add(STATS_BYTES_IN, n);
			budget -= (size_t)n < budget ? (size_t)n : budget;
			len = drop_telnet(c, buf, (size_t)n);
			if (line_feed(&c->in, r->cmd.max_line, buf, len, on_line, bt) != 0)
				log_warn("%s: out of memory: input lost", c->addr);
			continue;
		}
		if (n == 0) {
			c->eof = true;
		} else if (n == -EINTR) {
			continue;
		} else if (n != -EAGAIN) {
			c->eof_err = (int)-n;
			c->eof = true;
		}
		break;
	}
}

/* Out of tokens with lines held: wait in the park until the next token
 * (wait_ns from now; 0: run again at once).  Returns false if it could
 * not (out of memory). */
static bool
park_conn(struct batch *bt, int64_t wait)
{
	struct relay *r = bt->r;
	long due = mono_ms() + (long)((wait + 999999) / 1000000);

	if (park_push(r->park, bt->c, due) != 0) {
		log_warn("%s: out of memory: cannot wait for its flood budget", bt->c->addr);
		return false;
	}
	wake_signal(r->wakefd);
	return true;
}

int
relay_job(void *arg, void **result)
{
	struct conn *c = arg;
	struct relay *r = c->relay;
	struct batch bt = { .r = r, .c = c, .n = 0 };

	(void)result;
	/* Its wait for a first line is over (the loop ran us for that, having
	 * no memory for a batch), or quiet and here for good now. */
	if (!atomic_load_explicit(&c->announced, memory_order_relaxed) && !c->nick_hold &&
	    (c->quiet ? mono_ms() - c->joined_ms >= CONN_QUIET_MS
	              : c->joining && mono_ms() - c->joined_ms >= CONN_NICK_WAIT_MS))
		announce_self(r, c);
	if (conn_pending(c) > 0)
		conn_flush(c); /* we may be here for EPOLLOUT */
	if (r->cmd.bc->bus.claim_nick != NULL && command_nick_answer(&r->cmd, c) && c->nick_hold)
		announce_self(r, c); /* the answer to its first line's /nick */

	/* What it sent when it had no tokens goes first. */
	bt.unlimited = !flood_limit_on(&r->flood) || atomic_load(r->stopping) ||
	               conn_is_dead(c, NULL, 0, NULL);
	release_held(&bt);
	if (!c->eof)
		read_input(&bt);
	if (!c->eof && conn_is_dead(c, NULL, 0, NULL)) {
		c->eof = true; /* dropped: its input ends here */
		bt.unlimited = true;
	}
	if (c->eof && !bt.quit) {
		line_finish(&c->in, on_line, &bt); /* a last line without LF */
		if (c->nick_hold)
			announce_self(r, c); /* no waiting for the answer now */
		release_held(&bt);
	}
	batch_flush(&bt);

	if (bt.quit) {
		msg_tell(c, msg_notice("goodbye"));
		leave(r, c, 0, bt.reason); /* our reference goes to the reaper */
	} else if (flood_hold_any(&c->held) && !c->nick_hold &&
	           park_conn(&bt, bt.wait_ns > 0 ? bt.wait_ns : 1000000)) {
		/* parked, busy, with our reference: the loop runs us again */
		stats_add(STATS_FLOOD_PARKED, 1);
	} else if (!c->eof && conn_input_buffered(c) && park_conn(&bt, 0)) {
		/* The transport holds input that epoll cannot see (TLS
		 * records already decrypted): run again at once, through
		 * the park, rather than wait for an event that will not
		 * come.  Never for plain sockets. */
	} else if (c->eof) {
		leave(r, c, c->eof_err, NULL);
	} else {
		conn_job_end(c);
		conn_unref(c);
	}
	relay_done(r);
	return 0;
}
