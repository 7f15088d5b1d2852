/*
 * The registry of connected clients and the fan-out of messages to them.
 *
 * One pthread rwlock guards the set.  Fan-out takes it for reading and only
 * appends references to the recipients' send queues (a per-connection
 * mutex each: lock order registry -> conn mu).  Join and leave take it for
 * writing; the lock prefers writers, so that a busy room cannot starve a
 * join.
 *
 * Writes are deferred.  A fan-out that turns a recipient's queue non-empty
 * notes the recipient on the out list; broadcast_flush() writes to every
 * noted recipient.  The server calls it when no job is waiting to run, or
 * when the oldest note is 2 ms old: lines that several fan-outs
 * queue to one recipient meanwhile leave in one writev, so that the busier
 * the room, the fewer system calls per line.  This is Redis's "write
 * before sleeping", with the pool's idleness for the event loop's sleep.
 */
#ifndef BROADCAST_H
#define BROADCAST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "conn.h"

struct broadcast {
	pthread_rwlock_t lock;
	struct conn **conns; /* lock: the members, each holding a reference */
	size_t n, cap;       /* lock */
	uint64_t join_seq;   /* lock (write): the last member's conn->join_seq */

	/*
	 * The last hist_max chat lines, for those who join.  Appended by
	 * fan-outs, which hold the read lock, under hist_mu; read by joins,
	 * which hold the write lock and so exclude every fan-out.  Lock
	 * order: lock -> hist_mu.
	 */
	pthread_mutex_t hist_mu;
	struct msg **hist; /* ring of hist_max, each holding a reference */
	size_t hist_max, hist_head, hist_len;

	/*
	 * The out list: recipients to write to, linked through
	 * conn->out_next, each once (conn->out_listed) and holding a
	 * reference.  out_mu guards the list and those two fields; it is
	 * taken alone or under lock, never with a conn mu.
	 */
	pthread_mutex_t out_mu;
	struct conn *out_head, *out_tail;
	size_t out_len;
	_Atomic long long out_since; /* ns when the list last became non-empty */

	/* What must also reach other servers (bus.h); set before any fan-out,
	 * immutable after.  Empty: standalone. */
	struct bus_hook bus;
};

/* A registry that keeps the last history chat lines for newcomers (0:
 * none).  Returns 0 or a negative errno. */
int broadcast_init(struct broadcast *b, size_t history);
/* Drops the registry's references to any members left, and the out
 * list's. */
void broadcast_destroy(struct broadcast *b);

/* Add c (taking a reference) and queue the history to it, ahead of
 * anything else (written by the next broadcast_flush()); *online receives
 * the count with it.  Returns 0 or -ENOMEM. */
int broadcast_join(struct broadcast *b, struct conn *c, size_t *online);

/* Remove c (dropping the registry's reference) if it is a member.
 * Returns the count left. */
size_t broadcast_leave(struct broadcast *b, struct conn *c);

size_t broadcast_online(struct broadcast *b);

/*
 * Queue msgs, in order, to every member but from (which may be NULL), and
 * note the recipients whose queues were empty for broadcast_flush().  A
 * recipient over its send-queue cap is dropped; the others are not slowed.
 * Then hand them to the bus, if one is set.  Returns the number of local
 * recipients the messages were queued to.
 */
size_t broadcast_send(struct broadcast *b, const struct conn *from, struct msg *const *msgs,
                      size_t n);

/* As broadcast_send, to the local members only: for what other servers
 * must not see (our shutdown) and for what came from them (the bus). */
size_t broadcast_send_local(struct broadcast *b, const struct conn *from, struct msg *const *msgs,
                            size_t n);

/* As broadcast_send, for chat lines: they also enter the history. */
size_t broadcast_send_chat(struct broadcast *b, const struct conn *from, struct msg *const *msgs,
                           size_t n);

/*
 * As broadcast_send, for the join notices of a batch of new members, in
 * join order: msgs[i] announces skip[i].  Each member hears only of those
 * who joined after it (by conn->join_seq), never of those before, however
 * the announce jobs of several batches interleave; and each recipient gets
 * its part of the batch in one write.
 */
size_t broadcast_send_except(struct broadcast *b, struct msg *const *msgs, struct conn *const *skip,
                             size_t n);

/*
 * For the bus (bus.h): msgs, in order, to the local members, each but to
 * its own sender (from_seqs[i] is its join_seq; 0: the server), without
 * handing them to the bus again; chat lines enter the history.  What came
 * back from the cluster's log, many senders' lines in one batch, or what
 * the bus keeps for it while the link is down.
 */
size_t broadcast_deliver(struct broadcast *b, const uint64_t *from_seqs, struct msg *const *msgs,
                         size_t n, bool chat);

/* Chat lines into the history only (the bus, filling it from the
 * cluster's log at start). */
void broadcast_record(struct broadcast *b, struct msg *const *msgs, size_t n);

/* The member whose join_seq is seq, with a reference for the caller;
 * NULL if none. */
struct conn *broadcast_find_seq(struct broadcast *b, uint64_t seq);

/* No member but c has this nick (without regard to case), now. */
bool broadcast_nick_free(struct broadcast *b, const struct conn *c, const char *nick);

/*
 * Write to every recipient on the out list.  Safe from any thread, and from
 * several at once, which share the work; each writes at most as many as
 * were listed when it began, and leaves later notes to the next call.  A
 * recipient whose socket is full waits for EPOLLOUT.
 */
void broadcast_flush(struct broadcast *b);

/* CLOCK_MONOTONIC nanoseconds since the out list became non-empty (0 when
 * it is empty). */
long long broadcast_flush_age(struct broadcast *b, long long now_ns);

/*
 * Give member c the nick (already validated): unique among members without
 * regard to case.  Sets c->nick and c->name ("nick@addr").  Call only from
 * c's own job.  Returns 0 or -EEXIST.
 */
int broadcast_set_nick(struct broadcast *b, struct conn *c, const char *nick);

/* Take member c's nick away: its name is its address again.  Call only from
 * c's own job. */
void broadcast_clear_nick(struct broadcast *b, struct conn *c);

/* The member with this nick (without regard to case), with a reference for
 * the caller, its nick as it is now copied to out (len bytes); NULL if
 * none.  The copy is what the caller may print: the member's own job may
 * rename it at any time, under the write lock. */
struct conn *broadcast_find_nick(struct broadcast *b, const char *nick, char *out, size_t len);

/* The members' names (nick@addr or addr) joined by ", ", in a new string,
 * and their count in *n; NULL when out of memory. */
char *broadcast_names(struct broadcast *b, size_t *n);

/* A member and its names as they were, copied under the lock: what a
 * thread other than the member's own job may read of them. */
struct broadcast_member {
	struct conn *c; /* a reference for the caller */
	char nick[CONN_NICK_MAX + 1];
	char name[CONN_NICK_MAX + 1 + NET_ADDRSTRLEN];
};

/* The members with their names, in a new array (NULL with *n == 0 when
 * empty or out of memory); the caller drops each reference. */
struct broadcast_member *broadcast_members(struct broadcast *b, size_t *n);

/* The members, each with a reference for the caller, in a new array (NULL
 * with *n == 0 when empty or out of memory). */
struct conn **broadcast_snapshot(struct broadcast *b, size_t *n);

#endif /* BROADCAST_H */
