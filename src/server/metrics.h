/*
 * chat-server --metrics ADDR:PORT: the Prometheus text format at
 * GET /metrics, served by a thread of its own on its own port.
 *
 * The thread only reads: the counters of stats.h (atomics), and the
 * pool's tp_pool_stats.  A scrape therefore never takes the registry's
 * lock or a connection's, and never waits for a relay job; a slow or
 * hostile scraper holds one of METRICS_MAX_CONNS slots for at most
 * METRICS_TIMEOUT_MS, and the chat goes on regardless.
 *
 * HTTP/1.1, one request a connection (Connection: close): GET or HEAD of
 * /metrics is 200, another path 404, another method 405, a request that
 * is not HTTP 400, one over 8 KiB 431.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "threadpool.h"

#define METRICS_MAX_CONNS 8
#define METRICS_TIMEOUT_MS 5000

struct metrics;

struct metrics_config {
	const char *host; /* NULL: every address */
	const char *port; /* "0": the kernel chooses */
	tp_pool *pool;    /* read with tp_pool_stats; outlives the metrics */
	bool cluster;     /* show the chat_cluster_* series */
};

/*
 * Split "HOST:PORT", "[V6]:PORT" or ":PORT" into host (NULL for every
 * address) and port, in buf.  Returns 0, or -EINVAL with why in err.
 */
int metrics_parse_addr(const char *s, char *buf, size_t buflen, const char **host,
                       const char **port, char *err, size_t len);

/*
 * Listen and start the thread; logs where ("metrics on
 * http://127.0.0.1:9100/metrics").  Returns 0, or a negative errno with a
 * message for people in err.
 */
int metrics_start(struct metrics **out, const struct metrics_config *cfg, char *err, size_t len);

/* Stop the thread, close every socket, free.  NULL is allowed. */
void metrics_stop(struct metrics *m);

#endif /* METRICS_H */
