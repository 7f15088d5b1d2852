/*
 * What this server has delivered from each origin (a server's run: its
 * node name and incarnation), so that a line read twice from the
 * cluster's log (sent again after a dropped link, or after a Redis that
 * restarted empty) reaches nobody twice, and a line that never came is
 * noticed when a later one of the same origin does.
 *
 * Each origin numbers its lines 1, 2, 3, ... (outbox.h) and sends them in
 * that order, so one number per origin is the whole state: the highest
 * delivered.  The table is small (one row per server run seen) and bounded:
 * the row heard from least recently goes when it is full.  Owned by the
 * bus thread; no lock.
 */
#ifndef ORIGINS_H
#define ORIGINS_H

#include <stddef.h>
#include <stdint.h>

#define ORIGINS_MAX 256
#define ORIGIN_KEY_MAX 96

struct origin {
	char key[ORIGIN_KEY_MAX]; /* "node/incarnation" */
	uint64_t last;            /* the highest seq delivered */
	uint64_t used;            /* the table's clock when last heard from */
};

struct origins {
	struct origin row[ORIGINS_MAX];
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
