/* One connection and its send queue; see conn.h for ownership and locks. */
#define _GNU_SOURCE /* EPOLLRDHUP */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "stats.h"

/* Messages gathered into one write: enough to coalesce a burst. */
#define FLUSH_IOV 64

int
conn_new(struct conn **out, struct io *io, const struct sockaddr *peer, int epfd, size_t max_sendq,
         const atomic_bool *no_read, struct relay *relay)
{
	struct conn *c;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		io_close(io);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c);
		io_close(io);
		return -ENOMEM;
	}
	c->io = *io;
	c->epfd = epfd;
	c->max_sendq = max_sendq;
	c->no_read = no_read;
	c->relay = relay;
	c->reg_index = SIZE_MAX;
	net_format_addr(peer, c->addr, sizeof(c->addr));
	memcpy(c->shown, c->addr, sizeof(c->addr));
	memcpy(c->name, c->addr, sizeof(c->addr));
	memcpy(c->logname, c->addr, sizeof(c->addr));
	atomic_init(&c->refs, 1);
	atomic_init(&c->last_heard_ms, mono_ms());
	stats_add(c->io.ops == &io_plain ? STATS_CLIENTS_PLAIN : STATS_CLIENTS_TLS, 1);
	*out = c;
	return 0;
}

void
conn_ref(struct conn *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* mu held: release every queued message. */
static void
clear_queue_locked(struct conn *c)
{
	while (c->qlen > 0) {
		msg_unref(c->q[c->qhead]);
		c->qhead = (c->qhead + 1) & (c->qcap - 1);
		c->qlen--;
	}
	c->qoff = 0;
	stats_add(STATS_SENDQ_BYTES, -(int64_t)c->qbytes);
	c->qbytes = 0;
	c->blocked = false;
}

void
conn_unref(struct conn *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	clear_queue_locked(c); /* last reference: nobody else can lock */
	free(c->q);
	line_buf_free(&c->in);
	flood_hold_free(&c->held);
	pthread_mutex_destroy(&c->mu);
	stats_add(c->io.ops == &io_plain ? STATS_CLIENTS_PLAIN : STATS_CLIENTS_TLS, -1);
	io_close(&c->io);
	free(c);
}

static void
drop_locked(struct conn *c, const char *why, bool warn)
{
	if (c->dead)
		return;
	c->dead = true;
	c->why_warn = warn;
	snprintf(c->why, sizeof(c->why), "%s", why);
	if (!c->writing)
		clear_queue_locked(c); /* else the writer does, once it is back */
	/* Wake the connection's own job with end of input: it does the
	 * leaving, so that leaving happens in one place. */
	io_shutdown(&c->io, SHUT_RDWR);
}

void
conn_drop(struct conn *c, const char *why, bool warn)
{
	pthread_mutex_lock(&c->mu);
	drop_locked(c, why, warn);
	pthread_mutex_unlock(&c->mu);
}

bool
conn_is_dead(struct conn *c, char *why, size_t len, bool *warn)
{
	bool dead;

	pthread_mutex_lock(&c->mu);
	dead = c->dead;
	if (dead && why != NULL)
		snprintf(why, len, "%s", c->why);
	if (warn != NULL)
		*warn = dead && c->why_warn;
	pthread_mutex_unlock(&c->mu);
	return dead;
}

int
conn_ask_nick(struct conn *c, const char *nick)
{
	int rc = -EBUSY;

	pthread_mutex_lock(&c->mu);
	if (c->nick_state == CONN_NICK_NONE) {
		c->nick_state = CONN_NICK_PENDING;
		snprintf(c->nick_offer, sizeof(c->nick_offer), "%s", nick);
		rc = 0;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

bool
conn_answer_nick(struct conn *c, enum conn_nick state)
{
	bool open;

	pthread_mutex_lock(&c->mu);
	open = c->nick_state == CONN_NICK_PENDING;
	if (open)
		c->nick_state = (int)state;
	pthread_mutex_unlock(&c->mu);
	return open;
}

bool
conn_revoke_nick(struct conn *c, const char *nick)
{
	bool done;

	pthread_mutex_lock(&c->mu);
	done = c->nick_state == CONN_NICK_NONE;
	if (done) {
		c->nick_state = CONN_NICK_REVOKED;
		snprintf(c->nick_offer, sizeof(c->nick_offer), "%s", nick);
	}
	pthread_mutex_unlock(&c->mu);
	return done;
}

enum conn_nick
conn_take_nick(struct conn *c, char *nick, size_t len)
{
	enum conn_nick st;

	pthread_mutex_lock(&c->mu);
	st = (enum conn_nick)c->nick_state;
	if (st > CONN_NICK_PENDING) {
		snprintf(nick, len, "%s", c->nick_offer);
		c->nick_state = CONN_NICK_NONE;
	}
	pthread_mutex_unlock(&c->mu);
	return st;
}

void
conn_asked_nick(struct conn *c, char *nick, size_t len)
{
	pthread_mutex_lock(&c->mu);
	snprintf(nick, len, "%s", c->nick_state != CONN_NICK_NONE ? c->nick_offer : "");
	pthread_mutex_unlock(&c->mu);
}

bool
conn_nick_answered(struct conn *c)
{
	bool answered;

	pthread_mutex_lock(&c->mu);
	answered = c->nick_state > CONN_NICK_PENDING;
	pthread_mutex_unlock(&c->mu);
	return answered;
}

size_t
conn_pending(struct conn *c)
{
	size_t n;

	pthread_mutex_lock(&c->mu);
	n = c->qbytes;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* mu held, no job in flight (or the job itself): ask epoll for what we
 * need next.  Nothing to wait for leaves the descriptor disarmed. */
static void
rearm_locked(struct conn *c)
{
	struct epoll_event ev;

	ev.events = EPOLLONESHOT;
	ev.data.ptr = c;
	if (c->dead || !atomic_load_explicit(c->no_read, memory_order_relaxed))
		ev.events |= EPOLLIN | EPOLLRDHUP;
	if (c->blocked || c->want_out)
		ev.events |= EPOLLOUT;
	if (ev.events == EPOLLONESHOT)
		return;
	/* Fails only if the descriptor is no longer registered, which
	 * happens once the accept loop has reaped the connection. */
	epoll_ctl(c->epfd, EPOLL_CTL_MOD, c->io.fd, &ev);
}

int
conn_enqueue(struct conn *c, struct msg *const *msgs, size_t n)
{
	size_t bytes = 0, i;
	bool was_empty;
	char why[96];
	int rc;

	for (i = 0; i < n; i++)
		bytes += msgs[i]->len;
	pthread_mutex_lock(&c->mu);
	if (c->dead) {
		pthread_mutex_unlock(&c->mu);
		return -EPIPE;
	}
	if (c->qbytes > 0 && c->qbytes + bytes > c->max_sendq) {
		/* The reader cannot keep up.  (A reader with nothing queued
		 * is not behind: an empty queue takes any message, so one
		 * long line never drops a whole room.)  Growing without bound would let
		 * one slow client eat the server's memory; blocking would
		 * stall every sender.  So it goes, and nobody else notices. */
		snprintf(why, sizeof(why), "send queue over %zu bytes", c->max_sendq);
		drop_locked(c, why, true);
		stats_add(STATS_DROPS_SENDQ, 1);
		pthread_mutex_unlock(&c->mu);
		return -ENOBUFS;
	}
	if (c->qlen + n > c->qcap) {
		size_t cap = c->qcap ? c->qcap : 8, k;
		struct msg **q;

		while (cap < c->qlen + n)
			cap *= 2;
		if ((q = malloc(cap * sizeof(*q))) == NULL) {
			drop_locked(c, "out of memory for its send queue", true);
			pthread_mutex_unlock(&c->mu);
			return -ENOBUFS;
		}
		for (k = 0; k < c->qlen; k++)
			q[k] = c->q[(c->qhead + k) & (c->qcap - 1)];
		free(c->q);
		c->q = q;
		c->qcap = cap;
		c->qhead = 0;
	}
	was_empty = c->qlen == 0;
	for (i = 0; i < n; i++) {
		msg_ref(msgs[i]);
		c->q[(c->qhead + c->qlen++) & (c->qcap - 1)] = msgs[i];
	}
	c->qbytes += bytes;
	stats_add(STATS_SENDQ_BYTES, (int64_t)bytes);
	stats_add(STATS_LINES_OUT, (int64_t)n);
	if (was_empty)
		rc = 1;
	else if (!c->blocked && !c->writing &&
	         c->qbytes >=
	                 (CONN_WRITE_NOW < c->max_sendq / 2 ? CONN_WRITE_NOW : c->max_sendq / 2))
		rc = 2;
	else
		rc = 0;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/*
 * mu held on entry and on return, but not during sendmsg: a fan-out that
 * queues to c must never wait for c's system call.  c->writing keeps
 * everyone else from writing meanwhile (whoever finds it set leaves the
 * new lines to the writer, who looks again before it stops) and from
 * freeing the messages being sent (a drop leaves the queue to the
 * writer).  Returns 0 or a negative errno (then dropped).
 */
static int
flush_locked(struct conn *c)
{
	int err = 0;

	if (c->writing)
		return 0;
	c->writing = true;
	while (c->qlen > 0 && !c->dead) {
		struct iovec iov[FLUSH_IOV];
		size_t k, cnt = c->qlen < FLUSH_IOV ? c->qlen : FLUSH_IOV;
		ssize_t sent;

		for (k = 0; k < cnt; k++) {
			struct msg *m = c->q[(c->qhead + k) & (c->qcap - 1)];
			size_t off = k == 0 ? c->qoff : 0;

			iov[k].iov_base = m->data + off;
			iov[k].iov_len = m->len - off;
		}
		pthread_mutex_unlock(&c->mu);
		sent = io_writev(&c->io, iov, (int)cnt);
		err = sent < 0 ? (int)-sent : 0;
		pthread_mutex_lock(&c->mu);
		if (c->dead)
			break;
		if (sent < 0) {
			if (err == EINTR)
				continue;
			c->writing = false;
			if (err == EAGAIN || err == EWOULDBLOCK) {
				c->blocked = true;
				if (!c->busy)
					rearm_locked(c);
				return 0;
			}
			/* The peer is gone (EPIPE, ECONNRESET): a departure,
			 * not an incident. */
			drop_locked(c, strerror(err), false);
			return -err;
		}
		c->qbytes -= (size_t)sent;
		stats_add(STATS_SENDQ_BYTES, -(int64_t)sent);
		stats_add(STATS_BYTES_OUT, (int64_t)sent);
		while (sent > 0) {
			struct msg *m = c->q[c->qhead];
			size_t left = m->len - c->qoff;

			if ((size_t)sent < left) {
				c->qoff += (size_t)sent; /* a partial write keeps the tail */
				break;
			}
			sent -= (ssize_t)left;
			msg_unref(m);
			c->qhead = (c->qhead + 1) & (c->qcap - 1);
			c->qlen--;
			c->qoff = 0;
		}
	}
	c->writing = false;
	if (c->dead) {
		clear_queue_locked(c); /* the drop left it to us */
		return -EPIPE;
	}
	c->blocked = false;
	return 0;
}

int
conn_flush(struct conn *c)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	rc = c->dead ? -EPIPE : flush_locked(c);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

ssize_t
conn_read(struct conn *c, void *buf, size_t len)
{
	return io_read(&c->io, buf, len);
}

bool
conn_input_buffered(struct conn *c)
{
	return io_pending(&c->io);
}

void
conn_linger_begin(struct conn *c)
{
	pthread_mutex_lock(&c->mu);
	c->busy = true;
	pthread_mutex_unlock(&c->mu);
}

void
conn_shutdown_write(struct conn *c)
{
	pthread_mutex_lock(&c->mu);
	io_shutdown(&c->io, SHUT_WR);
	pthread_mutex_unlock(&c->mu);
}

int
conn_send(struct conn *c, struct msg *const *msgs, size_t n)
{
	int rc = conn_enqueue(c, msgs, n);

	return rc > 0 ? conn_flush(c) : rc;
}

bool
conn_job_begin(struct conn *c)
{
	bool ok;

	pthread_mutex_lock(&c->mu);
	ok = !c->busy;
	c->busy = true;
	if (ok)
		c->want_out = false; /* whatever it waited for, this job looks again */
	pthread_mutex_unlock(&c->mu);
	return ok;
}

void
conn_job_end(struct conn *c)
{
	pthread_mutex_lock(&c->mu);
	c->busy = false;
	rearm_locked(c);
	pthread_mutex_unlock(&c->mu);
}

void
conn_job_end_want_out(struct conn *c)
{
	pthread_mutex_lock(&c->mu);
	c->want_out = true;
	c->busy = false;
	rearm_locked(c);
	pthread_mutex_unlock(&c->mu);
}
