/* Waiting on many futures: tp_wait and tp_as_completed. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <time.h>

#include "tp_test.h"

/* Three gates, one task held at each, on a pool with room for all three. */
struct trio {
	tp_pool *p;
	struct gate g[3];
	tp_future *f[3];
};

static void
trio_start(struct trio *t)
{
	int i;

	t->p = pool_new(3, 0);
	for (i = 0; i < 3; i++) {
		gate_init(&t->g[i]);
		ck_assert_int_eq(tp_submit(t->p, task_gate, &t->g[i], &t->f[i]), 0);
	}
}

static void
trio_finish(struct trio *t)
{
	int i;

	for (i = 0; i < 3; i++)
		gate_open(&t->g[i]);
	tp_pool_free(t->p);
	for (i = 0; i < 3; i++) {
		tp_future_release(t->f[i]);
		gate_destroy(&t->g[i]);
	}
}

/* --- tp_wait ------------------------------------------------------------- */

START_TEST(test_wait_all_completed_returns_when_all_are_done)
{
	struct trio t;

	trio_start(&t);
	gate_open(&t.g[0]);
	gate_open(&t.g[1]);
	gate_open(&t.g[2]);
	ck_assert_int_eq(tp_wait(t.f, 3, TP_ALL_COMPLETED, -1), 3);
	ck_assert(tp_future_done(t.f[0]) && tp_future_done(t.f[1]) && tp_future_done(t.f[2]));
	trio_finish(&t);
}
END_TEST

START_TEST(test_wait_first_completed_returns_at_the_first)
{
	struct trio t;

	trio_start(&t);
	gate_open(&t.g[1]);
	ck_assert_int_eq(tp_wait(t.f, 3, TP_FIRST_COMPLETED, -1), 1);
	ck_assert(tp_future_done(t.f[1]));
	ck_assert(!tp_future_done(t.f[0]));
	ck_assert(!tp_future_done(t.f[2]));
	trio_finish(&t);
}
END_TEST

START_TEST(test_wait_timeout_returns_the_done_count)
{
	struct trio t;

	trio_start(&t);
	gate_open(&t.g[2]);
	ck_assert_int_eq(tp_future_result(t.f[2], -1, NULL), 0);
	ck_assert_int_eq(tp_wait(t.f, 3, TP_ALL_COMPLETED, 30), 1);
	ck_assert_int_eq(tp_wait(t.f, 3, TP_ALL_COMPLETED, 0), 1);
	ck_assert(!tp_future_done(t.f[0]));
	trio_finish(&t);
}
END_TEST

START_TEST(test_wait_first_exception_returns_at_a_failure)
{
	tp_pool *p = pool_new(2, 0);
	struct gate g;
	tp_future *fs[2];

	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, &fs[0]), 0);
	ck_assert_int_eq(tp_submit(p, task_return, (void *)3, &fs[1]), 0);
	ck_assert_int_eq(tp_wait(fs, 2, TP_FIRST_EXCEPTION, -1), 1);
	ck_assert_int_eq(tp_future_exception(fs[1], 0), 3);
	ck_assert(!tp_future_done(fs[0]));
	gate_open(&g);
	tp_future_release(fs[0]);
	tp_future_release(fs[1]);
	tp_pool_free(p);
	gate_destroy(&g);
}
END_TEST

START_TEST(test_wait_first_exception_without_failure_waits_for_all)
{
	struct trio t;

	trio_start(&t);
	gate_open(&t.g[0]);
	/* One success is not an exception: the condition is not met yet. */
	ck_assert_int_eq(tp_future_result(t.f[0], -1, NULL), 0);
	ck_assert_int_eq(tp_wait(t.f, 3, TP_FIRST_EXCEPTION, 30), 1);
	gate_open(&t.g[1]);
	gate_open(&t.g[2]);
	ck_assert_int_eq(tp_wait(t.f, 3, TP_FIRST_EXCEPTION, -1), 3);
	trio_finish(&t);
}
END_TEST

static void *
thread_open_gate_later(void *arg)
{
	struct timespec ts = { 0, 50 * 1000000L };

	/* Correctness never depends on this delay: it only gives a wrong
	 * early return the chance to show itself before the gate opens. */
	nanosleep(&ts, NULL);
	gate_open(arg);
	return NULL;
}

START_TEST(test_wait_counts_a_cancelled_future_as_done_not_failed)
{
	tp_pool *p = pool_new(1, 0);
	struct gate g;
	tp_future *fs[2];
	pthread_t t;

	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, &fs[0]), 0);
	ck_assert_int_eq(tp_submit(p, task_return, NULL, &fs[1]), 0);
	ck_assert(tp_future_cancel(fs[1]));
	ck_assert_int_eq(tp_wait(fs, 2, TP_FIRST_COMPLETED, -1), 1);
	ck_assert_int_eq(tp_wait(fs, 2, TP_FIRST_EXCEPTION, 0), 1);
	ck_assert(!tp_future_done(fs[0]));
	/* No failure among them: FIRST_EXCEPTION must wait for all. */
	ck_assert_int_eq(pthread_create(&t, NULL, thread_open_gate_later, &g), 0);
	ck_assert_int_eq(tp_wait(fs, 2, TP_FIRST_EXCEPTION, -1), 2);
	pthread_join(t, NULL);
	tp_future_release(fs[0]);
	tp_future_release(fs[1]);
	tp_pool_free(p);
	gate_destroy(&g);
}
END_TEST

START_TEST(test_wait_counts_a_repeated_future_once)
{
	struct trio t;
	tp_future *fs[4];

	trio_start(&t);
	fs[0] = fs[2] = t.f[0];
	fs[1] = fs[3] = t.f[1];
	gate_open(&t.g[0]);
	gate_open(&t.g[1]);
	ck_assert_int_eq(tp_wait(fs, 4, TP_ALL_COMPLETED, -1), 2);
	trio_finish(&t);
}
END_TEST

START_TEST(test_wait_spans_futures_of_different_pools)
{
	tp_pool *a = pool_new(1, 0), *b = pool_new(1, 0);
	struct gate ga, gb;
	tp_future *fs[2];

	gate_init(&ga);
	gate_init(&gb);
	ck_assert_int_eq(tp_submit(a, task_gate, &ga, &fs[0]), 0);
	ck_assert_int_eq(tp_submit(b, task_gate, &gb, &fs[1]), 0);
	gate_open(&gb);
	ck_assert_int_eq(tp_wait(fs, 2, TP_FIRST_COMPLETED, -1), 1);
	ck_assert(tp_future_done(fs[1]));
	gate_open(&ga);
	ck_assert_int_eq(tp_wait(fs, 2, TP_ALL_COMPLETED, -1), 2);
	tp_future_release(fs[0]);
	tp_future_release(fs[1]);
	tp_pool_free(a);
	tp_pool_free(b);
	gate_destroy(&ga);
	gate_destroy(&gb);
}
END_TEST

START_TEST(test_wait_rejects_bad_arguments)
{
	tp_pool *p = pool_new(1, 0);
	tp_future *fs[2] = { NULL, NULL };

	ck_assert_int_eq(tp_submit(p, task_return, NULL, &fs[0]), 0);
	ck_assert_int_eq(tp_wait(NULL, 1, TP_ALL_COMPLETED, 0), -EINVAL);
	ck_assert_int_eq(tp_wait(fs, 2, TP_ALL_COMPLETED, 0), -EINVAL); /* NULL entry */
	ck_assert_int_eq(tp_wait(fs, 1, (enum tp_return_when)42, 0), -EINVAL);
	ck_assert_int_eq(tp_wait(fs, 0, TP_ALL_COMPLETED, -1), 0);
	tp_future_release(fs[0]);
	tp_pool_free(p);
}
END_TEST

/* --- tp_as_completed ----------------------------------------------------- */

START_TEST(test_as_completed_yields_in_completion_order)
{
	struct tp_completion *c;
	struct trio t;
	tp_future *f;
	static const int order[3] = { 2, 0, 1 };
	int i;

	trio_start(&t);
	ck_assert_int_eq(tp_as_completed_new(&c, t.f, 3), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(tp_as_completed_next(c, 0, &f), -ETIMEDOUT);
		gate_open(&t.g[order[i]]);
		ck_assert_int_eq(tp_as_completed_next(c, -1, &f), 0);
		ck_assert_ptr_eq(f, t.f[order[i]]);
	}
	ck_assert_int_eq(tp_as_completed_next(c, -1, &f), -ENOENT);
	ck_assert_ptr_null(f);
	tp_as_completed_free(c);
	trio_finish(&t);
}
END_TEST

START_TEST(test_as_completed_yields_done_ones_first_in_argument_order)
{
	struct tp_completion *c;
	struct trio t;
	tp_future *f;

	trio_start(&t);
	gate_open(&t.g[2]);
	gate_open(&t.g[0]);
	ck_assert_int_eq(tp_future_result(t.f[2], -1, NULL), 0);
	ck_assert_int_eq(tp_future_result(t.f[0], -1, NULL), 0);
	ck_assert_int_eq(tp_as_completed_new(&c, t.f, 3), 0);
	ck_assert_int_eq(tp_as_completed_next(c, 0, &f), 0);
	ck_assert_ptr_eq(f, t.f[0]);
	ck_assert_int_eq(tp_as_completed_next(c, 0, &f), 0);
	ck_assert_ptr_eq(f, t.f[2]);
	ck_assert_int_eq(tp_as_completed_next(c, 20, &f), -ETIMEDOUT);
	gate_open(&t.g[1]);
	ck_assert_int_eq(tp_as_completed_next(c, -1, &f), 0);
	ck_assert_ptr_eq(f, t.f[1]);
	tp_as_completed_free(c);
	trio_finish(&t);
}
END_TEST

START_TEST(test_as_completed_yields_each_future_once)
{
	struct tp_completion *c;
	struct trio t;
	tp_future *fs[5], *f;
	int seen[3] = { 0, 0, 0 }, i, j;

	trio_start(&t);
	fs[0] = t.f[1];
	fs[1] = t.f[0];
	fs[2] = t.f[1];
	fs[3] = t.f[2];
	fs[4] = t.f[0];
	ck_assert_int_eq(tp_as_completed_new(&c, fs, 5), 0);
	for (i = 0; i < 3; i++)
		gate_open(&t.g[i]);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(tp_as_completed_next(c, -1, &f), 0);
		for (j = 0; j < 3; j++)
			if (f == t.f[j])
				seen[j]++;
	}
	ck_assert_int_eq(tp_as_completed_next(c, -1, &f), -ENOENT);
	ck_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
	tp_as_completed_free(c);
	trio_finish(&t);
}
END_TEST

START_TEST(test_as_completed_keeps_its_futures_alive)
{
	tp_pool *p = pool_new(2, 0);
	struct tp_completion *c;
	tp_future *fs[2], *f;
	void *r = NULL;
	long sum = 0;
	int i;

	ck_assert_int_eq(tp_submit(p, task_double, (void *)1, &fs[0]), 0);
	ck_assert_int_eq(tp_submit(p, task_double, (void *)2, &fs[1]), 0);
	ck_assert_int_eq(tp_as_completed_new(&c, fs, 2), 0);
	tp_future_release(fs[0]);
	tp_future_release(fs[1]);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(tp_as_completed_next(c, -1, &f), 0);
		ck_assert_int_eq(tp_future_result(f, 0, &r), 0);
		sum += (intptr_t)r;
	}
	ck_assert_int_eq(sum, 6);
	tp_as_completed_free(c);
	tp_pool_free(p);
}
END_TEST

START_TEST(test_as_completed_of_nothing_ends_at_once)
{
	struct tp_completion *c;
	tp_future *f;

	ck_assert_int_eq(tp_as_completed_new(&c, NULL, 0), 0);
	ck_assert_int_eq(tp_as_completed_next(c, -1, &f), -ENOENT);
	tp_as_completed_free(c);
	ck_assert_int_eq(tp_as_completed_new(NULL, NULL, 0), -EINVAL);
}
END_TEST

static Suite *
wait_suite(void)
{
	Suite *s = suite_create("wait");
	TCase *tc;

	tc = tcase_create("wait");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_wait_all_completed_returns_when_all_are_done);
	tcase_add_test(tc, test_wait_first_completed_returns_at_the_first);
	tcase_add_test(tc, test_wait_timeout_returns_the_done_count);
	tcase_add_test(tc, test_wait_first_exception_returns_at_a_failure);
	tcase_add_test(tc, test_wait_first_exception_without_failure_waits_for_all);
	tcase_add_test(tc, test_wait_counts_a_cancelled_future_as_done_not_failed);
	tcase_add_test(tc, test_wait_counts_a_repeated_future_once);
	tcase_add_test(tc, test_wait_spans_futures_of_different_pools);
	tcase_add_test(tc, test_wait_rejects_bad_arguments);
	suite_add_tcase(s, tc);

	tc = tcase_create("as_completed");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_as_completed_yields_in_completion_order);
	tcase_add_test(tc, test_as_completed_yields_done_ones_first_in_argument_order);
	tcase_add_test(tc, test_as_completed_yields_each_future_once);
	tcase_add_test(tc, test_as_completed_keeps_its_futures_alive);
	tcase_add_test(tc, test_as_completed_of_nothing_ends_at_once);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(wait_suite());
}
