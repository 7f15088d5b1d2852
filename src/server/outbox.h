/*
 * The outbox: this server's own lines on their way round the cluster, in
 * the order they were sent, numbered (seq) for the receivers' dedup.
 *
 * An entry is
 *   sent      XADD issued on the current link (cleared when it drops)
 *   acked     Redis has it in the room's stream
 *   delivered our own clients have it (read back from the stream while the
 *             link is up; at once, while it is down)
 * and stays after it is both acked and delivered, up to the bound: after
 * a Redis that restarted empty, the bus sends what is kept again, and the
 * receivers' dedup (origins.h) drops what they already had.
 *
 * The bound is lines and bytes.  Pushing beyond it drops the oldest entry,
 * unless that one is still in flight (our clients have not heard it: the
 * link is up but behind); then the outbox grows, up to OUTBOX_SLACK times
 * the bound, rather than deliver out of the cluster's order.
 * One never sent is a line other servers will never get, counted in lost
 * (their dedup sees the gap and says so); one sent and not yet confirmed
 * reaches them unless the link drops first (unconfirmed); one our own
 * clients have not heard yet is delivered to them first, out of the
 * cluster's order (early: the link is behind by more than the bound).
 * Nothing here locks: the cluster holds its mutex around every call.
 */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "msg.h"

/* Bytes of a room's name, "#x" (room.h's ROOM_NAME_MAX + 2). */
#define OUTBOX_ROOM_MAX 34

struct outbox_entry {
	uint64_t seq;
	char room[OUTBOX_ROOM_MAX]; /* the room it is for */
	uint64_t rgen, rseq; /* its number in the room (streams.h), set by the caller */
	char *topic;         /* NULL, or the room's new topic ("by<TAB>text"), owned */
	enum bus_kind kind;
	uint64_t from; /* the sender's join_seq; 0: the server */
	bool remote_only; /* for the other servers only (a re-announcement) */
	struct msg *m;    /* a reference */
	bool sent, acked, delivered;
	int64_t pushed_ns; /* CLOCK_MONOTONIC ns when it was pushed */
};

/* How far past its bound the outbox grows while every line in it is still
 * in flight (the link is up but behind), before it delivers early. */
#define OUTBOX_SLACK 4

struct outbox {
	struct outbox_entry *ring;
	size_t lines;         /* the bound, in lines */
	size_t cap, head, len; /* the ring: cap >= lines */
	size_t bytes, max_bytes;
	uint64_t next_seq;   /* the seq of the next entry pushed */
	uint64_t lost;        /* dropped never sent, since the counts were last taken */
	uint64_t unconfirmed; /* dropped sent but not confirmed, likewise */
	uint64_t early;       /* delivered to our clients early, likewise */
	size_t unsent;       /* entries not sent on the current link: the newest ones */
};

/* Room for lines entries and max_bytes bytes of messages; 0 or -ENOMEM. */
int outbox_init(struct outbox *o, size_t lines, size_t max_bytes);
void outbox_destroy(struct outbox *o);

/*
 * Append m (taking a reference) for room, with a copy of topic (NULL:
 * none), with the next seq, which it returns (or 0 when out of memory for
 * the topic: nothing is appended).  If
 * the outbox is full, the oldest entry goes first: if it was never
 * delivered, deliver(arg, entry) is called for it before it goes, so that
 * no line of ours is lost to our own clients.
 */
uint64_t outbox_push(struct outbox *o, enum bus_kind kind, const char *room, const char *topic,
                     uint64_t from, bool remote_only, struct msg *m, bool delivered,
                     void (*deliver)(void *arg, struct outbox_entry *e), void *arg);

/* The entry with this seq, or NULL if it is not kept (any more). */
struct outbox_entry *outbox_find(struct outbox *o, uint64_t seq);

/* The oldest entry not sent on this link, or NULL. */
struct outbox_entry *outbox_next_unsent(struct outbox *o);

/* The link dropped: nothing is sent on the next one until sent again;
 * keep_acked false (Redis lost its data) sends again even what it had. */
void outbox_unsend(struct outbox *o, bool keep_acked);

/* The i-th oldest entry (i < len). */
struct outbox_entry *outbox_at(struct outbox *o, size_t i);

#endif /* OUTBOX_H */
