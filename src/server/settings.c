/*
 * chat-server's settings (settings.h): one getopt loop over the -c file's
 * settings and then the command line's.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "greet.h"
#include "metrics.h"
#include "msg.h"
#include "redis_url.h"
#include "settings.h"

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

void
settings_usage(FILE *fp)
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
	        "                           the command line overrides them; reread on SIGHUP\n"
	        "  -l, --log-level LEVEL    error, warn, info or debug (default info)\n"
	        "  -h, --help               this help\n"
	        "  -V, --version            the version\n");
}

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

/* Where messages go, and the "FILE:LINE: " of the setting being parsed
 * ("" for the command line's). */
struct parse {
	char *err;
	size_t len;
	const char *where;
};

static int
bad(struct parse *p, const char *opt, const char *val, const char *expected)
{
	snprintf(p->err, p->len, "%sinvalid %s '%s': expected %s", p->where, opt, val, expected);
	return -EINVAL;
}

/* A whole decimal number in [min, max] into *out, or -EINVAL naming opt. */
static int
number(struct parse *p, const char *opt, const char *val, unsigned long long min,
       unsigned long long max, const char *expected, unsigned long long *out)
{
	char *end;

	errno = 0;
	if (val[0] < '0' || val[0] > '9')
		return bad(p, opt, val, expected);
	*out = strtoull(val, &end, 10);
	if (errno != 0 || *end != '\0' || *out < min || *out > max)
		return bad(p, opt, val, expected);
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

static void
defaults(struct server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->port = DEFAULT_PORT;
	cfg->max_sendq = DEFAULT_MAX_SENDQ;
	cfg->max_line = DEFAULT_MAX_LINE;
	cfg->flood_rate = DEFAULT_FLOOD_RATE;
	cfg->flood_burst = DEFAULT_FLOOD_BURST;
	cfg->cluster = DEFAULT_CLUSTER;
	cfg->cluster_backlog = DEFAULT_BACKLOG;
	cfg->redis_timeout = DEFAULT_REDIS_TIMEOUT;
	cfg->node_timeout = DEFAULT_NODE_TIMEOUT;
	cfg->tls_handshake_timeout = DEFAULT_TLS_TIMEOUT;
	cfg->tls_max_handshakes = DEFAULT_TLS_HANDSHAKES;
}

/* -c FILE, --config FILE, --config=FILE or -cFILE on argv, or NULL. */
static const char *
find_config(int argc, char **argv)
{
	const char *path = NULL;

	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			path = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2] != '\0')
			path = argv[i] + 2;
		else if (strcmp(argv[i], "--") == 0)
			break;
	}
	return path;
}

int
settings_load(struct settings *st, int argc, char **argv, bool *usage_too, char *err, size_t len)
{
	static const char *const not_in_file[] = { "config", "help", "version", NULL };
	struct server_config *cfg = &st->cfg;
	char where[4200] = "";
	struct parse p = { err, len, where };
	struct redis_url url;
	char why[200];
	char **args = argv;
	unsigned long long v;
	int c, rc, nargs = argc;

	memset(st, 0, sizeof(*st));
	defaults(cfg);
	st->level = LOG_INFO;
	*usage_too = false;
	/* -c FILE first: its settings go before the command line's, which
	 * thus override them (getopt takes the last of an option). */
	if ((st->conf_path = find_config(argc, argv)) != NULL) {
		if (conf_load(st->conf_path, longopts, not_in_file, &st->conf, err, len) != 0)
			return -EINVAL;
		nargs = argc + st->conf.n;
		if ((args = calloc((size_t)nargs + 1, sizeof(*args))) == NULL) {
			snprintf(err, len, "out of memory");
			return -ENOMEM;
		}
		st->args = args;
		args[0] = argv[0];
		if (st->conf.n > 0) /* an all-comment file has no array at all */
			memcpy(args + 1, st->conf.argv, (size_t)st->conf.n * sizeof(*args));
		memcpy(args + 1 + st->conf.n, argv + 1, (size_t)(argc - 1) * sizeof(*args));
	}

	*usage_too = true; /* from here on, what is wrong is a setting */
	opterr = 0;        /* we say what is wrong ourselves */
	optind = 0;        /* glibc: start afresh, as for a second load */
	while ((c = getopt_long(nargs, args, ":p:b:w:l:c:hV", longopts, NULL)) != -1) {
		/* Where the option came from, for messages: the file's
		 * settings are args[1 .. conf.n], one element each. */
		if (optind - 1 >= 1 && optind - 1 <= st->conf.n)
			snprintf(where, sizeof(where), "%s: ", st->conf.where[optind - 2]);
		else
			where[0] = '\0';
		switch (c) {
		case 'c': break; /* read above */
		case 'p':
			if ((rc = number(&p, "--port", optarg, 0, 65535, "a port number from 0 to 65535",
			                 &v)) != 0)
				return rc;
			cfg->port = optarg;
			break;
		case 'b':
			if (optarg[0] == '\0')
				return bad(&p, "--bind", optarg, "an address or host name");
			cfg->bind = optarg;
			break;
		case OPT_TLS_CERT:
			if (optarg[0] == '\0')
				return bad(&p, "--tls-cert", optarg, "a PEM file");
			cfg->tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			if (optarg[0] == '\0')
				return bad(&p, "--tls-key", optarg, "a PEM file");
			cfg->tls_key = optarg;
			break;
		case OPT_MOTD:
			if (optarg[0] == '\0')
				return bad(&p, "--motd", optarg, "a text file");
			cfg->motd = optarg;
			break;
		case 'w':
			if ((rc = number(&p, "--workers", optarg, 1, 1024, "a number from 1 to 1024", &v)) != 0)
				return rc;
			cfg->workers = (unsigned)v;
			break;
		case OPT_MAX_CLIENTS:
			if ((rc = number(&p, "--max-clients", optarg, 1, 10000000, "a number from 1 to 10000000", &v)) != 0)
				return rc;
			cfg->max_clients = (size_t)v;
			break;
		case OPT_MAX_SENDQ:
			if ((rc = number(&p, "--max-sendq", optarg, 1024, (unsigned long long)SIZE_MAX / 2, "a number of bytes, at least 1024", &v)) != 0)
				return rc;
			cfg->max_sendq = (size_t)v;
			break;
		case OPT_MAX_LINE:
			if ((rc = number(&p, "--max-line", optarg, 16, 1048576, "a number of bytes from 16 to 1048576", &v)) != 0)
				return rc;
			cfg->max_line = (size_t)v;
			break;
		case OPT_HISTORY:
			if ((rc = number(&p, "--history", optarg, 0, 100000, "a number of lines from 0 to 100000", &v)) != 0)
				return rc;
			cfg->history = (size_t)v;
			break;
		case OPT_IDLE:
			if ((rc = number(&p, "--idle-timeout", optarg, 0, 86400 * 365, "a number of seconds (0: never)", &v)) != 0)
				return rc;
			cfg->idle_timeout = (unsigned)v;
			break;
		case OPT_PER_IP:
			if ((rc = number(&p, "--max-per-ip", optarg, 0, 10000000, "a number (0: no limit)", &v)) != 0)
				return rc;
			cfg->max_per_ip = (unsigned)v;
			break;
		case OPT_FLOOD_RATE:
			if ((rc = number(&p, "--flood-rate", optarg, 0, 1000000, "lines per second from 0 (off) to 1000000", &v)) != 0)
				return rc;
			cfg->flood_rate = (unsigned)v;
			break;
		case OPT_FLOOD_BURST:
			if ((rc = number(&p, "--flood-burst", optarg, 1, 1000000, "a number of lines from 1 to 1000000", &v)) != 0)
				return rc;
			cfg->flood_burst = (unsigned)v;
			break;
		case OPT_BACKLOG:
			if ((rc = number(&p, "--cluster-backlog", optarg, 100, 10000000, "a number of lines from 100 to 10000000", &v)) != 0)
				return rc;
			cfg->cluster_backlog = (size_t)v;
			break;
		case OPT_REDIS_TIMEOUT:
			if ((rc = number(&p, "--redis-timeout", optarg, 1, 300, "a number of seconds from 1 to 300", &v)) != 0)
				return rc;
			cfg->redis_timeout = (unsigned)v;
			break;
		case OPT_NODE_TIMEOUT:
			if ((rc = number(&p, "--node-timeout", optarg, 2, 300, "a number of seconds from 2 to 300", &v)) != 0)
				return rc;
			cfg->node_timeout = (unsigned)v;
			break;
		case OPT_TLS_TIMEOUT:
			if ((rc = number(&p, "--tls-handshake-timeout", optarg, 1, 300, "a number of seconds from 1 to 300", &v)) != 0)
				return rc;
			cfg->tls_handshake_timeout = (unsigned)v;
			break;
		case OPT_TLS_HANDSHAKES:
			if ((rc = number(&p, "--tls-max-handshakes", optarg, 1, 1000000, "a number from 1 to 1000000", &v)) != 0)
				return rc;
			cfg->tls_max_handshakes = (size_t)v;
			break;
		case OPT_MAX_ROOMS:
			if ((rc = number(&p, "--max-rooms", optarg, 1, 1000000, "a number from 1 to 1000000", &v)) != 0)
				return rc;
			cfg->max_rooms = (size_t)v;
			break;
		case OPT_REDIS:
#ifndef HAVE_HIREDIS
			snprintf(err, len,
			         "%s--redis: this chat-server was built without hiredis "
			         "(configure --with-hiredis; Debian: libhiredis-dev)",
			         where);
			*usage_too = false;
			return -EINVAL;
#endif
			if (redis_url_parse(optarg, &url, why, sizeof(why)) != 0) {
				snprintf(err, len, "%sinvalid --redis '%s': %s", where, optarg, why);
				*usage_too = false;
				return -EINVAL;
			}
			cfg->redis = optarg;
			break;
		case OPT_CLUSTER:
		case OPT_NODE:
			if (!name_ok(optarg))
				return bad(&p, c == OPT_NODE ? "--node" : "--cluster", optarg,
				           "1 to 64 letters, digits, '.', '_', '-' or ':'");
			*(c == OPT_NODE ? &cfg->node : &cfg->cluster) = optarg;
			break;
		case OPT_TLS_PORT:
#ifndef HAVE_OPENSSL
			snprintf(err, len,
			         "%s--tls-port: this chat-server was built without OpenSSL "
			         "(configure --with-openssl; Debian: libssl-dev)",
			         where);
			*usage_too = false;
			return -EINVAL;
#endif
			if ((rc = number(&p, "--tls-port", optarg, 0, 65535,
			                 "a port number from 0 to 65535", &v)) != 0)
				return rc;
			cfg->tls_port = optarg;
			break;
		case OPT_NO_PLAIN: cfg->no_plain = true; break;
		case OPT_CLOAK: cfg->cloak = true; break;
		case OPT_METRICS:
			if (metrics_parse_addr(optarg, st->metrics_addr, sizeof(st->metrics_addr),
			                       &cfg->metrics_host, &cfg->metrics_port, why,
			                       sizeof(why)) != 0) {
				snprintf(err, len, "%sinvalid --metrics '%s': %s", where, optarg, why);
				*usage_too = false;
				return -EINVAL;
			}
			break;
		case 'l':
			if (log_parse_level(optarg, &st->level) != 0)
				return bad(&p, "--log-level", optarg, "error, warn, info or debug");
			break;
		case 'h': return SETTINGS_HELP;
		case 'V': return SETTINGS_VERSION;
		case ':':
			snprintf(err, len, "%soption %s needs a value", where, args[optind - 1]);
			return -EINVAL;
		default:
			if (optopt != 0)
				snprintf(err, len, "unknown option -%c", optopt);
			else
				snprintf(err, len, "unknown option %s", args[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < nargs) {
		snprintf(err, len, "unexpected argument '%s'", args[optind]);
		return -EINVAL;
	}
	*usage_too = false;
	return 0;
}

/*
 * Settings each valid alone that cannot work together: a send queue must
 * hold the longest line, and a newcomer's must hold the history replay and
 * one live line on top.  Refused rather than left to drop clients later.
 */
static int
check_together(const struct server_config *cfg, char *err, size_t len)
{
	size_t line = msg_chat_max(cfg->max_line);

	if (cfg->max_sendq < line) {
		snprintf(err, len,
		         "--max-line %zu needs --max-sendq of at least %zu bytes "
		         "(a line and its head), not %zu",
		         cfg->max_line, line, cfg->max_sendq);
		return -EINVAL;
	}
	/* The greeting (greet.h) is queued ahead of the replay. */
	if (cfg->history > 0 &&
	    (cfg->max_sendq < GREET_MAX || (cfg->max_sendq - GREET_MAX) / line < cfg->history + 1)) {
		snprintf(err, len,
		         "--history %zu with --max-line %zu needs --max-sendq of at "
		         "least %zu bytes (the greeting, the replay and one line more), not %zu",
		         cfg->history, cfg->max_line, (cfg->history + 1) * line + GREET_MAX,
		         cfg->max_sendq);
		return -EINVAL;
	}
	if (cfg->metrics_port != NULL && atoi(cfg->metrics_port) != 0 &&
	    (atoi(cfg->metrics_port) == atoi(cfg->port) ||
	     (cfg->tls_port != NULL && atoi(cfg->metrics_port) == atoi(cfg->tls_port)))) {
		snprintf(err, len, "--metrics: port %s is a chat port; metrics need a port of their own",
		         cfg->metrics_port);
		return -EINVAL;
	}
	return 0;
}

/* The TLS options go together; files are checked when they are loaded.
 * A TLS socket passed by systemd stands for --tls-port. */
static int
check_tls(const struct server_config *cfg, char *err, size_t len)
{
	size_t plain = 0, tls = 0;

	for (size_t i = 0; i < cfg->npassed; i++)
		cfg->passed_tls[i] ? tls++ : plain++;
	if (plain > 0 && cfg->no_plain) {
		snprintf(err, len, "--no-plain, but systemd passed a plain listening socket "
		                   "(name it 'tls' with FileDescriptorName=tls)");
		return -EINVAL;
	}
	if (tls > 0) {
#ifndef HAVE_OPENSSL
		snprintf(err, len, "systemd passed a TLS socket, but this chat-server was built "
		                   "without OpenSSL (configure --with-openssl; Debian: libssl-dev)");
		return -EINVAL;
#endif
		if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
			snprintf(err, len, "systemd passed a TLS socket (FileDescriptorName=tls): it "
			                   "needs --tls-cert FILE and --tls-key FILE");
			return -EINVAL;
		}
		return 0;
	}
	if (cfg->tls_port == NULL) {
		if (cfg->tls_cert != NULL || cfg->tls_key != NULL || cfg->no_plain) {
			snprintf(err, len, "%s needs --tls-port",
			         cfg->no_plain   ? "--no-plain"
			         : cfg->tls_cert ? "--tls-cert"
			                         : "--tls-key");
			return -EINVAL;
		}
		return 0;
	}
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
		snprintf(err, len, "--tls-port needs --tls-cert FILE and --tls-key FILE");
		return -EINVAL;
	}
	return 0;
}

int
settings_check(const struct server_config *cfg, char *err, size_t len)
{
	int rc = check_together(cfg, err, len);

	return rc != 0 ? rc : check_tls(cfg, err, len);
}

enum kind { STR, SECRET, SIZE, UNS, BOOL };

static const struct field {
	const char *key;
	size_t off;
	enum kind kind;
} fields[] = {
	{ "port", offsetof(struct server_config, port), STR },
	{ "bind", offsetof(struct server_config, bind), STR },
	{ "workers", offsetof(struct server_config, workers), UNS },
	{ "max-clients", offsetof(struct server_config, max_clients), SIZE },
	{ "max-sendq", offsetof(struct server_config, max_sendq), SIZE },
	{ "max-line", offsetof(struct server_config, max_line), SIZE },
	{ "history", offsetof(struct server_config, history), SIZE },
	{ "max-rooms", offsetof(struct server_config, max_rooms), SIZE },
	{ "idle-timeout", offsetof(struct server_config, idle_timeout), UNS },
	{ "max-per-ip", offsetof(struct server_config, max_per_ip), UNS },
	{ "flood-rate", offsetof(struct server_config, flood_rate), UNS },
	{ "flood-burst", offsetof(struct server_config, flood_burst), UNS },
	{ "motd", offsetof(struct server_config, motd), STR },
	{ "cloak", offsetof(struct server_config, cloak), BOOL },
	{ "redis", offsetof(struct server_config, redis), SECRET },
	{ "cluster", offsetof(struct server_config, cluster), STR },
	{ "node", offsetof(struct server_config, node), STR },
	{ "cluster-backlog", offsetof(struct server_config, cluster_backlog), SIZE },
	{ "redis-timeout", offsetof(struct server_config, redis_timeout), UNS },
	{ "node-timeout", offsetof(struct server_config, node_timeout), UNS },
	{ "tls-port", offsetof(struct server_config, tls_port), STR },
	{ "tls-cert", offsetof(struct server_config, tls_cert), STR },
	{ "tls-key", offsetof(struct server_config, tls_key), STR },
	{ "no-plain", offsetof(struct server_config, no_plain), BOOL },
	{ "tls-handshake-timeout", offsetof(struct server_config, tls_handshake_timeout), UNS },
	{ "tls-max-handshakes", offsetof(struct server_config, tls_max_handshakes), SIZE },
	{ "metrics address", offsetof(struct server_config, metrics_host), STR },
	{ "metrics port", offsetof(struct server_config, metrics_port), STR },
};

/* The string field at p. */
static const char *
str(const char *p)
{
	const char *v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* f's value in cfg as text, into buf; "" for a string not set. */
static const char *
show(const struct server_config *cfg, const struct field *f, char *buf, size_t len)
{
	const char *p = (const char *)cfg + f->off;

	switch (f->kind) {
	case STR: return str(p) != NULL ? str(p) : "";
	case SECRET: return str(p) != NULL ? "(set)" : "";
	case SIZE: snprintf(buf, len, "%zu", *(const size_t *)(const void *)p); break;
	case UNS: snprintf(buf, len, "%u", *(const unsigned *)(const void *)p); break;
	case BOOL: return *(const bool *)(const void *)p ? "yes" : "no";
	}
	return buf;
}

size_t
settings_diff(const struct server_config *a, const struct server_config *b,
              void (*each)(const char *key, const char *was, const char *now, void *arg), void *arg)
{
	size_t n = 0;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const struct field *f = &fields[i];
		char ba[32], bb[32];
		const char *va = show(a, f, ba, sizeof(ba)), *vb = show(b, f, bb, sizeof(bb));
		bool same = strcmp(va, vb) == 0;

		/* A Redis URL is shown as "(set)": its text decides. */
		if (f->kind == SECRET && same && va[0] != '\0')
			same = strcmp(str((const char *)a + f->off), str((const char *)b + f->off)) == 0;
		if (same)
			continue;
		each(f->key, va[0] != '\0' ? va : "(none)", vb[0] != '\0' ? vb : "(none)", arg);
		n++;
	}
	return n;
}

void
settings_free(struct settings *st)
{
	conf_free(&st->conf);
	free(st->args);
	st->args = NULL;
}
