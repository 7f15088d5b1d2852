/*
 * chat-bench: a load generator and checker for chat-server, and with
 * --proto resp for Redis pub/sub (SUBSCRIBE and PUBLISH on one channel),
 * so that the same workload measures both.
 *
 * Fan-out mode: open N connections, wait until the server has every one of
 * them (a probe line must reach them all), then S of them send M lines each
 * of P bytes, at R lines per second per sender or as fast as the socket
 * takes them.  Every line says which run, sender and sequence number it is
 * and when it was sent; its filler is a function of those, so a receiver
 * checks each line whole.  Reports deliveries per second, latency p50, p99
 * and max, and lost, duplicated, reordered and corrupted deliveries, as a
 * table and as one JSON line.  Exits 1 on any of those.
 *
 * Idle mode (--connect-only N --hold SECS): open N connections that say
 * nothing, hold them, then check that one line still reaches every one.
 * With --pid, the server's resident memory per connection is reported.
 *
 * With --rooms K (chat only) client i goes to room i % K before anything
 * else: each sender's lines are then due to the other members of its room
 * only, and a line that reaches another room counts as "wrong room".
 *
 * With --movers N (and --rooms K > 1) N more clients, which send nothing,
 * each go through --moves rooms in turn (/join, and the next as soon as
 * the server says "you are now in") while the others chat: a /join storm.
 * A mover must never get a line twice, nor a line of a room it is not in
 * (between its /join and the server's answer, either room's lines may
 * come); the senders' lines must still reach every other member whole.
 * Reports the moves' latency (from /join to the answer).
 *
 * With --tls every connection speaks TLS (OpenSSL; the certificate is not
 * checked: this measures, it does not trust).  Handshake mode (--handshakes
 * SECS) keeps --clients TLS handshakes going for SECS seconds, each counted
 * when the server's session ticket arrives (the server has finished too),
 * and reports handshakes per second.
 *
 * One thread and one epoll set: the tool must not be what limits the
 * figures.  It reports its own CPU time; a figure is sound while that
 * stays clearly below one core (see docs/performance.md).
 */
#define _GNU_SOURCE /* epoll, accept4-style flags */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

enum proto { PROTO_CHAT, PROTO_RESP };

struct opts {
	const char *host, *port, *channel, *label;
	enum proto proto;
	size_t clients, senders, lines, payload;
	double rate;    /* lines per second per sender; 0: unthrottled */
	double timeout; /* seconds without progress before giving up */
	size_t connect_only;
	double hold;
	long pid; /* the server's, for its memory; 0: unknown */
	bool tls;
	double handshakes; /* seconds of handshake churn; 0: not that mode */
	size_t rooms;      /* clients spread over this many rooms; 1: one room */
	size_t movers;     /* more clients, going from room to room */
	size_t moves;      /* rooms each mover goes to */
};

/* One connection. */
struct client {
	int fd;
	void *ssl; /* SSL *, with --tls */
	size_t id;
	char *in; /* an incomplete line or frame left by the last read */
	size_t inlen;
	char *out; /* bytes generated and not yet written */
	size_t outlen, outoff, outcap;
	size_t sent; /* lines generated (a sender's sequence number) */
	bool want_out;
	bool ready; /* the probe reached it: the server has it */
	/* Movers only. */
	bool mover;
	long cur, pending;  /* the room it is in, the one it asked for: -1 none */
	size_t moves_done;
	int64_t move_sent;  /* when it sent its /join */
	uint32_t *last;     /* per sender: the highest seq it got + 1 */
};

/* Latency histogram: 32 buckets per power of two of nanoseconds, ~3%. */
#define HIST_SUB 32
#define HIST_N (64 * HIST_SUB)

struct stats {
	uint64_t deliveries, lost, dup, reordered, corrupt, foreign, wrong_room;
	uint64_t hist[HIST_N];
	uint64_t lat_max;
};

/* The movers': their moves and what reached them. */
struct moves {
	uint64_t done, deliveries;
	struct stats lat; /* /join to "you are now in" */
};

struct bench {
	struct opts o;
	int ep;
	uint32_t run; /* this run's id, so that lines of others are ignored */
	char tag[12]; /* "cbRUN " */
	struct client *c;
	size_t nc;
	uint64_t expected;  /* deliveries due in all */
	uint8_t *seen;      /* bit per (receiver, sender, seq) */
	uint32_t *highest;  /* per (receiver, sender): highest seq + 1 seen */
	uint32_t probe;     /* the probe's number */
	size_t ready;       /* clients the probe reached */
	size_t next_line;   /* throttled: the next line, in global order */
	size_t unthrottled; /* senders with lines left to generate */
	int64_t t0;         /* when sending began */
	int64_t t_last;     /* the last delivery */
	struct stats st;
	struct moves mv;
	char rbuf[1 << 18]; /* leftover + one read */
	void *ctx;          /* SSL_CTX *, with --tls */
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("chat-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* --- latency ------------------------------------------------------------ */

static size_t
hist_index(uint64_t v)
{
	int e;

	if (v < HIST_SUB)
		return (size_t)v;
	e = 63 - __builtin_clzll(v); /* >= 5 */
	return (size_t)(e - 4) * HIST_SUB + (size_t)((v >> (e - 5)) & (HIST_SUB - 1));
}

/* The lower bound of bucket i. */
static uint64_t
hist_value(size_t i)
{
	size_t e;

	if (i < HIST_SUB)
		return i;
	e = i / HIST_SUB + 4;
	return ((uint64_t)HIST_SUB + i % HIST_SUB) << (e - 5);
}

static void
hist_add(struct stats *st, uint64_t v)
{
	st->hist[hist_index(v)]++;
	if (v > st->lat_max)
		st->lat_max = v;
}

static uint64_t
hist_pct(const struct stats *st, double p)
{
	uint64_t total = 0, want, acc = 0;
	size_t i;

	for (i = 0; i < HIST_N; i++)
		total += st->hist[i];
	if (total == 0)
		return 0;
	want = (uint64_t)(p * (double)total);
	if (want >= total)
		want = total - 1;
	for (i = 0; i < HIST_N; i++) {
		acc += st->hist[i];
		if (acc > want)
			return hist_value(i);
	}
	return st->lat_max;
}

/* --- lines -------------------------------------------------------------- */

static char
fill_char(size_t sender, size_t seq, size_t i)
{
	return (char)('a' + (sender * 31 + seq * 17 + i) % 26);
}

/* The body of line seq of sender: "cbRUN SENDER SEQ NS filler", P bytes
 * (more if P is too small for the header).  Returns its length. */
static size_t
make_body(struct bench *b, char *buf, size_t cap, size_t sender, size_t seq, int64_t ns)
{
	int n = snprintf(buf, cap, "cb%08" PRIx32 " %zu %zu %" PRId64 " ", b->run, sender, seq, ns);
	size_t head = (size_t)n, len = b->o.payload > head ? b->o.payload : head + 1, i;

	for (i = head; i < len && i < cap; i++)
		buf[i] = fill_char(sender, seq, i);
	return i;
}

/* Append body to c's output in the wire format: a line, or a PUBLISH. */
static void
queue_body(struct bench *b, struct client *c, const char *body, size_t len)
{
	size_t need = len + 96;

	if (c->outlen + need > c->outcap) {
		if (c->outoff > 0) {
			memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
			c->outlen -= c->outoff;
			c->outoff = 0;
		}
		if (c->outlen + need > c->outcap) {
			c->outcap = (c->outlen + need) * 2;
			if ((c->out = realloc(c->out, c->outcap)) == NULL)
				die("out of memory");
		}
	}
	if (b->o.proto == PROTO_RESP)
		c->outlen += (size_t)sprintf(c->out + c->outlen,
		                             "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n",
		                             strlen(b->o.channel), b->o.channel, len);
	memcpy(c->out + c->outlen, body, len);
	c->outlen += len;
	memcpy(c->out + c->outlen, b->o.proto == PROTO_RESP ? "\r\n" : "\n",
	       b->o.proto == PROTO_RESP ? 2 : 1);
	c->outlen += b->o.proto == PROTO_RESP ? 2 : 1;
}

/* Append sender c's next line, sent at ns. */
static void
queue_line(struct bench *b, struct client *c, int64_t ns)
{
	char body[8192];
	size_t len = make_body(b, body, sizeof(body), c->id, c->sent, ns);

	queue_body(b, c, body, len);
	c->sent++;
}

/* Append probe number n (five digits) from c, naming c's room. */
static void
queue_probe(struct bench *b, struct client *c, uint32_t n)
{
	char body[64];
	int len = snprintf(body, sizeof(body), "cb%08" PRIx32 " probe %05" PRIu32 " %zu", b->run,
	                   n % 100000, c->id % b->o.rooms);

	queue_body(b, c, body, (size_t)len);
}

static void
queue_raw(struct client *c, const char *s)
{
	size_t len = strlen(s);

	if (c->outlen + len > c->outcap) {
		c->outcap = (c->outlen + len) * 2 + 256;
		if ((c->out = realloc(c->out, c->outcap)) == NULL)
			die("out of memory");
	}
	memcpy(c->out + c->outlen, s, len);
	c->outlen += len;
}

/* --- the transport: plain, or TLS ---------------------------------------- */

#ifdef HAVE_OPENSSL
static int tickets; /* session tickets seen by the callback (handshake mode) */

static int
on_ticket(SSL *ssl, SSL_SESSION *sess)
{
	(void)sess;
	SSL_set_app_data(ssl, (void *)1);
	tickets++;
	return 0; /* not kept */
}

static void
tls_init(struct bench *b)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		die("cannot set up TLS");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                              SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Whole socket buffers per read(2), not a record header and then its
	 * body: the tool must not be what limits the figures. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(ctx, on_ticket);
	b->ctx = ctx;
}

static SSL *
tls_new(struct bench *b, int fd)
{
	SSL *ssl = SSL_new(b->ctx);

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
		die("cannot set up TLS");
	SSL_set_connect_state(ssl);
	return ssl;
}

/* A negative errno for what the call did not do (-EAGAIN: later). */
static ssize_t
tls_fail(SSL *ssl, int rc)
{
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE: return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN: return 0;
	case SSL_ERROR_SYSCALL: ERR_clear_error(); return errno != 0 ? -errno : 0;
	default: ERR_clear_error(); return -EPROTO;
	}
}
#endif

/* send(2) or SSL_write: the count, or a negative errno (-EAGAIN: full). */
static ssize_t
xsend(struct client *c, const char *p, size_t len)
{
	ssize_t n;

#ifdef HAVE_OPENSSL
	if (c->ssl != NULL) {
		size_t put = 0;
		int rc;

		errno = 0;
		rc = SSL_write_ex(c->ssl, p, len, &put);
		n = rc == 1 ? (ssize_t)put : tls_fail(c->ssl, rc);
		return n == 0 ? -EPIPE : n;
	}
#endif
	n = send(c->fd, p, len, MSG_NOSIGNAL);
	return n >= 0 ? n : errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* recv(2) or SSL_read: the count, 0 at the end, or a negative errno. */
static ssize_t
xrecv(struct client *c, char *p, size_t len)
{
	ssize_t n;

#ifdef HAVE_OPENSSL
	if (c->ssl != NULL) {
		size_t got = 0;
		int rc;

		errno = 0;
		rc = SSL_read_ex(c->ssl, p, len, &got);
		return rc == 1 ? (ssize_t)got : tls_fail(c->ssl, rc);
	}
#endif
	n = recv(c->fd, p, len, 0);
	return n >= 0 ? n : errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static void
watch(struct bench *b, struct client *c, bool out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };

	if (c->want_out == out)
		return;
	c->want_out = out;
	if (epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
}

/* Write what is queued.  Unthrottled senders top up while the socket
 * takes more. */
static void
write_out(struct bench *b, struct client *c)
{
	for (;;) {
		ssize_t n;

		if (c->outoff == c->outlen) {
			c->outoff = c->outlen = 0;
			if (b->t0 != 0 && b->o.rate == 0 && c->id < b->o.senders &&
			    c->sent < b->o.lines) {
				int64_t t = now_ns();

				/* A burst, so that writes are large as a
				 * real pasting client's would be. */
				for (int k = 0; k < 32 && c->sent < b->o.lines; k++)
					queue_line(b, c, t);
				if (c->sent == b->o.lines)
					b->unthrottled--;
			} else {
				break;
			}
		}
		n = xsend(c, c->out + c->outoff, c->outlen - c->outoff);
		if (n < 0) {
			if (n == -EINTR)
				continue;
			if (n == -EAGAIN)
				break;
			die("client %zu: send: %s", c->id, strerror((int)-n));
		}
		c->outoff += (size_t)n;
	}
	watch(b, c,
	      c->outoff < c->outlen || (b->t0 != 0 && b->o.rate == 0 && c->id < b->o.senders &&
	                                c->sent < b->o.lines));
}

/* --- receiving ---------------------------------------------------------- */

static bool
parse_u64(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;

	if (s == end || *s < '0' || *s > '9')
		return false;
	while (s < end && *s >= '0' && *s <= '9')
		x = x * 10 + (uint64_t)(*s++ - '0');
	if (s == end || *s != ' ')
		return false;
	*p = s + 1;
	*v = x;
	return true;
}

/* One line body as it arrived at receiver c. */
static void
on_body(struct bench *b, struct client *c, const char *body, size_t len, int64_t now)
{
	const char *p = body + 11, *end = body + len;
	uint64_t sender, seq, ns;
	size_t i, bit;

	if (len < 11 || memcmp(body, "cb", 2) != 0) {
		b->st.foreign++;
		return;
	}
	if (memcmp(body, b->tag, 11) != 0) {
		b->st.foreign++; /* another run's */
		return;
	}
	if (len >= 17 && memcmp(p, "probe ", 6) == 0) {
		/* Ready once a probe of its own room reaches it: then the
		 * server has it there. */
		if (!c->ready && (len < 24 || strtoul(p + 12, NULL, 10) == c->id % b->o.rooms)) {
			c->ready = true;
			b->ready++;
		}
		return;
	}
	if (!parse_u64(&p, end, &sender) || !parse_u64(&p, end, &seq) || !parse_u64(&p, end, &ns) ||
	    sender >= b->o.senders || seq >= b->o.lines) {
		b->st.corrupt++;
		return;
	}
	if (len != (b->o.payload > (size_t)(p - body) ? b->o.payload : (size_t)(p - body) + 1)) {
		b->st.corrupt++;
		return;
	}
	for (i = (size_t)(p - body); i < len; i++) {
		if (body[i] != fill_char(sender, seq, i)) {
			b->st.corrupt++;
			return;
		}
	}
	if (b->seen == NULL)
		return;
	if (c->mover) {
		long room = (long)(sender % b->o.rooms);

		if (room != c->cur && room != c->pending) {
			b->st.wrong_room++; /* a room it is not in */
		} else if (seq + 1 <= c->last[sender]) {
			b->st.dup++; /* it had this one, or a later one */
		} else {
			c->last[sender] = (uint32_t)seq + 1;
			b->mv.deliveries++;
		}
		return;
	}
	if (b->o.proto == PROTO_CHAT && sender == c->id) {
		b->st.dup++; /* the server never echoes a line to its sender */
		return;
	}
	if (sender % b->o.rooms != c->id % b->o.rooms) {
		b->st.wrong_room++; /* a room's line reached another room */
		return;
	}
	bit = ((c->id * b->o.senders + sender) * b->o.lines) + seq;
	if (b->seen[bit / 8] & (1u << (bit % 8))) {
		b->st.dup++;
		return;
	}
	b->seen[bit / 8] |= (uint8_t)(1u << (bit % 8));
	if (seq + 1 < b->highest[c->id * b->o.senders + sender])
		b->st.reordered++;
	else
		b->highest[c->id * b->o.senders + sender] = (uint32_t)seq + 1;
	b->st.deliveries++;
	hist_add(&b->st, (uint64_t)(now - (int64_t)ns));
	b->t_last = now;
}

/* A mover asks for its next room. */
static void
move_on(struct bench *b, struct client *c)
{
	char cmd[64];

	c->pending = (long)((c->id + c->moves_done + 1) % b->o.rooms);
	if (c->pending == c->cur)
		c->pending = (c->pending + 1) % (long)b->o.rooms;
	snprintf(cmd, sizeof(cmd), "/join cb%08" PRIx32 "-%ld\n", b->run, c->pending);
	c->move_sent = now_ns();
	queue_raw(c, cmd);
	write_out(b, c);
}

/* A notice to a mover: "* you are now in #cbRUN-R (N here)". */
static void
on_mover_notice(struct bench *b, struct client *c, const char *line, size_t len, int64_t now)
{
	static const char head[] = "* you are now in #";
	const char *dash;

	if (len < sizeof(head) - 1 + 11 || memcmp(line, head, sizeof(head) - 1) != 0 ||
	    memcmp(line + sizeof(head) - 1, b->tag, 10) != 0 ||
	    (dash = memchr(line + sizeof(head) - 1, '-', len - (sizeof(head) - 1))) == NULL)
		return;
	if (strtol(dash + 1, NULL, 10) != c->pending) {
		b->st.wrong_room++; /* moved somewhere it did not ask for */
		return;
	}
	c->cur = c->pending;
	c->pending = -1;
	c->moves_done++;
	b->mv.done++;
	hist_add(&b->mv.lat, (uint64_t)(now - c->move_sent));
	if (c->moves_done < b->o.moves)
		move_on(b, c);
}

/* chat: "ADDR | STAMP | BODY\r\n"; notices ("* ...") are not ours. */
static void
on_chat_line(struct bench *b, struct client *c, const char *line, size_t len, int64_t now)
{
	const char *p;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len >= 2 && line[0] == '*' && line[1] == ' ') {
		if (c->mover)
			on_mover_notice(b, c, line, len, now);
		return;
	}
	for (int k = 0; k < 2; k++) {
		p = memchr(line, '|', len);
		if (p == NULL || (size_t)(p - line) + 2 > len || p[1] != ' ') {
			b->st.foreign++;
			return;
		}
		len -= (size_t)(p + 2 - line);
		line = p + 2;
	}
	on_body(b, c, line, len, now);
}

/*
 * The RESP value at p: its length if complete, 0 if more bytes are needed,
 * -1 if malformed.  The first elements of a top-level aggregate that are
 * strings are noted in item/ilen (depth 1 only).
 */
static long
resp_value(const char *p, size_t n, int depth, const char **item, size_t *ilen, int *nitems)
{
	const char *eol = memchr(p, '\n', n);
	long long v = 0;
	long off, r;
	bool neg = false;
	const char *s;

	if (eol == NULL)
		return 0;
	if (eol == p || eol[-1] != '\r' || depth > 8)
		return -1;
	off = eol - p + 1;
	s = p + 1;
	if (*s == '-') {
		neg = true;
		s++;
	}
	while (s < eol - 1 && *s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	if (neg)
		v = -v;
	switch (p[0]) {
	case '+':
	case '-':
	case ':':
	case '_':
	case '#':
	case ',':
	case '(': return off;
	case '$':
	case '=':
	case '!':
		if (v < 0)
			return off;
		if ((size_t)off + (size_t)v + 2 > n)
			return 0;
		if (p[off + v] != '\r' || p[off + v + 1] != '\n')
			return -1;
		if (depth == 1 && *nitems < 4) {
			item[*nitems] = p + off;
			ilen[(*nitems)++] = (size_t)v;
		}
		return off + (long)v + 2;
	case '*':
	case '>':
	case '~':
	case '%':
	case '|':
		if (v < 0)
			return off;
		if (p[0] == '%' || p[0] == '|')
			v *= 2;
		for (long long i = 0; i < v; i++) {
			int before = *nitems;

			r = resp_value(p + off, n - (size_t)off, depth + 1, item, ilen, nitems);
			if (r <= 0)
				return r;
			off += r;
			if (depth == 0 && *nitems == before && before < 4) {
				item[*nitems] = ""; /* an element that is no string */
				ilen[(*nitems)++] = 0;
			}
		}
		if (p[0] == '|') /* an attribute precedes the real value */
			return (r = resp_value(p + off, n - (size_t)off, depth, item, ilen,
			                       nitems)) <= 0
			               ? r
			               : off + r;
		return off;
	default: return -1;
	}
}

/* Parse what is in buf for c; returns the bytes consumed. */
static size_t
consume(struct bench *b, struct client *c, const char *buf, size_t n, int64_t now)
{
	size_t used = 0;

	while (used < n) {
		if (b->o.proto == PROTO_CHAT) {
			const char *nl = memchr(buf + used, '\n', n - used);

			if (nl == NULL)
				break;
			on_chat_line(b, c, buf + used, (size_t)(nl - (buf + used)), now);
			used = (size_t)(nl - buf) + 1;
		} else {
			const char *item[4] = { NULL };
			size_t ilen[4];
			int nitems = 0;
			long r = resp_value(buf + used, n - used, 0, item, ilen, &nitems);

			if (r == 0)
				break;
			if (r < 0)
				die("client %zu: malformed reply from the server", c->id);
			if ((buf[used] == '>' || buf[used] == '*') && nitems >= 3 && ilen[0] == 7 &&
			    memcmp(item[0], "message", 7) == 0)
				on_body(b, c, item[2], ilen[2], now);
			else if (buf[used] == '-' || buf[used] == '!')
				die("client %zu: the server said: %.*s", c->id,
				    (int)(strcspn(buf + used, "\r\n")), buf + used);
			used += (size_t)r;
		}
	}
	return used;
}

/* Read what has arrived for c.  Returns false at end of input. */
static bool
read_in(struct bench *b, struct client *c)
{
	for (;;) {
		size_t have = c->inlen, used;
		ssize_t n;

		if (have > 0)
			memcpy(b->rbuf, c->in, have);
		n = xrecv(c, b->rbuf + have, sizeof(b->rbuf) - have);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN)
			return true;
		if (n <= 0)
			return false;
		have += (size_t)n;
		used = consume(b, c, b->rbuf, have, now_ns());
		if (used < have && have - used >= sizeof(b->rbuf) / 2)
			die("client %zu: a line or frame over %zu bytes", c->id,
			    sizeof(b->rbuf) / 2);
		free(c->in);
		c->in = NULL;
		c->inlen = have - used;
		if (c->inlen > 0) {
			c->in = xmalloc(c->inlen);
			memcpy(c->in, b->rbuf + used, c->inlen);
		}
		if (c->ssl == NULL && (size_t)n < sizeof(b->rbuf) - c->inlen - 1)
			return true; /* drained (TLS: a record at a time, until EAGAIN) */
	}
}

/* --- connections -------------------------------------------------------- */

static void
raise_fd_limit(size_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < want + 64) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want + 64
		                      ? (rlim_t)want + 64
		                      : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
connect_all(struct bench *b, size_t n)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ais[16], *ai;
	char ports[256], *save = NULL, *port;
	size_t nports = 0;
	int rc, one = 1;

	/* -p PORT1,PORT2,...: the clients go round the servers (a cluster). */
	snprintf(ports, sizeof(ports), "%s", b->o.port);
	for (port = strtok_r(ports, ",", &save); port != NULL; port = strtok_r(NULL, ",", &save)) {
		if (nports == sizeof(ais) / sizeof(ais[0]))
			die("-p: at most 16 ports");
		if ((rc = getaddrinfo(b->o.host, port, &hints, &ais[nports])) != 0)
			die("cannot resolve %s:%s: %s", b->o.host, port, gai_strerror(rc));
		nports++;
	}
	if (nports == 0)
		die("-p: no port");
	raise_fd_limit(n);
	b->c = calloc(n, sizeof(*b->c));
	if (b->c == NULL)
		die("out of memory");
	for (size_t i = 0; i < n; i++) {
		struct client *c = &b->c[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		ai = ais[i % nports];
		c->id = i;
		c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0)
			die("connection %zu: socket: %s", i, strerror(errno));
		if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0)
			die("cannot connect to %s:%s (connection %zu): %s", b->o.host, b->o.port, i,
			    strerror(errno));
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef HAVE_OPENSSL
		if (b->o.tls) {
			/* Blocking, still, but bounded: a server that does not
			 * answer (a plain port) must not hang the tool. */
			long ms = (long)(b->o.timeout * 1000);
			struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000 };

			setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			c->ssl = tls_new(b, c->fd);
			if (SSL_connect(c->ssl) != 1)
				die("connection %zu: TLS handshake failed (is %s a TLS port?)", i,
				    b->o.port);
			tv.tv_sec = 0;
			tv.tv_usec = 0;
			setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		}
#endif
		if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0)
			die("fcntl: %s", strerror(errno));
		if (epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
			die("epoll_ctl: %s", strerror(errno));
		if (b->o.proto == PROTO_RESP) {
			char cmd[256];

			snprintf(cmd, sizeof(cmd), "HELLO 3\r\nSUBSCRIBE %s\r\n", b->o.channel);
			queue_raw(c, cmd);
			write_out(b, c);
		}
		if (i >= b->o.clients) {
			/* A mover: in #lobby until the storm begins; never
			 * probed (it is in no room of ours). */
			c->mover = true;
			c->cur = c->pending = -1;
			c->ready = true;
			b->ready++;
			c->last = calloc(b->o.senders, sizeof(*c->last));
			if (c->last == NULL)
				die("out of memory for mover %zu", i);
		} else if (b->o.rooms > 1) {
			char cmd[64];

			snprintf(cmd, sizeof(cmd), "/join cb%08" PRIx32 "-%zu\n", b->run,
			         i % b->o.rooms);
			queue_raw(c, cmd);
			write_out(b, c);
		}
		b->nc++;
		/* Drain as we go: a chat server tells everyone of each
		 * join, and those notices must not pile up meanwhile. */
		if (i % 64 == 63) {
			struct epoll_event evs[256];
			int k = epoll_wait(b->ep, evs, 256, 0);

			for (int j = 0; j < k; j++)
				if ((evs[j].events & EPOLLIN) && !read_in(b, evs[j].data.ptr))
					die("connection %zu: closed by the server",
					    ((struct client *)evs[j].data.ptr)->id);
		}
	}
	for (size_t k = 0; k < nports; k++)
		freeaddrinfo(ais[k]);
}

/* One turn of the event loop, at most timeout_ms long. */
static void
poll_once(struct bench *b, int timeout_ms)
{
	struct epoll_event evs[512];
	int n = epoll_wait(b->ep, evs, 512, timeout_ms);

	if (n < 0 && errno != EINTR)
		die("epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		struct client *c = evs[i].data.ptr;

		if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !read_in(b, c))
			die("connection %zu: closed by the server (%" PRIu64 " deliveries so far)",
			    c->id, b->st.deliveries);
		if (evs[i].events & EPOLLOUT)
			write_out(b, c);
	}
}

/* A probe from connection 0 every 100 ms until every connection has had
 * one: then the server has them all registered. */
static double
wait_ready(struct bench *b)
{
	int64_t start = now_ns(), last = 0, limit = (int64_t)(b->o.timeout * 1e9);

	while (b->ready < b->nc) {
		int64_t t = now_ns();

		if (t - start > limit + (int64_t)b->nc * 200000)
			die("only %zu of %zu connections heard the probe", b->ready, b->nc);
		if (t - last >= 100000000) {
			/* From the first client of each room (client r is room
			 * r's): its own line never comes back to it. */
			for (size_t r = 0; r < b->o.rooms && r < b->nc; r++) {
				queue_probe(b, &b->c[r], b->probe);
				write_out(b, &b->c[r]);
				if (b->o.proto == PROTO_CHAT && !b->c[r].ready) {
					b->c[r].ready = true;
					b->ready++;
				}
			}
			b->probe++;
			last = t;
		}
		poll_once(b, 20);
	}
	return (double)(now_ns() - start) / 1e9;
}

/* --- the server's memory ------------------------------------------------ */

static long
server_rss_kb(long pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* --- the two modes ------------------------------------------------------ */

static int
run_fanout(struct bench *b)
{
	const struct opts *o = &b->o;
	size_t per = o->proto == PROTO_CHAT ? o->clients - 1 : o->clients;
	size_t bits = o->clients * o->senders * o->lines;
	int64_t idle_since, limit = (int64_t)(o->timeout * 1e9), t_end;
	uint64_t last_count = 0;
	double ready_s, cpu0, secs, cpu, rate;
	int bad;

	b->expected = 0;
	for (size_t s = 0; s < o->senders; s++) {
		/* The other members of its room: ids with the same id % rooms. */
		size_t r = s % o->rooms,
		       members = o->clients / o->rooms + (r < o->clients % o->rooms);

		b->expected +=
		        (uint64_t)o->lines * (o->proto == PROTO_CHAT ? members - 1 : members);
	}
	(void)per;
	b->seen = calloc(bits / 8 + 1, 1);
	b->highest = calloc(o->clients * o->senders, sizeof(*b->highest));
	if (b->seen == NULL || b->highest == NULL)
		die("out of memory for %zu delivery bits", bits);

	connect_all(b, o->clients + o->movers);
	ready_s = wait_ready(b);

	cpu0 = cpu_seconds();
	b->t0 = now_ns();
	b->unthrottled = o->rate == 0 ? o->senders : 0;
	for (size_t i = 0; o->rate == 0 && i < o->senders; i++)
		write_out(b, &b->c[i]);
	for (size_t i = o->clients; i < o->clients + o->movers; i++)
		move_on(b, &b->c[i]);
	idle_since = b->t0;
	while (b->st.deliveries < b->expected || b->mv.done < o->movers * o->moves) {
		int64_t t = now_ns();
		int wait = 50;

		if (o->rate > 0) {
			/* Line g is due at t0 + g / (S R): sender g % S, its
			 * line g / S.  The senders' clocks are staggered
			 * evenly, as independent people's would be. */
			size_t total = o->senders * o->lines;
			double gap = 1e9 / ((double)o->senders * o->rate);

			while (b->next_line < total && t >= b->t0 + (int64_t)(b->next_line * gap)) {
				struct client *c = &b->c[b->next_line % o->senders];

				queue_line(b, c, t);
				write_out(b, c);
				b->next_line++;
			}
			if (b->next_line < total) {
				int64_t due = b->t0 + (int64_t)(b->next_line * gap) - now_ns();

				/* Rounded up: spinning for the odd microsecond
				 * would take a core from the server. */
				wait = due <= 0 ? 0 : (int)((due + 999999) / 1000000);
			}
		}
		poll_once(b, wait);
		t = now_ns();
		if (b->st.deliveries + b->mv.done != last_count) {
			last_count = b->st.deliveries + b->mv.done;
			idle_since = t;
		} else if (t - idle_since > limit &&
		           (o->rate == 0 ? b->unthrottled == 0
		                         : b->next_line == o->senders * o->lines)) {
			break;
		}
	}
	t_end = b->t_last ? b->t_last : now_ns();
	cpu = cpu_seconds() - cpu0;
	secs = (double)(t_end - b->t0) / 1e9;
	b->st.lost = b->expected - b->st.deliveries;
	rate = secs > 0 ? (double)b->st.deliveries / secs : 0;
	bad = b->st.lost || b->st.dup || b->st.reordered || b->st.corrupt || b->st.wrong_room ||
	      b->mv.done < o->movers * o->moves;

	printf("%-12s %s:%s (%s%s)\n", "server", o->host, o->port,
	       o->proto == PROTO_RESP ? "redis pub/sub" : "chat", o->tls ? ", TLS" : "");
	printf("%-12s %zu clients, %zu senders x %zu lines of %zu bytes, %s\n", "workload",
	       o->clients, o->senders, o->lines, o->payload,
	       o->rate > 0 ? "throttled" : "unthrottled");
	if (o->rate > 0)
		printf("%-12s %.1f lines/s per sender\n", "rate", o->rate);
	printf("%-12s %.2f s until every connection was registered\n", "ready", ready_s);
	printf("%-12s %" PRIu64 " of %" PRIu64 " in %.3f s\n", "deliveries", b->st.deliveries,
	       b->expected, secs);
	printf("%-12s %.0f deliveries/s\n", "throughput", rate);
	printf("%-12s p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", "latency",
	       hist_pct(&b->st, 0.50) / 1e6, hist_pct(&b->st, 0.99) / 1e6, b->st.lat_max / 1e6);
	printf("%-12s lost %" PRIu64 ", duplicated %" PRIu64 ", reordered %" PRIu64
	       ", corrupted %" PRIu64 ", wrong room %" PRIu64 "\n",
	       "errors", b->st.lost, b->st.dup, b->st.reordered, b->st.corrupt, b->st.wrong_room);
	if (o->rooms > 1)
		printf("%-12s %zu, about %zu clients each\n", "rooms", o->rooms,
		       o->clients / o->rooms);
	if (o->movers > 0)
		printf("%-12s %" PRIu64 " of %zu (%zu movers x %zu rooms), /join to answer p50 "
		       "%.3f ms, p99 %.3f ms, max %.3f ms; %" PRIu64 " lines reached the movers\n",
		       "moves", b->mv.done, o->movers * o->moves, o->movers, o->moves,
		       hist_pct(&b->mv.lat, 0.50) / 1e6, hist_pct(&b->mv.lat, 0.99) / 1e6,
		       b->mv.lat.lat_max / 1e6, b->mv.deliveries);
	printf("%-12s %.0f%% of one core\n", "bench cpu", secs > 0 ? 100 * cpu / secs : 0);
	printf("{\"label\":\"%s\",\"proto\":\"%s\",\"mode\":\"fanout\",\"clients\":%zu,"
	       "\"senders\":%zu,\"lines\":%zu,\"payload\":%zu,\"rate\":%.1f,"
	       "\"deliveries\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"seconds\":%.4f,"
	       "\"deliveries_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
	       "\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64 ",\"reordered\":%" PRIu64
	       ",\"corrupted\":%" PRIu64 ",\"wrong_room\":%" PRIu64 ",\"rooms\":%zu"
	       ",\"movers\":%zu,\"moves_done\":%" PRIu64 ",\"move_p99_ms\":%.3f"
	       ",\"bench_cpu\":%.3f}\n",
	       o->label, o->proto == PROTO_RESP ? "resp" : "chat", o->clients, o->senders, o->lines,
	       o->payload, o->rate, b->st.deliveries, b->expected, secs, rate,
	       hist_pct(&b->st, 0.50) / 1e6, hist_pct(&b->st, 0.99) / 1e6, b->st.lat_max / 1e6,
	       b->st.lost, b->st.dup, b->st.reordered, b->st.corrupt, b->st.wrong_room, o->rooms,
	       o->movers, b->mv.done, hist_pct(&b->mv.lat, 0.99) / 1e6, secs > 0 ? cpu / secs : 0);
	return bad ? 1 : 0;
}

static int
run_idle(struct bench *b)
{
	const struct opts *o = &b->o;
	long rss0 = server_rss_kb(o->pid), rss1;
	int64_t end, start;
	double ready_s, per_kb = -1;
	bool ok;

	start = now_ns();
	connect_all(b, o->connect_only);
	ready_s = wait_ready(b);
	/* Hold: stay idle, but read what the server sends meanwhile. */
	end = now_ns() + (int64_t)(o->hold * 1e9);
	while (now_ns() < end)
		poll_once(b, 100);
	rss1 = server_rss_kb(o->pid);
	if (rss0 > 0 && rss1 > 0)
		per_kb = (double)(rss1 - rss0) / (double)o->connect_only;

	/* A line from the last connection must still reach all the others. */
	for (size_t i = 0; i < b->nc; i++)
		b->c[i].ready = false;
	b->ready = 0;
	{
		struct client *last = &b->c[b->nc - 1];
		int64_t t0 = now_ns(), limit = (int64_t)(o->timeout * 1e9);

		queue_probe(b, last, 99999);
		write_out(b, last);
		if (o->proto == PROTO_CHAT) {
			last->ready = true;
			b->ready++;
		}
		while (b->ready < b->nc && now_ns() - t0 < limit)
			poll_once(b, 50);
		ok = b->ready == b->nc;
		printf("%-12s %s:%s (%s)\n", "server", o->host, o->port,
		       o->proto == PROTO_RESP ? "redis pub/sub" : "chat");
		printf("%-12s %zu idle connections, held %.1f s\n", "workload", o->connect_only,
		       o->hold);
		printf("%-12s %.2f s to connect and register all (%.2f s of it registering)\n",
		       "ready", (double)(t0 - start) / 1e9 - o->hold, ready_s);
		printf("%-12s %zu of %zu connections got a line sent among them, in %.1f ms\n",
		       "message", b->ready, b->nc, (double)(now_ns() - t0) / 1e6);
		if (per_kb >= 0)
			printf("%-12s %ld KiB before, %ld KiB holding: %.2f KiB per connection\n",
			       "server rss", rss0, rss1, per_kb);
		printf("{\"label\":\"%s\",\"proto\":\"%s\",\"mode\":\"idle\",\"clients\":%zu,"
		       "\"hold_s\":%.1f,\"reached\":%zu,\"rss_before_kb\":%ld,"
		       "\"rss_holding_kb\":%ld,\"rss_per_client_kb\":%.2f,\"lost\":%zu}\n",
		       o->label, o->proto == PROTO_RESP ? "resp" : "chat", o->connect_only, o->hold,
		       b->ready, rss0, rss1, per_kb, b->nc - b->ready);
	}
	return ok ? 0 : 1;
}

#ifdef HAVE_OPENSSL
/* One connection of the churn: connect (non-blocking) and begin. */
static void
churn_open(struct bench *b, struct client *c, const struct addrinfo *ai)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	int one = 1;

	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
		die("cannot connect to %s:%s: %s", b->o.host, b->o.port, strerror(errno));
	c->ssl = tls_new(b, c->fd);
	if (epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void
churn_close(struct client *c)
{
	SSL_free(c->ssl);
	c->ssl = NULL;
	close(c->fd); /* also leaves the epoll set */
}

/*
 * Handshake mode: --clients handshakes at a time for --handshakes seconds.
 * One is done when the server's session ticket arrives, which the server
 * sends once it has read our Finished: its side is done too.  Then it is
 * closed and another begins.
 */
static int
run_handshakes(struct bench *b)
{
	const struct opts *o = &b->o;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int64_t t0, end;
	uint64_t done = 0, failed = 0;
	double secs, cpu0, cpu;
	int rc;

	if ((rc = getaddrinfo(o->host, o->port, &hints, &ai)) != 0)
		die("cannot resolve %s:%s: %s", o->host, o->port, gai_strerror(rc));
	raise_fd_limit(o->clients);
	if ((b->c = calloc(o->clients, sizeof(*b->c))) == NULL)
		die("out of memory");
	cpu0 = cpu_seconds();
	t0 = now_ns();
	end = t0 + (int64_t)(o->handshakes * 1e9);
	for (size_t i = 0; i < o->clients; i++) {
		b->c[i].id = i;
		churn_open(b, &b->c[i], ai);
	}
	while (now_ns() < end) {
		struct epoll_event evs[512];
		int n = epoll_wait(b->ep, evs, 512, 50);

		for (int k = 0; k < n; k++) {
			struct client *c = evs[k].data.ptr;
			char buf[256];
			int r;

			ERR_clear_error();
			errno = 0;
			r = SSL_is_init_finished(c->ssl) ? SSL_read(c->ssl, buf, sizeof(buf))
			                                 : SSL_connect(c->ssl);
			if (SSL_get_app_data(c->ssl) != NULL) {
				done++;
			} else if (r > 0 || tls_fail(c->ssl, r) == -EAGAIN) {
				/* Not yet: wait for what it wants, and only that. */
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

				if (r <= 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_WRITE)
					ev.events = EPOLLOUT;
				epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev);
				continue;
			} else {
				failed++;
			}
			churn_close(c);
			churn_open(b, c, ai);
		}
	}
	secs = (double)(now_ns() - t0) / 1e9;
	cpu = cpu_seconds() - cpu0;
	for (size_t i = 0; i < o->clients; i++)
		churn_close(&b->c[i]);
	freeaddrinfo(ai);
	printf("%-12s %s:%s (chat, TLS)\n", "server", o->host, o->port);
	printf("%-12s %zu handshakes at a time for %.1f s\n", "workload", o->clients, secs);
	printf("%-12s %" PRIu64 " done, %" PRIu64 " failed: %.0f per second\n", "handshakes", done,
	       failed, (double)done / secs);
	printf("%-12s %.0f%% of one core\n", "bench cpu", 100 * cpu / secs);
	printf("{\"label\":\"%s\",\"proto\":\"chat\",\"mode\":\"handshakes\",\"clients\":%zu,"
	       "\"seconds\":%.2f,\"done\":%" PRIu64 ",\"failed\":%" PRIu64
	       ",\"handshakes_per_s\":%.0f,\"bench_cpu\":%.3f}\n",
	       o->label, o->clients, secs, done, failed, (double)done / secs, cpu / secs);
	return done > 0 && failed == 0 ? 0 : 1;
}
#endif

/* A port the kernel gives for 127.0.0.1:0, released at once.  Another
 * program could take it before the caller does; bench/run-peers checks
 * that the server it starts came up. */
static int
print_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		die("cannot find a free port: %s", strerror(errno));
	printf("%u\n", ntohs(sa.sin_port));
	close(fd);
	return 0;
}

/* --- options ------------------------------------------------------------ */

static void
usage(FILE *f)
{
	fprintf(f, "usage: chat-bench [options] -p PORT\n"
	           "  -H, --host HOST         server address (default 127.0.0.1)\n"
	           "  -p, --port PORT[,PORT]  server port (required); several: the clients\n"
	           "                          go round them (servers of one cluster)\n"
	           "      --proto chat|resp   chat-server lines, or Redis pub/sub (default chat)\n"
	           "      --channel NAME      the Redis channel (default chat)\n"
	           "  -c, --clients N         connections (default 100)\n"
	           "  -s, --senders S         of them sending (default: all)\n"
	           "  -m, --lines M           lines per sender (default 200)\n"
	           "  -r, --rate R            lines per second per sender (default 0: as fast\n"
	           "                          as the socket takes them)\n"
	           "  -P, --payload BYTES     bytes per line (default 64)\n"
	           "  -t, --timeout SECS      give up after this long without a delivery (default "
	           "10)\n"
	           "      --connect-only N    open N idle connections instead ...\n"
	           "      --hold SECS         ... hold them this long, then check a line gets "
	           "through\n"
	           "      --pid PID           the server's process, to report its memory\n"
	           "      --label TEXT        a name for the JSON line\n"
	           "      --rooms K           client i in room i %% K (/join), lines checked\n"
	           "                          in their room only (default 1)\n"
	           "      --movers N          N more clients, each going through --moves rooms\n"
	           "                          in turn while the others chat (a /join storm)\n"
	           "      --moves M           rooms each mover goes to (default 10)\n"
	           "      --tls               every connection speaks TLS (not verified)\n"
	           "      --handshakes SECS   TLS handshakes, --clients at a time, for SECS\n"
	           "                          seconds: report handshakes per second\n"
	           "      --free-port         print a loopback port free now, and exit (for\n"
	           "                          starting servers that cannot bind port 0)\n"
	           "  -h, --help              this text\n");
}

static size_t
opt_size(const char *name, const char *v, size_t min, size_t max)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || x < min || x > max)
		die("%s: '%s' is not a number from %zu to %zu", name, v, min, max);
	return (size_t)x;
}

static double
opt_double(const char *name, const char *v, double max)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !(x >= 0) || x > max)
		die("%s: '%s' is not a number from 0 to %g", name, v, max);
	return x;
}

int
main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "proto", required_argument, NULL, 'x' },
		{ "channel", required_argument, NULL, 'C' },
		{ "clients", required_argument, NULL, 'c' },
		{ "senders", required_argument, NULL, 's' },
		{ "lines", required_argument, NULL, 'm' },
		{ "rate", required_argument, NULL, 'r' },
		{ "payload", required_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 't' },
		{ "connect-only", required_argument, NULL, 'o' },
		{ "hold", required_argument, NULL, 'd' },
		{ "pid", required_argument, NULL, 'i' },
		{ "label", required_argument, NULL, 'L' },
		{ "free-port", no_argument, NULL, 'F' },
		{ "tls", no_argument, NULL, 'T' },
		{ "rooms", required_argument, NULL, 'R' },
		{ "movers", required_argument, NULL, 'V' },
		{ "moves", required_argument, NULL, 'W' },
		{ "handshakes", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct bench b;
	bool senders_set = false;
	int ch, rc;

	b.o = (struct opts){ .host = "127.0.0.1",
		             .channel = "chat",
		             .label = "",
		             .clients = 100,
		             .lines = 200,
		             .payload = 64,
		             .timeout = 10 };
	while ((ch = getopt_long(argc, argv, "H:p:c:s:m:r:P:t:h", longs, NULL)) != -1) {
		switch (ch) {
		case 'H': b.o.host = optarg; break;
		case 'p': b.o.port = optarg; break;
		case 'x':
			if (strcmp(optarg, "chat") == 0)
				b.o.proto = PROTO_CHAT;
			else if (strcmp(optarg, "resp") == 0)
				b.o.proto = PROTO_RESP;
			else
				die("--proto: '%s' is neither chat nor resp", optarg);
			break;
		case 'C':
			if (optarg[0] == '\0' || strpbrk(optarg, " \r\n") != NULL ||
			    strlen(optarg) > 64)
				die("--channel: '%s' is not a plain name", optarg);
			b.o.channel = optarg;
			break;
		case 'c': b.o.clients = opt_size("--clients", optarg, 2, 1000000); break;
		case 's':
			b.o.senders = opt_size("--senders", optarg, 1, 1000000);
			senders_set = true;
			break;
		case 'm': b.o.lines = opt_size("--lines", optarg, 1, 100000000); break;
		case 'r': b.o.rate = opt_double("--rate", optarg, 1e6); break;
		case 'P': b.o.payload = opt_size("--payload", optarg, 1, 4000); break;
		case 't': b.o.timeout = opt_double("--timeout", optarg, 3600); break;
		case 'o': b.o.connect_only = opt_size("--connect-only", optarg, 2, 1000000); break;
		case 'd': b.o.hold = opt_double("--hold", optarg, 86400); break;
		case 'i': b.o.pid = (long)opt_size("--pid", optarg, 1, INT_MAX); break;
		case 'L': b.o.label = optarg; break;
		case 'F': return print_free_port();
		case 'T': b.o.tls = true; break;
		case 'R': b.o.rooms = opt_size("--rooms", optarg, 1, 100000); break;
		case 'V': b.o.movers = opt_size("--movers", optarg, 1, 1000000); break;
		case 'W': b.o.moves = opt_size("--moves", optarg, 1, 1000000); break;
		case 'K': b.o.handshakes = opt_double("--handshakes", optarg, 3600); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc)
		die("unexpected argument '%s'", argv[optind]);
	if (b.o.port == NULL) {
		usage(stderr);
		return 2;
	}
	if (strpbrk(b.o.label, "\"\\") != NULL)
		die("--label: no quotes or backslashes, please");
	if (!senders_set)
		b.o.senders = b.o.clients;
	if (b.o.senders > b.o.clients)
		die("--senders %zu: more than the %zu clients", b.o.senders, b.o.clients);
	if (b.o.timeout == 0)
		b.o.timeout = 10;
	if (b.o.rooms == 0)
		b.o.rooms = 1;
	if (b.o.rooms > 1 && b.o.proto != PROTO_CHAT)
		die("--rooms: chat-server only");
	if (b.o.rooms > 1 && b.o.clients / b.o.rooms < 2)
		die("--rooms %zu: fewer than two clients a room", b.o.rooms);
	if (b.o.moves == 0)
		b.o.moves = 10;
	if (b.o.movers > 0 && (b.o.rooms < 2 || b.o.connect_only > 0 || b.o.handshakes > 0))
		die("--movers: needs --rooms 2 or more, in fan-out mode");
	b.run = (uint32_t)now_ns() ^ ((uint32_t)getpid() << 16);
	snprintf(b.tag, sizeof(b.tag), "cb%08" PRIx32 " ", b.run);
	if ((b.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
	if (b.o.handshakes > 0)
		b.o.tls = true;
#ifdef HAVE_OPENSSL
	if (b.o.tls)
		tls_init(&b);
	if (b.o.handshakes > 0)
		return run_handshakes(&b);
#else
	if (b.o.tls)
		die("--tls: this chat-bench was built without OpenSSL");
#endif
	rc = b.o.connect_only > 0 ? run_idle(&b) : run_fanout(&b);
	fflush(stdout);
	/* Exit without closing each socket: the kernel does it at once. */
	return rc;
}
