/*
 * The cluster's rooms (cluster.c): one Redis stream per room, and for
 * each room the bus carries, where this server reads it and how it
 * numbers its own lines in it.
 *
 * A room is here while this server has members in it (#lobby always), or
 * lines of its own on their way to it.  The bus reads only these rooms'
 * streams, so a line of a room costs a server without members there
 * nothing.
 *
 * Numbering.  Our lines in a room are numbered 1, 2, 3, ... within a
 * generation (gen, unique in this run): the receivers' dedup keeps one
 * number per room, server run and generation (origins.h).  A room that
 * leaves this table and comes back starts a new generation at 1, so the
 * table need not remember rooms it no longer carries.
 *
 * Locking.  The cluster's mu guards the table's shape (which rooms, the
 * hash chains) and each room's gen and next_seq: the bus hooks number
 * lines from any thread.  state, pos, ask, wanted and dirty are the bus
 * thread's alone; only the bus thread removes a room.
 */
#ifndef STREAMS_H
#define STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STREAMS_NAME_MAX 34 /* "#x": room.h's ROOM_NAME_MAX + 2 */
#define STREAMS_KEY_MAX 200
#define STREAMS_ID_MAX 48
#define STREAMS_BUCKETS 1024 /* a power of two */

enum stream_state {
	STREAM_NEW,    /* not read yet: its position is to be asked */
	STREAM_ASKED,  /* XREVRANGE for its position sent */
	STREAM_READING /* in every XREAD, from pos */
};

struct stream {
	char name[STREAMS_NAME_MAX]; /* "#Dev", as first seen here */
	char key[STREAMS_KEY_MAX];   /* "<prefix>room:dev" */
	uint64_t gen, next_seq;      /* mu */
	enum stream_state state;     /* the bus thread's, as are the three below */
	char pos[STREAMS_ID_MAX];    /* READING: the last entry read */
	uint64_t ask;                /* ASKED: which answer is the current one */
	bool wanted;                 /* a member here at the last look */
	bool dirty;                  /* READING: a wake came, or a read was cut short */
	struct stream *next;         /* its hash chain */
};

struct streams {
	struct stream *bucket[STREAMS_BUCKETS];
	size_t n;
	uint64_t gens;
	char prefix[80]; /* the cluster's namespace, "chat:" */
};

void streams_init(struct streams *t, const char *prefix);
void streams_destroy(struct streams *t);

/* The room called name (without regard to case), or NULL. */
struct stream *streams_find(struct streams *t, const char *name);
/* The room whose stream is key, or NULL. */
struct stream *streams_by_key(struct streams *t, const char *key);
/* The room called name, made (NEW, a new generation) if it is not here;
 * NULL when out of memory. */
struct stream *streams_get(struct streams *t, const char *name);
/* Take s out and free it. */
void streams_remove(struct streams *t, struct stream *s);
/* The i-th bucket's chain, for walking every room. */
#define STREAMS_EACH(t, s)                                                   \
	for (size_t streams_i_ = 0; streams_i_ < STREAMS_BUCKETS; streams_i_++) \
		for (struct stream *s = (t)->bucket[streams_i_]; s != NULL; s = s->next)

/* The stream key of room name: "<prefix>room:<name without '#', lower case>". */
void streams_key(const struct streams *t, const char *name, char *out, size_t len);

#endif /* STREAMS_H */
