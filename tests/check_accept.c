/*
 * Admission (accept.c) on socketpairs: what it counts for a connection is
 * given back whatever happens to it.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accept.h"
#include "broadcast.h"
#include "check_run.h"

static atomic_bool stopping;

/* One end of a new socketpair for the server; the other end in *peer. */
static int
new_fd(int *peer)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	*peer = sv[1];
	return sv[0];
}

/*
 * A connection that could not be watched (EPOLL_CTL_ADD failed: here a
 * bad epoll descriptor, in life ENOSPC or ENOMEM) must not keep its
 * address's slot: before, it did, and with --max-per-ip 1 that address
 * was refused for the life of the server.
 */
START_TEST(test_a_connection_that_cannot_be_watched_gives_its_slot_back)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(5555) };
	struct admission a = { 0 };
	struct broadcast bc;
	unsigned char key[IPCOUNT_KEYLEN];
	struct conn *c;
	int epfd = epoll_create1(0), peer1, peer2;

	ck_assert_int_ge(epfd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	atomic_init(&stopping, false);
	ck_assert_int_eq(broadcast_init(&bc, 0), 0);
	a.max_clients = 100;
	a.max_per_ip = 1;
	a.max_sendq = 1 << 20;
	a.epfd = -1; /* every EPOLL_CTL_ADD fails */
	a.bc = &bc;
	a.stopping = &stopping;
	ck_assert_int_eq(admission_init(&a), 0);

	ck_assert_ptr_null(admission_admit(&a, new_fd(&peer1), (struct sockaddr *)&sa, NULL));
	ipcount_key((struct sockaddr *)&sa, key);
	ck_assert_uint_eq(ipcount_get(a.perip, key), 0);
	ck_assert_uint_eq(broadcast_online(&bc), 0);

	a.epfd = epfd;
	c = admission_admit(&a, new_fd(&peer2), (struct sockaddr *)&sa, NULL);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(ipcount_get(a.perip, key), 1);
	ck_assert_uint_eq(broadcast_online(&bc), 1);

	broadcast_leave(&bc, c);
	admission_release(&a, c);
	ck_assert_uint_eq(ipcount_get(a.perip, key), 0);
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->io.fd, NULL);
	conn_unref(c); /* the job's */
	conn_unref(c); /* the loop's */
	admission_destroy(&a);
	broadcast_destroy(&bc);
	close(peer1);
	close(peer2);
	close(epfd);
}
END_TEST

static Suite *
accept_suite(void)
{
	Suite *s = suite_create("accept");
	TCase *tc = tcase_create("admission");

	tcase_add_test(tc, test_a_connection_that_cannot_be_watched_gives_its_slot_back);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(accept_suite());
}
