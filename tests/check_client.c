/*
 * chat-client end to end: the real binary against the real server (or a
 * fake one, where the test must control the bytes), through pipes and
 * through a pseudo-terminal read by a small terminal emulator.
 */
#define _GNU_SOURCE /* O_TMPFILE, openpty */
#include "config.h"

#include <pty.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "chat_test.h"
#include "check_run.h"
#include "tls_cert.h"

/* A chat-client process: stdin and stdout are pipes (or one terminal). */
struct cli {
	struct server_proc p; /* pid; logfd: its stderr */
	int in;               /* its standard input, -1 once closed */
	struct client out;    /* its standard output, read as lines */
};

static void
cli_exec(const char **args)
{
	const char *dir = getenv("top_builddir");
	char path[4096], *argv[16];
	int argc = 0;

	snprintf(path, sizeof(path), "%s/src/chat-client", dir ? dir : ".");
	argv[argc++] = path;
	while (*args != NULL && argc < 15)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	execv(path, argv);
	fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

/* Start chat-client with these arguments (NULL-terminated). */
static void
cli_start(struct cli *c, const char **args)
{
	int in[2], out[2];

	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	c->p.logfd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	ck_assert_int_ge(c->p.logfd, 0);
	c->p.pid = fork();
	ck_assert_int_ge(c->p.pid, 0);
	if (c->p.pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(c->p.logfd, STDERR_FILENO);
		cli_exec(args);
	}
	close(in[0]);
	close(out[1]);
	c->in = in[1];
	c->out.fd = out[0];
	c->out.tls = NULL;
	c->out.start = c->out.len = 0;
}

/* Type s into a client's input (a pipe or a terminal). */
static void
type_into(int fd, const char *s)
{
	size_t len = strlen(s);

	ck_assert(write(fd, s, len) == (ssize_t)len);
}

static void
cli_close_input(struct cli *c)
{
	if (c->in >= 0)
		close(c->in);
	c->in = -1;
}

/* Wait for it to exit; returns its exit status (fails if killed or stuck). */
static int
cli_exit(struct cli *c)
{
	int status = server_wait(&c->p, WAIT_MS);

	ck_assert_msg(status != -1, "chat-client did not exit; stderr: %s", server_log(&c->p));
	ck_assert_msg(WIFEXITED(status), "chat-client died of signal %d", WTERMSIG(status));
	return WEXITSTATUS(status);
}

static void
cli_free(struct cli *c)
{
	if (c->p.pid > 0)
		server_wait(&c->p, 0); /* kills it */
	cli_close_input(c);
	close(c->out.fd);
	close(c->p.logfd);
}

static void
port_str(char *buf, size_t len, int port)
{
	snprintf(buf, len, "%d", port);
}

/* chat-client in pipe mode, connected to sp on 127.0.0.1. */
static void
cli_connect(struct cli *c, const struct server_proc *sp)
{
	char port[16];

	port_str(port, sizeof(port), sp->port);
	cli_start(c, (const char *[]){ "127.0.0.1", port, NULL });
}

/* --- pipe mode --------------------------------------------------------------------- */

START_TEST(test_pipe_mode_sends_lines_and_prints_what_arrives)
{
	struct server_proc sp;
	struct cli a, b;
	char port[16], line[1024];

	server_start(&sp, NULL);
	port_str(port, sizeof(port), sp.port);
	cli_connect(&a, &sp);
	ck_assert(server_log_wait(&sp, "connected (1 online)", WAIT_MS));

	/* printf 'hi\nbye\n' | chat-client -n bob 127.0.0.1 PORT */
	cli_start(&b, (const char *[]){ "-n", "bob", "127.0.0.1", port, NULL });
	type_into(b.in, "hi\nbye\n");
	cli_close_input(&b);
	ck_assert_int_eq(cli_exit(&b), 0);
	ck_assert_str_eq(server_log(&b.p), ""); /* nothing to complain of */
	/* What b printed: only what the server sent it. */
	while (client_line(&b.out, line, sizeof(line), WAIT_MS) == 1)
		ck_assert_msg(line[0] == '*', "unexpected output: %s", line);

	/* -n sends /nick first: bob joins as bob, with no rename. */
	ck_assert(client_wait_for(&a.out, "* bob (127.0.0.1:", WAIT_MS));
	ck_assert_int_eq(client_chat_line(&a.out, line, sizeof(line), WAIT_MS), 1);
	ck_assert_ptr_nonnull(strstr(line, "bob@127.0.0.1:"));
	ck_assert_str_eq(chat_text(line), "hi");
	ck_assert_int_eq(client_chat_line(&a.out, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "bye");
	ck_assert(client_wait_for(&a.out, "left (1 online)", WAIT_MS));

	/* End of a's input: it half-closes, the server closes, exit 0. */
	cli_close_input(&a);
	ck_assert_int_eq(cli_exit(&a), 0);
	cli_free(&a);
	cli_free(&b);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/*
 * In a pipe, -n NICK taken is the end: exit 3 with the reason, and
 * nothing sent under another name (the server logs chat lines at debug).
 * -q keeps "* " lines out of stdout.
 */
START_TEST(test_pipe_mode_nick_taken_bad_nick_and_quiet)
{
	struct server_proc sp;
	struct cli a, b, q;
	char port[16], line[1024];

	server_start(&sp, "--log-level", "debug", NULL);
	port_str(port, sizeof(port), sp.port);
	cli_start(&a, (const char *[]){ "-n", "alice", "127.0.0.1", port, NULL });
	ck_assert(client_wait_for(&a.out, "* you are now alice", WAIT_MS));

	cli_start(&b, (const char *[]){ "-n", "ALICE", "127.0.0.1", port, NULL });
	type_into(b.in, "not under my address\n");
	ck_assert_int_eq(cli_exit(&b), 3);
	ck_assert_ptr_nonnull(strstr(server_log(&b.p), "chat-client: nick ALICE is taken"));
	ck_assert(server_log_wait(&sp, "disconnected (1 online)", WAIT_MS));
	ck_assert_ptr_null(strstr(server_log(&sp), "not under my address"));

	/* -q: chat lines only. */
	cli_start(&q, (const char *[]){ "-q", "127.0.0.1", port, NULL });
	ck_assert(server_log_wait(&sp, "connected (2 online)", WAIT_MS));
	type_into(a.in, "for the quiet one\n");
	ck_assert_int_eq(client_line(&q.out, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "for the quiet one");
	cli_close_input(&q);
	ck_assert_int_eq(cli_exit(&q), 0);
	while (client_line(&q.out, line, sizeof(line), 200) == 1)
		ck_assert_msg(line[0] != '*', "a notice with -q: %s", line);

	cli_close_input(&a);
	ck_assert_int_eq(cli_exit(&a), 0);
	cli_free(&a);
	cli_free(&b);
	cli_free(&q);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

START_TEST(test_quit_ends_the_client_with_0_while_input_is_still_open)
{
	struct server_proc sp;
	struct cli a;

	server_start(&sp, NULL);
	cli_connect(&a, &sp);
	type_into(a.in, "/quit off to lunch\n");
	ck_assert(client_wait_for(&a.out, "* goodbye", WAIT_MS));
	ck_assert_int_eq(cli_exit(&a), 0);
	ck_assert_str_eq(server_log(&a.p), "");
	cli_free(&a);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/* A fake server on 127.0.0.1 port 0: returns the listening socket. */
static int
fake_server(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

START_TEST(test_ipv6_and_verbose_connection_details)
{
	struct server_proc sp;
	struct cli a;
	char port[16], want[64];

	if (!have_ipv6_loopback())
		return; /* nothing to test on a host without IPv6 */
	server_start_at(&sp, "::1", NULL);
	port_str(port, sizeof(port), sp.port);
	cli_start(&a, (const char *[]){ "-v", "::1", port, NULL });
	type_into(a.in, "/quit\n");
	ck_assert(client_wait_for(&a.out, "* goodbye", WAIT_MS));
	ck_assert_int_eq(cli_exit(&a), 0);
	snprintf(want, sizeof(want), "connected to [::1]:%s\n", port);
	ck_assert_msg(strstr(server_log(&a.p), want) != NULL, "stderr: %s", server_log(&a.p));
	cli_free(&a);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

START_TEST(test_connection_refused_is_reported_exit_1)
{
	struct cli a;
	char port[16], want[128];
	int p;

	/* A port that was listened on a moment ago, and is no more. */
	close(fake_server(&p));
	port_str(port, sizeof(port), p);

	cli_start(&a, (const char *[]){ "127.0.0.1", port, NULL });
	ck_assert_int_eq(cli_exit(&a), 1);
	snprintf(want, sizeof(want),
	         "chat-client: cannot connect to 127.0.0.1:%s: Connection refused\n", port);
	ck_assert_str_eq(server_log(&a.p), want);
	cli_free(&a);
}
END_TEST

START_TEST(test_server_shutting_down_under_a_client_exit_1)
{
	struct server_proc sp;
	struct cli a;

	server_start(&sp, NULL);
	cli_connect(&a, &sp);
	ck_assert(server_log_wait(&sp, "connected (1 online)", WAIT_MS));
	ck_assert_int_eq(server_stop(&sp), 0);
	ck_assert(client_wait_for(&a.out, "* server shutting down", WAIT_MS));
	ck_assert_int_eq(cli_exit(&a), 1);
	ck_assert_str_eq(server_log(&a.p), "chat-client: connection closed by server\n");
	cli_free(&a);
}
END_TEST

START_TEST(test_hostile_bytes_from_the_network_are_shown_safe)
{
	struct cli a;
	struct client conn = { .start = 0, .len = 0 };
	char port[16], line[1024];
	int lfd, p;

	lfd = fake_server(&p);
	port_str(port, sizeof(port), p);
	cli_start(&a, (const char *[]){ "-n", "zed", "127.0.0.1", port, NULL });
	conn.fd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(conn.fd, 0);
	ck_assert_int_eq(client_line(&conn, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(line, "/nick zed");

	/* A character split across two reads, escape sequences, a control
	 * character, invalid UTF-8, and a last line without its LF. */
	client_say(&conn, "caf\xc3");
	pause_ms(100);
	client_say(&conn, "\xa9 \x1b[31mred\x1b]0;title\x07 \xff\x01"
	                  "end\n");
	client_say(&conn, "\x1b[2J\x1b[Hlast words");
	close(conn.fd);
	close(lfd);

	ck_assert_int_eq(client_line(&a.out, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(line, "caf\xc3\xa9 red \xef\xbf\xbd"
	                       "end");
	ck_assert_int_eq(client_line(&a.out, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(line, "last words");
	ck_assert_int_eq(cli_exit(&a), 1); /* closed while input was open */
	ck_assert_str_eq(server_log(&a.p), "chat-client: connection closed by server\n");
	cli_free(&a);
}
END_TEST

/* Run chat-client to the end with no input; its exit status, its stdout
 * and stderr (together) in out. */
static int
run_cli(char *out, size_t cap, const char **args)
{
	struct cli a;
	char line[1024];
	int status;
	size_t used;

	cli_start(&a, args);
	cli_close_input(&a);
	status = cli_exit(&a);
	used = strlen(server_log(&a.p));
	if (used >= cap)
		used = cap - 1;
	memcpy(out, server_log(&a.p), used);
	out[used] = '\0';
	while (client_line(&a.out, line, sizeof(line), WAIT_MS) == 1 && used + 1 < cap)
		used += (size_t)snprintf(out + used, cap - used, "%s\n", line);
	cli_free(&a);
	return status;
}

START_TEST(test_bad_arguments_print_the_problem_and_usage_exit_2)
{
	static char out[8192];

	ck_assert_int_eq(run_cli(out, sizeof(out), (const char *[]){ "h", "0", NULL }), 2);
	ck_assert_ptr_nonnull(strstr(out, "chat-client: invalid port '0'"));
	ck_assert_ptr_nonnull(strstr(out, "usage: chat-client"));
	ck_assert_int_eq(run_cli(out, sizeof(out), (const char *[]){ "--frob", NULL }), 2);
	ck_assert_ptr_nonnull(strstr(out, "unknown option --frob"));
	/* A nick the server would refuse, before connecting. */
	ck_assert_int_eq(run_cli(out, sizeof(out), (const char *[]){ "-n", "9lives", NULL }), 2);
	ck_assert_ptr_nonnull(strstr(out, "chat-client: invalid nick '9lives'"));
	ck_assert_int_eq(
	        run_cli(out, sizeof(out), (const char *[]){ "-n", "averyveryverylongnick", NULL }),
	        2);
	ck_assert_int_eq(run_cli(out, sizeof(out), (const char *[]){ "-n", NULL }), 2);
	ck_assert_ptr_nonnull(strstr(out, "needs a value"));
	ck_assert_int_eq(run_cli(out, sizeof(out), (const char *[]){ "a", "1", "b", NULL }), 2);
	ck_assert_ptr_nonnull(strstr(out, "unexpected argument 'b'"));
	ck_assert_int_eq(run_cli(out, sizeof(out), (const char *[]){ "--help", NULL }), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: chat-client"));
	ck_assert_int_eq(run_cli(out, sizeof(out), (const char *[]){ "-V", NULL }), 0);
	ck_assert_ptr_nonnull(strstr(out, PACKAGE_VERSION));
	ck_assert_int_eq(
	        run_cli(out, sizeof(out), (const char *[]){ "no-such-host.invalid", NULL }), 1);
	ck_assert_ptr_nonnull(strstr(out, "cannot connect to no-such-host.invalid:4333: "));
}
END_TEST

/* --- terminal mode ------------------------------------------------------------------ */

/*
 * Just enough of a terminal to check what the client draws: printable
 * UTF-8, CR, LF (scrolling at the bottom), BS, and the CSI sequences
 * K (erase to the end of the row), C/D (right/left), H and J (clear).
 */
enum { ROWS = 24, COLS = 80 };

struct screen {
	char cell[ROWS][COLS][5]; /* one character each, "" for blank */
	int row, col;
	unsigned char seq[32]; /* an escape sequence or character in progress */
	size_t nseq;
};

static void
screen_clear(struct screen *s)
{
	memset(s, 0, sizeof(*s));
}

static void
screen_newline(struct screen *s)
{
	if (s->row < ROWS - 1) {
		s->row++;
		return;
	}
	memmove(s->cell[0], s->cell[1], sizeof(s->cell[0]) * (ROWS - 1));
	memset(s->cell[ROWS - 1], 0, sizeof(s->cell[0]));
}

static void
screen_csi(struct screen *s, char final)
{
	int n = atoi((const char *)s->seq + 2), c;

	switch (final) {
	case 'K':
		for (c = s->col; c < COLS; c++)
			s->cell[s->row][c][0] = '\0';
		break;
	case 'C':
		s->col += n > 0 ? n : 1;
		if (s->col > COLS - 1)
			s->col = COLS - 1;
		break;
	case 'D':
		s->col -= n > 0 ? n : 1;
		if (s->col < 0)
			s->col = 0;
		break;
	case 'H': s->row = s->col = 0; break;
	case 'J': memset(s->cell, 0, sizeof(s->cell)); break;
	default: break;
	}
}

static void
screen_put(struct screen *s, unsigned char b)
{
	if (s->nseq > 0 && s->seq[0] == 0x1b) {
		s->seq[s->nseq++] = b;
		if (s->nseq == 2 && b != '[')
			s->nseq = 0;
		else if (s->nseq > 2 && b >= 0x40 && b <= 0x7e) {
			s->seq[s->nseq] = '\0';
			screen_csi(s, (char)b);
			s->nseq = 0;
		} else if (s->nseq == sizeof(s->seq) - 1)
			s->nseq = 0;
		return;
	}
	if (s->nseq > 0) { /* inside a UTF-8 character */
		s->seq[s->nseq++] = b;
		if ((s->seq[0] >= 0xf0 && s->nseq < 4) || (s->seq[0] >= 0xe0 && s->nseq < 3) ||
		    s->nseq < 2)
			return;
	} else if (b == 0x1b || b >= 0xc0) {
		s->seq[0] = b;
		s->nseq = 1;
		return;
	} else if (b == '\r') {
		s->col = 0;
		return;
	} else if (b == '\n') {
		screen_newline(s);
		return;
	} else if (b == '\b') {
		if (s->col > 0)
			s->col--;
		return;
	} else if (b < 0x20) {
		return;
	} else {
		s->seq[0] = b;
		s->nseq = 1;
	}
	if (s->col >= COLS) { /* autowrap */
		s->col = 0;
		screen_newline(s);
	}
	memcpy(s->cell[s->row][s->col], s->seq, s->nseq);
	s->cell[s->row][s->col][s->nseq] = '\0';
	s->col++;
	s->nseq = 0;
}

/* Row r as text, blank cells at its end dropped (static buffer). */
static const char *
screen_row(const struct screen *s, int r)
{
	static char buf[COLS * 4 + 1];
	size_t len = 0, keep = 0;

	for (int c = 0; c < COLS; c++) {
		const char *cell = s->cell[r][c][0] ? s->cell[r][c] : " ";

		len += (size_t)sprintf(buf + len, "%s", cell);
		if (s->cell[r][c][0] != '\0')
			keep = len; /* a space written is kept, a blank cell is not */
	}
	buf[keep] = '\0';
	return buf;
}

/* The row holding needle, or -1. */
static int
screen_find(const struct screen *s, const char *needle)
{
	for (int r = 0; r < ROWS; r++)
		if (strstr(screen_row(s, r), needle) != NULL)
			return r;
	return -1;
}

/* chat-client on a pseudo-terminal of ROWS x COLS. */
struct ptycli {
	pid_t pid;
	int master, slave; /* the slave is kept open to read its mode */
	struct screen scr;
	struct termios before; /* the mode the client found */
};

static void
pty_start(struct ptycli *t, const char **args)
{
	struct winsize ws = { .ws_row = ROWS, .ws_col = COLS };

	screen_clear(&t->scr);
	ck_assert_int_eq(openpty(&t->master, &t->slave, NULL, NULL, &ws), 0);
	ck_assert_int_eq(tcgetattr(t->slave, &t->before), 0);
	ck_assert(t->before.c_lflag & ICANON);
	t->pid = fork();
	ck_assert_int_ge(t->pid, 0);
	if (t->pid == 0) {
		setsid();
		ioctl(t->slave, TIOCSCTTY, 0);
		dup2(t->slave, STDIN_FILENO);
		dup2(t->slave, STDOUT_FILENO);
		dup2(t->slave, STDERR_FILENO);
		close(t->master);
		close(t->slave);
		cli_exec(args);
	}
}

/* Feed the screen what the client wrote until pred holds; false on
 * timeout. */
static bool
pty_until(struct ptycli *t, bool (*pred)(const struct screen *, const void *), const void *arg)
{
	long end = ms_now() + WAIT_MS;
	unsigned char buf[4096];

	while (!pred(&t->scr, arg)) {
		struct pollfd pfd = { .fd = t->master, .events = POLLIN };
		long left = end - ms_now();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		n = read(t->master, buf, sizeof(buf));
		if (n <= 0)
			return false;
		for (ssize_t i = 0; i < n; i++)
			screen_put(&t->scr, buf[i]);
	}
	return true;
}

/* The cursor's row reads exactly arg. */
static bool
input_row_is(const struct screen *s, const void *arg)
{
	return strcmp(screen_row(s, s->row), arg) == 0;
}

static bool
shows(const struct screen *s, const void *arg)
{
	return screen_find(s, arg) >= 0;
}

/* Wait for the client to end; its wait status. */
static int
pty_wait(struct ptycli *t)
{
	struct server_proc p = { .pid = t->pid };
	char buf[4096];
	int status = server_wait(&p, WAIT_MS);

	ck_assert_msg(status != -1, "chat-client did not exit");
	t->pid = 0;
	/* Take in what it wrote last. */
	fcntl(t->master, F_SETFL, O_NONBLOCK);
	for (ssize_t n; (n = read(t->master, buf, sizeof(buf))) > 0;)
		for (ssize_t i = 0; i < n; i++)
			screen_put(&t->scr, (unsigned char)buf[i]);
	return status;
}

/* The terminal is in the client's raw mode (true) or as it was found. */
static bool
pty_is_raw(const struct ptycli *t)
{
	struct termios now;

	ck_assert_int_eq(tcgetattr(t->slave, &now), 0);
	if ((now.c_lflag & (ICANON | ECHO | ISIG)) == 0)
		return true;
	ck_assert_int_eq(now.c_lflag, t->before.c_lflag);
	ck_assert_int_eq(now.c_iflag, t->before.c_iflag);
	return false;
}

static void
pty_free(struct ptycli *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
	}
	close(t->master);
	close(t->slave);
}

/* chat-client on a terminal, connected to sp, its prompt drawn. */
static void
pty_connect_with(struct ptycli *t, const struct server_proc *sp, const char *opt)
{
	char port[16];

	port_str(port, sizeof(port), sp->port);
	if (opt != NULL)
		pty_start(t, (const char *[]){ opt, "127.0.0.1", port, NULL });
	else
		pty_start(t, (const char *[]){ "127.0.0.1", port, NULL });
	/* The greeting names the room, and the prompt shows it. */
	ck_assert(pty_until(t, input_row_is, "#lobby> "));
}

static void
pty_connect(struct ptycli *t, const struct server_proc *sp)
{
	pty_connect_with(t, sp, NULL);
}

/* It exits with this status, the terminal as it found it. */
static void
pty_expect_exit(struct ptycli *t, int code)
{
	int status = pty_wait(t);

	ck_assert_msg(WIFEXITED(status), "chat-client died of signal %d", WTERMSIG(status));
	ck_assert_int_eq(WEXITSTATUS(status), code);
	ck_assert(!pty_is_raw(t));
}

START_TEST(test_terminal_keeps_the_typed_line_intact_below_messages)
{
	struct server_proc sp;
	struct ptycli t;
	struct client other;
	char line[1024];
	int r;

	server_start(&sp, NULL);
	pty_connect(&t, &sp);
	ck_assert(server_log_wait(&sp, "connected (1 online)", WAIT_MS));
	ck_assert(pty_is_raw(&t));

	/* Half a line typed, with a correction. */
	type_into(t.master, "hello wpr\x7f\x7for");
	ck_assert(pty_until(&t, input_row_is, "#lobby> hello wor"));

	/* Someone else speaks: the message gets its own row, and the half
	 * line is drawn again, whole, below it, the cursor at its end. */
	client_open(&other, sp.port, 0);
	client_say(&other, "good morning\n");
	ck_assert(pty_until(&t, shows, "> good morning"));
	ck_assert(pty_until(&t, input_row_is, "#lobby> hello wor"));
	r = screen_find(&t.scr, "> good morning");
	ck_assert_msg(strstr(screen_row(&t.scr, r), "> hello") == NULL, "garbled: %s",
	              screen_row(&t.scr, r));
	ck_assert_int_eq(t.scr.row, r + 1);
	ck_assert_int_eq(t.scr.col, 17);
	ck_assert_int_ge(screen_find(&t.scr, "joined (2 online)"), 0);

	/* Finish the line: sent whole, and left on the screen. */
	type_into(t.master, "ld\r");
	ck_assert_int_eq(client_chat_line(&other, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "hello world");
	/* Shown as the others' lines are: "[HH:MM] <you> hello world", and
	 * the prompt empty below it. */
	ck_assert(pty_until(&t, shows, "] <you> hello world"));
	ck_assert(pty_until(&t, input_row_is, "#lobby> "));
	ck_assert_int_eq(screen_find(&t.scr, "] <you> hello world"), t.scr.row - 1);

	/* Ctrl-C: out at once, exit 130, the terminal as it was. */
	type_into(t.master, "half\x03");
	pty_expect_exit(&t, 130);
	client_close(&other);
	pty_free(&t);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/* The input row ends with s (the tail of a long line, scrolled). */
static bool
input_row_ends_with(const struct screen *s, const void *arg)
{
	const char *row = screen_row(s, s->row), *want = arg;
	size_t rl = strlen(row), wl = strlen(want);

	return rl >= wl && strcmp(row + rl - wl, want) == 0;
}

/* The input row has the prompt, the tail of the line ending in "efgh"
 * and nothing past column arg: drawn again for a window that wide. */
static bool
input_row_fits(const struct screen *s, const void *arg)
{
	const char *row = screen_row(s, s->row);
	size_t rl = strlen(row);

	return rl < (size_t)atoi(arg) && rl > 8 && strcmp(row + rl - 4, "efgh") == 0 &&
	       s->col == (int)rl;
}

/*
 * A paste of 16 KiB while someone speaks.  The editor used to
 * be cubic in the line's length (each byte redrawn, each redraw rescanning
 * the line from its start): 4,000 characters froze the client for 29 s,
 * and it stopped reading the socket.  Now the line is drawn once per read
 * and in time linear in what is shown: the message arrives during the
 * paste, and the paste ends on the screen at once.
 */
START_TEST(test_terminal_paste_of_a_long_line_is_drawn_at_once)
{
	enum { PASTE = 16384 };
	struct server_proc sp;
	struct ptycli t;
	struct client other;
	char *paste = malloc(PASTE + 1);
	pid_t writer;

	ck_assert_ptr_nonnull(paste);
	for (int i = 0; i < PASTE; i++)
		paste[i] = (char)('a' + i % 26);
	paste[PASTE - 3] = 'E';
	paste[PASTE - 2] = 'N';
	paste[PASTE - 1] = 'D';
	paste[PASTE] = '\0';
	server_start(&sp, NULL);
	pty_connect(&t, &sp);
	client_open(&other, sp.port, 0);
	ck_assert(pty_until(&t, shows, "joined (2 online)"));

	/* A child writes the paste, since the terminal's buffer holds only
	 * part of it: we must go on reading the screen meanwhile. */
	writer = fork();
	ck_assert_int_ge(writer, 0);
	if (writer == 0) {
		size_t off = 0;

		while (off < PASTE) {
			ssize_t n = write(t.master, paste + off, PASTE - off);

			if (n <= 0)
				_exit(1);
			off += (size_t)n;
		}
		_exit(0);
	}
	client_say(&other, "during the paste\n");
	ck_assert(pty_until(&t, shows, "> during the paste"));
	ck_assert(pty_until(&t, input_row_ends_with, "END"));
	ck_assert_int_eq(waitpid(writer, NULL, 0), writer);

	type_into(t.master, "\x03");
	pty_expect_exit(&t, 130);
	client_close(&other);
	pty_free(&t);
	free(paste);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

START_TEST(test_terminal_mode_is_restored_when_killed_or_cut_off)
{
	struct server_proc sp;
	struct ptycli t;
	int status;

	server_start(&sp, NULL);

	/* SIGTERM: the client dies of it, the terminal restored. */
	pty_connect(&t, &sp);
	ck_assert(pty_is_raw(&t));
	kill(t.pid, SIGTERM);
	status = pty_wait(&t);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	ck_assert(!pty_is_raw(&t));
	pty_free(&t);

	/* The server goes away while a line is half typed (--no-reconnect:
	 * see test_terminal_reconnects for the default). */
	pty_connect_with(&t, &sp, "--no-reconnect");
	type_into(t.master, "half a");
	ck_assert(pty_until(&t, input_row_is, "#lobby> half a"));
	ck_assert_int_eq(server_stop(&sp), 0);
	pty_expect_exit(&t, 1);
	ck_assert_int_ge(screen_find(&t.scr, "* server shutting down"), 0);
	ck_assert_int_ge(screen_find(&t.scr, "chat-client: connection closed by server"), 0);
	pty_free(&t);
}
END_TEST

START_TEST(test_terminal_ctrl_d_on_an_empty_line_leaves_with_0)
{
	struct server_proc sp;
	struct ptycli t;

	server_start(&sp, NULL);
	pty_connect(&t, &sp);
	type_into(t.master, "\x04");
	pty_expect_exit(&t, 0);
	pty_free(&t);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/* The prompt names the room once the client has moved. */
START_TEST(test_terminal_prompt_shows_the_room)
{
	struct server_proc sp;
	struct ptycli t;

	server_start(&sp, NULL);
	pty_connect(&t, &sp);
	type_into(t.master, "/join dev\r");
	ck_assert(pty_until(&t, shows, "* you are now in #dev (1 here)"));
	ck_assert(pty_until(&t, input_row_is, "#dev> "));
	type_into(t.master, "hi");
	ck_assert(pty_until(&t, input_row_is, "#dev> hi"));
	type_into(t.master, "\x03");
	pty_expect_exit(&t, 130);
	pty_free(&t);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/* chat-client -n NICK (and any more options) on a terminal, connected. */
static void
pty_connect_as(struct ptycli *t, const struct server_proc *sp, const char *nick,
               const char *want_prompt)
{
	char port[16];

	port_str(port, sizeof(port), sp->port);
	pty_start(t, (const char *[]){ "-n", nick, "127.0.0.1", port, NULL });
	ck_assert_msg(pty_until(t, input_row_is, want_prompt), "prompt: %s",
	              screen_row(&t->scr, t->scr.row));
}

/* The screen row holding needle, whole (static buffer), or "". */
static const char *
row_with(const struct ptycli *t, const char *needle)
{
	int r = screen_find(&t->scr, needle);

	return r >= 0 ? screen_row(&t->scr, r) : "";
}

/*
 * On a terminal, lines are shown for people: "[HH:MM] <nick> text",
 * actions, private messages marked, our own lines alike; the prompt has
 * our nick and room; Tab completes a nick seen; /r answers the last
 * private message.
 */
START_TEST(test_terminal_shows_lines_for_people_and_completes_nicks)
{
	struct server_proc sp;
	struct ptycli t;
	struct client bob;
	const char *row;

	server_start(&sp, NULL);
	client_open(&bob, sp.port, 0);
	client_say(&bob, "/nick bob\n");
	ck_assert(client_wait_for(&bob, "you are now bob", WAIT_MS));
	pty_connect_as(&t, &sp, "alice", "alice #lobby> ");

	client_say(&bob, "hi alice\n/me waves\n/msg alice psst\n");
	ck_assert(pty_until(&t, shows, "<bob> hi alice"));
	row = row_with(&t, "<bob> hi alice");
	ck_assert_msg(row[0] == '[' && row[3] == ':' && row[6] == ']', "row: %s", row);
	ck_assert(pty_until(&t, shows, "] * bob waves"));
	ck_assert(pty_until(&t, shows, "] [private] <bob> psst"));

	/* Tab: "b" becomes "bob: " at the start of the line. */
	type_into(t.master, "b\t");
	ck_assert(pty_until(&t, input_row_is, "alice #lobby> bob: "));
	type_into(t.master, "welcome\r");
	ck_assert(client_wait_for(&bob, "| bob: welcome", WAIT_MS));
	ck_assert(pty_until(&t, shows, "] <alice> bob: welcome"));

	/* /r: to whoever wrote privately last. */
	type_into(t.master, "/r thanks\r");
	ck_assert(client_wait_for(&bob, "(private) | ", WAIT_MS));
	ck_assert(pty_until(&t, shows, "* sent to bob"));

	type_into(t.master, "\x03");
	pty_expect_exit(&t, 130);
	client_close(&bob);
	pty_free(&t);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/* -n with the nick taken: on a terminal, NICK_ instead, said; the join
 * is under it. */
START_TEST(test_terminal_falls_back_to_nick_underscore)
{
	struct server_proc sp;
	struct ptycli t;
	struct client first;

	server_start(&sp, NULL);
	client_open(&first, sp.port, 0);
	client_say(&first, "/nick alice\n");
	ck_assert(client_wait_for(&first, "you are now alice", WAIT_MS));
	pty_connect_as(&t, &sp, "alice", "alice_ #lobby> ");
	ck_assert(pty_until(&t, shows, "alice is taken; trying alice_"));
	/* Joined under its address (the first line's nick was refused),
	 * then renamed. */
	ck_assert(client_wait_for(&first, "is now alice_", WAIT_MS));
	type_into(t.master, "\x03");
	pty_expect_exit(&t, 130);
	client_close(&first);
	pty_free(&t);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/*
 * The server goes away: the client says so, keeps the line being typed,
 * and connects again (after 1 s) to the server back on its port, taking
 * its nick and room again.
 */
START_TEST(test_terminal_reconnects_with_nick_and_room)
{
	struct server_proc sp, again;
	struct ptycli t;
	struct client w;
	char port[16];

	server_start(&sp, NULL);
	pty_connect_as(&t, &sp, "alice", "alice #lobby> ");
	type_into(t.master, "/join dev\r");
	ck_assert(pty_until(&t, input_row_is, "alice #dev> "));
	type_into(t.master, "draft");
	ck_assert(pty_until(&t, input_row_is, "alice #dev> draft"));
	ck_assert_int_eq(server_stop(&sp), 0);
	ck_assert(pty_until(&t, shows, "connection lost"));
	ck_assert(pty_until(&t, input_row_is, "alice #dev> draft"));

	port_str(port, sizeof(port), sp.port);
	server_start(&again, "--port", port, NULL);
	ck_assert(pty_until(&t, shows, "connected again"));
	ck_assert(pty_until(&t, shows, "you are now in #dev"));
	ck_assert(pty_until(&t, input_row_is, "alice #dev> draft"));
	client_open(&w, again.port, 0);
	client_say(&w, "/join dev\n");
	ck_assert(client_wait_for(&w, "alice@127.0.0.1:", WAIT_MS)); /* /who on entry */
	type_into(t.master, "\r");
	ck_assert(client_wait_for(&w, "| draft", WAIT_MS));
	type_into(t.master, "\x03");
	pty_expect_exit(&t, 130);
	client_close(&w);
	pty_free(&t);
	ck_assert_int_eq(server_stop(&again), 0);
}
END_TEST

/* A narrower window: the input line is drawn again at the new width, its
 * tail and the cursor in view. */
START_TEST(test_terminal_redraws_on_resize)
{
	struct server_proc sp;
	struct ptycli t;
	struct winsize ws = { .ws_row = ROWS, .ws_col = 30 };
	char typed[61];

	server_start(&sp, NULL);
	pty_connect(&t, &sp);
	for (int i = 0; i < 60; i++)
		typed[i] = (char)('a' + i % 26);
	typed[60] = '\0';
	type_into(t.master, typed);
	ck_assert(pty_until(&t, input_row_ends_with, "efgh"));
	ck_assert_int_eq(ioctl(t.master, TIOCSWINSZ, &ws), 0);
	ck_assert_msg(pty_until(&t, input_row_fits, "30"), "input row: '%s', cursor at %d",
	              screen_row(&t.scr, t.scr.row), t.scr.col);
	ck_assert_msg(strstr(screen_row(&t.scr, t.scr.row), "#lobby> ") == screen_row(&t.scr, t.scr.row),
	              "row: %s", screen_row(&t.scr, t.scr.row));
	type_into(t.master, "\x03");
	pty_expect_exit(&t, 130);
	pty_free(&t);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/*
 * Ctrl-Z under a job-control shell: the client gives the terminal back in
 * the mode it found it, stops, and once continued takes raw mode again and
 * redraws the line.  The shell is played by a child of the session leader
 * (a stop in an orphaned process group would be ignored by the kernel):
 * it runs the client in a process group of its own in the foreground,
 * and on the stop writes what it saw to the terminal, then continues it.
 */
START_TEST(test_terminal_ctrl_z_suspends_and_resumes)
{
	struct server_proc sp;
	struct ptycli t;
	struct winsize ws = { .ws_row = ROWS, .ws_col = COLS };
	char port[16];

	server_start(&sp, NULL);
	port_str(port, sizeof(port), sp.port);
	screen_clear(&t.scr);
	ck_assert_int_eq(openpty(&t.master, &t.slave, NULL, NULL, &ws), 0);
	ck_assert_int_eq(tcgetattr(t.slave, &t.before), 0);
	t.pid = fork();
	ck_assert_int_ge(t.pid, 0);
	if (t.pid == 0) {
		pid_t job;
		int status;

		setsid();
		ioctl(t.slave, TIOCSCTTY, 0);
		signal(SIGTTOU, SIG_IGN); /* the "shell" takes the terminal back */
		if ((job = fork()) == 0) {
			setpgid(0, 0);
			tcsetpgrp(t.slave, getpid());
			dup2(t.slave, STDIN_FILENO);
			dup2(t.slave, STDOUT_FILENO);
			dup2(t.slave, STDERR_FILENO);
			close(t.master);
			close(t.slave);
			signal(SIGTTOU, SIG_DFL);
			cli_exec((const char *[]){ "127.0.0.1", port, NULL });
		}
		setpgid(job, job);
		while (waitpid(job, &status, WUNTRACED) == job) {
			struct termios mode;

			if (!WIFSTOPPED(status))
				_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 100);
			tcsetpgrp(t.slave, getpgrp());
			tcgetattr(t.slave, &mode);
			dprintf(t.slave, "[stopped %s]\r\n", (mode.c_lflag & ICANON) ? "cooked" : "raw");
			tcsetpgrp(t.slave, job);
			kill(-job, SIGCONT);
		}
		_exit(101);
	}
	ck_assert(pty_until(&t, input_row_is, "#lobby> "));
	type_into(t.master, "half");
	ck_assert(pty_until(&t, input_row_is, "#lobby> half"));
	type_into(t.master, "\x1a");
	ck_assert(pty_until(&t, shows, "[stopped cooked]"));
	ck_assert(pty_until(&t, input_row_is, "#lobby> half"));
	ck_assert(pty_is_raw(&t));
	type_into(t.master, " more");
	ck_assert(pty_until(&t, input_row_is, "#lobby> half more"));
	type_into(t.master, "\x03");
	pty_expect_exit(&t, 130);
	pty_free(&t);
	ck_assert_int_eq(server_stop(&sp), 0);
}
END_TEST

/* --- TLS ------------------------------------------------------------------------------ */

#ifdef HAVE_OPENSSL
/* A server with a TLS port whose certificate (for cn only, or also for
 * localhost and 127.0.0.1) is dir/server.pem; its TLS port in tport. */
static void
tls_server(struct server_proc *sp, char *dir, size_t dirlen, const char *cn, bool only_cn,
           char *tport, size_t plen)
{
	char cert[128], key[128];

	cert_dir(dir, dirlen);
	cert_make(dir, "server", cn, only_cn);
	server_start(sp, "--tls-port", "0", "--tls-cert",
	             cert_path(cert, sizeof(cert), dir, "server", "pem"), "--tls-key",
	             cert_path(key, sizeof(key), dir, "server", "key"), NULL);
	port_str(tport, plen, server_tls_port(sp));
}

START_TEST(test_tls_client_verifies_the_server_and_chats)
{
	struct server_proc sp;
	struct cli a;
	struct client p;
	char dir[64], ca[128], tport[16], line[1024];

	tls_server(&sp, dir, sizeof(dir), "localhost", false, tport, sizeof(tport));
	client_open(&p, sp.port, 0);
	ck_assert(server_log_wait(&sp, "connected (1 online)", WAIT_MS));

	/* printf 'hi over tls\n' | chat-client --tls --ca CERT -n bob localhost PORT */
	cli_start(&a, (const char *[]){ "-v", "--tls", "--ca",
	                                cert_path(ca, sizeof(ca), dir, "server", "pem"), "-n",
	                                "bob", "localhost", tport, NULL });
	ck_assert(client_wait_for(&p, "* bob (127.0.0.1:", WAIT_MS));
	type_into(a.in, "hi over tls\n");
	ck_assert_int_eq(client_chat_line(&p, line, sizeof(line), WAIT_MS), 1);
	ck_assert_ptr_nonnull(strstr(line, "bob@127.0.0.1:"));
	ck_assert_str_eq(chat_text(line), "hi over tls");
	client_say(&p, "welcome, bob\n");
	ck_assert_int_eq(client_chat_line(&a.out, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(chat_text(line), "welcome, bob");

	/* End of input: close_notify and FIN, the server closes, exit 0. */
	cli_close_input(&a);
	ck_assert_int_eq(cli_exit(&a), 0);
	ck_assert_msg(strstr(server_log(&a.p), "certificate verified") != NULL, "stderr: %s",
	              server_log(&a.p));
	ck_assert(client_wait_for(&p, "left (1 online)", WAIT_MS));
	cli_free(&a);
	client_close(&p);
	ck_assert_int_eq(server_stop(&sp), 0);
	cert_dir_remove(dir);
}
END_TEST

/* Run chat-client with args and no input; its exit status, stderr in err. */
static int
cli_run(const char **args, char *err, size_t len)
{
	struct cli a;
	int status;

	cli_start(&a, args);
	cli_close_input(&a);
	status = cli_exit(&a);
	strncpy(err, server_log(&a.p), len - 1);
	err[len - 1] = '\0';
	cli_free(&a);
	return status;
}

START_TEST(test_tls_client_refuses_a_server_it_cannot_verify)
{
	struct server_proc sp, other;
	char dir[64], odir[64], tport[16], otport[16], ca[128], err[2048];

	tls_server(&sp, dir, sizeof(dir), "localhost", false, tport, sizeof(tport));

	/* Self-signed, and nothing says to trust it: exit 1, why, and what
	 * to do. */
	ck_assert_int_eq(cli_run((const char *[]){ "--tls", "localhost", tport, NULL }, err,
	                         sizeof(err)),
	                 1);
	ck_assert_msg(strstr(err, "cannot verify the certificate of localhost: self-signed "
	                          "certificate") != NULL &&
	                      strstr(err, "--ca FILE") != NULL,
	              "stderr: %s", err);

	/* Trusted, but for another name than the one connected to. */
	tls_server(&other, odir, sizeof(odir), "other.example", true, otport, sizeof(otport));
	ck_assert_int_eq(cli_run((const char *[]){ "--tls", "--ca",
	                                           cert_path(ca, sizeof(ca), odir, "server", "pem"),
	                                           "localhost", otport, NULL },
	                         err, sizeof(err)),
	                 1);
	ck_assert_msg(strstr(err, "hostname mismatch") != NULL, "stderr: %s", err);

	/* --insecure: explicit, warned, and then it works. */
	{
		struct cli a;

		cli_start(&a, (const char *[]){ "--tls", "--insecure", "localhost", tport, NULL });
		ck_assert(server_log_wait(&sp, "connected over TLS", WAIT_MS));
		cli_close_input(&a);
		ck_assert_int_eq(cli_exit(&a), 0);
		ck_assert_msg(strstr(server_log(&a.p), "warning: --insecure") != NULL, "stderr: %s",
		              server_log(&a.p));
		cli_free(&a);
	}

	/* Options that need --tls, and a --ca that does not load. */
	ck_assert_int_eq(cli_run((const char *[]){ "--ca", "x.pem", "localhost", NULL }, err,
	                         sizeof(err)),
	                 2);
	ck_assert_ptr_nonnull(strstr(err, "--ca needs --tls"));
	ck_assert_int_eq(cli_run((const char *[]){ "--tls", "--ca", "/nonexistent/ca.pem",
	                                           "localhost", tport, NULL },
	                         err, sizeof(err)),
	                 1);
	ck_assert_msg(strstr(err, "cannot load --ca /nonexistent/ca.pem") != NULL, "stderr: %s",
	              err);

	ck_assert_int_eq(server_stop(&other), 0);
	ck_assert_int_eq(server_stop(&sp), 0);
	cert_dir_remove(dir);
	cert_dir_remove(odir);
}
END_TEST
#endif /* HAVE_OPENSSL */

static Suite *
client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc;

	tc = tcase_create("pipe");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pipe_mode_sends_lines_and_prints_what_arrives);
	tcase_add_test(tc, test_pipe_mode_nick_taken_bad_nick_and_quiet);
	tcase_add_test(tc, test_quit_ends_the_client_with_0_while_input_is_still_open);
	tcase_add_test(tc, test_connection_refused_is_reported_exit_1);
	tcase_add_test(tc, test_ipv6_and_verbose_connection_details);
	tcase_add_test(tc, test_server_shutting_down_under_a_client_exit_1);
	tcase_add_test(tc, test_hostile_bytes_from_the_network_are_shown_safe);
	tcase_add_test(tc, test_bad_arguments_print_the_problem_and_usage_exit_2);
#ifdef HAVE_OPENSSL
	if (have_openssl_cmd()) {
		tcase_add_test(tc, test_tls_client_verifies_the_server_and_chats);
		tcase_add_test(tc, test_tls_client_refuses_a_server_it_cannot_verify);
	} else {
		printf("TLS tests skipped: the openssl command is not installed\n");
	}
#else
	printf("TLS tests skipped: this build has no OpenSSL\n");
#endif
	suite_add_tcase(s, tc);

	tc = tcase_create("terminal");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_terminal_keeps_the_typed_line_intact_below_messages);
	tcase_add_test(tc, test_terminal_paste_of_a_long_line_is_drawn_at_once);
	tcase_add_test(tc, test_terminal_mode_is_restored_when_killed_or_cut_off);
	tcase_add_test(tc, test_terminal_ctrl_d_on_an_empty_line_leaves_with_0);
	tcase_add_test(tc, test_terminal_prompt_shows_the_room);
	tcase_add_test(tc, test_terminal_shows_lines_for_people_and_completes_nicks);
	tcase_add_test(tc, test_terminal_falls_back_to_nick_underscore);
	tcase_add_test(tc, test_terminal_reconnects_with_nick_and_room);
	tcase_add_test(tc, test_terminal_redraws_on_resize);
	tcase_add_test(tc, test_terminal_ctrl_z_suspends_and_resumes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(client_suite());
}
