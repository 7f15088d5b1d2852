/*
 * The cluster's pieces that need no Redis: --redis URLs (redis_url.c),
 * the receivers' dedup (origins.c) and our own lines' outbox (outbox.c).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_run.h"
#include "msg.h"
#include "origins.h"
#include "outbox.h"
#include "redis_url.h"

START_TEST(test_redis_urls_that_are_good)
{
	struct redis_url u;
	char err[128];

	ck_assert_int_eq(redis_url_parse("redis://127.0.0.1", &u, err, sizeof(err)), 0);
	ck_assert_str_eq(u.host, "127.0.0.1");
	ck_assert_int_eq(u.port, 6379);
	ck_assert(!u.has_pass);
	ck_assert_uint_eq(u.db, 0);

	ck_assert_int_eq(redis_url_parse("redis://:s3cr@t@db.example:7000/2", &u, err, sizeof(err)),
	                 0);
	ck_assert_str_eq(u.host, "db.example");
	ck_assert_int_eq(u.port, 7000);
	ck_assert(u.has_pass);
	ck_assert_str_eq(u.user, "");
	ck_assert_str_eq(u.pass, "s3cr@t");
	ck_assert_uint_eq(u.db, 2);

	ck_assert_int_eq(redis_url_parse("redis://chat:pw@[::1]:6380", &u, err, sizeof(err)), 0);
	ck_assert_str_eq(u.host, "::1");
	ck_assert_int_eq(u.port, 6380);
	ck_assert_str_eq(u.user, "chat");
	ck_assert_str_eq(u.pass, "pw");

	ck_assert_int_eq(redis_url_parse("unix:/run/redis/redis.sock", &u, err, sizeof(err)), 0);
	ck_assert(u.is_unix);
	ck_assert_str_eq(u.path, "/run/redis/redis.sock");

	redis_url_format(&u, err, sizeof(err));
	ck_assert_str_eq(err, "unix:/run/redis/redis.sock");
	ck_assert_int_eq(redis_url_parse("redis://u:pw@[::1]:6380", &u, err, sizeof(err)), 0);
	redis_url_format(&u, err, sizeof(err));
	ck_assert_str_eq(err, "[::1]:6380"); /* never the password */
}
END_TEST

START_TEST(test_redis_urls_that_are_bad_say_why)
{
	static const struct {
		const char *url, *why;
	} bad[] = {
		{ "127.0.0.1:6379", "expected redis://" },
		{ "http://127.0.0.1", "expected redis://" },
		{ "redis://", "no host" },
		{ "redis://:6379", "no host" },
		{ "redis://h:0", "port" },
		{ "redis://h:65536", "port" },
		{ "redis://h:12ab", "port" },
		{ "redis://h/x", "database" },
		{ "redis://user@h", "credentials" },
		{ "redis://[::1", "closing ']'" },
		{ "redis://[::1]x", "':PORT'" },
		{ "unix:relative.sock", "absolute path" },
	};
	struct redis_url u;
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(redis_url_parse(bad[i].url, &u, err, sizeof(err)) == -EINVAL,
		              "%s accepted", bad[i].url);
		ck_assert_msg(strstr(err, bad[i].why) != NULL, "%s: '%s' does not say '%s'",
		              bad[i].url, err, bad[i].why);
	}
}
END_TEST

/* Each origin's lines once, a gap counted, origins apart. */
START_TEST(test_origins_drop_repeats_and_count_gaps)
{
	struct origins *t = malloc(sizeof(*t));

	origins_init(t);
	ck_assert_int_eq(origins_see(t, "A/1", 5), 0); /* first heard: no gap */
	ck_assert_int_eq(origins_see(t, "A/1", 6), 0);
	ck_assert_int_eq(origins_see(t, "A/1", 6), -1); /* again */
	ck_assert_int_eq(origins_see(t, "A/1", 3), -1); /* older */
	ck_assert_int_eq(origins_see(t, "B/1", 1), 0);
	ck_assert_int_eq(origins_see(t, "A/1", 10), 3); /* 7, 8, 9 never came */
	ck_assert_int_eq(origins_see(t, "A/2", 1), 0);  /* A restarted: a new run */
	ck_assert_int_eq(origins_see(t, "B/1", 2), 0);
	free(t);
}
END_TEST

/* The least recently heard origin makes room; the others keep their state. */
START_TEST(test_origins_table_is_bounded)
{
	struct origins *t = malloc(sizeof(*t));
	char key[32];

	origins_init(t);
	for (int i = 0; i < ORIGINS_MAX; i++) {
		snprintf(key, sizeof(key), "n%d/1", i);
		ck_assert_int_eq(origins_see(t, key, 1), 0);
	}
	ck_assert_int_eq(origins_see(t, "n0/1", 2), 0); /* n0 is fresh now; n1 the oldest */
	ck_assert_int_eq(origins_see(t, "new/1", 1), 0);
	ck_assert_uint_eq(t->n, ORIGINS_MAX);
	ck_assert_int_eq(origins_see(t, "n0/1", 2), -1); /* kept */
	ck_assert_int_eq(origins_see(t, "n1/1", 1), 0);  /* forgotten, heard afresh */
	free(t);
}
END_TEST

static struct msg *
line(const char *s)
{
	struct msg *m = msg_new(strlen(s));

	ck_assert_ptr_nonnull(m);
	memcpy(m->data, s, strlen(s));
	return m;
}

static int delivered;

static void
count_delivery(void *arg, struct outbox_entry *e)
{
	(void)arg;
	(void)e;
	delivered++;
}

/* Sent in order, acked in order; a dropped link sends again from the first
 * line Redis did not confirm; after a Redis that lost its data, all. */
START_TEST(test_outbox_sends_again_what_redis_did_not_confirm)
{
	struct outbox o;
	struct outbox_entry *e;
	struct msg *m = line("x\r\n");

	ck_assert_int_eq(outbox_init(&o, 10, 1000), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(outbox_push(&o, BUS_CHAT, "#lobby", NULL, 7, false, m, false, NULL, NULL),
		                  (uint64_t)i + 1);
	for (int i = 0; i < 3; i++) {
		e = outbox_next_unsent(&o);
		ck_assert_uint_eq(e->seq, (uint64_t)i + 1);
		e->sent = true;
		o.unsent--;
	}
	outbox_find(&o, 1)->acked = true;
	outbox_unsend(&o, true);
	ck_assert_uint_eq(outbox_next_unsent(&o)->seq, 2); /* 2 and 3 again, then 4 */
	ck_assert_uint_eq(o.unsent, 3);
	outbox_unsend(&o, false);
	ck_assert_uint_eq(outbox_next_unsent(&o)->seq, 1);
	ck_assert_uint_eq(o.unsent, 4);
	ck_assert_ptr_null(outbox_find(&o, 5));
	ck_assert_uint_eq(outbox_find(&o, 4)->from, 7);
	outbox_destroy(&o);
	msg_unref(m);
}
END_TEST

/* Full, with the link down (every line delivered here already): the
 * oldest goes, counted as lost to the others if it was never sent. */
START_TEST(test_outbox_bound_drops_the_oldest_and_counts_it)
{
	struct outbox o;
	struct msg *m = line("0123456789"); /* 10 bytes */

	delivered = 0;
	ck_assert_int_eq(outbox_init(&o, 3, 25), 0);
	outbox_push(&o, BUS_CHAT, "#lobby", NULL, 0, false, m, true, count_delivery, NULL);
	outbox_push(&o, BUS_CHAT, "#lobby", NULL, 0, false, m, true, count_delivery, NULL);
	outbox_next_unsent(&o)->sent = true; /* 1 sent, and confirmed */
	o.unsent--;
	outbox_find(&o, 1)->acked = true;
	outbox_push(&o, BUS_CHAT, "#lobby", NULL, 0, false, m, true, count_delivery, NULL); /* 30 > 25: 1 goes */
	ck_assert_uint_eq(o.len, 2);
	ck_assert_uint_eq(o.lost, 0); /* Redis had it */
	outbox_push(&o, BUS_CHAT, "#lobby", NULL, 0, false, m, true, count_delivery, NULL); /* 2 goes */
	ck_assert_uint_eq(o.lost, 1); /* never sent */
	ck_assert_uint_eq(o.early, 0);
	ck_assert_int_eq(delivered, 0);
	ck_assert_uint_eq(outbox_at(&o, 0)->seq, 3);
	ck_assert_uint_eq(o.unsent, 2);
	ck_assert_uint_eq(o.bytes, 20);
	outbox_destroy(&o);
	msg_unref(m);
}
END_TEST

/* Lines in flight (not delivered: the link is up but behind) are kept past
 * the bound, up to OUTBOX_SLACK times, before the oldest is delivered early. */
START_TEST(test_outbox_keeps_lines_in_flight_past_its_bound)
{
	struct outbox o;
	struct msg *m = line("x\r\n");

	delivered = 0;
	ck_assert_int_eq(outbox_init(&o, 2, 1000), 0);
	for (int i = 0; i < 2 * OUTBOX_SLACK; i++)
		outbox_push(&o, BUS_CHAT, "#lobby", NULL, 0, false, m, false, count_delivery, NULL);
	ck_assert_uint_eq(o.len, 2 * OUTBOX_SLACK);
	ck_assert_int_eq(delivered, 0);
	ck_assert_uint_eq(outbox_at(&o, 0)->seq, 1); /* in order after growing */
	ck_assert_uint_eq(outbox_at(&o, o.len - 1)->seq, 2 * OUTBOX_SLACK);
	outbox_push(&o, BUS_CHAT, "#lobby", NULL, 0, false, m, false, count_delivery, NULL);
	ck_assert_int_eq(delivered, 1); /* now the oldest goes, heard first */
	ck_assert_uint_eq(o.early, 1);
	ck_assert_uint_eq(o.len, 2 * OUTBOX_SLACK);
	/* Once delivered, lines are kept only to the bound. */
	for (size_t i = 0; i < o.len; i++)
		outbox_at(&o, i)->delivered = true;
	outbox_push(&o, BUS_CHAT, "#lobby", NULL, 0, false, m, true, count_delivery, NULL);
	ck_assert_uint_eq(o.len, 2);
	ck_assert_int_eq(delivered, 1);
	outbox_destroy(&o);
	msg_unref(m);
}
END_TEST

static Suite *
bus_suite(void)
{
	Suite *s = suite_create("bus");
	TCase *tc = tcase_create("pieces");

	tcase_add_test(tc, test_redis_urls_that_are_good);
	tcase_add_test(tc, test_redis_urls_that_are_bad_say_why);
	tcase_add_test(tc, test_origins_drop_repeats_and_count_gaps);
	tcase_add_test(tc, test_origins_table_is_bounded);
	tcase_add_test(tc, test_outbox_sends_again_what_redis_did_not_confirm);
	tcase_add_test(tc, test_outbox_bound_drops_the_oldest_and_counts_it);
	tcase_add_test(tc, test_outbox_keeps_lines_in_flight_past_its_bound);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(bus_suite());
}
