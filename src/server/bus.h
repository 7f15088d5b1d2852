/*
 * The bus: the one way out to other servers.  The broadcast module fans
 * every line out to the local connections; what other servers of a
 * cluster must also see (chat lines, join, leave and nick notices) it
 * hands to this hook as well.  A cluster module (Redis behind it) sets the
 * hook and brings other servers' lines back in through the same local
 * fan-out (broadcast_send_local), so nothing in broadcast, relay or
 * commands changes for it.  Standalone, the hook is empty.
 *
 * Threads: publish is called by whichever thread fanned out (a relay job,
 * the announce job), after the local fan-out and with no lock held.  It
 * must not block and must not call back into broadcast: it queues to the
 * bus's own thread, which alone talks to the other system.
 */
#ifndef BUS_H
#define BUS_H

#include <stddef.h>

struct conn;
struct msg;

enum bus_kind {
	BUS_CHAT,   /* chat lines and actions: in the history too */
	BUS_NOTICE, /* joins, departures, nick changes */
};

struct bus_hook {
	/* NULL: standalone.  msgs are borrowed for the call (take a
	 * reference to keep one); from is the sender, or NULL. */
	void (*publish)(void *arg, enum bus_kind kind, const struct conn *from,
	                struct msg *const *msgs, size_t n);
	void *arg;
};

#endif /* BUS_H */
