/*
 * The relay job: what a worker does when a connection is ready.  It flushes
 * the connection's queue if output was waiting, reads until the socket is
 * empty or the job's budget is spent (fairness: one busy sender must not
 * hold a worker for ever), cuts the input into lines, formats each line
 * once and hands it to the broadcast module.  At end of input it relays
 * what is left, announces the departure and hands the connection back to
 * the accept loop to be reaped.  Otherwise it re-arms the connection and
 * returns.
 *
 * Flood control: each line costs a token of the client's bucket.  Lines
 * read beyond the budget are held (at most what one read brought), the
 * job stops reading, and the connection is parked until the next token is
 * due; its next job relays held lines first.  The client is thus simply
 * not read, TCP pushes back on it, and nothing it sent is lost or
 * reordered.  Empty lines cost nothing (they are not relayed).  When the
 * server stops, or the connection has been dropped, what is held is
 * relayed at once: it was accepted, and it is bounded.
 */
#ifndef RELAY_H
#define RELAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "broadcast.h"
#include "command.h"
#include "conn.h"
#include "flood.h"
#include "park.h"

/* What the jobs share; owned by the server, which outlives every job. */
struct relay {
	/* The registry and --max-line: what the jobs and the commands they
	 * run both use (command.h). */
	struct command_ctx cmd;
	struct flood_limit flood; /* lines per client per second */
	/* Where a job out of flood tokens parks its connection; wakefd is
	 * written after each, so that the loop sees the new wake-up time. */
	struct park *park;
	const atomic_bool *stopping; /* set: jobs read nothing more */
	/* A job whose connection has ended gives its reference to reap(). */
	void (*reap)(void *arg, struct conn *c);
	void *reap_arg;
	/* A join that waits for its first line (accept.h, nick before join)
	 * is listed with join_wait(reap_arg, c, due), which wakes the loop. */
	void (*join_wait)(void *arg, struct conn *c, long due);
	/* Jobs submitted and not finished; on the last one while stopping,
	 * wakefd is written so that the server can go on with shutdown. */
	atomic_long inflight;
	/* Jobs submitted that have not yet reached their end; the last to
	 * end writes the fan-outs' output (see broadcast_flush()). */
	atomic_long unwritten;
	int wakefd;
};

/* Count a job about to be submitted, in inflight and unwritten; if the
 * submit fails, relay_unsubmitted() takes it back. */
void relay_submitted(struct relay *r);
void relay_unsubmitted(struct relay *r);
/* A job counted with relay_submitted() that is not relay_job() itself (a
 * TLS handshake lane) has ended: write what its fan-outs queued if it was
 * the last, and let shutdown go on. */
void relay_done(struct relay *r);

/*
 * The job, for tp_submit(pool, relay_job, conn, NULL).  The caller has done
 * conn_job_begin(), taken a reference for the job and counted it with
 * relay_submitted(); the job consumes both.  conn->relay is the struct relay.
 */
int relay_job(void *conn, void **result);

/* Joins announced by one job at most. */
#define RELAY_JOIN_BATCH 64

struct relay_joins {
	size_t n;
	struct conn *conns[RELAY_JOIN_BATCH]; /* in join order, each busy, with a
	                                       * reference for the job */
};

/*
 * The job that announces a batch of joins whose wait is over (accept.h:
 * no first line came within CONN_NICK_WAIT_MS, or a quiet connection
 * stayed CONN_QUIET_MS), for tp_submit(pool, relay_announce_job, joins,
 * NULL): one fan-out carries all their join notices (each kept from its
 * own subject), so that a storm of joins costs one write per member per
 * batch, not one per join.  Those announced meanwhile by their own first
 * line are skipped.  A quiet one's count is the one online now.  Then it
 * re-arms each connection.  Consumes joins (malloc'ed), the references,
 * and one count with relay_submitted().  All conns of a batch belong to
 * the same struct relay.
 */
int relay_announce_job(void *joins, void **result);

#endif /* RELAY_H */
