/*
 * TLS handshakes: the time between a TLS client's accept and its join.
 *
 * A TLS connection is admitted like any other (limits per address and in
 * all, counted before any cryptography), but it joins the room only once
 * its handshake is done, so the room never hears of a client that could
 * not speak TLS.  Until then it is here:
 *
 * - Bounded in number (--tls-max-handshakes): past the bound a new TLS
 *   connection is refused at accept, so a crowd that connects and never
 *   speaks costs descriptors and little memory, never more.
 * - Bounded in time (--tls-handshake-timeout): the loop's tick drops one
 *   that has not finished, whatever it is doing; it holds no worker while
 *   it waits, since every step is non-blocking and the connection waits
 *   in epoll between steps like any other.
 * - Bounded in CPU: the costly steps (key exchange, signature) run on the
 *   pool, but at most `lanes` of them at once (half the workers, at least
 *   one).  A step waits in a FIFO for a free lane, so a storm of
 *   handshakes leaves the other workers to relaying.
 *
 * The job that finishes a handshake joins the connection to the registry
 * and goes on as its first relay job (relay_job), which announces it and
 * reads what it already sent.  A handshake that fails is handed to the
 * reaper like any departure, unannounced.
 *
 * Ownership and locks: mu guards the list of connections in handshake,
 * their deadlines, the FIFO of steps waiting for a lane and the count of
 * lanes running.  Lock order: handshake mu -> conn mu (the tick drops an
 * expired connection under mu); nothing is called into the pool under
 * mu.  A connection in handshake holds the accept loop's reference as any
 * other; the list holds none (a connection leaves the list before it is
 * reaped).
 */
#ifndef HANDSHAKE_H
#define HANDSHAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "threadpool.h"

#include "conn.h"
#include "log.h"
#include "relay.h"

struct handshake {
	/* Set before the loop runs, immutable after. */
	size_t max;      /* connections in handshake at once */
	long timeout_ms; /* from accept to done */
	unsigned lanes;  /* handshake steps running at once */
	tp_pool *pool;
	struct relay *relay;

	pthread_mutex_t mu;
	struct conn *head, *tail;             /* mu: in handshake, oldest first */
	size_t n;                             /* mu */
	struct conn *ready_head, *ready_tail; /* mu: steps waiting for a lane */
	unsigned running;                     /* mu: lane jobs submitted, not ended */
	struct log_limit fail_log;            /* thread-safe itself */

	atomic_ulong done, failed; /* handshakes finished, and failed or expired */
};

/* The fields above mu are the caller's to set.  Returns 0 or a negative
 * errno. */
int handshake_init(struct handshake *h);
void handshake_destroy(struct handshake *h);

/* The accept loop: c (TLS, not a member, armed for input) starts its
 * handshake now.  -EBUSY if --tls-max-handshakes are in progress. */
int handshake_add(struct handshake *h, struct conn *c, long now_ms);

/* The accept loop: c, in handshake, is ready for a step.  The caller has
 * done conn_job_begin() and taken a reference for the step, which consumes
 * both. */
void handshake_ready(struct handshake *h, struct conn *c);

/* The loop's tick: drop every connection past its deadline (its next
 * step sees it and gives up). */
void handshake_expire(struct handshake *h, long now_ms);

/* Connections in handshake now. */
size_t handshake_count(struct handshake *h);

/* Shutdown, with no step running: take the first connection still in
 * handshake off the list (the caller closes it), or NULL. */
struct conn *handshake_take(struct handshake *h);

#endif /* HANDSHAKE_H */
