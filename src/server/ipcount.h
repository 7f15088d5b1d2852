/*
 * Per client address: its connections at once (for --max-per-ip) and its
 * budget of joins announced at once (churn; see accept.h).  Owned by the
 * accept loop's thread, which alone admits and reaps connections: no lock.
 * An address is forgotten once it has no connection and a full budget.
 * Addresses are keyed as 16-byte IPv6, IPv4 as IPv4-mapped, so that a
 * client counts the same whichever way a dual-stack listener saw it.
 */
#ifndef IPCOUNT_H
#define IPCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "flood.h"

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
/* One fewer (an address at zero with a full budget is forgotten). */
void ipcount_del(struct ipcount *t, const unsigned char key[IPCOUNT_KEYLEN], int64_t now_ns);

/* Take one join of the address's budget (limit l), if there is one now:
 * true if taken.  The address must be counted. */
bool ipcount_take_join(struct ipcount *t, const unsigned char key[IPCOUNT_KEYLEN],
                       const struct flood_limit *l, int64_t now_ns);

/* Forget every address with no connection and a full budget. */
void ipcount_sweep(struct ipcount *t, int64_t now_ns);

#endif /* IPCOUNT_H */
