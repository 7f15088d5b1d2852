/* chat-client's view of the server's lines on a terminal (fmt.h). */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "check_run.h"

static const char *
render(const struct fmt *f, const char *line)
{
	static char out[1024];

	fmt_render(f, "09:14", line, strlen(line), out, sizeof(out));
	return out;
}

/* Without colours or attributes (TERM=dumb): the plain shapes. */
START_TEST(test_each_kind_of_line_has_its_shape)
{
	struct fmt f;

	fmt_init(&f, NULL, "dumb");
	ck_assert_str_eq(render(&f, "alice@127.0.0.1:4 | 2026-11-25 09:14:02 | hello"),
	                 "[09:14] <alice> hello");
	ck_assert_str_eq(render(&f, "127.0.0.1:4 | 2026-11-25 09:14:02 | hi"),
	                 "[09:14] <127.0.0.1:4> hi");
	ck_assert_str_eq(render(&f, "[::1]:40318 | 2026-11-25 09:14:02 | v6"),
	                 "[09:14] <[::1]:40318> v6");
	ck_assert_str_eq(render(&f, "alice@127.0.0.1:4 | 2026-11-25 09:14:02 | * alice waves"),
	                 "[09:14] * alice waves");
	ck_assert_str_eq(render(&f, "bob@127.0.0.1:5 (private) | 2026-11-25 09:14:02 | psst"),
	                 "[09:14] [private] <bob> psst");
	ck_assert_str_eq(render(&f, "* bob (127.0.0.1:5) joined (3 online)"),
	                 "[09:14] * bob (127.0.0.1:5) joined (3 online)");
	/* Text that only looks like the format is the text: " | " inside. */
	ck_assert_str_eq(render(&f, "carol@h:1 | 2026-11-25 09:14:02 | a | b | c"),
	                 "[09:14] <carol> a | b | c");
	/* Not the format at all (another server): as it came. */
	ck_assert_str_eq(render(&f, "hello there | world"), "hello there | world");
	ck_assert_str_eq(render(&f, "spoof (x) | 2026-11-25 09:14:02 | hi"),
	                 "spoof (x) | 2026-11-25 09:14:02 | hi");
}
END_TEST

/* Colours: nicks coloured (the same colour for the same nick), private
 * messages in bold magenta, notices dimmed, our nick in bold wherever it
 * is written as a word; NO_COLOR keeps the attributes, not the colours. */
START_TEST(test_colours_attributes_and_mentions)
{
	struct fmt f;
	const char *r;

	fmt_init(&f, NULL, "xterm-256color");
	ck_assert(f.color && f.attrs);
	snprintf(f.me, sizeof(f.me), "%s", "bob");
	r = render(&f, "alice@h:1 | 2026-11-25 09:14:02 | hi Bob, and bobby");
	ck_assert_ptr_nonnull(strstr(r, "\x1b[1mBob\x1b[0m, and bobby"));
	ck_assert_ptr_nonnull(strstr(r, "<\x1b[3"));
	r = render(&f, "* alice is now alicia");
	ck_assert_ptr_nonnull(strstr(r, "\x1b[2m* alice is now alicia\x1b[0m"));
	r = render(&f, "alice@h:1 (private) | 2026-11-25 09:14:02 | psst");
	ck_assert_ptr_nonnull(strstr(r, "\x1b[1;35m[private]\x1b[0m"));

	fmt_init(&f, "1", "xterm");
	ck_assert(!f.color && f.attrs);
	r = render(&f, "alice@h:1 | 2026-11-25 09:14:02 | hi");
	ck_assert_str_eq(r, "\x1b[2m[09:14]\x1b[0m <alice> hi");
	fmt_init(&f, "", "xterm"); /* NO_COLOR empty counts as unset */
	ck_assert(f.color);
	fmt_init(&f, NULL, NULL);
	ck_assert(!f.color && !f.attrs);
}
END_TEST

START_TEST(test_own_lines_look_like_the_others)
{
	struct fmt f;
	char out[256];

	fmt_init(&f, NULL, "dumb");
	fmt_own(&f, "09:15", "hello all", 9, out, sizeof(out));
	ck_assert_str_eq(out, "[09:15] <you> hello all");
	snprintf(f.me, sizeof(f.me), "%s", "alice");
	fmt_own(&f, "09:15", "hello all", 9, out, sizeof(out));
	ck_assert_str_eq(out, "[09:15] <alice> hello all");
	/* A short buffer cuts, never overruns. */
	ck_assert_uint_eq(fmt_own(&f, "09:15", "hello all", 9, out, 8), 7);
	ck_assert_str_eq(out, "[09:15]");
}
END_TEST

static Suite *
fmt_suite(void)
{
	Suite *s = suite_create("fmt");
	TCase *tc = tcase_create("fmt");

	tcase_add_test(tc, test_each_kind_of_line_has_its_shape);
	tcase_add_test(tc, test_colours_attributes_and_mentions);
	tcase_add_test(tc, test_own_lines_look_like_the_others);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(fmt_suite());
}
