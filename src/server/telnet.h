/*
 * Telnet option negotiation, dropped.  Telnet clients (PuTTY in telnet
 * mode, Windows telnet, some MUD clients) open with commands such as
 * IAC DO TERMINAL-TYPE or IAC WILL NAWS; read as text they become
 * replacement characters at the start of the first line.  This filter
 * takes every telnet command out of the input before it is framed, and
 * answers what asks for an answer with a refusal (DO -> WONT, WILL ->
 * DONT), once per option, so that a client that insists cannot make us
 * loop with it (RFC 854; RFC 1143's rule: never answer what changes
 * nothing).  An IAC byte is never relayed: 0xFF is no part of UTF-8, so
 * text loses nothing.
 *
 * State per connection, owned by its relay job; the struct is zeroed to
 * start.  Pure: no I/O, the caller sends the answers.
 */
#ifndef TELNET_H
#define TELNET_H

#include <stddef.h>
#include <stdint.h>

#define TELNET_IAC 255
#define TELNET_DONT 254
#define TELNET_DO 253
#define TELNET_WONT 252
#define TELNET_WILL 251
#define TELNET_SB 250
#define TELNET_SE 240

/* Room for the answers of one call: enough for any input, as each option
 * is answered once per direction (2 x 256 x 3 bytes). */
#define TELNET_REPLY_MAX 1536

struct telnet {
	uint8_t state;         /* where in a command the last byte left us */
	uint8_t answered[64];  /* a bit per option and direction: refused already */
};

/*
 * Take the telnet commands out of buf (n bytes) in place, and return the
 * length of what is left, the data.  Answers to send are appended to
 * reply (TELNET_REPLY_MAX bytes), their length added to *rlen.  A command
 * cut between two reads is carried in t.
 */
size_t telnet_filter(struct telnet *t, char *buf, size_t n, unsigned char *reply, size_t *rlen);

#endif /* TELNET_H */
