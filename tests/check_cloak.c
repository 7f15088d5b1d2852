/* --cloak's hash: SipHash-2-4 against its authors' test vectors, and the
 * form and stability of a cloak. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>

#include "cloak.h"
#include "net.h"
#include "check_run.h"

/* The key 00 01 ... 0f of the SipHash paper (Aumasson, Bernstein 2012),
 * as two little-endian words. */
#define K0 0x0706050403020100ULL
#define K1 0x0f0e0d0c0b0a0908ULL

START_TEST(test_siphash_matches_the_reference_vectors)
{
	unsigned char msg[64];

	for (int i = 0; i < 64; i++)
		msg[i] = (unsigned char)i;
	/* The paper's appendix: 15 bytes 00..0e. */
	ck_assert_uint_eq(cloak_siphash(K0, K1, msg, 15), 0xa129ca6149be45e5ULL);
	/* The reference implementation's vectors.h: the empty message, and
	 * 8 bytes (one whole word, then the length-only block). */
	ck_assert_uint_eq(cloak_siphash(K0, K1, msg, 0), 0x726fdb47dd0e0e31ULL);
	ck_assert_uint_eq(cloak_siphash(K0, K1, msg, 8), 0x93f5f5799a932462ULL);
}
END_TEST

static void
v4(struct sockaddr_in *sa, const char *ip, unsigned port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &sa->sin_addr), 1);
}

/* One address, one cloak (whatever the port, and as IPv4 or IPv4-mapped
 * IPv6); another address, another; another key, another. */
START_TEST(test_a_cloak_is_stable_per_address_and_key)
{
	struct cloak k1 = { 1, 2 }, k2 = { 3, 4 };
	struct sockaddr_in a, a2, b;
	struct sockaddr_in6 m;
	char ca[NET_ADDRSTRLEN], ca2[NET_ADDRSTRLEN], cb[NET_ADDRSTRLEN], cm[NET_ADDRSTRLEN];
	char other[NET_ADDRSTRLEN];

	v4(&a, "203.0.113.9", 52842);
	v4(&a2, "203.0.113.9", 40000);
	v4(&b, "203.0.113.10", 52842);
	memset(&m, 0, sizeof(m));
	m.sin6_family = AF_INET6;
	m.sin6_port = htons(52842);
	ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:203.0.113.9", &m.sin6_addr), 1);

	cloak_format(&k1, (struct sockaddr *)&a, ca, sizeof(ca));
	cloak_format(&k1, (struct sockaddr *)&a2, ca2, sizeof(ca2));
	cloak_format(&k1, (struct sockaddr *)&b, cb, sizeof(cb));
	cloak_format(&k1, (struct sockaddr *)&m, cm, sizeof(cm));
	cloak_format(&k2, (struct sockaddr *)&a, other, sizeof(other));
	ck_assert_uint_eq(strlen(ca), strlen("cloak-7f3a9c2e1b4d:52842"));
	ck_assert_int_eq(strncmp(ca, "cloak-", 6), 0);
	ck_assert_str_eq(ca + 18, ":52842");
	ck_assert_str_eq(ca2 + 18, ":40000");
	ck_assert_int_eq(strncmp(ca, ca2, 18), 0);
	ck_assert_str_eq(ca, cm);
	ck_assert_int_ne(strncmp(ca, cb, 18), 0);
	ck_assert_int_ne(strncmp(ca, other, 18), 0);
	ck_assert_ptr_null(strstr(ca, "203"));
}
END_TEST

/* Two keys made at start differ (a fixed key would make cloaks
 * reversible by anyone with the source). */
START_TEST(test_keys_are_random)
{
	struct cloak x, y;

	ck_assert_int_eq(cloak_init(&x), 0);
	ck_assert_int_eq(cloak_init(&y), 0);
	ck_assert(x.k0 != y.k0 || x.k1 != y.k1);
}
END_TEST

static Suite *
cloak_suite(void)
{
	Suite *s = suite_create("cloak");
	TCase *tc = tcase_create("cloak");

	tcase_add_test(tc, test_siphash_matches_the_reference_vectors);
	tcase_add_test(tc, test_a_cloak_is_stable_per_address_and_key);
	tcase_add_test(tc, test_keys_are_random);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(cloak_suite());
}
