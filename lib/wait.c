/*
 * Waiting on many futures: tp_wait and tp_as_completed.
 *
 * As in Python, a waiter is hooked onto each future it watches; a future
 * that completes notifies every waiter hooked onto it (under the future's
 * pool->mu, then the waiter's mu: see the lock order in tp_internal.h).
 * The futures may come from different pools.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "tp_internal.h"

struct tp_completion {
	unsigned forks;         /* tp__forks when made (tp_internal.h) */
	struct tp_waiter w;     /* w.fifo holds the completed futures in order */
	tp_future **uniq;       /* the distinct futures; one reference each */
	struct tp_wnode *nodes; /* nodes[i] hooks w onto uniq[i] */
	size_t m;
};

void
tp__waiter_notify(struct tp_waiter *w, tp_future *f)
{
	pthread_mutex_lock(&w->mu);
	w->ndone++;
	if (f->err != 0 && f->err != -ECANCELED)
		w->nfailed++;
	if (w->fifo != NULL)
		w->fifo[w->fifo_tail++] = f;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

struct slot {
	uintptr_t key;
	size_t idx;
};

static int
slot_cmp(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * The distinct futures of fs, in order of first appearance, in a new array
 * (*out, freed by the caller; NULL when n is 0).  Sorting copies makes this
 * O(n log n) where a pairwise check would be quadratic.
 * Returns 0, -EINVAL (a NULL entry) or -ENOMEM.
 */
static int
distinct(tp_future *const fs[], size_t n, tp_future ***out, size_t *m)
{
	struct slot *slots;
	bool *keep;
	size_t i, k = 0;

	*out = NULL;
	*m = 0;
	for (i = 0; i < n; i++)
		if (fs[i] == NULL)
			return -EINVAL;
	if (n == 0)
		return 0;
	if (n > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
	slots = malloc(n * sizeof(*slots));
	keep = calloc(n, sizeof(*keep));
	*out = malloc(n * sizeof(**out));
	if (slots == NULL || keep == NULL || *out == NULL) {
		free(slots);
		free(keep);
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		slots[i].key = (uintptr_t)fs[i];
		slots[i].idx = i;
	}
	qsort(slots, n, sizeof(*slots), slot_cmp);
	for (i = 0; i < n; i++)
		if (i == 0 || slots[i].key != slots[i - 1].key)
			keep[slots[i].idx] = true;
	for (i = 0; i < n; i++)
		if (keep[i])
			(*out)[k++] = fs[i];
	free(slots);
	free(keep);
	*m = k;
	return 0;
}

static int
waiter_init(struct tp_waiter *w)
{
	int rc;

	w->ndone = w->nfailed = 0;
	w->fifo = NULL;
	w->fifo_head = w->fifo_tail = 0;
	if ((rc = -pthread_mutex_init(&w->mu, NULL)) != 0)
		return rc;
	if ((rc = tp__cond_init_monotonic(&w->cv)) != 0)
		pthread_mutex_destroy(&w->mu);
	return rc;
}

static void
waiter_destroy(struct tp_waiter *w)
{
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

/* Hook w onto every future; those already done count (and queue) now. */
static void
hook_all(struct tp_waiter *w, tp_future *const fs[], struct tp_wnode *nodes, size_t m)
{
	size_t i;

	for (i = 0; i < m; i++) {
		tp_future *f = fs[i];
		struct tp_wnode *n = &nodes[i];

		n->w = w;
		n->f = f;
		n->prev = NULL;
		pthread_mutex_lock(&f->pool->mu);
		if (f->state == TP_F_DONE) {
			n->linked = false;
			tp__waiter_notify(w, f);
		} else {
			n->linked = true;
			n->next = f->waiters;
			if (f->waiters != NULL)
				f->waiters->prev = n;
			f->waiters = n;
		}
		pthread_mutex_unlock(&f->pool->mu);
	}
}

static void
unhook_all(struct tp_wnode *nodes, size_t m)
{
	size_t i;

	for (i = 0; i < m; i++) {
		struct tp_wnode *n = &nodes[i];
		tp_future *f = n->f;

		if (!n->linked)
			continue;
		pthread_mutex_lock(&f->pool->mu);
		if (n->prev != NULL)
			n->prev->next = n->next;
		else
			f->waiters = n->next;
		if (n->next != NULL)
			n->next->prev = n->prev;
		n->linked = false;
		pthread_mutex_unlock(&f->pool->mu);
	}
}

static bool
satisfied(const struct tp_waiter *w, size_t m, enum tp_return_when when)
{
	switch (when) {
	case TP_FIRST_COMPLETED: return w->ndone > 0;
	case TP_FIRST_EXCEPTION: return w->nfailed > 0 || w->ndone == m;
	default: return w->ndone == m;
	}
}

/* w->mu held.  Wait for a change; false once the deadline has passed. */
static bool
waiter_sleep(struct tp_waiter *w, long timeout_ms, const struct timespec *deadline)
{
	if (timeout_ms == 0)
		return false;
	if (timeout_ms < 0)
		return pthread_cond_wait(&w->cv, &w->mu) == 0;
	return pthread_cond_timedwait(&w->cv, &w->mu, deadline) != ETIMEDOUT;
}

/* -EOWNERDEAD if any future of fs belongs to a pool made before a fork, or
 * -EINVAL for a NULL one; else 0. */
static int
orphans(tp_future *const fs[], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fs[i] == NULL)
			return -EINVAL;
		if (tp__orphaned(fs[i]->pool))
			return -EOWNERDEAD;
	}
	return 0;
}

int
tp_wait(tp_future *const fs[], size_t n, enum tp_return_when when, long timeout_ms)
{
	struct timespec deadline;
	struct tp_waiter w;
	struct tp_wnode *nodes;
	tp_future **uniq;
	size_t m, i;
	int rc, ndone = 0;

	if ((n > 0 && fs == NULL) || n > INT_MAX)
		return -EINVAL;
	if (when != TP_FIRST_COMPLETED && when != TP_FIRST_EXCEPTION && when != TP_ALL_COMPLETED)
		return -EINVAL;
	if ((rc = orphans(fs, n)) != 0)
		return rc;
	if ((rc = distinct(fs, n, &uniq, &m)) != 0)
		return rc;
	if (m == 0)
		return 0;
	if ((nodes = calloc(m, sizeof(*nodes))) == NULL) {
		rc = -ENOMEM;
		goto out_uniq;
	}
	if ((rc = waiter_init(&w)) != 0)
		goto out_nodes;

	tp__deadline(&deadline, timeout_ms);
	hook_all(&w, uniq, nodes, m);
	pthread_mutex_lock(&w.mu);
	while (!satisfied(&w, m, when))
		if (!waiter_sleep(&w, timeout_ms, &deadline))
			break;
	pthread_mutex_unlock(&w.mu);
	unhook_all(nodes, m);

	for (i = 0; i < m; i++)
		if (tp_future_done(uniq[i]))
			ndone++;
	rc = ndone;
	waiter_destroy(&w);
out_nodes:
	free(nodes);
out_uniq:
	free(uniq);
	return rc;
}

int
tp_as_completed_new(struct tp_completion **out, tp_future *const fs[], size_t n)
{
	struct tp_completion *c;
	size_t i;
	int rc;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (n > 0 && fs == NULL)
		return -EINVAL;
	if ((rc = orphans(fs, n)) != 0)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->forks = atomic_load_explicit(&tp__forks, memory_order_relaxed);
	if ((rc = distinct(fs, n, &c->uniq, &c->m)) != 0)
		goto fail_c;
	rc = -ENOMEM;
	if ((c->nodes = calloc(c->m ? c->m : 1, sizeof(*c->nodes))) == NULL)
		goto fail_uniq;
	if ((rc = waiter_init(&c->w)) != 0)
		goto fail_nodes;
	rc = -ENOMEM;
	if ((c->w.fifo = malloc((c->m ? c->m : 1) * sizeof(*c->w.fifo))) == NULL)
		goto fail_waiter;
	for (i = 0; i < c->m; i++)
		tp__future_ref(c->uniq[i]);
	hook_all(&c->w, c->uniq, c->nodes, c->m);
	*out = c;
	return 0;

fail_waiter:
	waiter_destroy(&c->w);
fail_nodes:
	free(c->nodes);
fail_uniq:
	free(c->uniq);
fail_c:
	free(c);
	return rc;
}

int
tp_as_completed_next(struct tp_completion *c, long timeout_ms, tp_future **f)
{
	struct timespec deadline;
	int rc = 0;

	if (c == NULL || f == NULL)
		return -EINVAL;
	*f = NULL;
	if (c->forks != atomic_load_explicit(&tp__forks, memory_order_relaxed))
		return -EOWNERDEAD;
	tp__deadline(&deadline, timeout_ms);
	pthread_mutex_lock(&c->w.mu);
	if (c->w.fifo_head == c->m) {
		rc = -ENOENT;
	} else {
		while (c->w.fifo_head == c->w.fifo_tail)
			if (!waiter_sleep(&c->w, timeout_ms, &deadline))
				break;
		if (c->w.fifo_head == c->w.fifo_tail)
			rc = -ETIMEDOUT;
		else
			*f = c->w.fifo[c->w.fifo_head++];
	}
	pthread_mutex_unlock(&c->w.mu);
	return rc;
}

void
tp_as_completed_free(struct tp_completion *c)
{
	size_t i;

	if (c == NULL || c->forks != atomic_load_explicit(&tp__forks, memory_order_relaxed))
		return; /* the parent's (see tp_internal.h) */
	unhook_all(c->nodes, c->m);
	for (i = 0; i < c->m; i++)
		tp_future_release(c->uniq[i]);
	free(c->w.fifo);
	waiter_destroy(&c->w);
	free(c->nodes);
	free(c->uniq);
	free(c);
}
