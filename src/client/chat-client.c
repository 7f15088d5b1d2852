/*
 * chat-client: a terminal client for chat-server (any line-oriented TCP
 * chat works).
 *
 * Two threads, as the original client had: a sender thread reads what the
 * user types and sends it; the main thread receives and prints.  On a
 * terminal they share the screen through term.h, which keeps the line
 * being typed intact below arriving messages, and the server's lines are
 * shown for people (fmt.h: "[09:14] <alice> hello").  Otherwise (a pipe,
 * a file) it is plain line I/O: lines in, the server's lines out as they
 * came, nothing else on stdout.
 *
 * Who decides to end: always the main thread, when the connection ends.
 * The sender ends the conversation by half-closing the socket (end of
 * input, Ctrl-D) or sending /quit, and the server then closes; Ctrl-C
 * shuts the socket down both ways.  The flags below tell the main thread
 * which of these it was, and so the exit status.  On a terminal, a
 * connection the server ended is made again (1 s, doubling to 30 s), with
 * the nick and room it had; the line being typed stays meanwhile.
 *
 * Locks: conn_mu guards cur, the link in use (the main thread swaps it on
 * a reconnect, the sender sends through it); mu guards what the main
 * thread learns from the server and the sender reads (our nick, the names
 * seen for Tab, who last wrote to us privately, whether the nick is
 * settled).
 */
#define _GNU_SOURCE /* pipe2 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "edit.h"
#include "fmt.h"
#include "line.h"
#include "link.h"
#include "net.h"
#include "term.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "4333"
#define DEFAULT_TLS_PORT "4334"
/* The TLS handshake, from connect to a checked certificate. */
#define TLS_TIMEOUT_MS 10000
/* Longest line shown; a longer one is cut.  Bounds what a hostile server
 * can make the client hold. */
#define MAX_IN (64 * 1024)
/* Reconnecting: the first wait, and the longest. */
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000
/* In a pipe, lines wait this long at most for the server's answer to -n. */
#define NICK_WAIT_MS 5000
/* Nicks remembered for Tab, the most recent first. */
#define NAMES 128
#define NICK_MAX 16 /* as the server's */

#define EXIT_USAGE 2
#define EXIT_NICK 3          /* -n NICK taken, in a pipe */
#define EXIT_INTERRUPTED 130 /* 128 + SIGINT, as shells report Ctrl-C */

struct client {
	/* Set before the sender starts, immutable after. */
	bool tty;           /* terminal mode */
	bool quiet;         /* -q: in a pipe, no "* " lines */
	bool reconnect;     /* on a terminal, unless --no-reconnect */
	const char *host, *port;
	struct link_tls tls;
	bool use_tls, verbose;
	char want[NICK_MAX + 1]; /* -n, "" for none */

	struct term term;
	int wake[2];      /* main -> sender: stop */
	int wake_main[2]; /* sender -> main: stop waiting to reconnect */
	int winch;        /* signalfd of SIGWINCH, for the sender: redraw; -1 */

	pthread_mutex_t conn_mu;
	struct link links[2]; /* main: the one in use and the one to connect */
	struct link *cur;     /* conn_mu (written by main): NULL while away */

	atomic_bool leaving;     /* sender: the user ended (EOF, Ctrl-D, /quit) */
	atomic_bool interrupted; /* sender: Ctrl-C */
	atomic_bool nick_taken;  /* main: -n refused in a pipe */

	struct line_buf typed; /* sender: stdin carry, in plain mode */

	pthread_mutex_t mu;
	pthread_cond_t settled_cv;
	bool settled;                /* mu: -n answered (or no -n) */
	struct fmt fmt;              /* mu: display, with our nick (fmt.me) */
	char room[64];               /* main: our room, "" until told */
	char last_private[FMT_NAME_MAX]; /* mu: who wrote to us last, for /r */
	char names[NAMES][NICK_MAX + 1]; /* mu: nicks seen, most recent first */
	size_t nnames;                   /* mu */
	bool tried_fallback;             /* main: NICK_ asked for already */

	struct line_buf in; /* main: what arrived, up to a line end */
	char *shown;        /* main: a line made safe to show */
	char *out;          /* main: a line formatted for the terminal */
	char *sout;         /* sender: the same, for what is typed */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	        "usage: chat-client [-qv] [-n NICK] [--no-reconnect] [--tls [--ca FILE] "
	        "[--insecure]]\n"
	        "                   [HOST [PORT]]\n"
	        "  HOST                     server name or address (default " DEFAULT_HOST ")\n"
	        "  PORT                     its port (default " DEFAULT_PORT
	        ", with --tls " DEFAULT_TLS_PORT ")\n"
	        "  -n, --nick NICK          join under this nick (on a terminal, NICK_ if it\n"
	        "                           is taken; in a pipe, exit 3)\n"
	        "      --no-reconnect       on a terminal, exit when the server goes away\n"
	        "                           instead of connecting again\n"
	        "      --tls                connect with TLS, checking the server's certificate\n"
	        "                           against the system's CAs and HOST\n"
	        "      --ca FILE            trust the CA certificates in FILE (PEM) instead\n"
	        "      --insecure           do not check the certificate at all (unsafe)\n"
	        "  -q, --quiet              in a pipe, print chat lines only (no '* ' lines)\n"
	        "  -v, --verbose            connection details on stderr\n"
	        "  -h, --help               this help\n"
	        "  -V, --version            the version\n");
}

/* A nick the server takes: 1 to 16 letters, digits, _ or -, beginning
 * with a letter (docs/protocol.md). */
static bool
nick_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > NICK_MAX || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];

		if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9') &&
		    c != '_' && c != '-')
			return false;
	}
	return true;
}

/* "HH:MM" of now, local time. */
static void
hhmm(char buf[8])
{
	time_t now = time(NULL);
	struct tm tm;

	if (localtime_r(&now, &tm) == NULL || strftime(buf, 8, "%H:%M", &tm) == 0)
		snprintf(buf, 8, "--:--");
}

/* A line of the client's own, on the terminal (never in a pipe, whose
 * stdout is the server's lines only). */
static void
say(struct client *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
say(struct client *cl, const char *fmt, ...)
{
	char text[512], line[600], out[1024], t[8];
	va_list ap;
	int n;

	if (!cl->tty)
		return;
	va_start(ap, fmt);
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		text[0] = '\0';
	va_end(ap);
	hhmm(t);
	n = snprintf(line, sizeof(line), "* %s", text);
	pthread_mutex_lock(&cl->mu);
	n = (int)fmt_render(&cl->fmt, t, line, (size_t)n, out, sizeof(out));
	pthread_mutex_unlock(&cl->mu);
	term_print(&cl->term, out, (size_t)n);
}

/* --- sending (the sender thread) ------------------------------------------------ */

static bool
is_cmd(const char *line, size_t len, const char *cmd)
{
	size_t n = strlen(cmd);

	return len >= n && strncasecmp(line, cmd, n) == 0 && (len == n || line[n] == ' ');
}

/* A line and its end, under one hold of conn_mu: the main thread sends
 * lines too (/nick after a reconnect), and two must never interleave. */
static bool
send_text(struct client *cl, const char *line, size_t len)
{
	bool ok;

	pthread_mutex_lock(&cl->conn_mu);
	ok = cl->cur != NULL && link_send(cl->cur, line, len) == 0 &&
	     link_send(cl->cur, "\n", 1) == 0;
	pthread_mutex_unlock(&cl->conn_mu);
	return ok;
}

/* In a pipe with -n: lines wait for the server's answer to the nick (a
 * bounded wait: a server that never answers gets them anyway). */
static void
wait_settled(struct client *cl)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += NICK_WAIT_MS / 1000;
	pthread_mutex_lock(&cl->mu);
	while (!cl->settled &&
	       pthread_cond_timedwait(&cl->settled_cv, &cl->mu, &until) != ETIMEDOUT)
		;
	cl->settled = true;
	pthread_mutex_unlock(&cl->mu);
}

/* One line read from a pipe, without its line end. */
static void
send_line(void *ctx, const char *line, size_t len, bool truncated)
{
	struct client *cl = ctx;

	(void)truncated; /* sent as cut: the server would cut it anyway */
	if (len == 0)
		return;
	wait_settled(cl);
	if (atomic_load(&cl->nick_taken))
		return; /* not under another name */
	if (is_cmd(line, len, "/quit"))
		atomic_store(&cl->leaving, true); /* before the server can close */
	send_text(cl, line, len);
}

/* A line typed on the terminal: shown as ours, /r expanded, sent; kept
 * in the editor if there is no connection to send it on. */
static void
send_typed(struct client *cl, char *line, size_t len)
{
	char t[8], buf[MAX_IN + 64], to[FMT_NAME_MAX];
	size_t n;

	if (is_cmd(line, len, "/r")) {
		pthread_mutex_lock(&cl->mu);
		snprintf(to, sizeof(to), "%s", cl->last_private);
		pthread_mutex_unlock(&cl->mu);
		if (to[0] == '\0') {
			say(cl, "nobody has written to you privately yet: /msg NICK TEXT");
			term_set_line(&cl->term, line, len);
			return;
		}
		n = (size_t)snprintf(buf, sizeof(buf), "/msg %s %.*s", to,
		                     (int)(len > 3 ? len - 3 : 0), line + (len > 3 ? 3 : len));
		line = buf;
		len = n < sizeof(buf) ? n : sizeof(buf) - 1;
	}
	if (is_cmd(line, len, "/quit"))
		atomic_store(&cl->leaving, true);
	if (!send_text(cl, line, len)) {
		atomic_store(&cl->leaving, false);
		say(cl, "not connected: your line is kept; Enter sends it once back");
		term_set_line(&cl->term, line, len);
		return;
	}
	hhmm(t);
	pthread_mutex_lock(&cl->mu);
	if (line[0] == '/' && !(len > 1 && line[1] == '/'))
		n = fmt_command(&cl->fmt, t, line, len, cl->sout, 3 * MAX_IN + 64);
	else /* "//text" says "/text" */
		n = fmt_own(&cl->fmt, t, line[0] == '/' ? line + 1 : line,
		            line[0] == '/' ? len - 1 : len, cl->sout, 3 * MAX_IN + 64);
	pthread_mutex_unlock(&cl->mu);
	term_print(&cl->term, cl->sout, n);
}

/* No more input: say so to the server, which closes when it has relayed
 * everything. */
static void
end_input(struct client *cl)
{
	atomic_store(&cl->leaving, true);
	pthread_mutex_lock(&cl->conn_mu);
	if (cl->cur != NULL)
		link_shutdown_write(cl->cur);
	pthread_mutex_unlock(&cl->conn_mu);
	if (write(cl->wake_main[1], "x", 1) < 0) {
		/* the main thread sees leaving at its next look anyway */
	}
}

/* Tab: the nicks seen, most recent first, offered to the editor. */
static void
complete(struct client *cl)
{
	char copy[NAMES][NICK_MAX + 1];
	const char *names[NAMES];
	size_t n;

	pthread_mutex_lock(&cl->mu);
	n = cl->nnames;
	memcpy(copy, cl->names, sizeof(copy));
	pthread_mutex_unlock(&cl->mu);
	for (size_t i = 0; i < n; i++)
		names[i] = copy[i];
	term_complete(&cl->term, names, n);
}

/* Keys typed on the terminal.  Returns false when the sender is done. */
static bool
on_keys(struct client *cl, const char *buf, size_t n)
{
	for (size_t i = 0, used; i < n; i += used) {
		char *line = NULL;
		size_t len = 0;

		switch (term_keys(&cl->term, buf + i, n - i, &used, &line, &len)) {
		case EDIT_ENTER:
			if (line != NULL)
				send_typed(cl, line, len);
			free(line);
			break;
		case EDIT_EOF: end_input(cl); return false;
		case EDIT_INTERRUPT:
			atomic_store(&cl->interrupted, true);
			pthread_mutex_lock(&cl->conn_mu);
			if (cl->cur != NULL)
				link_abort(cl->cur); /* the receiver wakes and ends */
			pthread_mutex_unlock(&cl->conn_mu);
			if (write(cl->wake_main[1], "x", 1) < 0) {
				/* the main thread sees interrupted at its next look */
			}
			return false;
		case EDIT_COMPLETE: complete(cl); break;
		case EDIT_SUSPEND: term_suspend(&cl->term); break;
		default: break;
		}
	}
	return true;
}

static void *
sender(void *arg)
{
	struct client *cl = arg;
	char buf[4096];

	for (;;) {
		struct pollfd p[3] = { { .fd = STDIN_FILENO, .events = POLLIN },
			               { .fd = cl->wake[0], .events = POLLIN },
			               { .fd = cl->winch, .events = POLLIN } };
		ssize_t n;

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents != 0)
			break; /* the connection is over */
		if (p[2].revents != 0) {
			struct signalfd_siginfo si;

			while (read(cl->winch, &si, sizeof(si)) > 0)
				;
			term_redraw(&cl->term);
		}
		if (p[0].revents == 0)
			continue;
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (!cl->tty)
				line_finish(&cl->typed, send_line, cl);
			end_input(cl);
			break;
		}
		if (cl->tty) {
			if (!on_keys(cl, buf, (size_t)n))
				break;
		} else if (line_feed(&cl->typed, MAX_IN, buf, (size_t)n, send_line, cl) != 0) {
			fprintf(stderr, "chat-client: out of memory: input lost\n");
		}
	}
	return NULL;
}

/* --- receiving (the main thread) -------------------------------------------------- */

/* The prompt: our nick and room, "alice #dev> ". */
static void
update_prompt(struct client *cl)
{
	char prompt[FMT_NAME_MAX + 72];

	if (!cl->tty)
		return;
	pthread_mutex_lock(&cl->mu);
	snprintf(prompt, sizeof(prompt), "%s%s%s> ", cl->fmt.me, cl->fmt.me[0] && cl->room[0] ? " " : "",
	         cl->room);
	pthread_mutex_unlock(&cl->mu);
	term_set_prompt(&cl->term, prompt);
}

/* mu held: nick (n bytes) is the most recent name seen. */
static void
note_name_locked(struct client *cl, const char *nick, size_t n)
{
	size_t i;

	if (n == 0 || n > NICK_MAX || ((nick[0] | 0x20) < 'a' || (nick[0] | 0x20) > 'z'))
		return;
	for (i = 0; i < cl->nnames; i++)
		if (strlen(cl->names[i]) == n && strncasecmp(cl->names[i], nick, n) == 0)
			break;
	if (i == cl->nnames && cl->nnames < NAMES)
		cl->nnames++;
	if (i == NAMES)
		i = NAMES - 1; /* full: the oldest goes */
	memmove(cl->names[1], cl->names[0], i * sizeof(cl->names[0]));
	memcpy(cl->names[0], nick, n);
	cl->names[0][n] = '\0';
}

static bool
nick_char(char c)
{
	return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-';
}

/* The names a line shows: every "nick@" (senders, /who, departures),
 * "nick (addr) joined", "is now nick". */
static void
note_names(struct client *cl, const struct fmt_line *l)
{
	const char *s = l->text, *end = l->text + l->tlen;

	pthread_mutex_lock(&cl->mu);
	if (l->kind != FMT_NOTICE && l->kind != FMT_OTHER && strchr(l->who, ':') == NULL)
		note_name_locked(cl, l->who, strlen(l->who));
	if (l->kind == FMT_NOTICE) {
		for (const char *p = s; p < end; p++) {
			const char *b = p;

			if (*p != '@')
				continue;
			while (b > s && nick_char(b[-1]))
				b--;
			note_name_locked(cl, b, (size_t)(p - b));
		}
		if (l->tlen > 9 && memchr(s, ' ', l->tlen) != NULL &&
		    strncmp(memchr(s, ' ', l->tlen), " (", 2) == 0)
			note_name_locked(cl, s, (size_t)((const char *)memchr(s, ' ', l->tlen) - s));
	}
	pthread_mutex_unlock(&cl->mu);
}

/* What the server tells about us: our nick, our room, a nick refused. */
static void
follow_server(struct client *cl, const struct fmt_line *l)
{
	char word[72];
	const char *t = l->text;
	size_t n = l->tlen, k;

	if (l->kind == FMT_PRIVATE && strchr(l->who, ':') == NULL) {
		pthread_mutex_lock(&cl->mu);
		if (strcasecmp(l->who, cl->fmt.me) != 0)
			snprintf(cl->last_private, sizeof(cl->last_private), "%s", l->who);
		pthread_mutex_unlock(&cl->mu);
		return;
	}
	if (l->kind != FMT_NOTICE)
		return;
	if (n > 16 && strncmp(t, "you are now in #", 16) == 0) {
		for (k = 15; k < n && t[k] != ' ' && k - 15 < 60; k++)
			;
		snprintf(cl->room, sizeof(cl->room), "%.*s", (int)(k - 15), t + 15);
		update_prompt(cl);
	} else if ((n > 12 && strncmp(t, "you are now ", 12) == 0) ||
	           (n > 16 && strncmp(t, "you are already ", 16) == 0)) {
		size_t at = t[8] == 'n' ? 12 : 16;

		snprintf(word, sizeof(word), "%.*s", (int)(n - at < 60 ? n - at : 60), t + at);
		if (!nick_valid(word))
			return;
		pthread_mutex_lock(&cl->mu);
		snprintf(cl->fmt.me, sizeof(cl->fmt.me), "%s", word);
		cl->settled = true;
		pthread_cond_broadcast(&cl->settled_cv);
		pthread_mutex_unlock(&cl->mu);
		update_prompt(cl);
	} else if (n > 8 && strncmp(t, "you are ", 8) == 0 && memchr(t, '#', n) != NULL) {
		/* The greeting: "you are ADDR in #lobby, 3 online". */
		const char *r = memchr(t, '#', n);

		for (k = 0; r + k < t + n && r[k] != ',' && r[k] != ' ' && k < 60; k++)
			;
		snprintf(cl->room, sizeof(cl->room), "%.*s", (int)k, r);
		update_prompt(cl);
	} else if (cl->want[0] != '\0' && n == 5 + strlen(cl->want) + 9 &&
	           strncmp(t, "nick ", 5) == 0 && strncasecmp(t + 5, cl->want, strlen(cl->want)) == 0 &&
	           strncmp(t + 5 + strlen(cl->want), " is taken", 9) == 0) {
		/* -n NICK refused.  In a pipe that is the end (exit 3): lines
		 * must not go out under another name.  On a terminal, NICK_,
		 * once. */
		if (!cl->tty) {
			atomic_store(&cl->nick_taken, true);
			pthread_mutex_lock(&cl->mu);
			cl->settled = true; /* the sender stops waiting, and sends nothing */
			pthread_cond_broadcast(&cl->settled_cv);
			pthread_mutex_unlock(&cl->mu);
		} else if (!cl->tried_fallback && strlen(cl->want) < NICK_MAX) {
			char alt[NICK_MAX + 8];

			cl->tried_fallback = true;
			snprintf(alt, sizeof(alt), "/nick %s_", cl->want);
			say(cl, "%s is taken; trying %s_", cl->want, cl->want);
			send_text(cl, alt, strlen(alt));
		}
	}
}

/* One line from the server: sanitised again (a server, or whoever it
 * relays, may be hostile), then shown. */
static void
show_line(void *ctx, const char *line, size_t len, bool truncated)
{
	struct client *cl = ctx;
	struct fmt_line l;
	char t[8];
	bool cut;
	size_t n = line_sanitize(line, len, cl->shown, 3 * MAX_IN + 4, &cut);

	(void)truncated;
	fmt_parse(cl->shown, n, &l);
	note_names(cl, &l);
	follow_server(cl, &l);
	if (!cl->tty) {
		if (cl->quiet && l.kind == FMT_NOTICE)
			return;
		fwrite(cl->shown, 1, n, stdout);
		putchar('\n');
		return;
	}
	hhmm(t);
	pthread_mutex_lock(&cl->mu);
	n = fmt_render(&cl->fmt, t, cl->shown, n, cl->out, 3 * MAX_IN + 64);
	pthread_mutex_unlock(&cl->mu);
	term_print(&cl->term, cl->out, n);
}

/* Receive until the connection ends; returns 0 at its end, else the
 * errno that ended it. */
static int
receive(struct client *cl, struct link *l)
{
	char buf[16384];

	for (;;) {
		ssize_t n = link_recv(l, buf, sizeof(buf));

		if (n > 0) {
			if (line_feed(&cl->in, MAX_IN, buf, (size_t)n, show_line, cl) != 0)
				fprintf(stderr, "chat-client: out of memory: a line lost\n");
			if (atomic_load(&cl->nick_taken))
				return 0;
			continue;
		}
		line_finish(&cl->in, show_line, cl);
		line_buf_free(&cl->in);
		return n == 0 ? 0 : (int)-n;
	}
}

/* --- connecting ------------------------------------------------------------------------ */

/* Connect l (not in use) to the server; 0, or -1 with the reason in err. */
static int
connect_link(struct client *cl, struct link *l, char *err, size_t len)
{
	int fd = net_connect(cl->host, cl->port, cl->verbose ? stderr : NULL, err, len);

	if (fd < 0)
		return -1;
	if (!cl->use_tls) {
		link_plain(l, fd);
		return 0;
	}
	if (link_tls(l, fd, &cl->tls, TLS_TIMEOUT_MS, err, len) != 0) {
		link_close(l);
		return -1;
	}
	if (cl->verbose) {
		char what[256];

		link_describe(l, what, sizeof(what));
		fprintf(stderr, "chat-client: %s%s\n", what,
		        cl->tls.insecure ? " (certificate not checked)" : ", certificate verified");
	}
	return 0;
}

/* l is connected: it becomes the link in use, and we ask for our nick
 * and room again (first: -n; after a reconnect: what we had). */
static void
go_online(struct client *cl, struct link *l, bool again)
{
	char line[FMT_NAME_MAX + 80], nick[FMT_NAME_MAX];

	pthread_mutex_lock(&cl->conn_mu);
	cl->cur = l;
	pthread_mutex_unlock(&cl->conn_mu);
	pthread_mutex_lock(&cl->mu);
	snprintf(nick, sizeof(nick), "%s", again && cl->fmt.me[0] ? cl->fmt.me : cl->want);
	pthread_mutex_unlock(&cl->mu);
	/* The nick as the first line: the server announces us under it. */
	if (nick[0] != '\0') {
		snprintf(line, sizeof(line), "/nick %s", nick);
		send_text(cl, line, strlen(line));
	}
	if (again && cl->room[0] != '\0' && strcasecmp(cl->room, "#lobby") != 0) {
		snprintf(line, sizeof(line), "/join %s", cl->room);
		send_text(cl, line, strlen(line));
	}
}

/* The connection ended: no link in use from now on. */
static void
go_offline(struct client *cl)
{
	struct link *l = cl->cur;

	link_abort(l); /* a send blocked on it returns, and lets conn_mu go */
	pthread_mutex_lock(&cl->conn_mu);
	cl->cur = NULL;
	pthread_mutex_unlock(&cl->conn_mu);
	link_close(l);
}

/* Wait ms, or until the user quits (Ctrl-C, Ctrl-D): false then. */
static bool
pause_or_quit(struct client *cl, long ms)
{
	struct pollfd p = { .fd = cl->wake_main[0], .events = POLLIN };
	char buf[16];

	if (atomic_load(&cl->leaving) || atomic_load(&cl->interrupted))
		return false;
	if (poll(&p, 1, (int)ms) > 0 && read(cl->wake_main[0], buf, sizeof(buf)) < 0) {
		/* drained or not, the flags say what happened */
	}
	return !atomic_load(&cl->leaving) && !atomic_load(&cl->interrupted);
}

/*
 * On a terminal, the server gone: connect again, waiting 1 s, then twice
 * as long each time up to 30 s, until it works or the user quits.
 * Returns the link now in use, or NULL if the user quit.
 */
static struct link *
reconnect(struct client *cl, int why)
{
	long wait = RETRY_FIRST_MS;
	char err[512];

	say(cl, "connection lost%s%s; reconnecting in %ld s (Ctrl-C quits)", why ? ": " : "",
	    why ? strerror(why) : "", wait / 1000);
	for (;;) {
		struct link *l = &cl->links[0];

		if (!pause_or_quit(cl, wait))
			return NULL;
		if (connect_link(cl, l, err, sizeof(err)) == 0) {
			say(cl, "connected again to %s port %s", cl->host, cl->port);
			go_online(cl, l, true);
			return l;
		}
		wait = wait * 2 < RETRY_MAX_MS ? wait * 2 : RETRY_MAX_MS;
		say(cl, "%s; next try in %ld s", err, wait / 1000);
	}
}

/* --- main ----------------------------------------------------------------------------- */

static void bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Exit 2 with the problem and the usage. */
static void
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "chat-client: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(EXIT_USAGE);
}

static const char *
check_port(const char *port)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(port, &end, 10);
	if (port[0] < '0' || port[0] > '9' || *end != '\0' || errno != 0 || v < 1 || v > 65535)
		bad_usage("invalid port '%s': expected a number from 1 to 65535", port);
	return port;
}

int
main(int argc, char **argv)
{
	/* One option a line. */
	/* clang-format off */
	static const struct option longopts[] = {
		{ "nick", required_argument, NULL, 'n' },
		{ "tls", no_argument, NULL, 'T' },
		{ "ca", required_argument, NULL, 'C' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "no-reconnect", no_argument, NULL, 'R' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	static struct client cl = {
		.wake = { -1, -1 }, .wake_main = { -1, -1 }, .winch = -1,
		.reconnect = true, .host = DEFAULT_HOST,
	};
	const char *nick = NULL;
	struct link *l = &cl.links[1];
	sigset_t winch;
	char err[512];
	pthread_t tid;
	int c, rc, status;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":n:qvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': nick = optarg; break;
		case 'T': cl.use_tls = true; break;
		case 'C': cl.tls.ca = optarg; break;
		case 'I': cl.tls.insecure = true; break;
		case 'R': cl.reconnect = false; break;
		case 'q': cl.quiet = true; break;
		case 'v': cl.verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("chat-client (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION); return 0;
		case ':': bad_usage("option %s needs a value", argv[optind - 1]); break;
		default: bad_usage("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		cl.host = argv[optind++];
	if (optind < argc)
		cl.port = check_port(argv[optind++]);
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	if (nick != NULL && !nick_valid(nick))
		bad_usage("invalid nick '%s': 1 to %d letters, digits, _ or -, beginning with a "
		          "letter",
		          nick, NICK_MAX);
	if (!cl.use_tls && (cl.tls.ca != NULL || cl.tls.insecure))
		bad_usage("%s needs --tls", cl.tls.ca != NULL ? "--ca" : "--insecure");
	if (cl.use_tls && cl.tls.ca != NULL && cl.tls.insecure)
		bad_usage("--ca and --insecure contradict each other");
	if (cl.use_tls && !link_have_tls()) {
		fprintf(stderr, "chat-client: --tls: this chat-client was built without OpenSSL "
		                "(configure --with-openssl; Debian: libssl-dev)\n");
		return EXIT_USAGE;
	}
	if (cl.port == NULL)
		cl.port = cl.use_tls ? DEFAULT_TLS_PORT : DEFAULT_PORT;
	cl.tls.host = cl.host;
	snprintf(cl.want, sizeof(cl.want), "%s", nick != NULL ? nick : "");
	cl.settled = nick == NULL;
	if (cl.tls.insecure)
		fprintf(stderr,
		        "chat-client: warning: --insecure: the server's certificate is not "
		        "checked; anyone between you and it can read and change the chat\n");

	setlocale(LC_CTYPE, ""); /* character widths, for the line editor */
	fmt_init(&cl.fmt, getenv("NO_COLOR"), getenv("TERM"));
	if ((cl.shown = malloc(3 * MAX_IN + 4)) == NULL ||
	    (cl.out = malloc(3 * MAX_IN + 64)) == NULL || (cl.sout = malloc(3 * MAX_IN + 64)) == NULL ||
	    pipe2(cl.wake, O_CLOEXEC) != 0 ||
	    pipe2(cl.wake_main, O_CLOEXEC | O_NONBLOCK) != 0 ||
	    pthread_mutex_init(&cl.conn_mu, NULL) != 0 || pthread_mutex_init(&cl.mu, NULL) != 0 ||
	    pthread_cond_init(&cl.settled_cv, NULL) != 0) {
		fprintf(stderr, "chat-client: cannot start: %s\n", strerror(errno));
		return 1;
	}
	link_plain(&cl.links[0], -1);
	link_plain(&cl.links[1], -1);
	if (connect_link(&cl, l, err, sizeof(err)) != 0) {
		fprintf(stderr, "chat-client: %s\n", err);
		status = 1;
		goto out;
	}
	go_online(&cl, l, false);

	cl.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) &&
	         term_open(&cl.term, STDIN_FILENO, STDOUT_FILENO, "> ") == 0;
	if (!cl.tty) {
		setvbuf(stdout, NULL, _IOLBF, 0); /* so that `| grep` sees lines live */
	} else {
		/* A resize is read by the sender from a signalfd, in its poll:
		 * blocked here, before the sender starts, so that no thread
		 * takes it as a signal. */
		sigemptyset(&winch);
		sigaddset(&winch, SIGWINCH);
		pthread_sigmask(SIG_BLOCK, &winch, NULL);
		cl.winch = signalfd(-1, &winch, SFD_NONBLOCK | SFD_CLOEXEC);
	}
	if ((rc = pthread_create(&tid, NULL, sender, &cl)) != 0) {
		if (cl.tty)
			term_close(&cl.term);
		fprintf(stderr, "chat-client: cannot start: %s\n", strerror(rc));
		status = 1;
		goto out;
	}

	for (;;) {
		rc = receive(&cl, l);
		if (atomic_load(&cl.interrupted) || atomic_load(&cl.leaving) ||
		    atomic_load(&cl.nick_taken) || !cl.tty || !cl.reconnect)
			break;
		go_offline(&cl);
		if ((l = reconnect(&cl, rc)) == NULL)
			break;
	}

	/* The connection is over: stop the sender (shutdown also ends a send
	 * that a server no longer reading would block), then tidy up. */
	if (l != NULL)
		go_offline(&cl);
	if (write(cl.wake[1], "x", 1) < 0)
		fprintf(stderr, "chat-client: cannot stop the sender: %s\n", strerror(errno));
	pthread_join(tid, NULL);
	if (cl.tty)
		term_close(&cl.term);
	fflush(stdout);

	if (atomic_load(&cl.interrupted)) {
		status = EXIT_INTERRUPTED;
	} else if (atomic_load(&cl.nick_taken)) {
		fprintf(stderr, "chat-client: nick %s is taken\n", cl.want);
		status = EXIT_NICK;
	} else if (atomic_load(&cl.leaving)) {
		status = 0;
	} else {
		if (rc != 0)
			fprintf(stderr, "chat-client: connection closed by server: %s\n",
			        strerror(rc));
		else
			fprintf(stderr, "chat-client: connection closed by server\n");
		status = 1;
	}
out:
	for (int i = 0; i < 2; i++)
		link_close(&cl.links[i]);
	close(cl.wake[0]);
	close(cl.wake[1]);
	close(cl.wake_main[0]);
	close(cl.wake_main[1]);
	if (cl.winch >= 0)
		close(cl.winch);
	line_buf_free(&cl.in);
	line_buf_free(&cl.typed);
	free(cl.shown);
	free(cl.out);
	free(cl.sout);
	return status;
}
