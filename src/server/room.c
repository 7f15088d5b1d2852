/* Rooms; see room.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "msg.h"
#include "room.h"
#include "stats.h"

int
room_name_parse(const char *s, size_t n, char *out)
{
	if (n > 0 && s[0] == '#') {
		s++;
		n--;
	}
	if (n < 1 || n > ROOM_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return -EINVAL;
	}
	out[0] = '#';
	memcpy(out + 1, s, n);
	out[n + 1] = '\0';
	return 0;
}

int
room_new(struct room **out, const char *name, size_t history)
{
	struct room *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (r == NULL)
		return -ENOMEM;
	if (history > 0 && (r->hist = calloc(history, sizeof(*r->hist))) == NULL) {
		free(r);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&r->hist_mu, NULL) != 0) {
		free(r->hist);
		free(r);
		return -ENOMEM;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->hist_max = history;
	stats_add(STATS_ROOMS, 1);
	atomic_init(&r->refs, 1);
	*out = r;
	return 0;
}

void
room_ref(struct room *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void
room_unref(struct room *r)
{
	if (r == NULL || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < r->hist_len; i++)
		msg_unref(r->hist[(r->hist_head + i) % r->hist_max]);
	stats_add(STATS_HISTORY_LINES, -(int64_t)r->hist_len);
	stats_add(STATS_ROOMS, -1);
	free(r->hist);
	free(r->conns);
	pthread_mutex_destroy(&r->hist_mu);
	free(r);
}

unsigned
room_hash(const char *name)
{
	unsigned h = 2166136261u;

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)tolower((unsigned char)*name)) * 16777619u;
	return h;
}

bool
room_is(const struct room *r, const char *name)
{
	return strcasecmp(r->name, name) == 0;
}

int
room_reserve(struct room *r)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct conn **p = realloc(r->conns, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		r->conns = p;
		r->cap = cap;
	}
	return 0;
}

void
room_add(struct room *r, struct conn *c)
{
	c->room_index = r->n;
	r->conns[r->n++] = c;
}

void
room_remove(struct room *r, struct conn *c)
{
	size_t i = c->room_index;

	if (i >= r->n || r->conns[i] != c)
		return;
	/* Swap the last member into the hole: O(1), order is free. */
	r->conns[i] = r->conns[--r->n];
	r->conns[i]->room_index = i;
	c->room_index = SIZE_MAX;
}

void
room_record(struct room *r, struct msg *const *msgs, size_t n)
{
	if (r->hist_max == 0)
		return;
	pthread_mutex_lock(&r->hist_mu);
	for (size_t i = 0; i < n; i++) {
		msg_ref(msgs[i]);
		if (r->hist_len == r->hist_max) {
			msg_unref(r->hist[r->hist_head]);
			r->hist[r->hist_head] = msgs[i];
			r->hist_head = (r->hist_head + 1) % r->hist_max;
		} else {
			r->hist[(r->hist_head + r->hist_len++) % r->hist_max] = msgs[i];
			stats_add(STATS_HISTORY_LINES, 1);
		}
	}
	pthread_mutex_unlock(&r->hist_mu);
}

bool
room_replay(struct room *r, struct conn *c)
{
	size_t first = r->hist_head, n1, n2;
	struct msg *end;

	if (r->hist_len == 0)
		return false;
	n1 = r->hist_max - first < r->hist_len ? r->hist_max - first : r->hist_len;
	n2 = r->hist_len - n1;
	if (conn_enqueue(c, r->hist + first, n1) < 0)
		return false;
	if (n2 > 0)
		conn_enqueue(c, r->hist, n2);
	/* Where the past ends and the present begins, so that a newcomer
	 * does not answer a line hours old. */
	end = msg_notice("end of history (%zu line%s from before you came)", r->hist_len,
	                 r->hist_len == 1 ? "" : "s");
	if (end != NULL) {
		conn_enqueue(c, &end, 1);
		msg_unref(end);
	}
	return true;
}
