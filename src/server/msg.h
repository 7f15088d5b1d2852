/*
 * Messages: what the server sends, formatted once and shared by reference
 * among the send queues of every recipient.  Also the two ways to send one
 * that relay jobs, commands and the accept loop all need: to one client
 * (msg_tell) and to every member but one (msg_broadcast).
 *
 * Wire forms (docs/protocol.md):
 *   chat     "<sender> | <YYYY-MM-DD HH:MM:SS> | <text>\r\n"
 *   private  "<sender> (private) | <YYYY-MM-DD HH:MM:SS> | <text>\r\n"
 *   notice   "* <text>\r\n"
 * <sender> is an address or nick@address and holds no blank, so nothing a
 * client types can reach the sender field: a private mark there, or a
 * leading "* ", is the server's word.
 *
 * Ownership: a msg is immutable once built; refs (atomic) counts the
 * holders (send queues, the history ring, whoever built it), and the last
 * msg_unref() frees it.  Functions that "consume" m take over the caller's
 * reference.
 */
#ifndef MSG_H
#define MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct broadcast;
struct conn;

struct msg {
	atomic_uint refs;
	size_t len;
	char data[];
};

/* A message of len bytes (data to be filled in), one reference.  NULL on
 * allocation failure. */
struct msg *msg_new(size_t len);
void msg_ref(struct msg *m);
void msg_unref(struct msg *m);

/*
 * A chat line from raw input, its text sanitised (line_sanitize) and at
 * most max_line bytes; *cut says it had to be shortened.  private marks it
 * as for one recipient.  NULL when nothing printable is left (not to be
 * relayed) or when out of memory.
 */
struct msg *msg_chat(const char *sender, const char *raw, size_t len, size_t max_line, bool private,
                     bool *cut);

/* The longest chat message a text of max_line bytes can make: what a send
 * queue must hold for one line. */
size_t msg_chat_max(size_t max_line);

/* A server notice "* <text>\r\n" (the text cut at 512 bytes); NULL when
 * out of memory. */
struct msg *msg_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Queue m to c alone and see that it is written (consumes m; NULL is
 * ignored). */
void msg_tell(struct conn *c, struct msg *m);

/* Queue m to every member of b but from, which may be NULL (consumes m;
 * NULL is ignored); written by the next write pass. */
void msg_broadcast(struct broadcast *b, const struct conn *from, struct msg *m);

/* As msg_broadcast, to the members of room (NULL: nobody): a departure
 * told to the room that was left.  Consumes m. */
struct room;
void msg_broadcast_room(struct broadcast *b, struct room *room, struct msg *m);

/* As msg_broadcast, to this server's members only (bus.h). */
void msg_broadcast_local(struct broadcast *b, const struct conn *from, struct msg *m);

#endif /* MSG_H */
