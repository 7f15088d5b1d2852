/* Parked connections; see park.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "park.h"

int
park_init(struct park *p)
{
	p->inbox = p->heap = NULL;
	p->nin = p->capin = p->n = p->cap = 0;
	return -pthread_mutex_init(&p->mu, NULL);
}

void
park_destroy(struct park *p)
{
	free(p->inbox);
	free(p->heap);
	pthread_mutex_destroy(&p->mu);
}

/* Make room for one more entry in an array of *cap. */
static int
grow(struct park_entry **a, size_t n, size_t *cap)
{
	struct park_entry *q;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	if ((q = realloc(*a, ncap * sizeof(*q))) == NULL)
		return -ENOMEM;
	*a = q;
	*cap = ncap;
	return 0;
}

int
park_push(struct park *p, struct conn *c, long due_ms)
{
	int rc;

	pthread_mutex_lock(&p->mu);
	if ((rc = grow(&p->inbox, p->nin, &p->capin)) == 0)
		p->inbox[p->nin++] = (struct park_entry){ .due_ms = due_ms, .c = c };
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static void
swap(struct park_entry *a, struct park_entry *b)
{
	struct park_entry t = *a;

	*a = *b;
	*b = t;
}

static int
heap_add(struct park *p, struct park_entry e)
{
	size_t i;

	if (grow(&p->heap, p->n, &p->cap) != 0)
		return -ENOMEM;
	i = p->n++;
	p->heap[i] = e;
	while (i > 0 && p->heap[(i - 1) / 2].due_ms > p->heap[i].due_ms) {
		swap(&p->heap[(i - 1) / 2], &p->heap[i]);
		i = (i - 1) / 2;
	}
	return 0;
}

int
park_collect(struct park *p)
{
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	while (p->nin > 0) {
		if ((rc = heap_add(p, p->inbox[p->nin - 1])) != 0)
			break;
		p->nin--;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

long
park_timeout(const struct park *p, long now_ms)
{
	if (p->n == 0)
		return -1;
	return p->heap[0].due_ms > now_ms ? p->heap[0].due_ms - now_ms : 0;
}

struct conn *
park_pop(struct park *p, long now_ms)
{
	struct conn *c;
	size_t i = 0;

	if (p->n == 0 || p->heap[0].due_ms > now_ms)
		return NULL;
	c = p->heap[0].c;
	p->heap[0] = p->heap[--p->n];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < p->n && p->heap[l].due_ms < p->heap[m].due_ms)
			m = l;
		if (r < p->n && p->heap[r].due_ms < p->heap[m].due_ms)
			m = r;
		if (m == i)
			break;
		swap(&p->heap[i], &p->heap[m]);
		i = m;
	}
	return c;
}
