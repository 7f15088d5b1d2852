/* --redis URL parsing; see redis_url.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_url.h"

static int
fail(char *err, size_t len, const char *why)
{
	snprintf(err, len, "%s", why);
	return -EINVAL;
}

/* Copy [s, s+n) to out (cap bytes with the NUL); false if it does not fit. */
static bool
copy(char *out, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* A decimal number in [min, max] filling [s, s+n) exactly. */
static bool
number(const char *s, size_t n, unsigned long min, unsigned long max, unsigned long *v)
{
	unsigned long x = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (unsigned long)(s[i] - '0');
	}
	if (x < min || x > max)
		return false;
	*v = x;
	return true;
}

int
redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen)
{
	const char *p, *at, *hostend, *slash, *colon;
	unsigned long v;

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	if (strncmp(s, "unix:", 5) == 0) {
		p = s + 5;
		if (p[0] != '/')
			return fail(err, errlen, "a unix socket needs an absolute path: unix:/path");
		if (!copy(u->path, sizeof(u->path), p, strlen(p)))
			return fail(err, errlen, "the socket path is too long");
		u->is_unix = true;
		return 0;
	}
	if (strncmp(s, "redis://", 8) != 0)
		return fail(err, errlen, "expected redis://[[user]:password@]host[:port][/db] "
		                         "or unix:/path");
	p = s + 8;
	slash = strchr(p, '/');
	/* The last '@' before the path ends the credentials: a password may
	 * hold '@' itself. */
	at = NULL;
	for (const char *q = p; *q != '\0' && (slash == NULL || q < slash); q++)
		if (*q == '@')
			at = q;
	if (at != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon == NULL)
			return fail(err, errlen, "credentials must be user:password@ or :password@");
		if (!copy(u->user, sizeof(u->user), p, (size_t)(colon - p)) ||
		    !copy(u->pass, sizeof(u->pass), colon + 1, (size_t)(at - colon - 1)))
			return fail(err, errlen, "the user or password is too long");
		u->has_pass = true;
		p = at + 1;
	}
	hostend = slash != NULL ? slash : p + strlen(p);
	if (p[0] == '[') {
		const char *close = memchr(p, ']', (size_t)(hostend - p));

		if (close == NULL)
			return fail(err, errlen, "an IPv6 address needs its closing ']'");
		if (!copy(u->host, sizeof(u->host), p + 1, (size_t)(close - p - 1)))
			return fail(err, errlen, "the host name is too long");
		colon = close + 1 < hostend ? close + 1 : NULL;
		if (colon != NULL && *colon != ':')
			return fail(err, errlen, "expected ':PORT' after the IPv6 address");
	} else {
		colon = memchr(p, ':', (size_t)(hostend - p));
		if (!copy(u->host, sizeof(u->host), p, (size_t)((colon ? colon : hostend) - p)))
			return fail(err, errlen, "the host name is too long");
	}
	if (u->host[0] == '\0')
		return fail(err, errlen, "no host");
	if (colon != NULL) {
		if (!number(colon + 1, (size_t)(hostend - colon - 1), 1, 65535, &v))
			return fail(err, errlen, "the port must be a number from 1 to 65535");
		u->port = (int)v;
	}
	if (slash != NULL && slash[1] != '\0') {
		if (!number(slash + 1, strlen(slash + 1), 0, 1000000, &v))
			return fail(err, errlen, "the database must be a number (/0, /1, ...)");
		u->db = (unsigned)v;
	}
	return 0;
}

void
redis_url_format(const struct redis_url *u, char *out, size_t len)
{
	if (u->is_unix)
		snprintf(out, len, "unix:%s", u->path);
	else if (strchr(u->host, ':') != NULL)
		snprintf(out, len, "[%s]:%d", u->host, u->port);
	else
		snprintf(out, len, "%s:%d", u->host, u->port);
}
