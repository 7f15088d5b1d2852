/* Connections per client address; see ipcount.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipcount.h"

/* Chained buckets: the table never needs to grow much, since it holds one
 * entry per distinct address online, and chains stay short. */
#define NBUCKETS 4096

struct entry {
	struct entry *next;
	unsigned char key[IPCOUNT_KEYLEN];
	size_t count;
	struct flood_bucket joins; /* all zero: full */
};

/* Nothing left to remember: no connection, and the budget full again. */
static bool
forgettable(const struct entry *e, int64_t now_ns)
{
	return e->count == 0 && e->joins.tat_ns <= now_ns;
}

struct ipcount {
	struct entry *buckets[NBUCKETS];
};

int
ipcount_new(struct ipcount **out)
{
	return (*out = calloc(1, sizeof(**out))) == NULL ? -ENOMEM : 0;
}

void
ipcount_free(struct ipcount *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct entry *e = t->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t);
}

void
ipcount_key(const struct sockaddr *sa, unsigned char key[IPCOUNT_KEYLEN])
{
	memset(key, 0, IPCOUNT_KEYLEN);
	if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, IPCOUNT_KEYLEN);
	} else if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xFF; /* ::ffff:a.b.c.d */
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

static size_t
bucket(const unsigned char *key)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < IPCOUNT_KEYLEN; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % NBUCKETS;
}

static struct entry **
find(struct ipcount *t, const unsigned char *key)
{
	struct entry **p = &t->buckets[bucket(key)];

	while (*p != NULL && memcmp((*p)->key, key, IPCOUNT_KEYLEN) != 0)
		p = &(*p)->next;
	return p;
}

size_t
ipcount_get(const struct ipcount *t, const unsigned char key[IPCOUNT_KEYLEN])
{
	struct entry **p = find((struct ipcount *)t, key);

	return *p ? (*p)->count : 0;
}

int
ipcount_add(struct ipcount *t, const unsigned char key[IPCOUNT_KEYLEN])
{
	struct entry **p = find(t, key);

	if (*p == NULL) {
		if ((*p = calloc(1, sizeof(**p))) == NULL)
			return -ENOMEM;
		memcpy((*p)->key, key, IPCOUNT_KEYLEN);
	}
	(*p)->count++;
	return 0;
}

void
ipcount_del(struct ipcount *t, const unsigned char key[IPCOUNT_KEYLEN], int64_t now_ns)
{
	struct entry **p = find(t, key), *e = *p;

	if (e == NULL || e->count == 0)
		return;
	if (--e->count == 0 && forgettable(e, now_ns)) {
		*p = e->next;
		free(e);
	}
}

bool
ipcount_take_join(struct ipcount *t, const unsigned char key[IPCOUNT_KEYLEN],
                  const struct flood_limit *l, int64_t now_ns)
{
	struct entry *e = *find(t, key);

	return e == NULL || flood_take(l, &e->joins, now_ns) == 0;
}

void
ipcount_sweep(struct ipcount *t, int64_t now_ns)
{
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct entry **p = &t->buckets[i];

		while (*p != NULL) {
			struct entry *e = *p;

			if (forgettable(e, now_ns)) {
				*p = e->next;
				free(e);
			} else {
				p = &e->next;
			}
		}
	}
}
