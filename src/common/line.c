/* Framing; see line.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdint.h>
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
 * The carry plus seg (the new data of this line, seglen > max_line - carry)
 * passed max_line: deliver the first max_line bytes, cut at a character
 * boundary, and drop the rest of the line.
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

/* The first CR or LF in [p, end), or NULL.  memchr is fast; the search for
 * CR stops where the LF is. */
static const char *
find_eol(const char *p, const char *end)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	const char *cr = memchr(p, '\r', (size_t)((lf ? lf : end) - p));

	return cr ? cr : lf;
}

int
line_feed(struct line_buf *lb, size_t max_line, const char *data, size_t n, line_fn fn, void *ctx)
{
	const char *end = data + n;
	int rc = 0;

	while (data < end) {
		const char *eol;
		size_t seg;

		/* CR LF and telnet's CR NUL are one line end, even when the
		 * CR came in the previous read. */
		if (lb->after_cr) {
			lb->after_cr = false;
			if (*data == '\n' || *data == '\0') {
				data++;
				continue;
			}
		}
		eol = find_eol(data, end);
		seg = (size_t)((eol ? eol : end) - data);
		if (lb->discarding) {
			if (eol == NULL)
				return 0;
			lb->discarding = false; /* the long line ends here */
		} else if (lb->len + seg > max_line) {
			cut_long_line(lb, max_line, data, seg, fn, ctx);
			if (eol == NULL)
				return 0; /* the rest of the line comes later */
			lb->discarding = false;
		} else if (eol == NULL) {
			if ((rc = carry_append(lb, data, seg)) != 0)
				lb->len = 0;
			return rc;
		} else if (lb->len == 0) {
			deliver(data, seg, false, fn, ctx);
		} else if (carry_append(lb, data, seg) == 0) {
			deliver(lb->data, lb->len, false, fn, ctx);
			lb->len = 0;
		} else {
			lb->len = 0;
			rc = -ENOMEM;
		}
		lb->after_cr = *eol == '\r';
		data = eol + 1;
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
	lb->after_cr = false;
}

void
line_buf_free(struct line_buf *lb)
{
	free(lb->data);
	lb->data = NULL;
	lb->len = lb->cap = 0;
	lb->discarding = false;
	lb->after_cr = false;
}

/* --- sanitising ------------------------------------------------------------- */

/*
 * Decode one character of s (n > 0 bytes).  Returns the bytes used; *cp is
 * the code point, or -1 for an ill-formed sequence, which then covers its
 * maximal subpart (the bytes that began a well-formed sequence, at least
 * one), as Unicode's recommended practice for U+FFFD substitution.
 */
static size_t
utf8_decode(const unsigned char *s, size_t n, int32_t *cp)
{
	unsigned char b = s[0], lo = 0x80, hi = 0xBF;
	size_t need, i;
	int32_t c;

	if (b < 0x80) {
		*cp = b;
		return 1;
	}
	if (b >= 0xC2 && b <= 0xDF) {
		need = 1;
		c = b & 0x1F;
	} else if (b >= 0xE0 && b <= 0xEF) {
		need = 2;
		c = b & 0x0F;
		if (b == 0xE0)
			lo = 0xA0; /* no overlongs */
		else if (b == 0xED)
			hi = 0x9F; /* no surrogates */
	} else if (b >= 0xF0 && b <= 0xF4) {
		need = 3;
		c = b & 0x07;
		if (b == 0xF0)
			lo = 0x90; /* no overlongs */
		else if (b == 0xF4)
			hi = 0x8F; /* nothing past U+10FFFF */
	} else {
		*cp = -1;
		return 1;
	}
	for (i = 1; i <= need; i++) {
		unsigned char x;

		if (i >= n) {
			*cp = -1;
			return i;
		}
		x = s[i];
		if (i == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF)) {
			*cp = -1;
			return i;
		}
		c = (c << 6) | (x & 0x3F);
	}
	*cp = c;
	return need + 1;
}

static size_t
utf8_encode(int32_t cp, unsigned char out[4])
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xC0 | cp >> 6);
		out[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xE0 | cp >> 12);
		out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (unsigned char)(0xF0 | cp >> 18);
	out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Where an escape sequence being removed has got to (ECMA-48). */
enum esc_state {
	ESC_NONE,   /* ordinary text */
	ESC_ESC,    /* after ESC */
	ESC_INTER,  /* ESC, intermediates (0x20-0x2F): a final byte ends it */
	ESC_CSI,    /* CSI: parameters and intermediates, then a final byte */
	ESC_STR,    /* OSC, DCS, SOS, PM, APC: a string up to BEL or ST */
	ESC_STR_ESC /* ESC inside a string: '\' makes ST */
};

/*
 * Code points that could make a line pass for another on a terminal:
 * bidi controls reorder what is shown (a sender field pushed to the end),
 * line and paragraph separators start a fresh row on some, and zero-width
 * spaces hide.  U+200D (the joiner emoji sequences need) is not one.
 */
static bool
forges(int32_t cp)
{
	return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E ||
	       cp == 0x200F || cp == 0x061C || cp == 0x2028 || cp == 0x2029 || cp == 0x200B ||
	       cp == 0x2060 || cp == 0xFEFF;
}

/* Unicode's other spaces, shown as a plain space. */
static bool
other_space(int32_t cp)
{
	return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F ||
	       cp == 0x205F || cp == 0x3000;
}

size_t
line_sanitize(const char *in, size_t len, char *out, size_t cap, bool *cut)
{
	const unsigned char *s = (const unsigned char *)in;
	enum esc_state st = ESC_NONE;
	size_t i = 0, o = 0;
	unsigned blank_cols = 0; /* columns of the run of blanks being written */

	*cut = false;
	while (i < len) {
		unsigned char enc[4];
		int32_t cp;
		size_t used = utf8_decode(s + i, len - i, &cp), n;

		switch (st) {
		case ESC_ESC:
			if (cp == '[') {
				st = ESC_CSI;
			} else if (cp == ']' || cp == 'P' || cp == 'X' || cp == '^' || cp == '_') {
				st = ESC_STR;
			} else if (cp >= 0x20 && cp <= 0x2F) {
				st = ESC_INTER;
			} else if (cp >= 0x30 && cp <= 0x7E) {
				st = ESC_NONE; /* a two-byte sequence, such as ESC c */
			} else {
				st = ESC_NONE;
				continue; /* not a sequence: look at cp afresh */
			}
			i += used;
			continue;
		case ESC_INTER:
		case ESC_CSI:
			if (cp >= 0x20 && cp <= (st == ESC_CSI ? 0x3F : 0x2F)) {
				i += used;
				continue;
			}
			st = ESC_NONE;
			if (cp >= 0x30 && cp <= 0x7E) {
				i += used; /* the final byte */
				continue;
			}
			continue; /* broken off: look at cp afresh */
		case ESC_STR:
			if (cp == 0x07 || cp == 0x9C)
				st = ESC_NONE; /* BEL or ST ends the string */
			else if (cp == 0x1B)
				st = ESC_STR_ESC;
			i += used;
			continue;
		case ESC_STR_ESC:
			if (cp == '\\') {
				st = ESC_NONE; /* ESC \ is ST */
				i += used;
			} else {
				st = ESC_ESC; /* a new sequence starts */
			}
			continue;
		case ESC_NONE: break;
		}
		i += used;
		if (cp == 0x1B) {
			st = ESC_ESC;
			continue;
		}
		if (cp == 0x9B) { /* the 8-bit forms of CSI, and of the strings */
			st = ESC_CSI;
			continue;
		}
		if (cp == 0x90 || cp == 0x98 || cp == 0x9D || cp == 0x9E || cp == 0x9F) {
			st = ESC_STR;
			continue;
		}
		if (cp == '\t') {
			/* kept */
		} else if (cp < 0) {
			cp = 0xFFFD;
		} else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
			continue; /* C0 (NUL included), DEL, C1 */
		} else if (forges(cp)) {
			continue;
		} else if (other_space(cp)) {
			cp = ' ';
		}
		if (cp == ' ' || cp == '\t') {
			unsigned w = cp == '\t' ? LINE_BLANK_RUN : 1;

			/* Blank padding long enough to wrap a fake line onto a
			 * fresh row is cut to LINE_BLANK_RUN columns. */
			if (blank_cols + w > LINE_BLANK_RUN)
				continue;
			blank_cols += w;
		} else {
			blank_cols = 0;
		}
		n = utf8_encode(cp, enc);
		if (o + n > cap) {
			*cut = true;
			break;
		}
		memcpy(out + o, enc, n);
		o += n;
	}
	return o;
}
