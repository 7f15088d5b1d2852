/*
 * The cluster, end to end: a real redis-server on a free loopback port,
 * started and stopped by each test, and two or three real chat-servers
 * linked through it.  Faults are real too: CLIENT KILL, SIGKILL and
 * restart of Redis (with and without persistence), SIGSTOP of Redis (a
 * link that is up but answers nothing), SIGKILL of a chat-server.
 *
 * Skipped (exit 77, with the reason) when redis-server is not installed or
 * the build has no hiredis; CI installs both and fails on a skip.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "config.h"

#include "chat_test.h"
#include "check_run.h"
#include "tls_cert.h"

/* Short, so that faults are seen quickly; the defaults are 10 and 15 s. */
#define REDIS_TIMEOUT "2"
#define NODE_TIMEOUT "3"

struct redis_proc {
	pid_t pid;
	int port;
	char dir[64]; /* its working directory: the AOF lives there */
};

static int
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* One inline command to Redis; its first reply line into out.  False if
 * Redis cannot be reached. */
static bool
redis_cmd(const struct redis_proc *rp, const char *cmd, char *out, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)rp->port) };
	struct client c = { .fd = -1 };
	char line[512];
	bool ok;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		client_close(&c);
		return false;
	}
	client_say(&c, cmd);
	client_say(&c, "\r\n");
	ok = client_line(&c, line, sizeof(line), 5000) == 1;
	if (out != NULL)
		snprintf(out, cap, "%.*s", (int)(cap > 0 ? cap - 1 : 0), ok ? line : "");
	client_close(&c);
	return ok;
}

/* Start redis-server on rp->port (a new free one if 0), in rp->dir, with
 * up to two more "--option value" pairs (NULL: none). */
static void
redis_start_with(struct redis_proc *rp, bool aof, const char *o1, const char *v1, const char *o2,
                 const char *v2)
{
	char port[16], pong[64];
	long end;

	if (rp->port == 0)
		rp->port = free_port();
	if (rp->dir[0] == '\0') {
		snprintf(rp->dir, sizeof(rp->dir), "/tmp/chat-redis-XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(rp->dir));
	}
	snprintf(port, sizeof(port), "%d", rp->port);
	rp->pid = fork();
	ck_assert_int_ge(rp->pid, 0);
	if (rp->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, STDOUT_FILENO);
		if (chdir(rp->dir) != 0)
			_exit(127);
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", aof ? "yes" : "no", "--appendfsync", "always",
		       "--dir", rp->dir, "--protected-mode", "no", o1, v1, o2, v2, (char *)NULL);
		_exit(127);
	}
	end = ms_now() + WAIT_MS;
	while (ms_now() < end) {
		/* With a password, PING answers NOAUTH: up all the same. */
		if (redis_cmd(rp, "PING", pong, sizeof(pong)) &&
		    (strcmp(pong, "+PONG") == 0 || strncmp(pong, "-NOAUTH", 7) == 0))
			return;
		pause_ms(20);
	}
	ck_abort_msg("redis-server did not start on port %d", rp->port);
}

static void
redis_start(struct redis_proc *rp, bool aof)
{
	redis_start_with(rp, aof, NULL, NULL, NULL, NULL);
}

static void
redis_kill(struct redis_proc *rp, int sig)
{
	int status;

	if (rp->pid <= 0)
		return;
	kill(rp->pid, sig);
	waitpid(rp->pid, &status, 0);
	rp->pid = 0;
}

static void
redis_remove(struct redis_proc *rp)
{
	char cmd[128];

	redis_kill(rp, SIGKILL);
	if (rp->dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rp->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", rp->dir);
	}
}

static void
url_of(const struct redis_proc *rp, char *out, size_t cap)
{
	snprintf(out, cap, "redis://127.0.0.1:%d", rp->port);
}

/* A chat-server of the cluster, linked before it returns. */
static void
node_start(struct server_proc *sp, const struct redis_proc *rp, const char *node,
           const char *extra1, const char *extra2)
{
	char url[64];

	url_of(rp, url, sizeof(url));
	server_start(sp, "--redis", url, "--node", node, "--redis-timeout", REDIS_TIMEOUT,
	             "--node-timeout", NODE_TIMEOUT, "--flood-rate", "0", "--log-level", "info",
	             extra1, extra2, NULL);
	ck_assert_msg(server_log_wait(sp, "cluster: linked", WAIT_MS), "%s never linked: %s", node,
	              server_log(sp));
}

/* A client of sp, past its own join (which it never hears of). */
static void
join(struct client *c, const struct server_proc *sp)
{
	client_open(c, sp->port, 0);
}

/* A client that takes a nick and sees it granted. */
static void
join_as(struct client *c, const struct server_proc *sp, const char *nick)
{
	char cmd[64], want[64];

	join(c, sp);
	snprintf(cmd, sizeof(cmd), "/nick %s\n", nick);
	snprintf(want, sizeof(want), "you are now %s", nick);
	client_say(c, cmd);
	ck_assert_msg(client_wait_for(c, want, WAIT_MS), "no nick %s", nick);
}

/* The next chat line's text, or "" on timeout. */
static const char *
next_text(struct client *c, long ms)
{
	static char line[8192];
	const char *t;

	if (client_chat_line(c, line, sizeof(line), ms) != 1)
		return "";
	t = chat_text(line);
	return t != NULL ? t : "";
}

/* A tag's lines as a client has seen them so far: next is the number it
 * must see next (its lines come in order, each once); want is how far it
 * must get in the current expect_tallies(). */
struct tally {
	const char *tag;
	int next, want;
};

/*
 * Read until every tally reaches its want and (if notice is not NULL) a
 * server notice containing notice has come; the lines of all the tags
 * are checked as they come, whatever their interleaving.
 */
static void
expect_tallies(struct client *c, struct tally *t, size_t n, const char *notice)
{
	char line[8192];
	bool seen = notice == NULL;

	for (;;) {
		bool done = seen;
		const char *text;

		for (size_t i = 0; i < n; i++)
			done = done && t[i].next >= t[i].want;
		if (done)
			return;
		ck_assert_msg(client_line(c, line, sizeof(line), WAIT_MS) == 1,
		              "timed out: notice '%s' %s; %s at %d of %d", notice ? notice : "",
		              seen ? "seen" : "not seen", t[0].tag, t[0].next, t[0].want);
		if (line[0] == '*') {
			if (notice != NULL && strstr(line, notice) != NULL)
				seen = true;
			continue;
		}
		if ((text = chat_text(line)) == NULL)
			continue;
		for (size_t i = 0; i < n; i++) {
			size_t tl = strlen(t[i].tag);

			if (strncmp(text, t[i].tag, tl) == 0 && text[tl] == ' ') {
				int k = atoi(text + tl + 1);

				ck_assert_msg(k == t[i].next, "%s: got %d, wanted %d (a loss, a "
				              "repeat or a reordering)", t[i].tag, k, t[i].next);
				t[i].next++;
			}
		}
	}
}

/* Read n chat lines with texts "<tag> <i>" for i in [from, from+n), each
 * exactly once and in order, ignoring notices and other senders' lines. */
static void
expect_run(struct client *c, const char *tag, int from, int n)
{
	struct tally t = { tag, from, from + n };

	expect_tallies(c, &t, 1, NULL);
}

static void
say_run(struct client *c, const char *tag, int from, int n)
{
	char line[64];

	for (int i = from; i < from + n; i++) {
		snprintf(line, sizeof(line), "%s %d\n", tag, i);
		client_say(c, line);
	}
}

/* Nothing more from this tag for ms: no repeat came late. */
static void
expect_no_more(struct client *c, const char *tag, long ms)
{
	long end = ms_now() + ms;
	char line[8192];

	while (ms_now() < end) {
		const char *t;

		if (client_line(c, line, sizeof(line), end - ms_now()) != 1)
			return;
		if ((t = chat_text(line)) != NULL)
			ck_assert_msg(strncmp(t, tag, strlen(tag)) != 0, "a repeat: %s", line);
	}
}

/* Count the lines containing needle that arrive within ms. */
static int
count_lines(struct client *c, const char *needle, long ms)
{
	long end = ms_now() + ms;
	char line[8192];
	int n = 0;

	while (ms_now() < end && client_line(c, line, sizeof(line), end - ms_now()) == 1)
		if (strstr(line, needle) != NULL)
			n++;
	return n;
}

/* /who until its answer lists needle (present) or not; other servers'
 * names are refreshed each second. */
static bool
who_lists(struct client *c, const char *needle, bool present, long ms)
{
	long end = ms_now() + ms;
	char line[8192];

	while (ms_now() < end) {
		client_say(c, "/who\n");
		while (client_line(c, line, sizeof(line), 2000) == 1)
			if (strncmp(line, "* ", 2) == 0 && strstr(line, " online: ") != NULL)
				break;
		if ((strstr(line, needle) != NULL) == present)
			return true;
		pause_ms(200);
	}
	return false;
}

/* --- the room across servers --------------------------------------------------------- */

START_TEST(test_two_servers_are_one_room)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client ca, cb;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&ca, &a);
	join(&cb, &b);
	ck_assert_msg(client_wait_for(&ca, "joined", WAIT_MS), "a join on B is heard on A");

	client_say(&ca, "hello from A\n");
	ck_assert_str_eq(next_text(&cb, WAIT_MS), "hello from A");
	client_say(&cb, "hello from B\n");
	ck_assert_str_eq(next_text(&ca, WAIT_MS), "hello from B");
	client_say(&ca, "/me waves\n");
	ck_assert_int_eq(strncmp(next_text(&cb, WAIT_MS), "* 127.0.0.1:", 12), 0);
	/* Nicks, cluster-wide: a's rename is heard on B, /msg finds it. */
	client_say(&ca, "/nick alice\n");
	ck_assert(client_wait_for(&ca, "you are now alice", WAIT_MS));
	ck_assert(client_wait_for(&cb, "is now alice", WAIT_MS));
	client_say(&cb, "/msg alice a secret\n");
	ck_assert(client_wait_for(&cb, "sent to alice", WAIT_MS));
	ck_assert(client_wait_for(&ca, "(private) | ", WAIT_MS));
	client_say(&cb, "/msg nobody hello?\n");
	ck_assert(client_wait_for(&cb, "no such nick: nobody", WAIT_MS));
	client_say(&cb, "/nick alice\n");
	ck_assert(client_wait_for(&cb, "nick alice is taken", WAIT_MS));

	/* /who on B lists alice on A. */
	ck_assert_msg(who_lists(&cb, "alice@127.0.0.1", true, WAIT_MS), "/who misses alice");

	client_say(&ca, "/quit bye\n");
	ck_assert(client_wait_for(&cb, "alice@127.0.0.1", WAIT_MS));
	ck_assert_msg(who_lists(&cb, "alice@", false, WAIT_MS), "alice stays in /who");
	client_close(&ca);
	client_close(&cb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* A first line /nick NAME on one server is the join the others hear:
 * one notice under the nick, the lines sent right behind it held for the
 * cluster's answer and relayed under the nick; a first nick the cluster
 * refuses joins under the address. */
START_TEST(test_a_first_line_nick_joins_under_it_across_servers)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client ca, cb, cc;
	char line[512];

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&ca, &a);
	client_skip_greeting(&ca);
	join(&cb, &b);
	client_say(&cb, "/nick alice\nright behind\n");
	ck_assert_int_eq(client_line(&ca, line, sizeof(line), WAIT_MS), 1);
	ck_assert_msg(strncmp(line, "* alice (127.0.0.1:", 19) == 0 && strstr(line, " joined (") != NULL,
	              "got: %s", line);
	ck_assert_int_eq(client_line(&ca, line, sizeof(line), WAIT_MS), 1);
	ck_assert_msg(strncmp(line, "alice@127.0.0.1:", 16) == 0, "got: %s", line);
	ck_assert_str_eq(chat_text(line), "right behind");

	join(&cc, &a);
	client_say(&cc, "/nick ALICE\n");
	ck_assert(client_wait_for(&cc, "nick ALICE is taken", WAIT_MS));
	ck_assert(client_wait_for(&ca, "joined", WAIT_MS));
	client_close(&ca);
	client_close(&cb);
	client_close(&cc);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* --- rooms across servers ------------------------------------------------------------ */

/* Send line, then read c's answers until one contains needle; retried
 * (other servers' members and counts are refreshed each second). */
static bool
ask_until(struct client *c, const char *line, const char *needle, long ms)
{
	long end = ms_now() + ms;

	while (ms_now() < end) {
		client_say(c, line);
		if (client_wait_for(c, needle, 700))
			return true;
	}
	return false;
}

/*
 * Rooms are the cluster's: a line of #dev reaches #dev's members on every
 * server and nobody in #lobby; the topic, /rooms and /who of a room are
 * the cluster's; /msg reaches a nick in any room; a server that dies
 * takes its members out of their rooms, told in those rooms only.
 */
START_TEST(test_rooms_span_the_cluster)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client alice, lobby_a, bob, lobby_b;
	char line[8192];

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join_as(&alice, &a, "alice");
	join(&lobby_a, &a);
	join_as(&bob, &b, "bob");
	join(&lobby_b, &b);

	client_say(&alice, "/join dev\n");
	ck_assert(client_wait_for(&alice, "you are now in #dev", WAIT_MS));
	/* A's first member there: A starts to read #dev a round trip to
	 * Redis later (docs/cluster.md, "Rooms"). */
	pause_ms(300);
	client_say(&bob, "/join #Dev\n");
	ck_assert(client_wait_for(&bob, "you are now in #Dev", WAIT_MS));
	ck_assert_msg(client_wait_for(&alice, "bob@127.0.0.1", WAIT_MS), "bob's join not heard on A");

	/* A line of #dev, then one of #lobby: each reaches its own room only. */
	client_say(&alice, "dev 1\n");
	ck_assert_str_eq(next_text(&bob, WAIT_MS), "dev 1");
	client_say(&lobby_a, "lobby 1\n");
	ck_assert_str_eq(next_text(&lobby_b, WAIT_MS), "lobby 1");
	client_say(&bob, "dev 2\n");
	ck_assert_str_eq(next_text(&alice, WAIT_MS), "dev 2");
	client_say(&lobby_b, "lobby 2\n");
	ck_assert_str_eq(next_text(&lobby_a, WAIT_MS), "lobby 2");

	/* The topic: set on A, announced on B, shown by /topic and /rooms
	 * there, with the cluster's member counts. */
	client_say(&alice, "/topic deploys at five\n");
	ck_assert_msg(client_wait_for(&bob, "set the topic of #dev: deploys at five", WAIT_MS),
	              "no topic notice on B: %s", server_log(&b));
	client_say(&bob, "/topic\n");
	ck_assert(client_wait_for(&bob, "topic of #Dev: deploys at five", WAIT_MS));
	ck_assert_msg(ask_until(&lobby_b, "/rooms\n", "(2 here): deploys at five", WAIT_MS),
	              "/rooms on B misses #dev's members or topic");
	/* /who of the room, on B, lists alice on A and not the lobby. */
	ck_assert_msg(ask_until(&bob, "/who\n", "2 in #Dev: ", WAIT_MS), "/who in #dev");
	client_say(&bob, "/who\n");
	while (client_line(&bob, line, sizeof(line), WAIT_MS) == 1 && strstr(line, " in #") == NULL)
		;
	ck_assert_msg(strstr(line, "alice@127.0.0.1") && strstr(line, "bob@127.0.0.1"), "%s", line);
	/* /who * is everyone, in every room. */
	ck_assert_msg(ask_until(&lobby_b, "/who *\n", "4 online: ", WAIT_MS), "/who *");
	/* /msg from #lobby on B to alice in #dev on A. */
	client_say(&lobby_b, "/msg alice psst\n");
	ck_assert(client_wait_for(&lobby_b, "sent to alice", WAIT_MS));
	ck_assert(client_wait_for(&lobby_b, "| psst", WAIT_MS)); /* its echo, after the receipt */
	ck_assert(client_wait_for(&alice, "| psst", WAIT_MS));

	/* Back to #lobby: #dev hears the departure, #lobby the arrival. */
	client_say(&bob, "/join lobby\n");
	ck_assert(client_wait_for(&alice, "bob@127.0.0.1:", WAIT_MS));
	ck_assert(client_wait_for(&lobby_a, "joined #lobby", WAIT_MS));
	client_say(&alice, "dev 3\n");
	client_say(&lobby_a, "lobby 3\n");
	ck_assert_str_eq(next_text(&bob, WAIT_MS), "lobby 3");
	client_say(&bob, "/join dev\n");
	ck_assert(client_wait_for(&alice, "joined #dev", WAIT_MS));
	ck_assert(client_wait_for(&lobby_a, "left for #dev", WAIT_MS));

	/* B dies with bob in #dev: alice hears it, A's #lobby does not. */
	kill(b.pid, SIGKILL);
	server_wait(&b, WAIT_MS);
	ck_assert_msg(client_wait_for(&alice, "bob@127.0.0.1", 30000), "no departure in #dev");
	ck_assert_int_eq(count_lines(&lobby_a, "bob@", 1500), 0);
	client_close(&alice);
	client_close(&lobby_a);
	client_close(&bob);
	client_close(&lobby_b);
	server_stop_ok(&a);
	redis_remove(&rp);
}
END_TEST

/*
 * MONITOR for ms: how many XREADs node's reader sent, and how many of them
 * named the stream of #dev.
 */
static void
monitor_reads(const struct redis_proc *rp, const char *node, long ms, int *reads, int *dev)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)rp->port) };
	struct client m = { .fd = -1 };
	char line[8192], inbox[64];
	long end = ms_now() + ms;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	m.fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(m.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	client_say(&m, "MONITOR\r\n");
	snprintf(inbox, sizeof(inbox), "\"chat:inbox:%s\"", node);
	*reads = *dev = 0;
	while (ms_now() < end && client_line(&m, line, sizeof(line), end - ms_now()) == 1) {
		if (strstr(line, "\"XREAD\"") == NULL || strstr(line, inbox) == NULL)
			continue;
		(*reads)++;
		if (strstr(line, "\"chat:room:dev\"") != NULL)
			(*dev)++;
	}
	client_close(&m);
}

/* Read n lines of the senders of one room at a and b (one listener on
 * each server): the same order at both, each sender's in the order sent,
 * none of another room's. */
static void
expect_one_order(struct client *la, struct client *lb, const int *senders, int nsenders,
                 int lines)
{
	static char seen[2][512][32];
	int next[8] = { 0 };
	struct client *l[2] = { la, lb };

	ck_assert_int_le(nsenders * lines, 512);
	for (int side = 0; side < 2; side++) {
		memset(next, 0, sizeof(next));
		for (int n = 0; n < nsenders * lines; n++) {
			const char *t = next_text(l[side], WAIT_MS);
			int who, k, j;

			ck_assert_msg(sscanf(t, "s%d %d", &who, &k) == 2, "line %d missing ('%s')", n,
			              t);
			for (j = 0; j < nsenders && senders[j] != who; j++)
				;
			ck_assert_msg(j < nsenders, "s%d's line in another room: '%s'", who, t);
			ck_assert_msg(k == next[who]++, "s%d sent %d before %d", who, next[who] - 1,
			              k);
			snprintf(seen[side][n], sizeof(seen[side][n]), "%s", t);
			if (side == 1)
				ck_assert_msg(strcmp(seen[0][n], seen[1][n]) == 0,
				              "line %d: A saw '%s', B saw '%s'", n, seen[0][n],
				              seen[1][n]);
		}
	}
}

/* Two rooms, each with senders on both servers: each room has one order,
 * the same on every server, and hears none of the other's lines. */
START_TEST(test_every_server_sees_one_order_in_each_room)
{
	enum { LINES = 100 };
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client s[4], ra, rb, ba, bb;
	const int red[] = { 0, 1 }, blue[] = { 2, 3 };
	struct client *all[] = { &s[0], &s[1], &ra, &rb, &s[2], &s[3], &ba, &bb };

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&s[0], &a);
	join(&s[1], &b);
	join(&ra, &a);
	join(&rb, &b);
	join(&s[2], &a);
	join(&s[3], &b);
	join(&ba, &a);
	join(&bb, &b);
	for (int i = 0; i < 8; i++) {
		client_say(all[i], i < 4 ? "/join red\n" : "/join blue\n");
		ck_assert(client_wait_for(all[i], i < 4 ? "you are now in #red" : "you are now in #blue",
		                          WAIT_MS));
	}
	pause_ms(300); /* both servers read both rooms */
	for (int k = 0; k < LINES; k++)
		for (int i = 0; i < 4; i++) {
			char line[32];

			snprintf(line, sizeof(line), "s%d %d\n", i, k);
			client_say(&s[i], line);
		}
	expect_one_order(&ra, &rb, red, 2, LINES);
	expect_one_order(&ba, &bb, blue, 2, LINES);
	expect_no_more(&ra, "s", 500);
	expect_no_more(&bb, "s", 100);
	for (int i = 0; i < 8; i++)
		client_close(all[i]);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* One stream per room, read only by the servers that have members there:
 * a line of #dev costs a server without #dev members nothing. */
START_TEST(test_a_room_is_read_only_where_it_has_members)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client da, db, lb;
	int reads, dev;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&da, &a);
	join(&db, &b);
	join(&lb, &b);
	client_say(&da, "/join dev\n");
	ck_assert(client_wait_for(&da, "you are now in #dev", WAIT_MS));
	client_say(&db, "/join dev\n");
	ck_assert(client_wait_for(&db, "you are now in #dev", WAIT_MS));
	pause_ms(300);
	/* With a member in #dev, B reads its stream (on its wakes, and in
	 * its sweep of every room it reads, each second)... */
	client_say(&da, "d\n");
	monitor_reads(&rp, "B", 2500, &reads, &dev);
	ck_assert_msg(reads > 0 && dev > 0, "B read #dev in %d of %d XREADs", dev, reads);
	/* ...and without, it does not, however busy #dev is. */
	client_say(&db, "/join lobby\n");
	ck_assert(client_wait_for(&db, "you are now in #lobby", WAIT_MS));
	pause_ms(300);
	say_run(&da, "d", 0, 20);
	client_say(&lb, "ping\n");
	monitor_reads(&rp, "B", 2500, &reads, &dev);
	ck_assert_msg(reads > 0 && dev == 0, "B read #dev in %d of %d XREADs", dev, reads);
	monitor_reads(&rp, "A", 1500, &reads, &dev);
	ck_assert_msg(reads > 0 && dev > 0, "A read #dev in %d of %d XREADs", dev, reads);
	/* Back in #dev, B reads it again, from then on. */
	client_say(&db, "/join dev\n");
	ck_assert(client_wait_for(&db, "you are now in #dev", WAIT_MS));
	pause_ms(300);
	client_say(&da, "again\n");
	ck_assert_str_eq(next_text(&db, WAIT_MS), "again");
	client_close(&da);
	client_close(&db);
	client_close(&lb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* A link that drops again and again while two rooms chat on two servers:
 * each room's lines reach its members once, in order, and no other room. */
START_TEST(test_client_kill_in_rooms_loses_and_repeats_nothing)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client sa, sb, ra, rb, xa, xb;
	char reply[128];

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&sa, &a);
	join(&ra, &a);
	join(&xa, &a);
	join(&sb, &b);
	join(&rb, &b);
	join(&xb, &b);
	/* sa, rb in #red; sb, ra in #blue; xa, xb in #lobby. */
	client_say(&sa, "/join red\n");
	client_say(&rb, "/join red\n");
	client_say(&sb, "/join blue\n");
	client_say(&ra, "/join blue\n");
	ck_assert(client_wait_for(&sa, "you are now in #red", WAIT_MS));
	ck_assert(client_wait_for(&rb, "you are now in #red", WAIT_MS));
	ck_assert(client_wait_for(&sb, "you are now in #blue", WAIT_MS));
	ck_assert(client_wait_for(&ra, "you are now in #blue", WAIT_MS));
	pause_ms(300);
	for (int round = 0; round < 6; round++) {
		say_run(&sa, "red", round * 50, 50);
		say_run(&sb, "blue", round * 50, 50);
		ck_assert(redis_cmd(&rp, "CLIENT KILL TYPE normal", reply, sizeof(reply)));
		pause_ms(50);
	}
	client_say(&xa, "lobby end\n");
	expect_run(&rb, "red", 0, 300);
	expect_run(&ra, "blue", 0, 300);
	expect_no_more(&rb, "red", 1500);
	expect_no_more(&ra, "blue", 100);
	/* #lobby heard none of it. */
	ck_assert_str_eq(next_text(&xb, WAIT_MS), "lobby end");
	ck_assert_int_eq(count_lines(&xb, " | red ", 200) + count_lines(&xb, " | blue ", 100), 0);
	client_close(&sa);
	client_close(&sb);
	client_close(&ra);
	client_close(&rb);
	client_close(&xa);
	client_close(&xb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

#ifdef HAVE_OPENSSL
/* `openssl s_client -quiet` on port: a TLS client whose lines are its
 * standard input (*in) and output (out), as chat-server's docs say. */
static pid_t
s_client_start(int port, int *in, struct client *out)
{
	char target[64];
	int pin[2], pout[2];
	pid_t pid;

	snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	ck_assert_int_eq(pipe(pin), 0);
	ck_assert_int_eq(pipe(pout), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pin[0], STDIN_FILENO);
		dup2(pout[1], STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(pin[1]);
		close(pout[0]);
		execlp("openssl", "openssl", "s_client", "-quiet", "-connect", target,
		       (char *)NULL);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	*in = pin[1];
	out->fd = pout[0];
	out->tls = NULL;
	out->start = out->len = 0;
	return pid;
}

/* A TLS client of one server and a plain client of another: one room. */
START_TEST(test_tls_and_plain_clients_of_two_servers_are_one_room)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client tout, cb;
	char dir[64], cert[128], key[128], url[64];
	static const char hello[] = "over TLS on B\n";
	int tin, status;
	pid_t tpid;

	cert_dir(dir, sizeof(dir));
	cert_make(dir, "s", "localhost", false);
	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	url_of(&rp, url, sizeof(url));
	server_start(&b, "--redis", url, "--node", "B", "--flood-rate", "0", "--tls-port", "0",
	             "--tls-cert", cert_path(cert, sizeof(cert), dir, "s", "pem"), "--tls-key",
	             cert_path(key, sizeof(key), dir, "s", "key"), NULL);
	ck_assert(server_log_wait(&b, "cluster: linked", WAIT_MS));
	join(&cb, &a);
	tpid = s_client_start(server_tls_port(&b), &tin, &tout);
	ck_assert_msg(client_wait_for(&cb, "joined", WAIT_MS), "the TLS join on B is heard on A");

	ck_assert(write(tin, hello, sizeof(hello) - 1) == (ssize_t)sizeof(hello) - 1);
	ck_assert_str_eq(next_text(&cb, WAIT_MS), "over TLS on B");
	client_say(&cb, "plain on A\n");
	ck_assert_str_eq(next_text(&tout, WAIT_MS), "plain on A");

	close(tin); /* s_client -quiet stays until the server closes */
	kill(tpid, SIGTERM);
	waitpid(tpid, &status, 0);
	close(tout.fd);
	client_close(&cb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
	cert_dir_remove(dir);
}
END_TEST
#endif

/*
 * Four senders on two servers, all at once; a listener on each server.
 * Both listeners see the same lines in the same order, and each sender's
 * lines in its own order, each once.
 */
START_TEST(test_every_server_sees_one_order)
{
	enum { SENDERS = 4, LINES = 100 };
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client s[SENDERS], la, lb;
	static char seen_a[SENDERS * LINES][32], seen_b[SENDERS * LINES][32];
	int next[SENDERS] = { 0 };

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&la, &a);
	join(&lb, &b);
	for (int i = 0; i < SENDERS; i++)
		join(&s[i], i % 2 ? &b : &a);
	pause_ms(300); /* joins announced */
	for (int k = 0; k < LINES; k++)
		for (int i = 0; i < SENDERS; i++) {
			char line[32];

			snprintf(line, sizeof(line), "s%d %d\n", i, k);
			client_say(&s[i], line);
		}
	for (int n = 0; n < SENDERS * LINES; n++) {
		const char *t = next_text(&la, WAIT_MS);
		int who, k;

		ck_assert_msg(sscanf(t, "s%d %d", &who, &k) == 2, "A: line %d missing ('%s')", n, t);
		ck_assert_msg(k == next[who]++, "A: s%d sent %d before %d", who, next[who] - 1, k);
		snprintf(seen_a[n], sizeof(seen_a[n]), "%s", t);
	}
	for (int n = 0; n < SENDERS * LINES; n++) {
		const char *t = next_text(&lb, WAIT_MS);

		snprintf(seen_b[n], sizeof(seen_b[n]), "%s", t);
		ck_assert_msg(strcmp(seen_a[n], seen_b[n]) == 0,
		              "line %d: A saw '%s', B saw '%s'", n, seen_a[n], seen_b[n]);
	}
	expect_no_more(&la, "s", 500);
	for (int i = 0; i < SENDERS; i++)
		client_close(&s[i]);
	client_close(&la);
	client_close(&lb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* Two clients on two servers ask for one nick at the same moment: one. */
START_TEST(test_one_nick_one_owner_across_servers)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client ca, cb;
	int won_a = 0, won_b = 0;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&ca, &a);
	join(&cb, &b);
	for (int round = 0; round < 10; round++) {
		char cmd[32], yes[48], no[48];
		int ga, gb;

		snprintf(cmd, sizeof(cmd), "/nick racer%d\n", round);
		snprintf(yes, sizeof(yes), "you are now racer%d", round);
		snprintf(no, sizeof(no), "nick racer%d is taken", round);
		client_say(&ca, cmd);
		client_say(&cb, cmd);
		ga = 0;
		gb = 0;
		for (;;) {
			char line[512];

			ck_assert_int_eq(client_line(&ca, line, sizeof(line), WAIT_MS), 1);
			if (strstr(line, yes) != NULL) {
				ga = 1;
				break;
			}
			if (strstr(line, no) != NULL)
				break;
		}
		for (;;) {
			char line[512];

			ck_assert_int_eq(client_line(&cb, line, sizeof(line), WAIT_MS), 1);
			if (strstr(line, yes) != NULL) {
				gb = 1;
				break;
			}
			if (strstr(line, no) != NULL)
				break;
		}
		ck_assert_msg(ga + gb == 1, "round %d: %d owners", round, ga + gb);
		won_a += ga;
		won_b += gb;
	}
	ck_assert_int_eq(won_a + won_b, 10);
	client_close(&ca);
	client_close(&cb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* A client that asks for a nick and leaves before the answer does not
 * keep it: the nick is free for someone else on another server. */
START_TEST(test_a_nick_asked_by_one_who_left_is_free)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client x, y;
	long end;
	bool got = false;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&x, &a);
	client_say(&x, "/nick ghost\n");
	client_close(&x); /* before the answer can reach it */
	pause_ms(500);    /* A has asked Redis, and seen it leave */
	join(&y, &b);
	end = ms_now() + 5000;
	while (!got && ms_now() < end) {
		char line[512];

		client_say(&y, "/nick ghost\n");
		while (client_line(&y, line, sizeof(line), WAIT_MS) == 1) {
			if (strstr(line, "you are now ghost") != NULL) {
				got = true;
				break;
			}
			if (strstr(line, "is taken") != NULL)
				break;
		}
		if (!got)
			pause_ms(200);
	}
	ck_assert_msg(got, "ghost stays taken after its asker left");
	client_close(&y);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* --history replays the cluster's lines, on a server that joined later too. */
START_TEST(test_history_is_the_clusters)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client ca, late;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", "--history", "5");
	join(&ca, &a);
	say_run(&ca, "h", 0, 8);
	pause_ms(300); /* into the stream */
	node_start(&b, &rp, "B", "--history", "5");
	join(&late, &b);
	expect_run(&late, "h", 3, 5);
	/* Each room's history is its own, and the cluster's: B has nobody in
	 * #dev when late goes there, and late still gets its last lines. */
	client_say(&ca, "/join dev\n");
	ck_assert(client_wait_for(&ca, "you are now in #dev", WAIT_MS));
	say_run(&ca, "dh", 0, 7);
	pause_ms(300);
	client_say(&late, "/join dev\n");
	expect_run(&late, "dh", 2, 5);
	client_close(&ca);
	client_close(&late);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* --- faults --------------------------------------------------------------------------- */

/* Redis drops every client connection, again and again, under traffic:
 * every line arrives once, in order, here and there. */
START_TEST(test_client_kill_loses_and_repeats_nothing)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client sa, sb, la, lb;
	char reply[128];

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&la, &a);
	join(&lb, &b);
	join(&sa, &a);
	join(&sb, &b);
	pause_ms(300);
	for (int round = 0; round < 6; round++) {
		say_run(&sa, "ka", round * 50, 50);
		say_run(&sb, "kb", round * 50, 50);
		ck_assert(redis_cmd(&rp, "CLIENT KILL TYPE normal", reply, sizeof(reply)));
		pause_ms(50);
	}
	expect_run(&lb, "ka", 0, 300);
	expect_run(&la, "kb", 0, 300);
	expect_no_more(&lb, "ka", 1500);
	ck_assert_msg(strstr(server_log(&a), "link to Redis 127.0.0.1:") != NULL,
	              "CLIENT KILL never dropped A's link: %s", server_log(&a));
	client_close(&sa);
	client_close(&sb);
	client_close(&la);
	client_close(&lb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/*
 * Redis goes away for a while (killed), then comes back, empty or with
 * its AOF.  Meanwhile each server is a room of its own, says so once, and
 * keeps what its clients send; back, it says so once, delivers that to the
 * other server once, and nothing from before comes twice.
 */
static void
outage(bool aof, const char *room)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client sa, sb, la, lb;
	struct tally ta[] = { { "mid", 0, 0 }, { "bmid", 0, 0 }, { "during", 0, 0 },
		              { "bduring", 0, 0 } };
	struct tally tb[] = { { "bmid", 0, 0 }, { "mid", 0, 0 }, { "bduring", 0, 0 },
		              { "during", 0, 0 } };

	redis_start(&rp, aof);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&la, &a);
	join(&lb, &b);
	join(&sa, &a);
	join(&sb, &b);
	if (room != NULL) {
		/* Every guarantee holds in a room as in #lobby. */
		struct client *all[] = { &la, &sa, &lb, &sb };
		char cmd[64], want[64];

		snprintf(cmd, sizeof(cmd), "/join %s\n", room);
		snprintf(want, sizeof(want), "you are now in #%s", room);
		for (int i = 0; i < 4; i++) {
			client_say(all[i], cmd);
			ck_assert(client_wait_for(all[i], want, WAIT_MS));
		}
	}
	pause_ms(300);
	say_run(&sa, "before", 0, 20);
	expect_run(&lb, "before", 0, 20);
	expect_run(&la, "before", 0, 20);

	/* Mid-traffic: these are on their way (in the outbox, in flight to
	 * Redis, in the stream unread) when Redis dies. */
	say_run(&sa, "mid", 0, 200);
	say_run(&sb, "bmid", 0, 200);
	redis_kill(&rp, SIGKILL);
	/* Each server's own lines reach its clients whatever happens; the
	 * other's, as far as they got before the link went. */
	ta[0].want = 200; /* mid, from A's own client */
	tb[0].want = 200; /* bmid */
	expect_tallies(&la, ta, 4, "cluster link lost: only this server's clients hear you");
	expect_tallies(&lb, tb, 4, "cluster link lost");
	say_run(&sa, "during", 0, 30);
	say_run(&sb, "bduring", 0, 10);
	ta[2].want = 30; /* the local room works */
	tb[2].want = 10;
	expect_tallies(&la, ta, 4, NULL);
	expect_tallies(&lb, tb, 4, NULL);

	redis_start(&rp, aof); /* same port, same directory */
	/* Back: the other server's lines, each once, in order. */
	ta[1].want = 200; /* bmid */
	ta[3].want = 10;  /* bduring */
	tb[1].want = 200; /* mid */
	tb[3].want = 30;  /* during */
	expect_tallies(&la, ta, 4, "cluster link restored");
	expect_tallies(&lb, tb, 4, "cluster link restored");
	say_run(&sa, "after", 0, 5);
	expect_run(&lb, "after", 0, 5);
	/* Once each: nothing before the outage, or during it, again. */
	expect_no_more(&lb, "before", 1500); /* and no "mid" or "during" again */
	expect_no_more(&lb, "mid", 200);
	expect_no_more(&la, "bduring", 200);
	if (!aof)
		ck_assert_ptr_nonnull(strstr(server_log(&a), "lost its data"));
	if (room != NULL) {
		/* Everyone leaves the room: its stream goes from Redis (the
		 * one made again after Redis lost its data, too). */
		struct client *all[] = { &la, &sa, &lb, &sb };
		char key[64], reply[64];
		long end = ms_now() + WAIT_MS;

		for (int i = 0; i < 4; i++) {
			client_say(all[i], "/join lobby\n");
			ck_assert(client_wait_for(all[i], "you are now in #lobby", WAIT_MS));
		}
		snprintf(key, sizeof(key), "EXISTS chat:room:%s", room);
		while (ms_now() < end && redis_cmd(&rp, key, reply, sizeof(reply)) &&
		       strcmp(reply, ":0") != 0)
			pause_ms(200);
		ck_assert_msg(strcmp(reply, ":0") == 0, "the stream of #%s stays: %s", room, reply);
	}
	client_close(&sa);
	client_close(&sb);
	client_close(&la);
	client_close(&lb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}

START_TEST(test_redis_restart_without_persistence)
{
	outage(false, NULL);
}
END_TEST

START_TEST(test_redis_restart_without_persistence_in_a_room)
{
	outage(false, "ops");
}
END_TEST

START_TEST(test_redis_restart_with_aof)
{
	outage(true, NULL);
}
END_TEST

/* Redis stopped (SIGSTOP): the link is up and answers nothing.  Noticed
 * within the timeout, and nothing lost once it answers again. */
START_TEST(test_a_wedged_redis_is_noticed)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client sa, la, lb;
	long t0;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&la, &a);
	join(&lb, &b);
	join(&sa, &a);
	pause_ms(300);
	kill(rp.pid, SIGSTOP);
	t0 = ms_now();
	ck_assert_msg(client_wait_for(&la, "cluster link lost", WAIT_MS), "A's log: %s",
	              server_log(&a));
	ck_assert_msg(ms_now() - t0 < 30000, "a wedged Redis took %ld ms to notice", ms_now() - t0);
	say_run(&sa, "wedged", 0, 10);
	expect_run(&la, "wedged", 0, 10);
	kill(rp.pid, SIGCONT);
	expect_run(&lb, "wedged", 0, 10);
	expect_no_more(&lb, "wedged", 1000);
	client_close(&sa);
	client_close(&la);
	client_close(&lb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/*
 * A server killed outright: within seconds its clients leave /who
 * everywhere, and each survivor's clients hear of each departure once (one
 * notice per client, not one per survivor).  Its nick is free again.
 */
START_TEST(test_a_killed_server_leaves_once)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b, c;
	struct client x, lb, lc, y;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	node_start(&c, &rp, "C", NULL, NULL);
	join(&lb, &b);
	join(&lc, &c);
	join_as(&x, &a, "xavier");
	ck_assert(who_lists(&lb, "xavier@", true, WAIT_MS));
	kill(a.pid, SIGKILL);
	server_wait(&a, WAIT_MS);
	ck_assert_msg(client_wait_for(&lb, "xavier@127.0.0.1", 30000), "no departure on B");
	ck_assert_msg(client_wait_for(&lc, "xavier@127.0.0.1", 30000), "no departure on C");
	/* Once: several reaper rounds pass, no second notice. */
	ck_assert_int_eq(count_lines(&lb, "xavier@", 3000), 0);
	ck_assert_int_eq(count_lines(&lc, "xavier@", 100), 0);
	ck_assert(who_lists(&lb, "xavier@", false, WAIT_MS));
	join_as(&y, &c, "xavier");
	client_close(&x);
	client_close(&y);
	client_close(&lb);
	client_close(&lc);
	server_stop_ok(&b);
	server_stop_ok(&c);
	redis_remove(&rp);
}
END_TEST

/*
 * A server stopped (SIGSTOP) longer than --node-timeout, its link up all
 * along: the others take it for gone, and its client's nick goes to
 * someone else.  Resumed, it notices, joins again (its clients are
 * announced back), and its client gives the nick up: never two owners.
 */
START_TEST(test_a_server_taken_for_gone_comes_back_without_stealing_nicks)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client x, lb, y;

	redis_start(&rp, false);
	/* A's own timeout longer than its pause: its link looks healthy
	 * when it resumes, and only the heartbeat's answer tells it. */
	node_start(&a, &rp, "A", "--redis-timeout", "30");
	node_start(&b, &rp, "B", NULL, NULL);
	join(&lb, &b);
	join_as(&x, &a, "zelda");
	ck_assert(who_lists(&lb, "zelda@", true, WAIT_MS));
	kill(a.pid, SIGSTOP);
	ck_assert_msg(client_wait_for(&lb, "left (server A is gone)", 30000), "A never reaped");
	join_as(&y, &b, "zelda"); /* free now: granted */
	kill(a.pid, SIGCONT);
	ck_assert_msg(client_wait_for(&x, "nick zelda was taken on another server", WAIT_MS),
	              "A's log: %s", server_log_tail(&a));
	ck_assert(server_log_wait(&a, "took this one for gone", WAIT_MS));
	ck_assert(server_log_wait(&a, "nick zelda of 127.0.0.1:", WAIT_MS));
	ck_assert(client_wait_for(&lb, "joined (server A is back)", WAIT_MS));
	/* One zelda in the cluster: B's; A's client is its address again. */
	ck_assert(who_lists(&lb, "zelda@127.0.0.1", true, WAIT_MS));
	client_say(&x, "/nick zelda\n");
	ck_assert(client_wait_for(&x, "nick zelda is taken", WAIT_MS));
	client_close(&x);
	client_close(&y);
	client_close(&lb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* An orderly shutdown says goodbye for its clients, once each. */
START_TEST(test_a_server_that_stops_says_goodbye_for_its_clients)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client x, lb;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", NULL, NULL);
	node_start(&b, &rp, "B", NULL, NULL);
	join(&lb, &b);
	join_as(&x, &a, "yvonne");
	server_stop_ok(&a);
	ck_assert(client_wait_for(&lb, "yvonne@127.0.0.1", WAIT_MS));
	ck_assert_int_eq(count_lines(&lb, "yvonne@", 1500), 0);
	client_close(&x);
	client_close(&lb);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* Unreachable at start: not fatal.  The server serves its own clients,
 * says why in the log, and links once Redis is there. */
START_TEST(test_a_server_starts_without_its_redis)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client c1, c2, cb;
	char url[64];

	rp.port = free_port();
	url_of(&rp, url, sizeof(url));
	server_start(&a, "--redis", url, "--node", "A", "--flood-rate", "0", "--log-level", "debug",
	             NULL);
	ck_assert(server_log_wait(&a, "cannot reach Redis 127.0.0.1:", WAIT_MS));
	join(&c1, &a);
	join(&c2, &a);
	client_say(&c1, "alone\n");
	ck_assert_str_eq(next_text(&c2, WAIT_MS), "alone");

	redis_start(&rp, false);
	ck_assert(server_log_wait(&a, "cluster: linked", WAIT_MS));
	node_start(&b, &rp, "B", NULL, NULL);
	join(&cb, &b);
	pause_ms(300);
	client_say(&cb, "together\n");
	ck_assert_str_eq(next_text(&c1, WAIT_MS), "together");
	client_close(&c1);
	client_close(&c2);
	client_close(&cb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/*
 * A Redis with a password, reached over TCP with it and over its unix
 * socket; a wrong password is named in the log and retried, and the
 * server serves its own clients meanwhile.
 */
START_TEST(test_redis_with_a_password_and_a_unix_socket)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b, bad;
	struct client ca, cb, cbad1, cbad2;
	char url[160], sock[128];

	redis_start_with(&rp, false, "--requirepass", "s3cret", NULL, NULL);
	snprintf(sock, sizeof(sock), "%s/redis.sock", rp.dir);
	redis_kill(&rp, SIGKILL);
	redis_start_with(&rp, false, "--requirepass", "s3cret", "--unixsocket", sock);

	snprintf(url, sizeof(url), "redis://:s3cret@127.0.0.1:%d", rp.port);
	server_start(&a, "--redis", url, "--node", "A", "--flood-rate", "0", NULL);
	ck_assert_msg(server_log_wait(&a, "cluster: linked", WAIT_MS), "%s", server_log(&a));
	ck_assert_ptr_null(strstr(server_log(&a), "s3cret")); /* never in the log */
	snprintf(url, sizeof(url), "unix:%s", sock);
	server_start(&bad, "--redis", url, "--node", "X", "--flood-rate", "0", NULL);
	ck_assert_msg(server_log_wait(&bad, "NOAUTH", WAIT_MS), "%s", server_log(&bad));
	join(&cbad1, &bad);
	join(&cbad2, &bad);
	client_say(&cbad1, "still here\n");
	ck_assert_str_eq(next_text(&cbad2, WAIT_MS), "still here");

	/* The socket, with the password: one room with A. */
	{
		char user_url[160];

		snprintf(user_url, sizeof(user_url), "redis://default:s3cret@127.0.0.1:%d/0",
		         rp.port);
		server_start(&b, "--redis", user_url, "--node", "B", "--flood-rate", "0", NULL);
	}
	ck_assert_msg(server_log_wait(&b, "cluster: linked", WAIT_MS), "%s", server_log(&b));
	join(&ca, &a);
	join(&cb, &b);
	pause_ms(300);
	client_say(&ca, "through a password\n");
	ck_assert_str_eq(next_text(&cb, WAIT_MS), "through a password");
	client_close(&ca);
	client_close(&cb);
	client_close(&cbad1);
	client_close(&cbad2);
	server_stop_ok(&a);
	server_stop_ok(&b);
	server_stop_ok(&bad);
	redis_remove(&rp);
}
END_TEST

/* A unix socket, as operators run Redis on the same machine. */
START_TEST(test_redis_over_a_unix_socket)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client ca, cb;
	char url[160], sock[128];

	redis_start(&rp, false);
	snprintf(sock, sizeof(sock), "%s/redis.sock", rp.dir);
	redis_kill(&rp, SIGKILL);
	redis_start_with(&rp, false, "--unixsocket", sock, NULL, NULL);
	snprintf(url, sizeof(url), "unix:%s", sock);
	server_start(&a, "--redis", url, "--node", "A", "--flood-rate", "0", NULL);
	server_start(&b, "--redis", url, "--node", "B", "--flood-rate", "0", NULL);
	ck_assert_msg(server_log_wait(&a, "cluster: linked to Redis unix:", WAIT_MS), "%s",
	              server_log(&a));
	ck_assert(server_log_wait(&b, "cluster: linked", WAIT_MS));
	join(&ca, &a);
	join(&cb, &b);
	pause_ms(300);
	client_say(&cb, "over the socket\n");
	ck_assert_str_eq(next_text(&ca, WAIT_MS), "over the socket");
	client_close(&ca);
	client_close(&cb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/*
 * An outage longer than --cluster-backlog: the oldest of A's lines never
 * reach B.  Detected, never silent: B's clients get one notice saying how
 * many may be missing, and B's log says so; the rest arrive once.
 */
START_TEST(test_an_outage_beyond_the_backlog_is_reported)
{
	struct redis_proc rp = { 0 };
	struct server_proc a, b;
	struct client sa, lb;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", "--cluster-backlog", "100");
	node_start(&b, &rp, "B", NULL, NULL);
	join(&lb, &b);
	join(&sa, &a);
	pause_ms(300);
	say_run(&sa, "pre", 0, 5);
	expect_run(&lb, "pre", 0, 5);
	redis_kill(&rp, SIGKILL);
	ck_assert(server_log_wait(&a, "link to Redis", WAIT_MS));
	say_run(&sa, "over", 0, 150);
	pause_ms(500);
	redis_start(&rp, false);
	ck_assert(client_wait_for(&lb, "lines may be missing: up to 50 from server A", WAIT_MS));
	expect_run(&lb, "over", 50, 100);
	ck_assert(server_log_wait(&b, "are missing", WAIT_MS));
	ck_assert_int_eq(count_lines(&lb, "lines may be missing", 1000), 0);
	client_close(&sa);
	client_close(&lb);
	server_stop_ok(&a);
	server_stop_ok(&b);
	redis_remove(&rp);
}
END_TEST

/* GET /metrics over a plain socket (no curl needed here): the body. */
static const char *
scrape(int port)
{
	static char buf[65536];
	struct client h;
	size_t n = 0;
	long end = ms_now() + WAIT_MS;

	client_open(&h, port, 0);
	client_say(&h, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
	while (n < sizeof(buf) - 1 && ms_now() < end) {
		struct pollfd p = { .fd = h.fd, .events = POLLIN };
		ssize_t got;

		if (poll(&p, 1, 1000) <= 0)
			continue;
		if ((got = recv(h.fd, buf + n, sizeof(buf) - 1 - n, 0)) <= 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	client_close(&h);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "scrape: %s", buf);
	return strstr(buf, "\r\n\r\n") + 4;
}

/* Wait until sample name satisfies ok(value); false on timeout. */
static bool
scrape_until(int port, const char *name, bool (*ok)(double), double *last)
{
	long end = ms_now() + WAIT_MS;

	while (ms_now() < end) {
		*last = metric_sample(scrape(port), name);
		if (ok(*last))
			return true;
		pause_ms(100);
	}
	return false;
}

static bool is_one(double v) { return v == 1; }
static bool is_zero(double v) { return v == 0; }
static bool is_positive(double v) { return v > 0; }

/* --metrics with --redis: the link's state, our lines' trip through Redis,
 * and the backlog while Redis is away. */
START_TEST(test_metrics_show_the_link)
{
	struct redis_proc rp = { 0 };
	struct server_proc a;
	struct client ca, cb;
	const char *p;
	double v;
	int mp;

	redis_start(&rp, false);
	node_start(&a, &rp, "A", "--metrics", "127.0.0.1:0");
	p = strstr(server_log(&a), "metrics on http://127.0.0.1:");
	ck_assert_ptr_nonnull(p);
	mp = atoi(p + strlen("metrics on http://127.0.0.1:"));
	ck_assert_msg(scrape_until(mp, "chat_cluster_up", is_one, &v), "chat_cluster_up %g", v);
	join(&ca, &a);
	join(&cb, &a);
	ck_assert(client_wait_for(&ca, "joined", WAIT_MS));
	client_say(&ca, "around the cluster\n");
	ck_assert_str_eq(next_text(&cb, WAIT_MS), "around the cluster");
	ck_assert_msg(scrape_until(mp, "chat_cluster_lag_seconds", is_positive, &v),
	              "chat_cluster_lag_seconds %g", v);
	ck_assert_double_lt(v, 10);

	redis_kill(&rp, SIGKILL);
	ck_assert_msg(scrape_until(mp, "chat_cluster_up", is_zero, &v), "chat_cluster_up %g", v);
	client_say(&ca, "while Redis is away\n");
	ck_assert_str_eq(next_text(&cb, WAIT_MS), "while Redis is away");
	ck_assert_msg(scrape_until(mp, "chat_cluster_backlog_lines", is_positive, &v),
	              "chat_cluster_backlog_lines %g", v);
	client_close(&ca);
	client_close(&cb);
	server_stop_ok(&a);
	redis_remove(&rp);
}
END_TEST

static Suite *
cluster_suite(void)
{
	Suite *s = suite_create("cluster");
	TCase *tc = tcase_create("room");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_two_servers_are_one_room);
	tcase_add_test(tc, test_rooms_span_the_cluster);
	tcase_add_test(tc, test_a_room_is_read_only_where_it_has_members);
	tcase_add_test(tc, test_every_server_sees_one_order_in_each_room);
	tcase_add_test(tc, test_every_server_sees_one_order);
	tcase_add_test(tc, test_one_nick_one_owner_across_servers);
	tcase_add_test(tc, test_a_first_line_nick_joins_under_it_across_servers);
	tcase_add_test(tc, test_a_nick_asked_by_one_who_left_is_free);
	tcase_add_test(tc, test_history_is_the_clusters);
	tcase_add_test(tc, test_redis_with_a_password_and_a_unix_socket);
	tcase_add_test(tc, test_redis_over_a_unix_socket);
#ifdef HAVE_OPENSSL
	if (have_openssl_cmd())
		tcase_add_test(tc, test_tls_and_plain_clients_of_two_servers_are_one_room);
	else
		printf("TLS case skipped: the openssl command is not installed\n");
#endif
	suite_add_tcase(s, tc);

	tc = tcase_create("faults");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_client_kill_loses_and_repeats_nothing);
	tcase_add_test(tc, test_client_kill_in_rooms_loses_and_repeats_nothing);
	tcase_add_test(tc, test_redis_restart_without_persistence);
	tcase_add_test(tc, test_redis_restart_without_persistence_in_a_room);
	tcase_add_test(tc, test_redis_restart_with_aof);
	tcase_add_test(tc, test_a_wedged_redis_is_noticed);
	tcase_add_test(tc, test_a_killed_server_leaves_once);
	tcase_add_test(tc, test_a_server_that_stops_says_goodbye_for_its_clients);
	tcase_add_test(tc, test_a_server_taken_for_gone_comes_back_without_stealing_nicks);
	tcase_add_test(tc, test_a_server_starts_without_its_redis);
	tcase_add_test(tc, test_an_outage_beyond_the_backlog_is_reported);
	tcase_add_test(tc, test_metrics_show_the_link);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
#ifndef HAVE_HIREDIS
	(void)cluster_suite;
	printf("SKIP: this build has no hiredis (configure found no libhiredis-dev)\n");
	return 77;
#else
	if (system("command -v redis-server >/dev/null 2>&1") != 0) {
		printf("SKIP: redis-server is not installed (Debian: apt-get install redis-server)\n");
		return 77;
	}
	return run_suite(cluster_suite());
#endif
}
