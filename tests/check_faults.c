/*
 * Faults, end to end: peers that reset or half-close, connection churn,
 * crowds of silent clients.  The real chat-server on 127.0.0.1, port 0;
 * each test starts its own and stops it (see chat_test.h).
 */
#define _GNU_SOURCE /* prctl */
#include "config.h"

#include "chat_test.h"
#include "check_run.h"

/* AddressSanitizer keeps freed memory in quarantine (256 MiB by default)
 * and ThreadSanitizer grows shadow memory with every address touched, so a
 * server built with either grows by design; there the descriptor counts
 * still hold, and LeakSanitizer checks for leaks at exit. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
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
	server_stop_ok(&sp);
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
	server_stop_ok(&sp);
}
END_TEST

/* --- churn ------------------------------------------------------------------------- */

/*
 * CYCLES connections that come and go (some say a line first, some reset)
 * while the CHAT clients each say ROUNDS numbered lines and read as they
 * go; then every chatter must have heard every other's lines, in order.
 */
enum { CHAT = 10, CYCLES = 2000, ROUNDS = 20, CHURN_ROUNDS = 6 };

struct chatters {
	struct client c[CHAT];
	int next[CHAT][CHAT]; /* [reader][sender]: the number expected next */
	int got[CHAT];        /* lines each reader has checked */
};

/* Read and check one line for reader i, waiting up to ms.  Returns what
 * client_chat_line returns. */
static int
take(struct chatters *ch, int i, long ms)
{
	char line[512];
	const char *t;
	int from, n, rc = client_chat_line(&ch->c[i], line, sizeof(line), ms);

	if (rc != 1)
		return rc;
	t = chat_text(line);
	if (strcmp(t, "passing through") == 0)
		return 1;
	ck_assert_int_eq(sscanf(t, "c%d %d", &from, &n), 2);
	ck_assert(from >= 0 && from < CHAT && from != i);
	ck_assert_int_eq(n, ch->next[i][from]);
	ch->next[i][from]++;
	ch->got[i]++;
	return 1;
}

static void
churn(const struct server_proc *sp, struct chatters *ch, int round)
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
				         round * ROUNDS + k / (CYCLES / ROUNDS));
				client_say(&ch->c[i], buf);
			}
		}
		/* Keep up, as chatters do: what the server holds for them
		 * stays small, so its memory shows leaks, not backlog. */
		for (i = 0; i < CHAT; i++)
			while (take(ch, i, 0) == 1)
				;
	}
	for (i = 0; i < CHAT; i++)
		while (ch->got[i] < (round + 1) * (CHAT - 1) * ROUNDS)
			ck_assert_int_eq(take(ch, i, WAIT_MS), 1);
}

/*
 * 2,000 connections that come and go while ten clients chat, six times.
 * The first round brings the server to its working size; after each, the
 * server's descriptors must be back to the same count; over the other
 * five its RSS must not grow beyond allocator noise; and no line among
 * the ten is lost.
 */
START_TEST(test_two_thousand_connect_disconnect_cycles_leak_nothing)
{
	struct server_proc sp;
	struct chatters *ch = calloc(1, sizeof(*ch));
	char grew[32];
	int base, i;
	long rss0, rss1;

	ck_assert_ptr_nonnull(ch);
	server_start(&sp, "--flood-rate", "0", "--workers", "2", NULL);
	client_open(&ch->c[0], sp.port, 0);
	for (i = 1; i < CHAT; i++)
		join(&ch->c[i], &ch->c[0], sp.port, i + 1, 0);
	base = server_fd_count(&sp);
	churn(&sp, ch, 0);
	ck_assert_int_eq(wait_fd_count(&sp, base), base);
	rss0 = server_rss_kb(&sp);
	for (i = 1; i < CHURN_ROUNDS; i++) {
		churn(&sp, ch, i);
		ck_assert_int_eq(wait_fd_count(&sp, base), base);
	}
	rss1 = server_rss_kb(&sp);
	snprintf(grew, sizeof(grew), "%ld", rss1 - rss0);
	fprintf(stderr, "churn: RSS %ld -> %ld KiB over %d more cycles\n", rss0, rss1,
	        (CHURN_ROUNDS - 1) * CYCLES);
	/*
	 * RSS moves by up to ~1.2 MiB between rounds with no trend
	 * (allocator arenas, retained queue rings).  A leaked struct conn
	 * (560 bytes) per connection would add 5.5 MiB over five rounds;
	 * 2 MiB catches any leak of 210 bytes a connection or more.
	 */
	if (RSS_MEANINGFUL)
		ck_assert_msg(rss1 - rss0 < 2048, "RSS grew %s KiB over %d more cycles", grew,
		              (CHURN_ROUNDS - 1) * CYCLES);
	for (i = 0; i < CHAT; i++)
		client_close(&ch->c[i]);
	free(ch);
	server_stop_ok(&sp);
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
	server_stop_ok(&sp);
}
END_TEST

/* How many times needle occurs in the server's log. */
static int
log_count(const struct server_proc *sp, const char *needle)
{
	const char *p = server_log(sp);
	int n = 0;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

/*
 * A crowd from one address (a classroom behind NAT) joins quietly past its
 * join budget; 2 s later those who stayed are announced.  In batches, as
 * joins at accept are: announced one fan-out each, 3,000 of them cost
 * O(n^2) queueing and kept the server busy for tens of seconds (10,000:
 * bench/run-peers (d) saw a line reach 1 of them in 30 s).  The server's
 * CPU for the announcements is the measure (a CPU budget, not a time, as
 * the descriptor test does), scaled for sanitizer builds.
 */
START_TEST(test_a_crowd_of_quiet_joins_is_announced_in_batches)
{
	enum { CROWD = 3000 };
	struct server_proc sp;
	struct client *crowd = calloc(CROWD, sizeof(*crowd)), a;
	const char *mult = getenv("CK_TIMEOUT_MULTIPLIER");
	double m = mult != NULL && atof(mult) > 0 ? atof(mult) : 1;
	/* Measured on the 2-core machine: 0.9 s batched, 3.8 s one fan-out
	 * each.  Sanitizers slow this CPU-bound path by more than the time
	 * multiplier they are given (ThreadSanitizer: 6.5x), hence squared. */
	double cpu0, cpu, limit = 2.0 * m * m;
	long end;

	ck_assert_ptr_nonnull(crowd);
	raise_nofile_for_test();
	server_start(&sp, "--flood-rate", "0", NULL);
	client_open(&a, sp.port, 0);
	for (int i = 0; i < CROWD; i++)
		client_open(&crowd[i], sp.port, 0);
	cpu0 = server_cpu_seconds(&sp);
	end = ms_now() + WAIT_MS;
	while (log_count(&sp, "announced late") < CROWD - 20 && ms_now() < end)
		pause_ms(50);
	cpu = server_cpu_seconds(&sp) - cpu0;
	fprintf(stderr, "announcing %d quiet joins: %.2f s of server CPU (limit %.2f)\n", CROWD, cpu,
	        limit);
	ck_assert_msg(log_count(&sp, "announced late") >= CROWD - 20, "only %d announced",
	              log_count(&sp, "announced late"));
	ck_assert_msg(cpu < limit, "announcing %d quiet joins took %.2f s of CPU (limit %.2f)",
	              CROWD, cpu, limit);
	/* And the room still works: a line from the crowd reaches a. */
	client_say(&crowd[CROWD - 1], "still one room\n");
	ck_assert(client_wait_for(&a, "still one room", WAIT_MS));
	client_close(&a);
	for (int i = 0; i < CROWD; i++)
		client_close(&crowd[i]);
	free(crowd);
	server_stop_ok(&sp);
}
END_TEST

/* --- hostile input ----------------------------------------------------------------- */

/* True if s is valid UTF-8 with no C0 control but TAB, no DEL and no C1
 * control: what line_sanitize promises to every reader. */
static bool
clean_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		unsigned cp;
		int n;

		if (*p < 0x80) {
			if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
				return false;
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			cp = *p & 0x1f;
			n = 1;
		} else if ((*p & 0xf0) == 0xe0) {
			cp = *p & 0x0f;
			n = 2;
		} else if ((*p & 0xf8) == 0xf0) {
			cp = *p & 0x07;
			n = 3;
		} else {
			return false;
		}
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < 0xa0 || (cp >= 0xd800 && cp < 0xe000) || cp > 0x10ffff)
			return false; /* C1, overlong, surrogate, out of range */
		p += n + 1;
	}
	return true;
}

/* Write all of buf to a new connection, then close it.  In the child. */
static void
abuse(int port, const char *buf, size_t len, size_t times)
{
	struct client c;

	client_open(&c, port, 0);
	for (size_t t = 0; t < times; t++) {
		size_t off = 0;

		while (off < len) {
			ssize_t n = write(c.fd, buf + off, len - off);

			if (n <= 0)
				_exit(3);
			off += (size_t)n;
		}
	}
	close(c.fd);
}

/*
 * In turn, on connections of their own: 2 MB of random bytes, a 50 MB
 * line, 100,000 empty lines and 2 MB of multi-byte UTF-8.  A reader sees
 * only sanitised text, the server's memory stays bounded, and afterwards
 * the reader still hears an ordinary line.
 */
START_TEST(test_hostile_input_keeps_memory_bounded_and_others_see_clean_text)
{
	struct server_proc sp;
	struct client r, last;
	char line[8192];
	long rss0, peak = 0;
	int status, lines = 0;
	pid_t pid;

	server_start(&sp, "--flood-rate", "0", NULL);
	client_open(&r, sp.port, 0);
	ck_assert(server_log_wait(&sp, "connected (1 online)", WAIT_MS));
	rss0 = server_rss_kb(&sp);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Cyrillic, CJK, an emoji family joined by ZWJ, a heart. */
		static const char uni[] = "\xd0\xb4\xd1\x80\xd1\x83\xd0\xb6\xd0\xb1\xd0\xb0 "
		                          "\xe5\x8f\x8b\xe6\x83\x85 "
		                          "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 "
		                          "\xe2\x9d\xa4\n";
		static char buf[1 << 20];
		FILE *f = fopen("/dev/urandom", "r");
		size_t i;

		if (f == NULL || fread(buf, 1, sizeof(buf), f) != sizeof(buf))
			_exit(2);
		fclose(f);
		abuse(sp.port, buf, sizeof(buf), 2); /* random bytes */
		memset(buf, 'x', sizeof(buf));
		abuse(sp.port, buf, sizeof(buf), 50); /* one 50 MB line, cut at EOF */
		memset(buf, '\n', 100000);
		abuse(sp.port, buf, 100000, 1); /* 100,000 empty lines */
		for (i = 0; i + sizeof(uni) - 1 <= sizeof(buf); i += sizeof(uni) - 1)
			memcpy(buf + i, uni, sizeof(uni) - 1);
		abuse(sp.port, buf, i, 2); /* a Unicode flood */
		_exit(0);
	}
	/* Read as it comes, checking every line, until the child is done. */
	for (;;) {
		int rc = client_line(&r, line, sizeof(line), 200);

		if (rc == 1) {
			const char *t = line[0] == '*' ? line : chat_text(line);

			ck_assert_msg(t != NULL && clean_text(t), "unclean line #%d: %.200s", lines,
			              line);
			if (++lines % 2000 == 0) {
				long kb = server_rss_kb(&sp);

				peak = kb > peak ? kb : peak;
			}
			continue;
		}
		ck_assert_int_ne(rc, 0); /* the reader was not dropped */
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (server_rss_kb(&sp) > peak)
		peak = server_rss_kb(&sp);
	fprintf(stderr, "hostile: %d lines read, server RSS %ld KiB at rest, %ld at its peak\n",
	        lines, rss0, peak);
	/* The reader's queue is bounded by --max-sendq (1 MiB); the lines
	 * themselves by --max-line.  16 MiB is far above both, far below
	 * the 54 MB sent. */
	ck_assert_msg(peak - rss0 < 16384, "RSS grew %ld KiB", peak - rss0);
	ck_assert_int_gt(lines, 1000);
	client_open(&last, sp.port, 0);
	client_say(&last, "still here\n");
	ck_assert(client_wait_for(&r, "still here", WAIT_MS));
	client_close(&last);
	client_close(&r);
	server_stop_ok(&sp);
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

	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_hostile_input_keeps_memory_bounded_and_others_see_clean_text);
	suite_add_tcase(s, tc);

	tc = tcase_create("crowds");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_a_thousand_silent_clients_leave_the_others_unaffected);
	tcase_add_test(tc, test_a_crowd_of_quiet_joins_is_announced_in_batches);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(faults_suite());
}
