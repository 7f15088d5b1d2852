/*
 * chat-server: a TCP chat server.  main() only turns the command line
 * (and the -c file) into a server_config, takes what systemd passed, and
 * runs the server; everything else is in server.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "server.h"
#include "settings.h"
#include "systemd.h"

int
main(int argc, char **argv)
{
	/* Static: the settings point into these until the process ends. */
	static struct settings st;
	int passed_fds[SERVER_MAX_LISTEN];
	bool passed_tls[SERVER_MAX_LISTEN];
	bool usage_too;
	char err[4400];
	int rc;

	rc = settings_load(&st, argc, argv, &usage_too, err, sizeof(err));
	if (rc == SETTINGS_HELP) {
		settings_usage(stdout);
		return 0;
	}
	if (rc == SETTINGS_VERSION) {
		printf("chat-server (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
		return 0;
	}
	if (rc != 0) {
		fprintf(stderr, "chat-server: %s\n", err);
		if (usage_too)
			settings_usage(stderr);
		return 2;
	}
	if (systemd_listeners(passed_fds, passed_tls, SERVER_MAX_LISTEN, &st.cfg.npassed, err,
	                      sizeof(err)) != 0) {
		fprintf(stderr, "chat-server: socket activation: %s\n", err);
		return 1;
	}
	st.cfg.passed_fds = passed_fds;
	st.cfg.passed_tls = passed_tls;
	if (settings_check(&st.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "chat-server: %s\n", err);
		return 2;
	}
	/* For SIGHUP: the same command line, the file as it is then. */
	st.cfg.argc = argc;
	st.cfg.argv = argv;
	log_set_level(st.level);
	log_detect_journal();
	rc = server_run(&st.cfg);
	settings_free(&st);
	return rc;
}
