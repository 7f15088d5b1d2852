/*
 * Rooms, end to end on the real server: everyone starts in #lobby, which
 * looks as the one room always did; /join moves a client, and each room
 * hears only its own lines and notices; topics, /rooms, /who, history per
 * room, bad names, --max-rooms; and a storm of moves under traffic that
 * loses and repeats nothing.
 */
#define _GNU_SOURCE /* O_TMPFILE, prctl */
#include "config.h"

#include "chat_test.h"
#include "check_run.h"

/* c sends line and waits for a server line containing want. */
static void
say_expect(struct client *c, const char *line, const char *want)
{
	client_say(c, line);
	ck_assert_msg(client_wait_for(c, want, WAIT_MS), "after '%s', no '%s'", line, want);
}

/* The next chat line's text, or "" on timeout. */
static const char *
next_text(struct client *c)
{
	static char line[8192];
	const char *t;

	if (client_chat_line(c, line, sizeof(line), WAIT_MS) != 1)
		return "";
	t = chat_text(line);
	return t != NULL ? t : "";
}

/* Open n clients of sp named nick0, nick1, ... (nicks given), each a
 * member heard of by the first. */
static void
open_named(struct client *cs, const char *const *nicks, int n, const struct server_proc *sp)
{
	for (int i = 0; i < n; i++) {
		char cmd[64], want[64];

		client_open(&cs[i], sp->port, 0);
		snprintf(cmd, sizeof(cmd), "/nick %s\n", nicks[i]);
		snprintf(want, sizeof(want), "you are now %s", nicks[i]);
		say_expect(&cs[i], cmd, want);
	}
}

START_TEST(test_everyone_starts_in_the_lobby_which_looks_as_before)
{
	struct server_proc sp;
	struct client a, b;
	char line[512];

	server_start(&sp, NULL);
	client_open(&a, sp.port, 0);
	client_open(&b, sp.port, 0);
	ck_assert(client_wait_for(&a, "joined (2 online)", WAIT_MS));
	client_say(&a, "/who\n");
	ck_assert_int_eq(client_line(&a, line, sizeof(line), WAIT_MS), 1);
	ck_assert_msg(strncmp(line, "* 2 online: 127.0.0.1:", 22) == 0, "%s", line);
	say_expect(&a, "/rooms\n", "* 1 room:");
	ck_assert_int_eq(client_line(&a, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(line, "* #lobby (2 here)");
	client_say(&b, "hello\n");
	ck_assert_str_eq(next_text(&a), "hello");
	client_close(&a);
	client_close(&b);
	server_stop_ok(&sp);
}
END_TEST

START_TEST(test_join_moves_a_client_and_each_room_hears_only_its_own)
{
	static const char *const nicks[] = { "ann", "bob", "cat", "dan" };
	struct server_proc sp;
	struct client c[4];

	server_start(&sp, NULL);
	open_named(c, nicks, 4, &sp);

	say_expect(&c[0], "/join dev\n", "* you are now in #dev (1 here)");
	ck_assert(client_wait_for(&c[1], "ann@127.0.0.1:", WAIT_MS));
	ck_assert(client_wait_for(&c[2], " left for #dev", WAIT_MS));
	/* Names compare without case; the room keeps the name it was made
	 * with. */
	say_expect(&c[1], "/join #DEV\n", "* you are now in #dev (2 here)");
	ck_assert(client_wait_for(&c[0], "joined #dev (2 here)", WAIT_MS));

	/* A line in #dev reaches bob, and not cat: once bob has it, the
	 * fan-out is done, so a later lobby line must be cat's next one. */
	client_say(&c[0], "in dev\n");
	ck_assert_str_eq(next_text(&c[1]), "in dev");
	client_say(&c[3], "in the lobby\n");
	ck_assert_str_eq(next_text(&c[2]), "in the lobby");
	client_say(&c[1], "/me waves\n");
	ck_assert(strstr(next_text(&c[0]), "* bob waves") != NULL);
	client_say(&c[2], "lobby again\n");
	ck_assert_str_eq(next_text(&c[3]), "lobby again");

	/* A departure is told in the room it left, and nowhere else. */
	client_say(&c[1], "/quit off\n");
	ck_assert(client_wait_for(&c[0], "left (3 online): off", WAIT_MS));
	client_say(&c[3], "after bob\n");
	ck_assert_str_eq(next_text(&c[2]), "after bob");

	say_expect(&c[0], "/join lobby\n", "* you are now in #lobby (3 here)");
	say_expect(&c[0], "/join lobby\n", "* you are already in #lobby");
	for (int i = 0; i < 4; i++)
		client_close(&c[i]);
	server_stop_ok(&sp);
}
END_TEST

START_TEST(test_topics_rooms_and_who)
{
	static const char *const nicks[] = { "ann", "bob", "cat" };
	struct server_proc sp;
	struct client c[3];
	char line[512];

	server_start(&sp, NULL);
	open_named(c, nicks, 3, &sp);
	say_expect(&c[0], "/join dev\n", "you are now in #dev");
	say_expect(&c[1], "/join dev\n", "you are now in #dev");
	say_expect(&c[0], "/topic\n", "* #dev has no topic");
	say_expect(&c[0], "/topic releases on friday\n",
	           "* you set the topic of #dev: releases on friday");
	ck_assert(client_wait_for(&c[1], "* ann@127.0.0.1", WAIT_MS));
	say_expect(&c[1], "/topic\n", "* topic of #dev: releases on friday (set by ann@127.0.0.1:");

	say_expect(&c[2], "/rooms\n", "* 2 rooms:");
	ck_assert(client_wait_for(&c[2], "* #dev (2 here): releases on friday", WAIT_MS));
	/* /who is the room; /who * the server. */
	client_say(&c[0], "/who\n");
	ck_assert_int_eq(client_line(&c[0], line, sizeof(line), WAIT_MS), 1);
	ck_assert_msg(strncmp(line, "* 2 in #dev: ", 13) == 0, "%s", line);
	ck_assert_ptr_null(strstr(line, "cat@"));
	client_say(&c[0], "/who *\n");
	ck_assert_int_eq(client_line(&c[0], line, sizeof(line), WAIT_MS), 1);
	ck_assert_msg(strncmp(line, "* 3 online: ", 12) == 0 && strstr(line, "cat@") != NULL, "%s",
	              line);
	/* /msg reaches any room. */
	say_expect(&c[2], "/msg ann across rooms\n", "sent to ann");
	ck_assert(client_wait_for(&c[0], "(private) | ", WAIT_MS));

	/* An empty room disappears, its topic with it. */
	say_expect(&c[0], "/join lobby\n", "you are now in #lobby");
	say_expect(&c[1], "/join lobby\n", "you are now in #lobby");
	say_expect(&c[2], "/rooms\n", "* 1 room:");
	say_expect(&c[2], "/join dev\n", "you are now in #dev (1 here)");
	say_expect(&c[2], "/topic\n", "* #dev has no topic");
	for (int i = 0; i < 3; i++)
		client_close(&c[i]);
	server_stop_ok(&sp);
}
END_TEST

START_TEST(test_history_is_per_room)
{
	struct server_proc sp;
	struct client a, w, b, x, n;

	server_start(&sp, "--history", "5", NULL);
	client_open(&a, sp.port, 0);
	client_open(&w, sp.port, 0);
	client_open(&b, sp.port, 0);
	client_open(&x, sp.port, 0);
	say_expect(&a, "/join dev\n", "you are now in #dev");
	say_expect(&w, "/join dev\n", "you are now in #dev");
	/* Once a witness of the room has a line, it is in the room's history. */
	client_say(&a, "dev 1\ndev 2\n");
	ck_assert_str_eq(next_text(&w), "dev 1");
	ck_assert_str_eq(next_text(&w), "dev 2");
	client_say(&b, "lobby 1\n");
	ck_assert_str_eq(next_text(&x), "lobby 1");

	/* A newcomer gets #lobby's history, and #dev's when it goes there. */
	client_open(&n, sp.port, 0);
	ck_assert_str_eq(next_text(&n), "lobby 1");
	client_say(&n, "/join dev\n");
	ck_assert_str_eq(next_text(&n), "dev 1");
	ck_assert_str_eq(next_text(&n), "dev 2");
	client_close(&a);
	client_close(&w);
	client_close(&b);
	client_close(&x);
	client_close(&n);
	server_stop_ok(&sp);
}
END_TEST

START_TEST(test_bad_names_and_the_room_limit_are_refused)
{
	struct server_proc sp;
	struct client a, b;

	server_start(&sp, "--max-rooms", "2", NULL);
	client_open(&a, sp.port, 0);
	client_open(&b, sp.port, 0);
	say_expect(&a, "/join\n", "* usage: /join NAME (you are in #lobby)");
	say_expect(&a, "/join no!way\n",
	           "* invalid room name 'no!way': 1 to 32 letters, digits, - or _");
	say_expect(&a, "/join two words\n", "* invalid room name 'two words'");
	say_expect(&a, "/join abcdefghijabcdefghijabcdefghijabc\n", "* invalid room name");
	say_expect(&a, "/join one\n", "you are now in #one");
	say_expect(&b, "/join two\n",
	           "* cannot make #two: there are 2 rooms already (the server's --max-rooms)");
	say_expect(&b, "/join one\n", "you are now in #one (2 here)");
	client_close(&a);
	client_close(&b);
	server_stop_ok(&sp);
}
END_TEST

/*
 * A quiet join (an address past its join budget: accept.h) leaves #lobby
 * as quietly as it came: #lobby hears "left for" of exactly those it heard
 * join.  Ten thousand clients of one address going to their rooms cost
 * #lobby a notice each for each before (registering 5,000 took 4.8 s).
 */
START_TEST(test_lobby_hears_of_departures_only_for_joins_it_heard)
{
	enum { N = 14 };
	struct server_proc sp;
	struct client w, c[N];
	char line[512];
	int joined = 0, left = 0;

	server_start(&sp, NULL);
	client_open(&w, sp.port, 0);
	for (int i = 0; i < N; i++)
		client_open(&c[i], sp.port, 0);
	for (int i = 0; i < N; i++)
		say_expect(&c[i], "/join away\n", "you are now in #away");
	/* Every notice of those moves was queued to w before its mover's
	 * reply; so they all come before the answer to w's /who. */
	client_say(&w, "/who\n");
	for (;;) {
		ck_assert_int_eq(client_line(&w, line, sizeof(line), WAIT_MS), 1);
		if (strncmp(line, "* 1 in #lobby: ", 15) == 0)
			break; /* the answer to /who */
		if (strstr(line, " joined (") != NULL)
			joined++;
		if (strstr(line, " left for #away") != NULL)
			left++;
	}
	ck_assert_int_eq(left, joined);
	for (int i = 0; i < N; i++)
		client_close(&c[i]);
	client_close(&w);
	server_stop_ok(&sp);
}
END_TEST

/* Rooms by the dozen come and go: the table grows, and shrinks back to
 * #lobby (a growth that lost count of its capacity once overran it). */
START_TEST(test_many_rooms_come_and_go)
{
	enum { N = 60 };
	struct server_proc sp;
	struct client c[N], w;
	char cmd[64], want[64];

	server_start(&sp, NULL);
	for (int i = 0; i < N; i++) {
		client_open(&c[i], sp.port, 0);
		snprintf(cmd, sizeof(cmd), "/join room%d\n", i);
		snprintf(want, sizeof(want), "you are now in #room%d (1 here)", i);
		say_expect(&c[i], cmd, want);
	}
	client_open(&w, sp.port, 0);
	snprintf(want, sizeof(want), "* %d rooms:", N + 1);
	say_expect(&w, "/rooms\n", want);
	ck_assert(client_wait_for(&w, "* #room59 (1 here)", WAIT_MS));
	for (int i = 0; i < N; i++)
		say_expect(&c[i], "/join lobby\n", "you are now in #lobby");
	say_expect(&w, "/rooms\n", "* 1 room:");
	for (int i = 0; i < N; i++)
		client_close(&c[i]);
	client_close(&w);
	server_stop_ok(&sp);
}
END_TEST

/*
 * Movers go round five rooms while a sender numbers its lines in #r0.
 * Between two moves out of #r0, a mover must see a run of the sender's
 * numbers with no gap (it was in #r0 for all of them), and over the whole
 * test no number twice or out of order; the listener, who stays, sees
 * every line once.
 */
START_TEST(test_a_storm_of_moves_loses_and_repeats_nothing)
{
	enum { MOVERS = 8, LINES = 400, ROUNDS = 12 };
	struct server_proc sp;
	struct client snd, listener, mv[MOVERS];
	char line[8192], cmd[32];
	int last[MOVERS], run_start[MOVERS];

	server_start(&sp, "--flood-rate", "0", NULL);
	client_open(&snd, sp.port, 0);
	client_open(&listener, sp.port, 0);
	say_expect(&snd, "/join r0\n", "you are now in #r0");
	say_expect(&listener, "/join r0\n", "you are now in #r0");
	for (int i = 0; i < MOVERS; i++) {
		client_open(&mv[i], sp.port, 0);
		last[i] = -1;
		run_start[i] = 1; /* no run under way */
	}
	/* Moves go in first, all at once; then the lines, while they are
	 * being carried out. */
	for (int r = 0; r < ROUNDS; r++)
		for (int i = 0; i < MOVERS; i++) {
			snprintf(cmd, sizeof(cmd), "/join r%d\n", (r + i) % 5);
			client_say(&mv[i], cmd);
		}
	for (int k = 0; k < LINES; k++) {
		snprintf(line, sizeof(line), "n %d\n", k);
		client_say(&snd, line);
	}
	for (int k = 0; k < LINES; k++) {
		char want[32];

		snprintf(want, sizeof(want), "n %d", k);
		ck_assert_str_eq(next_text(&listener), want);
	}
	/* Each mover: read until its last reply; check as it comes. */
	for (int i = 0; i < MOVERS; i++) {
		int replies = 0;

		while (replies < ROUNDS) {
			const char *t;

			ck_assert_msg(client_line(&mv[i], line, sizeof(line), WAIT_MS) == 1,
			              "mover %d: %d replies", i, replies);
			if (strncmp(line, "* you are now in #", 18) == 0 ||
			    strncmp(line, "* you are already in #", 22) == 0) {
				replies++;
				/* Out of #r0: the run it saw there ends. */
				if (strncmp(line + 18, "r0 ", 3) != 0)
					run_start[i] = 1;
				continue;
			}
			if ((t = chat_text(line)) == NULL || strncmp(t, "n ", 2) != 0)
				continue;
			{
				int k = atoi(t + 2);

				ck_assert_msg(k > last[i], "mover %d: %d after %d (a repeat)", i, k,
				              last[i]);
				if (!run_start[i])
					ck_assert_msg(
					        k == last[i] + 1,
					        "mover %d: %d after %d within one stay (a loss)", i,
					        k, last[i]);
				run_start[i] = 0;
				last[i] = k;
			}
		}
	}
	client_close(&snd);
	client_close(&listener);
	for (int i = 0; i < MOVERS; i++)
		client_close(&mv[i]);
	server_stop_ok(&sp);
}
END_TEST

static Suite *
rooms_suite(void)
{
	Suite *s = suite_create("rooms");
	TCase *tc = tcase_create("rooms");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_everyone_starts_in_the_lobby_which_looks_as_before);
	tcase_add_test(tc, test_join_moves_a_client_and_each_room_hears_only_its_own);
	tcase_add_test(tc, test_topics_rooms_and_who);
	tcase_add_test(tc, test_history_is_per_room);
	tcase_add_test(tc, test_bad_names_and_the_room_limit_are_refused);
	tcase_add_test(tc, test_a_storm_of_moves_loses_and_repeats_nothing);
	tcase_add_test(tc, test_many_rooms_come_and_go);
	tcase_add_test(tc, test_lobby_hears_of_departures_only_for_joins_it_heard);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(rooms_suite());
}
