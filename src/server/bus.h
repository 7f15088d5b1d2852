/*
 * The bus: the one way out to other servers.  The broadcast module hands
 * the hook every fan-out other servers of a cluster must also see (chat
 * lines, join, leave and nick notices) before it fans out locally; the
 * cluster module (cluster.h, Redis behind it) sets the hook.  Standalone,
 * the hook is empty and nothing changes.
 *
 * Order.  While the link to the other servers is up, the bus takes the
 * messages (publish returns true): the local fan-out then happens when
 * they come back from the cluster's log (broadcast_deliver), so that every
 * client of every server sees the room's lines in the one order that log
 * gives.  While it is down, publish keeps them for later and returns
 * false: the local clients hear them at once.
 *
 * Rooms.  Every message belongs to one room (its name, "#x", compared
 * without regard to case): the bus carries each room's messages apart
 * (one stream per room) and brings back only those of the rooms this
 * server has members in (rooms_changed tells it when that set changes).
 *
 * Threads: every hook is called by whichever thread fanned out or changed
 * the registry (a relay job, the announce job, the accept loop), with no
 * lock of the registry held.  None may block or call back into broadcast:
 * they queue to the bus's own thread, which alone talks to the other
 * system, and reply (claim_nick, tell) later, from that thread.
 */
#ifndef BUS_H
#define BUS_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct msg;

enum bus_kind {
	BUS_CHAT,   /* chat lines and actions: in the history too */
	BUS_NOTICE, /* joins, departures, nick changes */
};

enum bus_member {
	BUS_JOINED, /* c is in the registry now */
	BUS_LEFT,   /* c has left it */
	BUS_RENAMED, /* c->nick and c->name changed */
	BUS_MOVED    /* c is in another room */
};

/* A room as the other servers have it: their members there, and its
 * topic (the cluster's). */
struct bus_room {
	char name[34]; /* "#x": ROOM_NAME_MAX + 2 */
	size_t members;
	char topic[301]; /* ROOM_TOPIC_MAX + 1; "" if none */
	char by[96];     /* who set it */
};

struct bus_hook {
	/*
	 * NULL: standalone.  msgs are borrowed for the call (take a reference
	 * to keep one), all for room.  The sender of each is each[i] if each
	 * is not NULL, else from (NULL: the server).  topic, if not NULL, is
	 * the room's new topic ("by<TAB>text") that the message announces.
	 * Returns true if the bus has taken them for delivery in the
	 * cluster's order (see above).
	 */
	bool (*publish)(void *arg, enum bus_kind kind, const char *room, const char *topic,
	                const struct conn *from, struct conn *const *each, struct msg *const *msgs,
	                size_t n);
	/* The registry changed (presence for other servers' /who).  room is
	 * c's room now (BUS_LEFT: the one it left). */
	void (*member)(void *arg, struct conn *c, const char *room, enum bus_member op);
	/* A room got its first member here, or lost its last: which streams
	 * the bus reads changes.  Called with no lock held. */
	void (*rooms_changed)(void *arg);
	/*
	 * Ask for nick (valid, free on this server) for member c.  Returns 0
	 * when asked: the answer reaches c's own job later, through
	 * conn_take_nick(); -ENOTCONN while the link is down; -EBUSY if c
	 * already waits for one; -ENOMEM.
	 */
	int (*claim_nick)(void *arg, struct conn *c, const char *nick);
	/*
	 * A private message m for nick, who is not on this server.  Returns 0
	 * when taken (the bus tells from "sent to" or "no such nick" itself),
	 * or -ENOTCONN / -ENOMEM.  m is borrowed.
	 */
	int (*tell)(void *arg, struct conn *from, const char *nick, struct msg *m);
	/* The names on the other servers in room (NULL: in any), ", "-joined
	 * in a new string, and their count; NULL with *n == 0 when none or
	 * unknown. */
	char *(*names)(void *arg, const char *room, size_t *n);
	/* The rooms the other servers have members in, and every room's
	 * topic, in a new array (NULL with *n == 0 when none or unknown). */
	struct bus_room *(*rooms)(void *arg, size_t *n);
	void *arg;
};

#endif /* BUS_H */
