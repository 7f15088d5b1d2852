/* TLS handshakes in progress; see handshake.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "handshake.h"
#include "mono.h"
#include "stats.h"
#include "tls.h"

/* Failed handshakes are logged one by one at debug, and at info at most
 * this often: a port scanner must not fill the log. */
#define FAIL_LOG_MS 1000

int
handshake_init(struct handshake *h)
{
	h->head = h->tail = NULL;
	h->ready_head = h->ready_tail = NULL;
	h->n = 0;
	h->running = 0;
	memset(&h->fail_log, 0, sizeof(h->fail_log));
	atomic_init(&h->done, 0);
	atomic_init(&h->failed, 0);
	return -pthread_mutex_init(&h->mu, NULL);
}

void
handshake_destroy(struct handshake *h)
{
	pthread_mutex_destroy(&h->mu);
}

/* mu held. */
static void
unlist_locked(struct handshake *h, struct conn *c)
{
	if (c->hs_prev != NULL)
		c->hs_prev->hs_next = c->hs_next;
	else
		h->head = c->hs_next;
	if (c->hs_next != NULL)
		c->hs_next->hs_prev = c->hs_prev;
	else
		h->tail = c->hs_prev;
	c->hs_prev = c->hs_next = NULL;
	h->n--;
}

int
handshake_add(struct handshake *h, struct conn *c, long now_ms)
{
	int rc = 0;

	pthread_mutex_lock(&h->mu);
	if (h->n >= h->max) {
		rc = -EBUSY;
	} else {
		atomic_store(&c->handshaking, true);
		c->hs_due = now_ms + h->timeout_ms;
		c->hs_prev = h->tail;
		c->hs_next = NULL;
		if (h->tail != NULL)
			h->tail->hs_next = c;
		else
			h->head = c;
		h->tail = c;
		h->n++;
	}
	pthread_mutex_unlock(&h->mu);
	return rc;
}

size_t
handshake_count(struct handshake *h)
{
	size_t n;

	pthread_mutex_lock(&h->mu);
	n = h->n;
	pthread_mutex_unlock(&h->mu);
	return n;
}

void
handshake_expire(struct handshake *h, long now_ms)
{
	char why[64];

	snprintf(why, sizeof(why), "TLS handshake not done in %ld s", h->timeout_ms / 1000);
	pthread_mutex_lock(&h->mu);
	/* Oldest first, and every deadline is its accept time plus the same
	 * timeout: the first one not due ends the walk. */
	for (struct conn *c = h->head; c != NULL && c->hs_due <= now_ms; c = c->hs_next)
		conn_drop(c, why, false); /* idempotent: the first reason stays */
	pthread_mutex_unlock(&h->mu);
}

struct conn *
handshake_take(struct handshake *h)
{
	struct conn *c;

	pthread_mutex_lock(&h->mu);
	if ((c = h->head) != NULL)
		unlist_locked(h, c);
	pthread_mutex_unlock(&h->mu);
	return c;
}

/* The handshake of c is over, one way or the other. */
static void
finish(struct handshake *h, struct conn *c)
{
	pthread_mutex_lock(&h->mu);
	unlist_locked(h, c);
	pthread_mutex_unlock(&h->mu);
	atomic_store(&c->handshaking, false);
}

static void
fail(struct handshake *h, struct conn *c, const char *why)
{
	struct relay *r = h->relay;
	unsigned long held;

	finish(h, c);
	atomic_fetch_add(&h->failed, 1);
	stats_add(STATS_TLS_FAILURES, 1);
	log_debug("%s: TLS handshake failed: %s", c->addr, why);
	if (log_limit_ok(&h->fail_log, FAIL_LOG_MS, &held)) {
		if (held > 0)
			log_info("%s: TLS handshake failed: %s (%lu more since the last report)",
			         c->addr, why, held);
		else
			log_info("%s: TLS handshake failed: %s", c->addr, why);
	}
	r->reap(r->reap_arg, c); /* the step's reference; never a member */
}

/* The handshake is done: c becomes a member, and this job its first relay
 * job. */
static void
join(struct handshake *h, struct conn *c)
{
	struct relay *r = h->relay;
	size_t online;
	int rc;

	finish(h, c);
	if ((rc = broadcast_join(r->cmd.bc, c, &online)) != 0) {
		log_warn("%s: cannot register: %s", c->addr, strerror(-rc));
		atomic_fetch_add(&h->failed, 1);
		stats_add(STATS_TLS_FAILURES, 1);
		r->reap(r->reap_arg, c);
		return;
	}
	atomic_fetch_add(&h->done, 1);
	stats_add(STATS_TLS_HANDSHAKES, 1);
	c->joined_online = online;
	c->joined_ms = mono_ms(); /* a quiet join waits from here */
	if (!c->quiet) {
		c->joining = true; /* its first line may name it */
		r->join_wait(r->reap_arg, c, c->joined_ms + CONN_NICK_WAIT_MS);
	}
	if (c->quiet)
		log_debug("%s connected quietly over %s (%zu online)", c->addr, tls_version(&c->io),
		          online);
	else
		log_info("%s connected over %s (%zu online)", c->addr, tls_version(&c->io), online);
	relay_submitted(r);
	relay_job(c, NULL); /* greets it, and relays what it sent already */
}

/* One step of c's handshake, with the reference handshake_ready gave. */
static void
step(struct handshake *h, struct conn *c)
{
	char why[200];

	if (atomic_load(h->relay->stopping)) {
		fail(h, c, "server shutting down");
		return;
	}
	if (conn_is_dead(c, why, sizeof(why), NULL)) {
		fail(h, c, why);
		return;
	}
	switch (tls_handshake(&c->io, why, sizeof(why))) {
	case TLS_DONE: join(h, c); break;
	case TLS_WANT_READ:
		conn_job_end(c);
		conn_unref(c);
		break;
	case TLS_WANT_WRITE:
		conn_job_end_want_out(c);
		conn_unref(c);
		break;
	case TLS_FAILED: fail(h, c, why); break;
	}
}

/* A lane: steps, oldest first, until none waits. */
static int
lane_job(void *arg, void **result)
{
	struct handshake *h = arg;
	struct conn *c;

	(void)result;
	for (;;) {
		pthread_mutex_lock(&h->mu);
		if ((c = h->ready_head) == NULL) {
			h->running--; /* under mu: a step queued now starts a lane */
			pthread_mutex_unlock(&h->mu);
			break;
		}
		if ((h->ready_head = c->hs_ready_next) == NULL)
			h->ready_tail = NULL;
		pthread_mutex_unlock(&h->mu);
		step(h, c);
	}
	relay_done(h->relay);
	return 0;
}

void
handshake_ready(struct handshake *h, struct conn *c)
{
	bool start;
	int rc;

	pthread_mutex_lock(&h->mu);
	c->hs_ready_next = NULL;
	if (h->ready_tail != NULL)
		h->ready_tail->hs_ready_next = c;
	else
		h->ready_head = c;
	h->ready_tail = c;
	start = h->running < h->lanes;
	if (start)
		h->running++;
	pthread_mutex_unlock(&h->mu);
	if (!start)
		return; /* a running lane takes it */

	/* Counted as a relay job: shutdown waits for lanes as for jobs. */
	relay_submitted(h->relay);
	if ((rc = tp_submit(h->pool, lane_job, h, NULL)) == 0)
		return;
	relay_unsubmitted(h->relay);
	log_error("cannot submit a TLS handshake step: %s", strerror(-rc));
	/* Run the lane here rather than strand what waits in it. */
	relay_submitted(h->relay);
	lane_job(h, NULL);
}
