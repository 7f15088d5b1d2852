/*
 * chat-client: a terminal client for chat-server (any line-oriented TCP
 * chat works).
 *
 * Two threads, as the original client had: a sender thread reads what the
 * user types and sends it; the main thread receives and prints.  On a
 * terminal they share the screen through term.h, which keeps the line
 * being typed intact below arriving messages.  Otherwise (a pipe, a file)
 * it is plain line I/O: lines in, lines out, nothing else on stdout.
 *
 * Who decides to end: always the main thread, when the connection ends.
 * The sender ends the conversation by half-closing the socket (end of
 * input, Ctrl-D) or sending /quit, and the server then closes; Ctrl-C
 * shuts the socket down both ways.  The flags below tell the main thread
 * which of these it was, and so the exit status.
 */
#define _GNU_SOURCE /* pipe2 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edit.h"
#include "line.h"
#include "link.h"
#include "net.h"
#include "term.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "4333"
#define DEFAULT_TLS_PORT "4334"
/* The TLS handshake, from connect to a checked certificate. */
#define TLS_TIMEOUT_MS 10000
#define PROMPT "> "
/* Longest line shown; a longer one is cut.  Bounds what a hostile server
 * can make the client hold. */
#define MAX_IN (64 * 1024)

#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130 /* 128 + SIGINT, as shells report Ctrl-C */

struct client {
	struct link link; /* the connection; the sender writes, main reads */
	bool tty;         /* terminal mode; fixed before the sender starts */
	struct term term;
	int wake[2]; /* main -> sender: stop */

	atomic_bool leaving;     /* sender: the user ended (EOF, Ctrl-D, /quit) */
	atomic_bool interrupted; /* sender: Ctrl-C */

	struct line_buf typed; /* sender: stdin carry, in plain mode */
	bool send_failed;      /* sender: the connection took no more */

	struct line_buf in; /* main: what arrived, up to a line end */
	char *shown;        /* main: a line made safe to show */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	        "usage: chat-client [-v] [-n NICK] [--tls [--ca FILE] [--insecure]] [HOST [PORT]]\n"
	        "  HOST                     server name or address (default " DEFAULT_HOST ")\n"
	        "  PORT                     its port (default " DEFAULT_PORT
	        ", with --tls " DEFAULT_TLS_PORT ")\n"
	        "  -n, --nick NICK          take this nick once connected\n"
	        "      --tls                connect with TLS, checking the server's certificate\n"
	        "                           against the system's CAs and HOST\n"
	        "      --ca FILE            trust the CA certificates in FILE (PEM) instead\n"
	        "      --insecure           do not check the certificate at all (unsafe)\n"
	        "  -v, --verbose            connection details on stderr\n"
	        "  -h, --help               this help\n"
	        "  -V, --version            the version\n");
}

/* --- sending (the sender thread) ------------------------------------------------ */

static bool
is_quit(const char *line, size_t len)
{
	return len >= 5 && strncasecmp(line, "/quit", 5) == 0 && (len == 5 || line[5] == ' ');
}

static void
send_all(struct client *cl, const char *s, size_t len)
{
	if (!cl->send_failed && link_send(&cl->link, s, len) != 0)
		cl->send_failed = true; /* the receiver will hear why */
}

/* One line typed or read, without its line end. */
static void
send_line(void *ctx, const char *line, size_t len, bool truncated)
{
	struct client *cl = ctx;

	(void)truncated; /* sent as cut: the server would cut it anyway */
	if (len == 0)
		return;
	if (is_quit(line, len))
		atomic_store(&cl->leaving, true); /* before the server can close */
	send_all(cl, line, len);
	send_all(cl, "\n", 1);
}

/* No more input: say so to the server, which closes when it has relayed
 * everything. */
static void
end_input(struct client *cl)
{
	atomic_store(&cl->leaving, true);
	link_shutdown_write(&cl->link);
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
				send_line(cl, line, len, false);
			free(line);
			break;
		case EDIT_EOF: end_input(cl); return false;
		case EDIT_INTERRUPT:
			atomic_store(&cl->interrupted, true);
			link_abort(&cl->link); /* the receiver wakes and ends */
			return false;
		default: break;
		}
	}
	return !cl->send_failed;
}

static void *
sender(void *arg)
{
	struct client *cl = arg;
	char buf[4096];

	for (;;) {
		struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
			               { .fd = cl->wake[0], .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents != 0)
			break; /* the connection is over */
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
		} else {
			if (line_feed(&cl->typed, MAX_IN, buf, (size_t)n, send_line, cl) != 0)
				fprintf(stderr, "chat-client: out of memory: input lost\n");
			if (cl->send_failed)
				break;
		}
	}
	return NULL;
}

/* --- receiving (the main thread) -------------------------------------------------- */

/* The server says we moved ("* you are now in #dev (3 here)"): the prompt
 * shows the room from then on, "#dev> ". */
static void
follow_room(struct client *cl, const char *line, size_t n)
{
	static const char said[] = "* you are now in #";
	char prompt[64];
	size_t k = sizeof(said) - 2, end;

	if (n < sizeof(said) || memcmp(line, said, sizeof(said) - 1) != 0)
		return;
	for (end = k; end < n && end - k < 40 && line[end] != ' '; end++)
		;
	snprintf(prompt, sizeof(prompt), "%.*s> ", (int)(end - k), line + k);
	term_set_prompt(&cl->term, prompt);
}

/* One line from the server: sanitised again (a server, or whoever it
 * relays, may be hostile), then shown. */
static void
show_line(void *ctx, const char *line, size_t len, bool truncated)
{
	struct client *cl = ctx;
	bool cut;
	size_t n = line_sanitize(line, len, cl->shown, 3 * MAX_IN + 4, &cut);

	(void)truncated;
	if (cl->tty) {
		term_print(&cl->term, cl->shown, n);
		follow_room(cl, cl->shown, n);
	} else {
		fwrite(cl->shown, 1, n, stdout);
		putchar('\n');
	}
}

/* Receive until the connection ends; returns 0 at its end, else the
 * errno that ended it. */
static int
receive(struct client *cl)
{
	char buf[16384];

	for (;;) {
		ssize_t n = link_recv(&cl->link, buf, sizeof(buf));

		if (n > 0) {
			if (line_feed(&cl->in, MAX_IN, buf, (size_t)n, show_line, cl) != 0)
				fprintf(stderr, "chat-client: out of memory: a line lost\n");
			continue;
		}
		line_finish(&cl->in, show_line, cl);
		return n == 0 ? 0 : (int)-n;
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
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	struct client cl = { .link = { .fd = -1 }, .wake = { -1, -1 } };
	const char *host = DEFAULT_HOST, *port = NULL, *nick = NULL;
	struct link_tls tls = { .ca = NULL, .insecure = false };
	bool verbose = false, use_tls = false;
	char err[512];
	pthread_t tid;
	int c, fd, rc, status;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":n:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': nick = optarg; break;
		case 'T': use_tls = true; break;
		case 'C': tls.ca = optarg; break;
		case 'I': tls.insecure = true; break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("chat-client (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION); return 0;
		case ':': bad_usage("option %s needs a value", argv[optind - 1]); break;
		default: bad_usage("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		host = argv[optind++];
	if (optind < argc)
		port = check_port(argv[optind++]);
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	if (nick != NULL && (nick[0] == '\0' || strpbrk(nick, "\r\n") != NULL))
		bad_usage("invalid nick '%s'", nick);
	if (!use_tls && (tls.ca != NULL || tls.insecure))
		bad_usage("%s needs --tls", tls.ca != NULL ? "--ca" : "--insecure");
	if (use_tls && tls.ca != NULL && tls.insecure)
		bad_usage("--ca and --insecure contradict each other");
	if (use_tls && !link_have_tls()) {
		fprintf(stderr, "chat-client: --tls: this chat-client was built without OpenSSL "
		                "(configure --with-openssl; Debian: libssl-dev)\n");
		return EXIT_USAGE;
	}
	if (port == NULL)
		port = use_tls ? DEFAULT_TLS_PORT : DEFAULT_PORT;
	if (tls.insecure)
		fprintf(stderr,
		        "chat-client: warning: --insecure: the server's certificate is not "
		        "checked; anyone between you and it can read and change the chat\n");

	setlocale(LC_CTYPE, ""); /* character widths, for the line editor */
	if ((cl.shown = malloc(3 * MAX_IN + 4)) == NULL || pipe2(cl.wake, O_CLOEXEC) != 0) {
		fprintf(stderr, "chat-client: cannot start: %s\n", strerror(errno));
		return 1;
	}
	if ((fd = net_connect(host, port, verbose ? stderr : NULL, err, sizeof(err))) < 0) {
		fprintf(stderr, "chat-client: %s\n", err);
		status = 1;
		goto out;
	}
	if (use_tls) {
		tls.host = host;
		if (link_tls(&cl.link, fd, &tls, TLS_TIMEOUT_MS, err, sizeof(err)) != 0) {
			fprintf(stderr, "chat-client: %s\n", err);
			status = 1;
			goto out;
		}
		if (verbose) {
			link_describe(&cl.link, err, sizeof(err));
			fprintf(stderr, "chat-client: %s%s\n", err,
			        tls.insecure ? " (certificate not checked)"
			                     : ", certificate verified");
		}
	} else {
		link_plain(&cl.link, fd);
	}
	if (nick != NULL) {
		send_all(&cl, "/nick ", 6);
		send_all(&cl, nick, strlen(nick));
		send_all(&cl, "\n", 1);
	}

	cl.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) &&
	         term_open(&cl.term, STDIN_FILENO, STDOUT_FILENO, PROMPT) == 0;
	if (!cl.tty)
		setvbuf(stdout, NULL, _IOLBF, 0); /* so that `| grep` sees lines live */
	if ((rc = pthread_create(&tid, NULL, sender, &cl)) != 0) {
		if (cl.tty)
			term_close(&cl.term);
		fprintf(stderr, "chat-client: cannot start: %s\n", strerror(rc));
		status = 1;
		goto out;
	}

	rc = receive(&cl);

	/* The connection is over: stop the sender (shutdown also ends a send
	 * that a server no longer reading would block), then tidy up. */
	link_abort(&cl.link);
	if (write(cl.wake[1], "x", 1) < 0)
		fprintf(stderr, "chat-client: cannot stop the sender: %s\n", strerror(errno));
	pthread_join(tid, NULL);
	if (cl.tty)
		term_close(&cl.term);
	fflush(stdout);

	if (atomic_load(&cl.interrupted)) {
		status = EXIT_INTERRUPTED;
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
	link_close(&cl.link);
	close(cl.wake[0]);
	close(cl.wake[1]);
	line_buf_free(&cl.in);
	line_buf_free(&cl.typed);
	free(cl.shown);
	return status;
}
