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

START_TEST(test_lf_and_crlf_end_a_line)
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
	ck_assert_str_eq(g.out, "hello world");
	/* The LF of a CR LF split across reads is no second line end. */
	feed(&lb, 100, "\nnext\n", &g);
	ck_assert_str_eq(g.out, "hello world|next");
	ck_assert_int_eq(lb.len, 0);
	line_buf_free(&lb);
}
END_TEST

START_TEST(test_lone_cr_and_telnet_cr_nul_end_a_line)
{
	struct line_buf lb = { 0 };
	struct got g = { "", 0 };

	ck_assert_int_eq(line_feed(&lb, 100, "a\rb\r\0c\r", 7, collect, &g), 0);
	ck_assert_str_eq(g.out, "a|b|c");
	ck_assert_int_eq(line_feed(&lb, 100, "\0d\n", 3, collect, &g), 0);
	ck_assert_str_eq(g.out, "a|b|c|d");
	/* Nothing else ends a line: a NUL alone is just a byte. */
	ck_assert_int_eq(line_feed(&lb, 100, "e\0f\n", 4, collect, &g), 0);
	ck_assert_int_eq(g.n, 5);
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

/* --- sanitising ---------------------------------------------------------- */

static const char *
clean(const char *in, size_t len, size_t cap, bool *cut)
{
	static char out[1024];
	size_t n = line_sanitize(in, len, out, cap, cut);

	out[n] = '\0';
	return out;
}

#define CLEAN(s) clean(s, sizeof(s) - 1, 1000, &cut)

START_TEST(test_sanitize_keeps_text_and_tab)
{
	bool cut = true;

	ck_assert_str_eq(CLEAN("plain text\twith tab, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
	                 "plain text\twith tab, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	ck_assert(!cut);
}
END_TEST

START_TEST(test_sanitize_replaces_invalid_utf8_with_fffd)
{
	bool cut;

	ck_assert_str_eq(CLEAN("a\xff"
	                       "b"),
	                 "a\xef\xbf\xbd"
	                 "b");
	ck_assert_str_eq(CLEAN("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd"); /* overlong */
	ck_assert_str_eq(CLEAN("\xed\xa0\x80"),                          /* surrogate */
	                 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	ck_assert_str_eq(CLEAN("\xe2\x82"
	                       "A"),
	                 "\xef\xbf\xbd"
	                 "A");                      /* truncated: one */
	ck_assert_str_eq(CLEAN("\xf4\x90\x80\x80"), /* past U+10FFFF */
	                 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}
END_TEST

START_TEST(test_sanitize_removes_controls_del_c1_and_nul)
{
	bool cut;

	static const char in[] = "a\0b\x01\x07\x08"
	                         "c\x7f"
	                         "d\xc2\x85"
	                         "e\r";

	ck_assert_str_eq(clean(in, sizeof(in) - 1, 1000, &cut), "abcde");
}
END_TEST

START_TEST(test_sanitize_removes_escape_sequences_whole)
{
	bool cut;

	ck_assert_str_eq(CLEAN("\x1b[31mred\x1b[0m plain"), "red plain"); /* SGR */
	ck_assert_str_eq(CLEAN("x\x1b[2J\x1b[1;1Hy"), "xy");              /* cursor */
	ck_assert_str_eq(CLEAN("\x1b]0;pwned\x07title"), "title");        /* OSC, BEL */
	ck_assert_str_eq(CLEAN("\x1b]52;c;aGk=\x1b\\clip"), "clip");      /* OSC 52, ST */
	ck_assert_str_eq(CLEAN("\x1bPq#0;2;0\x1b\\dcs"), "dcs");          /* DCS */
	ck_assert_str_eq(CLEAN("\xc2\x9b"
	                       "31mC1 csi"),
	                 "C1 csi"); /* 8-bit CSI */
	ck_assert_str_eq(CLEAN("\xc2\x9d"
	                       "0;t\xc2\x9c"
	                       "ok"),
	                 "ok"); /* 8-bit OSC */
	ck_assert_str_eq(CLEAN("\x1b"
	                       "c\x1b(Bdone"),
	                 "done");                                      /* ESC c, ESC ( B */
	ck_assert_str_eq(CLEAN("before\x1b]0;never ended"), "before"); /* to the end */
}
END_TEST

/*
 * What could make a line pass for another: bidi controls that reorder what
 * a terminal shows (a sender field could be pushed to the end, text pulled
 * in front of it), line and paragraph separators, invisible spaces, and
 * runs of blanks long enough to wrap a fake line onto a fresh row.
 */
START_TEST(test_sanitize_removes_what_could_forge_a_line)
{
	bool cut;

	/* U+202E RLO, U+202A-202D, U+2066-2069 isolates, U+200E/F, U+061C */
	ck_assert_str_eq(CLEAN("a\xe2\x80\xae"
	                       "b\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad"
	                       "c\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9"
	                       "d\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c"
	                       "e"),
	                 "abcde");
	/* U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR */
	ck_assert_str_eq(CLEAN("one\xe2\x80\xa8two\xe2\x80\xa9three"), "onetwothree");
	/* zero-width space, word joiner, BOM: invisible, removed */
	ck_assert_str_eq(CLEAN("x\xe2\x80\x8b\xe2\x81\xa0\xef\xbb\xbfy"), "xy");
	/* no-break and other Unicode spaces are plain spaces */
	ck_assert_str_eq(CLEAN("a\xc2\xa0"
	                       "b\xe3\x80\x80"
	                       "c\xe2\x80\x83"
	                       "d"),
	                 "a b c d");
	/* a run of blanks is kept up to 8 columns (a tab counts 8) */
	ck_assert_str_eq(CLEAN("a        b"), "a        b");
	ck_assert_str_eq(CLEAN("a                                                  b"),
	                 "a        b");
	ck_assert_str_eq(CLEAN("a\tb\t\t\tc   \td"), "a\tb\tc   d");
	ck_assert_str_eq(
	        CLEAN("a\xc2\xa0\xc2\xa0\xc2\xa0\xc2\xa0\xc2\xa0\xc2\xa0\xc2\xa0\xc2\xa0\xc2\xa0"
	              "b"),
	        "a        b");
	/* the joiner that emoji sequences need is kept */
	ck_assert_str_eq(CLEAN("\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb"),
	                 "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb");
}
END_TEST

START_TEST(test_sanitize_cuts_at_a_character_boundary)
{
	bool cut = false;

	ck_assert_str_eq(clean("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 5, &cut), "\xc3\xa9\xc3\xa9");
	ck_assert(cut);
	/* U+FFFD takes three bytes for one: the cap still holds. */
	ck_assert_str_eq(clean("\xff\xff", 2, 4, &cut), "\xef\xbf\xbd");
	ck_assert(cut);
	ck_assert_str_eq(clean("abc", 3, 3, &cut), "abc");
	ck_assert(!cut);
}
END_TEST

static Suite *
line_suite(void)
{
	Suite *s = suite_create("line");
	TCase *tc = tcase_create("framing");

	tcase_add_test(tc, test_lf_and_crlf_end_a_line);
	tcase_add_test(tc, test_lone_cr_and_telnet_cr_nul_end_a_line);
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

	tc = tcase_create("sanitize");
	tcase_add_test(tc, test_sanitize_keeps_text_and_tab);
	tcase_add_test(tc, test_sanitize_replaces_invalid_utf8_with_fffd);
	tcase_add_test(tc, test_sanitize_removes_controls_del_c1_and_nul);
	tcase_add_test(tc, test_sanitize_removes_escape_sequences_whole);
	tcase_add_test(tc, test_sanitize_removes_what_could_forge_a_line);
	tcase_add_test(tc, test_sanitize_cuts_at_a_character_boundary);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(line_suite());
}
