/*
 * The accept loop: one thread with epoll over the listening sockets, the
 * client sockets, a signalfd and a wake-up eventfd.  It accepts and
 * registers connections, and whenever one is ready it submits that
 * connection's relay job to the thread pool.  On SIGINT or SIGTERM it stops
 * accepting and reading, tells the clients, flushes their queues for up to
 * two seconds, and closes everything.
 */
#ifndef SERVER_H
#define SERVER_H

#include <stdbool.h>
#include <stddef.h>

/* Listening sockets at most: a host name's addresses, plain and TLS. */
#define SERVER_MAX_LISTEN 8

struct server_config {
	const char *bind;      /* NULL: every address (IPv6 dual stack, else IPv4) */
	const char *port;      /* decimal; "0" lets the kernel choose */
	unsigned workers;      /* 0: one per online CPU */
	size_t max_clients;    /* 0: the open-file limit minus a reserve */
	size_t max_sendq;      /* bytes queued per client before it is dropped */
	size_t max_line;       /* bytes per line before it is cut */
	size_t history;        /* chat lines replayed to whoever enters a room */
	size_t max_rooms;      /* rooms at once, #lobby included; 0: the default */
	unsigned idle_timeout; /* seconds of silence before a client is closed; 0: never */
	unsigned max_per_ip;   /* clients from one address at once; 0: no limit */
	unsigned flood_rate;   /* lines per second per client; 0: no limit */
	unsigned flood_burst;  /* lines at once before flood_rate applies */
	const char *motd;      /* --motd FILE: greeting lines, reread on SIGHUP */
	bool cloak;            /* --cloak: addresses shown as keyed hashes */

	/* A cluster (cluster.h): redis NULL is standalone. */
	const char *redis;       /* --redis URL, already checked */
	const char *cluster;     /* --cluster: key namespace */
	const char *node;        /* --node; NULL: HOST:PORT */
	size_t cluster_backlog;  /* lines kept while the link is down */
	unsigned redis_timeout;  /* seconds */
	unsigned node_timeout;   /* seconds */

	/* TLS (tls.h): tls_port NULL is none. */
	const char *tls_port;             /* decimal; "0" lets the kernel choose */
	const char *tls_cert, *tls_key;   /* PEM files, reloaded on SIGHUP */
	bool no_plain;                    /* no plain listener: TLS only */
	unsigned tls_handshake_timeout;   /* seconds from accept to a finished handshake */
	size_t tls_max_handshakes;        /* handshakes in progress at once */

	/* --metrics: the Prometheus endpoint (metrics.h); port NULL is none. */
	const char *metrics_host; /* NULL: every address */
	const char *metrics_port;

	/* The command line, reread with the -c file on SIGHUP; argv NULL:
	 * nothing to reread. */
	int argc;
	char **argv;

	/* Listeners passed by systemd (systemd.h), taken in place of
	 * binding --port (those not tls) and --tls-port (those tls). */
	const int *passed_fds;
	const bool *passed_tls;
	size_t npassed;
};

/*
 * Run until a signal asks to stop.  Messages for people go to the log.
 * Returns the process exit status: 0 after an orderly shutdown, 1 when the
 * server could not start (its reason already printed).
 */
int server_run(const struct server_config *cfg);

#endif /* SERVER_H */
