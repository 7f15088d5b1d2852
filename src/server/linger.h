/*
 * Polite closing.  A connection that has left is not closed at once: what
 * is queued for it is written out first, then its write side is shut down
 * (the FIN follows the last byte), and its input is read and thrown away
 * until the peer closes too, or LINGER_MS have passed.  Closing a socket
 * with unread input makes Linux answer with RST and throw away what the
 * socket still held: "* goodbye", "* server shutting down" and the last
 * lines would be lost on a real network.  nginx's lingering_close does the
 * same, for the same reason.
 *
 * Threads: owned by the accept loop, which alone calls these functions;
 * no lock.  A lingering connection is busy for good (conn_linger_begin),
 * so that no other thread re-arms its descriptor, and is watched
 * level-triggered, not ONESHOT: no job will run for it again.
 */
#ifndef LINGER_H
#define LINGER_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* The longest a departed connection is kept for its peer to read. */
#define LINGER_MS 2000
/* Bytes of unwanted input read per event, so that one peer that keeps
 * sending cannot hold the accept loop. */
#define LINGER_READ_BUDGET (64 * 1024)

struct linger_set {
	int epfd;
	struct conn *head, *tail; /* oldest first, so in order of deadline */
	size_t n;
};

void linger_init(struct linger_set *l, int epfd);

/* Take over c, which has left the registry, with the caller's reference
 * (the accept loop's, from accept). */
void linger_add(struct linger_set *l, struct conn *c, long now_ms);

/* An epoll event for a lingering c (c->lingering is set). */
void linger_event(struct linger_set *l, struct conn *c, uint32_t events);

/* Close every connection whose time is up. */
void linger_expire(struct linger_set *l, long now_ms);

/* Milliseconds from now_ms until the next is due (0 if one is), or -1 when
 * none lingers. */
long linger_timeout(const struct linger_set *l, long now_ms);

/* Connections still lingering. */
size_t linger_count(const struct linger_set *l);

/* Close them all, now (the end of shutdown). */
void linger_close_all(struct linger_set *l);

#endif /* LINGER_H */
