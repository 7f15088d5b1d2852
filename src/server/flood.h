/*
 * Flood control: a token bucket per client, and the lines a client sent
 * beyond it, held until it has tokens again.  Pure code, no I/O and no
 * clock of its own, so that it can be tested with made-up times.
 *
 * The bucket is kept the way GCRA (the "generic cell rate algorithm" of
 * ATM networks) keeps it: one number, the theoretical arrival time of the
 * next line.  A line conforms if that time is at most burst - 1 intervals
 * ahead of now; taking it pushes the time one interval on.  This is an
 * exact token bucket (rate per second, burst tokens) without refill
 * arithmetic or rounding drift.
 *
 * Ownership: a connection's bucket and held lines belong to its relay job
 * in flight, like the rest of its input; the limit is shared and
 * immutable.
 */
#ifndef FLOOD_H
#define FLOOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The limit every client gets; immutable once made. */
struct flood_limit {
	int64_t interval_ns;  /* between lines at the steady rate; 0: no limit */
	int64_t tolerance_ns; /* (burst - 1) intervals */
};

/* One client's bucket; all zero is a full bucket. */
struct flood_bucket {
	int64_t tat_ns; /* when the next line would be due at the steady rate */
};

/* rate lines per second (0: no limit), burst lines at once (at least 1). */
void flood_limit_init(struct flood_limit *l, unsigned rate, unsigned burst);

/* True if the limit is on. */
bool flood_limit_on(const struct flood_limit *l);

/*
 * May one line go at now_ns (any monotonic clock, in nanoseconds)?  Returns
 * 0 and takes its token if so; otherwise how many nanoseconds until it
 * may, and takes nothing.
 */
int64_t flood_take(const struct flood_limit *l, struct flood_bucket *b, int64_t now_ns);

/* As flood_take, without taking: 0 if a token is there now, else how many
 * nanoseconds until one is. */
int64_t flood_peek(const struct flood_limit *l, const struct flood_bucket *b, int64_t now_ns);

/*
 * Lines held back, first in first out.  Each is kept with its truncated
 * flag (see line.h).  Lines never contain CR or LF (those end them), so
 * one LF after each is enough to frame them.
 */
struct flood_hold {
	char *data;
	size_t off, len, cap; /* unread lines are data[off, len) */
};

/* Append a line; 0 or -ENOMEM (then nothing is held for it). */
int flood_hold_push(struct flood_hold *h, const char *line, size_t len, bool truncated);

/* The oldest line, removed: *line stays valid until the next push or free.
 * False when none is held. */
bool flood_hold_pop(struct flood_hold *h, const char **line, size_t *len, bool *truncated);

/* True if a line is held. */
bool flood_hold_any(const struct flood_hold *h);

/* Bytes held (framing included). */
size_t flood_hold_bytes(const struct flood_hold *h);

/* Forget what is held and release the memory. */
void flood_hold_free(struct flood_hold *h);

#endif /* FLOOD_H */
