/*
 * A room: the members one fan-out reaches, the room's history and topic.
 *
 * Rooms live in the registry (broadcast.h), whose rwlock guards their
 * table and their membership: a fan-out takes it for reading and walks
 * one room's members only, so fan-outs in different rooms never wait for
 * each other; a move between rooms (/join) takes it for writing, so a
 * client is in exactly one room at every instant any line is relayed.
 *
 * Ownership: refs (atomic) counts the table's reference (while listed)
 * and every holder's (a member's conn.room; a departure notice on its way
 * to the room that was left).  The last room_unref() frees it.  An empty
 * room other than #lobby is taken off the table at once, so it disappears
 * with its topic and history, and a later /join of its name makes a new
 * one.
 */
#ifndef ROOM_H
#define ROOM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "msg.h"

/* Characters of a room's name, without its '#'. */
#define ROOM_NAME_MAX 32
/* Bytes of a topic. */
#define ROOM_TOPIC_MAX 300
/* Bytes of who set it: a member's name, nick@addr (conn.h). */
#define ROOM_BY_MAX 96

struct conn;

struct room {
	char name[ROOM_NAME_MAX + 2]; /* immutable: "#lobby", as first typed */
	atomic_uint refs;

	/* The registry's lock. */
	struct conn **conns; /* members, each holding its conn.room reference on us */
	size_t n, cap;
	bool listed;                    /* in the registry's table */
	struct room *hnext;             /* its chain in the registry's index */
	char topic[ROOM_TOPIC_MAX + 1]; /* "" if none */
	char topic_by[ROOM_BY_MAX];     /* who set it: a name (nick@addr) */

	/*
	 * The last hist_max chat lines.  Appended by fan-outs, which hold the
	 * registry's read lock, under hist_mu; replayed by moves into the
	 * room, which hold the write lock and so exclude every fan-out: a
	 * line is either in a newcomer's history or reaches it live, never
	 * both.  Lock order: registry lock -> hist_mu.
	 */
	pthread_mutex_t hist_mu;
	struct msg **hist;
	size_t hist_max, hist_head, hist_len;
};

/*
 * Check a room name typed by a client (the '#' optional): 1 to
 * ROOM_NAME_MAX letters, digits, '-' or '_'.  Writes "#name" to out
 * (ROOM_NAME_MAX + 2 bytes).  Returns 0 or -EINVAL.
 */
int room_name_parse(const char *s, size_t n, char *out);

/* A room named name ("#x"), keeping history lines, with one reference
 * for the caller.  Returns 0 or -ENOMEM. */
int room_new(struct room **out, const char *name, size_t history);
void room_ref(struct room *r);
void room_unref(struct room *r);

/* Names equal without regard to case. */
bool room_is(const struct room *r, const char *name);

/* A hash of a name without regard to case (FNV-1a), for the registry's
 * index of rooms. */
unsigned room_hash(const char *name);

/* Registry write lock held: room for one more member (0 or -ENOMEM),
 * so that a move can take c out of one room before it adds it to the
 * other (both use c->room_index) and never fail in between. */
int room_reserve(struct room *r);
/* Registry write lock held, room reserved: add c (its room_index set). */
void room_add(struct room *r, struct conn *c);
/* Registry write lock held: take c out (its room_index cleared). */
void room_remove(struct room *r, struct conn *c);

/* Registry read lock held: msgs enter the history, the oldest leave it. */
void room_record(struct room *r, struct msg *const *msgs, size_t n);

/* Registry write lock held: queue the history to c, oldest first, and
 * a notice that marks its end.  True if anything was queued (c must be
 * written to). */
bool room_replay(struct room *r, struct conn *c);

#endif /* ROOM_H */
