/*
 * The cluster's bus thread; see cluster.h, and docs/cluster.md for the
 * guarantees.
 *
 * Threads and locks
 * -----------------
 * - The bus thread owns both hiredis contexts, the link state, the inbox's
 *   read position, the origins table and the kick list: nothing else
 *   touches them.
 * - mu guards the outbox, up, ops_on, the op queue and the rooms' table's
 *   shape and numbering (streams.h): the hooks (any thread) take it
 *   briefly to queue and number; the bus thread to send and to deliver.
 *   Lock order: mu -> registry lock -> conn mu (the bus delivers our own
 *   lines under mu, so that one sender's lines reach our clients in
 *   order across a change of link state).
 * - names_mu guards the cached roster of the other servers (their
 *   members and rooms, the topics).
 */
#define _GNU_SOURCE /* getrandom's header on older glibc, strcasecmp */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "cluster_lua.h"
#include "log.h"
#include "mono.h"
#include "msg.h"
#include "origins.h"
#include "outbox.h"
#include "streams.h"
#include "stats.h"
#include "wake.h"

/* A room's stream keeps about this many entries (XADD MAXLEN ~): #lobby,
 * everyone's room, more; Redis's memory is at most the rooms with members
 * times this (docs/cluster.md). */
#define STREAM_MAXLEN 100000
#define ROOM_STREAM_MAXLEN 10000
/* Entries one XREAD brings at most from each stream. */
#define READ_COUNT 512
/* Every room we read is read this often even without a wake: a wake lost
 * (a link that dropped, a server that died between XADD and PUBLISH) costs
 * at most this much delay. */
#define SWEEP_MS 1000
/* Heartbeat, reaper and names refresh period. */
#define BEAT_MS 1000
/* Reconnect backoff. */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 2000
/* How long a nick answer waits for its connection's job, and how often the
 * bus asks again. */
#define KICK_GIVE_UP_MS 5000
#define KICK_RETRY_MS 20
/* Shutdown: how long to wait for Redis to take what is queued, then for
 * the goodbye script. */
#define STOP_FLUSH_MS 2000
#define STOP_REAP_MS 1000
/* Bytes of backlog per line of --cluster-backlog: 8 MiB at 10,000. */
#define BACKLOG_BYTES_PER_LINE 839

#define KEY_MAX 200
#define NAME_MAX_ 64

enum state { DOWN, CONNECTING, UP };

struct link {
	struct cluster *cl;
	redisAsyncContext *ac;
	const char *what;
	int fd;
	uint32_t events;
	bool ready; /* its part of the handshake answered */
};

enum op_type { OP_MEMBER_SET, OP_MEMBER_DEL, OP_CLAIM, OP_TELL };

/* Work for the writer, queued by the hooks. */
struct op {
	enum op_type type;
	uint64_t id;
	char name[CONN_NICK_MAX + 1 + NET_ADDRSTRLEN];
	char room[STREAMS_NAME_MAX];     /* MEMBER_SET: its room */
	char nick[CONN_NICK_MAX + 1];    /* the member's nick now; CLAIM: the new one */
	char oldnick[CONN_NICK_MAX + 1]; /* CLAIM: the one it gives up */
	struct conn *c;                  /* CLAIM, TELL: a reference */
	struct msg *m;                   /* TELL: a reference */
	struct op *next;
};

struct kick {
	struct conn *c; /* a reference */
	long give_up_ms;
	struct kick *next;
};

/* A member of another server, as the roster last said. */
struct remote {
	char name[CONN_NICK_MAX + 1 + NET_ADDRSTRLEN];
	char room[STREAMS_NAME_MAX];
};

/* What an XREVRANGE of a room's stream is for (on_room_top). */
struct ask {
	struct cluster *cl;
	char name[STREAMS_NAME_MAX];
	uint64_t ask; /* the room's ask when sent: a later one supersedes it */
	bool check;   /* a reconnect's check of a room we read, not a start */
};

struct cluster {
	struct cluster_config cfg;
	char node[NAME_MAX_ + 1];
	char prefix[NAME_MAX_ + 2];                    /* "chat:" */
	char k_epoch[KEY_MAX], k_nodes[KEY_MAX], k_incs[KEY_MAX], k_nicks[KEY_MAX];
	char k_members[KEY_MAX], k_inbox[KEY_MAX], k_topics[KEY_MAX], k_rooms[KEY_MAX];
	char k_wake[KEY_MAX]; /* "<prefix>wake:": the channels' common head */
	char inc[17];                                  /* this run's incarnation */
	char where[300];                               /* the Redis, for logs */
	struct broadcast *bc;
	void (*kick_fn)(void *, struct conn *);
	void (*flush_fn)(void *);
	void *kick_arg;

	pthread_t thread;
	int epfd, evfd;
	char tag_ev;
	atomic_bool stopping, leaving;
	atomic_bool rooms_dirty; /* the registry's rooms changed: look again */

	pthread_mutex_t mu;
	struct outbox out;        /* mu */
	bool up;                  /* mu: lines go round the stream */
	bool ops_on;              /* mu: presence changes are queued */
	struct op *ops, **ops_tail; /* mu */
	struct streams streams;   /* mu: see streams.h for which fields */

	pthread_mutex_t names_mu;
	struct remote *remote;    /* names_mu: the other servers' members */
	size_t nremote;           /* names_mu */
	struct bus_room *topics;  /* names_mu: every room's topic (members unused) */
	size_t ntopics;           /* names_mu */

	/* The bus thread's alone. */
	struct link w, r, s; /* writer, reader, subscriber to the wakes */
	enum state state;
	long handshake_due, next_try, backoff, next_beat;
	long ping_sent, read_sent; /* 0: nothing outstanding */
	long sweep_due;            /* the next read of every room we read */
	bool inbox_dirty;          /* a wake came for our inbox */
	char epoch[40];
	bool have_epoch, epoch_changed, reaped, ever_up, told_lost;
	bool taken_for_gone; /* the heartbeat found us reaped: rejoin as such */
	char inbox_id[STREAMS_ID_MAX];
	char wake_inbox[KEY_MAX]; /* the channel that says our inbox has news */
	uint64_t asks;
	struct origins origins;
	struct kick *kicks;
	struct log_limit fail_limit;
	struct log_limit behind_limit;
	uint64_t lost_logged;
	long stop_phase_due;
	int stop_phase; /* 0 running, 1 flushing, 2 waiting for the goodbye, 3 done */
};

/* --- small helpers ------------------------------------------------------------ */

static void
wake_bus(struct cluster *cl)
{
	wake_signal(cl->evfd);
}

/* Parse a stream id "ms-seq". */
static bool
id_parse(const char *s, uint64_t *ms, uint64_t *seq)
{
	char *end;

	*ms = strtoull(s, &end, 10);
	if (*end != '-')
		return false;
	*seq = strtoull(end + 1, &end, 10);
	return *end == '\0';
}

static int
id_cmp(const char *a, const char *b)
{
	uint64_t am, as, bm, bs;

	if (!id_parse(a, &am, &as) || !id_parse(b, &bm, &bs))
		return 0;
	if (am != bm)
		return am < bm ? -1 : 1;
	return as < bs ? -1 : as > bs ? 1 : 0;
}

static void
lower(char *out, size_t len, const char *s)
{
	size_t i;

	for (i = 0; i + 1 < len && s[i] != '\0'; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[i] = '\0';
}

static void
random_hex(char *out, size_t len)
{
	unsigned char b[8];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		/* No entropy source: time and pid still differ per run. */
		uint64_t x = (uint64_t)mono_ns() ^ ((uint64_t)getpid() << 32);

		memcpy(b, &x, sizeof(b));
	}
	snprintf(out, len, "%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
	         b[6], b[7]);
}

/* The field of an entry's [f, v, f, v ...] array, or NULL. */
static const redisReply *
field(const redisReply *fv, const char *name)
{
	if (fv == NULL || fv->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < fv->elements; i += 2)
		if (fv->element[i]->type == REDIS_REPLY_STRING && strcmp(fv->element[i]->str, name) == 0)
			return fv->element[i + 1];
	return NULL;
}

static struct msg *
msg_from(const redisReply *v)
{
	struct msg *m;

	if (v == NULL || v->type != REDIS_REPLY_STRING || v->len == 0)
		return NULL;
	if ((m = msg_new(v->len)) != NULL)
		memcpy(m->data, v->str, v->len);
	return m;
}

/* --- the epoll adapter for hiredis ------------------------------------------------- */

static void
ev_set(struct link *l, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = l };

	if (l->fd < 0 || events == l->events)
		return;
	if (events == 0)
		epoll_ctl(l->cl->epfd, EPOLL_CTL_DEL, l->fd, NULL);
	else if (l->events == 0)
		epoll_ctl(l->cl->epfd, EPOLL_CTL_ADD, l->fd, &ev);
	else
		epoll_ctl(l->cl->epfd, EPOLL_CTL_MOD, l->fd, &ev);
	l->events = events;
}

static void ev_add_read(void *p) { struct link *l = p; ev_set(l, l->events | EPOLLIN); }
static void ev_del_read(void *p) { struct link *l = p; ev_set(l, l->events & ~(uint32_t)EPOLLIN); }
static void ev_add_write(void *p) { struct link *l = p; ev_set(l, l->events | EPOLLOUT); }
static void ev_del_write(void *p) { struct link *l = p; ev_set(l, l->events & ~(uint32_t)EPOLLOUT); }

static void
ev_cleanup(void *p)
{
	struct link *l = p;

	ev_set(l, 0);
	l->fd = -1;
}

/* --- delivery to our own clients ------------------------------------------------- */

/* mu held.  One of our own lines reaches our clients (from outbox.h). */
static void
deliver_own(void *arg, struct outbox_entry *e)
{
	struct cluster *cl = arg;

	if (!e->remote_only)
		broadcast_deliver(cl->bc, e->room, &e->from, &e->m, 1, e->kind == BUS_CHAT);
}

/* mu held.  Everything of ours not yet delivered, in order: the link is
 * going, and its lines must not wait for it. */
static void
deliver_pending_locked(struct cluster *cl)
{
	for (size_t i = 0; i < cl->out.len; i++) {
		struct outbox_entry *e = outbox_at(&cl->out, i);

		if (!e->delivered) {
			deliver_own(cl, e);
			e->delivered = true;
		}
	}
}

/* --- the hooks (any thread) ------------------------------------------------------- */

/* mu held: append m for room, numbered in it; false when out of memory. */
static bool
push_locked(struct cluster *cl, enum bus_kind kind, const char *room, const char *topic,
            uint64_t from, bool remote_only, struct msg *m, bool delivered)
{
	struct stream *st = streams_get(&cl->streams, room);
	struct outbox_entry *e;
	uint64_t seq;

	if (st == NULL || (seq = outbox_push(&cl->out, kind, room, topic, from, remote_only, m,
	                                     delivered, deliver_own, cl)) == 0)
		return false;
	e = outbox_find(&cl->out, seq);
	e->rgen = st->gen;
	e->rseq = st->next_seq++;
	return true;
}

static bool
hook_publish(void *arg, enum bus_kind kind, const char *room, const char *topic,
             const struct conn *from, struct conn *const *each, struct msg *const *msgs, size_t n)
{
	struct cluster *cl = arg;
	bool taken, lost = false;

	pthread_mutex_lock(&cl->mu);
	taken = cl->up;
	for (size_t i = 0; i < n; i++) {
		const struct conn *who = each != NULL ? each[i] : from;

		/* Not taken: the caller fans out now, and the outbox keeps
		 * them for the other servers. */
		if (!push_locked(cl, kind, room, i == 0 ? topic : NULL, who != NULL ? who->join_seq : 0,
		                 false, msgs[i], !taken))
			lost = true;
	}
	pthread_mutex_unlock(&cl->mu);
	if (lost)
		log_warn("cluster: out of memory: a line of %s does not reach the other servers",
		         room);
	wake_bus(cl);
	return taken;
}

/* mu held: queue op (consumed). */
static void
queue_op_locked(struct cluster *cl, struct op *op)
{
	op->next = NULL;
	*cl->ops_tail = op;
	cl->ops_tail = &op->next;
}

/* An op about member c, with its names (read by c's own thread, or
 * copied under the registry's lock: broadcast_members). */
static struct op *
op_make(enum op_type type, const struct conn *c, const char *name, const char *nick,
        const char *room)
{
	struct op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return NULL;
	op->type = type;
	op->id = c->join_seq;
	snprintf(op->name, sizeof(op->name), "%s", name);
	snprintf(op->nick, sizeof(op->nick), "%s", nick);
	snprintf(op->room, sizeof(op->room), "%s", room);
	return op;
}

/* For the hooks, which run in c's own job (or before its first). */
static struct op *
op_new(enum op_type type, const struct conn *c, const char *room)
{
	return op_make(type, c, c->name, c->nick, room);
}

static void
op_free(struct op *op)
{
	if (op->c != NULL)
		conn_unref(op->c);
	if (op->m != NULL)
		msg_unref(op->m);
	free(op);
}

static void
hook_member(void *arg, struct conn *c, const char *room, enum bus_member what)
{
	struct cluster *cl = arg;
	struct op *op;

	if (atomic_load(&cl->leaving))
		return; /* shutdown: cluster_stop says goodbye for all */
	if ((op = op_new(what == BUS_LEFT ? OP_MEMBER_DEL : OP_MEMBER_SET, c, room)) == NULL) {
		log_warn("cluster: out of memory: presence of %s not updated", c->logname);
		return;
	}
	/* A nick it asked for and never took may be granted after it left:
	 * its departure releases that one too. */
	if (what == BUS_LEFT)
		conn_asked_nick(c, op->oldnick, sizeof(op->oldnick));
	pthread_mutex_lock(&cl->mu);
	if (cl->ops_on) {
		queue_op_locked(cl, op);
		op = NULL;
	}
	pthread_mutex_unlock(&cl->mu);
	if (op != NULL)
		op_free(op); /* link down: the next handshake writes every member */
	else
		wake_bus(cl);
}

static int
hook_claim_nick(void *arg, struct conn *c, const char *nick)
{
	struct cluster *cl = arg;
	struct op *op = op_new(OP_CLAIM, c, c->room != NULL ? c->room->name : "");
	int rc = -ENOTCONN;

	if (op == NULL)
		return -ENOMEM;
	snprintf(op->oldnick, sizeof(op->oldnick), "%s", c->nick);
	snprintf(op->nick, sizeof(op->nick), "%s", nick);
	conn_ref(c);
	op->c = c;
	pthread_mutex_lock(&cl->mu);
	if (cl->up) {
		queue_op_locked(cl, op);
		op = NULL;
		rc = 0;
	}
	pthread_mutex_unlock(&cl->mu);
	if (op != NULL)
		op_free(op);
	else
		wake_bus(cl);
	return rc;
}

static int
hook_tell(void *arg, struct conn *from, const char *nick, struct msg *m)
{
	struct cluster *cl = arg;
	struct op *op = op_new(OP_TELL, from, "");
	int rc = -ENOTCONN;

	if (op == NULL)
		return -ENOMEM;
	snprintf(op->nick, sizeof(op->nick), "%s", nick);
	conn_ref(from);
	op->c = from;
	msg_ref(m);
	op->m = m;
	pthread_mutex_lock(&cl->mu);
	if (cl->up) {
		queue_op_locked(cl, op);
		op = NULL;
		rc = 0;
	}
	pthread_mutex_unlock(&cl->mu);
	if (op != NULL)
		op_free(op);
	else
		wake_bus(cl);
	return rc;
}

static char *
hook_names(void *arg, const char *room, size_t *n)
{
	struct cluster *cl = arg;
	size_t len = 1, k = 0;
	char *out = NULL, *p;

	pthread_mutex_lock(&cl->names_mu);
	*n = 0;
	for (size_t i = 0; i < cl->nremote; i++)
		if (room == NULL || strcasecmp(cl->remote[i].room, room) == 0)
			len += strlen(cl->remote[i].name) + 2;
	if (len > 1 && (out = malloc(len)) != NULL) {
		p = out;
		for (size_t i = 0; i < cl->nremote; i++)
			if (room == NULL || strcasecmp(cl->remote[i].room, room) == 0)
				p += sprintf(p, "%s%s", k++ > 0 ? ", " : "", cl->remote[i].name);
		*p = '\0';
		*n = k;
	}
	pthread_mutex_unlock(&cl->names_mu);
	return out;
}

/* The other servers' rooms with their member counts, and every topic. */
static struct bus_room *
hook_rooms(void *arg, size_t *n)
{
	struct cluster *cl = arg;
	struct bus_room *all;
	size_t k = 0;

	pthread_mutex_lock(&cl->names_mu);
	*n = 0;
	if ((all = calloc(cl->nremote + cl->ntopics + 1, sizeof(*all))) == NULL) {
		pthread_mutex_unlock(&cl->names_mu);
		return NULL;
	}
	for (size_t i = 0; i < cl->ntopics; i++)
		all[k++] = cl->topics[i];
	for (size_t i = 0; i < cl->nremote; i++) {
		size_t j;

		for (j = 0; j < k; j++)
			if (strcasecmp(all[j].name, cl->remote[i].room) == 0)
				break;
		if (j == k)
			snprintf(all[k++].name, sizeof(all[0].name), "%s", cl->remote[i].room);
		all[j].members++;
	}
	pthread_mutex_unlock(&cl->names_mu);
	*n = k;
	return all;
}

static void
hook_rooms_changed(void *arg)
{
	struct cluster *cl = arg;

	atomic_store(&cl->rooms_dirty, true);
	wake_bus(cl);
}

/* --- commands to Redis (bus thread) ------------------------------------------------- */

static void link_lost(struct cluster *cl, const char *why);

/* Send argv on the writer (or reader); false if the context refused. */
static bool
cmd(struct link *l, redisCallbackFn *fn, void *priv, int argc, const char **argv,
    const size_t *lens)
{
	if (l->ac == NULL)
		return false;
	return redisAsyncCommandArgv(l->ac, fn, priv, argc, argv, lens) == REDIS_OK;
}

/* A script, by text: Redis caches it by its hash after the first time. */
static bool
eval(struct cluster *cl, redisCallbackFn *fn, void *priv, const char *script, int nkeys,
     const char **keys, int nargs, const char **args, const size_t *arglens)
{
	const char *argv[16];
	size_t lens[16];
	char nk[8];
	int argc = 0;

	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[argc] = "EVAL", lens[argc++] = 4;
	argv[argc] = script, lens[argc++] = strlen(script);
	argv[argc] = nk, lens[argc++] = strlen(nk);
	for (int i = 0; i < nkeys; i++)
		argv[argc] = keys[i], lens[argc++] = strlen(keys[i]);
	for (int i = 0; i < nargs; i++)
		argv[argc] = args[i], lens[argc++] = arglens != NULL ? arglens[i] : strlen(args[i]);
	return cmd(&cl->w, fn, priv, argc, argv, lens);
}

/* A reply the handshake or a script could not do without. */
static bool
need(struct cluster *cl, const redisReply *r, const char *what)
{
	if (r == NULL)
		return false; /* the link went: link_lost has it */
	if (r->type == REDIS_REPLY_ERROR) {
		char why[300];

		snprintf(why, sizeof(why), "%s: %s", what, r->str);
		link_lost(cl, why);
		return false;
	}
	return true;
}

static void
on_ignore(redisAsyncContext *ac, void *reply, void *priv)
{
	struct link *l = ac->data;
	redisReply *r = reply;

	(void)priv;
	if (r != NULL && r->type == REDIS_REPLY_ERROR)
		log_warn("cluster: Redis (%s) answered: %s", l->what, r->str);
}

/* --- the reader: XREAD of our rooms and our inbox ----------------------------------- */

static void read_more(struct cluster *cl);
static void maybe_up(struct cluster *cl);

/*
 * What one XREAD brought, delivered in batches: one fan-out for up to
 * DELIVER_BATCH lines of any senders (each kept from its own sender), so
 * that a busy room costs the bus thread one lock per recipient per batch,
 * not per line.
 */
#define DELIVER_BATCH 64

struct batch {
	const char *room;             /* the stream's room: all its lines are for it */
	struct msg *m[DELIVER_BATCH]; /* references */
	uint64_t from[DELIVER_BATCH];
	uint64_t own[DELIVER_BATCH]; /* our own seq, or 0: another server's */
	size_t n, nown;
	bool chat;
};

/*
 * Our own lines in the batch are delivered under mu, and only if nothing
 * delivered them meanwhile: a full outbox delivers its oldest line at once
 * (outbox.h), and it must not reach our clients twice, nor after a later
 * line of its sender.
 */
static void
batch_flush(struct cluster *cl, struct batch *bt)
{
	size_t k = 0;

	if (bt->n == 0)
		return;
	if (bt->nown > 0) {
		pthread_mutex_lock(&cl->mu);
		for (size_t i = 0; i < bt->n; i++) {
			struct outbox_entry *e = bt->own[i] ? outbox_find(&cl->out, bt->own[i]) : NULL;

			if (bt->own[i] != 0 && (e == NULL || e->delivered)) {
				msg_unref(bt->m[i]); /* delivered already */
				continue;
			}
			if (e != NULL)
				e->delivered = true;
			bt->m[k] = bt->m[i];
			bt->from[k++] = bt->from[i];
		}
		bt->n = k;
		broadcast_deliver(cl->bc, bt->room, bt->from, bt->m, bt->n, bt->chat);
		pthread_mutex_unlock(&cl->mu);
	} else {
		broadcast_deliver(cl->bc, bt->room, bt->from, bt->m, bt->n, bt->chat);
	}
	for (size_t i = 0; i < bt->n; i++)
		msg_unref(bt->m[i]);
	bt->n = bt->nown = 0;
}

/* Consumes m.  own: our seq for one of our lines, else 0. */
static void
batch_add(struct cluster *cl, struct batch *bt, struct msg *m, uint64_t from, bool chat,
          uint64_t own)
{
	if (bt->n > 0 && (bt->chat != chat || bt->n == DELIVER_BATCH))
		batch_flush(cl, bt);
	bt->chat = chat;
	bt->m[bt->n] = m;
	bt->own[bt->n] = own;
	bt->nown += own != 0;
	bt->from[bt->n++] = from;
}

/* The receivers' dedup key of a line: its room, and its numbering there
 * (origins.h). */
static void
origin_key(char *out, size_t len, const struct stream *st, const redisReply *o,
           const redisReply *i, const redisReply *g)
{
	char lname[STREAMS_NAME_MAX];

	lower(lname, sizeof(lname), st->name);
	snprintf(out, len, "%.34s|%.64s/%.20s/%.20s", lname, o->str, i->str,
	         g != NULL && g->type == REDIS_REPLY_STRING ? g->str : "0");
}

static bool
is_str(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_STRING;
}

/* One entry of a room's stream. */
static void
room_entry(struct cluster *cl, struct batch *bt, const struct stream *st, const redisReply *fv)
{
	const redisReply *o = field(fv, "o"), *i = field(fv, "i"), *s = field(fv, "s");
	const redisReply *g = field(fv, "g"), *k = field(fv, "k"), *mv = field(fv, "m");
	const redisReply *t = field(fv, "T"), *b = field(fv, "b"), *q = field(fv, "q");
	bool chat = is_str(k) && k->str[0] == 'c';
	bool own = is_str(o) && strcmp(o->str, cl->node) == 0;
	uint64_t seq = is_str(s) ? strtoull(s->str, NULL, 10) : 0;
	struct msg *m;

	if (own && seq == 0)
		return; /* the reaper's notices about our own clients: not for them */
	if (own && is_str(i) && strcmp(i->str, cl->inc) == 0) {
		/* Ours, back from the stream: now our clients hear it, unless
		 * they already have (sent while the link was down). */
		struct msg *mine = NULL;
		uint64_t from = 0;
		bool chat_ = false;
		struct outbox_entry *e;

		/* q: its place in our outbox, across all rooms. */
		seq = is_str(q) ? strtoull(q->str, NULL, 10) : 0;
		pthread_mutex_lock(&cl->mu);
		if ((e = outbox_find(&cl->out, seq)) != NULL)
			stats_set(STATS_CLUSTER_LAG_US, ((int64_t)mono_ns() - e->pushed_ns) / 1000);
		if (e != NULL && !e->delivered) {
			if (e->remote_only) {
				e->delivered = true;
			} else {
				/* Marked delivered when the batch goes. */
				msg_ref(e->m);
				mine = e->m;
				from = e->from;
				chat_ = e->kind == BUS_CHAT;
			}
		}
		pthread_mutex_unlock(&cl->mu);
		if (mine != NULL)
			batch_add(cl, bt, mine, from, chat_, seq);
		return;
	}
	if (seq != 0 && is_str(o) && is_str(i)) {
		char key[ORIGIN_KEY_MAX];
		long long gap;

		origin_key(key, sizeof(key), st, o, i, g);
		if ((gap = origins_see(&cl->origins, key, seq)) < 0)
			return; /* had it */
		if (gap > 0) {
			struct msg *n;

			batch_flush(cl, bt); /* what came before the gap, first */
			log_warn("cluster: up to %lld lines of %s from %s are missing (lost by "
			         "Redis, or beyond that server's backlog)",
			         gap, st->name, o->str);
			if ((n = msg_notice("lines may be missing: up to %lld from server %s did "
			                    "not arrive",
			                    gap, o->str)) != NULL) {
				broadcast_send_named(cl->bc, st->name, &n, 1);
				msg_unref(n);
			}
		}
	}
	if (is_str(t) && is_str(b))
		broadcast_set_topic(cl->bc, st->name, t->str, b->str, false);
	if ((m = msg_from(mv)) == NULL)
		return;
	/* The sender is on another server: every local member hears it. */
	batch_add(cl, bt, m, 0, chat, 0);
}

/* One entry of our inbox: a private message for one of our members. */
static void
inbox_entry(struct cluster *cl, const redisReply *fv)
{
	const redisReply *t = field(fv, "t"), *mv = field(fv, "m");
	char *colon;
	struct conn *to;
	struct msg *m;

	if (t == NULL || t->type != REDIS_REPLY_STRING || (colon = strchr(t->str, ':')) == NULL)
		return;
	if ((size_t)(colon - t->str) != strlen(cl->inc) || strncmp(t->str, cl->inc, strlen(cl->inc)))
		return; /* for an earlier run of this server */
	if ((to = broadcast_find_seq(cl->bc, strtoull(colon + 1, NULL, 10))) == NULL)
		return; /* gone since */
	if ((m = msg_from(mv)) != NULL) {
		conn_send(to, &m, 1);
		msg_unref(m);
	}
	conn_unref(to);
}

static void
on_read(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = priv;
	redisReply *r = reply;
	struct batch bt = { .n = 0, .nown = 0 };

	(void)ac;
	cl->read_sent = 0;
	if (!need(cl, r, "XREAD"))
		return;
	/* NIL: nothing new in any of them. */
	if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t s = 0; s < r->elements; s++) {
			const redisReply *sr = r->element[s];
			const char *key;
			struct stream *st = NULL;

			if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
			    sr->element[0]->type != REDIS_REPLY_STRING)
				continue;
			key = sr->element[0]->str;
			if (strcmp(key, cl->k_inbox) != 0) {
				/* Only the bus thread removes a room: st stays. */
				pthread_mutex_lock(&cl->mu);
				st = streams_by_key(&cl->streams, key);
				pthread_mutex_unlock(&cl->mu);
				if (st == NULL || st->state != STREAM_READING)
					continue; /* left since the XREAD was sent */
				bt.room = st->name;
				/* A full answer: more may be waiting. */
				if (sr->element[1]->elements >= READ_COUNT)
					st->dirty = true;
			} else if (sr->element[1]->elements >= READ_COUNT) {
				cl->inbox_dirty = true;
			}
			for (size_t e = 0; e < sr->element[1]->elements; e++) {
				const redisReply *en = sr->element[1]->element[e];
				const char *id;

				if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
				    en->element[0]->type != REDIS_REPLY_STRING)
					continue;
				id = en->element[0]->str;
				if (st == NULL) {
					snprintf(cl->inbox_id, sizeof(cl->inbox_id), "%s", id);
					inbox_entry(cl, en->element[1]);
					continue;
				}
				/* A room started again while this XREAD was out
				 * may have been asked from further on. */
				if (id_cmp(id, st->pos) <= 0)
					continue;
				snprintf(st->pos, sizeof(st->pos), "%s", id);
				room_entry(cl, &bt, st, en->element[1]);
			}
			batch_flush(cl, &bt);
		}
		cl->flush_fn(cl->kick_arg);
	}
	if (cl->state == UP)
		read_more(cl);
}

/*
 * One XREAD at a time, without BLOCK: of the rooms a wake named since the
 * last one (dirty), and once a second of every room we read; our inbox
 * every time.  A blocking XREAD of every room we read would cost Redis
 * work for each of them at every line of any (it registers and drops a
 * wait on each key): 0.7 ms a call with 1,000 rooms, measured.  This way
 * a line costs the rooms it is in.
 */
static void
read_more(struct cluster *cl)
{
	char count[16];
	const char **argv;
	size_t *lens, n = 0, argc = 0;
	long now = mono_ms();
	bool sweep;

	if (cl->state != UP || cl->read_sent != 0)
		return; /* the answer in flight calls again */
	sweep = now >= cl->sweep_due;
	pthread_mutex_lock(&cl->mu);
	STREAMS_EACH(&cl->streams, st)
		n += st->state == STREAM_READING && (sweep || st->dirty);
	if (n == 0 && !sweep && !cl->inbox_dirty) {
		pthread_mutex_unlock(&cl->mu);
		return; /* nothing new anywhere */
	}
	snprintf(count, sizeof(count), "%d", READ_COUNT);
	argv = malloc((4 + 2 * (n + 1)) * sizeof(*argv));
	lens = malloc((4 + 2 * (n + 1)) * sizeof(*lens));
	if (argv == NULL || lens == NULL) {
		pthread_mutex_unlock(&cl->mu);
		free(argv);
		free(lens);
		link_lost(cl, "out of memory for XREAD");
		return;
	}
	argv[argc++] = "XREAD";
	argv[argc++] = "COUNT";
	argv[argc++] = count;
	argv[argc++] = "STREAMS";
	STREAMS_EACH(&cl->streams, st)
		if (st->state == STREAM_READING && (sweep || st->dirty))
			argv[argc++] = st->key;
	argv[argc++] = cl->k_inbox;
	STREAMS_EACH(&cl->streams, st)
		if (st->state == STREAM_READING && (sweep || st->dirty)) {
			argv[argc++] = st->pos;
			st->dirty = false; /* a wake from now on asks again */
		}
	argv[argc++] = cl->inbox_id;
	cl->inbox_dirty = false;
	for (size_t i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	/* hiredis copies the arguments: the rooms may change after this. */
	if (cmd(&cl->r, on_read, cl, (int)argc, argv, lens))
		cl->read_sent = now;
	pthread_mutex_unlock(&cl->mu);
	if (sweep)
		cl->sweep_due = now + SWEEP_MS;
	free(argv);
	free(lens);
}

/*
 * A wake: "<prefix>wake:<room>" or "<prefix>wake:inbox:<node>", published
 * after our or another server's XADD to that stream.  Every server hears
 * every wake (one PSUBSCRIBE, so that joining a room never waits for a
 * subscription) and reads only the rooms it reads.  The PSUBSCRIBE's own
 * answer says the subscriber is ready.
 */
static void
on_wake(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = priv;
	redisReply *r = reply;
	const redisReply *kind, *ch;
	size_t hl = strlen(cl->k_wake);

	(void)ac;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    !is_str(kind = r->element[0]))
		return;
	if (strcmp(kind->str, "psubscribe") == 0) {
		cl->s.ready = true;
		maybe_up(cl);
		return;
	}
	if (strcmp(kind->str, "pmessage") != 0 || r->elements < 4 || !is_str(ch = r->element[2]) ||
	    strncmp(ch->str, cl->k_wake, hl) != 0)
		return;
	if (strcmp(ch->str, cl->wake_inbox) == 0) {
		cl->inbox_dirty = true;
	} else if (strchr(ch->str + hl, ':') == NULL && strlen(ch->str + hl) < STREAMS_NAME_MAX - 1) {
		char name[STREAMS_NAME_MAX];
		struct stream *st;

		snprintf(name, sizeof(name), "#%s", ch->str + hl);
		pthread_mutex_lock(&cl->mu);
		if ((st = streams_find(&cl->streams, name)) != NULL)
			st->dirty = true;
		pthread_mutex_unlock(&cl->mu);
	}
	read_more(cl);
}

/* --- the writer: our lines, presence, nicks, private messages ------------------------- */

static void
on_xadd(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = ((struct link *)ac->data)->cl;
	uint64_t seq = (uint64_t)(uintptr_t)priv;
	struct outbox_entry *e;

	if (!need(cl, reply, "XADD"))
		return;
	pthread_mutex_lock(&cl->mu);
	if ((e = outbox_find(&cl->out, seq)) != NULL)
		e->acked = true;
	pthread_mutex_unlock(&cl->mu);
}

static void start_reading(struct cluster *cl, struct stream *st);

/* mu held: XADD e to its room's stream (and, for a new topic, keep it). */
static bool
send_entry(struct cluster *cl, struct outbox_entry *e)
{
	struct stream *st = streams_find(&cl->streams, e->room);
	char seq[24], rseq[24], gen[24], from[24], maxlen[16], key[STREAMS_KEY_MAX];
	const char *kind = e->remote_only ? "r" : e->kind == BUS_CHAT ? "c" : "n";
	const char *argv[32]; /* 20 fields, 4 of a topic, 2 of the line */
	size_t lens[32], argc = 0;
	const char *tab;

	/*
	 * A line our clients are still to hear, for a room we do not read
	 * yet: read it from before this line (the writer keeps the order), so
	 * that they hear it when it comes back.  If nobody here is in that
	 * room after all (a departure notice), the next look stops reading
	 * it and counts the line delivered.
	 */
	if (st != NULL && st->state == STREAM_NEW && !e->delivered) {
		start_reading(cl, st);
		if (!st->wanted)
			atomic_store(&cl->rooms_dirty, true);
	}
	streams_key(&cl->streams, e->room, key, sizeof(key));
	snprintf(seq, sizeof(seq), "%" PRIu64, e->seq);
	snprintf(rseq, sizeof(rseq), "%" PRIu64, e->rseq);
	snprintf(gen, sizeof(gen), "%" PRIu64, e->rgen);
	snprintf(from, sizeof(from), "%" PRIu64, e->from);
	snprintf(maxlen, sizeof(maxlen), "%d",
	         strcasecmp(e->room, BROADCAST_LOBBY) == 0 ? STREAM_MAXLEN : ROOM_STREAM_MAXLEN);
	if (e->topic != NULL && (tab = strchr(e->topic, '\t')) != NULL) {
		char lname[STREAMS_NAME_MAX];

		lower(lname, sizeof(lname), e->room);
		cmd(&cl->w, on_ignore, NULL, 4,
		    (const char *[]){ "HSET", cl->k_topics, lname, e->topic },
		    (size_t[]){ 4, strlen(cl->k_topics), strlen(lname), strlen(e->topic) });
	} else {
		tab = NULL;
	}
	argv[argc++] = "XADD", argv[argc++] = key, argv[argc++] = "MAXLEN", argv[argc++] = "~";
	argv[argc++] = maxlen, argv[argc++] = "*";
	argv[argc++] = "o", argv[argc++] = cl->node, argv[argc++] = "i", argv[argc++] = cl->inc;
	argv[argc++] = "g", argv[argc++] = gen, argv[argc++] = "s", argv[argc++] = rseq;
	argv[argc++] = "q", argv[argc++] = seq, argv[argc++] = "k", argv[argc++] = kind;
	argv[argc++] = "f", argv[argc++] = from;
	for (size_t i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	if (tab != NULL) {
		argv[argc] = "b", lens[argc++] = 1;
		argv[argc] = e->topic, lens[argc++] = (size_t)(tab - e->topic);
		argv[argc] = "T", lens[argc++] = 1;
		argv[argc] = tab + 1, lens[argc++] = strlen(tab + 1);
	}
	argv[argc] = "m", lens[argc++] = 1;
	argv[argc] = e->m->data, lens[argc++] = e->m->len;
	return cmd(&cl->w, on_xadd, (void *)(uintptr_t)e->seq, (int)argc, argv, lens);
}

/* The readers of room: its stream has news (after the XADD, on the same
 * connection, so that whoever reads on a wake finds it). */
static void
wake_room(struct cluster *cl, const char *room)
{
	char ch[KEY_MAX + STREAMS_NAME_MAX];
	size_t n = (size_t)snprintf(ch, sizeof(ch), "%s", cl->k_wake);

	lower(ch + n, sizeof(ch) - n, room + (room[0] == '#'));
	cmd(&cl->w, on_ignore, NULL, 3, (const char *[]){ "PUBLISH", ch, "" },
	    (size_t[]){ 7, strlen(ch), 0 });
}

/* Rooms one pass of send_outbox wakes, each once. */
#define WAKES_MAX 64

static void
send_outbox(struct cluster *cl)
{
	struct outbox_entry *e;
	uint64_t lost, unconfirmed, early;
	char woken[WAKES_MAX][STREAMS_NAME_MAX];
	size_t nwoken = 0;

	pthread_mutex_lock(&cl->mu);
	while ((e = outbox_next_unsent(&cl->out)) != NULL) {
		size_t k;

		if (!send_entry(cl, e))
			break;
		e->sent = true;
		cl->out.unsent--;
		for (k = 0; k < nwoken && strcasecmp(woken[k], e->room) != 0; k++)
			;
		if (k < nwoken)
			continue; /* its wake goes after the last XADD of this pass */
		if (nwoken == WAKES_MAX) {
			/* Many rooms: wake these now (a room sent to again
			 * later is woken again). */
			for (k = 0; k < nwoken; k++)
				wake_room(cl, woken[k]);
			nwoken = 0;
		}
		snprintf(woken[nwoken++], sizeof(woken[0]), "%s", e->room);
	}
	for (size_t k = 0; k < nwoken; k++)
		wake_room(cl, woken[k]);
	lost = cl->out.lost;
	unconfirmed = cl->out.unconfirmed;
	early = cl->out.early;
	cl->out.lost = cl->out.unconfirmed = cl->out.early = 0;
	pthread_mutex_unlock(&cl->mu);
	if (lost > 0)
		log_warn("cluster: backlog full (--cluster-backlog): %" PRIu64
		         " lines of ours will not reach the other servers",
		         lost);
	if (early > 0 && log_limit_ok(&cl->behind_limit, 10000, NULL))
		log_warn("cluster: more than --cluster-backlog lines in flight: %" PRIu64
		         " of ours delivered here before the cluster ordered them (%" PRIu64
		         " of them not yet confirmed by Redis)",
		         early, unconfirmed);
}

static void
owner_of(struct cluster *cl, uint64_t id, char *out, size_t len)
{
	snprintf(out, len, "%s\t%s\t%" PRIu64, cl->node, cl->inc, id);
}

static void
kick_later(struct cluster *cl, struct conn *c)
{
	struct kick *k = malloc(sizeof(*k));

	if (k == NULL) {
		/* Its job sees the answer the next time it runs anyway. */
		conn_unref(c);
		return;
	}
	k->c = c;
	k->give_up_ms = mono_ms() + KICK_GIVE_UP_MS;
	k->next = cl->kicks;
	cl->kicks = k;
	cl->kick_fn(cl->kick_arg, c);
}

static void
on_claim(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = ((struct link *)ac->data)->cl;
	struct op *op = priv;
	redisReply *r = reply;
	enum conn_nick st = CONN_NICK_FAILED;

	if (r != NULL && r->type == REDIS_REPLY_INTEGER)
		st = r->integer == 1 ? CONN_NICK_GRANTED : CONN_NICK_TAKEN;
	else if (r != NULL)
		log_warn("cluster: nick claim: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
	if (conn_answer_nick(op->c, st)) {
		kick_later(cl, op->c);
		op->c = NULL;
	}
	op_free(op);
}

static void
on_tell(redisAsyncContext *ac, void *reply, void *priv)
{
	struct op *op = priv;
	redisReply *r = reply;

	(void)ac;
	if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
		msg_tell(op->c, msg_notice("sent to %s", op->nick));
		conn_send(op->c, &op->m, 1); /* what the recipient saw, after the receipt */
	}
	else if (r != NULL && r->type == REDIS_REPLY_INTEGER)
		msg_tell(op->c, msg_notice("no such nick: %s", op->nick));
	else
		msg_tell(op->c, msg_notice("cluster link lost: message to %s not sent", op->nick));
	op_free(op);
}

static void
member_value(const struct op *op, char *out, size_t len)
{
	snprintf(out, len, "%s\t%s\t%s", op->name, op->nick,
	         op->room[0] != '\0' ? op->room : BROADCAST_LOBBY);
}

static void
send_ops(struct cluster *cl)
{
	struct op *ops, *op;

	pthread_mutex_lock(&cl->mu);
	ops = cl->ops;
	cl->ops = NULL;
	cl->ops_tail = &cl->ops;
	pthread_mutex_unlock(&cl->mu);
	while ((op = ops) != NULL) {
		char id[24], owner[128], val[256], lnick[CONN_NICK_MAX + 1], lold[CONN_NICK_MAX + 1];
		char ttl[24];
		const char *keys[2] = { cl->k_nicks, cl->k_members };
		bool kept = false;

		ops = op->next;
		snprintf(id, sizeof(id), "%" PRIu64, op->id);
		owner_of(cl, op->id, owner, sizeof(owner));
		member_value(op, val, sizeof(val));
		lower(lnick, sizeof(lnick), op->nick);
		switch (op->type) {
		case OP_MEMBER_SET: {
			const char *argv[] = { "HSET", cl->k_members, id, val };
			size_t lens[] = { 4, strlen(cl->k_members), strlen(id), strlen(val) };

			cmd(&cl->w, on_ignore, NULL, 4, argv, lens);
			break;
		}
		case OP_MEMBER_DEL: {
			const char *args[] = { lnick, owner, id, lold };

			lower(lold, sizeof(lold), op->oldnick);
			eval(cl, on_ignore, NULL, LUA_LEAVE, 2, keys, 4, args, NULL);
			break;
		}
		case OP_CLAIM: {
			char nv[256];
			const char *args[] = { lnick, owner, lold, id, nv };

			lower(lold, sizeof(lold), op->oldnick);
			snprintf(nv, sizeof(nv), "%s@%s\t%s\t%s", op->nick, op->c->shown, op->nick,
			         op->room[0] != '\0' ? op->room : BROADCAST_LOBBY);
			kept = eval(cl, on_claim, op, LUA_CLAIM, 2, keys, 5, args, NULL);
			if (!kept && conn_answer_nick(op->c, CONN_NICK_FAILED)) {
				kick_later(cl, op->c);
				op->c = NULL;
			}
			break;
		}
		case OP_TELL: {
			const char *args[] = { cl->prefix, lnick, op->m->data, ttl };
			size_t lens[] = { strlen(cl->prefix), strlen(lnick), op->m->len, 0 };

			snprintf(ttl, sizeof(ttl), "%u", cl->cfg.node_timeout_ms * 4);
			lens[3] = strlen(ttl);
			kept = eval(cl, on_tell, op, LUA_TELL, 1, keys, 4, args, lens);
			if (!kept)
				msg_tell(op->c, msg_notice("cluster link lost: message to %s not sent",
				                           op->nick));
			break;
		}
		}
		if (!kept)
			op_free(op);
	}
}

/* Ops queued before a link that is now gone: answer who waits. */
static void
fail_ops(struct cluster *cl)
{
	struct op *ops, *op;

	pthread_mutex_lock(&cl->mu);
	ops = cl->ops;
	cl->ops = NULL;
	cl->ops_tail = &cl->ops;
	pthread_mutex_unlock(&cl->mu);
	while ((op = ops) != NULL) {
		ops = op->next;
		if (op->type == OP_CLAIM && conn_answer_nick(op->c, CONN_NICK_FAILED)) {
			kick_later(cl, op->c);
			op->c = NULL;
		} else if (op->type == OP_TELL) {
			msg_tell(op->c, msg_notice("cluster link lost: message to %s not sent",
			                           op->nick));
		}
		op_free(op);
	}
}

/* --- heartbeat, reaper, names --------------------------------------------------------- */

static void
on_beat(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = priv;
	redisReply *r = reply;

	(void)ac;
	if (!need(cl, r, "heartbeat"))
		return;
	cl->ping_sent = 0;
	/* Reaped while our link stayed up (we were stopped, or too slow for
	 * --node-timeout): the others heard our clients leave.  Connect
	 * again, which registers them and tells the others they are back. */
	if (cl->state == UP && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer == 0) {
		log_warn("cluster: the other servers took this one for gone (silent longer than "
		         "--node-timeout); joining again");
		cl->taken_for_gone = true; /* this beat put us back among the nodes */
		link_lost(cl, "taken for gone");
	}
}

static void
on_reap(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = ((struct link *)ac->data)->cl;
	redisReply *r = reply;

	(void)priv;
	if (!need(cl, r, "reaper") || r->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < r->elements; i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(r->element[i]->str, cl->node) != 0)
			log_warn("cluster: server %s is gone; its %lld client%s left", r->element[i]->str,
			         r->element[i + 1]->integer, r->element[i + 1]->integer == 1 ? "" : "s");
}

/* The roster: the other servers' members (name, room), and the topics. */
static void
on_roster(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = priv;
	redisReply *r = reply;
	const redisReply *mem, *top;
	struct remote *rem;
	struct bus_room *topics;
	size_t nr = 0, nt = 0;

	(void)ac;
	if (!need(cl, r, "roster") || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY || r->element[1]->type != REDIS_REPLY_ARRAY)
		return;
	mem = r->element[0];
	top = r->element[1];
	rem = calloc(mem->elements + 1, sizeof(*rem));
	topics = calloc(top->elements / 2 + 1, sizeof(*topics));
	if (rem == NULL || topics == NULL) {
		free(rem);
		free(topics);
		return;
	}
	for (size_t i = 0; i < mem->elements; i++) {
		const redisReply *v = mem->element[i];
		const char *t1, *t2;

		if (v->type != REDIS_REPLY_STRING)
			continue;
		/* "name<TAB>nick<TAB>room" */
		t1 = memchr(v->str, '\t', v->len);
		t2 = t1 != NULL ? memchr(t1 + 1, '\t', v->len - (size_t)(t1 + 1 - v->str)) : NULL;
		snprintf(rem[nr].name, sizeof(rem[nr].name), "%.*s",
		         (int)(t1 != NULL ? (size_t)(t1 - v->str) : v->len), v->str);
		snprintf(rem[nr].room, sizeof(rem[nr].room), "%s",
		         t2 != NULL && t2[1] == '#' ? t2 + 1 : BROADCAST_LOBBY);
		nr++;
	}
	for (size_t i = 0; i + 1 < top->elements; i += 2) {
		const redisReply *k = top->element[i], *v = top->element[i + 1];
		const char *tab;

		if (!is_str(k) || !is_str(v) || (tab = strchr(v->str, '\t')) == NULL)
			continue;
		snprintf(topics[nt].name, sizeof(topics[nt].name), "%s", k->str);
		snprintf(topics[nt].by, sizeof(topics[nt].by), "%.*s", (int)(tab - v->str), v->str);
		snprintf(topics[nt].topic, sizeof(topics[nt].topic), "%s", tab + 1);
		nt++;
	}
	pthread_mutex_lock(&cl->names_mu);
	free(cl->remote);
	free(cl->topics);
	cl->remote = rem;
	cl->nremote = nr;
	cl->topics = topics;
	cl->ntopics = nt;
	pthread_mutex_unlock(&cl->names_mu);
}

static void
reap(struct cluster *cl, const char *mode, redisCallbackFn *fn, void *priv)
{
	char timeout[24], maxlen[16], room_maxlen[16];
	const char *keys[] = { cl->k_nodes, cl->k_incs, cl->k_nicks };
	const char *args[] = { cl->prefix, mode, cl->node, cl->inc, timeout, maxlen, room_maxlen };

	snprintf(timeout, sizeof(timeout), "%u", cl->cfg.node_timeout_ms);
	snprintf(maxlen, sizeof(maxlen), "%d", STREAM_MAXLEN);
	snprintf(room_maxlen, sizeof(room_maxlen), "%d", ROOM_STREAM_MAXLEN);
	eval(cl, fn, priv, LUA_REAP, 3, keys, 7, args, NULL);
}

static void
beat(struct cluster *cl)
{
	char ttl[24];
	const char *keys[] = { cl->k_nodes, cl->k_incs, cl->k_inbox };
	const char *args[] = { cl->prefix, cl->node, cl->inc, ttl };
	const char *nkeys[] = { cl->k_nodes, cl->k_topics, cl->k_rooms };
	const char *nargs[] = { cl->prefix, cl->node };

	snprintf(ttl, sizeof(ttl), "%u", cl->cfg.node_timeout_ms * 4);
	if (eval(cl, on_beat, cl, LUA_BEAT, 3, keys, 4, args, NULL) && cl->ping_sent == 0)
		cl->ping_sent = mono_ms();
	reap(cl, "expired", on_reap, NULL);
	eval(cl, on_roster, cl, LUA_ROSTER, 3, nkeys, 2, nargs, NULL);
}

/* --- link state ------------------------------------------------------------------------ */

static void
drop_link(struct link *l)
{
	redisAsyncContext *ac = l->ac;

	l->ac = NULL;
	l->ready = false;
	if (ac != NULL)
		redisAsyncFree(ac); /* pending callbacks run with NULL now */
}

static void
retry_later(struct cluster *cl)
{
	cl->next_try = mono_ms() + cl->backoff;
	cl->backoff = cl->backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : cl->backoff * 2;
}

/* Once, then every 30 s while it lasts: the log must not fill. */
static void
log_unreachable(struct cluster *cl, const char *why)
{
	unsigned long suppressed = 0;

	if (log_limit_ok(&cl->fail_limit, 30000, &suppressed))
		log_warn("cluster: cannot reach Redis %s: %s; retrying (serving this server's "
		         "clients alone meanwhile)",
		         cl->where, why);
}

/*
 * The link is gone, or must go: both contexts, as one.  Our lines not yet
 * heard here are delivered now, before anything sent from now on.
 */
static void
link_lost(struct cluster *cl, const char *why)
{
	bool was_up = cl->state == UP;

	if (cl->state == DOWN)
		return;
	cl->state = DOWN;
	pthread_mutex_lock(&cl->mu);
	cl->up = false;
	cl->ops_on = false;
	deliver_pending_locked(cl);
	outbox_unsend(&cl->out, true);
	/* A room whose start was asked and not answered starts again; one we
	 * read goes on from where it was. */
	STREAMS_EACH(&cl->streams, st)
		if (st->state == STREAM_ASKED)
			st->state = STREAM_NEW;
	pthread_mutex_unlock(&cl->mu);
	broadcast_flush(cl->bc);
	drop_link(&cl->w);
	drop_link(&cl->r);
	drop_link(&cl->s);
	cl->ping_sent = cl->read_sent = 0;
	fail_ops(cl);
	if (was_up) {
		log_warn("cluster: link to Redis %s lost: %s; serving this server's clients alone "
		         "and retrying",
		         cl->where, why);
		cl->backoff = RETRY_MIN_MS;
		if (!cl->told_lost) {
			msg_broadcast_local(cl->bc, NULL,
			                    msg_notice("cluster link lost: only this server's clients "
			                               "hear you"));
			broadcast_flush(cl->bc);
			cl->told_lost = true;
		}
	} else {
		log_unreachable(cl, why);
	}
	retry_later(cl);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct link *l = ac->data;

	(void)status;
	if (l->ac == ac)
		l->ac = NULL;
	link_lost(l->cl, ac->errstr != NULL && ac->errstr[0] ? ac->errstr : "connection closed");
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct link *l = ac->data;

	if (status == REDIS_OK)
		return;
	if (l->ac == ac)
		l->ac = NULL; /* hiredis frees it */
	link_lost(l->cl, ac->errstr != NULL && ac->errstr[0] ? ac->errstr : "cannot connect");
}

static void
go_up(struct cluster *cl)
{
	struct broadcast_member *all = NULL;
	size_t n = 0;
	bool rejoin = cl->reaped;

	cl->state = UP;
	cl->backoff = RETRY_MIN_MS;
	cl->ever_up = true;
	cl->reaped = false;
	cl->taken_for_gone = false;
	if (rejoin)
		all = broadcast_members(cl->bc, &n);
	pthread_mutex_lock(&cl->mu);
	cl->up = true;
	/* Redis lost its data: send again all we keep; the receivers drop
	 * what they had (origins.h). */
	outbox_unsend(&cl->out, !cl->epoch_changed);
	/* The others heard our clients leave while we were away: tell them
	 * they are here (them only: ours never heard otherwise). */
	for (size_t i = 0; i < n; i++) {
		struct msg *m = msg_notice("%s joined (server %s is back)", all[i].name, cl->node);

		if (m != NULL) {
			push_locked(cl, BUS_NOTICE, all[i].room, NULL, all[i].c->join_seq, true, m,
			            true);
			msg_unref(m);
		}
	}
	pthread_mutex_unlock(&cl->mu);
	for (size_t i = 0; i < n; i++)
		conn_unref(all[i].c);
	free(all);
	cl->epoch_changed = false;
	log_info("cluster: linked to Redis %s as node %s of cluster %s (epoch %s)", cl->where,
	         cl->node, cl->cfg.name, cl->epoch);
	if (cl->told_lost) {
		msg_broadcast_local(cl->bc, NULL, msg_notice("cluster link restored"));
		broadcast_flush(cl->bc);
		cl->told_lost = false;
	}
	cl->next_beat = 0;
	cl->sweep_due = 0; /* read everything we read from where we were */
	read_more(cl);
}

static void
maybe_up(struct cluster *cl)
{
	if (cl->state == CONNECTING && cl->w.ready && cl->r.ready && cl->s.ready)
		go_up(cl);
}

/* The handshake's last PING on one link (priv) came back. */
static void
on_ready(redisAsyncContext *ac, void *reply, void *priv)
{
	struct link *l = priv;

	(void)ac;
	if (!need(l->cl, reply, "PING"))
		return;
	l->ready = true;
	maybe_up(l->cl);
}

static void
on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = priv;

	(void)ac;
	need(cl, reply, "AUTH or SELECT");
}

static void
on_set_epoch(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	need(priv, reply, "SET epoch"); /* the first command: NOAUTH shows here */
}

static void
on_epoch(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = priv;
	redisReply *r = reply;

	(void)ac;
	if (!need(cl, r, "GET epoch"))
		return;
	if (r->type != REDIS_REPLY_STRING) {
		link_lost(cl, "the epoch key vanished");
		return;
	}
	if (cl->have_epoch && strcmp(cl->epoch, r->str) != 0) {
		log_warn("cluster: Redis %s lost its data (epoch %s, now %s): reading its log "
		         "from the start; lines it lost are reported as missing",
		         cl->where, cl->epoch, r->str);
		cl->epoch_changed = true;
		pthread_mutex_lock(&cl->mu);
		STREAMS_EACH(&cl->streams, st)
			snprintf(st->pos, sizeof(st->pos), "0-0");
		pthread_mutex_unlock(&cl->mu);
		snprintf(cl->inbox_id, sizeof(cl->inbox_id), "0-0");
	}
	snprintf(cl->epoch, sizeof(cl->epoch), "%s", r->str);
	cl->have_epoch = true;
}

/*
 * The newest entries of a room's stream: where to start reading it, and
 * its history; or, on a reconnect, the check that the stream did not lose
 * what we read (appendfsync everysec).
 */
static void
on_room_top(redisAsyncContext *ac, void *reply, void *priv)
{
	struct ask *a = priv;
	struct cluster *cl = a->cl;
	redisReply *r = reply;
	struct msg **hist = NULL;
	struct stream *st;
	size_t nh = 0;

	(void)ac;
	if (!need(cl, r, "XREVRANGE") || r->type != REDIS_REPLY_ARRAY)
		goto out;
	pthread_mutex_lock(&cl->mu);
	st = streams_find(&cl->streams, a->name);
	pthread_mutex_unlock(&cl->mu);
	if (st == NULL)
		goto out; /* gone since: only the bus thread removes, so st stays */
	if (a->check) {
		if (st->state == STREAM_READING && r->elements > 0 &&
		    r->element[0]->type == REDIS_REPLY_ARRAY &&
		    id_cmp(r->element[0]->element[0]->str, st->pos) < 0) {
			log_warn("cluster: Redis %s lost lines of %s it had taken (its log ends at "
			         "%s, we read up to %s): those lines are reported as missing",
			         cl->where, st->name, r->element[0]->element[0]->str, st->pos);
			snprintf(st->pos, sizeof(st->pos), "%s", r->element[0]->element[0]->str);
		}
		goto out;
	}
	if (st->state != STREAM_ASKED || st->ask != a->ask)
		goto out; /* a later start supersedes this one */
	/* Start after the newest entry, and give the history the newest chat
	 * lines, oldest first. */
	snprintf(st->pos, sizeof(st->pos), "0-0");
	if (r->elements > 0 && r->element[0]->type == REDIS_REPLY_ARRAY)
		snprintf(st->pos, sizeof(st->pos), "%s", r->element[0]->element[0]->str);
	st->state = STREAM_READING;
	if (cl->cfg.history > 0)
		hist = calloc(r->elements + 1, sizeof(*hist));
	for (size_t k = r->elements; k-- > 0;) {
		const redisReply *en = r->element[k], *fv, *o, *i, *s, *g, *kd;

		if (en->type != REDIS_REPLY_ARRAY || en->elements != 2)
			continue;
		fv = en->element[1];
		o = field(fv, "o"), i = field(fv, "i"), s = field(fv, "s"), kd = field(fv, "k");
		g = field(fv, "g");
		if (is_str(o) && is_str(i) && is_str(s)) {
			char key[ORIGIN_KEY_MAX];

			origin_key(key, sizeof(key), st, o, i, g);
			origins_see(&cl->origins, key, strtoull(s->str, NULL, 10));
		}
		if (hist != NULL && is_str(kd) && kd->str[0] == 'c' &&
		    (hist[nh] = msg_from(field(fv, "m"))) != NULL)
			nh++;
	}
	if (nh > 0) {
		size_t from = nh > cl->cfg.history ? nh - cl->cfg.history : 0;

		broadcast_seed_history(cl->bc, st->name, hist + from, nh - from);
		broadcast_flush(cl->bc);
	}
	for (size_t k = 0; k < nh; k++)
		msg_unref(hist[k]);
	free(hist);
	/* What came after the newest entry while we asked. */
	st->dirty = true;
	read_more(cl);
out:
	free(a);
}

/* The topic of a room we start to read, for our members there. */
static void
on_topic(redisAsyncContext *ac, void *reply, void *priv)
{
	struct ask *a = priv;
	redisReply *r = reply;
	const char *tab;

	(void)ac;
	if (r != NULL && r->type == REDIS_REPLY_STRING && (tab = strchr(r->str, '\t')) != NULL) {
		char by[ROOM_BY_MAX];

		snprintf(by, sizeof(by), "%.*s", (int)(tab - r->str), r->str);
		broadcast_set_topic(a->cl->bc, a->name, tab + 1, by, true);
	}
	free(a);
}

/* An XREVRANGE of st's newest entries, on the writer (which keeps its
 * order with our XADDs). */
static bool
ask_top(struct cluster *cl, struct stream *st, bool check, size_t count)
{
	struct ask *a = calloc(1, sizeof(*a));
	char n[24];

	if (a == NULL)
		return false;
	a->cl = cl;
	snprintf(a->name, sizeof(a->name), "%s", st->name);
	a->check = check;
	a->ask = st->ask;
	snprintf(n, sizeof(n), "%zu", count);
	if (!cmd(&cl->w, on_room_top, a, 6,
	         (const char *[]){ "XREVRANGE", st->key, "+", "-", "COUNT", n },
	         (size_t[]){ 9, strlen(st->key), 1, 1, 5, strlen(n) })) {
		free(a);
		return false;
	}
	return true;
}

/* The room is in the cluster's set of rooms, so that the roster keeps its
 * stream while anyone is in it and removes it after (#lobby stays). */
static void
room_known(struct cluster *cl, const struct stream *st)
{
	char lname[STREAMS_NAME_MAX];

	lower(lname, sizeof(lname), st->name);
	if (strcmp(lname, BROADCAST_LOBBY) != 0)
		cmd(&cl->w, on_ignore, NULL, 3, (const char *[]){ "SADD", cl->k_rooms, lname },
		    (size_t[]){ 4, strlen(cl->k_rooms), strlen(lname) });
}

/*
 * mu held: start to read st: where from (its newest entry now: our lines
 * sent after this come after it), its history and its topic.
 */
static void
start_reading(struct cluster *cl, struct stream *st)
{
	char lname[STREAMS_NAME_MAX];
	struct ask *a;

	if (cl->state == DOWN)
		return;
	st->ask = ++cl->asks;
	if (!ask_top(cl, st, false, cl->cfg.history + 256))
		return;
	st->state = STREAM_ASKED;
	room_known(cl, st);
	lower(lname, sizeof(lname), st->name);
	if ((a = calloc(1, sizeof(*a))) != NULL) {
		a->cl = cl;
		snprintf(a->name, sizeof(a->name), "%s", st->name);
		if (!cmd(&cl->w, on_topic, a, 3, (const char *[]){ "HGET", cl->k_topics, lname },
		         (size_t[]){ 4, strlen(cl->k_topics), strlen(lname) }))
			free(a);
	}
}

/*
 * The rooms with members here changed (or the link came up): read the
 * new ones, stop reading the empty ones.  A room we stop reading has
 * nobody here to hear our lines still on their way to it: they count as
 * delivered, up to the moment of the look (lines pushed later are for
 * members who came after it, and the room is read again for them).
 */
static void
look_at_rooms(struct cluster *cl)
{
	size_t n;
	char *names;
	uint64_t upto;

	atomic_store(&cl->rooms_dirty, false);
	pthread_mutex_lock(&cl->mu);
	upto = cl->out.next_seq;
	pthread_mutex_unlock(&cl->mu);
	if ((names = broadcast_room_names(cl->bc, &n)) == NULL) {
		atomic_store(&cl->rooms_dirty, true); /* try again */
		return;
	}
	pthread_mutex_lock(&cl->mu);
	STREAMS_EACH(&cl->streams, st)
		st->wanted = false;
	for (size_t i = 0; i < n; i++) {
		struct stream *st = streams_get(&cl->streams, names + i * STREAMS_NAME_MAX);

		if (st != NULL)
			st->wanted = true;
	}
	for (size_t b = 0; b < STREAMS_BUCKETS; b++) {
		struct stream *st = cl->streams.bucket[b], *next;

		for (; st != NULL; st = next) {
			next = st->next;
			if (st->wanted) {
				if (st->state == STREAM_NEW)
					start_reading(cl, st);
				continue;
			}
			for (size_t i = 0; i < cl->out.len; i++) {
				struct outbox_entry *e = outbox_at(&cl->out, i);

				if (e->seq < upto && !e->delivered && strcasecmp(e->room, st->name) == 0)
					e->delivered = true;
			}
			streams_remove(&cl->streams, st);
		}
	}
	pthread_mutex_unlock(&cl->mu);
	free(names);
}

static void
on_inbox_top(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = priv;
	redisReply *r = reply;

	(void)ac;
	if (!need(cl, r, "XREVRANGE") || r->type != REDIS_REPLY_ARRAY)
		return;
	if (cl->inbox_id[0] == '\0') {
		snprintf(cl->inbox_id, sizeof(cl->inbox_id), "0-0");
		if (r->elements > 0 && r->element[0]->type == REDIS_REPLY_ARRAY)
			snprintf(cl->inbox_id, sizeof(cl->inbox_id), "%s",
			         r->element[0]->element[0]->str);
	}
}

static void
on_zscore(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = priv;
	redisReply *r = reply;

	(void)ac;
	if (!need(cl, r, "ZSCORE"))
		return;
	/* Not among the nodes after we were, in a Redis that kept its data:
	 * the reaper took us.  (An empty one never told anyone we left.) */
	cl->reaped = (cl->ever_up && !cl->epoch_changed && r->type == REDIS_REPLY_NIL) ||
	             cl->taken_for_gone;
}

/* Connect, log in, and set ourselves up; go_up() when both answer. */
static redisAsyncContext *
open_ctx(struct cluster *cl, struct link *l)
{
	redisAsyncContext *ac = cl->cfg.url.is_unix
	                                ? redisAsyncConnectUnix(cl->cfg.url.path)
	                                : redisAsyncConnect(cl->cfg.url.host, cl->cfg.url.port);

	if (ac == NULL)
		return NULL;
	if (ac->err) {
		log_unreachable(cl, ac->errstr);
		redisAsyncFree(ac);
		return NULL;
	}
	l->ac = ac;
	l->fd = ac->c.fd;
	l->events = 0;
	l->ready = false;
	ac->data = l;
	ac->ev.data = l;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	if (cl->cfg.url.has_pass) {
		if (cl->cfg.url.user[0] != '\0')
			redisAsyncCommand(ac, on_auth, cl, "AUTH %s %s", cl->cfg.url.user,
			                  cl->cfg.url.pass);
		else
			redisAsyncCommand(ac, on_auth, cl, "AUTH %s", cl->cfg.url.pass);
	}
	if (cl->cfg.url.db != 0)
		redisAsyncCommand(ac, on_auth, cl, "SELECT %u", cl->cfg.url.db);
	return ac;
}

/* A nick we held, claimed again on reconnect: someone else may have taken
 * it while we were reaped.  Then our member gives it up (its own job). */
static void
on_reclaim(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = ((struct link *)ac->data)->cl;
	struct op *op = priv;
	redisReply *r = reply;

	if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
		log_warn("cluster: nick %s of %s was taken on another server while we were cut off",
		         op->nick, op->c->addr);
		if (conn_revoke_nick(op->c, op->nick)) {
			kick_later(cl, op->c);
			op->c = NULL;
		}
	}
	op_free(op);
}

static void
write_members(struct cluster *cl)
{
	struct broadcast_member *all;
	size_t n;

	cmd(&cl->w, on_ignore, NULL, 2, (const char *[]){ "DEL", cl->k_members },
	    (size_t[]){ 3, strlen(cl->k_members) });
	all = broadcast_members(cl->bc, &n);
	for (size_t i = 0; i < n; i++) {
		struct op *op = op_make(OP_MEMBER_SET, all[i].c, all[i].name, all[i].nick, all[i].room);

		if (op != NULL) {
			/* What the member has now; a nick needs its claim too. */
			char id[24], val[256], owner[128], lnick[CONN_NICK_MAX + 1];
			const char *keys[] = { cl->k_nicks, cl->k_members };
			const char *args[] = { lnick, owner, "", id, val };

			snprintf(id, sizeof(id), "%" PRIu64, op->id);
			member_value(op, val, sizeof(val));
			if (op->nick[0] != '\0') {
				lower(lnick, sizeof(lnick), op->nick);
				owner_of(cl, op->id, owner, sizeof(owner));
				conn_ref(all[i].c);
				op->c = all[i].c;
				if (eval(cl, on_reclaim, op, LUA_CLAIM, 2, keys, 5, args, NULL))
					op = NULL; /* the callback's */
			} else {
				const char *argv[] = { "HSET", cl->k_members, id, val };
				size_t lens[] = { 4, strlen(cl->k_members), strlen(id), strlen(val) };

				cmd(&cl->w, on_ignore, NULL, 4, argv, lens);
			}
			if (op != NULL)
				op_free(op);
		}
		conn_unref(all[i].c);
	}
	free(all);
}

static void
connect_links(struct cluster *cl)
{
	if (open_ctx(cl, &cl->w) == NULL || open_ctx(cl, &cl->r) == NULL ||
	    open_ctx(cl, &cl->s) == NULL) {
		drop_link(&cl->w); /* still DOWN: its callbacks do nothing */
		drop_link(&cl->r);
		drop_link(&cl->s);
		retry_later(cl);
		return;
	}
	cl->state = CONNECTING;
	cl->handshake_due = mono_ms() + (long)cl->cfg.timeout_ms;
	/* Presence changes from now on follow the snapshot below. */
	pthread_mutex_lock(&cl->mu);
	cl->ops_on = true;
	pthread_mutex_unlock(&cl->mu);

	/* The epoch: set once by whoever comes first to an empty Redis. */
	{
		char fresh[17];

		random_hex(fresh, sizeof(fresh));
		cmd(&cl->w, on_set_epoch, cl, 4, (const char *[]){ "SET", cl->k_epoch, fresh, "NX" },
		    (size_t[]){ 3, strlen(cl->k_epoch), strlen(fresh), 2 });
		cmd(&cl->w, on_epoch, cl, 2, (const char *[]){ "GET", cl->k_epoch },
		    (size_t[]){ 3, strlen(cl->k_epoch) });
	}
	/* The rooms we read go on from where they were (checked: Redis may
	 * have lost their last lines); the others start once we are up. */
	pthread_mutex_lock(&cl->mu);
	STREAMS_EACH(&cl->streams, st)
		if (st->state == STREAM_READING)
			ask_top(cl, st, true, 1);
	pthread_mutex_unlock(&cl->mu);
	atomic_store(&cl->rooms_dirty, true);
	cmd(&cl->w, on_inbox_top, cl, 6,
	    (const char *[]){ "XREVRANGE", cl->k_inbox, "+", "-", "COUNT", "1" },
	    (size_t[]){ 9, strlen(cl->k_inbox), 1, 1, 5, 1 });
	cmd(&cl->w, on_zscore, cl, 3, (const char *[]){ "ZSCORE", cl->k_nodes, cl->node },
	    (size_t[]){ 6, strlen(cl->k_nodes), strlen(cl->node) });
	reap(cl, "stale", on_reap, NULL);
	write_members(cl);
	/* After our members (the roster keeps a room with members): a Redis
	 * that lost its data lost the set of rooms too. */
	pthread_mutex_lock(&cl->mu);
	STREAMS_EACH(&cl->streams, st)
		if (st->state == STREAM_READING)
			room_known(cl, st);
	pthread_mutex_unlock(&cl->mu);
	beat(cl);
	cmd(&cl->w, on_ready, &cl->w, 1, (const char *[]){ "PING" }, (size_t[]){ 4 });
	cmd(&cl->r, on_ready, &cl->r, 1, (const char *[]){ "PING" }, (size_t[]){ 4 });
	{
		char pattern[KEY_MAX + 1];

		snprintf(pattern, sizeof(pattern), "%s*", cl->k_wake);
		cmd(&cl->s, on_wake, cl, 2, (const char *[]){ "PSUBSCRIBE", pattern },
		    (size_t[]){ 10, strlen(pattern) });
	}
	cl->ping_sent = 0; /* the handshake deadline covers these */
}

/* A Redis that stopped answering (link up, no replies) is dropped. */
static void
check_timeouts(struct cluster *cl, long now)
{
	long t = (long)cl->cfg.timeout_ms;

	if (cl->state == CONNECTING && now >= cl->handshake_due)
		link_lost(cl, "no answer to the handshake");
	else if (cl->state == UP && cl->ping_sent != 0 && now - cl->ping_sent > t)
		link_lost(cl, "no answer to the heartbeat");
	else if (cl->state == UP && cl->read_sent != 0 && now - cl->read_sent > t)
		link_lost(cl, "no answer to XREAD");
}

/* Nick answers wait for their connection's job: ask the server to run it
 * until it has taken the answer. */
static void
run_kicks(struct cluster *cl, long now)
{
	struct kick **pp = &cl->kicks;

	while (*pp != NULL) {
		struct kick *k = *pp;

		if (!conn_nick_answered(k->c) || now >= k->give_up_ms) {
			*pp = k->next;
			conn_unref(k->c);
			free(k);
			continue;
		}
		cl->kick_fn(cl->kick_arg, k->c);
		pp = &k->next;
	}
}

/* --- the thread ------------------------------------------------------------------------- */

static void
on_link_event(struct link *l, uint32_t events)
{
	if (l->ac != NULL && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		redisAsyncHandleRead(l->ac);
	if (l->ac != NULL && (events & (EPOLLOUT | EPOLLERR)))
		redisAsyncHandleWrite(l->ac);
}

static bool
outbox_all_acked(struct cluster *cl)
{
	bool all = true;

	pthread_mutex_lock(&cl->mu);
	for (size_t i = 0; i < cl->out.len && all; i++)
		all = outbox_at(&cl->out, i)->acked;
	pthread_mutex_unlock(&cl->mu);
	return all;
}

static void
on_goodbye(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = priv;

	(void)ac;
	(void)reply;
	cl->stop_phase = 3;
}

/* Shutdown, step by step, without blocking the loop. */
static void
stop_step(struct cluster *cl, long now)
{
	if (cl->stop_phase == 0) {
		cl->stop_phase = 1;
		cl->stop_phase_due = now + STOP_FLUSH_MS;
	}
	if (cl->stop_phase == 1 && cl->state == UP && !outbox_all_acked(cl) &&
	    now < cl->stop_phase_due)
		return;
	if (cl->stop_phase == 1) {
		if (cl->state != UP) {
			cl->stop_phase = 3;
			return;
		}
		cl->stop_phase = 2;
		cl->stop_phase_due = now + STOP_REAP_MS;
		reap(cl, "self", on_goodbye, cl);
		return;
	}
	if (cl->stop_phase == 2 && (cl->state != UP || now >= cl->stop_phase_due))
		cl->stop_phase = 3;
}

static void *
bus_main(void *arg)
{
	struct cluster *cl = arg;

#ifdef HAVE_PTHREAD_SETNAME_NP
	pthread_setname_np(pthread_self(), "bus");
#endif
	cl->next_try = 0;
	while (cl->stop_phase != 3) {
		struct epoll_event evs[8];
		long now = mono_ms(), wait = 100;
		int n;

		if (cl->state == DOWN && cl->next_try > now && cl->next_try - now < wait)
			wait = cl->next_try - now;
		if (cl->kicks != NULL && wait > KICK_RETRY_MS)
			wait = KICK_RETRY_MS;
		if (atomic_load(&cl->stopping))
			wait = 10;
		n = epoll_wait(cl->epfd, evs, 8, (int)wait);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &cl->tag_ev)
				wake_drain(cl->evfd);
			else
				on_link_event(evs[i].data.ptr, evs[i].events);
		}
		now = mono_ms();
		if (cl->state == DOWN && now >= cl->next_try && !atomic_load(&cl->stopping))
			connect_links(cl);
		if (cl->state == UP) {
			/* In this order: a member's room is in Redis before its
			 * server reads the room, and the room is read before our
			 * first line of it is sent. */
			send_ops(cl);
			if (atomic_load(&cl->rooms_dirty))
				look_at_rooms(cl);
			send_outbox(cl);
			read_more(cl); /* a sweep due, or wakes that came meanwhile */
			if (now >= cl->next_beat) {
				beat(cl);
				cl->next_beat = now + BEAT_MS;
			}
		}
		check_timeouts(cl, now);
		run_kicks(cl, now);
		stats_set(STATS_CLUSTER_UP, cl->state == UP);
		pthread_mutex_lock(&cl->mu);
		stats_set(STATS_CLUSTER_BACKLOG, (int64_t)cl->out.unsent);
		pthread_mutex_unlock(&cl->mu);
		if (atomic_load(&cl->stopping))
			stop_step(cl, now);
	}
	return NULL;
}

/* --- start and stop ---------------------------------------------------------------------- */

static void
key(char *out, const struct cluster *cl, const char *what)
{
	/* Fits: a prefix of 65, and what of NAME_MAX_ + 16. */
	snprintf(out, KEY_MAX, "%.*s%.*s", NAME_MAX_ + 1, cl->prefix, NAME_MAX_ + 16, what);
}

int
cluster_start(struct cluster **out, const struct cluster_config *cfg, struct broadcast *bc,
              void (*kick)(void *, struct conn *), void (*flush)(void *), void *kick_arg)
{
	struct cluster *cl = calloc(1, sizeof(*cl));
	struct epoll_event ev = { .events = EPOLLIN };
	char what[NAME_MAX_ + 16];
	int rc;

	if (cl == NULL)
		return -ENOMEM;
	cl->cfg = *cfg;
	cl->bc = bc;
	cl->kick_fn = kick;
	cl->flush_fn = flush;
	cl->kick_arg = kick_arg;
	snprintf(cl->node, sizeof(cl->node), "%s", cfg->node);
	snprintf(cl->prefix, sizeof(cl->prefix), "%s:", cfg->name);
	key(cl->k_epoch, cl, "epoch");
	key(cl->k_nodes, cl, "nodes");
	key(cl->k_incs, cl, "incs");
	key(cl->k_nicks, cl, "nicks");
	key(cl->k_topics, cl, "topics");
	key(cl->k_wake, cl, "wake:");
	snprintf(what, sizeof(what), "wake:inbox:%s", cl->node);
	key(cl->wake_inbox, cl, what);
	key(cl->k_rooms, cl, "rooms");
	streams_init(&cl->streams, cl->prefix);
	snprintf(what, sizeof(what), "members:%s", cl->node);
	key(cl->k_members, cl, what);
	snprintf(what, sizeof(what), "inbox:%s", cl->node);
	key(cl->k_inbox, cl, what);
	random_hex(cl->inc, sizeof(cl->inc));
	redis_url_format(&cfg->url, cl->where, sizeof(cl->where));
	cl->w = (struct link){ .cl = cl, .what = "writer", .fd = -1 };
	cl->r = (struct link){ .cl = cl, .what = "reader", .fd = -1 };
	cl->s = (struct link){ .cl = cl, .what = "subscriber", .fd = -1 };
	cl->state = DOWN;
	cl->backoff = RETRY_MIN_MS;
	atomic_init(&cl->rooms_dirty, true);
	cl->ops_tail = &cl->ops;
	origins_init(&cl->origins);
	atomic_init(&cl->stopping, false);
	atomic_init(&cl->leaving, false);
	cl->epfd = cl->evfd = -1;

	if ((rc = outbox_init(&cl->out, cfg->backlog, cfg->backlog * BACKLOG_BYTES_PER_LINE)) != 0)
		goto fail;
	pthread_mutex_init(&cl->mu, NULL);
	pthread_mutex_init(&cl->names_mu, NULL);
	if ((cl->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || (cl->evfd = wake_open()) < 0) {
		rc = -errno;
		goto fail_mu;
	}
	ev.data.ptr = &cl->tag_ev;
	if (epoll_ctl(cl->epfd, EPOLL_CTL_ADD, cl->evfd, &ev) != 0) {
		rc = -errno;
		goto fail_mu;
	}
	bc->bus = (struct bus_hook){
		.publish = hook_publish,
		.member = hook_member,
		.claim_nick = hook_claim_nick,
		.tell = hook_tell,
		.names = hook_names,
		.rooms = hook_rooms,
		.rooms_changed = hook_rooms_changed,
		.arg = cl,
	};
	if ((rc = -pthread_create(&cl->thread, NULL, bus_main, cl)) != 0) {
		memset(&bc->bus, 0, sizeof(bc->bus));
		goto fail_mu;
	}
	log_info("cluster: node %s of cluster %s, Redis %s", cl->node, cfg->name, cl->where);
	*out = cl;
	return 0;

fail_mu:
	if (cl->evfd >= 0)
		close(cl->evfd);
	if (cl->epfd >= 0)
		close(cl->epfd);
	pthread_mutex_destroy(&cl->mu);
	pthread_mutex_destroy(&cl->names_mu);
	outbox_destroy(&cl->out);
fail:
	free(cl);
	return rc;
}

void
cluster_leaving(struct cluster *cl)
{
	atomic_store(&cl->leaving, true);
}

void
cluster_stop(struct cluster *cl)
{
	size_t unsent = 0;

	atomic_store(&cl->leaving, true);
	atomic_store(&cl->stopping, true);
	wake_bus(cl);
	pthread_join(cl->thread, NULL);
	memset(&cl->bc->bus, 0, sizeof(cl->bc->bus));

	/* The thread is gone: everything is ours. */
	for (size_t i = 0; i < cl->out.len; i++)
		if (!outbox_at(&cl->out, i)->acked)
			unsent++;
	if (unsent > 0)
		log_warn("cluster: %zu lines of ours never reached Redis", unsent);
	if (cl->w.ac != NULL || cl->r.ac != NULL || cl->s.ac != NULL) {
		cl->state = DOWN; /* no link_lost work from the callbacks below */
		drop_link(&cl->w);
		drop_link(&cl->r);
		drop_link(&cl->s);
	}
	fail_ops(cl);
	while (cl->kicks != NULL) {
		struct kick *k = cl->kicks;

		cl->kicks = k->next;
		conn_unref(k->c);
		free(k);
	}
	outbox_destroy(&cl->out);
	free(cl->remote);
	free(cl->topics);
	streams_destroy(&cl->streams);
	close(cl->evfd);
	close(cl->epfd);
	pthread_mutex_destroy(&cl->mu);
	pthread_mutex_destroy(&cl->names_mu);
	free(cl);
}
