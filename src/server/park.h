/*
 * Connections parked until a given time: a client over its flood budget
 * is not read until it has tokens again.  Its job ends, but the connection
 * stays busy (no other job may start for it) and the job's reference
 * moves here; when the time comes, the accept loop submits its job again.
 *
 * Two halves, two owners:
 * - the inbox, which any worker fills (park_push), guarded by mu;
 * - a min-heap ordered by wake-up time, owned by the accept loop alone,
 *   which moves the inbox into it (park_collect) and takes what is due.
 * So the heap needs no lock, and a worker never waits on the loop.
 */
#ifndef PARK_H
#define PARK_H

#include <pthread.h>
#include <stddef.h>

struct conn;

struct park_entry {
	long due_ms; /* CLOCK_MONOTONIC milliseconds */
	struct conn *c;
};

struct park {
	pthread_mutex_t mu;
	struct park_entry *inbox; /* mu */
	size_t nin, capin;        /* mu */

	struct park_entry *heap; /* accept loop only */
	size_t n, cap;           /* accept loop only */
};

int park_init(struct park *p);
/* Everything parked must have been taken out (park_pop) first. */
void park_destroy(struct park *p);

/* Any thread: park c until due_ms.  Returns 0 or -ENOMEM (then c was not
 * parked: the caller still owns it). */
int park_push(struct park *p, struct conn *c, long due_ms);

/* Accept loop: move the inbox into the heap.  Returns 0 or -ENOMEM (what
 * could not be moved stays in the inbox for the next call). */
int park_collect(struct park *p);

/* Accept loop: milliseconds from now_ms until the earliest wake-up (0 if
 * one is due), or -1 when nothing is parked. */
long park_timeout(const struct park *p, long now_ms);

/* Accept loop: take one connection due at now_ms (pass LONG_MAX to take
 * any), or NULL. */
struct conn *park_pop(struct park *p, long now_ms);

#endif /* PARK_H */
