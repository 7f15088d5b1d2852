/* The client's terminal; see term.h. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* TIOCGWINSZ */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "term.h"

/*
 * What the signal handler and the atexit handler restore.  Written only
 * by term_open and term_close, in the main thread, while no other thread
 * uses the terminal; raw_fd last on open and first on close, so that a
 * handler never sees a half-made state.
 */
static struct termios saved;
static volatile sig_atomic_t raw_fd = -1;

static const int fatal_signals[] = { SIGTERM, SIGHUP, SIGINT, SIGQUIT };
static struct sigaction old_actions[sizeof(fatal_signals) / sizeof(fatal_signals[0])];

static void
restore_mode(void)
{
	int fd = raw_fd;

	if (fd >= 0)
		tcsetattr(fd, TCSANOW, &saved);
}

/* Async-signal-safe: tcsetattr, write, signal and raise all are. */
static void
on_fatal_signal(int sig)
{
	int fd = raw_fd;

	if (fd >= 0) {
		tcsetattr(fd, TCSANOW, &saved);
		if (write(fd, "\r\n", 2) < 0) {
			/* nothing more to do about it here */
		}
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
write_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the terminal is gone: nothing to show it on */
		s += n;
		len -= (size_t)n;
	}
}

static unsigned
columns(int fd)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 4)
		return ws.ws_col;
	return 80;
}

/*
 * Write head (if any), then the input line, in one write under mu (the
 * caller holds it).  One write: the terminal never shows a state between.
 */
static void
draw_locked(struct term *t, const char *head, size_t hlen)
{
	unsigned cols = columns(t->out);
	size_t cap = hlen + 4 * (size_t)cols + strlen(t->prompt) + 64, len;
	char *buf = malloc(cap);

	if (buf == NULL) {
		write_all(t->out, head, hlen); /* the message matters more */
		return;
	}
	memcpy(buf, head, hlen);
	len = hlen + edit_render(&t->ed, t->prompt, cols, buf + hlen, cap - hlen);
	write_all(t->out, buf, len);
	free(buf);
}

void
term_set_prompt(struct term *t, const char *prompt)
{
	pthread_mutex_lock(&t->mu);
	snprintf(t->prompt, sizeof(t->prompt), "%s", prompt);
	draw_locked(t, "", 0);
	pthread_mutex_unlock(&t->mu);
}

int
term_open(struct term *t, int in, int out, const char *prompt)
{
	static bool atexit_done;
	struct termios raw;
	struct sigaction sa;
	size_t i;
	int rc;

	if (tcgetattr(in, &saved) != 0)
		return -errno;
	raw = saved;
	/* Keys one by one, no echo, Ctrl-C and Ctrl-S as plain keys; output
	 * processing stays on. */
	raw.c_iflag &= ~(tcflag_t)(BRKINT | ICRNL | INLCR | IGNCR | INPCK | ISTRIP | IXON);
	raw.c_lflag &= ~(tcflag_t)(ECHO | ICANON | IEXTEN | ISIG);
	raw.c_cflag |= CS8;
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if ((rc = pthread_mutex_init(&t->mu, NULL)) != 0)
		return -rc;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		sigaction(fatal_signals[i], &sa, &old_actions[i]);
	if (!atexit_done)
		atexit_done = atexit(restore_mode) == 0;
	if (tcsetattr(in, TCSAFLUSH, &raw) != 0) {
		rc = -errno;
		for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
			sigaction(fatal_signals[i], &old_actions[i], NULL);
		pthread_mutex_destroy(&t->mu);
		return rc;
	}
	raw_fd = in;
	t->in = in;
	t->out = out;
	snprintf(t->prompt, sizeof(t->prompt), "%s", prompt);
	edit_init(&t->ed);
	pthread_mutex_lock(&t->mu);
	draw_locked(t, "", 0);
	pthread_mutex_unlock(&t->mu);
	return 0;
}

void
term_close(struct term *t)
{
	size_t i;

	write_all(t->out, "\r\x1b[K", 4); /* the prompt goes; the messages stay */
	restore_mode();
	raw_fd = -1;
	for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		sigaction(fatal_signals[i], &old_actions[i], NULL);
	edit_free(&t->ed);
	pthread_mutex_destroy(&t->mu);
}

void
term_print(struct term *t, const char *line, size_t len)
{
	char *head = malloc(len + 8);

	pthread_mutex_lock(&t->mu);
	if (head == NULL) {
		write_all(t->out, "\r\x1b[K", 4);
		write_all(t->out, line, len);
		draw_locked(t, "\r\n", 2);
	} else {
		memcpy(head, "\r\x1b[K", 4);
		memcpy(head + 4, line, len);
		memcpy(head + 4 + len, "\r\n", 2);
		draw_locked(t, head, len + 6);
	}
	pthread_mutex_unlock(&t->mu);
	free(head);
}

enum edit_action
term_keys(struct term *t, const char *buf, size_t n, size_t *used, char **line, size_t *len)
{
	enum edit_action act = EDIT_NONE;
	bool redraw = false, refresh = false;
	size_t i;

	pthread_mutex_lock(&t->mu);
	for (i = 0; i < n && act == EDIT_NONE; i++) {
		switch (edit_key(&t->ed, (unsigned char)buf[i])) {
		case EDIT_REDRAW: redraw = true; break;
		case EDIT_REFRESH: refresh = true; break;
		case EDIT_ENTER: act = EDIT_ENTER; break;
		case EDIT_EOF: act = EDIT_EOF; break;
		case EDIT_INTERRUPT: act = EDIT_INTERRUPT; break;
		case EDIT_COMPLETE: act = EDIT_COMPLETE; break;
		case EDIT_SUSPEND: act = EDIT_SUSPEND; break;
		case EDIT_NONE: break;
		}
	}
	*used = i;
	if (act == EDIT_ENTER) {
		/* The caller shows the line (term_print), in the form it
		 * chooses: the server does not send our own lines back. */
		*line = edit_take(&t->ed, len);
		draw_locked(t, refresh ? "\x1b[H\x1b[2J" : "", refresh ? 7 : 0);
	} else if (refresh) {
		draw_locked(t, "\x1b[H\x1b[2J", 7);
	} else if (redraw) {
		draw_locked(t, "", 0);
	}
	pthread_mutex_unlock(&t->mu);
	return act;
}

void
term_redraw(struct term *t)
{
	pthread_mutex_lock(&t->mu);
	/* Erase below too: a terminal that reflowed the old input row on a
	 * resize would leave part of it on the next row. */
	draw_locked(t, "\r\x1b[J", 4);
	pthread_mutex_unlock(&t->mu);
}

void
term_set_line(struct term *t, const char *line, size_t len)
{
	pthread_mutex_lock(&t->mu);
	edit_replace(&t->ed, 0, "", 0);
	edit_key(&t->ed, 0x0b); /* Ctrl-K: nothing after the cursor either */
	edit_replace(&t->ed, 0, line, len);
	draw_locked(t, "", 0);
	pthread_mutex_unlock(&t->mu);
}

/* The longest prefix the n names share (at most max bytes, case as in
 * the first), without regard to case. */
static size_t
common_prefix(const char *const *names, size_t n, size_t max)
{
	size_t k = strlen(names[0]);

	for (size_t i = 1; i < n; i++) {
		size_t j = 0;

		while (j < k && names[i][j] != '\0' &&
		       (names[i][j] | 0x20) == (names[0][j] | 0x20))
			j++;
		k = j;
	}
	return k < max ? k : max;
}

void
term_complete(struct term *t, const char *const *names, size_t n)
{
	const char *match[64];
	size_t start, plen, k = 0, lcp;
	const char *line;
	char buf[128];

	pthread_mutex_lock(&t->mu);
	line = edit_line(&t->ed, &plen);
	start = edit_word_start(&t->ed);
	plen = t->ed.cur - start;
	for (size_t i = 0; i < n && k < sizeof(match) / sizeof(match[0]); i++)
		if (plen > 0 && strlen(names[i]) >= plen && strncasecmp(names[i], line + start, plen) == 0)
			match[k++] = names[i];
	if (k == 1) {
		/* A nick that opens the line is addressed: "alice: ". */
		snprintf(buf, sizeof(buf), "%s%s", match[0], start == 0 ? ": " : " ");
		edit_replace(&t->ed, start, buf, strlen(buf));
		draw_locked(t, "", 0);
	} else if (k > 1 && (lcp = common_prefix(match, k, sizeof(buf) - 1)) > plen) {
		memcpy(buf, match[0], lcp);
		edit_replace(&t->ed, start, buf, lcp);
		draw_locked(t, "", 0);
	} else if (k > 1) {
		/* Nothing more in common: show the choices above the line. */
		char list[1024];
		size_t len = (size_t)snprintf(list, sizeof(list), "\r\x1b[K");

		for (size_t i = 0; i < k && len + 40 < sizeof(list); i++)
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? "  " : "",
			                        match[i]);
		len += (size_t)snprintf(list + len, sizeof(list) - len, "\r\n");
		draw_locked(t, list, len);
	}
	pthread_mutex_unlock(&t->mu);
}

void
term_suspend(struct term *t)
{
	struct termios raw;

	pthread_mutex_lock(&t->mu);
	write_all(t->out, "\r\x1b[K", 4);
	tcgetattr(t->in, &raw);
	tcsetattr(t->in, TCSANOW, &saved); /* the shell gets its terminal back */
	/* Stop here, as Ctrl-Z would have stopped us in cooked mode.  This
	 * thread's own signal (raise), not kill(0, ...): one sent to the
	 * process may be taken by another thread, and this one would put
	 * raw mode back before the stop.  The lock is kept: nothing may draw
	 * while we are stopped. */
	raise(SIGTSTP);
	/* Resumed (fg): the shell may have changed the mode; ours again. */
	tcsetattr(t->in, TCSANOW, &raw);
	draw_locked(t, "", 0);
	pthread_mutex_unlock(&t->mu);
}
