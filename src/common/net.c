/* Socket helpers; see net.h. */
#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

void
net_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			/* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d;
			 * people know them as a.b.c.d. */
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof(host));
			snprintf(buf, len, "%s:%u", host, ntohs(in6->sin6_port));
		} else {
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
			snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
		}
	} else {
		snprintf(buf, len, "?");
	}
}

int
net_set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void
set_port(struct sockaddr *sa, unsigned short port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static unsigned short
get_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

/* One listening socket on sa.  Returns the descriptor or a negative errno. */
static int
listen_one(const struct sockaddr *sa, socklen_t salen, int backlog)
{
	int fd, one = 1, rc;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Restarting the server must not wait out TIME_WAIT. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (sa->sa_family == AF_INET6) {
		/* "::" takes IPv4 too (dual stack); a specific IPv6 address
		 * only itself, so that its IPv4 sibling can bind as well. */
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		int v6only = !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
			goto fail;
	}
	if (bind(fd, sa, salen) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

int
net_listen(const char *host, const char *port, int backlog, int *fds, size_t max, size_t *n,
           char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct sockaddr_storage ss;
	char addr[NET_ADDRSTRLEN];
	unsigned short chosen = 0;
	int rc, first_err = 0;
	bool any_host = host == NULL;

	*n = 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	hints.ai_family = any_host ? AF_INET6 : AF_UNSPEC;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 && any_host) {
		hints.ai_family = AF_INET;
		rc = getaddrinfo(NULL, port, &hints, &res);
	}
	if (rc != 0) {
		snprintf(err, errlen, "cannot listen on %s:%s: %s", host ? host : "*", port,
		         rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	}

	for (ai = res; ai != NULL && *n < max; ai = ai->ai_next) {
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (chosen != 0)
			set_port((struct sockaddr *)&ss, chosen);
		rc = listen_one((struct sockaddr *)&ss, ai->ai_addrlen, backlog);
		if (rc == -EAFNOSUPPORT && any_host && ai->ai_family == AF_INET6) {
			/* No IPv6 on this host: fall back to 0.0.0.0. */
			struct sockaddr_in in4;

			memset(&in4, 0, sizeof(in4));
			in4.sin_family = AF_INET;
			in4.sin_addr.s_addr = htonl(INADDR_ANY);
			in4.sin_port = ((struct sockaddr_in6 *)&ss)->sin6_port;
			memcpy(&ss, &in4, sizeof(in4));
			rc = listen_one((struct sockaddr *)&ss, sizeof(in4), backlog);
		}
		if (rc < 0) {
			if (first_err == 0) {
				first_err = rc;
				net_format_addr((struct sockaddr *)&ss, addr, sizeof(addr));
				snprintf(err, errlen, "cannot listen on %s: %s", addr,
				         strerror(-rc));
			}
			continue;
		}
		fds[(*n)++] = rc;
		if (chosen == 0) {
			socklen_t len = sizeof(ss);

			if (getsockname(rc, (struct sockaddr *)&ss, &len) == 0)
				chosen = get_port((struct sockaddr *)&ss);
		}
	}
	freeaddrinfo(res);
	if (*n == 0)
		return first_err ? first_err : -EADDRNOTAVAIL;
	return 0;
}

int
net_connect(const char *host, const char *port, FILE *trace, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char addr[NET_ADDRSTRLEN];
	int rc, fd, last = -ECONNREFUSED;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port,
		         rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return rc == EAI_SYSTEM && errno != 0 ? -errno : -EHOSTUNREACH;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		net_format_addr(ai->ai_addr, addr, sizeof(addr));
		if (trace != NULL)
			fprintf(trace, "trying %s ...\n", addr);
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last = -errno;
		} else {
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
				if (trace != NULL)
					fprintf(trace, "connected to %s\n", addr);
				freeaddrinfo(res);
				return fd;
			}
			last = -errno;
			close(fd);
		}
		if (trace != NULL)
			fprintf(trace, "%s: %s\n", addr, strerror(-last));
	}
	freeaddrinfo(res);
	snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, strerror(-last));
	return last;
}
