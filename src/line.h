/*
 * Framing: turn a byte stream into lines.  Pure functions, no I/O, so that
 * they can be tested and fuzzed on their own.
 *
 * A line ends at LF; a CR just before the LF is dropped.  A line longer
 * than max_line bytes is cut at a UTF-8 character boundary at or below
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
	bool discarding; /* inside an over-long line: drop up to the next LF */
};

/* Called once per complete line; line is not NUL-terminated and is valid
 * only during the call.  Empty lines are delivered too. */
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

#endif /* LINE_H */
