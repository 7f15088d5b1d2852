/*
 * Stress: several threads submit, cancel, wait and shut down at once, over
 * hundreds of thousands of tasks; afterwards every count must add up
 * exactly.  Run under ThreadSanitizer in CI, this is the race detector's
 * main meal.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <sched.h>
#include <stdatomic.h>

#include "tp_test.h"

#define THREADS 4
#define PER_THREAD 60000
#define BATCH 64

static atomic_long executed;     /* task bodies run */
static atomic_long executed_bad; /* of which returned an error */
static atomic_long callbacks;    /* done callbacks run */

/* Fails with code 3 when its argument is odd. */
static int
task_stress(void *arg, void **result)
{
	atomic_fetch_add(&executed, 1);
	if ((intptr_t)arg & 1) {
		atomic_fetch_add(&executed_bad, 1);
		return 3;
	}
	*result = arg;
	return 0;
}

static void
cb_count(tp_future *f, void *arg)
{
	atomic_fetch_add(&callbacks, 1);
}

struct worker_stats {
	tp_pool *p;
	int id;
	long submitted, cancelled, with_cb, observed_cancel;
};

/* Check one finished future against what its task must have done. */
static void
check_outcome(struct worker_stats *w, tp_future *f, intptr_t arg)
{
	void *r = NULL;
	int rc = tp_future_result(f, 0, &r);

	if (rc == -ECANCELED) {
		w->observed_cancel++;
		return;
	}
	if (arg & 1) {
		ck_assert_int_eq(rc, 3);
	} else {
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq((intptr_t)r, arg);
	}
}

static void
drain_batch(struct worker_stats *w, tp_future **fs, intptr_t *args, int n, int round)
{
	int i;

	if (round & 1) {
		ck_assert_int_eq(tp_wait(fs, n, TP_ALL_COMPLETED, -1), n);
	} else {
		struct tp_completion *c;
		tp_future *f;

		ck_assert_int_eq(tp_as_completed_new(&c, fs, n), 0);
		for (i = 0; i < n; i++)
			ck_assert_int_eq(tp_as_completed_next(c, -1, &f), 0);
		ck_assert_int_eq(tp_as_completed_next(c, 0, &f), -ENOENT);
		tp_as_completed_free(c);
	}
	for (i = 0; i < n; i++) {
		ck_assert(tp_future_done(fs[i]));
		check_outcome(w, fs[i], args[i]);
		tp_future_release(fs[i]);
	}
}

static void *
mixed_thread(void *arg)
{
	struct worker_stats *w = arg;
	tp_future *fs[BATCH];
	intptr_t args[BATCH];
	struct tp_stats st = { TP_STATS_INIT };
	int i, n = 0, round = 0;

	for (i = 0; i < PER_THREAD; i++) {
		intptr_t a = (intptr_t)w->id * PER_THREAD + i;

		if (i % 4 == 0) {
			ck_assert_int_eq(tp_submit(w->p, task_stress, (void *)a, NULL), 0);
			w->submitted++;
			continue;
		}
		ck_assert_int_eq(tp_submit(w->p, task_stress, (void *)a, &fs[n]), 0);
		w->submitted++;
		if (i % 4 == 1) {
			ck_assert_int_eq(tp_future_add_done_callback(fs[n], cb_count, NULL), 0);
			w->with_cb++;
		} else if (i % 4 == 2 && tp_future_cancel(fs[n])) {
			w->cancelled++;
		}
		args[n++] = a;
		if (n == BATCH) {
			drain_batch(w, fs, args, n, round++);
			n = 0;
		}
		if (i % 1024 == 0)
			ck_assert_int_eq(tp_pool_stats(w->p, &st), 0);
	}
	drain_batch(w, fs, args, n, round);
	return NULL;
}

START_TEST(test_concurrent_submit_cancel_wait_counts_add_up)
{
	struct worker_stats w[THREADS] = { { 0 } };
	pthread_t t[THREADS];
	struct tp_stats st = { TP_STATS_INIT };
	long submitted = 0, cancelled = 0, observed = 0, with_cb = 0;
	tp_pool *p = pool_new(4, 0);
	int i;

	for (i = 0; i < THREADS; i++) {
		w[i].p = p;
		w[i].id = i;
		ck_assert_int_eq(pthread_create(&t[i], NULL, mixed_thread, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		submitted += w[i].submitted;
		cancelled += w[i].cancelled;
		observed += w[i].observed_cancel;
		with_cb += w[i].with_cb;
	}
	ck_assert_int_eq(tp_shutdown(p, TP_WAIT), 0);
	st = pool_stats(p);

	ck_assert_int_eq(submitted, THREADS * PER_THREAD);
	ck_assert_uint_eq(st.submitted, (uint64_t)submitted);
	ck_assert_uint_eq(st.cancelled, (uint64_t)cancelled);
	ck_assert_int_eq(observed, cancelled);
	ck_assert_uint_eq(st.completed + st.failed, (uint64_t)atomic_load(&executed));
	ck_assert_uint_eq(st.failed, (uint64_t)atomic_load(&executed_bad));
	ck_assert_uint_eq(st.completed + st.failed + st.cancelled, st.submitted);
	ck_assert_int_eq(atomic_load(&callbacks), with_cb);
	ck_assert_uint_eq(st.queued, 0);
	ck_assert_uint_eq(st.running, 0);
	ck_assert_uint_eq(st.workers, 0);
	tp_pool_free(p);
}
END_TEST

/* --- submitters racing a shutdown that cancels what is queued ------------- */

struct racer {
	tp_pool *p;
	atomic_long *total;
	long submitted, observed_cancel, observed_ok;
};

static void
tally(struct racer *r, int rc)
{
	ck_assert(rc == 0 || rc == -ECANCELED);
	if (rc == 0)
		r->observed_ok++;
	else
		r->observed_cancel++;
}

static void *
racer_thread(void *arg)
{
	struct racer *r = arg;
	tp_future *fs[BATCH];
	int i, n = 0, rc;

	for (;;) {
		/* Even arguments only: every task that runs succeeds. */
		if (n % 2 == 0)
			rc = tp_submit(r->p, task_stress, (void *)(intptr_t)(2 * n), NULL);
		else
			rc = tp_submit(r->p, task_stress, (void *)(intptr_t)(2 * n), &fs[n]);
		if (rc == -ESHUTDOWN)
			break;
		ck_assert_int_eq(rc, 0);
		r->submitted++;
		atomic_fetch_add(r->total, 1);
		if (++n == BATCH) {
			for (i = 1; i < BATCH; i += 2) {
				rc = tp_future_result(fs[i], -1, NULL);
				tally(r, rc);
				tp_future_release(fs[i]);
			}
			n = 0;
		}
	}
	/* Whatever we still hold was either run or cancelled by the shutdown. */
	for (i = 1; i < n; i += 2) {
		rc = tp_future_result(fs[i], -1, NULL);
		tally(r, rc);
		tp_future_release(fs[i]);
	}
	return NULL;
}

START_TEST(test_shutdown_racing_submitters_loses_and_duplicates_nothing)
{
	struct racer r[3] = { { 0 } };
	atomic_long total = 0;
	pthread_t t[3];
	struct tp_stats st = { TP_STATS_INIT };
	long submitted = 0, observed_cancel = 0;
	tp_pool *p = pool_new(4, 0);
	int i;

	atomic_store(&executed, 0);
	for (i = 0; i < 3; i++) {
		r[i].p = p;
		r[i].total = &total;
		ck_assert_int_eq(pthread_create(&t[i], NULL, racer_thread, &r[i]), 0);
	}
	/* Let work pile up, then pull the plug while submitters run. */
	while (atomic_load(&total) < 60000)
		sched_yield();
	ck_assert_int_eq(tp_shutdown(p, TP_CANCEL_FUTURES | TP_WAIT), 0);
	for (i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		submitted += r[i].submitted;
		observed_cancel += r[i].observed_cancel;
	}
	st = pool_stats(p);
	ck_assert_uint_eq(st.submitted, (uint64_t)submitted);
	ck_assert_uint_eq(st.failed, 0);
	ck_assert_uint_eq(st.completed, (uint64_t)atomic_load(&executed));
	ck_assert_uint_eq(st.completed + st.cancelled, st.submitted);
	ck_assert_uint_le((uint64_t)observed_cancel, st.cancelled);
	ck_assert_uint_eq(st.queued, 0);
	tp_pool_free(p);
}
END_TEST

static Suite *
stress_suite(void)
{
	Suite *s = suite_create("stress");
	TCase *tc = tcase_create("stress");

	/* Generous: ThreadSanitizer runs this many times slower. */
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_concurrent_submit_cancel_wait_counts_add_up);
	tcase_add_test(tc, test_shutdown_racing_submitters_loses_and_duplicates_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(stress_suite());
}
