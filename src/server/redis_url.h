/*
 * Where the cluster's Redis is: --redis URL, parsed once at start so that
 * a typo is refused before the server listens, not found later by the bus
 * thread's first connect.
 *
 *   redis://[[user]:password@]host[:port][/db]   (port 6379, db 0)
 *   unix:/path/to/redis.sock
 *
 * host may be a name, an IPv4 address or an IPv6 address in brackets.
 * Nothing here touches the network.
 */
#ifndef REDIS_URL_H
#define REDIS_URL_H

#include <stdbool.h>

struct redis_url {
	bool is_unix;
	char host[256];  /* without brackets; "" for unix */
	int port;        /* 1..65535 */
	char path[108];  /* sun_path's size, for unix */
	char user[128];  /* "" : no user (AUTH password alone, or none) */
	char pass[256];  /* "" : no AUTH */
	bool has_pass;   /* "redis://:@host" asks for AUTH with an empty password */
	unsigned db;     /* SELECT, when not 0 */
};

/* Parse s into *u.  Returns 0, or -EINVAL with the reason (for
 * "chat-server: invalid --redis 'URL': <reason>") in err. */
int redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen);

/* "127.0.0.1:6379", "[::1]:6379" or "unix:/path", without the password:
 * what logs may show. */
void redis_url_format(const struct redis_url *u, char *out, size_t len);

#endif /* REDIS_URL_H */
