/*
 * Framing: turn a byte stream into lines.  Pure functions, no I/O, so that
 * they can be tested and fuzzed on their own.
 *
 * A line ends at LF, CR LF, a lone CR, or telnet's CR NUL; nothing else
 * ends one.  A line longer than max_line bytes is cut at a UTF-8 character boundary at or below
 * max_line, delivered with truncated set, and the rest of it, up to its LF,
 * is discarded.  So the carry buffer never holds more than max_line bytes,
 * whatever arrives.
 */
#ifndef LINE_H
#define LINE_H

#include <stdbool.h>
#include <stddef.h>

/* The part of an unfinished line carried between reads.  Owned by whoever
 * owns the connection's input (the relay job in flight). */
struct line_buf {
	char *data;
	size_t len, cap;
	bool discarding; /* inside an over-long line: drop up to its end */
	bool after_cr;   /* the last line ended at a CR: an LF or NUL next is its */
};

/* Called once per complete line, without its line end; line is not
 * NUL-terminated and is valid only during the call.  Empty lines are
 * delivered too.  truncated: the line was cut at max_line. */
typedef void (*line_fn)(void *ctx, const char *line, size_t len, bool truncated);

/*
 * Feed n bytes.  Calls fn for every line they complete (in order).
 * Returns 0, or -ENOMEM if the carry could not grow (the data after the
 * last complete line is then lost, the stream stays usable).
 */
int line_feed(struct line_buf *lb, size_t max_line, const char *data, size_t n, line_fn fn,
              void *ctx);

/* At end of input: deliver what is carried as a last line, if anything. */
void line_finish(struct line_buf *lb, line_fn fn, void *ctx);

/* Forget what is carried and release the buffer. */
void line_buf_free(struct line_buf *lb);

/* Where to cut s (avail bytes) at or below max so as not to split a UTF-8
 * sequence: the largest cut <= max whose byte s[cut] is no continuation
 * byte (a cut at avail is always clean). */
size_t line_utf8_cut(const char *s, size_t avail, size_t max);

/*
 * Make one line safe to show on anyone's terminal, into out (cap bytes):
 * - ill-formed UTF-8 becomes U+FFFD;
 * - C0 controls but TAB (NUL included), DEL and C1 controls are removed;
 * - escape sequences are removed whole: CSI (ESC [ or 0x9B), the strings
 *   OSC, DCS, SOS, PM and APC (ESC ] P X ^ _, or their 8-bit forms) up to
 *   BEL or ST, and ESC with intermediates and a final byte (ESC c, ESC ( B).
 *   So no client can move another's cursor, retitle a terminal or write to
 *   its clipboard.
 * - what could make a line pass for another is removed: bidi controls
 *   (U+202A-202E, U+2066-2069, U+200E, U+200F, U+061C), U+2028 and U+2029,
 *   and the invisible U+200B, U+2060 and U+FEFF; Unicode's other spaces
 *   (U+00A0, U+2000-200A, U+3000...) become a plain space, and a run of
 *   blanks is cut to LINE_BLANK_RUN columns (a TAB counting that many), so
 *   no padding can wrap a fake line onto a row of its own.
 * The output is valid UTF-8, holds no control character but TAB, and is
 * cut at a character boundary when it would pass cap (then *cut is set).
 * Returns its length.
 */
#define LINE_BLANK_RUN 8

size_t line_sanitize(const char *in, size_t len, char *out, size_t cap, bool *cut);

#endif /* LINE_H */
