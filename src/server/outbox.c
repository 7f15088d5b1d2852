/* The outbox; see outbox.h. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mono.h"
#include "outbox.h"

int
outbox_init(struct outbox *o, size_t lines, size_t max_bytes)
{
	o->ring = calloc(lines, sizeof(*o->ring));
	if (o->ring == NULL)
		return -ENOMEM;
	o->cap = o->lines = lines;
	o->head = o->len = 0;
	o->bytes = 0;
	o->max_bytes = max_bytes;
	o->next_seq = 1;
	o->lost = 0;
	o->unconfirmed = 0;
	o->early = 0;
	o->unsent = 0;
	return 0;
}

void
outbox_destroy(struct outbox *o)
{
	for (size_t i = 0; i < o->len; i++) {
		msg_unref(outbox_at(o, i)->m);
		free(outbox_at(o, i)->topic);
	}
	free(o->ring);
	o->ring = NULL;
	o->len = 0;
}

struct outbox_entry *
outbox_at(struct outbox *o, size_t i)
{
	return &o->ring[(o->head + i) % o->cap];
}

static void
drop_oldest(struct outbox *o, void (*deliver)(void *, struct outbox_entry *), void *arg)
{
	struct outbox_entry *e = outbox_at(o, 0);

	if (!e->delivered && deliver != NULL) {
		deliver(arg, e);
		e->delivered = true;
		o->early++;
	}
	if (!e->sent) {
		o->lost++; /* never sent: nobody else will have it */
		o->unsent--;
	} else if (!e->acked) {
		o->unconfirmed++; /* sent: others have it unless the link drops first */
	}
	o->bytes -= e->m->len;
	msg_unref(e->m);
	free(e->topic);
	o->head = (o->head + 1) % o->cap;
	o->len--;
}

/* Double the ring, oldest first at 0.  False if out of memory. */
static bool
grow(struct outbox *o)
{
	struct outbox_entry *r = malloc(2 * o->cap * sizeof(*r));

	if (r == NULL)
		return false;
	for (size_t i = 0; i < o->len; i++)
		r[i] = *outbox_at(o, i);
	free(o->ring);
	o->ring = r;
	o->cap *= 2;
	o->head = 0;
	return true;
}

uint64_t
outbox_push(struct outbox *o, enum bus_kind kind, const char *room, const char *topic,
            uint64_t from, bool remote_only, struct msg *m, bool delivered,
            void (*deliver)(void *, struct outbox_entry *), void *arg)
{
	struct outbox_entry *e;
	char *t = NULL;

	if (topic != NULL && (t = strdup(topic)) == NULL)
		return 0;
	while (o->len > 0 && (o->len >= o->lines || o->bytes + m->len > o->max_bytes)) {
		/* Over the bound with every line still in flight (the link is
		 * up, but behind): room for more, up to OUTBOX_SLACK times,
		 * rather than deliver out of the cluster's order. */
		bool in_flight = !outbox_at(o, 0)->delivered;

		if (in_flight && o->len < o->lines * OUTBOX_SLACK &&
		    o->bytes + m->len <= o->max_bytes * OUTBOX_SLACK &&
		    (o->len < o->cap || grow(o)))
			break;
		drop_oldest(o, deliver, arg);
	}
	if (o->len == o->cap && !grow(o))
		drop_oldest(o, deliver, arg);
	e = outbox_at(o, o->len++);
	msg_ref(m);
	e->seq = o->next_seq++;
	e->pushed_ns = (int64_t)mono_ns();
	snprintf(e->room, sizeof(e->room), "%s", room);
	e->rgen = e->rseq = 0;
	e->topic = t;
	e->kind = kind;
	e->from = from;
	e->remote_only = remote_only;
	e->m = m;
	e->sent = e->acked = false;
	e->delivered = delivered;
	o->bytes += m->len;
	o->unsent++;
	return e->seq;
}

struct outbox_entry *
outbox_find(struct outbox *o, uint64_t seq)
{
	uint64_t first;

	if (o->len == 0)
		return NULL;
	first = outbox_at(o, 0)->seq;
	if (seq < first || seq - first >= o->len)
		return NULL;
	return outbox_at(o, (size_t)(seq - first));
}

struct outbox_entry *
outbox_next_unsent(struct outbox *o)
{
	/* Unsent entries are always the newest ones, after the sent ones:
	 * the bus sends in order and unsends all at once. */
	if (o->unsent == 0)
		return NULL;
	return outbox_at(o, o->len - o->unsent);
}

void
outbox_unsend(struct outbox *o, bool keep_acked)
{
	size_t i = 0;

	/* Keep the acked prefix as it is; everything after the first entry
	 * Redis has not confirmed is sent again, in order. */
	if (keep_acked)
		while (i < o->len && outbox_at(o, i)->acked)
			i++;
	for (size_t j = i; j < o->len; j++) {
		struct outbox_entry *e = outbox_at(o, j);

		e->sent = false;
		if (!keep_acked)
			e->acked = false;
	}
	o->unsent = o->len - i;
}
