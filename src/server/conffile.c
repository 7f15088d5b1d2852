/* The configuration file; see conffile.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conffile.h"

/* A line's longest: a Redis URL or a path fits with room to spare. */
#define LINE_MAX_CONF 4096

static bool
blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const struct option *
find(const struct option *opts, const char *key)
{
	for (; opts->name != NULL; opts++)
		if (strcmp(opts->name, key) == 0)
			return opts;
	return NULL;
}

static int
push(struct conf_args *a, char *arg, const char *path, unsigned line)
{
	char **av = realloc(a->argv, (size_t)(a->n + 1) * sizeof(*av)), **wh;

	if (av == NULL) {
		free(arg);
		return -1;
	}
	a->argv = av;
	if ((wh = realloc(a->where, (size_t)(a->n + 1) * sizeof(*wh))) == NULL) {
		free(arg);
		return -1;
	}
	a->where = wh;
	a->where[a->n] = malloc(strlen(path) + 16);
	if (a->where[a->n] == NULL) {
		free(arg);
		return -1;
	}
	sprintf(a->where[a->n], "%s:%u", path, line);
	a->argv[a->n++] = arg;
	return 0;
}

void
conf_free(struct conf_args *a)
{
	for (int i = 0; i < a->n; i++) {
		free(a->argv[i]);
		free(a->where[i]);
	}
	free(a->argv);
	free(a->where);
	a->argv = a->where = NULL;
	a->n = 0;
}

/* One line, its line end and blanks around it gone; "" or a comment is
 * nothing.  Returns 0, or -1 with the reason in err. */
static int
take_line(char *s, const char *path, unsigned ln, const struct option *opts,
          const char *const *skip, struct conf_args *out, char *err, size_t len)
{
	char *key, *val, *end, *arg;
	const struct option *o;

	while (blank(*s))
		s++;
	end = s + strlen(s);
	while (end > s && blank(end[-1]))
		*--end = '\0';
	if (*s == '\0' || *s == '#')
		return 0;
	key = s;
	while (*s != '\0' && !blank(*s))
		s++;
	if (*s != '\0')
		*s++ = '\0';
	while (blank(*s))
		s++;
	val = s;
	o = find(opts, key);
	for (const char *const *k = skip; o != NULL && *k != NULL; k++)
		if (strcmp(*k, key) == 0)
			o = NULL;
	if (o == NULL) {
		snprintf(err, len, "%s:%u: unknown key '%.64s'", path, ln, key);
		return -1;
	}
	if (o->has_arg == no_argument) {
		if (*val == '\0' || strcasecmp(val, "yes") == 0 || strcasecmp(val, "true") == 0 ||
		    strcasecmp(val, "on") == 0) {
			arg = malloc(strlen(key) + 3);
			if (arg != NULL)
				sprintf(arg, "--%s", key);
		} else if (strcasecmp(val, "no") == 0 || strcasecmp(val, "false") == 0 ||
		           strcasecmp(val, "off") == 0) {
			return 0; /* off is the default of every switch */
		} else {
			snprintf(err, len, "%s:%u: %s: invalid value '%.64s': expected yes or no",
			         path, ln, key, val);
			return -1;
		}
	} else {
		if (*val == '\0') {
			snprintf(err, len, "%s:%u: %s needs a value", path, ln, key);
			return -1;
		}
		arg = malloc(strlen(key) + strlen(val) + 4);
		if (arg != NULL)
			sprintf(arg, "--%s=%s", key, val);
	}
	if (arg == NULL || push(out, arg, path, ln) != 0) {
		snprintf(err, len, "%s: out of memory", path);
		return -1;
	}
	return 0;
}

int
conf_load(const char *path, const struct option *opts, const char *const *skip,
          struct conf_args *out, char *err, size_t len)
{
	char buf[LINE_MAX_CONF + 2];
	unsigned ln = 0;
	FILE *fp;

	out->argv = out->where = NULL;
	out->n = 0;
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, len, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(buf, sizeof(buf), fp) != NULL) {
		ln++;
		if (strchr(buf, '\n') == NULL && !feof(fp)) {
			snprintf(err, len, "%s:%u: line longer than %d bytes", path, ln, LINE_MAX_CONF);
			goto fail;
		}
		if (take_line(buf, path, ln, opts, skip, out, err, len) != 0)
			goto fail;
	}
	if (ferror(fp)) {
		snprintf(err, len, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(fp);
	return 0;
fail:
	fclose(fp);
	conf_free(out);
	return -1;
}
