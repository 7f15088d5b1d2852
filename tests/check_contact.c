/*
 * First contact, end to end on the real server, as an `nc` or telnet user
 * meets it: the greeting and --motd (reread on SIGHUP), the end of the
 * history replay marked, a nick sent as the first line taking effect
 * before the join is announced, telnet option negotiation dropped and
 * refused, and --cloak.
 */
#define _GNU_SOURCE /* O_TMPFILE, prctl */
#include "config.h"

#include "chat_test.h"
#include "check_run.h"

/* The next line begins with want. */
static void
expect_prefix(struct client *c, const char *want)
{
	char line[1024];

	ck_assert_int_eq(client_line(c, line, sizeof(line), WAIT_MS), 1);
	ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "want '%s...', got '%s'", want,
	              line);
}

/* The three lines of the greeting for a client that shows as addr among
 * online, read and checked. */
static void
expect_greeting(struct client *c, const char *addr, int online)
{
	char want[256];

	expect_prefix(c, "* welcome to ");
	snprintf(want, sizeof(want), "* you are %s in #lobby, %d online", addr, online);
	expect_line(c, want);
	expect_line(c, "* /nick NAME to choose your name, /help for the commands");
}

/* A client connecting hears at once who and where it is, before anyone
 * speaks; a second one hears the count with itself. */
START_TEST(test_greeting_comes_at_once)
{
	struct server_proc sp;
	struct client a, b;
	char addr[64], line[512];

	server_start(&sp, NULL);
	client_open(&a, sp.port, 0);
	client_addr(&a, addr, sizeof(addr));
	expect_greeting(&a, addr, 1);
	client_open(&b, sp.port, 0);
	client_addr(&b, addr, sizeof(addr));
	expect_greeting(&b, addr, 2);
	/* Nothing else comes to b: no history, so no end-of-history mark. */
	ck_assert_int_eq(client_line(&b, line, sizeof(line), 300), -1);
	client_close(&a);
	client_close(&b);
	server_stop_ok(&sp);
}
END_TEST

/* --motd: the operator's lines follow the greeting, made safe as chat
 * lines are; SIGHUP reads the file again; a file that goes bad keeps the
 * old text, with a warning. */
START_TEST(test_motd_follows_the_greeting_and_is_reread_on_sighup)
{
	char dir[] = "/tmp/chat-motd-XXXXXX", path[64];
	struct server_proc sp;
	struct client a, b, c;
	char addr[64];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/motd", dir);
	write_file(path, "Rules: be kind\x1b[2J\r\n\nSee https://example.org\n\n\n");
	server_start(&sp, "--motd", path, NULL);
	client_open(&a, sp.port, 0);
	client_addr(&a, addr, sizeof(addr));
	expect_greeting(&a, addr, 1);
	expect_line(&a, "* Rules: be kind");
	expect_line(&a, "*");
	expect_line(&a, "* See https://example.org");

	write_file(path, "New rules\n");
	kill(sp.pid, SIGHUP);
	ck_assert(server_log_wait(&sp, "SIGHUP: MOTD reloaded", WAIT_MS));
	client_open(&b, sp.port, 0);
	client_addr(&b, addr, sizeof(addr));
	expect_greeting(&b, addr, 2);
	expect_line(&b, "* New rules");

	ck_assert_int_eq(unlink(path), 0);
	kill(sp.pid, SIGHUP);
	ck_assert(server_log_wait(&sp, "keeping the MOTD loaded before", WAIT_MS));
	ck_assert_ptr_nonnull(strstr(server_log(&sp), "No such file or directory"));
	client_open(&c, sp.port, 0);
	client_addr(&c, addr, sizeof(addr));
	expect_greeting(&c, addr, 3);
	expect_line(&c, "* New rules");
	client_close(&a);
	client_close(&b);
	client_close(&c);
	server_stop_ok(&sp);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* A MOTD that cannot be used is refused at start, saying why. */
START_TEST(test_bad_motd_is_refused_at_start)
{
	static char out[8192];
	char dir[] = "/tmp/chat-motd-XXXXXX", path[64], big[4097 + 1];
	const char *missing[] = { "--port", "0", "--motd", "/nonexistent/motd", NULL };
	const char *huge[] = { "--port", "0", "--motd", path, NULL };

	ck_assert_int_eq(server_run_args(out, sizeof(out), missing), 1);
	ck_assert_msg(strstr(out, "chat-server: --motd: cannot read /nonexistent/motd: No such "
	                          "file or directory") != NULL,
	              "got: %s", out);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/motd", dir);
	memset(big, 'x', 4097);
	big[4097] = '\0';
	write_file(path, big);
	ck_assert_int_eq(server_run_args(out, sizeof(out), huge), 1);
	ck_assert_msg(strstr(out, "is longer than 4096 bytes") != NULL, "got: %s", out);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* --history: after the replay, a mark says where the past ends. */
START_TEST(test_end_of_history_is_marked)
{
	struct server_proc sp;
	struct client a, b, late;
	char line[512];

	server_start(&sp, "--history", "5", NULL);
	client_open(&a, sp.port, 0);
	client_open(&b, sp.port, 0);
	ck_assert(client_wait_for(&a, "joined (2 online)", WAIT_MS));
	client_say(&a, "one\ntwo\n");
	ck_assert_int_eq(client_chat_line(&b, line, sizeof(line), WAIT_MS), 1);
	ck_assert_int_eq(client_chat_line(&b, line, sizeof(line), WAIT_MS), 1);
	client_open(&late, sp.port, 0);
	for (int i = 0; i < 3; i++)
		expect_prefix(&late, "* "); /* the greeting */
	ck_assert_int_eq(client_line(&late, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "one");
	ck_assert_int_eq(client_line(&late, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "two");
	expect_line(&late, "* end of history (2 lines from before you came)");
	client_close(&a);
	client_close(&b);
	client_close(&late);
	server_stop_ok(&sp);
}
END_TEST

/* A first line /nick NAME is part of the join: one notice, under the
 * nick, and the lines after it come from the nick; no rename notice. */
START_TEST(test_a_first_line_nick_joins_under_it)
{
	struct server_proc sp;
	struct client a, b;
	char addr[64], want[128], line[512];

	server_start(&sp, NULL);
	client_open(&a, sp.port, 0);
	client_skip_greeting(&a);
	client_open(&b, sp.port, 0);
	client_addr(&b, addr, sizeof(addr));
	client_say(&b, "/nick alice\nhello\n");
	snprintf(want, sizeof(want), "* alice (%s) joined (2 online)", addr);
	expect_line(&a, want);
	ck_assert_int_eq(client_line(&a, line, sizeof(line), WAIT_MS), 1);
	snprintf(want, sizeof(want), "alice@%s | ", addr);
	ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "got: %s", line);
	ck_assert_str_eq(chat_text(line), "hello");
	client_skip_greeting(&b);
	expect_line(&b, "* you are now alice");
	/* A later /nick is a rename, told to everyone. */
	client_say(&b, "/nick alicia\n");
	snprintf(want, sizeof(want), "* alice@%s is now alicia", addr);
	expect_line(&a, want);
	client_close(&a);
	client_close(&b);
	server_stop_ok(&sp);
}
END_TEST

/* Without a first line, the join is announced under the address once the
 * wait (about a second) is over; a first chat line announces it at once,
 * before the line; a refused first nick, under the address. */
START_TEST(test_joins_without_a_first_nick)
{
	struct server_proc sp;
	struct client a, b, c, d;
	char addr[64], want[128], line[512];
	long t0;

	server_start(&sp, NULL);
	client_open(&a, sp.port, 0);
	client_skip_greeting(&a);
	client_say(&a, "/nick taken\n");
	ck_assert(client_wait_for(&a, "you are now taken", WAIT_MS));

	t0 = ms_now();
	client_open(&b, sp.port, 0);
	client_addr(&b, addr, sizeof(addr));
	snprintf(want, sizeof(want), "* %s joined (2 online)", addr);
	expect_line(&a, want);
	ck_assert_msg(ms_now() - t0 >= 900, "announced after %ld ms", ms_now() - t0);

	client_open(&c, sp.port, 0);
	client_addr(&c, addr, sizeof(addr));
	client_say(&c, "straight in\n");
	snprintf(want, sizeof(want), "* %s joined (3 online)", addr);
	expect_line(&a, want);
	ck_assert_int_eq(client_line(&a, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "straight in");

	client_open(&d, sp.port, 0);
	client_addr(&d, addr, sizeof(addr));
	client_say(&d, "/nick TAKEN\n");
	snprintf(want, sizeof(want), "* %s joined (4 online)", addr);
	expect_line(&a, want);
	ck_assert(client_wait_for(&d, "* nick TAKEN is taken", WAIT_MS));
	client_close(&a);
	client_close(&b);
	client_close(&c);
	client_close(&d);
	server_stop_ok(&sp);
}
END_TEST

/* A connection that leaves within the wait, silent (a port check), is
 * never announced: neither its join nor its departure. */
START_TEST(test_a_silent_visit_is_not_announced)
{
	struct server_proc sp;
	struct client a, b, c;
	char addr[64], want[128];

	server_start(&sp, NULL);
	client_open(&a, sp.port, 0);
	client_skip_greeting(&a);
	client_open(&b, sp.port, 0);
	client_skip_greeting(&b);
	client_close(&b);
	pause_ms(1500);
	client_open(&c, sp.port, 0);
	client_addr(&c, addr, sizeof(addr));
	client_say(&c, "hi\n");
	snprintf(want, sizeof(want), "* %s joined (2 online)", addr);
	expect_line(&a, want); /* nothing of b before it */
	client_close(&a);
	client_close(&c);
	server_stop_ok(&sp);
}
END_TEST

/* A telnet client's opening negotiation never reaches anyone: its first
 * line arrives clean, and what asked for an answer is refused. */
START_TEST(test_telnet_negotiation_is_dropped_and_refused)
{
	static const char opening[] = "\xff\xfd\x18\xff\xfb\x1f"  /* DO TTYPE, WILL NAWS */
	                              "\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0"; /* SB NAWS SE */
	struct server_proc sp;
	struct client a, t;
	char line[512];

	server_start(&sp, NULL);
	client_open(&a, sp.port, 0);
	client_skip_greeting(&a);
	client_open(&t, sp.port, 0);
	client_send(&t, opening, sizeof(opening) - 1);
	client_say(&t, "hello from telnet\r\n");
	ck_assert_int_eq(client_chat_line(&a, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "hello from telnet");
	/* The refusals come to t as bytes, ahead of the next line it gets. */
	client_skip_greeting(&t);
	client_say(&a, "answer\n");
	ck_assert_int_eq(client_line(&t, line, sizeof(line), WAIT_MS), 1);
	ck_assert_msg(strncmp(line, "\xff\xfc\x18\xff\xfe\x1f", 6) == 0, "got: %s", line);
	ck_assert_str_eq(chat_text(line), "answer");
	client_close(&a);
	client_close(&t);
	server_stop_ok(&sp);
}
END_TEST

/* The cloak b shows as: its greeting's "you are ..." part, read. */
static void
read_own_cloak(struct client *c, char *out, size_t len)
{
	char line[512];
	const char *p;

	ck_assert_int_eq(client_line(c, line, sizeof(line), WAIT_MS), 1); /* welcome */
	ck_assert_int_eq(client_line(c, line, sizeof(line), WAIT_MS), 1);
	ck_assert_msg(strncmp(line, "* you are cloak-", 16) == 0, "got: %s", line);
	p = line + strlen("* you are ");
	snprintf(out, len, "%.*s", (int)strcspn(p, " "), p);
	ck_assert(client_wait_for(c, "* /nick NAME", WAIT_MS));
}

/* --cloak: what clients see of an address is its cloak, everywhere (the
 * greeting, joins, chat lines, actions, /who, departures); the same
 * address gives the same cloak; the log keeps the real address. */
START_TEST(test_cloak_hides_addresses_from_clients_only)
{
	struct server_proc sp;
	struct client a, b;
	char ca[64], cb[64], real[64], want[160], line[512];

	server_start(&sp, "--cloak", NULL);
	client_open(&a, sp.port, 0);
	read_own_cloak(&a, ca, sizeof(ca));
	client_open(&b, sp.port, 0);
	read_own_cloak(&b, cb, sizeof(cb));
	client_addr(&b, real, sizeof(real));
	/* Both from 127.0.0.1: one cloak, told apart by port. */
	ck_assert_int_eq(strncmp(ca, cb, 18), 0);
	ck_assert_str_eq(strchr(cb, ':'), strchr(real, ':'));

	client_say(&b, "/nick bob\nhello\n/me waves\n/who\n");
	snprintf(want, sizeof(want), "* bob (%s) joined (2 online)", cb);
	expect_line(&a, want);
	ck_assert_int_eq(client_line(&a, line, sizeof(line), WAIT_MS), 1);
	snprintf(want, sizeof(want), "bob@%s | ", cb);
	ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "got: %s", line);
	ck_assert_int_eq(client_line(&a, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "* bob waves");
	snprintf(want, sizeof(want), "bob@%s", cb);
	ck_assert(client_wait_for(&b, want, WAIT_MS)); /* in /who */
	client_say(&a, "/who\n");
	ck_assert(client_wait_for(&a, ca, WAIT_MS));
	client_close(&b);
	snprintf(want, sizeof(want), "* bob@%s left (1 online)", cb);
	ck_assert(client_wait_for(&a, want, WAIT_MS));
	/* The log names the real address. */
	snprintf(want, sizeof(want), "bob@%s", real);
	ck_assert(server_log_wait(&sp, want, WAIT_MS));
	client_close(&a);
	server_stop_ok(&sp);
}
END_TEST

static Suite *
contact_suite(void)
{
	Suite *s = suite_create("contact");
	TCase *tc = tcase_create("contact");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_greeting_comes_at_once);
	tcase_add_test(tc, test_motd_follows_the_greeting_and_is_reread_on_sighup);
	tcase_add_test(tc, test_bad_motd_is_refused_at_start);
	tcase_add_test(tc, test_end_of_history_is_marked);
	tcase_add_test(tc, test_a_first_line_nick_joins_under_it);
	tcase_add_test(tc, test_joins_without_a_first_nick);
	tcase_add_test(tc, test_a_silent_visit_is_not_announced);
	tcase_add_test(tc, test_telnet_negotiation_is_dropped_and_refused);
	tcase_add_test(tc, test_cloak_hides_addresses_from_clients_only);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(contact_suite());
}
