/* Flood control: the token bucket, the held-line queue, and the park. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flood.h"
#include "park.h"
#include "check_run.h"

#define MS 1000000LL /* nanoseconds */

/* The bucket is tested with made-up times, so nothing here is timed. */

START_TEST(test_a_full_bucket_gives_burst_lines_then_one_per_interval)
{
	struct flood_limit l;
	struct flood_bucket b = { 0 };
	int64_t t = 1000 * MS;
	int i;

	flood_limit_init(&l, 10, 5); /* 100 ms apart, 5 at once */
	ck_assert(flood_limit_on(&l));
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(flood_take(&l, &b, t), 0);
	/* The sixth must wait one interval, and asking takes nothing. */
	ck_assert_int_eq(flood_take(&l, &b, t), 100 * MS);
	ck_assert_int_eq(flood_take(&l, &b, t + 40 * MS), 60 * MS);
	ck_assert_int_eq(flood_take(&l, &b, t + 100 * MS), 0);
	ck_assert_int_eq(flood_take(&l, &b, t + 100 * MS), 100 * MS);
	/* At the steady rate, one line per interval, indefinitely. */
	for (i = 2; i < 50; i++) {
		ck_assert_int_gt(flood_take(&l, &b, t + i * 100 * MS - 1), 0);
		ck_assert_int_eq(flood_take(&l, &b, t + i * 100 * MS), 0);
	}
}
END_TEST

START_TEST(test_the_bucket_refills_over_time_but_never_beyond_the_burst)
{
	struct flood_limit l;
	struct flood_bucket b = { 0 };
	int64_t t = 5000 * MS;
	int i;

	flood_limit_init(&l, 10, 3);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(flood_take(&l, &b, t), 0);
	ck_assert_int_gt(flood_take(&l, &b, t), 0);
	/* 250 ms later two tokens are back (not 2.5: whole lines only). */
	t += 250 * MS;
	ck_assert_int_eq(flood_take(&l, &b, t), 0);
	ck_assert_int_eq(flood_take(&l, &b, t), 0);
	ck_assert_int_eq(flood_take(&l, &b, t), 50 * MS);
	/* An hour of silence: a full bucket, which is 3, not 36000. */
	t += 3600 * 1000 * MS;
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(flood_take(&l, &b, t), 0);
	ck_assert_int_eq(flood_take(&l, &b, t), 100 * MS);
}
END_TEST

START_TEST(test_burst_one_and_rate_zero)
{
	struct flood_limit l;
	struct flood_bucket b = { 0 };
	int i;

	flood_limit_init(&l, 2, 1); /* one line, then one every 500 ms */
	ck_assert_int_eq(flood_take(&l, &b, 0), 0);
	ck_assert_int_eq(flood_take(&l, &b, 0), 500 * MS);
	ck_assert_int_eq(flood_take(&l, &b, 500 * MS), 0);

	flood_limit_init(&l, 0, 20); /* off */
	ck_assert(!flood_limit_on(&l));
	for (i = 0; i < 100000; i++)
		ck_assert_int_eq(flood_take(&l, &b, 0), 0);
}
END_TEST

START_TEST(test_held_lines_come_back_in_order_with_their_flags)
{
	struct flood_hold h = { 0 };
	const char *line;
	size_t len;
	bool cut;
	char want[32];
	int i;

	ck_assert(!flood_hold_any(&h));
	ck_assert(!flood_hold_pop(&h, &line, &len, &cut));
	ck_assert_int_eq(flood_hold_push(&h, "first", 5, false), 0);
	ck_assert_int_eq(flood_hold_push(&h, "cut short", 9, true), 0);
	ck_assert_int_eq(flood_hold_push(&h, "", 0, false), 0);
	ck_assert(flood_hold_any(&h));
	ck_assert_uint_eq(flood_hold_bytes(&h), 7 + 11 + 2);
	ck_assert(flood_hold_pop(&h, &line, &len, &cut));
	ck_assert_uint_eq(len, 5);
	ck_assert(memcmp(line, "first", 5) == 0 && !cut);
	ck_assert(flood_hold_pop(&h, &line, &len, &cut));
	ck_assert(len == 9 && memcmp(line, "cut short", 9) == 0 && cut);
	ck_assert(flood_hold_pop(&h, &line, &len, &cut));
	ck_assert(len == 0 && !cut);
	ck_assert(!flood_hold_any(&h));

	/* Interleaved pushes and pops over many lines: the space read is
	 * reused, nothing is lost or reordered, and the buffer stays small. */
	for (i = 0; i < 10000; i++) {
		int n = snprintf(want, sizeof(want), "line %d", i);

		ck_assert_int_eq(flood_hold_push(&h, want, (size_t)n, i % 7 == 0), 0);
		if (i % 3 == 2) {
			for (int k = i - 2; k <= i; k++) {
				n = snprintf(want, sizeof(want), "line %d", k);
				ck_assert(flood_hold_pop(&h, &line, &len, &cut));
				ck_assert_uint_eq(len, (size_t)n);
				ck_assert(memcmp(line, want, len) == 0);
				ck_assert(cut == (k % 7 == 0));
			}
		}
	}
	ck_assert(flood_hold_pop(&h, &line, &len, &cut)); /* line 9999 */
	ck_assert(memcmp(line, "line 9999", 9) == 0);
	ck_assert(!flood_hold_any(&h));
	ck_assert_uint_le(h.cap, 1024);
	flood_hold_free(&h);
	ck_assert(!flood_hold_any(&h));
	ck_assert_uint_eq(flood_hold_bytes(&h), 0);
}
END_TEST

START_TEST(test_park_gives_back_what_is_due_earliest_first)
{
	enum { N = 500 };
	static char conns[N]; /* the park never looks inside a conn */
	struct park p;
	struct conn *c;
	long last = -1;
	int i, got = 0;

	ck_assert_int_eq(park_init(&p), 0);
	ck_assert_int_eq(park_timeout(&p, 0), -1);
	ck_assert_ptr_null(park_pop(&p, LONG_MAX));
	/* Due times out of order, some equal. */
	for (i = 0; i < N; i++)
		ck_assert_int_eq(park_push(&p, (struct conn *)&conns[i], 1000 + (i * 7919) % 997),
		                 0);
	/* Pushed is not yet seen: the loop collects first. */
	ck_assert_int_eq(park_timeout(&p, 0), -1);
	ck_assert_int_eq(park_collect(&p), 0);
	ck_assert_int_eq(park_timeout(&p, 0), 1000);
	ck_assert_int_eq(park_timeout(&p, 1500), 0);
	ck_assert_ptr_null(park_pop(&p, 999)); /* nothing due yet */

	/* Up to 1500: exactly the ones due by then, earliest first. */
	while ((c = park_pop(&p, 1500)) != NULL) {
		long due = 1000 + ((long)((char *)c - conns) * 7919) % 997;

		ck_assert_int_le(due, 1500);
		ck_assert_int_ge(due, last);
		last = due;
		got++;
	}
	ck_assert_int_gt(got, 0);
	ck_assert_int_gt(park_timeout(&p, 1500), 0);
	/* The rest, all at once (as at shutdown). */
	while ((c = park_pop(&p, LONG_MAX)) != NULL) {
		long due = 1000 + ((long)((char *)c - conns) * 7919) % 997;

		ck_assert_int_gt(due, 1500);
		ck_assert_int_ge(due, last);
		last = due;
		got++;
	}
	ck_assert_int_eq(got, N);
	ck_assert_int_eq(park_timeout(&p, 0), -1);
	park_destroy(&p);
}
END_TEST

static Suite *
flood_suite(void)
{
	Suite *s = suite_create("flood");
	TCase *tc;

	tc = tcase_create("bucket");
	tcase_add_test(tc, test_a_full_bucket_gives_burst_lines_then_one_per_interval);
	tcase_add_test(tc, test_the_bucket_refills_over_time_but_never_beyond_the_burst);
	tcase_add_test(tc, test_burst_one_and_rate_zero);
	suite_add_tcase(s, tc);

	tc = tcase_create("hold");
	tcase_add_test(tc, test_held_lines_come_back_in_order_with_their_flags);
	suite_add_tcase(s, tc);

	tc = tcase_create("park");
	tcase_add_test(tc, test_park_gives_back_what_is_due_earliest_first);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(flood_suite());
}
