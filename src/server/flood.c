/* Flood control; see flood.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flood.h"

#define NS_PER_S 1000000000LL

void
flood_limit_init(struct flood_limit *l, unsigned rate, unsigned burst)
{
	l->interval_ns = rate > 0 ? NS_PER_S / rate : 0;
	if (l->interval_ns == 0 && rate > 0)
		l->interval_ns = 1; /* more than a line per nanosecond: as good as off */
	l->tolerance_ns = (int64_t)(burst > 0 ? burst - 1 : 0) * l->interval_ns;
}

bool
flood_limit_on(const struct flood_limit *l)
{
	return l->interval_ns > 0;
}

int64_t
flood_take(const struct flood_limit *l, struct flood_bucket *b, int64_t now_ns)
{
	int64_t tat;

	if (l->interval_ns == 0)
		return 0;
	/* A bucket left alone long enough is simply full: the arrival time
	 * never lags behind now. */
	tat = b->tat_ns > now_ns ? b->tat_ns : now_ns;
	if (tat - now_ns > l->tolerance_ns)
		return tat - l->tolerance_ns - now_ns;
	b->tat_ns = tat + l->interval_ns;
	return 0;
}

int64_t
flood_peek(const struct flood_limit *l, const struct flood_bucket *b, int64_t now_ns)
{
	struct flood_bucket copy = *b;

	return flood_take(l, &copy, now_ns);
}

/* Room for need more bytes at the end: first by moving what is unread to
 * the front, then by growing. */
static int
hold_reserve(struct flood_hold *h, size_t need)
{
	size_t cap;
	char *p;

	if (h->cap - h->len >= need)
		return 0;
	if (h->off > 0) {
		memmove(h->data, h->data + h->off, h->len - h->off);
		h->len -= h->off;
		h->off = 0;
		if (h->cap - h->len >= need)
			return 0;
	}
	cap = h->cap ? h->cap : 1024;
	while (cap - h->len < need)
		cap *= 2;
	if ((p = realloc(h->data, cap)) == NULL)
		return -ENOMEM;
	h->data = p;
	h->cap = cap;
	return 0;
}

int
flood_hold_push(struct flood_hold *h, const char *line, size_t len, bool truncated)
{
	/* A flag byte, the line, its LF. */
	if (hold_reserve(h, len + 2) != 0)
		return -ENOMEM;
	h->data[h->len++] = truncated ? 't' : '-';
	memcpy(h->data + h->len, line, len);
	h->len += len;
	h->data[h->len++] = '\n';
	return 0;
}

bool
flood_hold_pop(struct flood_hold *h, const char **line, size_t *len, bool *truncated)
{
	const char *start, *lf;

	if (h->off >= h->len)
		return false;
	start = h->data + h->off;
	lf = memchr(start + 1, '\n', h->len - h->off - 1);
	*truncated = start[0] == 't';
	*line = start + 1;
	*len = (size_t)(lf - (start + 1));
	h->off = (size_t)(lf + 1 - h->data);
	if (h->off == h->len)
		h->off = h->len = 0; /* empty: the next push starts at the front */
	return true;
}

bool
flood_hold_any(const struct flood_hold *h)
{
	return h->off < h->len;
}

size_t
flood_hold_bytes(const struct flood_hold *h)
{
	return h->len - h->off;
}

void
flood_hold_free(struct flood_hold *h)
{
	free(h->data);
	h->data = NULL;
	h->off = h->len = h->cap = 0;
}
