/*
 * End-to-end helpers: start the real chat-server on 127.0.0.1 port 0, read
 * the port from its log, talk to it with plain sockets, stop it.
 *
 * The server is started with PR_SET_PDEATHSIG, so that it dies with the
 * test process even when a failed assertion or Check's timeout ends the
 * test before its teardown: no test ever leaves a server behind.
 */
#ifndef CHAT_TEST_H
#define CHAT_TEST_H

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Generous: sanitizer builds are slow, and these only bound a failure. */
#define WAIT_MS 20000

struct server_proc {
	pid_t pid;
	int port;
	int logfd; /* the server's stderr: an unlinked file, read with pread */
};

/* If set, the next server starts with this hard and soft RLIMIT_NOFILE. */
static rlim_t server_nofile;

/*
 * If set, the next server gets these listening sockets the way systemd
 * passes them (descriptors 3 on, LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES),
 * and NOTIFY_SOCKET if server_notify is set.  The test owns the sockets.
 */
static int server_pass_fds[4];
static int server_npass;
static const char *server_pass_names;
static const char *server_notify;
static pid_t server_pass_pid; /* LISTEN_PID to give; 0: the server's own */

/* A listening TCP socket on 127.0.0.1 with a port from the kernel (in
 * *port): what systemd would pass to the server. */
static inline int
listen_loopback(int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* The value of the Prometheus sample named exactly name (labels
 * included) in a scrape's text, or -1 if there is none. */
static inline double
metric_sample(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; (p = strstr(p, name)) != NULL; p += n)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return atof(p + n + 1);
	return -1;
}

/* In the child: what server_pass_* and server_notify ask for. */
static inline void
server_pass_in_child(void)
{
	char num[32];
	int high[4];

	/* Out of the way first, so that no dup2 lands on one still to move. */
	for (int i = 0; i < server_npass; i++)
		high[i] = fcntl(server_pass_fds[i], F_DUPFD, 100);
	for (int i = 0; i < server_npass; i++)
		dup2(high[i], 3 + i); /* dup2 clears close-on-exec */
	if (server_npass > 0) {
		snprintf(num, sizeof(num), "%d",
		         (int)(server_pass_pid != 0 ? server_pass_pid : getpid()));
		setenv("LISTEN_PID", num, 1);
		snprintf(num, sizeof(num), "%d", server_npass);
		setenv("LISTEN_FDS", num, 1);
		if (server_pass_names != NULL)
			setenv("LISTEN_FDNAMES", server_pass_names, 1);
	}
	if (server_notify != NULL)
		setenv("NOTIFY_SOCKET", server_notify, 1);
}

static inline long
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static inline void
pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The whole log so far, in a static buffer. */
static inline const char *
server_log(const struct server_proc *sp)
{
	static char buf[1 << 20];
	ssize_t n = pread(sp->logfd, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* The last bytes of the log (a failure's explanation is at the end, and a
 * debug log can pass server_log's buffer). */
static inline const char *
server_log_tail(const struct server_proc *sp)
{
	static char buf[2048]; /* Check's messages must stay under 4 KiB */
	struct stat st;
	off_t off = 0;
	ssize_t n;

	if (fstat(sp->logfd, &st) == 0 && st.st_size > (off_t)sizeof(buf) - 1)
		off = st.st_size - (off_t)sizeof(buf) + 1;
	n = pread(sp->logfd, buf, sizeof(buf) - 1, off);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Wait until the log contains needle; false on timeout. */
static inline bool
server_log_wait(const struct server_proc *sp, const char *needle, long ms)
{
	long end = ms_now() + ms;

	while (ms_now() < end) {
		if (strstr(server_log(sp), needle) != NULL)
			return true;
		pause_ms(10);
	}
	return false;
}

/* Start chat-server --port 0 --bind ADDR with extra arguments, and wait
 * for its "listening on" line. */
static inline void
server_startv(struct server_proc *sp, const char *bind, va_list ap)
{
	const char *dir = getenv("top_builddir");
	char path[4096], logpath[64], want[64], *argv[32];
	const char *s, *p;
	int argc = 0;

	snprintf(path, sizeof(path), "%s/src/chat-server", dir ? dir : ".");
	snprintf(logpath, sizeof(logpath), "/tmp/chat-test-%d.log", (int)getpid());
	argv[argc++] = path;
	argv[argc++] = "--port";
	argv[argc++] = "0";
	argv[argc++] = "--bind";
	argv[argc++] = (char *)bind;
	while ((s = va_arg(ap, const char *)) != NULL && argc < 30)
		argv[argc++] = (char *)s;
	argv[argc] = NULL;

	sp->logfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600);
	ck_assert_int_ge(sp->logfd, 0);
	unlink(logpath); /* gone with the last descriptor, whatever happens */
	sp->pid = fork();
	ck_assert_int_ge(sp->pid, 0);
	if (sp->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(sp->logfd, STDERR_FILENO);
		if (server_nofile > 0) {
			struct rlimit rl = { server_nofile, server_nofile };

			setrlimit(RLIMIT_NOFILE, &rl);
		}
		server_pass_in_child();
		execv(path, argv);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	snprintf(want, sizeof(want),
	         strchr(bind, ':') ? "listening on [%s]:" : "listening on %s:", bind);
	ck_assert_msg(server_log_wait(sp, want, WAIT_MS), "chat-server did not start: %s",
	              server_log(sp));
	p = strstr(server_log(sp), want);
	sp->port = atoi(p + strlen(want));
	ck_assert_int_gt(sp->port, 0);
}

/* On 127.0.0.1, with extra arguments (a NULL-terminated list). */
static inline void
server_start(struct server_proc *sp, ...)
{
	va_list ap;

	va_start(ap, sp);
	server_startv(sp, "127.0.0.1", ap);
	va_end(ap);
}

/* On another loopback address ("::1"). */
static inline void
server_start_at(struct server_proc *sp, const char *bind, ...)
{
	va_list ap;

	va_start(ap, bind);
	server_startv(sp, bind, ap);
	va_end(ap);
}

/* The TLS port of a server started with --tls-port, from its log
 * ("listening on 127.0.0.1:P (tls)"). */
static inline int
server_tls_port(const struct server_proc *sp)
{
	const char *p = server_log(sp), *q;
	int port = 0;

	while ((q = strstr(p, "listening on 127.0.0.1:")) != NULL) {
		int n = 0;

		if (sscanf(q, "listening on 127.0.0.1:%d (tls)%n", &port, &n) == 1 && n > 0)
			return port;
		p = q + 1;
	}
	ck_abort_msg("no TLS listener in the log: %s", server_log(sp));
	return 0;
}

/* Wait for the server to exit (up to ms); returns its wait status, or -1
 * after killing it when it did not exit in time. */
static inline int
server_wait(struct server_proc *sp, long ms)
{
	long end = ms_now() + ms;
	int status;

	while (ms_now() < end) {
		if (waitpid(sp->pid, &status, WNOHANG) == sp->pid) {
			sp->pid = 0;
			return status;
		}
		pause_ms(10);
	}
	kill(sp->pid, SIGKILL);
	waitpid(sp->pid, &status, 0);
	sp->pid = 0;
	return -1;
}

/* Run chat-server with args (NULL-terminated) to its end (a run that
 * must not start); returns its exit status, its stdout and stderr in out. */
static inline int
server_run_args(char *out, size_t cap, const char *const *args)
{
	struct server_proc sp;
	const char *dir = getenv("top_builddir");
	char path[4096], *argv[24];
	int argc = 0, status;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/src/chat-server", dir ? dir : ".");
	argv[argc++] = path;
	while (*args != NULL && argc < 23)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	sp.logfd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	ck_assert_int_ge(sp.logfd, 0);
	sp.pid = fork();
	ck_assert_int_ge(sp.pid, 0);
	if (sp.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(sp.logfd, STDERR_FILENO);
		dup2(sp.logfd, STDOUT_FILENO);
		server_pass_in_child();
		execv(path, argv);
		_exit(127);
	}
	status = server_wait(&sp, WAIT_MS);
	n = pread(sp.logfd, out, cap - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(sp.logfd);
	ck_assert_msg(WIFEXITED(status), "chat-server did not exit by itself");
	return WEXITSTATUS(status);
}

/* SIGTERM and wait; returns the wait status (or -1, killed). */
static inline int
server_stop(struct server_proc *sp)
{
	int status;

	if (sp->pid <= 0)
		return 0;
	kill(sp->pid, SIGTERM);
	status = server_wait(sp, WAIT_MS);
	return status;
}

/* SIGTERM, and the server must exit 0; if not, the end of its log says why
 * (a sanitizer's report, say). */
static inline void
server_stop_ok(struct server_proc *sp)
{
	int status = server_stop(sp);

	ck_assert_msg(status == 0, "chat-server exit status %d; its log ends:\n%s", status,
	              server_log_tail(sp));
}

/* Open descriptors of the server process. */
static inline int
server_fd_count(const struct server_proc *sp)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)sp->pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The server's resident memory in KiB, or -1. */
static inline long
server_rss_kb(const struct server_proc *sp)
{
	char path[64], buf[256];
	long kb = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)sp->pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), fp) != NULL)
		if (sscanf(buf, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(fp);
	return kb;
}

/* CPU seconds (user + system) the server has used so far. */
static inline double
server_cpu_seconds(const struct server_proc *sp)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)sp->pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	p = fgets(buf, sizeof(buf), fp);
	fclose(fp);
	/* Fields 14 and 15, counted after the ")" that ends the name. */
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A client: a socket and what it has read but not yet consumed, which is
 * buf[start..len).  tls is set for a TLS client (tls_test.h), whose bytes
 * go through client_tls_ops. */
struct client {
	int fd;
	void *tls;
	char buf[1 << 16];
	size_t start, len;
};

/* How a TLS client reads, writes and closes: set by tls_test.h (the
 * other suites do not link OpenSSL).  read and write block, as the plain
 * socket calls they replace do; read may return -1 with EAGAIN when a
 * record is not whole yet. */
struct client_tls_ops {
	ssize_t (*read)(void *tls, void *buf, size_t len);
	ssize_t (*write)(void *tls, const void *buf, size_t len);
	void (*close)(void *tls);
};
static const struct client_tls_ops *client_tls_ops;

static inline ssize_t
client_recv(struct client *c, void *buf, size_t len)
{
	return c->tls != NULL ? client_tls_ops->read(c->tls, buf, len) : read(c->fd, buf, len);
}

static inline void
raise_nofile_for_test(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Connect (blocking socket); rcvbuf > 0 sets SO_RCVBUF first. */
static inline void
client_open(struct client *c, int port, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->start = c->len = 0;
	c->tls = NULL;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(c->fd, 0);
	if (rcvbuf > 0)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ck_assert_msg(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
	              strerror(errno));
}

/* True if this host can listen on ::1 (no IPv6 in some containers). */
static inline bool
have_ipv6_loopback(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
	int fd = socket(AF_INET6, SOCK_STREAM, 0), ok;

	if (fd < 0)
		return false;
	sa.sin6_addr = in6addr_loopback;
	ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Connect over IPv6 loopback; false if this host has no ::1. */
static inline bool
client_open6(struct client *c, int port)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };

	sa.sin6_addr = in6addr_loopback;
	c->start = c->len = 0;
	c->tls = NULL;
	c->fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (c->fd < 0)
		return false;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(c->fd);
		c->fd = -1;
		return false;
	}
	return true;
}

static inline void
client_close(struct client *c)
{
	if (c->tls != NULL)
		client_tls_ops->close(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static inline void
client_send(struct client *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = c->tls != NULL ? client_tls_ops->write(c->tls, data, len)
		                           : send(c->fd, data, len, MSG_NOSIGNAL);

		ck_assert_msg(n > 0 || errno == EINTR, "send: %s", strerror(errno));
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		}
	}
}

static inline void
client_say(struct client *c, const char *s)
{
	client_send(c, s, strlen(s));
}

/*
 * Next line (without CRLF) into line, from a socket or a pipe; 1 on
 * success, 0 at end of stream, -1 on timeout.
 */
static inline int
client_line(struct client *c, char *line, size_t cap, long ms)
{
	long end = ms_now() + ms;

	for (;;) {
		char *p = c->buf + c->start;
		char *lf = memchr(p, '\n', c->len - c->start);

		if (lf != NULL) {
			size_t n = (size_t)(lf - p), k = n;

			if (k > 0 && p[k - 1] == '\r')
				k--;
			if (k >= cap)
				k = cap - 1;
			memcpy(line, p, k);
			line[k] = '\0';
			c->start += n + 1;
			return 1;
		}
		/* Compact only when we must read more. */
		memmove(c->buf, p, c->len - c->start);
		c->len -= c->start;
		c->start = 0;
		ck_assert_msg(c->len < sizeof(c->buf), "line too long");

		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		long left = end - ms_now();

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return -1;
		ssize_t n = client_recv(c, c->buf + c->len, sizeof(c->buf) - c->len);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 0;
		ck_assert_msg(n > 0 || errno == EINTR || errno == EAGAIN, "read: %s",
		              strerror(errno));
		if (n > 0)
			c->len += (size_t)n;
	}
}

/* The "127.0.0.1:PORT" the server sees for a client socket. */
static inline void
client_addr(const struct client *c, char *buf, size_t len)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	ck_assert_int_eq(getsockname(c->fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(buf, len, "127.0.0.1:%u", ntohs(sa.sin_port));
}

/* Expect the next line of c to be exactly want. */
static inline void
expect_line(struct client *c, const char *want)
{
	char line[1024];

	ck_assert_int_eq(client_line(c, line, sizeof(line), WAIT_MS), 1);
	ck_assert_str_eq(line, want);
}

/* Write text to the file at path, replacing it. */
static inline void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fputs(text, fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
}

/* The most a socket's send buffer may grow to (net.ipv4.tcp_wmem's last
 * field): what a client that never reads can hide in the kernel before the
 * server's own queue starts to grow. */
static inline long
tcp_wmem_max(void)
{
	long lo, def, max = 4L << 20;
	FILE *fp = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");

	if (fp != NULL) {
		if (fscanf(fp, "%ld %ld %ld", &lo, &def, &max) != 3)
			max = 4L << 20;
		fclose(fp);
	}
	return max;
}

/* Next line that is not a server notice ("* ..."). */
static inline int
client_chat_line(struct client *c, char *line, size_t cap, long ms)
{
	int rc;

	while ((rc = client_line(c, line, cap, ms)) == 1 && line[0] == '*')
		;
	return rc;
}

/* The text of a relayed line: what follows "<addr> | <time> | ". */
static inline const char *
chat_text(const char *line)
{
	const char *p = strstr(line, " | ");

	if (p != NULL)
		p = strstr(p + 3, " | ");
	return p ? p + 3 : NULL;
}

/* Read and discard until end of stream; false on timeout. */
static inline bool
client_drain_to_eof(struct client *c, long ms)
{
	long end = ms_now() + ms;
	char buf[65536];

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		long left = end - ms_now();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		n = client_recv(c, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return false;
	}
}

/* Read until a line contains needle; true if found. */
static inline bool client_wait_for(struct client *c, const char *needle, long ms);

/* Read past the greeting every newcomer gets (and the MOTD, if any, up
 * to the line after the greeting's last), so that what a test reads next
 * is what came after. */
static inline void
client_skip_greeting(struct client *c)
{
	ck_assert_msg(client_wait_for(c, "* /nick NAME to choose your name", 5000),
	              "no greeting");
}

/* Read until a line contains needle; true if found. */
static inline bool
client_wait_for(struct client *c, const char *needle, long ms)
{
	char line[8192];

	while (client_line(c, line, sizeof(line), ms) == 1)
		if (strstr(line, needle) != NULL)
			return true;
	return false;
}

#endif /* CHAT_TEST_H */
