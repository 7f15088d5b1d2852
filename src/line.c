/* Framing; see line.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "line.h"

size_t
line_utf8_cut(const char *s, size_t avail, size_t max)
{
	size_t cut = max;

	/* The byte at the cut starts the part we drop: back up while it is
	 * a continuation byte (10xxxxxx), so that no character is split.  At
	 * most three steps in valid UTF-8; invalid input never backs up below
	 * 0. */
	while (cut > 0 && cut < avail && ((unsigned char)s[cut] & 0xC0) == 0x80)
		cut--;
	return cut;
}

static void
deliver(const char *line, size_t len, bool truncated, line_fn fn, void *ctx)
{
	if (!truncated && len > 0 && line[len - 1] == '\r')
		len--;
	fn(ctx, line, len, truncated);
}

static int
carry_append(struct line_buf *lb, const char *data, size_t n)
{
	if (lb->len + n > lb->cap) {
		size_t cap = lb->cap ? lb->cap : 256;
		char *p;

		while (cap < lb->len + n)
			cap *= 2;
		if ((p = realloc(lb->data, cap)) == NULL)
			return -ENOMEM;
		lb->data = p;
		lb->cap = cap;
	}
	memcpy(lb->data + lb->len, data, n);
	lb->len += n;
	return 0;
}

/*
 * The carry plus the new segment reached max_line without an LF: deliver
 * the first max_line bytes (cut at a character boundary), drop the rest of
 * the line.  seg is the part of the new data that belongs to this line.
 */
/*
 * The carry plus seg (the new data of this line, seglen > max_line - carry)
 * reached max_line without an LF: deliver the first max_line bytes, cut at
 * a character boundary, and drop the rest of the line.
 */
static void
cut_long_line(struct line_buf *lb, size_t max_line, const char *seg, size_t seglen, line_fn fn,
              void *ctx)
{
	/* One byte more than fits, so the cut can see what follows it. */
	size_t take = max_line - lb->len + 1;

	if (lb->len == 0) {
		deliver(seg, line_utf8_cut(seg, seglen, max_line), true, fn, ctx);
	} else if (carry_append(lb, seg, take) == 0) {
		deliver(lb->data, line_utf8_cut(lb->data, lb->len, max_line), true, fn, ctx);
	} else {
		/* Out of memory: deliver what the carry holds. */
		deliver(lb->data, lb->len, true, fn, ctx);
	}
	lb->len = 0;
	lb->discarding = true;
}

int
line_feed(struct line_buf *lb, size_t max_line, const char *data, size_t n, line_fn fn, void *ctx)
{
	const char *end = data + n;
	int rc = 0;

	while (data < end) {
		const char *lf = memchr(data, '\n', (size_t)(end - data));
		size_t seg = (size_t)((lf ? lf : end) - data);

		if (lb->discarding) {
			if (lf == NULL)
				return 0;
			lb->discarding = false;
			data = lf + 1;
			continue;
		}
		/* Too long?  A CR just before the LF is not part of the line. */
		if (lb->len + seg > max_line && !(lf != NULL && seg > 0 && data[seg - 1] == '\r' &&
		                                  lb->len + seg - 1 <= max_line)) {
			cut_long_line(lb, max_line, data, seg, fn, ctx);
			continue; /* discarding: skips to the LF, if any */
		}
		if (lf == NULL) {
			if ((rc = carry_append(lb, data, seg)) != 0)
				lb->len = 0;
			return rc;
		}
		if (lb->len == 0) {
			deliver(data, seg, false, fn, ctx);
		} else if (carry_append(lb, data, seg) == 0) {
			deliver(lb->data, lb->len, false, fn, ctx);
			lb->len = 0;
		} else {
			lb->len = 0;
			rc = -ENOMEM;
		}
		data = lf + 1;
	}
	return rc;
}

void
line_finish(struct line_buf *lb, line_fn fn, void *ctx)
{
	if (lb->len > 0 && !lb->discarding)
		deliver(lb->data, lb->len, false, fn, ctx);
	lb->len = 0;
	lb->discarding = false;
}

void
line_buf_free(struct line_buf *lb)
{
	free(lb->data);
	lb->data = NULL;
	lb->len = lb->cap = 0;
	lb->discarding = false;
}
