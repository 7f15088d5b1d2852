/*
 * The cluster: several chat-servers sharing their rooms through Redis.
 *
 * One thread of its own, the bus thread, holds the three hiredis contexts
 * (hiredis is not thread-safe) and makes every Redis call; relay jobs and
 * the accept loop only queue to it through the bus hooks (bus.h) and never
 * wait for Redis.  Its epoll watches the three Redis sockets and an
 * eventfd the hooks write to.
 *
 *   writer      XADD of our lines to their rooms' streams, each room's wake
 *               (PUBLISH), presence, nick claims, private messages,
 *               heartbeats, the reaper (Lua scripts, so each is atomic)
 *   subscriber  PSUBSCRIBE to every wake: which streams have news
 *   reader      XREAD of the rooms with news (and of every room we read,
 *               once a second) and our inbox, from the last position
 *               read: a dropped link loses nothing; a line read again is
 *               dropped by its room's numbering (origins.h)
 *
 * docs/cluster.md has the key layout, the guarantees and where they end.
 */
#ifndef CLUSTER_H
#define CLUSTER_H

#include <stddef.h>

#include "broadcast.h"
#include "redis_url.h"

struct cluster_config {
	struct redis_url url;
	const char *name;         /* --cluster: the namespace of every key */
	const char *node;         /* --node: this server, in keys, logs, notices */
	size_t backlog;           /* --cluster-backlog: our lines kept (and bytes/839) */
	unsigned timeout_ms;      /* --redis-timeout: a Redis silent this long is dropped */
	unsigned node_timeout_ms; /* --node-timeout: a server silent this long is gone */
	size_t history;           /* --history: lines to fill from the stream at start */
};

struct cluster;

/*
 * Start the bus thread for registry bc, and set bc->bus.  An unreachable
 * Redis is not an error: the thread keeps trying, and until it succeeds
 * the server is a room of its own.  From the bus thread, kick(arg, c) asks
 * the server to run c's job soon (a nick answer waits there), and
 * flush(arg) to write what the bus queued to our clients (a write pass,
 * broadcast_flush, which the server runs on its pool: the bus thread only
 * queues, so that it is back on Redis at once and the writes of several
 * batches go out together).  Returns 0 or a negative errno.
 */
int cluster_start(struct cluster **out, const struct cluster_config *cfg, struct broadcast *bc,
                  void (*kick)(void *arg, struct conn *c), void (*flush)(void *arg),
                  void *arg);

/* The server is about to empty its registry for shutdown: those
 * departures are not presence changes, cluster_stop announces them. */
void cluster_leaving(struct cluster *cl);

/*
 * Send what is still queued (for up to 2 s), tell the other servers our
 * clients have left (one notice each), stop the thread and free.  Clears
 * bc->bus.
 */
void cluster_stop(struct cluster *cl);

#endif /* CLUSTER_H */
