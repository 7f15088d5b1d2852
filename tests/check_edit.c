/* chat-client's line editor, key by key. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit.h"
#include "check_run.h"

#define LEFT "\x1b[D"
#define RIGHT "\x1b[C"
#define UP "\x1b[A"
#define DOWN "\x1b[B"

/* Type s; returns the last action that was not EDIT_NONE. */
static enum edit_action
type(struct edit *e, const char *s)
{
	enum edit_action last = EDIT_NONE, a;

	for (; *s != '\0'; s++)
		if ((a = edit_key(e, (unsigned char)*s)) != EDIT_NONE)
			last = a;
	return last;
}

static const char *
line(const struct edit *e)
{
	size_t len;

	return edit_line(e, &len);
}

/* Type s, then Enter; returns the line taken (freed by the next call). */
static const char *
enter(struct edit *e, const char *s)
{
	static char *taken;
	size_t len;

	type(e, s);
	ck_assert_int_eq(edit_key(e, '\r'), EDIT_ENTER);
	free(taken);
	taken = edit_take(e, &len);
	ck_assert_ptr_nonnull(taken);
	ck_assert_uint_eq(len, strlen(taken));
	return taken;
}

START_TEST(test_printable_text_and_utf8_are_inserted_at_the_cursor)
{
	struct edit e;

	edit_init(&e);
	ck_assert_int_eq(type(&e, "hllo"), EDIT_REDRAW);
	type(&e, LEFT LEFT LEFT "e");
	ck_assert_str_eq(line(&e), "hello");
	type(&e, "\x05 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	ck_assert_str_eq(line(&e), "hello caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	/* A character split across reads is still one character. */
	edit_key(&e, 0xc3);
	ck_assert_int_eq(edit_key(&e, 0xb1), EDIT_REDRAW);
	ck_assert_ptr_nonnull(strstr(line(&e), "\xc3\xb1"));
	edit_free(&e);
}
END_TEST

START_TEST(test_bad_utf8_controls_and_unknown_sequences_are_never_inserted)
{
	struct edit e;

	edit_init(&e);
	type(&e, "a\xff\xc0\xafz");           /* impossible and overlong bytes */
	type(&e, "\xed\xa0\x80");             /* a surrogate */
	type(&e, "\xc2\x9b");                 /* C1 CSI, encoded */
	type(&e, "\xe2\x82q");                /* cut short: q still counts */
	type(&e, "\x01\x02\x06\x0e\x10\x05"); /* moves, not text */
	type(&e, "\x1b[38;5;1m\x1b]0;x\x07\x1bx\x1b[200~");
	ck_assert_str_eq(line(&e), "azq0;x");
	edit_free(&e);
}
END_TEST

START_TEST(test_backspace_and_delete_remove_whole_characters)
{
	struct edit e;

	edit_init(&e);
	type(&e, "ab\xe2\x82\xac");
	ck_assert_int_eq(edit_key(&e, 0x7f), EDIT_REDRAW);
	ck_assert_str_eq(line(&e), "ab");
	type(&e, "\xc3\xa9" LEFT LEFT "\x08");
	ck_assert_str_eq(line(&e), "b\xc3\xa9");
	type(&e, "\x1b[3~"); /* Delete, at the b */
	ck_assert_str_eq(line(&e), "\xc3\xa9");
	ck_assert_int_eq(edit_key(&e, 0x04), EDIT_REDRAW); /* Ctrl-D deletes here */
	ck_assert_str_eq(line(&e), "");
	ck_assert_int_eq(edit_key(&e, 0x7f), EDIT_NONE); /* nothing left to erase */
	edit_free(&e);
}
END_TEST

START_TEST(test_ctrl_u_ctrl_w_and_ctrl_k_erase_what_they_should)
{
	struct edit e;

	edit_init(&e);
	type(&e, "one two  three");
	ck_assert_int_eq(edit_key(&e, 0x17), EDIT_REDRAW); /* Ctrl-W */
	ck_assert_str_eq(line(&e), "one two  ");
	edit_key(&e, 0x17);
	ck_assert_str_eq(line(&e), "one ");
	type(&e, "four five" LEFT LEFT LEFT LEFT);
	edit_key(&e, 0x0b); /* Ctrl-K: to the end */
	ck_assert_str_eq(line(&e), "one four ");
	type(&e, LEFT LEFT LEFT LEFT LEFT);
	edit_key(&e, 0x15); /* Ctrl-U: to the start */
	ck_assert_str_eq(line(&e), "four ");
	edit_free(&e);
}
END_TEST

START_TEST(test_enter_ctrl_d_and_ctrl_c)
{
	struct edit e;

	edit_init(&e);
	ck_assert_int_eq(edit_key(&e, '\r'), EDIT_NONE); /* nothing to send */
	ck_assert_int_eq(edit_key(&e, 0x04), EDIT_EOF);
	ck_assert_int_eq(edit_key(&e, 0x03), EDIT_INTERRUPT);
	ck_assert_str_eq(enter(&e, "hi there"), "hi there");
	ck_assert_str_eq(line(&e), ""); /* a fresh line */
	ck_assert_int_eq(type(&e, "x\n"), EDIT_ENTER);
	edit_free(&e);
}
END_TEST

START_TEST(test_up_and_down_walk_the_history_and_keep_the_draft)
{
	struct edit e;

	edit_init(&e);
	ck_assert_int_eq(type(&e, UP), EDIT_NONE); /* no history yet */
	enter(&e, "first");
	enter(&e, "second");
	enter(&e, "second"); /* remembered once */
	type(&e, "draft");
	type(&e, UP);
	ck_assert_str_eq(line(&e), "second");
	type(&e, UP);
	ck_assert_str_eq(line(&e), "first");
	ck_assert_int_eq(type(&e, UP), EDIT_NONE); /* the oldest */
	type(&e, DOWN);
	ck_assert_str_eq(line(&e), "second");
	type(&e, DOWN);
	ck_assert_str_eq(line(&e), "draft");
	/* An old line, changed, is sent as changed. */
	type(&e, "\x10\x10"); /* Ctrl-P twice */
	ck_assert_str_eq(enter(&e, "!"), "first!");
	type(&e, UP);
	ck_assert_str_eq(line(&e), "first!");
	edit_free(&e);
}
END_TEST

START_TEST(test_render_draws_prompt_line_and_cursor_and_scrolls)
{
	struct edit e;
	char out[512];
	size_t n;

	edit_init(&e);
	type(&e, "hello" LEFT LEFT);
	n = edit_render(&e, "> ", 80, out, sizeof(out));
	ck_assert_str_eq(out, "\r> hello\x1b[K\r\x1b[5C");
	ck_assert_uint_eq(n, strlen(out));

	/* Longer than the row: the part around the cursor is shown. */
	type(&e, "\x05 0123456789abcdefghij");
	edit_render(&e, "> ", 12, out, sizeof(out));
	ck_assert_str_eq(out, "\r> bcdefghij\x1b[K\r\x1b[11C");
	type(&e, "\x01");
	edit_render(&e, "> ", 12, out, sizeof(out));
	ck_assert_str_eq(out, "\r> hello 012\x1b[K\r\x1b[2C");

	/* A small buffer gets less of the line, never an overrun. */
	n = edit_render(&e, "> ", 80, out, 40);
	ck_assert_uint_lt(n, 40);
	ck_assert_uint_eq(strlen(out), n);
	edit_free(&e);
}
END_TEST

START_TEST(test_lines_are_bounded)
{
	struct edit e;
	size_t len;

	edit_init(&e);
	for (int i = 0; i < EDIT_MAX_LINE + 100; i++)
		edit_key(&e, 'x');
	edit_line(&e, &len);
	ck_assert_uint_eq(len, EDIT_MAX_LINE);
	edit_free(&e);
}
END_TEST

/* Ctrl-Left/Right (xterm and rxvt forms, and Alt-arrows), Alt-B/F move a
 * word; Alt-Backspace erases the word before the cursor. */
START_TEST(test_word_motion_and_alt_backspace)
{
	struct edit e;
	size_t len;

	edit_init(&e);
	type(&e, "say hello  world");
	ck_assert_int_eq(type(&e, "\x1b[1;5D"), EDIT_REDRAW); /* Ctrl-Left */
	ck_assert_uint_eq(e.cur, 11);
	type(&e, "\x1b" "b"); /* Alt-B */
	ck_assert_uint_eq(e.cur, 4);
	type(&e, "\x1bOd"); /* rxvt Ctrl-Left */
	ck_assert_uint_eq(e.cur, 0);
	ck_assert_int_eq(type(&e, "\x1bOd"), EDIT_NONE); /* nothing further */
	type(&e, "\x1b" "f"); /* Alt-F: the end of "say" */
	ck_assert_uint_eq(e.cur, 3);
	type(&e, "\x1b[1;5C"); /* Ctrl-Right: the end of "hello" */
	ck_assert_uint_eq(e.cur, 9);
	type(&e, "\x1b[1;3C"); /* Alt-Right */
	ck_assert_uint_eq(e.cur, 16);
	ck_assert_int_eq(type(&e, "\x1b\x7f"), EDIT_REDRAW); /* Alt-Backspace */
	ck_assert_str_eq(edit_line(&e, &len), "say hello  ");
	type(&e, "\x1b\x7f");
	ck_assert_str_eq(edit_line(&e, &len), "say ");
	ck_assert_uint_eq(e.cur, 4);
	edit_free(&e);
}
END_TEST

/* Tab and Ctrl-Z are the caller's: reported, nothing inserted; a
 * completion replaces the word before the cursor. */
START_TEST(test_tab_completes_through_the_caller_and_ctrl_z_is_reported)
{
	struct edit e;
	size_t len, start;

	edit_init(&e);
	type(&e, "hi al tail");
	type(&e, LEFT LEFT LEFT LEFT LEFT);
	ck_assert_int_eq(edit_key(&e, '\t'), EDIT_COMPLETE);
	ck_assert_str_eq(edit_line(&e, &len), "hi al tail");
	start = edit_word_start(&e);
	ck_assert_uint_eq(start, 3);
	ck_assert_int_eq(edit_replace(&e, start, "alice", 5), EDIT_REDRAW);
	ck_assert_str_eq(edit_line(&e, &len), "hi alice tail");
	ck_assert_uint_eq(e.cur, 8);
	ck_assert_int_eq(edit_key(&e, 0x1a), EDIT_SUSPEND);
	ck_assert_str_eq(edit_line(&e, &len), "hi alice tail");
	edit_free(&e);
}
END_TEST

static Suite *
edit_suite(void)
{
	Suite *s = suite_create("edit");
	TCase *tc;

	tc = tcase_create("typing");
	tcase_add_test(tc, test_printable_text_and_utf8_are_inserted_at_the_cursor);
	tcase_add_test(tc, test_bad_utf8_controls_and_unknown_sequences_are_never_inserted);
	tcase_add_test(tc, test_backspace_and_delete_remove_whole_characters);
	tcase_add_test(tc, test_ctrl_u_ctrl_w_and_ctrl_k_erase_what_they_should);
	tcase_add_test(tc, test_enter_ctrl_d_and_ctrl_c);
	tcase_add_test(tc, test_lines_are_bounded);
	tcase_add_test(tc, test_word_motion_and_alt_backspace);
	tcase_add_test(tc, test_tab_completes_through_the_caller_and_ctrl_z_is_reported);
	suite_add_tcase(s, tc);

	tc = tcase_create("history");
	tcase_add_test(tc, test_up_and_down_walk_the_history_and_keep_the_draft);
	suite_add_tcase(s, tc);

	tc = tcase_create("render");
	tcase_add_test(tc, test_render_draws_prompt_line_and_cursor_and_scrolls);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(edit_suite());
}
