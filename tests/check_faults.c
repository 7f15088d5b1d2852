/*
 * Faults, end to end: peers that reset or half-close, connection churn,
 * crowds of silent clients.  The real chat-server on 127.0.0.1, port 0;
 * each test starts its own and stops it (see chat_test.h).
 */
#define _GNU_SOURCE /* prctl */
#include "config.h"

#include "chat_test.h"
#include "check_run.h"

/* AddressSanitizer keeps freed memory in quarantine (256 MiB by default),
 * so a server built with it grows by design; LeakSanitizer checks leaks
 * there instead of RSS. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_MEANINGFUL 0
#endif
#endif
#ifndef RSS_MEANINGFUL
#define RSS_MEANINGFUL 1
#endif

/* Wait until the server holds exactly want descriptors; the last count
 * seen otherwise. */
static int
wait_fd_count(const struct server_proc *sp, int want)
{
	long end = ms_now() + WAIT_MS;
	int n;

	while ((n = server_fd_count(sp)) != want && ms_now() < end)
		pause_ms(20);
	return n;
}

/* Connect a client and wait until c0 hears that there are online now. */
static void
join(struct client *c, struct client *c0, int port, int online, int rcvbuf)
{
	char want[64];

	client_open(c, port, rcvbuf);
	snprintf(want, sizeof(want), "joined (%d online)", online);
	ck_assert_msg(client_wait_for(c0, want, WAIT_MS), "never saw: %s", want);
}

/* Read n chat lines on c, which must say "<tag> <i>" for i = 0..n-1. */
static void
expect_numbered(struct client *c, const char *tag, int n)
{
	char line[512], want[64];

	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(client_chat_line(c, line, sizeof(line), WAIT_MS), 1);
		snprintf(want, sizeof(want), "%s %d", tag, i);
		ck_assert_str_eq(chat_text(line), want);
	}
}

/* --- peers that go away badly --------------------------------------------------- */

/*
 * A peer that stops reading while the server writes to it, then resets
 * (SO_LINGER 0): the server must notice, close its descriptor, and keep
 * relaying for everyone else.
 */
START_TEST(test_a_peer_that_resets_mid_write_is_closed_and_others_carry_on)
{
	struct server_proc sp;
	struct client a, b, r;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	char buf[256];
	int base;

	server_start(&sp, "--flood-rate", "0", NULL);
	client_open(&a, sp.port, 0);
	join(&b, &a, sp.port, 2, 0);
	base = wait_fd_count(&sp, server_fd_count(&sp));
	join(&r, &a, sp.port, 3, 4096);
	/* Enough for the server to be mid-write to r, which never reads. */
	for (int i = 0; i < 3000; i++) {
		int n = snprintf(buf, sizeof(buf), "load %d %0100d\n", i, 0);

		client_send(&b, buf, (size_t)n);
	}
	ck_assert_int_eq(setsockopt(r.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	client_close(&r); /* a reset, not a goodbye */
	client_say(&b, "after\n");
	for (int i = 0; i < 3000; i++) {
		char line[512], want[32];

		ck_assert_int_eq(client_chat_line(&a, line, sizeof(line), WAIT_MS), 1);
		snprintf(want, sizeof(want), "load %d ", i);
		ck_assert(strncmp(chat_text(line), want, strlen(want)) == 0);
	}
	ck_assert_int_eq(client_chat_line(&a, buf, sizeof(buf), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(buf), "after");
	ck_assert_int_eq(wait_fd_count(&sp, base), base);
	client_close(&a);
	client_close(&b);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/* A peer that sends a line and half-closes (SHUT_WR) has its line relayed,
 * gets the rest of what it is owed, and is closed: no job stays behind. */
START_TEST(test_a_half_closed_peer_is_relayed_then_closed)
{
	struct server_proc sp;
	struct client a, h;
	char line[512];
	int base;

	server_start(&sp, "--flood-rate", "0", NULL);
	client_open(&a, sp.port, 0);
	ck_assert(server_log_wait(&sp, "connected (1 online)", WAIT_MS));
	base = server_fd_count(&sp);
	join(&h, &a, sp.port, 2, 0);
	client_say(&h, "last words");
	ck_assert_int_eq(shutdown(h.fd, SHUT_WR), 0);
	ck_assert_int_eq(client_chat_line(&a, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "last words");
	ck_assert(client_wait_for(&a, "left (1 online)", WAIT_MS));
	ck_assert(client_drain_to_eof(&h, WAIT_MS)); /* the server closed it */
	ck_assert_int_eq(wait_fd_count(&sp, base), base);
	client_close(&h);
	client_close(&a);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/* --- churn ------------------------------------------------------------------------- */

/*
 * cycles connections that come and go (some say a line first, some reset)
 * while the CHAT clients in cs each say ROUNDS numbered lines; then every
 * chatter must have heard every other's lines, in order.
 */
enum { CHAT = 10, CYCLES = 2000, ROUNDS = 20 };

static void
churn(const struct server_proc *sp, struct client *cs, int first_round)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	char buf[64];
	int i, k;

	for (k = 0; k < CYCLES; k++) {
		struct client t;

		client_open(&t, sp->port, 0);
		if (k % 3 == 1)
			client_say(&t, "passing through");
		if (k % 3 == 2)
			setsockopt(t.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		client_close(&t);
		if (k % (CYCLES / ROUNDS) == 0) {
			for (i = 0; i < CHAT; i++) {
				snprintf(buf, sizeof(buf), "c%d %d\n", i,
				         first_round + k / (CYCLES / ROUNDS));
				client_say(&cs[i], buf);
			}
		}
	}
	for (i = 0; i < CHAT; i++) {
		int next[CHAT], got = 0;
		char line[512];

		for (k = 0; k < CHAT; k++)
			next[k] = first_round;
		while (got < (CHAT - 1) * ROUNDS) {
			const char *t;
			int from, n;

			ck_assert_int_eq(client_chat_line(&cs[i], line, sizeof(line), WAIT_MS), 1);
			t = chat_text(line);
			if (strcmp(t, "passing through") == 0)
				continue;
			ck_assert_int_eq(sscanf(t, "c%d %d", &from, &n), 2);
			ck_assert(from >= 0 && from < CHAT && from != i);
			ck_assert_int_eq(n, next[from]);
			next[from]++;
			got++;
		}
	}
}

/*
 * 2,000 connections that come and go while ten clients chat, twice.  The
 * first round brings the server to its working size (the chatters' queues
 * and the allocator's arenas grow while they read late); over the second,
 * the server's descriptors must come back to the same count and its RSS
 * must not grow beyond allocator noise, and no line among the ten is lost.
 */
START_TEST(test_two_thousand_connect_disconnect_cycles_leak_nothing)
{
	struct server_proc sp;
	struct client cs[CHAT];
	char grew[32];
	int base, i;
	long rss0, rss1;

	server_start(&sp, "--flood-rate", "0", "--workers", "2", NULL);
	client_open(&cs[0], sp.port, 0);
	for (i = 1; i < CHAT; i++)
		join(&cs[i], &cs[0], sp.port, i + 1, 0);
	base = server_fd_count(&sp);
	churn(&sp, cs, 0);
	ck_assert_int_eq(wait_fd_count(&sp, base), base);
	rss0 = server_rss_kb(&sp);
	churn(&sp, cs, ROUNDS);
	ck_assert_int_eq(wait_fd_count(&sp, base), base);
	rss1 = server_rss_kb(&sp);
	snprintf(grew, sizeof(grew), "%ld", rss1 - rss0);
	/*
	 * Rounds after the first move RSS by -100 to +800 KiB with no trend
	 * (measured over five): the chatters' queue rings keep the largest
	 * backlog they met, which depends on timing.  A leak of a struct conn
	 * (560 bytes) per connection would be 1,100 KiB a round.
	 */
	if (RSS_MEANINGFUL)
		ck_assert_msg(rss1 - rss0 < 1024, "RSS grew %s KiB over %d more cycles", grew,
		              CYCLES);
	for (i = 0; i < CHAT; i++)
		client_close(&cs[i]);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/* --- crowds ------------------------------------------------------------------------ */

/* A thousand clients that connect and then neither send nor read: two
 * others chat through them without losing or reordering a line. */
START_TEST(test_a_thousand_silent_clients_leave_the_others_unaffected)
{
	enum { SILENT = 1000, LINES = 200 };
	struct server_proc sp;
	struct client *quiet = calloc(SILENT, sizeof(*quiet)), a, b;
	char buf[64];

	ck_assert_ptr_nonnull(quiet);
	raise_nofile_for_test();
	server_start(&sp, "--flood-rate", "0", NULL);
	client_open(&a, sp.port, 0);
	for (int i = 0; i < SILENT; i++)
		client_open(&quiet[i], sp.port, 0);
	join(&b, &a, sp.port, SILENT + 2, 0);
	for (int i = 0; i < LINES; i++) {
		snprintf(buf, sizeof(buf), "a %d\n", i);
		client_say(&a, buf);
		snprintf(buf, sizeof(buf), "b %d\n", i);
		client_say(&b, buf);
	}
	expect_numbered(&a, "b", LINES);
	expect_numbered(&b, "a", LINES);
	client_close(&a);
	client_close(&b);
	for (int i = 0; i < SILENT; i++)
		client_close(&quiet[i]);
	free(quiet);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

static Suite *
faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc;

	tc = tcase_create("peers");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_a_peer_that_resets_mid_write_is_closed_and_others_carry_on);
	tcase_add_test(tc, test_a_half_closed_peer_is_relayed_then_closed);
	suite_add_tcase(s, tc);

	tc = tcase_create("churn");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_two_thousand_connect_disconnect_cycles_leak_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("crowds");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_a_thousand_silent_clients_leave_the_others_unaffected);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(faults_suite());
}
