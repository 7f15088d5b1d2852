/*
 * Commands: a line that starts with '/' (but not "//", which sends the
 * literal rest) is a command for the server, run in the sender's own relay
 * job.  Replies to the sender are server lines ("* ..."); what others see
 * always starts with the sender's field or is a server notice, so no client
 * can forge one.
 *
 *   /nick NAME        take a nick: 1 to 16 ASCII letters, digits, _ or -,
 *                     a letter first; unique without regard to case (in a
 *                     cluster, across every server: the bus asks Redis, and
 *                     the answer comes back to the client's own job)
 *   /who, /names      who is in the sender's room (/who *: the server)
 *   /join NAME        move to room #NAME, made if needed (room.h)
 *   /rooms            the rooms, their counts and topics
 *   /topic [TEXT]     show or set the topic of the sender's room
 *   /me TEXT          an action: "<sender> | <time> | * alice TEXT"
 *   /msg NAME TEXT    to that client only, marked "(private)" after the
 *                     sender's name, where no typed text can reach
 *   /quit [REASON]    leave; others see the reason
 *   /help             the list
 */
#ifndef COMMAND_H
#define COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include "broadcast.h"
#include "conn.h"

/* Room for a command line's reply or reason kept on the stack. */
#define COMMAND_MAX 512

/* What commands need of the server; owned by the relay, immutable. */
struct command_ctx {
	struct broadcast *bc; /* the registry: nicks, members, fan-out */
	size_t max_line;      /* --max-line: /me and /msg texts follow it */
};

/*
 * Run the command in text (sanitised, starting with '/') for c, in c's own
 * job.  cut says the line was already cut to max_line (the sender is told,
 * as for chat lines).  Returns true when c asked to quit, with its reason
 * (possibly empty) in reason.
 */
bool command_run(const struct command_ctx *cx, struct conn *c, const char *text, size_t len,
                 bool cut, char *reason, size_t reason_len);

/*
 * In c's own job: apply the cluster's answer to a /nick c asked for (bus.h
 * claim_nick), if one has come: true if one had.  Standalone, nothing
 * ever waits.
 */
bool command_nick_answer(const struct command_ctx *cx, struct conn *c);

/* Whether text (len bytes, a command line beginning with '/') is /nick. */
bool command_is_nick(const char *text, size_t len);

/* True if s (n bytes) is a valid nick. */
bool command_nick_valid(const char *s, size_t n);

#endif /* COMMAND_H */
