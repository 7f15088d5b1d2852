/*
 * How chat-client shows the server's lines on a terminal.  The wire
 * format (docs/protocol.md) is made for programs; a person wants
 *
 *   [09:14] <alice> hello, bob          a chat line: local time, nick
 *   [09:14] * alice waves               an action
 *   [09:15] [private] <bob> psst        a private message, marked
 *   [09:15] * bob (127.0.0.1:4) joined  a notice, dimmed
 *
 * with the user's own nick in bold wherever someone writes it, and the
 * user's own lines in the same form.  In a pipe chat-client prints the
 * wire format unchanged, so none of this applies there.
 *
 * Pure: no I/O and no state beyond the struct the caller passes, so that
 * it is tested line by line.  Lines given are already made safe to show
 * (line_sanitize): no control characters but TAB.
 */
#ifndef FMT_H
#define FMT_H

#include <stdbool.h>
#include <stddef.h>

/* The nick and address part of a sender ("alice@127.0.0.1:4"): 16 bytes
 * of nick and an address. */
#define FMT_NAME_MAX 96

struct fmt {
	bool color; /* ANSI colours (off with NO_COLOR, or a dumb terminal) */
	bool attrs; /* bold and dim (off on a dumb terminal) */
	char me[FMT_NAME_MAX]; /* our nick, "" for none: highlighted */
};

enum fmt_kind {
	FMT_CHAT,    /* "<sender> | <stamp> | <text>" */
	FMT_ACTION,  /* a chat line whose text is "* nick ..." (/me) */
	FMT_PRIVATE, /* "<sender> (private) | <stamp> | <text>" */
	FMT_NOTICE,  /* "* <text>" */
	FMT_OTHER,   /* none of these (another server's format) */
};

/* A wire line taken apart.  who is the sender's nick, or its address if
 * it has none; text the message (or the notice after "* "). */
struct fmt_line {
	enum fmt_kind kind;
	char who[FMT_NAME_MAX];
	const char *text;
	size_t tlen;
};

/* Take line (n bytes, no line end) apart into *out. */
void fmt_parse(const char *line, size_t n, struct fmt_line *out);

/*
 * The line as the terminal shows it, into out (cap bytes, NUL-terminated):
 * hhmm ("09:14") first, then as above.  Returns its length (cut at cap).
 */
size_t fmt_render(const struct fmt *f, const char *hhmm, const char *line, size_t n, char *out,
                  size_t cap);

/* Our own chat line (text as typed), in the form of the others'. */
size_t fmt_own(const struct fmt *f, const char *hhmm, const char *text, size_t n, char *out,
               size_t cap);

/* A command we typed ("/join dev"), dimmed after the time: what we
 * asked, not what anyone said. */
size_t fmt_command(const struct fmt *f, const char *hhmm, const char *text, size_t n, char *out,
                   size_t cap);

/* Colour and attributes for this environment: NO_COLOR (set and not
 * empty) turns colour off; TERM unset, empty or "dumb" turns both off. */
void fmt_init(struct fmt *f, const char *no_color, const char *term);

#endif /* FMT_H */
