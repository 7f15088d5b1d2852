/* The registry and fan-out; see broadcast.h for the locking. */
#define _GNU_SOURCE /* PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broadcast.h"

/* Recipients a fan-out gathers before it adds them to the out list. */
#define NOTE_CHUNK 128
/* Recipients a write pass takes off the out list at a time. */
#define FLUSH_CHUNK 16

/* Write lock held (or no other thread yet): r is listed; index it. */
static void
index_room(struct broadcast *b, struct room *r)
{
	struct room **head = &b->room_index[room_hash(r->name) & (BROADCAST_ROOM_BUCKETS - 1)];

	r->hnext = *head;
	*head = r;
}

static void
unindex_room(struct broadcast *b, struct room *r)
{
	struct room **pp = &b->room_index[room_hash(r->name) & (BROADCAST_ROOM_BUCKETS - 1)];

	while (*pp != NULL && *pp != r)
		pp = &(*pp)->hnext;
	if (*pp == r)
		*pp = r->hnext;
	r->hnext = NULL;
}

int
broadcast_init(struct broadcast *b, size_t history)
{
	pthread_rwlockattr_t attr;
	int rc;

	b->conns = NULL;
	b->n = b->cap = 0;
	b->history = history;
	b->max_rooms = BROADCAST_MAX_ROOMS;
	b->out_head = b->out_tail = NULL;
	b->out_len = 0;
	atomic_init(&b->out_since, 0);
	memset(&b->bus, 0, sizeof(b->bus));
	b->greet = NULL;
	b->nrooms = 0;
	memset(b->room_index, 0, sizeof(b->room_index));
	if ((b->rooms = malloc(8 * sizeof(*b->rooms))) == NULL)
		return -ENOMEM;
	b->rooms_cap = 8;
	if ((rc = -room_new(&b->lobby, BROADCAST_LOBBY, history)) != 0)
		goto fail_hist;
	b->lobby->listed = true;
	b->rooms[b->nrooms++] = b->lobby; /* the table's reference */
	index_room(b, b->lobby);
	if ((rc = pthread_mutex_init(&b->out_mu, NULL)) != 0)
		goto fail_mu;
	if ((rc = pthread_rwlockattr_init(&attr)) != 0)
		goto fail_out;
#ifdef PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP
	/* glibc's default prefers readers: with messages flowing all the
	 * time, a join could wait for ever. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	rc = pthread_rwlock_init(&b->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc == 0)
		return 0;
fail_out:
	pthread_mutex_destroy(&b->out_mu);
fail_mu:
	room_unref(b->lobby);
fail_hist:
	free(b->rooms);
	return -rc;
}

void
broadcast_destroy(struct broadcast *b)
{
	for (size_t i = 0; i < b->n; i++) {
		room_unref(b->conns[i]->room);
		b->conns[i]->room = NULL;
		conn_unref(b->conns[i]);
	}
	free(b->conns);
	for (size_t i = 0; i < b->nrooms; i++)
		room_unref(b->rooms[i]);
	free(b->rooms);
	while (b->out_head != NULL) {
		struct conn *c = b->out_head;

		b->out_head = c->out_next;
		c->out_listed = false;
		conn_unref(c);
	}
	pthread_mutex_destroy(&b->out_mu);
	pthread_rwlock_destroy(&b->lock);
}

/* Put n recipients on the out list, each at most once. */
static void
note(struct broadcast *b, struct conn *const *cs, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&b->out_mu);
	if (b->out_head == NULL)
		atomic_store_explicit(&b->out_since, mono_ns(), memory_order_relaxed);
	for (size_t i = 0; i < n; i++) {
		struct conn *c = cs[i];

		if (c->out_listed)
			continue; /* written by the pass that has it */
		c->out_listed = true;
		c->out_next = NULL;
		conn_ref(c);
		if (b->out_tail != NULL)
			b->out_tail->out_next = c;
		else
			b->out_head = c;
		b->out_tail = c;
		b->out_len++;
	}
	pthread_mutex_unlock(&b->out_mu);
}

/*
 * In chunks, so that the workers that come here while a pass is under way
 * share it rather than wait for it; and bounded by the length of the list
 * on entry, so that one worker is never stuck writing while the others
 * keep noting.
 */
void
broadcast_flush(struct broadcast *b)
{
	struct conn *take[FLUSH_CHUNK];
	size_t left, n, i;

	pthread_mutex_lock(&b->out_mu);
	left = b->out_len;
	while (left > 0 && b->out_head != NULL) {
		for (n = 0; n < FLUSH_CHUNK && n < left && b->out_head != NULL; n++) {
			struct conn *c = b->out_head;

			/* Unlisted before the write: a line queued after
			 * this is noted again, and never missed. */
			b->out_head = c->out_next;
			c->out_next = NULL;
			c->out_listed = false;
			take[n] = c;
		}
		b->out_len -= n;
		left -= n;
		if (b->out_head == NULL) {
			b->out_tail = NULL;
			atomic_store_explicit(&b->out_since, 0, memory_order_relaxed);
		}
		pthread_mutex_unlock(&b->out_mu);
		for (i = 0; i < n; i++) {
			conn_flush(take[i]);
			conn_unref(take[i]);
		}
		pthread_mutex_lock(&b->out_mu);
	}
	pthread_mutex_unlock(&b->out_mu);
}

long long
broadcast_flush_age(struct broadcast *b, long long now)
{
	long long since = atomic_load_explicit(&b->out_since, memory_order_relaxed);

	return since == 0 ? 0 : now - since;
}

/* Tell the bus the registry changed, if one listens.  room: c's room
 * now, or the one it left. */
static void
member_changed(struct broadcast *b, struct conn *c, const char *room, enum bus_member op)
{
	if (b->bus.member != NULL)
		b->bus.member(b->bus.arg, c, room, op);
}

/* Tell the bus the set of rooms with members changed. */
static void
rooms_changed(struct broadcast *b)
{
	if (b->bus.rooms_changed != NULL)
		b->bus.rooms_changed(b->bus.arg);
}

int
broadcast_join(struct broadcast *b, struct conn *c, size_t *online)
{
	pthread_rwlock_wrlock(&b->lock);
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct conn **p = realloc(b->conns, cap * sizeof(*p));

		if (p == NULL) {
			pthread_rwlock_unlock(&b->lock);
			return -ENOMEM;
		}
		b->conns = p;
		b->cap = cap;
	}
	if (room_reserve(b->lobby) != 0) {
		pthread_rwlock_unlock(&b->lock);
		return -ENOMEM;
	}
	room_add(b->lobby, c);
	conn_ref(c);
	room_ref(b->lobby);
	c->room = b->lobby;
	c->join_seq = ++b->join_seq;
	c->reg_index = b->n;
	b->conns[b->n++] = c;
	*online = b->n;
	if (b->greet != NULL) {
		struct msg *hello[2];
		size_t k = greet_make(b->greet, c->shown, BROADCAST_LOBBY, b->n, hello);

		if (k > 0 && conn_enqueue(c, hello, k) >= 0)
			note(b, &c, 1);
		for (size_t i = 0; i < k; i++)
			msg_unref(hello[i]);
	}
	if (room_replay(b->lobby, c))
		note(b, &c, 1);
	pthread_rwlock_unlock(&b->lock);
	member_changed(b, c, BROADCAST_LOBBY, BUS_JOINED);
	return 0;
}

/* Write lock held: an empty room but #lobby leaves the table (and with
 * the table's reference, if nobody else holds one, memory).  True if it
 * did. */
static bool
unlist_if_empty_locked(struct broadcast *b, struct room *r)
{
	if (r->n > 0 || r == b->lobby || !r->listed)
		return false;
	for (size_t i = 0; i < b->nrooms; i++)
		if (b->rooms[i] == r) {
			b->rooms[i] = b->rooms[--b->nrooms];
			break;
		}
	unindex_room(b, r);
	r->listed = false;
	room_unref(r);
	return true;
}

/* Write lock held: c leaves its room, which leaves the table if it is
 * empty now (but #lobby: *gone says).  Returns the room with c's
 * reference on it. */
static struct room *
leave_room_locked(struct broadcast *b, struct conn *c, bool *gone)
{
	struct room *r = c->room;

	room_remove(r, c);
	c->room = NULL;
	*gone = unlist_if_empty_locked(b, r);
	return r;
}

size_t
broadcast_leave_room(struct broadcast *b, struct conn *c, struct room **was)
{
	struct room *r = NULL;
	bool member, gone = false;
	size_t left;

	pthread_rwlock_wrlock(&b->lock);
	member = c->reg_index < b->n && b->conns[c->reg_index] == c;
	if (member) {
		/* Swap the last member into the hole: O(1), order is free. */
		struct conn *last = b->conns[--b->n];

		b->conns[c->reg_index] = last;
		last->reg_index = c->reg_index;
		c->reg_index = SIZE_MAX;
		r = leave_room_locked(b, c, &gone);
	}
	left = b->n;
	pthread_rwlock_unlock(&b->lock);
	if (member) {
		member_changed(b, c, r->name, BUS_LEFT);
		conn_unref(c);
	}
	if (gone)
		rooms_changed(b);
	if (was != NULL)
		*was = r;
	else
		room_unref(r);
	return left;
}

size_t
broadcast_leave(struct broadcast *b, struct conn *c)
{
	return broadcast_leave_room(b, c, NULL);
}

size_t
broadcast_online(struct broadcast *b)
{
	size_t n;

	pthread_rwlock_rdlock(&b->lock);
	n = b->n;
	pthread_rwlock_unlock(&b->lock);
	return n;
}

/*
 * Queue msgs to member c; for join notices (skip set, msgs[j] announcing
 * skip[j], in join order), only those of members who joined after c.
 * Batches of joins are announced by jobs that may run in any order, so
 * this compares join sequence numbers rather than positions in one batch.
 * Returns what conn_enqueue returns (1 when the caller must flush c), or
 * -ENODATA when c is to get nothing.
 */
static int
enqueue_except(struct conn *c, struct msg *const *msgs, struct conn *const *skip, size_t n)
{
	size_t j = 0;

	if (skip != NULL)
		while (j < n && skip[j]->join_seq <= c->join_seq)
			j++;
	return j < n ? conn_enqueue(c, msgs + j, n - j) : -ENODATA;
}

/*
 * Per recipient this is one mutex and a few pointer stores: the message is
 * shared by reference, never copied, and nothing is allocated (a queue
 * grows by doubling, so rarely).  The writes come later, in
 * broadcast_flush().
 */
/* What a fan-out is: kept in the history, and seen by other servers. */
enum { FAN_CHAT = 1, FAN_BUS = 2 };

/*
 * Queue msgs to member c but those it sent itself (from_seqs[i] is the
 * sender's join_seq, 0: the server): the bus's delivery of what came back
 * from the cluster's log, many senders in one batch.  Returns as
 * enqueue_except does.
 */
static int
enqueue_but_own(struct conn *c, struct msg *const *msgs, const uint64_t *from_seqs, size_t n)
{
	int rc = -ENODATA;
	size_t i = 0, j;

	while (i < n) {
		while (i < n && from_seqs[i] == c->join_seq)
			i++;
		for (j = i; j < n && from_seqs[j] != c->join_seq; j++)
			;
		if (j > i) {
			int r = conn_enqueue(c, msgs + i, j - i);

			if (r < 0)
				return r;
			if (r > rc)
				rc = r;
		}
		i = j;
	}
	return rc;
}

/* Who a fan-out reaches: one room, the room of that name (if it has
 * members here), its sender's, or every member. */
enum { TO_ROOM, TO_NAMED, TO_SENDERS, TO_ALL };

static struct room *find_room_locked(struct broadcast *b, const char *name);

/* One fan-out: what, to whom, and how (fan_out). */
struct fan {
	int to;
	struct room *room;     /* TO_ROOM */
	const char *name;      /* TO_NAMED */
	const struct conn *from;
	const uint64_t *from_seqs; /* the bus's delivery: each line's sender */
	struct msg *const *msgs;
	struct conn *const *skip; /* join notices: whom each announces */
	size_t n;
	int how;
	const char *topic; /* the room's new topic, for the bus */
};

static size_t
fan_out(struct broadcast *b, const struct fan *f)
{
	bool chat = f->how & FAN_CHAT;
	struct conn *noted[NOTE_CHUNK], *now[NOTE_CHUNK], **conns;
	struct conn *const *skip = f->skip;
	struct msg *const *msgs = f->msgs;
	const struct conn *from = f->from;
	const uint64_t *from_seqs = f->from_seqs;
	struct room *room = f->room;
	size_t nnoted = 0, nnow = 0, sent = 0, i, count, n = f->n;
	int to = f->to;

	/* Taken by the bus: we fan out when the cluster's log brings the
	 * lines back, in its order (bus.h).  The sender's room is read
	 * without the lock: only the sender's own job, which is the caller,
	 * moves it. */
	if ((f->how & FAN_BUS) && b->bus.publish != NULL) {
		const char *name = to == TO_ROOM ? room->name
		                   : to == TO_SENDERS && from != NULL && from->room != NULL
		                           ? from->room->name
		                           : BROADCAST_LOBBY;

		if (b->bus.publish(b->bus.arg, chat ? BUS_CHAT : BUS_NOTICE, name, f->topic, from,
		                   skip, msgs, n))
			return 0;
	}
	pthread_rwlock_rdlock(&b->lock);
	/* The sender's room, read under the lock: only the sender's own job
	 * moves it, but the lock is what makes it the room it is in now. */
	if (to == TO_SENDERS)
		room = from != NULL && from->room != NULL ? from->room : b->lobby;
	if (to == TO_NAMED && (room = find_room_locked(b, f->name)) == NULL) {
		pthread_rwlock_unlock(&b->lock);
		return 0; /* nobody here is in it (any more) */
	}
	if (to == TO_ALL) {
		conns = b->conns;
		count = b->n;
	} else {
		conns = room->conns;
		count = room->n;
		if (chat)
			room_record(room, msgs, n);
	}
	for (i = 0; i < count; i++) {
		struct conn *c = conns[i];
		int rc;

		if (c == from)
			continue;
		rc = from_seqs != NULL ? enqueue_but_own(c, msgs, from_seqs, n)
		                       : enqueue_except(c, msgs, skip, n);
		if (rc < 0)
			continue;
		sent++;
		if (rc == 0)
			continue; /* already waiting for a write */
		if (rc == 2 && nnow < NOTE_CHUNK) {
			/* A long queue to a client that keeps up: the write
			 * pass is late, so write it ourselves, now. */
			conn_ref(c);
			now[nnow++] = c;
			continue;
		}
		noted[nnoted++] = c;
		if (nnoted == NOTE_CHUNK) {
			note(b, noted, nnoted);
			nnoted = 0;
		}
	}
	note(b, noted, nnoted);
	pthread_rwlock_unlock(&b->lock);
	for (i = 0; i < nnow; i++) {
		conn_flush(now[i]);
		conn_unref(now[i]);
	}
	return sent;
}

size_t
broadcast_send(struct broadcast *b, const struct conn *from, struct msg *const *msgs, size_t n)
{
	struct fan f = { .to = from != NULL ? TO_SENDERS : TO_ALL, .from = from, .msgs = msgs,
		         .n = n, .how = FAN_BUS };

	return fan_out(b, &f);
}

size_t
broadcast_send_topic(struct broadcast *b, const struct conn *from, struct msg *m,
                     const char *topic)
{
	struct fan f = { .to = TO_SENDERS, .from = from, .msgs = &m, .n = 1, .how = FAN_BUS,
		         .topic = topic };

	return fan_out(b, &f);
}

size_t
broadcast_send_room(struct broadcast *b, struct room *room, const struct conn *from,
                    struct msg *const *msgs, size_t n)
{
	struct fan f = { .to = TO_ROOM, .room = room, .from = from, .msgs = msgs, .n = n,
		         .how = FAN_BUS };

	return fan_out(b, &f);
}

size_t
broadcast_send_local(struct broadcast *b, const struct conn *from, struct msg *const *msgs,
                     size_t n)
{
	struct fan f = { .to = TO_ALL, .from = from, .msgs = msgs, .n = n };

	return fan_out(b, &f);
}

size_t
broadcast_send_chat(struct broadcast *b, const struct conn *from, struct msg *const *msgs, size_t n)
{
	struct fan f = { .to = TO_SENDERS, .from = from, .msgs = msgs, .n = n,
		         .how = FAN_CHAT | FAN_BUS };

	return fan_out(b, &f);
}

size_t
broadcast_send_except(struct broadcast *b, struct msg *const *msgs, struct conn *const *skip,
                      size_t n)
{
	struct fan f = { .to = TO_ROOM, .room = b->lobby, .msgs = msgs, .skip = skip, .n = n,
		         .how = FAN_BUS };

	return fan_out(b, &f);
}

size_t
broadcast_send_named(struct broadcast *b, const char *room, struct msg *const *msgs, size_t n)
{
	struct fan f = { .to = TO_NAMED, .name = room, .msgs = msgs, .n = n };

	return fan_out(b, &f);
}

size_t
broadcast_deliver(struct broadcast *b, const char *room, const uint64_t *from_seqs,
                  struct msg *const *msgs, size_t n, bool chat)
{
	struct fan f = { .to = TO_NAMED, .name = room, .from_seqs = from_seqs, .msgs = msgs,
		         .n = n, .how = chat ? FAN_CHAT : 0 };

	return fan_out(b, &f);
}

void
broadcast_seed_history(struct broadcast *b, const char *name, struct msg *const *msgs, size_t n)
{
	struct room *r;

	if (n == 0)
		return;
	pthread_rwlock_wrlock(&b->lock);
	if ((r = find_room_locked(b, name)) != NULL && r->hist_len == 0 && r->hist_max > 0) {
		room_record(r, msgs, n);
		for (size_t i = 0; i < r->n; i++)
			if (room_replay(r, r->conns[i]))
				note(b, &r->conns[i], 1);
	}
	pthread_rwlock_unlock(&b->lock);
}

void
broadcast_set_topic(struct broadcast *b, const char *name, const char *topic, const char *by,
                    bool only_if_none)
{
	struct room *r;

	pthread_rwlock_wrlock(&b->lock);
	if ((r = find_room_locked(b, name)) != NULL && (!only_if_none || r->topic[0] == '\0')) {
		snprintf(r->topic, sizeof(r->topic), "%s", topic);
		snprintf(r->topic_by, sizeof(r->topic_by), "%s", by);
	}
	pthread_rwlock_unlock(&b->lock);
}

char *
broadcast_room_names(struct broadcast *b, size_t *n)
{
	char *all;

	pthread_rwlock_rdlock(&b->lock);
	*n = 0;
	if ((all = malloc(b->nrooms * (ROOM_NAME_MAX + 2))) != NULL) {
		for (size_t i = 0; i < b->nrooms; i++)
			memcpy(all + i * (ROOM_NAME_MAX + 2), b->rooms[i]->name, ROOM_NAME_MAX + 2);
		*n = b->nrooms;
	}
	pthread_rwlock_unlock(&b->lock);
	return all;
}

struct conn *
broadcast_find_seq(struct broadcast *b, uint64_t seq)
{
	struct conn *found = NULL;

	pthread_rwlock_rdlock(&b->lock);
	for (size_t i = 0; i < b->n; i++)
		if (b->conns[i]->join_seq == seq) {
			found = b->conns[i];
			conn_ref(found);
			break;
		}
	pthread_rwlock_unlock(&b->lock);
	return found;
}

bool
broadcast_nick_free(struct broadcast *b, const struct conn *c, const char *nick)
{
	bool free_ = true;

	pthread_rwlock_rdlock(&b->lock);
	for (size_t i = 0; i < b->n && free_; i++) {
		struct conn *m = b->conns[i];

		if (m != c && m->nick[0] != '\0' && strcasecmp(m->nick, nick) == 0)
			free_ = false;
	}
	pthread_rwlock_unlock(&b->lock);
	return free_;
}

int
broadcast_set_nick(struct broadcast *b, struct conn *c, const char *nick)
{
	pthread_rwlock_wrlock(&b->lock);
	for (size_t i = 0; i < b->n; i++) {
		struct conn *m = b->conns[i];

		/* Nicks are ASCII, so strcasecmp is the whole of "without
		 * regard to case".  Linear: a nick change is rare, a room of
		 * ten thousand a few microseconds. */
		if (m != c && m->nick[0] != '\0' && strcasecmp(m->nick, nick) == 0) {
			pthread_rwlock_unlock(&b->lock);
			return -EEXIST;
		}
	}
	snprintf(c->nick, sizeof(c->nick), "%s", nick);
	snprintf(c->name, sizeof(c->name), "%s@%s", c->nick, c->shown);
	snprintf(c->logname, sizeof(c->logname), "%s@%s", c->nick, c->addr);
	pthread_rwlock_unlock(&b->lock);
	member_changed(b, c, c->room->name, BUS_RENAMED);
	return 0;
}

void
broadcast_clear_nick(struct broadcast *b, struct conn *c)
{
	pthread_rwlock_wrlock(&b->lock);
	c->nick[0] = '\0';
	snprintf(c->name, sizeof(c->name), "%s", c->shown);
	snprintf(c->logname, sizeof(c->logname), "%s", c->addr);
	pthread_rwlock_unlock(&b->lock);
	member_changed(b, c, c->room->name, BUS_RENAMED);
}

struct conn *
broadcast_find_nick(struct broadcast *b, const char *nick, char *out, size_t len)
{
	struct conn *found = NULL;

	pthread_rwlock_rdlock(&b->lock);
	for (size_t i = 0; i < b->n && found == NULL; i++) {
		if (b->conns[i]->nick[0] != '\0' && strcasecmp(b->conns[i]->nick, nick) == 0) {
			found = b->conns[i];
			conn_ref(found);
			snprintf(out, len, "%s", found->nick);
		}
	}
	pthread_rwlock_unlock(&b->lock);
	return found;
}

char *
broadcast_names(struct broadcast *b, const struct conn *in, size_t *n)
{
	struct conn **conns;
	size_t len = 1, i, count;
	char *out, *p;

	pthread_rwlock_rdlock(&b->lock);
	conns = in != NULL ? in->room->conns : b->conns;
	count = in != NULL ? in->room->n : b->n;
	for (i = 0; i < count; i++)
		len += strlen(conns[i]->name) + 2;
	if ((out = malloc(len)) != NULL) {
		p = out;
		for (i = 0; i < count; i++)
			p += sprintf(p, "%s%s", i ? ", " : "", conns[i]->name);
		*p = '\0';
	}
	*n = count;
	pthread_rwlock_unlock(&b->lock);
	return out;
}

/* Lock held: the listed room of that name, or NULL. */
static struct room *
find_room_locked(struct broadcast *b, const char *name)
{
	struct room *r = b->room_index[room_hash(name) & (BROADCAST_ROOM_BUCKETS - 1)];

	while (r != NULL && !room_is(r, name))
		r = r->hnext;
	return r;
}

int
broadcast_move(struct broadcast *b, struct conn *c, const char *name, struct room **left,
               size_t *here)
{
	struct room *to, *from;
	bool made = false, gone = false;
	int rc = 0;

	*left = NULL;
	pthread_rwlock_wrlock(&b->lock);
	if (room_is(c->room, name)) {
		rc = -EALREADY;
		goto out;
	}
	if ((to = find_room_locked(b, name)) == NULL) {
		struct room **t;

		if (b->nrooms >= b->max_rooms) {
			rc = -ENOSPC;
			goto out;
		}
		if (b->nrooms == b->rooms_cap) {
			/* Doubled whether or not realloc moved the table. */
			if ((t = realloc(b->rooms, 2 * b->rooms_cap * sizeof(*t))) == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			b->rooms = t;
			b->rooms_cap *= 2;
		}
		if ((rc = room_new(&to, name, b->history)) != 0)
			goto out;
		to->listed = true;
		b->rooms[b->nrooms++] = to; /* the table's reference */
		index_room(b, to);
		made = true;
	}
	if ((rc = room_reserve(to)) != 0) {
		unlist_if_empty_locked(b, to); /* a room made for nothing */
		goto out;
	}
	from = c->room;
	room_remove(from, c);
	room_add(to, c);
	room_ref(to);
	c->room = to;
	gone = unlist_if_empty_locked(b, from);
	*left = from; /* with c's reference on it, for the notice */
	*here = to->n;
	if (room_replay(to, c))
		note(b, &c, 1);
out:
	pthread_rwlock_unlock(&b->lock);
	if (rc == 0)
		member_changed(b, c, c->room->name, BUS_MOVED);
	if (made || gone)
		rooms_changed(b);
	return rc;
}

struct broadcast_room *
broadcast_rooms(struct broadcast *b, size_t *n)
{
	struct broadcast_room *all;

	pthread_rwlock_rdlock(&b->lock);
	*n = 0;
	if ((all = malloc(b->nrooms * sizeof(*all))) != NULL) {
		for (size_t i = 0; i < b->nrooms; i++) {
			memcpy(all[i].name, b->rooms[i]->name, sizeof(all[i].name));
			memcpy(all[i].topic, b->rooms[i]->topic, sizeof(all[i].topic));
			all[i].members = b->rooms[i]->n;
		}
		*n = b->nrooms;
	}
	pthread_rwlock_unlock(&b->lock);
	return all;
}

void
broadcast_topic(struct broadcast *b, struct conn *c, const char *set, char *topic, size_t len,
                char *by, size_t bylen)
{
	if (set != NULL) {
		pthread_rwlock_wrlock(&b->lock);
		snprintf(c->room->topic, sizeof(c->room->topic), "%s", set);
		snprintf(c->room->topic_by, sizeof(c->room->topic_by), "%s", c->name);
	} else {
		pthread_rwlock_rdlock(&b->lock);
	}
	snprintf(topic, len, "%s", c->room->topic);
	snprintf(by, bylen, "%s", c->room->topic_by);
	pthread_rwlock_unlock(&b->lock);
}

struct broadcast_member *
broadcast_members(struct broadcast *b, size_t *n)
{
	struct broadcast_member *all = NULL;

	pthread_rwlock_rdlock(&b->lock);
	*n = 0;
	if (b->n > 0 && (all = malloc(b->n * sizeof(*all))) != NULL) {
		for (size_t i = 0; i < b->n; i++) {
			conn_ref(b->conns[i]);
			all[i].c = b->conns[i];
			memcpy(all[i].nick, b->conns[i]->nick, sizeof(all[i].nick));
			memcpy(all[i].name, b->conns[i]->name, sizeof(all[i].name));
			memcpy(all[i].room, b->conns[i]->room->name, sizeof(all[i].room));
		}
		*n = b->n;
	}
	pthread_rwlock_unlock(&b->lock);
	return all;
}

struct conn **
broadcast_snapshot(struct broadcast *b, size_t *n)
{
	struct conn **all;

	pthread_rwlock_rdlock(&b->lock);
	*n = 0;
	if (b->n > 0 && (all = malloc(b->n * sizeof(*all))) != NULL) {
		for (size_t i = 0; i < b->n; i++) {
			conn_ref(b->conns[i]);
			all[i] = b->conns[i];
		}
		*n = b->n;
	} else {
		all = NULL;
	}
	pthread_rwlock_unlock(&b->lock);
	return all;
}
