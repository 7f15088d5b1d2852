/*
 * --cloak: addresses shown as stable keyed hashes, as IRC networks do.
 * Everyone sees "cloak-7f3a9c2e1b4d:52842" where they would have seen
 * "203.0.113.9:52842": the same address gives the same cloak for the
 * server's life (so a regular is recognisable, and two clients behind one
 * address still differ by port), and nobody can go back from cloak to
 * address without the key, which is random, made at start and never
 * shown.  The hash is SipHash-2-4, a keyed pseudo-random function made
 * for short inputs: without the key, a cloak says nothing of its address,
 * and trying every IPv4 address against it is no help.  The log keeps
 * real addresses; only what clients see is cloaked.
 *
 * Immutable once made: read by any thread.
 */
#ifndef CLOAK_H
#define CLOAK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cloak {
	uint64_t k0, k1; /* the key */
};

/* A cloak with a fresh random key.  Returns 0 or a negative errno. */
int cloak_init(struct cloak *ck);

/* The cloak of sa (its address and port) into buf (len bytes, at least
 * NET_ADDRSTRLEN): "cloak-<12 hex digits>:<port>". */
void cloak_format(const struct cloak *ck, const struct sockaddr *sa, char *buf, size_t len);

/* SipHash-2-4 of the n bytes at p under key (k0, k1). */
uint64_t cloak_siphash(uint64_t k0, uint64_t k1, const void *p, size_t n);

#endif /* CLOAK_H */
