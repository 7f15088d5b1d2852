/*
 * Connections per client address, for --max-per-ip.  Owned by the accept
 * loop's thread, which alone admits and reaps connections: no lock.
 * Addresses are keyed as 16-byte IPv6, IPv4 as IPv4-mapped, so that a
 * client counts the same whichever way a dual-stack listener saw it.
 */
#ifndef IPCOUNT_H
#define IPCOUNT_H

#include <stddef.h>
#include <sys/socket.h>

#define IPCOUNT_KEYLEN 16

struct ipcount;

/* Returns 0 or -ENOMEM. */
int ipcount_new(struct ipcount **out);
void ipcount_free(struct ipcount *t);

/* The key of a peer address (IPv4 or IPv6). */
void ipcount_key(const struct sockaddr *sa, unsigned char key[IPCOUNT_KEYLEN]);

/* Connections counted for key. */
size_t ipcount_get(const struct ipcount *t, const unsigned char key[IPCOUNT_KEYLEN]);
/* One more; returns 0 or -ENOMEM. */
int ipcount_add(struct ipcount *t, const unsigned char key[IPCOUNT_KEYLEN]);
/* One fewer (an address at zero is forgotten). */
void ipcount_del(struct ipcount *t, const unsigned char key[IPCOUNT_KEYLEN]);

#endif /* IPCOUNT_H */
