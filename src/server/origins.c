/* The dedup table; see origins.h. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "origins.h"

void
origins_init(struct origins *t)
{
	t->n = 0;
	t->clock = 0;
}

long long
origins_see(struct origins *t, const char *key, uint64_t seq)
{
	struct origin *o = NULL;
	uint64_t gap;

	/* Linear: a cluster is a handful of servers. */
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->row[i].key, key) == 0) {
			o = &t->row[i];
			break;
		}
	t->clock++;
	if (o == NULL) {
		if (t->n < ORIGINS_MAX) {
			o = &t->row[t->n++];
		} else {
			o = &t->row[0];
			for (size_t i = 1; i < t->n; i++)
				if (t->row[i].used < o->used)
					o = &t->row[i];
		}
		snprintf(o->key, sizeof(o->key), "%s", key);
		o->last = seq;
		o->used = t->clock;
		return 0;
	}
	o->used = t->clock;
	if (seq <= o->last)
		return -1;
	gap = seq - o->last - 1;
	o->last = seq;
	return (long long)gap;
}
