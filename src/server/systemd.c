/*
 * systemd's socket activation and readiness protocols (systemd.h), from
 * their documentation: sd_listen_fds(3) and sd_notify(3).
 */
#define _GNU_SOURCE /* SOCK_CLOEXEC, SOCK_NONBLOCK, MSG_NOSIGNAL */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"
#include "systemd.h"

/* A decimal number, whole, in [0, max]; -1 otherwise. */
static long
env_number(const char *s, long max)
{
	char *end;
	long v;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	return v;
}

/* The i-th colon-separated name of names (NULL or too few: ""). */
static void
fd_name(const char *names, size_t i, char *out, size_t len)
{
	const char *p = names, *colon;
	size_t n;

	out[0] = '\0';
	if (p == NULL)
		return;
	for (; i > 0; i--) {
		if ((p = strchr(p, ':')) == NULL)
			return;
		p++;
	}
	colon = strchr(p, ':');
	n = colon != NULL ? (size_t)(colon - p) : strlen(p);
	if (n >= len)
		n = len - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

/* fd must be a listening stream socket: anything else is a unit file
 * mistake (Accept=yes, a datagram socket) that would fail obscurely later. */
static int
check_listener(int fd, char *err, size_t len)
{
	struct stat st;
	int type = 0, listening = 0;
	socklen_t sl = sizeof(type);

	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		snprintf(err, len, "descriptor %d passed by systemd is not a socket", fd);
		return -ENOTSOCK;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) != 0 || type != SOCK_STREAM) {
		snprintf(err, len,
		         "descriptor %d passed by systemd is not a stream socket "
		         "(ListenStream= in the .socket unit)",
		         fd);
		return -EPROTOTYPE;
	}
	sl = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) != 0 || !listening) {
		snprintf(err, len,
		         "descriptor %d passed by systemd is not listening "
		         "(the .socket unit must not say Accept=yes)",
		         fd);
		return -EINVAL;
	}
	return 0;
}

int
systemd_listeners(int *fds, bool *tls, size_t max, size_t *n, char *err, size_t len)
{
	const char *spid = getenv("LISTEN_PID"), *sfds = getenv("LISTEN_FDS");
	char *names = NULL, name[64];
	long pid, count;
	int rc = 0;

	*n = 0;
	if (spid == NULL || sfds == NULL)
		goto out;
	pid = env_number(spid, 0x7fffffffL);
	count = env_number(sfds, 0x7fffffffL - SYSTEMD_FDS_START);
	if (pid < 0 || count < 0) {
		snprintf(err, len, "invalid LISTEN_PID '%s' or LISTEN_FDS '%s'", spid, sfds);
		rc = -EINVAL;
		goto out;
	}
	if (pid != (long)getpid())
		goto out; /* meant for a parent that did not clear them */
	if ((size_t)count > max) {
		snprintf(err, len, "systemd passed %ld sockets; at most %zu are taken", count, max);
		rc = -EMFILE;
		goto out;
	}
	if (getenv("LISTEN_FDNAMES") != NULL && (names = strdup(getenv("LISTEN_FDNAMES"))) == NULL) {
		snprintf(err, len, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (long i = 0; i < count; i++) {
		int fd = SYSTEMD_FDS_START + (int)i;

		if ((rc = check_listener(fd, err, len)) != 0)
			goto out;
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || (rc = net_set_nonblock(fd)) != 0) {
			rc = rc != 0 ? rc : -errno;
			snprintf(err, len, "descriptor %d passed by systemd: %s", fd, strerror(-rc));
			goto out;
		}
		fd_name(names, (size_t)i, name, sizeof(name));
		fds[i] = fd;
		tls[i] = strcmp(name, "tls") == 0;
	}
	*n = (size_t)count;
out:
	free(names);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return rc;
}

/* --- readiness ---------------------------------------------------------------- */

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;

bool
systemd_notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n;

	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		goto out;
	n = strlen(path);
	if (n >= sizeof(notify_addr.sun_path))
		goto out;
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, n);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0'; /* Linux's abstract namespace */
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
out:
	unsetenv("NOTIFY_SOCKET");
	return notify_fd >= 0;
}

void
systemd_notify(const char *state)
{
	if (notify_fd < 0)
		return;
	/* Failure is not ours to act on: the manager times the service out. */
	(void)sendto(notify_fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
	             (struct sockaddr *)&notify_addr, notify_len);
}

void
systemd_notify_close(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
}
