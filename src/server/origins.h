/*
 * What this server has delivered from each origin (a server's run: its
 * node name and incarnation), so that a line read twice from the
 * cluster's log (sent again after a dropped link, or after a Redis that
 * restarted empty) reaches nobody twice, and a line that never came is
 * noticed when a later one of the same origin does.
 *
 * An origin is one numbering: a server's run in one room (the room, the
 * node name, the incarnation and the numbering's generation, streams.h).
 * Each numbers its lines 1, 2, 3, ... and sends them in that order on one
 * connection into one stream, so one number per origin is the whole
 * state: the highest delivered.  The table has a row per origin heard
 * from (a few per room with members here), found by a hash, and is
 * bounded: the row heard from least recently goes when it is full.  Owned
 * by the bus thread; no lock.
 */
#ifndef ORIGINS_H
#define ORIGINS_H

#include <stddef.h>
#include <stdint.h>

#define ORIGINS_MAX 4096
#define ORIGINS_BUCKETS 8192 /* a power of two */
#define ORIGIN_KEY_MAX 160

struct origin {
	char key[ORIGIN_KEY_MAX]; /* "room|node/incarnation/generation" */
	uint64_t last;            /* the highest seq delivered */
	uint64_t used;            /* the table's clock when last heard from */
	int next;                 /* the next row in its bucket, or -1 */
};

struct origins {
	struct origin row[ORIGINS_MAX];
	int bucket[ORIGINS_BUCKETS]; /* first row of each chain, or -1 */
	size_t n;
	uint64_t clock;
};

void origins_init(struct origins *t);

/*
 * Line seq of origin key has come.  Returns -1 if it was delivered
 * before (drop it); otherwise deliver it, and the return value is how many
 * lines of that origin were skipped before it (0 in order, or for the
 * first line heard of an origin).
 */
long long origins_see(struct origins *t, const char *key, uint64_t seq);

#endif /* ORIGINS_H */
