/* The client's terminal; see term.h. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* TIOCGWINSZ */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	const char *typed;
	size_t i, tn;
	char *head;

	pthread_mutex_lock(&t->mu);
	for (i = 0; i < n && act == EDIT_NONE; i++) {
		switch (edit_key(&t->ed, (unsigned char)buf[i])) {
		case EDIT_REDRAW: redraw = true; break;
		case EDIT_REFRESH: refresh = true; break;
		case EDIT_ENTER: act = EDIT_ENTER; break;
		case EDIT_EOF: act = EDIT_EOF; break;
		case EDIT_INTERRUPT: act = EDIT_INTERRUPT; break;
		case EDIT_NONE: break;
		}
	}
	*used = i;
	if (act == EDIT_ENTER) {
		/* The line stays on the screen, whole, as typed: the server
		 * does not send our own lines back. */
		typed = edit_line(&t->ed, &tn);
		head = malloc(strlen(t->prompt) + tn + 16);
		if (head != NULL) {
			size_t hl = strlen(t->prompt);

			memcpy(head, "\r", 1);
			memcpy(head + 1, t->prompt, hl);
			memcpy(head + 1 + hl, typed, tn);
			memcpy(head + 1 + hl + tn, "\x1b[K\r\n", 5);
			hl += tn + 6;
			*line = edit_take(&t->ed, len);
			draw_locked(t, refresh ? "\x1b[H\x1b[2J" : "", refresh ? 7 : 0);
			draw_locked(t, head, hl);
			free(head);
		} else {
			*line = edit_take(&t->ed, len);
			draw_locked(t, "\r\n", 2);
		}
	} else if (refresh) {
		draw_locked(t, "\x1b[H\x1b[2J", 7);
	} else if (redraw) {
		draw_locked(t, "", 0);
	}
	pthread_mutex_unlock(&t->mu);
	return act;
}
