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
	for (size_t i = 0; i < ORIGINS_BUCKETS; i++)
		t->bucket[i] = -1;
}

/* FNV-1a: short keys, and no adversary (they come from our servers). */
static size_t
hash(const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h & (ORIGINS_BUCKETS - 1);
}

static void
unchain(struct origins *t, int i)
{
	int *pp = &t->bucket[hash(t->row[i].key)];

	while (*pp != -1 && *pp != i)
		pp = &t->row[*pp].next;
	if (*pp == i)
		*pp = t->row[i].next;
}

long long
origins_see(struct origins *t, const char *key, uint64_t seq)
{
	size_t h = hash(key);
	struct origin *o = NULL;
	uint64_t gap;
	int i;

	for (i = t->bucket[h]; i != -1; i = t->row[i].next)
		if (strcmp(t->row[i].key, key) == 0) {
			o = &t->row[i];
			break;
		}
	t->clock++;
	if (o == NULL) {
		if (t->n < ORIGINS_MAX) {
			i = (int)t->n++;
		} else {
			/* Full: the least recently heard goes.  A scan, but only
			 * when a new origin comes to a full table. */
			i = 0;
			for (size_t k = 1; k < t->n; k++)
				if (t->row[k].used < t->row[i].used)
					i = (int)k;
			unchain(t, i);
		}
		o = &t->row[i];
		snprintf(o->key, sizeof(o->key), "%s", key);
		o->next = t->bucket[h];
		t->bucket[h] = i;
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
