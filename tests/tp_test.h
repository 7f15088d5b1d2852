/*
 * Helpers shared by the libthreadpool suites.  Tests never sleep to let
 * something happen: they hold tasks at a gate and wait on counters, so the
 * only clock is Check's per-test timeout, which catches a hang.
 */
#ifndef TP_TEST_H
#define TP_TEST_H

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "check_run.h"
#include "threadpool.h"

/* A gate holds tasks until it is opened; counts those who reached it. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open;
	int arrived;
};

/* A counter that one can wait on. */
struct counter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long n;
};

static inline void
gate_init(struct gate *g)
{
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->open = false;
	g->arrived = 0;
}

static inline void
gate_destroy(struct gate *g)
{
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}

static inline void
gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static inline void
gate_pass(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->arrived++;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

/* Block until n tasks have arrived at the gate. */
static inline void
gate_wait_arrived(struct gate *g, int n)
{
	pthread_mutex_lock(&g->mu);
	while (g->arrived < n)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static inline int
gate_arrived(struct gate *g)
{
	int n;

	pthread_mutex_lock(&g->mu);
	n = g->arrived;
	pthread_mutex_unlock(&g->mu);
	return n;
}

static inline void
counter_init(struct counter *c)
{
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->n = 0;
}

static inline void
counter_destroy(struct counter *c)
{
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
}

static inline void
counter_add(struct counter *c, long d)
{
	pthread_mutex_lock(&c->mu);
	c->n += d;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static inline long
counter_get(struct counter *c)
{
	long n;

	pthread_mutex_lock(&c->mu);
	n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

static inline void
counter_wait_for(struct counter *c, long n)
{
	pthread_mutex_lock(&c->mu);
	while (c->n < n)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

/* Tasks. */
static inline int
task_gate(void *arg, void **result)
{
	gate_pass(arg);
	return 0;
}

static inline int
task_count(void *arg, void **result)
{
	counter_add(arg, 1);
	return 0;
}

/* Returns its argument as the error code: 0 succeeds. */
static inline int
task_return(void *arg, void **result)
{
	return (int)(intptr_t)arg;
}

/* Doubles its argument into *result. */
static inline int
task_double(void *arg, void **result)
{
	*result = (void *)((intptr_t)arg * 2);
	return 0;
}

static inline tp_pool *
pool_new(unsigned workers, size_t max_queue)
{
	struct tp_options o = { TP_OPTIONS_INIT };
	tp_pool *p = NULL;

	o.max_workers = workers;
	o.max_queue = max_queue;
	ck_assert_int_eq(tp_pool_create(&p, &o), 0);
	ck_assert_ptr_nonnull(p);
	return p;
}

static inline struct tp_stats
pool_stats(tp_pool *p)
{
	struct tp_stats st = { TP_STATS_INIT };

	ck_assert_int_eq(tp_pool_stats(p, &st), 0);
	return st;
}

#endif /* TP_TEST_H */
