/* Futures: result, exception, cancel, states, done callbacks, references. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include "tp_test.h"

/* --- result and exception ------------------------------------------------ */

START_TEST(test_result_returns_the_task_value)
{
	tp_pool *p = pool_new(2, 0);
	tp_future *f;
	void *r = NULL;

	ck_assert_int_eq(tp_submit(p, task_double, (void *)21, &f), 0);
	ck_assert_int_eq(tp_future_result(f, -1, &r), 0);
	ck_assert_int_eq((intptr_t)r, 42);
	ck_assert_int_eq(tp_future_result(f, 0, NULL), 0); /* again, and without *result */
	ck_assert_int_eq(tp_future_exception(f, 0), 0);
	tp_future_release(f);
	tp_pool_free(p);
}
END_TEST

START_TEST(test_result_returns_the_task_error_code)
{
	tp_pool *p = pool_new(2, 0);
	tp_future *f;

	ck_assert_int_eq(tp_submit(p, task_return, (void *)5, &f), 0);
	ck_assert_int_eq(tp_future_result(f, -1, NULL), 5);
	ck_assert_int_eq(tp_future_exception(f, -1), 5);
	tp_future_release(f);
	tp_pool_free(p);
}
END_TEST

START_TEST(test_negative_task_return_becomes_a_positive_code)
{
	tp_pool *p = pool_new(2, 0);
	tp_future *f;

	ck_assert_int_eq(tp_submit(p, task_return, (void *)(intptr_t)-EIO, &f), 0);
	ck_assert_int_eq(tp_future_result(f, -1, NULL), EIO);
	ck_assert(!tp_future_cancelled(f));
	tp_future_release(f);
	tp_pool_free(p);
}
END_TEST

START_TEST(test_result_times_out_while_the_task_runs)
{
	tp_pool *p = pool_new(1, 0);
	struct gate g;
	tp_future *f;

	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, &f), 0);
	ck_assert_int_eq(tp_future_result(f, 0, NULL), -ETIMEDOUT);
	ck_assert_int_eq(tp_future_result(f, 30, NULL), -ETIMEDOUT);
	ck_assert_int_eq(tp_future_exception(f, 30), -ETIMEDOUT);
	ck_assert(!tp_future_done(f));
	gate_open(&g);
	ck_assert_int_eq(tp_future_result(f, -1, NULL), 0);
	tp_future_release(f);
	tp_pool_free(p);
	gate_destroy(&g);
}
END_TEST

START_TEST(test_result_rejects_null_future)
{
	ck_assert_int_eq(tp_future_result(NULL, 0, NULL), -EINVAL);
	ck_assert(!tp_future_cancel(NULL));
	ck_assert(!tp_future_done(NULL));
	ck_assert_int_eq(tp_future_add_done_callback(NULL, NULL, NULL), -EINVAL);
	tp_future_release(NULL);
}
END_TEST

struct waiter_arg {
	tp_future *f;
	int rc;
	void *value;
};

static void *
thread_wait_result(void *arg)
{
	struct waiter_arg *w = arg;

	w->rc = tp_future_result(w->f, -1, &w->value);
	return NULL;
}

static void *
thread_wait_50ms(void *arg)
{
	struct waiter_arg *w = arg;

	w->rc = tp_future_result(w->f, 50, &w->value);
	return NULL;
}

/*
 * n threads wait for one future held back behind a gate; if some_give_up,
 * every other one waits only 50 ms, and is checked to have timed out
 * before the gate opens.  The rest must all get the result.
 */
static void
wait_in_many_threads(int n, bool some_give_up)
{
	tp_pool *p = pool_new(1, 0);
	struct waiter_arg w[8];
	pthread_t t[8];
	struct gate g;
	tp_future *blocker, *f;
	int i;

	ck_assert_int_le(n, 8);
	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, &blocker), 0);
	ck_assert_int_eq(tp_submit(p, task_double, (void *)4, &f), 0);
	for (i = 0; i < n; i++) {
		bool gives_up = some_give_up && i % 2;

		w[i].f = f;
		ck_assert_int_eq(pthread_create(&t[i], NULL,
		                                gives_up ? thread_wait_50ms : thread_wait_result, &w[i]),
		                 0);
	}
	for (i = 1; some_give_up && i < n; i += 2) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(w[i].rc, -ETIMEDOUT);
	}
	gate_open(&g);
	for (i = 0; i < n; i += some_give_up ? 2 : 1) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(w[i].rc, 0);
		ck_assert_int_eq((intptr_t)w[i].value, 8);
	}
	tp_future_release(blocker);
	tp_future_release(f);
	tp_pool_free(p);
	gate_destroy(&g);
}

START_TEST(test_many_threads_waiting_all_get_the_result)
{
	wait_in_many_threads(4, false);
}
END_TEST

/* Each waiter sleeps on a condition variable of its own, linked to the
 * future while it waits: one that gives up (its stack gone) must leave the
 * others linked, and never be signalled. */
START_TEST(test_a_waiter_that_times_out_leaves_the_others_waiting)
{
	wait_in_many_threads(5, true);
}
END_TEST

/* Busy for (intptr_t)arg microseconds; the result is arg. */
static int
task_busy_us(void *arg, void **result)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < (intptr_t)arg);
	*result = arg;
	return 0;
}

/*
 * A caller that gives up just as its task ends.  The worker that finishes
 * a future takes its sleepers off it under the pool's lock and wakes them
 * after releasing it; a sleeper that times out in between must wait for
 * that wake before its frame (which the worker still touches) goes.  The
 * task's length sweeps across the 1 ms timeout in 2 us steps; whichever
 * side wins, the caller gets the result or -ETIMEDOUT, and nothing else
 * (AddressSanitizer reports a frame touched after it went).
 */
START_TEST(test_a_waiter_giving_up_as_the_task_ends)
{
	struct tp_options o = { TP_OPTIONS_INIT, .max_workers = 1, .spin_us = TP_NO_SPIN };
	tp_pool *p;

	ck_assert_int_eq(tp_pool_create(&p, &o), 0);
	for (intptr_t us = 800; us < 1200; us += 2) {
		tp_future *f;
		void *r = NULL;
		int rc;

		ck_assert_int_eq(tp_submit(p, task_busy_us, (void *)us, &f), 0);
		rc = tp_future_result(f, 1, &r);
		ck_assert_msg(rc == 0 || rc == -ETIMEDOUT, "a %ld us task: %d", (long)us, rc);
		if (rc == 0)
			ck_assert_int_eq((intptr_t)r, us);
		ck_assert_int_eq(tp_future_result(f, -1, &r), 0);
		ck_assert_int_eq((intptr_t)r, us);
		tp_future_release(f);
	}
	tp_pool_free(p);
}
END_TEST

/* --- cancel and states --------------------------------------------------- */

START_TEST(test_cancel_pending_future_never_runs)
{
	tp_pool *p = pool_new(1, 0);
	struct counter ran;
	struct gate g;
	tp_future *blocker, *f;
	struct tp_stats st = { TP_STATS_INIT };

	counter_init(&ran);
	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, &blocker), 0);
	gate_wait_arrived(&g, 1);
	ck_assert_int_eq(tp_submit(p, task_count, &ran, &f), 0);
	ck_assert_uint_eq(pool_stats(p).queued, 1);
	ck_assert(!tp_future_done(f));
	ck_assert(!tp_future_running(f));
	ck_assert(tp_future_cancel(f));
	ck_assert(tp_future_cancelled(f));
	ck_assert(tp_future_done(f));
	ck_assert(tp_future_cancel(f)); /* already cancelled: still true */
	ck_assert_int_eq(tp_future_result(f, -1, NULL), -ECANCELED);
	ck_assert_int_eq(tp_future_exception(f, -1), -ECANCELED);
	st = pool_stats(p);
	ck_assert_uint_eq(st.queued, 0);
	ck_assert_uint_eq(st.cancelled, 1);
	gate_open(&g);
	ck_assert_int_eq(tp_shutdown(p, TP_WAIT), 0);
	ck_assert_int_eq(counter_get(&ran), 0);
	tp_future_release(blocker);
	tp_future_release(f);
	tp_pool_free(p);
	gate_destroy(&g);
	counter_destroy(&ran);
}
END_TEST

START_TEST(test_cancel_fails_on_running_and_finished_futures)
{
	tp_pool *p = pool_new(1, 0);
	struct gate g;
	tp_future *f;

	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, &f), 0);
	gate_wait_arrived(&g, 1);
	ck_assert(tp_future_running(f));
	ck_assert(!tp_future_cancel(f));
	ck_assert(!tp_future_cancelled(f));
	gate_open(&g);
	ck_assert_int_eq(tp_future_result(f, -1, NULL), 0);
	ck_assert(!tp_future_running(f));
	ck_assert(tp_future_done(f));
	ck_assert(!tp_future_cancel(f));
	ck_assert(!tp_future_cancelled(f));
	tp_future_release(f);
	tp_pool_free(p);
	gate_destroy(&g);
}
END_TEST

START_TEST(test_cancel_wakes_waiters_at_once)
{
	tp_pool *p = pool_new(1, 0);
	struct waiter_arg w = { 0 };
	struct gate g;
	tp_future *blocker;
	pthread_t t;

	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, &blocker), 0);
	ck_assert_int_eq(tp_submit(p, task_return, NULL, &w.f), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, thread_wait_result, &w), 0);
	ck_assert(tp_future_cancel(w.f));
	/* The blocker still holds the only worker: only the cancel can wake
	 * the waiter, and a hang here fails on Check's timeout. */
	pthread_join(t, NULL);
	ck_assert_int_eq(w.rc, -ECANCELED);
	gate_open(&g);
	tp_future_release(blocker);
	tp_future_release(w.f);
	tp_pool_free(p);
	gate_destroy(&g);
}
END_TEST

START_TEST(test_release_of_pending_future_does_not_cancel_it)
{
	tp_pool *p = pool_new(1, 0);
	struct counter ran;
	struct gate g;
	tp_future *f;

	counter_init(&ran);
	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, NULL), 0);
	ck_assert_int_eq(tp_submit(p, task_count, &ran, &f), 0);
	tp_future_release(f);
	gate_open(&g);
	counter_wait_for(&ran, 1);
	tp_pool_free(p);
	ck_assert_uint_eq(counter_get(&ran), 1);
	gate_destroy(&g);
	counter_destroy(&ran);
}
END_TEST

START_TEST(test_futures_outlive_their_pool)
{
	tp_pool *p = pool_new(1, 0);
	tp_future *f;
	void *r = NULL;

	ck_assert_int_eq(tp_submit(p, task_double, (void *)3, &f), 0);
	tp_pool_free(p);
	ck_assert(tp_future_done(f));
	ck_assert_int_eq(tp_future_result(f, 0, &r), 0);
	ck_assert_int_eq((intptr_t)r, 6);
	tp_future_release(f);
}
END_TEST

/* --- done callbacks ------------------------------------------------------ */

struct cb_log {
	pthread_mutex_t mu;
	int order[8];
	pthread_t thread[8];
	int n;
};

struct cb_arg {
	struct cb_log *log;
	int id;
};

static void
cb_record(tp_future *f, void *arg)
{
	struct cb_arg *a = arg;

	pthread_mutex_lock(&a->log->mu);
	a->log->thread[a->log->n] = pthread_self();
	a->log->order[a->log->n++] = a->id;
	pthread_mutex_unlock(&a->log->mu);
}

static int
task_gate_then_self(void *arg, void **result)
{
	gate_pass(arg);
	*result = (void *)pthread_self();
	return 0;
}

START_TEST(test_done_callbacks_run_once_in_order_in_the_completing_thread)
{
	tp_pool *p = pool_new(1, 0);
	struct cb_log log = { .n = 0 };
	struct cb_arg args[3];
	struct gate g;
	tp_future *f;
	void *worker = NULL;
	int i;

	pthread_mutex_init(&log.mu, NULL);
	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate_then_self, &g, &f), 0);
	for (i = 0; i < 3; i++) {
		args[i].log = &log;
		args[i].id = i + 1;
		ck_assert_int_eq(tp_future_add_done_callback(f, cb_record, &args[i]), 0);
	}
	gate_open(&g);
	ck_assert_int_eq(tp_future_result(f, -1, &worker), 0);
	/* Callbacks run after waiters are woken; shutdown waits them out. */
	ck_assert_int_eq(tp_shutdown(p, TP_WAIT), 0);
	ck_assert_int_eq(log.n, 3);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(log.order[i], i + 1);
		ck_assert(pthread_equal(log.thread[i], (pthread_t)worker));
	}
	tp_future_release(f);
	tp_pool_free(p);
	gate_destroy(&g);
	pthread_mutex_destroy(&log.mu);
}
END_TEST

START_TEST(test_callback_added_to_done_future_runs_at_once_in_caller)
{
	tp_pool *p = pool_new(1, 0);
	struct cb_log log = { .n = 0 };
	struct cb_arg a = { &log, 9 };
	tp_future *f;

	pthread_mutex_init(&log.mu, NULL);
	ck_assert_int_eq(tp_submit(p, task_return, NULL, &f), 0);
	ck_assert_int_eq(tp_future_result(f, -1, NULL), 0);
	ck_assert_int_eq(tp_future_add_done_callback(f, cb_record, &a), 0);
	ck_assert_int_eq(log.n, 1);
	ck_assert_int_eq(log.order[0], 9);
	ck_assert(pthread_equal(log.thread[0], pthread_self()));
	tp_future_release(f);
	tp_pool_free(p);
	pthread_mutex_destroy(&log.mu);
}
END_TEST

START_TEST(test_cancel_runs_callbacks_in_the_cancelling_thread)
{
	tp_pool *p = pool_new(1, 0);
	struct cb_log log = { .n = 0 };
	struct cb_arg a = { &log, 1 };
	struct gate g;
	tp_future *f;

	pthread_mutex_init(&log.mu, NULL);
	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, NULL), 0);
	ck_assert_int_eq(tp_submit(p, task_return, NULL, &f), 0);
	ck_assert_int_eq(tp_future_add_done_callback(f, cb_record, &a), 0);
	ck_assert(tp_future_cancel(f));
	ck_assert_int_eq(log.n, 1);
	ck_assert(pthread_equal(log.thread[0], pthread_self()));
	ck_assert(tp_future_cancel(f)); /* already cancelled: callbacks never run twice */
	ck_assert_int_eq(log.n, 1);
	gate_open(&g);
	tp_future_release(f);
	tp_pool_free(p);
	gate_destroy(&g);
	pthread_mutex_destroy(&log.mu);
}
END_TEST

static void
cb_release(tp_future *f, void *arg)
{
	tp_future_release(f);
	counter_add(arg, 1);
}

START_TEST(test_callback_may_release_the_future)
{
	tp_pool *p = pool_new(1, 0);
	struct counter done;
	struct gate g;
	tp_future *f;

	counter_init(&done);
	gate_init(&g);
	ck_assert_int_eq(tp_submit(p, task_gate, &g, &f), 0);
	/* Hand our reference to the callback. */
	ck_assert_int_eq(tp_future_add_done_callback(f, cb_release, &done), 0);
	gate_open(&g);
	counter_wait_for(&done, 1);
	tp_pool_free(p);
	gate_destroy(&g);
	counter_destroy(&done);
}
END_TEST

struct resubmit {
	tp_pool *p;
	struct counter ran;
};

static void
cb_submit(tp_future *f, void *arg)
{
	struct resubmit *r = arg;

	ck_assert_int_eq(tp_submit(r->p, task_count, &r->ran, NULL), 0);
}

START_TEST(test_callback_may_submit_new_work)
{
	struct resubmit r;
	tp_future *f;

	r.p = pool_new(1, 0);
	counter_init(&r.ran);
	ck_assert_int_eq(tp_submit(r.p, task_return, NULL, &f), 0);
	ck_assert_int_eq(tp_future_add_done_callback(f, cb_submit, &r), 0);
	counter_wait_for(&r.ran, 1);
	tp_future_release(f);
	tp_pool_free(r.p);
	counter_destroy(&r.ran);
}
END_TEST

/*
 * The canceller runs the callbacks; the first releases the caller's
 * reference (handed to it) and lets the worker reach the cancelled entry,
 * which drops the queue's.  The second must still find a live future.
 * Before the fix nothing else held it, and the second callback read freed
 * memory (AddressSanitizer: heap-use-after-free).
 */
struct cancel_race {
	struct gate *g;
	struct counter after; /* the task queued behind the cancelled one ran */
	bool second_saw_cancelled;
};

static void
cb_release_and_let_worker_discard(tp_future *f, void *arg)
{
	struct cancel_race *cr = arg;

	tp_future_release(f);
	gate_open(cr->g);
	counter_wait_for(&cr->after, 1); /* the worker went past our entry */
}

static void
cb_look_at_future(tp_future *f, void *arg)
{
	struct cancel_race *cr = arg;

	cr->second_saw_cancelled = tp_future_cancelled(f);
}

START_TEST(test_callbacks_run_by_cancel_keep_the_future_alive)
{
	tp_pool *p = pool_new(1, 0);
	struct cancel_race cr = { .second_saw_cancelled = false };
	struct gate g;
	tp_future *f;

	gate_init(&g);
	counter_init(&cr.after);
	cr.g = &g;
	ck_assert_int_eq(tp_submit(p, task_gate, &g, NULL), 0);
	gate_wait_arrived(&g, 1);
	ck_assert_int_eq(tp_submit(p, task_return, NULL, &f), 0);
	ck_assert_int_eq(tp_submit(p, task_count, &cr.after, NULL), 0);
	ck_assert_int_eq(tp_future_add_done_callback(f, cb_release_and_let_worker_discard, &cr), 0);
	ck_assert_int_eq(tp_future_add_done_callback(f, cb_look_at_future, &cr), 0);
	ck_assert(tp_future_cancel(f)); /* f is not ours any more after this */
	ck_assert(cr.second_saw_cancelled);
	tp_pool_free(p);
	counter_destroy(&cr.after);
	gate_destroy(&g);
}
END_TEST

/*
 * A done callback that submits and waits needs another worker, and the
 * pool has room for one.  Before the fix the worker running the callback
 * counted as idle, so the submit started nobody and the wait never ended.
 */
struct submit_wait {
	tp_pool *p;
	int rc;
	struct counter done;
};

static void
cb_submit_and_wait(tp_future *f, void *arg)
{
	struct submit_wait *sw = arg;
	tp_future *g;
	void *res = NULL;

	(void)f;
	sw->rc = tp_submit(sw->p, task_double, (void *)21, &g);
	if (sw->rc == 0) {
		sw->rc = tp_future_result(g, 10000, &res);
		if (sw->rc == 0 && (intptr_t)res != 42)
			sw->rc = -EPROTO;
		tp_future_release(g);
	}
	counter_add(&sw->done, 1);
}

START_TEST(test_callback_that_submits_and_waits_gets_a_new_worker)
{
	struct submit_wait sw = { .rc = -1 };
	struct gate g;
	tp_future *f;

	sw.p = pool_new(2, 0);
	counter_init(&sw.done);
	gate_init(&g);
	ck_assert_int_eq(tp_submit(sw.p, task_gate, &g, &f), 0);
	ck_assert_int_eq(tp_future_add_done_callback(f, cb_submit_and_wait, &sw), 0);
	gate_open(&g);
	counter_wait_for(&sw.done, 1);
	ck_assert_int_eq(sw.rc, 0);
	ck_assert_uint_eq(pool_stats(sw.p).workers, 2);
	tp_future_release(f);
	tp_pool_free(sw.p);
	gate_destroy(&g);
	counter_destroy(&sw.done);
}
END_TEST

static Suite *
future_suite(void)
{
	Suite *s = suite_create("future");
	TCase *tc;

	tc = tcase_create("result");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_result_returns_the_task_value);
	tcase_add_test(tc, test_result_returns_the_task_error_code);
	tcase_add_test(tc, test_negative_task_return_becomes_a_positive_code);
	tcase_add_test(tc, test_result_times_out_while_the_task_runs);
	tcase_add_test(tc, test_result_rejects_null_future);
	tcase_add_test(tc, test_many_threads_waiting_all_get_the_result);
	tcase_add_test(tc, test_a_waiter_that_times_out_leaves_the_others_waiting);
	tcase_add_test(tc, test_a_waiter_giving_up_as_the_task_ends);
	suite_add_tcase(s, tc);

	tc = tcase_create("cancel");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_cancel_pending_future_never_runs);
	tcase_add_test(tc, test_cancel_fails_on_running_and_finished_futures);
	tcase_add_test(tc, test_cancel_wakes_waiters_at_once);
	tcase_add_test(tc, test_release_of_pending_future_does_not_cancel_it);
	tcase_add_test(tc, test_futures_outlive_their_pool);
	suite_add_tcase(s, tc);

	tc = tcase_create("callbacks");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_done_callbacks_run_once_in_order_in_the_completing_thread);
	tcase_add_test(tc, test_callback_added_to_done_future_runs_at_once_in_caller);
	tcase_add_test(tc, test_cancel_runs_callbacks_in_the_cancelling_thread);
	tcase_add_test(tc, test_callback_may_release_the_future);
	tcase_add_test(tc, test_callback_may_submit_new_work);
	tcase_add_test(tc, test_callbacks_run_by_cancel_keep_the_future_alive);
	tcase_add_test(tc, test_callback_that_submits_and_waits_gets_a_new_worker);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(future_suite());
}
