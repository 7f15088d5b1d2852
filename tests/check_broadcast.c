/*
 * The registry and fan-out (broadcast.c) and the send queue (conn.c), over
 * socketpairs: no server, no network.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broadcast.h"
#include "conn.h"
#include "check_run.h"

static atomic_bool no_read;
static int epfd = -1;

struct pair {
	struct conn *c; /* the server's side */
	int peer;       /* the client's side */
};

static void
setup(void)
{
	epfd = epoll_create1(0);
	ck_assert_int_ge(epfd, 0);
	atomic_init(&no_read, false);
}

static void
teardown(void)
{
	close(epfd);
}

static void
pair_open(struct pair *p, size_t max_sendq, int sndbuf)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct io io;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	if (sndbuf > 0)
		ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)),
		                 0);
	ck_assert_int_eq(io_init(&io, &io_plain, sv[0]), 0);
	ck_assert_int_eq(conn_new(&p->c, &io, (struct sockaddr *)&sa, epfd, max_sendq, &no_read, NULL),
	                 0);
	p->peer = sv[1];
}

static void
pair_close(struct pair *p)
{
	conn_unref(p->c);
	close(p->peer);
}

static struct msg *
text(const char *s)
{
	struct msg *m = msg_new(strlen(s));

	ck_assert_ptr_nonnull(m);
	memcpy(m->data, s, m->len);
	return m;
}

/* Everything the peer has been sent so far, as a string. */
static const char *
drain(int fd)
{
	static char buf[65536];
	size_t len = 0;
	ssize_t n;

	while (len < sizeof(buf) - 1 && (n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return buf;
}

/* --- registry and fan-out --------------------------------------------------- */

START_TEST(test_fan_out_reaches_every_member_but_the_sender)
{
	struct broadcast b;
	struct pair p[3];
	struct msg *m = text("hi\r\n");
	size_t online;
	int i;

	ck_assert_int_eq(broadcast_init(&b, 0), 0);
	for (i = 0; i < 3; i++) {
		pair_open(&p[i], 1 << 20, 0);
		ck_assert_int_eq(broadcast_join(&b, p[i].c, &online), 0);
		ck_assert_uint_eq(online, (size_t)i + 1);
	}
	ck_assert_uint_eq(broadcast_send(&b, p[0].c, &m, 1), 2);
	/* Queued, not yet written: that waits for the write pass. */
	ck_assert_str_eq(drain(p[1].peer), "");
	broadcast_flush(&b);
	ck_assert_str_eq(drain(p[1].peer), "hi\r\n");
	ck_assert_str_eq(drain(p[2].peer), "hi\r\n");
	ck_assert_str_eq(drain(p[0].peer), "");
	/* One message, shared: the queues held references, now all sent. */
	ck_assert_uint_eq(atomic_load(&m->refs), 1);
	msg_unref(m);
	for (i = 0; i < 3; i++)
		pair_close(&p[i]);
	broadcast_destroy(&b);
}
END_TEST

START_TEST(test_leave_removes_once_and_others_still_receive)
{
	struct broadcast b;
	struct pair p[3];
	struct msg *m = text("after\r\n");
	size_t online;
	int i;

	ck_assert_int_eq(broadcast_init(&b, 0), 0);
	for (i = 0; i < 3; i++) {
		pair_open(&p[i], 1 << 20, 0);
		ck_assert_int_eq(broadcast_join(&b, p[i].c, &online), 0);
	}
	ck_assert_uint_eq(broadcast_leave(&b, p[0].c), 2);
	ck_assert_uint_eq(broadcast_leave(&b, p[0].c), 2); /* not a member: no-op */
	ck_assert_uint_eq(broadcast_online(&b), 2);
	ck_assert_uint_eq(broadcast_send(&b, NULL, &m, 1), 2);
	broadcast_flush(&b);
	ck_assert_str_eq(drain(p[1].peer), "after\r\n");
	ck_assert_str_eq(drain(p[2].peer), "after\r\n");
	ck_assert_str_eq(drain(p[0].peer), "");
	msg_unref(m);
	for (i = 0; i < 3; i++)
		pair_close(&p[i]);
	broadcast_destroy(&b);
}
END_TEST

START_TEST(test_several_lines_fan_out_in_order)
{
	struct broadcast b;
	struct pair p[2];
	struct msg *m[3] = { text("1\n"), text("2\n"), text("3\n") };
	size_t online;
	int i;

	ck_assert_int_eq(broadcast_init(&b, 0), 0);
	for (i = 0; i < 2; i++) {
		pair_open(&p[i], 1 << 20, 0);
		ck_assert_int_eq(broadcast_join(&b, p[i].c, &online), 0);
	}
	broadcast_send(&b, p[0].c, m, 3);
	broadcast_flush(&b);
	ck_assert_str_eq(drain(p[1].peer), "1\n2\n3\n");
	for (i = 0; i < 3; i++)
		msg_unref(m[i]);
	for (i = 0; i < 2; i++)
		pair_close(&p[i]);
	broadcast_destroy(&b);
}
END_TEST

START_TEST(test_send_except_gives_each_joiner_only_later_joins)
{
	struct broadcast b;
	struct pair p[3];
	struct msg *m[2] = { text("a joined\n"), text("b joined\n") };
	struct conn *skip[2];
	size_t online;
	int i;

	ck_assert_int_eq(broadcast_init(&b, 0), 0);
	/* p[2] is the member already there; then a (p[0]) and b (p[1]). */
	for (i = 0; i < 3; i++) {
		static const int order[3] = { 2, 0, 1 };

		pair_open(&p[order[i]], 1 << 20, 0);
		ck_assert_int_eq(broadcast_join(&b, p[order[i]].c, &online), 0);
	}
	skip[0] = p[0].c;
	skip[1] = p[1].c;
	ck_assert_uint_eq(broadcast_send_except(&b, m, skip, 2), 2);
	broadcast_flush(&b);
	/* As if a joined, then b: a hears of b, b of nobody before it, and
	 * the member already there of both. */
	ck_assert_str_eq(drain(p[0].peer), "b joined\n");
	ck_assert_str_eq(drain(p[1].peer), "");
	ck_assert_str_eq(drain(p[2].peer), "a joined\nb joined\n");
	for (i = 0; i < 2; i++)
		msg_unref(m[i]);
	for (i = 0; i < 3; i++)
		pair_close(&p[i]);
	broadcast_destroy(&b);
}
END_TEST

/* What the bus hook was handed. */
struct bus_log {
	int chat, notice;        /* calls of each kind */
	size_t msgs;             /* messages in them */
	const struct conn *from; /* the last call's sender */
	struct conn *const *each;
	bool take;               /* what publish answers: the bus delivers */
	char room[40];           /* the last call's room */
};

static bool
record_publish(void *arg, enum bus_kind kind, const char *room, const char *topic,
               const struct conn *from, struct conn *const *each, struct msg *const *msgs,
               size_t n)
{
	struct bus_log *bl = arg;

	(void)msgs;
	(void)topic;
	snprintf(bl->room, sizeof(bl->room), "%s", room);
	if (kind == BUS_CHAT)
		bl->chat++;
	else
		bl->notice++;
	bl->msgs += n;
	bl->from = from;
	bl->each = each;
	return bl->take;
}

/*
 * The bus hook (bus.h) sees every fan-out other servers must see, after
 * the local one: chat lines as chat, join and other notices as notices;
 * and nothing sent locally only.
 */
START_TEST(test_the_bus_hook_sees_what_other_servers_must_see)
{
	struct broadcast b;
	struct bus_log bl = { 0, 0, 0, NULL, NULL, false, "" };
	struct pair p[2];
	struct msg *m = text("x\r\n");
	struct conn *skip[1];
	size_t online;

	ck_assert_int_eq(broadcast_init(&b, 0), 0);
	b.bus.publish = record_publish;
	b.bus.arg = &bl;
	for (int i = 0; i < 2; i++) {
		pair_open(&p[i], 1 << 20, 0);
		ck_assert_int_eq(broadcast_join(&b, p[i].c, &online), 0);
	}
	ck_assert_uint_eq(broadcast_send_chat(&b, p[0].c, &m, 1), 1);
	ck_assert_int_eq(bl.chat, 1);
	ck_assert_ptr_eq(bl.from, p[0].c);
	ck_assert_uint_eq(broadcast_send(&b, NULL, &m, 1), 2);
	skip[0] = p[1].c;
	ck_assert_uint_eq(broadcast_send_except(&b, &m, skip, 1), 1);
	ck_assert_int_eq(bl.notice, 2);
	ck_assert_ptr_eq(bl.each, skip); /* each join notice's subject */
	ck_assert_uint_eq(broadcast_send_local(&b, NULL, &m, 1), 2);
	ck_assert_int_eq(bl.chat + bl.notice, 3); /* local only: not handed on */
	ck_assert_uint_eq(bl.msgs, 3);
	broadcast_flush(&b);
	ck_assert_str_eq(drain(p[1].peer), "x\r\nx\r\nx\r\n");
	msg_unref(m);
	for (int i = 0; i < 2; i++)
		pair_close(&p[i]);
	broadcast_destroy(&b);
}
END_TEST

/*
 * A bus that takes the lines (the cluster's link is up) delivers them
 * itself, later, in the cluster's order: nothing goes out locally now, and
 * nothing enters the history now.  broadcast_deliver() then fans out to
 * all but the sender (by its join_seq), records chat, and hands nothing
 * back to the bus.
 */
START_TEST(test_lines_the_bus_takes_go_out_when_it_delivers_them)
{
	struct broadcast b;
	struct bus_log bl = { 0, 0, 0, NULL, NULL, true, "" };
	struct pair p[3];
	struct msg *m = text("x\r\n");
	size_t online;

	ck_assert_int_eq(broadcast_init(&b, 4), 0);
	b.bus.publish = record_publish;
	b.bus.arg = &bl;
	for (int i = 0; i < 3; i++) {
		pair_open(&p[i], 1 << 20, 0);
		ck_assert_int_eq(broadcast_join(&b, p[i].c, &online), 0);
	}
	ck_assert_uint_eq(broadcast_send_chat(&b, p[0].c, &m, 1), 0);
	ck_assert_int_eq(bl.chat, 1);
	broadcast_flush(&b);
	ck_assert_str_eq(drain(p[1].peer), ""); /* not yet */
	ck_assert_uint_eq(b.lobby->hist_len, 0);

	{
		uint64_t from = p[0].c->join_seq;

		ck_assert_str_eq(bl.room, "#lobby");
		ck_assert_uint_eq(broadcast_deliver(&b, "#lobby", &from, &m, 1, true), 2);
		/* A room nobody here is in: nobody. */
		ck_assert_uint_eq(broadcast_deliver(&b, "#nope", &from, &m, 1, true), 0);
	}
	ck_assert_int_eq(bl.chat, 1); /* not handed back */
	ck_assert_uint_eq(b.lobby->hist_len, 1);
	broadcast_flush(&b);
	ck_assert_str_eq(drain(p[0].peer), ""); /* its sender hears it from nobody */
	ck_assert_str_eq(drain(p[1].peer), "x\r\n");
	ck_assert_str_eq(drain(p[2].peer), "x\r\n");
	ck_assert_ptr_eq(broadcast_find_seq(&b, p[2].c->join_seq), p[2].c);
	conn_unref(p[2].c); /* find's reference */
	ck_assert_ptr_null(broadcast_find_seq(&b, 999));
	msg_unref(m);
	for (int i = 0; i < 3; i++)
		pair_close(&p[i]);
	broadcast_destroy(&b);
}
END_TEST

static int rooms_changes;

static void
count_rooms_changed(void *arg)
{
	(void)arg;
	rooms_changes++;
}

/*
 * In a cluster each line carries its room to the bus, and what the bus
 * brings back for a room reaches that room's members here only.  The bus
 * hears when a room gets its first member here or loses its last.
 */
START_TEST(test_the_bus_carries_each_rooms_lines_apart)
{
	struct broadcast b;
	struct bus_log bl = { 0, 0, 0, NULL, NULL, true, "" };
	struct pair p[3];
	struct msg *m = text("x\r\n");
	struct room *left;
	size_t online, here;
	uint64_t from;

	ck_assert_int_eq(broadcast_init(&b, 4), 0);
	b.bus.publish = record_publish;
	b.bus.rooms_changed = count_rooms_changed;
	b.bus.arg = &bl;
	rooms_changes = 0;
	for (int i = 0; i < 3; i++) {
		pair_open(&p[i], 1 << 20, 0);
		ck_assert_int_eq(broadcast_join(&b, p[i].c, &online), 0);
	}
	ck_assert_int_eq(broadcast_move(&b, p[0].c, "#dev", &left, &here), 0);
	room_unref(left);
	ck_assert_int_eq(rooms_changes, 1); /* #dev is new here */
	ck_assert_int_eq(broadcast_move(&b, p[1].c, "#Dev", &left, &here), 0);
	room_unref(left);
	ck_assert_int_eq(rooms_changes, 1); /* not new */
	broadcast_send_chat(&b, p[0].c, &m, 1);
	ck_assert_str_eq(bl.room, "#dev");
	from = p[0].c->join_seq;
	ck_assert_uint_eq(broadcast_deliver(&b, "#DEV", &from, &m, 1, true), 1);
	broadcast_flush(&b);
	ck_assert_str_eq(drain(p[0].peer), "");
	ck_assert_str_eq(drain(p[1].peer), "x\r\n");
	ck_assert_str_eq(drain(p[2].peer), ""); /* in #lobby */
	ck_assert_int_eq(broadcast_move(&b, p[0].c, "#lobby", &left, &here), 0);
	room_unref(left);
	ck_assert_int_eq(broadcast_move(&b, p[1].c, "#lobby", &left, &here), 0);
	room_unref(left);
	ck_assert_int_eq(rooms_changes, 2); /* #dev is empty, gone */
	ck_assert_uint_eq(broadcast_deliver(&b, "#dev", &from, &m, 1, true), 0);
	msg_unref(m);
	for (int i = 0; i < 3; i++)
		pair_close(&p[i]);
	broadcast_destroy(&b);
}
END_TEST

/* The index of rooms by name: thousands of rooms made and gone (more
 * than its chains), each found by its name in any case while it is
 * there, and not after. */
START_TEST(test_rooms_are_found_by_name_among_thousands)
{
	struct broadcast b;
	struct pair p[2];
	struct msg *m = text("x\r\n");
	struct room *left;
	size_t online, here;
	uint64_t nobody = 0;
	char name[40];

	ck_assert_int_eq(broadcast_init(&b, 0), 0);
	b.max_rooms = 5000;
	for (int i = 0; i < 2; i++) {
		pair_open(&p[i], 1 << 20, 0);
		ck_assert_int_eq(broadcast_join(&b, p[i].c, &online), 0);
	}
	ck_assert_int_eq(broadcast_move(&b, p[1].c, "#keep", &left, &here), 0);
	room_unref(left);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "#r%d", i);
		ck_assert_int_eq(broadcast_move(&b, p[0].c, name, &left, &here), 0);
		room_unref(left);
		ck_assert_uint_eq(b.nrooms, 3); /* #lobby, #keep and this one */
	}
	ck_assert_uint_eq(broadcast_deliver(&b, "#KEEP", &nobody, &m, 1, false), 1);
	ck_assert_uint_eq(broadcast_deliver(&b, "#R2999", &nobody, &m, 1, false), 1);
	ck_assert_uint_eq(broadcast_deliver(&b, "#r5", &nobody, &m, 1, false), 0);
	ck_assert_int_eq(broadcast_move(&b, p[0].c, "#Keep", &left, &here), 0);
	room_unref(left);
	ck_assert_uint_eq(here, 2);
	ck_assert_uint_eq(broadcast_deliver(&b, "#r2999", &nobody, &m, 1, false), 0);
	msg_unref(m);
	for (int i = 0; i < 2; i++)
		pair_close(&p[i]);
	broadcast_destroy(&b);
}
END_TEST

/*
 * Three fan-outs, one write pass: each recipient gets the three lines in
 * one sendmsg.  A SOCK_SEQPACKET pair keeps each sendmsg a record of its
 * own, so one recv returning all three shows there was one write.
 */
START_TEST(test_lines_of_several_fan_outs_leave_in_one_write)
{
	struct broadcast b;
	struct conn *c[2];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct msg *m[3] = { text("one\n"), text("two\n"), text("three\n") };
	int sv[2][2], i;
	size_t online;
	char buf[64];
	ssize_t n;

	ck_assert_int_eq(broadcast_init(&b, 0), 0);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv[i]), 0);
		struct io io;

		ck_assert_int_eq(io_init(&io, &io_plain, sv[i][0]), 0);
		ck_assert_int_eq(conn_new(&c[i], &io, (struct sockaddr *)&sa, epfd, 1 << 20, &no_read,
		                          NULL),
		                 0);
		ck_assert_int_eq(broadcast_join(&b, c[i], &online), 0);
	}
	for (i = 0; i < 3; i++)
		ck_assert_uint_eq(broadcast_send(&b, c[0], &m[i], 1), 1);
	ck_assert_int_lt(broadcast_flush_age(&b, 1LL << 62), 1LL << 62); /* the list waits */
	broadcast_flush(&b);
	ck_assert_int_eq(broadcast_flush_age(&b, 1LL << 62), 0); /* and is empty */
	n = recv(sv[1][1], buf, sizeof(buf), 0);
	ck_assert_int_eq(n, 14);
	ck_assert_mem_eq(buf, "one\ntwo\nthree\n", 14);
	ck_assert_int_eq(recv(sv[1][1], buf, sizeof(buf), 0), -1); /* nothing more */
	ck_assert_int_eq(errno, EAGAIN);
	/* A line queued after the pass is noted again and written by the
	 * next one. */
	ck_assert_uint_eq(broadcast_send(&b, c[0], &m[0], 1), 1);
	broadcast_flush(&b);
	ck_assert_int_eq(recv(sv[1][1], buf, sizeof(buf), 0), 4);
	for (i = 0; i < 3; i++) {
		ck_assert_uint_eq(atomic_load(&m[i]->refs), 1); /* all sent, none kept */
		msg_unref(m[i]);
	}
	for (i = 0; i < 2; i++) {
		conn_unref(c[i]);
		close(sv[i][1]);
	}
	broadcast_destroy(&b);
}
END_TEST

/*
 * A queue that grows past CONN_WRITE_NOW for a client whose socket still
 * takes data is written by the fan-out itself, not left for the write
 * pass: the server being behind must not push a client that keeps up
 * towards --max-sendq.
 */
START_TEST(test_a_long_queue_to_a_reader_that_keeps_up_is_written_at_once)
{
	struct broadcast b;
	struct pair p[2];
	struct msg *small = text("first\n"), *big = msg_new(CONN_WRITE_NOW);
	size_t online, got = 0;
	char buf[4096];
	ssize_t n;
	int i;

	ck_assert_ptr_nonnull(big);
	memset(big->data, 'x', big->len);
	ck_assert_int_eq(broadcast_init(&b, 0), 0);
	for (i = 0; i < 2; i++) {
		pair_open(&p[i], 4 * CONN_WRITE_NOW, 0);
		ck_assert_int_eq(broadcast_join(&b, p[i].c, &online), 0);
	}
	broadcast_send(&b, p[0].c, &small, 1);
	ck_assert_int_eq(recv(p[1].peer, buf, sizeof(buf), MSG_DONTWAIT), -1); /* waits */
	broadcast_send(&b, p[0].c, &big, 1);
	/* No write pass, yet both are on their way. */
	while ((n = recv(p[1].peer, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		if (got == 0)
			ck_assert_mem_eq(buf, "first\n", 6);
		got += (size_t)n;
	}
	ck_assert_uint_gt(got, 6);
	ck_assert(!conn_is_dead(p[1].c, NULL, 0, NULL));
	broadcast_flush(&b);
	msg_unref(small);
	msg_unref(big);
	for (i = 0; i < 2; i++)
		pair_close(&p[i]);
	broadcast_destroy(&b);
}
END_TEST

/* --- the send queue ----------------------------------------------------------- */

START_TEST(test_partial_writes_keep_the_tail_and_order)
{
	enum { N = 200, LEN = 1000 };
	struct pair p;
	char *want = malloc(N * LEN + 1), *got = malloc(N * LEN + 1);
	size_t have = 0;
	int i;

	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(got);
	pair_open(&p, 1 << 20, 4096); /* a tiny socket buffer */
	for (i = 0; i < N; i++) {
		struct msg *m = msg_new(LEN);

		memset(m->data, 'a' + i % 26, LEN);
		m->data[LEN - 1] = '\n';
		memcpy(want + (size_t)i * LEN, m->data, LEN);
		ck_assert_int_ge(conn_enqueue(p.c, &m, 1), 0);
		msg_unref(m);
	}
	ck_assert_int_eq(conn_flush(p.c), 0);
	ck_assert_uint_gt(conn_pending(p.c), 0); /* the socket took only part */
	while (have < (size_t)N * LEN) {
		ssize_t n = recv(p.peer, got + have, (size_t)N * LEN - have, 0);

		if (n > 0)
			have += (size_t)n;
		ck_assert_int_eq(conn_flush(p.c), 0);
		ck_assert(n > 0 || errno == EAGAIN);
	}
	ck_assert_uint_eq(conn_pending(p.c), 0);
	ck_assert(memcmp(want, got, (size_t)N * LEN) == 0);
	pair_close(&p);
	free(want);
	free(got);
}
END_TEST

START_TEST(test_queue_over_the_cap_drops_the_connection)
{
	struct pair p;
	struct msg *m = msg_new(1000);
	char why[96];
	bool warn = false;
	int i, rc = 0;

	memset(m->data, 'x', 1000);
	pair_open(&p, 4096, 0);
	/* Never flushed, as for a client that does not read. */
	for (i = 0; i < 10 && rc >= 0; i++)
		rc = conn_enqueue(p.c, &m, 1);
	ck_assert_int_eq(rc, -ENOBUFS);
	ck_assert_int_eq(i, 5); /* 4 fit in 4096 bytes, the 5th passes it */
	ck_assert(conn_is_dead(p.c, why, sizeof(why), &warn));
	ck_assert(warn);
	ck_assert_str_eq(why, "send queue over 4096 bytes");
	ck_assert_uint_eq(conn_pending(p.c), 0);            /* its memory is freed */
	ck_assert_int_eq(conn_enqueue(p.c, &m, 1), -EPIPE); /* and stays dead */
	ck_assert_uint_eq(atomic_load(&m->refs), 1);
	msg_unref(m);
	pair_close(&p);
}
END_TEST

/*
 * A message longer than the cap still goes into an empty queue: the cap is
 * for a reader that falls behind, and a reader with nothing queued is not
 * behind.  Before, a --max-sendq below one long line dropped every
 * recipient of that line, the whole room.
 */
START_TEST(test_an_empty_queue_always_takes_a_message)
{
	struct pair p;
	struct msg *m = msg_new(3000);

	memset(m->data, 'y', 3000);
	pair_open(&p, 2048, 0);
	ck_assert_int_eq(conn_enqueue(p.c, &m, 1), 1);
	ck_assert(!conn_is_dead(p.c, NULL, 0, NULL));
	/* Behind now: one more is over the cap. */
	ck_assert_int_eq(conn_enqueue(p.c, &m, 1), -ENOBUFS);
	msg_unref(m);
	pair_close(&p);
}
END_TEST

START_TEST(test_enqueue_reports_who_must_flush)
{
	struct pair p;
	struct msg *m = text("x\n");

	pair_open(&p, 1 << 20, 0);
	ck_assert_int_eq(conn_enqueue(p.c, &m, 1), 1); /* was empty: flush it */
	ck_assert_int_eq(conn_enqueue(p.c, &m, 1), 0); /* someone already will */
	ck_assert_int_eq(conn_flush(p.c), 0);
	ck_assert_str_eq(drain(p.peer), "x\nx\n");
	ck_assert_int_eq(conn_enqueue(p.c, &m, 1), 1);
	msg_unref(m);
	pair_close(&p);
}
END_TEST

START_TEST(test_a_departed_peer_kills_the_connection_quietly)
{
	struct pair p;
	struct msg *m = text("anyone?\n");
	bool warn = true;

	pair_open(&p, 1 << 20, 0);
	close(p.peer);
	ck_assert_int_eq(conn_enqueue(p.c, &m, 1), 1);
	ck_assert_int_lt(conn_flush(p.c), 0); /* EPIPE, and no SIGPIPE */
	ck_assert(conn_is_dead(p.c, NULL, 0, &warn));
	ck_assert(!warn);
	msg_unref(m);
	conn_unref(p.c);
}
END_TEST

static Suite *
broadcast_suite(void)
{
	Suite *s = suite_create("broadcast");
	TCase *tc;

	tc = tcase_create("fan-out");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_fan_out_reaches_every_member_but_the_sender);
	tcase_add_test(tc, test_leave_removes_once_and_others_still_receive);
	tcase_add_test(tc, test_several_lines_fan_out_in_order);
	tcase_add_test(tc, test_send_except_gives_each_joiner_only_later_joins);
	tcase_add_test(tc, test_the_bus_hook_sees_what_other_servers_must_see);
	tcase_add_test(tc, test_lines_the_bus_takes_go_out_when_it_delivers_them);
	tcase_add_test(tc, test_the_bus_carries_each_rooms_lines_apart);
	tcase_add_test(tc, test_rooms_are_found_by_name_among_thousands);
	tcase_add_test(tc, test_lines_of_several_fan_outs_leave_in_one_write);
	tcase_add_test(tc, test_a_long_queue_to_a_reader_that_keeps_up_is_written_at_once);
	suite_add_tcase(s, tc);

	tc = tcase_create("sendq");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_partial_writes_keep_the_tail_and_order);
	tcase_add_test(tc, test_queue_over_the_cap_drops_the_connection);
	tcase_add_test(tc, test_an_empty_queue_always_takes_a_message);
	tcase_add_test(tc, test_enqueue_reports_who_must_flush);
	tcase_add_test(tc, test_a_departed_peer_kills_the_connection_quietly);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(broadcast_suite());
}
