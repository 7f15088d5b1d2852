/* The cluster's rooms; see streams.h. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "streams.h"

void
streams_init(struct streams *t, const char *prefix)
{
	memset(t->bucket, 0, sizeof(t->bucket));
	t->n = 0;
	t->gens = 0;
	snprintf(t->prefix, sizeof(t->prefix), "%s", prefix);
}

void
streams_destroy(struct streams *t)
{
	for (size_t i = 0; i < STREAMS_BUCKETS; i++)
		while (t->bucket[i] != NULL) {
			struct stream *s = t->bucket[i];

			t->bucket[i] = s->next;
			free(s);
		}
	t->n = 0;
}

/* FNV-1a of the name without regard to case. */
static size_t
hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)tolower((unsigned char)*name)) * 16777619u;
	return h & (STREAMS_BUCKETS - 1);
}

struct stream *
streams_find(struct streams *t, const char *name)
{
	for (struct stream *s = t->bucket[hash(name)]; s != NULL; s = s->next)
		if (strcasecmp(s->name, name) == 0)
			return s;
	return NULL;
}

void
streams_key(const struct streams *t, const char *name, char *out, size_t len)
{
	size_t n = (size_t)snprintf(out, len, "%sroom:", t->prefix);

	for (name += *name == '#'; *name != '\0' && n + 1 < len; name++)
		out[n++] = (char)tolower((unsigned char)*name);
	if (n < len)
		out[n] = '\0';
}

struct stream *
streams_by_key(struct streams *t, const char *key)
{
	size_t plen = strlen(t->prefix);
	char name[STREAMS_NAME_MAX];

	if (strncmp(key, t->prefix, plen) != 0 || strncmp(key + plen, "room:", 5) != 0 ||
	    strlen(key + plen + 5) + 2 > sizeof(name))
		return NULL;
	snprintf(name, sizeof(name), "#%s", key + plen + 5);
	return streams_find(t, name);
}

struct stream *
streams_get(struct streams *t, const char *name)
{
	struct stream *s = streams_find(t, name);
	size_t h;

	if (s != NULL)
		return s;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	streams_key(t, name, s->key, sizeof(s->key));
	s->gen = ++t->gens;
	s->next_seq = 1;
	s->state = STREAM_NEW;
	h = hash(name);
	s->next = t->bucket[h];
	t->bucket[h] = s;
	t->n++;
	return s;
}

void
streams_remove(struct streams *t, struct stream *s)
{
	struct stream **pp = &t->bucket[hash(s->name)];

	while (*pp != NULL && *pp != s)
		pp = &(*pp)->next;
	if (*pp == s) {
		*pp = s->next;
		t->n--;
	}
	free(s);
}
