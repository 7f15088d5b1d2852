/* Framing: line_feed, line_finish, line_utf8_cut. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "line.h"
#include "check_run.h"

/* Collects delivered lines as "text" or "text~" (truncated), joined by |. */
struct got {
	char out[8192];
	int n;
};

static void
collect(void *ctx, const char *line, size_t len, bool truncated)
{
	struct got *g = ctx;
	size_t used = strlen(g->out);

	if (g->n++ > 0)
		used += (size_t)snprintf(g->out + used, sizeof(g->out) - used, "|");
	snprintf(g->out + used, sizeof(g->out) - used, "%.*s%s", (int)len, line,
	         truncated ? "~" : "");
}

static void
feed(struct line_buf *lb, size_t max, const char *s, struct got *g)
{
	ck_assert_int_eq(line_feed(lb, max, s, strlen(s), collect, g), 0);
}

START_TEST(test_lf_ends_a_line_and_cr_before_it_is_dropped)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	feed(&lb, 100, "one\ntwo\r\nthree", &g);
	ck_assert_str_eq(g.out, "one|two");
	ck_assert_int_eq(lb.len, 5); /* "three" carried */
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_a_line_split_across_reads_arrives_whole)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	feed(&lb, 100, "hel", &g);
	feed(&lb, 100, "lo wo", &g);
	ck_assert_int_eq(g.n, 0);
	feed(&lb, 100, "rld\r", &g);
	ck_assert_int_eq(g.n, 0);
	feed(&lb, 100, "\nnext\n", &g);
	ck_assert_str_eq(g.out, "hello world|next");
	ck_assert_int_eq(lb.len, 0);
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_many_lines_in_one_read_arrive_in_order)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	feed(&lb, 100, "a\nb\nc\nd\n", &g);
	ck_assert_str_eq(g.out, "a|b|c|d");
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_empty_lines_are_delivered_empty)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	feed(&lb, 100, "\n\r\nx\n", &g);
	ck_assert_int_eq(g.n, 3);
	ck_assert_str_eq(g.out, "||x");
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_finish_delivers_a_last_line_without_lf)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	feed(&lb, 100, "done\nlast words", &g);
	line_finish(&lb, collect, &g);
	ck_assert_str_eq(g.out, "done|last words");
	line_finish(&lb, collect, &g); /* nothing more */
	ck_assert_int_eq(g.n, 2);
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_long_line_is_cut_and_its_rest_discarded)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	feed(&lb, 8, "abcdefghijklmnop\nok\n", &g);
	ck_assert_str_eq(g.out, "abcdefgh~|ok");
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_long_line_across_reads_is_cut_once)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	feed(&lb, 8, "abcde", &g);
	feed(&lb, 8, "fghij", &g); /* passes 8 here */
	feed(&lb, 8, "klmnop", &g);
	feed(&lb, 8, "qrs\nafter\n", &g);
	ck_assert_str_eq(g.out, "abcdefgh~|after");
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_a_line_of_exactly_max_bytes_is_whole)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	feed(&lb, 8, "12345678\n1234", &g);
	feed(&lb, 8, "5678\r\n", &g);
	ck_assert_str_eq(g.out, "12345678|12345678");
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_cut_never_splits_a_utf8_character)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	/* "aé" is 61 C3 A9; a cut at 2 would split é: it backs up to 1. */
	feed(&lb, 2, "a\xc3\xa9zzz\n", &g);
	ck_assert_str_eq(g.out, "a~");
	ck_assert_uint_eq(line_utf8_cut("a\xc3\xa9", 3, 2), 1);
	ck_assert_uint_eq(line_utf8_cut("a\xc3\xa9", 3, 3), 3);
	ck_assert_uint_eq(line_utf8_cut("abc", 3, 2), 2);
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_carry_stays_bounded_whatever_arrives)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };
	char *chunk = malloc(65536);
	int i;

	ck_assert_ptr_nonnull(chunk);
	memset(chunk, 'x', 65536);
	/* 16 MiB without a newline, 4096 bytes allowed per line. */
	for (i = 0; i < 256; i++)
		ck_assert_int_eq(line_feed(&lb, 4096, chunk, 65536, collect, &g), 0);
	ck_assert_int_eq(g.n, 1);
	ck_assert_uint_le(lb.cap, 8192);
	ck_assert(lb.discarding);
	line_finish(&lb, collect, &g); /* the discarded rest is not a line */
	ck_assert_int_eq(g.n, 1);
	free(chunk);
	line_buf_free(&lb);
}
END_TEST

static Suite *
line_suite(void)
{
	Suite *s = suite_create("line");
	TCase *tc = tcase_create("framing");

	tcase_add_test(tc, test_lf_ends_a_line_and_cr_before_it_is_dropped);
	tcase_add_test(tc, test_a_line_split_across_reads_arrives_whole);
	tcase_add_test(tc, test_many_lines_in_one_read_arrive_in_order);
	tcase_add_test(tc, test_empty_lines_are_delivered_empty);
	tcase_add_test(tc, test_finish_delivers_a_last_line_without_lf);
	tcase_add_test(tc, test_long_line_is_cut_and_its_rest_discarded);
	tcase_add_test(tc, test_long_line_across_reads_is_cut_once);
	tcase_add_test(tc, test_a_line_of_exactly_max_bytes_is_whole);
	tcase_add_test(tc, test_cut_never_splits_a_utf8_character);
	tcase_add_test(tc, test_carry_stays_bounded_whatever_arrives);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(line_suite());
}
