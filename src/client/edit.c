/* The line editor; see edit.h. */
#define _XOPEN_SOURCE 700 /* wcwidth */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "edit.h"

#define ESC 0x1b
#define CTRL(c) ((c)&0x1f)

void
edit_init(struct edit *e)
{
	memset(e, 0, sizeof(*e));
}

void
edit_free(struct edit *e)
{
	size_t i;

	for (i = 0; i < e->nhist; i++)
		free(e->hist[i]);
	free(e->hist);
	free(e->buf);
	free(e->draft);
	edit_init(e);
}

const char *
edit_line(const struct edit *e, size_t *len)
{
	*len = e->len;
	return e->buf ? e->buf : "";
}

/* --- UTF-8 ------------------------------------------------------------------------ */

static bool
is_cont(unsigned char b)
{
	return (b & 0xc0) == 0x80;
}

/* Bytes of the character starting at s[i]. */
static size_t
next_char(const char *s, size_t len, size_t i)
{
	size_t j = i + 1;

	while (j < len && is_cont((unsigned char)s[j]))
		j++;
	return j - i;
}

/* Offset of the character before s[i]. */
static size_t
prev_char(const char *s, size_t i)
{
	while (i > 0 && is_cont((unsigned char)s[--i]))
		;
	return i;
}

/* The code point of a well-formed character of n bytes. */
static unsigned
decode(const unsigned char *s, size_t n)
{
	unsigned cp = n == 1 ? s[0] : s[0] & (0x7f >> n);

	for (size_t i = 1; i < n; i++)
		cp = cp << 6 | (s[i] & 0x3f);
	return cp;
}

/* Whether the n bytes at s form one well-formed UTF-8 character (no
 * overlong form, surrogate, or value past U+10FFFF). */
static bool
well_formed(const unsigned char *s, size_t n)
{
	unsigned cp = decode(s, n);

	if (n == 2)
		return cp >= 0x80;
	if (n == 3)
		return cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
	return n == 4 && cp >= 0x10000 && cp <= 0x10ffff;
}

int
edit_width(unsigned cp)
{
	int w = wcwidth((wchar_t)cp);

	/* Unknown to the locale (the C locale knows only ASCII): one column
	 * is the best guess, and errs on the side of showing too little. */
	return w < 0 ? 1 : w > 2 ? 2 : w;
}

/* Columns of s[from, to). */
static size_t
span_width(const char *s, size_t from, size_t to)
{
	size_t w = 0, n;

	for (size_t i = from; i < to; i += n) {
		n = next_char(s, to, i);
		w += (size_t)edit_width(decode((const unsigned char *)s + i, n));
	}
	return w;
}

/* --- editing -------------------------------------------------------------------- */

/* Make the line exactly s (n bytes), the cursor at its end. */
static bool
set_line(struct edit *e, const char *s, size_t n)
{
	if (n + 1 > e->cap) {
		char *p = realloc(e->buf, n + 1);

		if (p == NULL)
			return false;
		e->buf = p;
		e->cap = n + 1;
	}
	memcpy(e->buf, s, n);
	e->buf[n] = '\0';
	e->len = e->cur = n;
	return true;
}

static enum edit_action
insert(struct edit *e, const unsigned char *s, size_t n)
{
	if (e->len + n > EDIT_MAX_LINE)
		return EDIT_NONE;
	if (e->len + n + 1 > e->cap) {
		size_t cap = e->cap ? e->cap : 128;
		char *p;

		while (cap < e->len + n + 1)
			cap *= 2;
		if ((p = realloc(e->buf, cap)) == NULL)
			return EDIT_NONE;
		e->buf = p;
		e->cap = cap;
	}
	memmove(e->buf + e->cur + n, e->buf + e->cur, e->len - e->cur + 1);
	memcpy(e->buf + e->cur, s, n);
	e->len += n;
	e->cur += n;
	return EDIT_REDRAW;
}

/* Remove [from, to) of the line; the cursor goes to from. */
static enum edit_action
erase(struct edit *e, size_t from, size_t to)
{
	if (from == to)
		return EDIT_NONE;
	memmove(e->buf + from, e->buf + to, e->len - to + 1);
	e->len -= to - from;
	e->cur = from;
	return EDIT_REDRAW;
}

static enum edit_action
move_to(struct edit *e, size_t pos)
{
	if (pos == e->cur)
		return EDIT_NONE;
	e->cur = pos;
	return EDIT_REDRAW;
}

/* Ctrl-W: the blanks before the cursor, then the word before them. */
static enum edit_action
erase_word(struct edit *e)
{
	size_t i = e->cur;

	while (i > 0 && (e->buf[i - 1] == ' ' || e->buf[i - 1] == '\t'))
		i--;
	while (i > 0 && e->buf[i - 1] != ' ' && e->buf[i - 1] != '\t')
		i--;
	return erase(e, i, e->cur);
}

static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Alt-B, Ctrl-Left: to the start of this word or the one before. */
static enum edit_action
word_left(struct edit *e)
{
	size_t i = e->cur;

	while (i > 0 && is_blank(e->buf[i - 1]))
		i--;
	while (i > 0 && !is_blank(e->buf[i - 1]))
		i--;
	return i != e->cur ? move_to(e, i) : EDIT_NONE;
}

/* Alt-F, Ctrl-Right: to the end of this word or the next. */
static enum edit_action
word_right(struct edit *e)
{
	size_t i = e->cur;

	while (i < e->len && is_blank(e->buf[i]))
		i++;
	while (i < e->len && !is_blank(e->buf[i]))
		i++;
	return i != e->cur ? move_to(e, i) : EDIT_NONE;
}

size_t
edit_word_start(const struct edit *e)
{
	size_t i = e->cur;

	while (i > 0 && !is_blank(e->buf[i - 1]))
		i--;
	return i;
}

enum edit_action
edit_replace(struct edit *e, size_t start, const char *s, size_t n)
{
	if (e->buf == NULL || start > e->cur)
		return EDIT_NONE;
	erase(e, start, e->cur);
	insert(e, (const unsigned char *)s, n);
	return EDIT_REDRAW;
}

/* Up (dir -1) or down (+1) through the history.  The line being typed is
 * kept aside while browsing, and comes back below the newest entry. */
static enum edit_action
browse(struct edit *e, int dir)
{
	const char *s;

	if (dir < 0 ? e->hpos == 0 : e->hpos >= e->nhist)
		return EDIT_NONE;
	if (e->hpos == e->nhist) {
		free(e->draft);
		if ((e->draft = strdup(e->buf ? e->buf : "")) == NULL)
			return EDIT_NONE;
	}
	e->hpos = dir < 0 ? e->hpos - 1 : e->hpos + 1;
	s = e->hpos < e->nhist ? e->hist[e->hpos] : e->draft;
	set_line(e, s, strlen(s));
	return EDIT_REDRAW;
}

static void
remember(struct edit *e, const char *line)
{
	char *copy, **h;

	if (e->nhist > 0 && strcmp(e->hist[e->nhist - 1], line) == 0)
		return; /* the same again: once is enough */
	if ((copy = strdup(line)) == NULL)
		return;
	if (e->nhist == EDIT_HISTORY) {
		free(e->hist[0]);
		memmove(e->hist, e->hist + 1, (e->nhist - 1) * sizeof(*e->hist));
		e->nhist--;
	} else if ((h = realloc(e->hist, (e->nhist + 1) * sizeof(*h))) != NULL) {
		e->hist = h;
	} else {
		free(copy);
		return;
	}
	e->hist[e->nhist++] = copy;
}

char *
edit_take(struct edit *e, size_t *len)
{
	char *line = strdup(e->buf ? e->buf : "");

	if (line == NULL)
		return NULL;
	*len = e->len;
	remember(e, line);
	e->hpos = e->nhist;
	free(e->draft);
	e->draft = NULL;
	set_line(e, "", 0);
	return line;
}

/* --- keys --------------------------------------------------------------------------- */

/* The final byte of CSI (with its first parameter, and the modifier of
 * "CSI 1;5C": 5 Ctrl, 3 Alt) or SS3 sequence. */
static enum edit_action
escape_key(struct edit *e, unsigned char final, int param, int mod)
{
	if ((mod == 5 || mod == 3) && (final == 'C' || final == 'D'))
		return final == 'C' ? word_right(e) : word_left(e);
	switch (final) {
	case 'c': return word_right(e); /* rxvt's Ctrl-Right, SS3 c */
	case 'd': return word_left(e);
	case 'A': return browse(e, -1);
	case 'B': return browse(e, +1);
	case 'C':
		return e->cur < e->len ? move_to(e, e->cur + next_char(e->buf, e->len, e->cur))
		                       : EDIT_NONE;
	case 'D': return e->cur > 0 ? move_to(e, prev_char(e->buf, e->cur)) : EDIT_NONE;
	case 'H': return move_to(e, 0);
	case 'F': return move_to(e, e->len);
	case '~':
		if (param == 1 || param == 7)
			return move_to(e, 0);
		if (param == 4 || param == 8)
			return move_to(e, e->len);
		if (param == 3 && e->cur < e->len)
			return erase(e, e->cur, e->cur + next_char(e->buf, e->len, e->cur));
		return EDIT_NONE;
	default: return EDIT_NONE; /* swallowed */
	}
}

/* A byte inside an escape sequence; e->seq[0] is ESC. */
static enum edit_action
escape_byte(struct edit *e, unsigned char b)
{
	int param = 0;

	if (e->nseq == 1) {
		if (b == '[' || b == 'O') {
			e->seq[e->nseq++] = b;
			return EDIT_NONE;
		}
		e->nseq = 0; /* ESC and one key: Alt-key */
		switch (b) {
		case 'b': return word_left(e);
		case 'f': return word_right(e);
		case 0x7f:
		case CTRL('H'): return erase_word(e); /* Alt-Backspace */
		default: return EDIT_NONE;        /* others swallowed */
		}
	}
	if (e->seq[1] == 'O') {
		e->nseq = 0;
		return escape_key(e, b, 0, 0);
	}
	/* CSI: parameters and intermediates, then a final byte. */
	if (b >= 0x20 && b <= 0x3f && e->nseq < sizeof(e->seq)) {
		e->seq[e->nseq++] = b;
		return EDIT_NONE;
	}
	if (b >= 0x40 && b <= 0x7e) {
		size_t i = 2;
		int mod = 0;

		for (; i < e->nseq && e->seq[i] >= '0' && e->seq[i] <= '9'; i++)
			param = param * 10 + (e->seq[i] - '0');
		if (i < e->nseq && e->seq[i] == ';')
			for (i++; i < e->nseq && e->seq[i] >= '0' && e->seq[i] <= '9'; i++)
				mod = mod * 10 + (e->seq[i] - '0');
		e->nseq = 0;
		return escape_key(e, b, param, mod);
	}
	/* Not a sequence after all (or far too long): drop what was
	 * gathered; a control byte still counts as a key. */
	e->nseq = 0;
	return b < 0x20 ? edit_key(e, b) : EDIT_NONE;
}

static enum edit_action
control_key(struct edit *e, unsigned char b)
{
	switch (b) {
	case CTRL('A'): return move_to(e, 0);
	case CTRL('B'): return escape_key(e, 'D', 0, 0);
	case CTRL('C'): return EDIT_INTERRUPT;
	case CTRL('D'):
		if (e->len == 0)
			return EDIT_EOF;
		return escape_key(e, '~', 3, 0);
	case CTRL('E'): return move_to(e, e->len);
	case CTRL('F'): return escape_key(e, 'C', 0, 0);
	case CTRL('H'):
	case 0x7f: return e->cur > 0 ? erase(e, prev_char(e->buf, e->cur), e->cur) : EDIT_NONE;
	case '\t': return EDIT_COMPLETE; /* the caller knows the names */
	case CTRL('Z'): return EDIT_SUSPEND;
	case '\r':
	case '\n': return e->len > 0 ? EDIT_ENTER : EDIT_NONE;
	case CTRL('K'): return erase(e, e->cur, e->len);
	case CTRL('L'): return EDIT_REFRESH;
	case CTRL('N'): return browse(e, +1);
	case CTRL('P'): return browse(e, -1);
	case CTRL('U'): return erase(e, 0, e->cur);
	case CTRL('W'): return erase_word(e);
	case ESC:
		e->seq[0] = ESC;
		e->nseq = 1;
		e->need = 0;
		return EDIT_NONE;
	default: return EDIT_NONE;
	}
}

enum edit_action
edit_key(struct edit *e, unsigned char b)
{
	if (e->buf == NULL && !set_line(e, "", 0))
		return EDIT_NONE;
	if (e->nseq > 0 && e->need == 0)
		return escape_byte(e, b);
	if (e->nseq > 0) {
		/* Inside a UTF-8 character. */
		if (!is_cont(b)) {
			e->nseq = 0; /* cut short: dropped; b starts afresh */
			return edit_key(e, b);
		}
		e->seq[e->nseq++] = b;
		if (e->nseq < e->need)
			return EDIT_NONE;
		e->nseq = 0;
		if (!well_formed(e->seq, e->need))
			return EDIT_NONE;
		/* C1 controls are not text either. */
		if (decode(e->seq, e->need) < 0xa0)
			return EDIT_NONE;
		return insert(e, e->seq, e->need);
	}
	if (b < 0x20 || b == 0x7f)
		return control_key(e, b);
	if (b < 0x80)
		return insert(e, &b, 1);
	if (b >= 0xc2 && b <= 0xf4) {
		e->seq[0] = b;
		e->nseq = 1;
		e->need = b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
	}
	return EDIT_NONE; /* a stray continuation or impossible byte: dropped */
}

/* --- drawing ------------------------------------------------------------------------ */

size_t
edit_render(const struct edit *e, const char *prompt, unsigned cols, char *out, size_t cap)
{
	const char *s = e->buf ? e->buf : "";
	size_t plen = strlen(prompt), pw = span_width(prompt, 0, plen), avail, start, end, w, n;
	size_t len = 0, col;

	if (cap == 0)
		return 0;
	/* Leave the last column free: writing there makes some terminals
	 * wrap at once, others only at the next character. */
	avail = cols > pw + 2 ? cols - pw - 1 : 1;
	/* The first character shown: walk back from the cursor while the
	 * row has room, so that the cost is what is shown, not the length
	 * of the line (a paste of thousands of characters is drawn in
	 * microseconds, not seconds). */
	for (start = e->cur, w = 0; start > 0; start = n) {
		size_t cw;

		n = prev_char(s, start);
		cw = (size_t)edit_width(decode((const unsigned char *)s + n, start - n));
		if (w + cw > avail)
			break;
		w += cw;
	}
	col = pw + w;
	for (end = start, w = 0; end < e->len; end += n) {
		size_t cw;

		n = next_char(s, e->len, end);
		cw = (size_t)edit_width(decode((const unsigned char *)s + end, n));
		if (w + cw > avail || end + n - start + plen + 32 > cap)
			break; /* the row is full, or out is */
		w += cw;
	}
	len = (size_t)snprintf(out, cap, "\r%s%.*s\x1b[K\r", prompt, (int)(end - start), s + start);
	if (len < cap && col > 0)
		len += (size_t)snprintf(out + len, cap - len, "\x1b[%zuC", col);
	return len < cap ? len : cap - 1;
}
