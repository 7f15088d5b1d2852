/* Cloaked addresses; see cloak.h. */
#define _DEFAULT_SOURCE /* getrandom */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cloak.h"
#include "ipcount.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* One SipRound over the state v[4]. */
static void
sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

/* Little-endian 64-bit word at p, whatever the host's order. */
static uint64_t
le64(const unsigned char *p)
{
	uint64_t w = 0;

	for (int i = 7; i >= 0; i--)
		w = (w << 8) | p[i];
	return w;
}

uint64_t
cloak_siphash(uint64_t k0, uint64_t k1, const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t v[4] = {
		k0 ^ 0x736f6d6570736575ULL,
		k1 ^ 0x646f72616e646f6dULL,
		k0 ^ 0x6c7967656e657261ULL,
		k1 ^ 0x7465646279746573ULL,
	};
	uint64_t m, last = (uint64_t)(n & 0xff) << 56;
	size_t i, full = n - n % 8;

	for (i = 0; i < full; i += 8) {
		m = le64(p + i);
		v[3] ^= m;
		sipround(v);
		sipround(v);
		v[0] ^= m;
	}
	for (size_t k = 0; i + k < n; k++)
		last |= (uint64_t)p[i + k] << (8 * k);
	v[3] ^= last;
	sipround(v);
	sipround(v);
	v[0] ^= last;
	v[2] ^= 0xff;
	for (int r = 0; r < 4; r++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

int
cloak_init(struct cloak *ck)
{
	uint64_t key[2];
	size_t got = 0;

	while (got < sizeof(key)) {
		ssize_t n = getrandom((char *)key + got, sizeof(key) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	ck->k0 = key[0];
	ck->k1 = key[1];
	return 0;
}

void
cloak_format(const struct cloak *ck, const struct sockaddr *sa, char *buf, size_t len)
{
	unsigned char key[IPCOUNT_KEYLEN];
	unsigned port = 0;

	/* The address as admission counts it: an IPv4 client of a dual-stack
	 * socket cloaks as the same IPv4 address would. */
	ipcount_key(sa, key);
	if (sa->sa_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	else if (sa->sa_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	snprintf(buf, len, "cloak-%012llx:%u",
	         (unsigned long long)(cloak_siphash(ck->k0, ck->k1, key, sizeof(key)) >> 16),
	         port);
}
