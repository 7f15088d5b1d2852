/*
 * chat-server -c FILE: the configuration file, one long option a line.
 *
 *   # comments take a whole line
 *   workers 4
 *   max-clients 5000
 *   redis redis://10.0.0.5:6379
 *   cloak                   (a switch: alone, or with yes/no,
 *   no-plain yes             true/false, on/off)
 *
 * Each line becomes the long option it names ("--workers=4"), to be parsed
 * with the command line's own getopt loop, before the command line, which
 * therefore overrides the file.  So the file knows every option the
 * command line knows, with the same checks, and nothing more.  Only whole
 * lines are comments ('#' first): a value such as a Redis password may
 * hold a '#'.
 *
 * Ownership: the arguments and origins returned are the caller's
 * (conf_free), and live as long as the options parsed from them.
 */
#ifndef CONFFILE_H
#define CONFFILE_H

#include <getopt.h>
#include <stddef.h>

struct conf_args {
	char **argv;   /* "--key=value" or "--switch", one per setting */
	char **where;  /* "FILE:LINE" of each, for messages */
	int n;
};

/*
 * Read path, checking each key against opts (a getopt_long table ending
 * in a zero entry; the keys in skip, NULL-terminated, are refused too, as
 * "help" or "config" would make no sense there).  Returns 0, or -1 with
 * "FILE:LINE: what is wrong" (or why the file cannot be read) in err.
 */
int conf_load(const char *path, const struct option *opts, const char *const *skip,
              struct conf_args *out, char *err, size_t len);
void conf_free(struct conf_args *a);

#endif /* CONFFILE_H */
