/* First contact; see greet.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "greet.h"
#include "line.h"

int
greet_load(const char *path, struct msg **m, char *err, size_t len)
{
	/* Read one byte past the limit to tell "exactly" from "over". */
	char raw[GREET_MOTD_BYTES + 1], out[GREET_MOTD_BYTES + 1], text[GREET_MOTD_BYTES];
	size_t n, used = 0, lines = 0, blank = 0;
	FILE *fp;
	bool cut;

	*m = NULL;
	if ((fp = fopen(path, "r")) == NULL) {
		int e = errno;

		snprintf(err, len, "cannot read %s: %s", path, strerror(e));
		return -e;
	}
	n = fread(raw, 1, sizeof(raw), fp);
	if (ferror(fp)) {
		int e = errno ? errno : EIO;

		fclose(fp);
		snprintf(err, len, "cannot read %s: %s", path, strerror(e));
		return -e;
	}
	fclose(fp);
	if (n > GREET_MOTD_BYTES) {
		snprintf(err, len, "%s is longer than %d bytes", path, GREET_MOTD_BYTES);
		return -EFBIG;
	}
	for (size_t at = 0; at < n;) {
		const char *nl = memchr(raw + at, '\n', n - at);
		size_t end = nl != NULL ? (size_t)(nl - raw) : n, k;

		k = line_sanitize(raw + at, end - at, text, sizeof(text), &cut);
		at = end + 1;
		if (k == 0) {
			blank++; /* kept only between lines: none at the end */
			continue;
		}
		lines += blank + 1;
		if (lines > GREET_MOTD_LINES || used + 3 * blank + k + 4 > GREET_MOTD_BYTES) {
			snprintf(err, len, "%s has more than %d lines or %d bytes to show", path,
			         GREET_MOTD_LINES, GREET_MOTD_BYTES);
			return -EFBIG;
		}
		for (; blank > 0; blank--, used += 3)
			memcpy(out + used, "*\r\n", 3);
		memcpy(out + used, "* ", 2);
		memcpy(out + used + 2, text, k);
		memcpy(out + used + 2 + k, "\r\n", 2);
		used += k + 4;
	}
	if (used == 0)
		return 0;
	if ((*m = msg_new(used)) == NULL) {
		snprintf(err, len, "out of memory for %s", path);
		return -ENOMEM;
	}
	memcpy((*m)->data, out, used);
	return 0;
}

int
greet_init(struct greet *g, const char *motd_path, char *err, size_t len)
{
	int rc;

	if (gethostname(g->host, sizeof(g->host)) != 0 || g->host[0] == '\0')
		snprintf(g->host, sizeof(g->host), "%s", "localhost");
	g->host[sizeof(g->host) - 1] = '\0'; /* truncated names are not terminated */
	g->motd = NULL;
	if (motd_path != NULL && (rc = greet_load(motd_path, &g->motd, err, len)) != 0)
		return rc;
	if ((rc = pthread_mutex_init(&g->mu, NULL)) != 0) {
		msg_unref(g->motd);
		snprintf(err, len, "%s", strerror(rc));
		return -rc;
	}
	return 0;
}

void
greet_destroy(struct greet *g)
{
	msg_unref(g->motd);
	pthread_mutex_destroy(&g->mu);
}

int
greet_reload(struct greet *g, const char *path, char *err, size_t len)
{
	struct msg *m = NULL, *old;
	bool had;
	int rc;

	pthread_mutex_lock(&g->mu);
	had = g->motd != NULL;
	pthread_mutex_unlock(&g->mu);
	if (path == NULL && !had)
		return 1;
	if (path != NULL && (rc = greet_load(path, &m, err, len)) != 0)
		return rc;
	pthread_mutex_lock(&g->mu);
	old = g->motd;
	g->motd = m;
	pthread_mutex_unlock(&g->mu);
	msg_unref(old); /* greetings queued with it keep their own reference */
	return 0;
}

size_t
greet_make(struct greet *g, const char *shown, const char *room, size_t online,
           struct msg *out[2])
{
	char head[512];
	size_t k = 0;
	int n;

	n = snprintf(head, sizeof(head),
	             "* welcome to %s, chat-server %s\r\n"
	             "* you are %s in %s, %zu online\r\n"
	             "* /nick NAME to choose your name, /help for the commands\r\n",
	             g->host, PACKAGE_VERSION, shown, room, online);
	if (n < 0 || (size_t)n >= sizeof(head) || (out[0] = msg_new((size_t)n)) == NULL)
		return 0;
	memcpy(out[0]->data, head, (size_t)n);
	k = 1;
	pthread_mutex_lock(&g->mu);
	if ((out[1] = g->motd) != NULL) {
		msg_ref(out[1]);
		k = 2;
	}
	pthread_mutex_unlock(&g->mu);
	return k;
}
