/*
 * First contact: the lines a client receives the moment it is in, before
 * anything else (the history replay and live lines come after).  An `nc`
 * user must not face silence: the server's name, how many are online,
 * where they are and under which name, and how to go on; then the
 * operator's message of the day (--motd FILE), if any.
 *
 * Ownership and locks: host and the path are immutable after greet_init.
 * The MOTD is one shared msg (every greeting takes a reference on it),
 * swapped whole by greet_reload (the accept loop, on SIGHUP) under mu, so
 * a greeting has either the old text or the new one, never a mix.
 */
#ifndef GREET_H
#define GREET_H

#include <pthread.h>
#include <stddef.h>

#include "msg.h"

/* The MOTD as sent: at most this many bytes and lines (each "* text"). */
#define GREET_MOTD_BYTES 4096
#define GREET_MOTD_LINES 50
/* What a greeting may add to a newcomer's send queue, at most: the
 * header's few lines and the MOTD.  --max-sendq must leave room for it. */
#define GREET_MAX (GREET_MOTD_BYTES + 1024)

struct greet {
	char host[64];         /* immutable: this machine's name */
	pthread_mutex_t mu;
	struct msg *motd; /* mu: the MOTD as notices (one reference); NULL: none */
};

/*
 * Ready to greet; loads motd_path (NULL: none).  Returns 0, or a negative
 * errno with the reason in err (the file cannot be read, or is too long).
 */
int greet_init(struct greet *g, const char *motd_path, char *err, size_t len);
void greet_destroy(struct greet *g);

/*
 * Read the MOTD from path (SIGHUP: the file as it is now, or another
 * file; NULL: no MOTD from now on).  Returns 0 when the new text is in
 * use, 1 when there was and is no MOTD, or a negative errno with the
 * reason in err, the text loaded before staying in use.
 */
int greet_reload(struct greet *g, const char *path, char *err, size_t len);

/*
 * The greeting for a client that shows as shown and is in room, with
 * online clients on the server (itself included): up to two messages in
 * out (the header, then the MOTD), each with a reference for the caller.
 * Returns how many (0 when out of memory).
 */
size_t greet_make(struct greet *g, const char *shown, const char *room, size_t online,
                  struct msg *out[2]);

/* The MOTD file rendered as notices, each line sanitised as a chat line
 * is, in *m (NULL for a file with nothing to show).  Returns 0, or a
 * negative errno with the reason in err (unreadable, or over
 * GREET_MOTD_BYTES or GREET_MOTD_LINES once rendered). */
int greet_load(const char *path, struct msg **m, char *err, size_t len);

#endif /* GREET_H */
