/* Messages; see msg.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broadcast.h"
#include "conn.h"
#include "line.h"
#include "msg.h"

/* The longest notice text. */
#define NOTICE_MAX 512

struct msg *
msg_new(size_t len)
{
	struct msg *m;

	if (len > SIZE_MAX - sizeof(*m) || (m = malloc(sizeof(*m) + len)) == NULL)
		return NULL;
	atomic_init(&m->refs, 1);
	m->len = len;
	return m;
}

void
msg_ref(struct msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void
msg_unref(struct msg *m)
{
	if (m != NULL && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

/* "YYYY-MM-DD HH:MM:SS" of now, local time, cached per thread for the
 * second: localtime_r is not free, and a busy second formats thousands. */
static const char *
stamp_now(void)
{
	static _Thread_local time_t last = (time_t)-1;
	static _Thread_local char buf[32];
	time_t t = time(NULL);

	if (t != last) {
		struct tm tm;

		localtime_r(&t, &tm);
		if (strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm) == 0)
			buf[0] = '\0';
		last = t;
	}
	return buf;
}

struct msg *
msg_chat(const char *sender, const char *raw, size_t len, size_t max_line, bool private, bool *cut)
{
	static const char mark[] = " (private)";
	const char *stamp = stamp_now();
	size_t slen = strlen(sender), mlen = private ? sizeof(mark) - 1 : 0;
	size_t tlen, stlen = strlen(stamp), head = slen + mlen + 3 + stlen + 3;
	/* Sanitising can only grow a line by U+FFFD for single bad bytes. */
	size_t room = len <= max_line / 3 ? 3 * len : max_line;
	struct msg *m = msg_new(head + room + 2);
	char *p;

	*cut = false;
	if (m == NULL)
		return NULL;
	tlen = line_sanitize(raw, len, m->data + head, room, cut);
	if (tlen == 0) {
		msg_unref(m); /* nothing printable: not relayed */
		return NULL;
	}
	p = m->data;
	memcpy(p, sender, slen);
	p += slen;
	memcpy(p, mark, mlen);
	p += mlen;
	memcpy(p, " | ", 3);
	p += 3;
	memcpy(p, stamp, stlen);
	p += stlen;
	memcpy(p, " | ", 3);
	memcpy(m->data + head + tlen, "\r\n", 2);
	m->len = head + tlen + 2;
	return m;
}

size_t
msg_chat_max(size_t max_line)
{
	/* nick@addr, the private mark, " | " twice, the stamp, CR LF */
	return (CONN_NICK_MAX + 1 + NET_ADDRSTRLEN - 1) + 10 + 6 + 19 + 2 + max_line;
}

struct msg *
msg_notice(const char *fmt, ...)
{
	char text[NOTICE_MAX];
	struct msg *m;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	if ((size_t)n >= sizeof(text))
		n = sizeof(text) - 1;
	if ((m = msg_new(2 + (size_t)n + 2)) == NULL)
		return NULL;
	memcpy(m->data, "* ", 2);
	memcpy(m->data + 2, text, (size_t)n);
	memcpy(m->data + 2 + n, "\r\n", 2);
	return m;
}

void
msg_tell(struct conn *c, struct msg *m)
{
	if (m == NULL)
		return;
	conn_send(c, &m, 1);
	msg_unref(m);
}

void
msg_broadcast_local(struct broadcast *b, const struct conn *from, struct msg *m)
{
	if (m == NULL)
		return;
	broadcast_send_local(b, from, &m, 1);
	msg_unref(m);
}

void
msg_broadcast_room(struct broadcast *b, struct room *room, struct msg *m)
{
	if (m == NULL)
		return;
	if (room != NULL)
		broadcast_send_room(b, room, NULL, &m, 1);
	msg_unref(m);
}

void
msg_broadcast(struct broadcast *b, const struct conn *from, struct msg *m)
{
	if (m == NULL)
		return;
	broadcast_send(b, from, &m, 1);
	msg_unref(m);
}
