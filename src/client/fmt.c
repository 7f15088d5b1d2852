/* The terminal's view of the server's lines; see fmt.h. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fmt.h"

#define SGR_RESET "\x1b[0m"
#define SGR_DIM "\x1b[2m"
#define SGR_BOLD "\x1b[1m"
#define SGR_PRIVATE "\x1b[1;35m" /* bold magenta */

/* Nicks in one of these, always the same for one nick: a room reads
 * better when each speaker has a colour. */
static const char *const nick_colors[] = { "\x1b[31m", "\x1b[32m", "\x1b[33m",
	                                   "\x1b[34m", "\x1b[35m", "\x1b[36m" };

void
fmt_init(struct fmt *f, const char *no_color, const char *term)
{
	bool dumb = term == NULL || term[0] == '\0' || strcmp(term, "dumb") == 0;

	f->attrs = !dumb;
	f->color = !dumb && (no_color == NULL || no_color[0] == '\0');
	f->me[0] = '\0';
}

/* The sender field [s, e) into out->who: the nick of "nick@addr", else
 * the whole (an address). */
static void
take_sender(const char *s, const char *e, struct fmt_line *out)
{
	const char *at = memchr(s, '@', (size_t)(e - s));
	size_t n = at != NULL ? (size_t)(at - s) : (size_t)(e - s);

	if (n >= sizeof(out->who))
		n = sizeof(out->who) - 1;
	memcpy(out->who, s, n);
	out->who[n] = '\0';
}

/* The first " | " in [s, end), or NULL: line need not end in a NUL. */
static const char *
find_bar(const char *s, const char *end)
{
	for (; end - s >= 3; s++)
		if (s[0] == ' ' && s[1] == '|' && s[2] == ' ')
			return s;
	return NULL;
}

void
fmt_parse(const char *line, size_t n, struct fmt_line *out)
{
	const char *end = line + n, *bar1, *bar2, *sp;

	out->kind = FMT_OTHER;
	out->who[0] = '\0';
	out->text = line;
	out->tlen = n;
	if (n >= 2 && line[0] == '*' && line[1] == ' ') {
		out->kind = FMT_NOTICE;
		out->text = line + 2;
		out->tlen = n - 2;
		return;
	}
	/* "<sender> | YYYY-MM-DD HH:MM:SS | text": the sender holds no
	 * blank but in " (private)". */
	if ((bar1 = find_bar(line, end)) == NULL)
		return;
	if ((bar2 = find_bar(bar1 + 3, end)) == NULL || bar2 - bar1 != 22)
		return;
	sp = memchr(line, ' ', (size_t)(bar1 - line));
	if (sp != NULL && (bar1 - sp != 10 || memcmp(sp, " (private)", 10) != 0))
		return;
	take_sender(line, sp != NULL ? sp : bar1, out);
	out->text = bar2 + 3;
	out->tlen = (size_t)(end - out->text);
	if (sp != NULL)
		out->kind = FMT_PRIVATE;
	else if (out->tlen >= 2 && out->text[0] == '*' && out->text[1] == ' ')
		out->kind = FMT_ACTION;
	else
		out->kind = FMT_CHAT;
}

/* Appending to a bounded buffer: what does not fit is dropped. */
struct out {
	char *p;
	size_t len, cap;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->len + 1 >= o->cap)
		return;
	if (n > o->cap - 1 - o->len)
		n = o->cap - 1 - o->len;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static bool
is_nick_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* text, with every mention of f->me (a whole word, any case) in bold. */
static void
put_text(const struct fmt *f, struct out *o, const char *text, size_t n, const char *after)
{
	size_t ml = strlen(f->me), i = 0, from = 0;

	if (ml > 0 && f->attrs)
		for (; i + ml <= n; i++) {
			if (strncasecmp(text + i, f->me, ml) != 0 ||
			    (i > 0 && is_nick_char(text[i - 1])) ||
			    (i + ml < n && is_nick_char(text[i + ml])))
				continue;
			put(o, text + from, i - from);
			puts_(o, SGR_BOLD);
			put(o, text + i, ml);
			puts_(o, SGR_RESET);
			puts_(o, after); /* what was on before the mention */
			from = i + ml;
			i += ml - 1;
		}
	put(o, text + from, n - from);
}

static void
put_nick(const struct fmt *f, struct out *o, const char *who)
{
	unsigned h = 0;

	for (const char *p = who; *p != '\0'; p++)
		h = h * 31 + (unsigned char)(*p | 0x20);
	puts_(o, "<");
	if (f->color)
		puts_(o, nick_colors[h % (sizeof(nick_colors) / sizeof(nick_colors[0]))]);
	puts_(o, who);
	if (f->color)
		puts_(o, SGR_RESET);
	puts_(o, "> ");
}

static void
put_time(const struct fmt *f, struct out *o, const char *hhmm)
{
	if (f->attrs)
		puts_(o, SGR_DIM);
	puts_(o, "[");
	puts_(o, hhmm);
	puts_(o, "]");
	if (f->attrs)
		puts_(o, SGR_RESET);
	puts_(o, " ");
}

size_t
fmt_render(const struct fmt *f, const char *hhmm, const char *line, size_t n, char *buf,
           size_t cap)
{
	struct out o = { buf, 0, cap };
	struct fmt_line l;

	if (cap > 0)
		buf[0] = '\0';
	fmt_parse(line, n, &l);
	switch (l.kind) {
	case FMT_OTHER: put(&o, line, n); return o.len;
	case FMT_NOTICE:
		put_time(f, &o, hhmm);
		if (f->attrs)
			puts_(&o, SGR_DIM);
		puts_(&o, "* ");
		put_text(f, &o, l.text, l.tlen, f->attrs ? SGR_DIM : "");
		if (f->attrs)
			puts_(&o, SGR_RESET);
		return o.len;
	case FMT_PRIVATE:
		put_time(f, &o, hhmm);
		puts_(&o, f->color ? SGR_PRIVATE "[private]" SGR_RESET " " : "[private] ");
		put_nick(f, &o, l.who);
		put_text(f, &o, l.text, l.tlen, "");
		return o.len;
	case FMT_ACTION:
		put_time(f, &o, hhmm);
		put_text(f, &o, l.text, l.tlen, "");
		return o.len;
	case FMT_CHAT:
	default:
		put_time(f, &o, hhmm);
		put_nick(f, &o, l.who);
		put_text(f, &o, l.text, l.tlen, "");
		return o.len;
	}
}

size_t
fmt_own(const struct fmt *f, const char *hhmm, const char *text, size_t n, char *buf, size_t cap)
{
	struct out o = { buf, 0, cap };

	if (cap > 0)
		buf[0] = '\0';
	put_time(f, &o, hhmm);
	put_nick(f, &o, f->me[0] != '\0' ? f->me : "you");
	put(&o, text, n);
	return o.len;
}

size_t
fmt_command(const struct fmt *f, const char *hhmm, const char *text, size_t n, char *buf,
            size_t cap)
{
	struct out o = { buf, 0, cap };

	if (cap > 0)
		buf[0] = '\0';
	put_time(f, &o, hhmm);
	if (f->attrs)
		puts_(&o, SGR_DIM);
	put(&o, text, n);
	if (f->attrs)
		puts_(&o, SGR_RESET);
	return o.len;
}
