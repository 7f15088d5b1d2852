/*
 * The registry of connected clients and the fan-out of messages to them.
 *
 * One pthread rwlock guards the set, the table of rooms and every room's
 * membership (room.h).  Fan-out takes it for reading, walks one room's
 * members (or, for what the whole server must hear, all of them) and only
 * appends references to the recipients' send queues (a per-connection
 * mutex each: lock order registry -> room hist_mu -> conn mu).  Join,
 * leave and a move between rooms take it for writing; the lock prefers
 * writers, so that a busy room cannot starve a join.  Fan-outs in
 * different rooms share the lock for reading and so never wait for each
 * other; a move is atomic against every fan-out, which is what makes a
 * client get a room's lines from the moment it entered until it left,
 * each once.
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
#include "greet.h"
#include "room.h"

/* Where everyone starts, and the room that never disappears. */
#define BROADCAST_LOBBY "#lobby"
/* Rooms at once, #lobby included, unless the server says otherwise. */
#define BROADCAST_MAX_ROOMS 1000
/* Chains of the index of rooms by name (a power of two). */
#define BROADCAST_ROOM_BUCKETS 1024

struct broadcast {
	pthread_rwlock_t lock;
	struct conn **conns; /* lock: the members, each holding a reference */
	size_t n, cap;       /* lock */
	uint64_t join_seq;   /* lock (write): the last member's conn->join_seq */

	/* lock: the rooms with members, and #lobby, each holding the
	 * table's reference. */
	struct room **rooms;
	size_t nrooms, rooms_cap;
	struct room *lobby; /* immutable */
	/* lock: the listed rooms by name (room_hash), chained by room.hnext,
	 * so that finding a room costs the same with 1,000 rooms as with 1 */
	struct room *room_index[BROADCAST_ROOM_BUCKETS];
	size_t max_rooms;   /* set before any join, immutable after */
	size_t history;     /* immutable: chat lines each room keeps */

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

	/* What a newcomer gets before anything else (greet.h); set before
	 * any join, immutable after.  NULL: no greeting. */
	struct greet *greet;
};

/* A registry that keeps the last history chat lines for newcomers (0:
 * none).  Returns 0 or a negative errno. */
int broadcast_init(struct broadcast *b, size_t history);
/* Drops the registry's references to any members left, and the out
 * list's. */
void broadcast_destroy(struct broadcast *b);

/* Add c (taking a reference) to the registry and #lobby, and queue the
 * greeting and the lobby's history to it, ahead of anything else (written
 * by the next broadcast_flush()); *online receives the count with it.
 * Returns 0 or -ENOMEM. */
int broadcast_join(struct broadcast *b, struct conn *c, size_t *online);

/* Remove c (dropping the registry's reference) if it is a member, from
 * its room too.  Returns the count left; *was (if not NULL) receives the
 * room it was in, with a reference for the caller (NULL if it was no
 * member), where its departure is to be told. */
size_t broadcast_leave_room(struct broadcast *b, struct conn *c, struct room **was);
size_t broadcast_leave(struct broadcast *b, struct conn *c);

/*
 * From c's own job: move c to the room called name ("#x", checked),
 * making it if there is none (at most max_rooms).  Atomic against every
 * fan-out.  The new room's history is queued to c.  On success *left is
 * the room c left, with a reference for the caller, and *here the count
 * in the new one.  Returns 0, -EALREADY (c is in it), -ENOSPC (max_rooms
 * reached) or -ENOMEM.
 */
int broadcast_move(struct broadcast *b, struct conn *c, const char *name, struct room **left,
                   size_t *here);

/* One room as /rooms shows it, copied under the lock. */
struct broadcast_room {
	char name[ROOM_NAME_MAX + 2];
	char topic[ROOM_TOPIC_MAX + 1];
	size_t members;
};

/* The rooms, in a new array (NULL when out of memory), their count in *n. */
struct broadcast_room *broadcast_rooms(struct broadcast *b, size_t *n);

/* The topic of c's room (c's own job), set to set first unless it is
 * NULL; copied to topic, and who set it to by. */
void broadcast_topic(struct broadcast *b, struct conn *c, const char *set, char *topic, size_t len,
                     char *by, size_t bylen);

size_t broadcast_online(struct broadcast *b);

/*
 * Queue msgs, in order, to every member of from's room but from (from
 * NULL: to every member of the server), and note the recipients whose
 * queues were empty for broadcast_flush().  A recipient over its
 * send-queue cap is dropped; the others are not slowed.  Then hand them
 * to the bus, if one is set.  Returns the number of local recipients the
 * messages were queued to.
 */
size_t broadcast_send(struct broadcast *b, const struct conn *from, struct msg *const *msgs,
                      size_t n);

/* As broadcast_send, to the members of room (held by the caller): the
 * departure notice of one who has left it. */
size_t broadcast_send_room(struct broadcast *b, struct room *room, const struct conn *from,
                           struct msg *const *msgs, size_t n);

/* As broadcast_send, to every local member of the server: for what other
 * servers must not see (our shutdown) and for the bus's own notices. */
size_t broadcast_send_local(struct broadcast *b, const struct conn *from, struct msg *const *msgs,
                            size_t n);

/* As broadcast_send, for chat lines: they also enter the room's history. */
size_t broadcast_send_chat(struct broadcast *b, const struct conn *from, struct msg *const *msgs,
                           size_t n);

/*
 * As broadcast_send, to #lobby, for the join notices of a batch of new
 * members, in join order: msgs[i] announces skip[i].  Each member hears only of those
 * who joined after it (by conn->join_seq), never of those before, however
 * the announce jobs of several batches interleave; and each recipient gets
 * its part of the batch in one write.
 */
size_t broadcast_send_except(struct broadcast *b, struct msg *const *msgs, struct conn *const *skip,
                             size_t n);

/* As broadcast_send, from c (its own job): the notice of a new topic of
 * c's room, topic ("by<TAB>text"), which the bus gives other servers. */
size_t broadcast_send_topic(struct broadcast *b, const struct conn *from, struct msg *m,
                            const char *topic);

/* To the local members of the room called room, if it has any here, and
 * to nobody else (the bus's own notices about that room). */
size_t broadcast_send_named(struct broadcast *b, const char *room, struct msg *const *msgs,
                            size_t n);

/*
 * For the bus (bus.h): msgs, in order, to the local members of the room
 * called room (nobody, if it has none here), each but to its own sender
 * (from_seqs[i] is its join_seq; 0: the server), without handing them to
 * the bus again; chat lines enter the room's history.  What came back
 * from the cluster's log, many senders' lines in one batch, or what the
 * bus keeps for it while the link is down.
 */
size_t broadcast_deliver(struct broadcast *b, const char *room, const uint64_t *from_seqs,
                         struct msg *const *msgs, size_t n, bool chat);

/* The bus, when it starts to read a room's log: its last chat lines
 * enter the room's history, if that is still empty, and are replayed to
 * the members already in it (who have heard nothing of it yet). */
void broadcast_seed_history(struct broadcast *b, const char *room, struct msg *const *msgs,
                            size_t n);

/* The bus: another server set the topic of room (only_if_none: unless
 * it has one here already). */
void broadcast_set_topic(struct broadcast *b, const char *room, const char *topic,
                         const char *by, bool only_if_none);

/* The names of the rooms with members here (and #lobby), each in
 * ROOM_NAME_MAX + 2 bytes, in a new array; their count in *n.  NULL when
 * out of memory. */
char *broadcast_room_names(struct broadcast *b, size_t *n);

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

/* The names (nick@addr or addr) of the members of in's room (in NULL:
 * of the server) joined by ", ", in a new string, and their count in *n;
 * NULL when out of memory. */
char *broadcast_names(struct broadcast *b, const struct conn *in, size_t *n);

/* A member and its names as they were, copied under the lock: what a
 * thread other than the member's own job may read of them. */
struct broadcast_member {
	struct conn *c; /* a reference for the caller */
	char nick[CONN_NICK_MAX + 1];
	char name[CONN_NICK_MAX + 1 + NET_ADDRSTRLEN];
	char room[ROOM_NAME_MAX + 2];
};

/* The members with their names, in a new array (NULL with *n == 0 when
 * empty or out of memory); the caller drops each reference. */
struct broadcast_member *broadcast_members(struct broadcast *b, size_t *n);

/* The members, each with a reference for the caller, in a new array (NULL
 * with *n == 0 when empty or out of memory). */
struct conn **broadcast_snapshot(struct broadcast *b, size_t *n);

#endif /* BROADCAST_H */
