/* Address formatting and listening sockets (net.c). */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "check_run.h"

static const char *
fmt6(const char *addr, unsigned short port)
{
	static char buf[NET_ADDRSTRLEN];
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

	ck_assert_int_eq(inet_pton(AF_INET6, addr, &sa.sin6_addr), 1);
	net_format_addr((struct sockaddr *)&sa, buf, sizeof(buf));
	return buf;
}

START_TEST(test_ipv4_is_address_colon_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(52842) };
	char buf[NET_ADDRSTRLEN];

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	net_format_addr((struct sockaddr *)&sa, buf, sizeof(buf));
	ck_assert_str_eq(buf, "127.0.0.1:52842");
}
END_TEST

START_TEST(test_ipv6_is_bracketed)
{
	ck_assert_str_eq(fmt6("2001:db8::1", 52842), "[2001:db8::1]:52842");
	ck_assert_str_eq(fmt6("::1", 7), "[::1]:7");
}
END_TEST

START_TEST(test_ipv4_mapped_ipv6_shows_as_plain_ipv4)
{
	ck_assert_str_eq(fmt6("::ffff:192.0.2.7", 4333), "192.0.2.7:4333");
}
END_TEST

START_TEST(test_listen_on_port_0_gets_a_port_and_reports_busy_ones)
{
	int fds[4], fds2[4];
	size_t n = 0, n2 = 0;
	char err[256], port[16], want[128];
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	ck_assert_int_eq(net_listen("127.0.0.1", "0", 16, fds, 4, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(getsockname(fds[0], (struct sockaddr *)&sa, &len), 0);
	ck_assert_uint_gt(ntohs(sa.sin_port), 0);
	snprintf(port, sizeof(port), "%u", ntohs(sa.sin_port));
	ck_assert_int_eq(net_listen("127.0.0.1", port, 16, fds2, 4, &n2, err, sizeof(err)),
	                 -EADDRINUSE);
	snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%s: Address already in use", port);
	ck_assert_str_eq(err, want);
	close(fds[0]);
}
END_TEST

static Suite *
net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("net");

	tcase_add_test(tc, test_ipv4_is_address_colon_port);
	tcase_add_test(tc, test_ipv6_is_bracketed);
	tcase_add_test(tc, test_ipv4_mapped_ipv6_shows_as_plain_ipv4);
	tcase_add_test(tc, test_listen_on_port_0_gets_a_port_and_reports_busy_ones);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(net_suite());
}
