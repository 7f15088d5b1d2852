/*
 * chat-server's settings: the command line and the -c file, turned into a
 * server_config.  main() loads them once at start; the server loads them
 * again on SIGHUP (same command line, the file as it is now), to apply
 * what can change while it runs and name what needs a restart.
 *
 * Ownership: cfg's strings point into the settings' own storage (the
 * file's arguments) or into the argv given, so a struct settings lives as
 * long as the cfg taken from it is used; settings_free releases it.
 * Not thread-safe (getopt): the main thread only.
 */
#ifndef SETTINGS_H
#define SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "conffile.h"
#include "log.h"
#include "server.h"

#define SETTINGS_HELP 1    /* -h: print settings_usage */
#define SETTINGS_VERSION 2 /* -V: print the version */

struct settings {
	struct server_config cfg;
	enum log_level level;
	const char *conf_path; /* -c FILE, or NULL */
	/* Storage cfg points into. */
	struct conf_args conf;
	char **args; /* the file's settings and then argv's; NULL: argv alone */
	char metrics_addr[300];
};

/*
 * Parse argv (the file named by -c first, the command line over it) into
 * st, with the defaults for what neither gives.  Returns 0,
 * SETTINGS_HELP, SETTINGS_VERSION, or a negative errno with a message in
 * err ("x.conf:3: invalid --max-sendq '12abc': expected ..."): -EINVAL
 * for a bad setting (*usage_too: usage is worth showing), other errnos
 * for a file that cannot be read or memory.  st needs settings_free
 * whatever the outcome.
 */
int settings_load(struct settings *st, int argc, char **argv, bool *usage_too, char *err,
                  size_t len);

/*
 * The checks across settings (a send queue that holds a line, TLS files
 * with a TLS port, metrics off the chat port), once cfg's passed
 * listeners are known.  Returns 0 or -EINVAL with the reason in err.
 */
int settings_check(const struct server_config *cfg, char *err, size_t len);

/*
 * Call each(key, was, now, arg) for every setting that differs between a
 * and b, key being its long option ("workers"), was and now its values as
 * text ("(set)" for a Redis URL, which may hold a password).  Returns how
 * many differ.
 */
size_t settings_diff(const struct server_config *a, const struct server_config *b,
                     void (*each)(const char *key, const char *was, const char *now, void *arg),
                     void *arg);

void settings_free(struct settings *st);

void settings_usage(FILE *fp);

#endif /* SETTINGS_H */
