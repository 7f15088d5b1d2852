/*
 * The metrics endpoint (metrics.h): one thread, poll(2) over its
 * listeners, its scrapers and an eventfd that stops it.
 *
 * Ownership: everything here is the metrics thread's, but for stop (an
 * atomic) and wakefd, which metrics_stop writes.
 */
#define _GNU_SOURCE /* accept4 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "mono.h"
#include "net.h"
#include "stats.h"
#include "wake.h"

#define MAX_LISTEN 4
#define REQUEST_MAX 8192

struct scraper {
	int fd;              /* -1: a free slot */
	char in[REQUEST_MAX];
	size_t inlen;
	char *out; /* the response, once the request is whole */
	size_t outlen, outoff;
	long deadline; /* CLOCK_MONOTONIC ms: closed then, done or not */
};

struct metrics {
	struct metrics_config cfg;
	int lfds[MAX_LISTEN];
	size_t nlisten;
	int wakefd;
	atomic_bool stop;
	pthread_t thread;
	time_t started; /* process_start_time_seconds */
	struct scraper conns[METRICS_MAX_CONNS];
	size_t nconns;
};

/* --- the text format ------------------------------------------------------------- */

struct text {
	char *p;
	size_t len, cap;
	bool oom;
};

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->p != NULL ? t->p + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 4096;
		char *p;

		while (cap - t->len <= (size_t)n)
			cap *= 2;
		if ((p = realloc(t->p, cap)) == NULL) {
			t->oom = true;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
}

/* A metric's HELP and TYPE lines. */
static void
head(struct text *t, const char *name, const char *type, const char *help)
{
	text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric with one sample, no labels. */
static void
one(struct text *t, const char *name, const char *type, const char *help, long long v)
{
	head(t, name, type, help);
	text_printf(t, "%s %lld\n", name, v);
}

/* One sample per label value: values[i] is counted by stats id first + i
 * (stats.h keeps each metric's ids together, in this order). */
static void
labelled(struct text *t, const char *name, const char *key, const char *const *values, int n,
         enum stats_id first)
{
	for (int i = 0; i < n; i++)
		text_printf(t, "%s{%s=\"%s\"} %lld\n", name, key, values[i],
		            (long long)stats_get((enum stats_id)(first + i)));
}

static void
render(struct metrics *m, struct text *t)
{
	struct tp_stats st = { TP_STATS_INIT };

	static const char *const listeners[] = { "plain", "tls" };
	static const char *const refusals[] = { "max_clients", "max_per_ip", "tls_handshakes",
		                                "out_of_fds" };
	static const char *const drops[] = { "sendq", "idle" };

	head(t, "chat_clients", "gauge", "Client connections open, by listener.");
	labelled(t, "chat_clients", "listener", listeners, 2, STATS_CLIENTS_PLAIN);
	head(t, "chat_connections_accepted_total", "counter",
	     "Connections accepted from the kernel, by listener (refused ones included).");
	labelled(t, "chat_connections_accepted_total", "listener", listeners, 2,
	         STATS_ACCEPTED_PLAIN);
	head(t, "chat_connections_refused_total", "counter",
	     "Connections refused, by reason: max_clients (--max-clients), max_per_ip "
	     "(--max-per-ip), tls_handshakes (--tls-max-handshakes), out_of_fds.");
	labelled(t, "chat_connections_refused_total", "reason", refusals, 4, STATS_REFUSED_FULL);
	one(t, "chat_lines_received_total", "counter",
	    "Lines read from clients (commands included, empty lines not).",
	    (long long)stats_get(STATS_LINES_IN));
	one(t, "chat_received_bytes_total", "counter", "Bytes read from clients.",
	    (long long)stats_get(STATS_BYTES_IN));
	one(t, "chat_lines_sent_total", "counter",
	    "Lines queued to clients (one per recipient; notices included).",
	    (long long)stats_get(STATS_LINES_OUT));
	one(t, "chat_sent_bytes_total", "counter", "Bytes written to clients.",
	    (long long)stats_get(STATS_BYTES_OUT));
	head(t, "chat_clients_dropped_total", "counter",
	     "Clients the server disconnected, by reason: sendq (--max-sendq), idle "
	     "(--idle-timeout).");
	labelled(t, "chat_clients_dropped_total", "reason", drops, 2, STATS_DROPS_SENDQ);
	one(t, "chat_flood_parked_total", "counter",
	    "Times a client's lines were held back for its flood budget (--flood-rate).",
	    (long long)stats_get(STATS_FLOOD_PARKED));
	one(t, "chat_send_queue_bytes", "gauge", "Bytes queued to clients, not yet written.",
	    (long long)stats_get(STATS_SENDQ_BYTES));
	one(t, "chat_history_lines", "gauge", "Lines kept for replay (--history), all rooms.",
	    (long long)stats_get(STATS_HISTORY_LINES));
	one(t, "chat_rooms", "gauge", "Rooms, #lobby included.",
	    (long long)stats_get(STATS_ROOMS));
	one(t, "chat_tls_handshakes_total", "counter", "TLS handshakes finished.",
	    (long long)stats_get(STATS_TLS_HANDSHAKES));
	one(t, "chat_tls_handshake_failures_total", "counter",
	    "TLS handshakes that failed or timed out.",
	    (long long)stats_get(STATS_TLS_FAILURES));
	if (m->cfg.cluster) {
		one(t, "chat_cluster_up", "gauge", "1 if the link to Redis is up, else 0.",
		    (long long)stats_get(STATS_CLUSTER_UP));
		one(t, "chat_cluster_backlog_lines", "gauge",
		    "Lines of ours not yet sent to Redis (--cluster-backlog bounds them).",
		    (long long)stats_get(STATS_CLUSTER_BACKLOG));
		head(t, "chat_cluster_lag_seconds", "gauge",
		     "Our last line's trip: from its sender to Redis and back to this server.");
		text_printf(t, "chat_cluster_lag_seconds %.6f\n",
		            (double)stats_get(STATS_CLUSTER_LAG_US) / 1e6);
	}
	if (tp_pool_stats(m->cfg.pool, &st) == 0) {
		one(t, "chat_pool_workers", "gauge", "Relay threads alive in the pool.",
		    (long long)st.workers);
		one(t, "chat_pool_workers_max", "gauge", "Relay threads the pool may have (--workers).",
		    (long long)st.max_workers);
		one(t, "chat_pool_tasks_queued", "gauge", "Jobs waiting for a worker.",
		    (long long)st.queued);
		one(t, "chat_pool_tasks_running", "gauge", "Jobs running now.",
		    (long long)st.running);
		one(t, "chat_pool_tasks_completed_total", "counter", "Jobs that ran to their end.",
		    (long long)st.completed);
		one(t, "chat_pool_tasks_failed_total", "counter", "Jobs that returned an error.",
		    (long long)st.failed);
	}
	head(t, "chat_build_info", "gauge", "The version, as a label; always 1.");
	text_printf(t, "chat_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	one(t, "process_start_time_seconds", "gauge", "When the server started, in Unix time.",
	    (long long)m->started);
}

/* --- HTTP -------------------------------------------------------------------------- */

/* The response to a whole request (in[0..n)), into s->out. */
static void
respond(struct metrics *m, struct scraper *s, bool too_long)
{
	static const char type[] = "text/plain; version=0.0.4; charset=utf-8";
	char method[16], target[256], version[16];
	struct text body = { 0 }, all = { 0 };
	const char *status = "200 OK", *extra = "";
	bool head_only = false;

	s->in[s->inlen < sizeof(s->in) ? s->inlen : sizeof(s->in) - 1] = '\0';
	if (too_long) {
		status = "431 Request Header Fields Too Large";
		text_printf(&body, "request over %d bytes\n", REQUEST_MAX);
	} else if (sscanf(s->in, "%15[A-Z] %255[^ \r\n] %15[^\r\n]", method, target, version) !=
	                   3 ||
	           strncmp(version, "HTTP/1.", 7) != 0) {
		status = "400 Bad Request";
		text_printf(&body, "not an HTTP/1 request\n");
	} else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		status = "405 Method Not Allowed";
		extra = "Allow: GET, HEAD\r\n";
		text_printf(&body, "%s: only GET and HEAD\n", method);
	} else if (strcmp(target, "/metrics") != 0 && strncmp(target, "/metrics?", 9) != 0) {
		status = "404 Not Found";
		text_printf(&body, "not found: the metrics are at /metrics\n");
	} else {
		head_only = strcmp(method, "HEAD") == 0;
		render(m, &body);
	}
	if (body.oom) {
		status = "500 Internal Server Error";
		body.len = 0;
	}
	text_printf(&all,
	            "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
	            "Connection: close\r\n\r\n",
	            status, strncmp(status, "200", 3) == 0 ? type : "text/plain; charset=utf-8",
	            body.len, extra);
	if (!head_only && body.len > 0)
		text_printf(&all, "%.*s", (int)body.len, body.p);
	free(body.p);
	if (all.oom) {
		free(all.p);
		all.p = NULL;
		all.len = 0;
	}
	s->out = all.p;
	s->outlen = all.len;
	s->outoff = 0;
}

static void
close_scraper(struct metrics *m, struct scraper *s)
{
	close(s->fd);
	free(s->out);
	s->fd = -1;
	s->out = NULL;
	m->nconns--;
}

/* Write what is left; close once all is written or the peer is gone. */
static void
write_some(struct metrics *m, struct scraper *s)
{
	while (s->outoff < s->outlen) {
		ssize_t n = send(s->fd, s->out + s->outoff, s->outlen - s->outoff,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break;
		s->outoff += (size_t)n;
	}
	close_scraper(m, s);
}

static void
read_some(struct metrics *m, struct scraper *s)
{
	ssize_t n = recv(s->fd, s->in + s->inlen, sizeof(s->in) - 1 - s->inlen, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		close_scraper(m, s); /* gone before its request was whole */
		return;
	}
	s->inlen += (size_t)n;
	s->in[s->inlen] = '\0';
	if (strstr(s->in, "\r\n\r\n") != NULL || strstr(s->in, "\n\n") != NULL)
		respond(m, s, false);
	else if (s->inlen == sizeof(s->in) - 1)
		respond(m, s, true);
	else
		return;
	if (s->out == NULL)
		close_scraper(m, s); /* out of memory: nothing to say */
	else
		write_some(m, s);
}

static void
accept_one(struct metrics *m, int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return; /* EAGAIN, or a transient error: poll says again */
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
		struct scraper *s = &m->conns[i];

		if (s->fd >= 0)
			continue;
		s->fd = fd;
		s->inlen = 0;
		s->out = NULL;
		s->deadline = mono_ms() + METRICS_TIMEOUT_MS;
		m->nconns++;
		return;
	}
	close(fd); /* not reached: listeners are not polled while full */
}

static void *
run(void *arg)
{
	struct metrics *m = arg;
	struct pollfd pfd[1 + MAX_LISTEN + METRICS_MAX_CONNS];
	struct scraper *who[METRICS_MAX_CONNS];

	while (!atomic_load(&m->stop)) {
		size_t n = 0, nl = 0, nc = 0;
		long now = mono_ms(), timeout = 1000;
		int rc;

		pfd[n++] = (struct pollfd){ .fd = m->wakefd, .events = POLLIN };
		/* Full: the listeners wait in their backlog meanwhile. */
		if (m->nconns < METRICS_MAX_CONNS)
			for (size_t i = 0; i < m->nlisten; i++, nl++)
				pfd[n++] = (struct pollfd){ .fd = m->lfds[i], .events = POLLIN };
		for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
			struct scraper *s = &m->conns[i];

			if (s->fd < 0)
				continue;
			if (s->deadline <= now) {
				close_scraper(m, s);
				continue;
			}
			if (s->deadline - now < timeout)
				timeout = s->deadline - now;
			who[nc++] = s;
			pfd[n++] = (struct pollfd){ .fd = s->fd,
				                    .events = s->out != NULL ? POLLOUT : POLLIN };
		}
		rc = poll(pfd, n, (int)timeout);
		if (rc <= 0)
			continue;
		if (pfd[0].revents != 0)
			wake_drain(m->wakefd);
		for (size_t i = 0; i < nl; i++)
			if (pfd[1 + i].revents != 0)
				accept_one(m, pfd[1 + i].fd);
		for (size_t i = 0; i < nc; i++) {
			struct pollfd *p = &pfd[1 + nl + i];

			if (p->revents == 0)
				continue;
			if (who[i]->out != NULL)
				write_some(m, who[i]);
			else
				read_some(m, who[i]);
		}
	}
	return NULL;
}

/* --- start and stop ---------------------------------------------------------------- */

int
metrics_parse_addr(const char *s, char *buf, size_t buflen, const char **host, const char **port,
                   char *err, size_t len)
{
	char *colon, *h;
	size_t n = strlen(s);

	if (n == 0 || n >= buflen) {
		snprintf(err, len, "expected ADDR:PORT");
		return -EINVAL;
	}
	memcpy(buf, s, n + 1);
	if ((colon = strrchr(buf, ':')) == NULL) {
		snprintf(err, len, "expected ADDR:PORT (127.0.0.1:9100, [::1]:9100, :9100)");
		return -EINVAL;
	}
	*colon = '\0';
	*port = colon + 1;
	h = buf;
	if (h[0] == '[') {
		size_t hl = strlen(h);

		if (hl < 3 || h[hl - 1] != ']') {
			snprintf(err, len, "an IPv6 address goes in brackets: [::1]:9100");
			return -EINVAL;
		}
		h[hl - 1] = '\0';
		h++;
	} else if (strchr(h, ':') != NULL) {
		snprintf(err, len, "an IPv6 address goes in brackets: [::1]:9100");
		return -EINVAL;
	}
	*host = h[0] != '\0' ? h : NULL;
	{
		char *end;
		unsigned long p;

		errno = 0;
		p = strtoul(*port, &end, 10);
		if ((*port)[0] < '0' || (*port)[0] > '9' || *end != '\0' || errno != 0 ||
		    p > 65535) {
			snprintf(err, len, "port '%s': expected a number from 0 to 65535", *port);
			return -EINVAL;
		}
	}
	return 0;
}

int
metrics_start(struct metrics **out, const struct metrics_config *cfg, char *err, size_t len)
{
	struct metrics *m;
	char addr[NET_ADDRSTRLEN];
	int rc;

	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, len, "--metrics: out of memory");
		return -ENOMEM;
	}
	m->cfg = *cfg;
	m->wakefd = -1;
	m->started = time(NULL);
	atomic_init(&m->stop, false);
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
		m->conns[i].fd = -1;
	rc = net_listen(cfg->host, cfg->port, 64, m->lfds, MAX_LISTEN, &m->nlisten, err, len);
	if (rc != 0)
		goto fail;
	if ((rc = wake_open()) < 0) {
		snprintf(err, len, "--metrics: %s", strerror(-rc));
		goto fail;
	}
	m->wakefd = rc;
	if ((rc = -pthread_create(&m->thread, NULL, run, m)) != 0) {
		snprintf(err, len, "--metrics: cannot start its thread: %s", strerror(-rc));
		goto fail;
	}
	for (size_t i = 0; i < m->nlisten; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockname(m->lfds[i], (struct sockaddr *)&ss, &sl) == 0) {
			net_format_addr((struct sockaddr *)&ss, addr, sizeof(addr));
			log_always(LOG_INFO, "metrics on http://%s/metrics", addr);
		}
	}
	*out = m;
	return 0;
fail:
	for (size_t i = 0; i < m->nlisten; i++)
		close(m->lfds[i]);
	if (m->wakefd >= 0)
		close(m->wakefd);
	free(m);
	return rc;
}

void
metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	atomic_store(&m->stop, true);
	wake_signal(m->wakefd);
	pthread_join(m->thread, NULL);
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
		if (m->conns[i].fd >= 0)
			close_scraper(m, &m->conns[i]);
	for (size_t i = 0; i < m->nlisten; i++)
		close(m->lfds[i]);
	close(m->wakefd);
	free(m);
}
