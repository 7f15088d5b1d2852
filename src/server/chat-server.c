/*
 * chat-server: a TCP chat server.  main() only turns the command line into
 * a server_config and runs the server; everything else is in server.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conffile.h"
#include "greet.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "redis_url.h"
#include "server.h"
#include "systemd.h"

#define DEFAULT_PORT "4333"
#define DEFAULT_MAX_SENDQ (1024 * 1024)
#define DEFAULT_MAX_LINE 4096
#define DEFAULT_FLOOD_RATE 10
#define DEFAULT_FLOOD_BURST 20
#define DEFAULT_CLUSTER "chat"
#define DEFAULT_BACKLOG 10000
#define DEFAULT_REDIS_TIMEOUT 10
#define DEFAULT_NODE_TIMEOUT 15
#define DEFAULT_TLS_TIMEOUT 10
#define DEFAULT_TLS_HANDSHAKES 256

static void
usage(FILE *fp)
{
	fprintf(fp,
	        "usage: chat-server [options]\n"
	        "  -p, --port PORT          port to listen on (default " DEFAULT_PORT
	        "; 0: any free)\n"
	        "  -b, --bind ADDR          address or host name to listen on\n"
	        "                           (default: every address, IPv6 and IPv4)\n"
	        "  -w, --workers N          relay threads in the pool (default: one per "
	        "CPU, at most 32)\n"
	        "      --max-clients N      clients at once (default: open-file limit less "
	        "those in use)\n"
	        "      --max-sendq BYTES    output queued per client before it is dropped\n"
	        "                           (default 1048576)\n"
	        "      --max-line BYTES     longer lines are cut (default 4096)\n"
	        "      --max-per-ip N       clients from one address (default 0: no limit)\n"
	        "      --idle-timeout SECS  close clients silent this long (default 0: never)\n"
	        "      --history N          chat lines of its room replayed to a newcomer\n"
	        "                           (default 0)\n"
	        "      --max-rooms N        rooms at once, #lobby included (default 1000)\n"
	        "      --metrics ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
	        "                           (127.0.0.1:9100, [::1]:9100, :9100 for every address)\n"
	        "      --cloak              show clients' addresses as keyed hashes\n"
	        "                           (cloak-7f3a9c2e1b4d:PORT; the log keeps them)\n"
	        "      --motd FILE          lines every newcomer gets after the greeting\n"
	        "                           (reread on SIGHUP; at most 50 lines, 4 KiB)\n"
	        "      --flood-rate N       lines per second per client (default 10; 0: off)\n"
	        "      --flood-burst N      lines at once before the rate applies (default 20)\n"
	        "      --redis URL          join a cluster through Redis:\n"
	        "                           redis://[[user]:password@]host[:port][/db] or\n"
	        "                           unix:/path/to/redis.sock (default: standalone)\n"
	        "      --cluster NAME       the cluster's key namespace (default chat)\n"
	        "      --node NAME          this server's name (default HOST:PORT)\n"
	        "      --cluster-backlog N  our lines kept while Redis is away (default\n"
	        "                           10000, and 839 bytes a line: 8 MiB)\n"
	        "      --redis-timeout SECS a Redis silent this long is dropped (default 10)\n"
	        "      --node-timeout SECS  a server silent this long is gone (default 15)\n"
	        "      --tls-port PORT      also listen for TLS clients here (0: any free);\n"
	        "                           needs --tls-cert and --tls-key\n"
	        "      --tls-cert FILE      PEM certificate, with its chain (reread on SIGHUP)\n"
	        "      --tls-key FILE       PEM private key of that certificate\n"
	        "      --no-plain           no plain-text listener: TLS clients only\n"
	        "      --tls-handshake-timeout SECS\n"
	        "                           close a TLS client whose handshake takes longer\n"
	        "                           (default 10)\n"
	        "      --tls-max-handshakes N\n"
	        "                           TLS handshakes in progress at once (default 256)\n"
	        "  -c, --config FILE        settings, one 'option value' a line (no dashes);\n"
	        "                           the command line overrides them\n"
	        "  -l, --log-level LEVEL    error, warn, info or debug (default info)\n"
	        "  -h, --help               this help\n"
	        "  -V, --version            the version\n");
}

/* "FILE:LINE: " while an option from -c FILE is parsed, else "". */
static char where[4200];

static void
bad_value(const char *opt, const char *val, const char *expected)
{
	fprintf(stderr, "chat-server: %sinvalid %s '%s': expected %s\n", where, opt, val,
	        expected);
	usage(stderr);
	exit(2);
}

/* A whole decimal number in [min, max], or exit 2 naming the option. */
/*
 * Settings each valid alone that cannot work together: a send queue must
 * hold the longest line, and a newcomer's must hold the history replay and
 * one live line on top.  Refused rather than left to drop clients later.
 */
static int
check_together(const struct server_config *cfg)
{
	size_t line = msg_chat_max(cfg->max_line);

	if (cfg->max_sendq < line) {
		fprintf(stderr,
		        "chat-server: --max-line %zu needs --max-sendq of at least %zu bytes "
		        "(a line and its head), not %zu\n",
		        cfg->max_line, line, cfg->max_sendq);
		return -EINVAL;
	}
	/* The greeting (greet.h) is queued ahead of the replay. */
	if (cfg->history > 0 &&
	    (cfg->max_sendq < GREET_MAX || (cfg->max_sendq - GREET_MAX) / line < cfg->history + 1)) {
		fprintf(stderr,
		        "chat-server: --history %zu with --max-line %zu needs --max-sendq of at "
		        "least %zu bytes (the greeting, the replay and one line more), not %zu\n",
		        cfg->history, cfg->max_line, (cfg->history + 1) * line + GREET_MAX,
		        cfg->max_sendq);
		return -EINVAL;
	}
	return 0;
}

/* The TLS options go together; files are checked when they are loaded.
 * A TLS socket passed by systemd stands for --tls-port. */
static int
check_tls(const struct server_config *cfg)
{
	size_t plain = 0, tls = 0;

	for (size_t i = 0; i < cfg->npassed; i++)
		cfg->passed_tls[i] ? tls++ : plain++;
	if (plain > 0 && cfg->no_plain) {
		fprintf(stderr, "chat-server: --no-plain, but systemd passed a plain listening "
		                "socket (name it 'tls' with FileDescriptorName=tls)\n");
		return -EINVAL;
	}
	if (tls > 0) {
#ifndef HAVE_OPENSSL
		fprintf(stderr, "chat-server: systemd passed a TLS socket, but this chat-server was "
		                "built without OpenSSL (configure --with-openssl; Debian: libssl-dev)\n");
		return -EINVAL;
#endif
		if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
			fprintf(stderr, "chat-server: systemd passed a TLS socket "
			                "(FileDescriptorName=tls): it needs --tls-cert FILE and "
			                "--tls-key FILE\n");
			return -EINVAL;
		}
		return 0;
	}
	if (cfg->tls_port == NULL) {
		if (cfg->tls_cert != NULL || cfg->tls_key != NULL || cfg->no_plain) {
			fprintf(stderr, "chat-server: %s needs --tls-port\n",
			        cfg->no_plain   ? "--no-plain"
			        : cfg->tls_cert ? "--tls-cert"
			                        : "--tls-key");
			return -EINVAL;
		}
		return 0;
	}
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
		fprintf(stderr,
		        "chat-server: --tls-port needs --tls-cert FILE and --tls-key FILE\n");
		return -EINVAL;
	}
	return 0;
}

/* A cluster or node name: it goes into Redis keys and log lines. */
static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-' || ch == ':'))
			return false;
	}
	return true;
}

static unsigned long long
parse_number(const char *opt, const char *val, unsigned long long min, unsigned long long max,
             const char *expected)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (val[0] < '0' || val[0] > '9')
		bad_value(opt, val, expected);
	v = strtoull(val, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		bad_value(opt, val, expected);
	return v;
}

int
main(int argc, char **argv)
{
	enum {
		OPT_MAX_CLIENTS = 256,
		OPT_MAX_SENDQ,
		OPT_MAX_LINE,
		OPT_HISTORY,
		OPT_IDLE,
		OPT_PER_IP,
		OPT_FLOOD_RATE,
		OPT_FLOOD_BURST,
		OPT_REDIS,
		OPT_CLUSTER,
		OPT_NODE,
		OPT_BACKLOG,
		OPT_REDIS_TIMEOUT,
		OPT_NODE_TIMEOUT,
		OPT_TLS_PORT,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
		OPT_NO_PLAIN,
		OPT_TLS_TIMEOUT,
		OPT_TLS_HANDSHAKES,
		OPT_MAX_ROOMS,
		OPT_MOTD,
		OPT_CLOAK,
		OPT_METRICS,
	};
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "workers", required_argument, NULL, 'w' },
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "max-sendq", required_argument, NULL, OPT_MAX_SENDQ },
		{ "max-line", required_argument, NULL, OPT_MAX_LINE },
		{ "history", required_argument, NULL, OPT_HISTORY },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "max-per-ip", required_argument, NULL, OPT_PER_IP },
		{ "flood-rate", required_argument, NULL, OPT_FLOOD_RATE },
		{ "flood-burst", required_argument, NULL, OPT_FLOOD_BURST },
		{ "redis", required_argument, NULL, OPT_REDIS },
		{ "cluster", required_argument, NULL, OPT_CLUSTER },
		{ "node", required_argument, NULL, OPT_NODE },
		{ "cluster-backlog", required_argument, NULL, OPT_BACKLOG },
		{ "redis-timeout", required_argument, NULL, OPT_REDIS_TIMEOUT },
		{ "node-timeout", required_argument, NULL, OPT_NODE_TIMEOUT },
		{ "tls-port", required_argument, NULL, OPT_TLS_PORT },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "no-plain", no_argument, NULL, OPT_NO_PLAIN },
		{ "tls-handshake-timeout", required_argument, NULL, OPT_TLS_TIMEOUT },
		{ "tls-max-handshakes", required_argument, NULL, OPT_TLS_HANDSHAKES },
		{ "max-rooms", required_argument, NULL, OPT_MAX_ROOMS },
		{ "motd", required_argument, NULL, OPT_MOTD },
		{ "config", required_argument, NULL, 'c' },
		{ "cloak", no_argument, NULL, OPT_CLOAK },
		{ "metrics", required_argument, NULL, OPT_METRICS },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct server_config cfg = {
		.bind = NULL,
		.port = DEFAULT_PORT,
		.workers = 0,
		.max_clients = 0,
		.max_sendq = DEFAULT_MAX_SENDQ,
		.max_line = DEFAULT_MAX_LINE,
		.flood_rate = DEFAULT_FLOOD_RATE,
		.flood_burst = DEFAULT_FLOOD_BURST,
		.cluster = DEFAULT_CLUSTER,
		.cluster_backlog = DEFAULT_BACKLOG,
		.redis_timeout = DEFAULT_REDIS_TIMEOUT,
		.node_timeout = DEFAULT_NODE_TIMEOUT,
		.tls_handshake_timeout = DEFAULT_TLS_TIMEOUT,
		.tls_max_handshakes = DEFAULT_TLS_HANDSHAKES,
	};
	static const char *const not_in_file[] = { "config", "help", "version", NULL };
	/* Static: the settings point into these until the process ends. */
	static struct conf_args conf;
	static char **args;
	struct redis_url url;
	const char *conf_path = NULL;
	char err[4200];
	enum log_level level = LOG_INFO;
	static char metrics_addr[300];
	int passed_fds[SERVER_MAX_LISTEN];
	bool passed_tls[SERVER_MAX_LISTEN];
	int c, nargs = argc;

	args = argv;
	/* -c FILE first: its settings go before the command line's, which
	 * thus override them (getopt takes the last of an option). */
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			conf_path = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			conf_path = argv[i] + 9;
		else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2] != '\0')
			conf_path = argv[i] + 2;
		else if (strcmp(argv[i], "--") == 0)
			break;
	}
	if (conf_path != NULL) {
		if (conf_load(conf_path, longopts, not_in_file, &conf, err, sizeof(err)) != 0) {
			fprintf(stderr, "chat-server: %s\n", err);
			return 2;
		}
		nargs = argc + conf.n;
		if ((args = calloc((size_t)nargs + 1, sizeof(*args))) == NULL) {
			fprintf(stderr, "chat-server: out of memory\n");
			return 1;
		}
		args[0] = argv[0];
		if (conf.n > 0) /* an all-comment file has no array at all */
			memcpy(args + 1, conf.argv, (size_t)conf.n * sizeof(*args));
		memcpy(args + 1 + conf.n, argv + 1, (size_t)(argc - 1) * sizeof(*args));
	}

	opterr = 0; /* we say what is wrong ourselves */
	while ((c = getopt_long(nargs, args, ":p:b:w:l:c:hV", longopts, NULL)) != -1) {
		/* Where the option came from, for messages: the file's
		 * settings are args[1 .. conf.n], one element each. */
		if (optind - 1 >= 1 && optind - 1 <= conf.n)
			snprintf(where, sizeof(where), "%s: ", conf.where[optind - 2]);
		else
			where[0] = '\0';
		switch (c) {
		case 'c': break; /* read above */
		case 'p':
			parse_number("--port", optarg, 0, 65535, "a port number from 0 to 65535");
			cfg.port = optarg;
			break;
		case 'b':
			if (optarg[0] == '\0')
				bad_value("--bind", optarg, "an address or host name");
			cfg.bind = optarg;
			break;
		case 'w':
			cfg.workers = (unsigned)parse_number("--workers", optarg, 1, 1024,
			                                     "a number from 1 to 1024");
			break;
		case OPT_MAX_CLIENTS:
			cfg.max_clients = (size_t)parse_number("--max-clients", optarg, 1, 10000000,
			                                       "a number from 1 to 10000000");
			break;
		case OPT_MAX_SENDQ:
			cfg.max_sendq = (size_t)parse_number("--max-sendq", optarg, 1024,
			                                     (unsigned long long)SIZE_MAX / 2,
			                                     "a number of bytes, at least 1024");
			break;
		case OPT_MAX_LINE:
			cfg.max_line = (size_t)parse_number("--max-line", optarg, 16, 1048576,
			                                    "a number of bytes from 16 to 1048576");
			break;
		case OPT_HISTORY:
			cfg.history = (size_t)parse_number("--history", optarg, 0, 100000,
			                                   "a number of lines from 0 to 100000");
			break;
		case OPT_IDLE:
			cfg.idle_timeout =
			        (unsigned)parse_number("--idle-timeout", optarg, 0, 86400 * 365,
			                               "a number of seconds (0: never)");
			break;
		case OPT_PER_IP:
			cfg.max_per_ip = (unsigned)parse_number("--max-per-ip", optarg, 0, 10000000,
			                                        "a number (0: no limit)");
			break;
		case OPT_FLOOD_RATE:
			cfg.flood_rate =
			        (unsigned)parse_number("--flood-rate", optarg, 0, 1000000,
			                               "lines per second from 0 (off) to 1000000");
			break;
		case OPT_FLOOD_BURST:
			cfg.flood_burst =
			        (unsigned)parse_number("--flood-burst", optarg, 1, 1000000,
			                               "a number of lines from 1 to 1000000");
			break;
		case OPT_REDIS:
#ifndef HAVE_HIREDIS
			fprintf(stderr, "chat-server: %s--redis: this chat-server was built without "
			                "hiredis (configure --with-hiredis; Debian: libhiredis-dev)\n",
			        where);
			return 2;
#endif
			if (redis_url_parse(optarg, &url, err, sizeof(err)) != 0) {
				fprintf(stderr, "chat-server: %sinvalid --redis '%s': %s\n", where,
				        optarg, err);
				return 2;
			}
			cfg.redis = optarg;
			break;
		case OPT_CLUSTER:
			if (!name_ok(optarg))
				bad_value("--cluster", optarg,
				          "1 to 64 letters, digits, '.', '_', '-' or ':'");
			cfg.cluster = optarg;
			break;
		case OPT_NODE:
			if (!name_ok(optarg))
				bad_value("--node", optarg,
				          "1 to 64 letters, digits, '.', '_', '-' or ':'");
			cfg.node = optarg;
			break;
		case OPT_BACKLOG:
			cfg.cluster_backlog =
			        (size_t)parse_number("--cluster-backlog", optarg, 100, 10000000,
			                             "a number of lines from 100 to 10000000");
			break;
		case OPT_REDIS_TIMEOUT:
			cfg.redis_timeout = (unsigned)parse_number("--redis-timeout", optarg, 1, 300,
			                                           "a number of seconds from 1 to 300");
			break;
		case OPT_NODE_TIMEOUT:
			cfg.node_timeout = (unsigned)parse_number("--node-timeout", optarg, 2, 300,
			                                          "a number of seconds from 2 to 300");
			break;
		case OPT_TLS_PORT:
#ifndef HAVE_OPENSSL
			fprintf(stderr, "chat-server: %s--tls-port: this chat-server was built without "
			                "OpenSSL (configure --with-openssl; Debian: libssl-dev)\n",
			        where);
			return 2;
#endif
			parse_number("--tls-port", optarg, 0, 65535, "a port number from 0 to 65535");
			cfg.tls_port = optarg;
			break;
		case OPT_TLS_CERT:
			if (optarg[0] == '\0')
				bad_value("--tls-cert", optarg, "a PEM file");
			cfg.tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			if (optarg[0] == '\0')
				bad_value("--tls-key", optarg, "a PEM file");
			cfg.tls_key = optarg;
			break;
		case OPT_NO_PLAIN: cfg.no_plain = true; break;
		case OPT_TLS_TIMEOUT:
			cfg.tls_handshake_timeout =
			        (unsigned)parse_number("--tls-handshake-timeout", optarg, 1, 300,
			                               "a number of seconds from 1 to 300");
			break;
		case OPT_TLS_HANDSHAKES:
			cfg.tls_max_handshakes =
			        (size_t)parse_number("--tls-max-handshakes", optarg, 1, 1000000,
			                             "a number from 1 to 1000000");
			break;
		case OPT_CLOAK: cfg.cloak = true; break;
		case OPT_METRICS:
			if (metrics_parse_addr(optarg, metrics_addr, sizeof(metrics_addr),
			                       &cfg.metrics_host, &cfg.metrics_port, err,
			                       sizeof(err)) != 0) {
				fprintf(stderr, "chat-server: %sinvalid --metrics '%s': %s\n", where,
				        optarg, err);
				return 2;
			}
			break;
		case OPT_MOTD:
			if (optarg[0] == '\0')
				bad_value("--motd", optarg, "a text file");
			cfg.motd = optarg;
			break;
		case OPT_MAX_ROOMS:
			cfg.max_rooms = (size_t)parse_number("--max-rooms", optarg, 1, 1000000,
			                                     "a number from 1 to 1000000");
			break;
		case 'l':
			if (log_parse_level(optarg, &level) != 0)
				bad_value("--log-level", optarg, "error, warn, info or debug");
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("chat-server (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION); return 0;
		case ':':
			fprintf(stderr, "chat-server: option %s needs a value\n", args[optind - 1]);
			usage(stderr);
			return 2;
		default:
			if (optopt != 0)
				fprintf(stderr, "chat-server: unknown option -%c\n", optopt);
			else
				fprintf(stderr, "chat-server: unknown option %s\n",
				        args[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < nargs) {
		fprintf(stderr, "chat-server: unexpected argument '%s'\n", args[optind]);
		usage(stderr);
		return 2;
	}
	if (systemd_listeners(passed_fds, passed_tls, SERVER_MAX_LISTEN, &cfg.npassed, err,
	                      sizeof(err)) != 0) {
		fprintf(stderr, "chat-server: socket activation: %s\n", err);
		return 1;
	}
	cfg.passed_fds = passed_fds;
	cfg.passed_tls = passed_tls;
	if (cfg.metrics_port != NULL && atoi(cfg.metrics_port) != 0 &&
	    (atoi(cfg.metrics_port) == atoi(cfg.port) ||
	     (cfg.tls_port != NULL && atoi(cfg.metrics_port) == atoi(cfg.tls_port)))) {
		fprintf(stderr, "chat-server: --metrics: port %s is a chat port; metrics need a "
		                "port of their own\n",
		        cfg.metrics_port);
		return 2;
	}
	if (check_together(&cfg) != 0 || check_tls(&cfg) != 0)
		return 2;
	log_set_level(level);
	log_detect_journal();
	return server_run(&cfg);
}
