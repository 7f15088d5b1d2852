/*
 * The server's counters and gauges, for the metrics endpoint (metrics.h).
 *
 * Any thread adds; the metrics thread reads.  Each thread adds to its own
 * shard (a cache line per shard and counter group, picked once per
 * thread), so that a fan-out counting bytes for a thousand clients never
 * bounces one cache line between the workers; a read sums the shards.
 * Relaxed atomics: a scrape sees every add that happened before it, in no
 * particular order, which is all a counter promises.
 */
#ifndef STATS_H
#define STATS_H

#include <stdint.h>

/* The ids of one labelled metric stay together, in the order metrics.c
 * lists its labels. */
enum stats_id {
	/* counters: only ever grow */
	STATS_ACCEPTED_PLAIN,
	STATS_ACCEPTED_TLS,
	STATS_REFUSED_FULL,       /* --max-clients */
	STATS_REFUSED_PER_IP,     /* --max-per-ip */
	STATS_REFUSED_HANDSHAKES, /* --tls-max-handshakes */
	STATS_REFUSED_NOFILE,     /* out of descriptors */
	STATS_LINES_IN,           /* lines read from clients */
	STATS_BYTES_IN,           /* bytes read from clients */
	STATS_LINES_OUT,          /* lines queued to clients */
	STATS_BYTES_OUT,          /* bytes written to clients */
	STATS_DROPS_SENDQ,        /* clients dropped: send queue over --max-sendq */
	STATS_DROPS_IDLE,         /* clients dropped: --idle-timeout */
	STATS_FLOOD_PARKED,       /* times a client waited for its flood budget */
	STATS_TLS_HANDSHAKES,     /* TLS handshakes finished */
	STATS_TLS_FAILURES,       /* TLS handshakes failed or timed out */
	/* gauges: go up and down */
	STATS_CLIENTS_PLAIN, /* connections open, plain listener */
	STATS_CLIENTS_TLS,   /* connections open, TLS listener */
	STATS_SENDQ_BYTES,   /* bytes queued to clients, not yet written */
	STATS_HISTORY_LINES, /* lines kept for replay, all rooms */
	STATS_ROOMS,         /* rooms that exist */
	/* values set by one thread (the cluster's bus thread) */
	STATS_CLUSTER_UP,         /* 1: the link to Redis is up */
	STATS_CLUSTER_BACKLOG,    /* our lines not yet sent to Redis */
	STATS_CLUSTER_LAG_US,     /* our last line's trip through Redis and back */
	STATS_N
};

/* Add n (negative for a gauge going down). */
void stats_add(enum stats_id id, int64_t n);

/* Set a value that one thread owns (STATS_CLUSTER_*). */
void stats_set(enum stats_id id, int64_t v);

/* The sum over every thread's shard, plus what stats_set set. */
int64_t stats_get(enum stats_id id);

#endif /* STATS_H */
