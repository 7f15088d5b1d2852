/* Telnet commands taken out of the input, and the refusals they get. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <check.h>
#include <string.h>

#include "telnet.h"
#include "check_run.h"

/* Filter in (len bytes) in one call; the text left must be want, the
 * answers the len bytes of ans. */
static void
filter_expect(struct telnet *t, const char *in, size_t len, const char *want, const char *ans,
              size_t anslen)
{
	char buf[256];
	unsigned char reply[TELNET_REPLY_MAX];
	size_t rlen = 0, n;

	ck_assert_uint_le(len, sizeof(buf));
	memcpy(buf, in, len);
	n = telnet_filter(t, buf, len, reply, &rlen);
	ck_assert_uint_eq(n, strlen(want));
	ck_assert_int_eq(memcmp(buf, want, n), 0);
	ck_assert_uint_eq(rlen, anslen);
	ck_assert_int_eq(memcmp(reply, ans, anslen), 0);
}

START_TEST(test_text_passes_untouched)
{
	struct telnet t = { 0 };
	const char text[] = "héllo, world\r\n";

	filter_expect(&t, text, sizeof(text) - 1, text, "", 0);
}
END_TEST

/* What PuTTY sends first: offers and requests, a subnegotiation; each
 * request refused once, the text after them intact. */
START_TEST(test_negotiation_is_dropped_and_refused_once)
{
	struct telnet t = { 0 };
	const char in[] = "\xff\xfd\x18"           /* DO TERMINAL-TYPE */
	                  "\xff\xfb\x1f"           /* WILL NAWS */
	                  "\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0" /* SB NAWS 80x24 SE */
	                  "\xff\xfe\x01"           /* DONT ECHO: nothing to say */
	                  "\xff\xfc\x03"           /* WONT SGA: nothing to say */
	                  "hi\r\n";
	const char ans[] = "\xff\xfc\x18"  /* WONT TERMINAL-TYPE */
	                   "\xff\xfe\x1f"; /* DONT NAWS */

	filter_expect(&t, in, sizeof(in) - 1, "hi\r\n", ans, sizeof(ans) - 1);
	/* Asked again: no second answer, so no loop with an insistent peer. */
	filter_expect(&t, "\xff\xfd\x18" "again", 8, "again", "", 0);
}
END_TEST

/* A command cut between two reads is finished by the next. */
START_TEST(test_a_command_split_across_reads)
{
	struct telnet t = { 0 };

	filter_expect(&t, "ab\xff", 3, "ab", "", 0);
	filter_expect(&t, "\xfd", 1, "", "", 0);
	filter_expect(&t, "\x01" "cd", 3, "cd", "\xff\xfc\x01", 3);
	filter_expect(&t, "\xff\xfa\x18\x01", 4, "", "", 0); /* SB TTYPE SEND ... */
	filter_expect(&t, "\xff", 1, "", "", 0);
	filter_expect(&t, "\xf0" "ef", 3, "ef", "", 0); /* ... SE */
}
END_TEST

/* No IAC byte is ever left in the text: IAC IAC (a data 0xFF), two-byte
 * commands, and an IAC IAC inside a subnegotiation. */
START_TEST(test_no_iac_byte_survives)
{
	struct telnet t = { 0 };
	const char in[] = "a\xff\xff" "b\xff\xf1" "c\xff\xf6" "d\xff\xfa\x18\xff\xff\x00\xff\xf0" "e";

	filter_expect(&t, in, sizeof(in) - 1, "abcde", "", 0);
}
END_TEST

/* The worst a peer can ask in one read, every option both ways, fits the
 * answer buffer; and then nothing more is ever answered. */
START_TEST(test_every_option_asked_fits_the_reply)
{
	static char buf[2 * 256 * 3];
	unsigned char reply[TELNET_REPLY_MAX];
	struct telnet t = { 0 };
	size_t n = 0, rlen = 0;

	for (int verb = 0; verb < 2; verb++)
		for (int opt = 0; opt < 256; opt++) {
			buf[n++] = (char)TELNET_IAC;
			buf[n++] = (char)(verb ? TELNET_WILL : TELNET_DO);
			buf[n++] = (char)opt;
		}
	ck_assert_uint_eq(telnet_filter(&t, buf, n, reply, &rlen), 0);
	ck_assert_uint_eq(rlen, TELNET_REPLY_MAX);
	ck_assert_int_eq(reply[3 * 255 + 1], TELNET_WONT);
	ck_assert_int_eq(reply[3 * 256 + 1], TELNET_DONT);
	n = 0; /* the filter worked in place: build the requests again */
	for (int opt = 0; opt < 256; opt++) {
		buf[n++] = (char)TELNET_IAC;
		buf[n++] = (char)TELNET_DO;
		buf[n++] = (char)opt;
	}
	rlen = 0;
	ck_assert_uint_eq(telnet_filter(&t, buf, n, reply, &rlen), 0);
	ck_assert_uint_eq(rlen, 0);
}
END_TEST

static Suite *
telnet_suite(void)
{
	Suite *s = suite_create("telnet");
	TCase *tc = tcase_create("filter");

	tcase_add_test(tc, test_text_passes_untouched);
	tcase_add_test(tc, test_negotiation_is_dropped_and_refused_once);
	tcase_add_test(tc, test_a_command_split_across_reads);
	tcase_add_test(tc, test_no_iac_byte_survives);
	tcase_add_test(tc, test_every_option_asked_fits_the_reply);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(telnet_suite());
}
