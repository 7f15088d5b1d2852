/* Admission and reaping; see accept.h. */
#define _GNU_SOURCE /* accept4 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "accept.h"
#include "mono.h"
#include "stats.h"
#include "tls.h"
#include "wake.h"

/* Refusals of one kind are logged at most this often; quiet joins too. */
#define REFUSE_LOG_MS 10000
/* Joins announced at once per address (see accept.h, churn). */
#define JOIN_RATE 2
#define JOIN_BURST 10

int
admission_init(struct admission *a)
{
	int rc;

	a->perip = NULL;
	a->reap_head = NULL;
	memset(&a->full_log, 0, sizeof(a->full_log));
	memset(&a->perip_log, 0, sizeof(a->perip_log));
	memset(&a->emfile_log, 0, sizeof(a->emfile_log));
	memset(&a->quiet_log, 0, sizeof(a->quiet_log));
	memset(&a->hs_log, 0, sizeof(a->hs_log));
	flood_limit_init(&a->joins, JOIN_RATE, JOIN_BURST);
	a->last_quiet_ms = 0;
	if ((a->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if ((rc = ipcount_new(&a->perip)) != 0)
		goto fail;
	if ((rc = -pthread_mutex_init(&a->reap_mu, NULL)) != 0)
		goto fail;
	if ((rc = -pthread_mutex_init(&a->wait_mu, NULL)) != 0) {
		pthread_mutex_destroy(&a->reap_mu);
		goto fail;
	}
	a->wait_head = a->wait_tail = NULL;
	return 0;
fail:
	ipcount_free(a->perip);
	close(a->spare_fd);
	return rc;
}

void
admission_destroy(struct admission *a)
{
	ipcount_free(a->perip);
	if (a->spare_fd >= 0)
		close(a->spare_fd);
	pthread_mutex_destroy(&a->reap_mu);
	while (a->wait_head != NULL) {
		struct conn *c = a->wait_head;

		a->wait_head = c->wait_next;
		conn_unref(c);
	}
	pthread_mutex_destroy(&a->wait_mu);
}

/*
 * Tell a connection we will not take it why, and close it.  Best effort:
 * the socket is new, its buffer empty.  A TLS client is not told (it
 * expects a handshake, and plain text would only confuse its library).
 * Logged at most once every REFUSE_LOG_MS per reason.
 */
static void refuse(int fd, bool tell, struct log_limit *lim, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void
refuse(int fd, bool tell, struct log_limit *lim, const char *fmt, ...)
{
	char text[128], line[160];
	unsigned long held;
	va_list ap;
	int n;

	va_start(ap, fmt);
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		text[0] = '\0';
	va_end(ap);
	n = snprintf(line, sizeof(line), "* %s\r\n", text);
	if (tell && send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("refusal not sent: %s", strerror(errno));
	close(fd);
	if (log_limit_ok(lim, REFUSE_LOG_MS, &held)) {
		if (held > 0)
			log_warn("refusing connections: %s (%lu more since the last report)", text,
			         held);
		else
			log_warn("refusing connections: %s", text);
	}
}

/*
 * Out of descriptors.  The pending connection cannot be accepted, so the
 * listener stays readable and epoll would report it again at once, for
 * ever: a spinning CPU.  Free the spare descriptor, accept the connection
 * with it, tell it why and close it, and take the spare back.
 */
static void
shed_connection(struct admission *a, int lfd)
{
	int fd;

	if (a->spare_fd >= 0) {
		close(a->spare_fd);
		a->spare_fd = -1;
	}
	if ((fd = accept(lfd, NULL, NULL)) >= 0) {
		stats_add(STATS_REFUSED_NOFILE, 1);
		static const char busy[] =
		        "* server busy: out of file descriptors, try again later\r\n";

		if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug("refusal not sent: %s", strerror(errno));
		close(fd);
	}
	a->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (log_limit_ok(&a->emfile_log, 1000, NULL))
		log_warn("out of file descriptors: refusing connections (%zu online)",
		         broadcast_online(a->bc));
}

/*
 * Connections from this address that have left but are not reaped yet
 * (reaping waits for the end of the event batch): they no longer count.
 */
static size_t
leaving_from(struct admission *a, const unsigned char *key)
{
	size_t n = 0;

	pthread_mutex_lock(&a->reap_mu);
	for (struct conn *c = a->reap_head; c != NULL; c = c->reap_next)
		if (c->counted && memcmp(c->ipkey, key, sizeof(c->ipkey)) == 0)
			n++;
	pthread_mutex_unlock(&a->reap_mu);
	return n;
}

/* A TLS connection, set up and in epoll: it starts its handshake. */
static int
begin_handshake(struct admission *a, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.ptr = c };

	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, c->io.fd, &ev) < 0) {
		log_warn("%s: cannot watch: %s", c->addr, strerror(errno));
		return -errno;
	}
	if (handshake_add(a->hs, c, mono_ms()) != 0) {
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, c->io.fd, NULL);
		return -EBUSY;
	}
	return 0;
}

/* A plain connection, set up: registered disarmed and busy, and a member.
 * The job that announces its join arms it, so none of its lines can
 * overtake the announcement. */
static int
join_now(struct admission *a, struct conn *c, size_t *online)
{
	struct epoll_event ev = { .events = EPOLLONESHOT, .data.ptr = c };
	int rc;

	conn_job_begin(c);
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, c->io.fd, &ev) < 0) {
		log_warn("%s: cannot watch: %s", c->addr, strerror(errno));
		return -errno;
	}
	if ((rc = broadcast_join(a->bc, c, online)) != 0) {
		log_warn("%s: cannot register: %s", c->addr, strerror(-rc));
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, c->io.fd, NULL);
		return rc;
	}
	c->joined_online = *online;
	return 0;
}

struct conn *
admission_admit(struct admission *a, int fd, const struct sockaddr *peer, struct tls_ctx *tls)
{
	unsigned char key[IPCOUNT_KEYLEN];
	struct conn *c;
	struct io io;
	size_t online = broadcast_online(a->bc);
	size_t shaking = a->hs != NULL ? handshake_count(a->hs) : 0;
	bool tell = tls == NULL;
	int one = 1, rc;

	/* Those still in their handshake hold descriptors too. */
	stats_add(tls != NULL ? STATS_ACCEPTED_TLS : STATS_ACCEPTED_PLAIN, 1);
	if (online + shaking >= a->max_clients) {
		stats_add(STATS_REFUSED_FULL, 1);
		refuse(fd, tell, &a->full_log, "server full (%zu online)", online);
		return NULL;
	}
	ipcount_key(peer, key);
	if (a->max_per_ip > 0) {
		if (ipcount_get(a->perip, key) - leaving_from(a, key) >= a->max_per_ip) {
			stats_add(STATS_REFUSED_PER_IP, 1);
			refuse(fd, tell, &a->perip_log,
			       "too many connections from your address (%u)", a->max_per_ip);
			return NULL;
		}
	}
	if (tls != NULL && shaking >= a->hs->max) {
		stats_add(STATS_REFUSED_HANDSHAKES, 1);
		refuse(fd, false, &a->hs_log,
		       "%zu TLS handshakes in progress (--tls-max-handshakes)", shaking);
		return NULL;
	}
	/* Chat lines are small and wanted now: no Nagle delay.  Keepalive
	 * finds peers that vanished without a word. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));

	rc = tls != NULL ? io_tls_init(&io, tls, fd) : io_init(&io, &io_plain, fd);
	if (rc != 0) {
		log_warn("cannot accept a connection: %s", strerror(-rc));
		close(fd);
		return NULL;
	}
	if ((rc = conn_new(&c, &io, peer, a->epfd, a->max_sendq, a->stopping, a->relay)) != 0) {
		log_warn("cannot accept a connection: %s", strerror(-rc));
		return NULL;
	}
	if (a->cloak != NULL) {
		/* Before it is a member: from then on others read it freely. */
		cloak_format(a->cloak, peer, c->shown, sizeof(c->shown));
		snprintf(c->name, sizeof(c->name), "%s", c->shown);
	}
	if ((tls != NULL ? begin_handshake(a, c) : join_now(a, c, &online)) != 0) {
		conn_unref(c);
		return NULL;
	}
	/* Counted last, once nothing can fail: a slot counted for a
	 * connection that never got in would never be given back. */
	memcpy(c->ipkey, key, sizeof(c->ipkey));
	c->counted = ipcount_add(a->perip, key) == 0;
	c->joined_ms = mono_ms();
	c->quiet = c->counted && !ipcount_take_join(a->perip, key, &a->joins, mono_ns());
	if (tls != NULL) {
		log_debug("%s: TLS handshake begins (%zu in progress)", c->addr, shaking + 1);
		return c; /* the loop's reference; its steps take their own */
	}
	if (c->quiet) {
		a->last_quiet_ms = c->joined_ms;
		unsigned long held;

		log_debug("%s connected quietly (%zu online)", c->addr, online);
		if (log_limit_ok(&a->quiet_log, REFUSE_LOG_MS, &held))
			log_warn("%s: reconnecting fast: its connections joined quietly "
			         "(%lu more since the last report)",
			         c->addr, held);
	} else {
		log_info("%s connected (%zu online)", c->addr, online);
	}
	conn_ref(c);
	return c;
}

size_t
admission_accept(struct admission *a, int lfd, struct tls_ctx *tls, struct conn **out, size_t max)
{
	size_t n = 0;

	while (n < max) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd >= 0) {
			if ((c = admission_admit(a, fd, (struct sockaddr *)&ss, tls)) != NULL &&
			    tls == NULL)
				out[n++] = c;
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			shed_connection(a, lfd);
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			log_warn("accept: %s", strerror(errno));
		break;
	}
	return n;
}

void
admission_reap_push(void *arg, struct conn *c)
{
	struct admission *a = arg;

	pthread_mutex_lock(&a->reap_mu);
	c->reap_next = a->reap_head;
	a->reap_head = c;
	pthread_mutex_unlock(&a->reap_mu);
	wake_signal(a->wakefd);
}

void
admission_release(struct admission *a, struct conn *c)
{
	if (c->counted) {
		ipcount_del(a->perip, c->ipkey, mono_ns());
		c->counted = false;
	}
}

bool
admission_quiet_waiting(const struct admission *a, long now_ms)
{
	/* Past twice the wait, every quiet one was announced or has left
	 * (the tick that announces them runs once a second). */
	return a->last_quiet_ms != 0 && now_ms - a->last_quiet_ms < 2 * CONN_QUIET_MS + 1000;
}

void
admission_tick(struct admission *a)
{
	ipcount_sweep(a->perip, mono_ns());
}

void
admission_reap(struct admission *a, struct linger_set *l, long now_ms)
{
	struct conn *c, *next;

	pthread_mutex_lock(&a->reap_mu);
	c = a->reap_head;
	a->reap_head = NULL;
	pthread_mutex_unlock(&a->reap_mu);
	for (; c != NULL; c = next) {
		next = c->reap_next;
		admission_release(a, c);
		conn_unref(c);            /* the job's */
		linger_add(l, c, now_ms); /* ours, until it is closed */
	}
}

void
admission_wait_push(struct admission *a, struct conn *c, long due)
{
	conn_ref(c);
	pthread_mutex_lock(&a->wait_mu);
	c->wait_due = due;
	c->wait_next = NULL;
	if (a->wait_tail != NULL)
		a->wait_tail->wait_next = c;
	else
		a->wait_head = c;
	a->wait_tail = c;
	pthread_mutex_unlock(&a->wait_mu);
}

void
admission_wait_push_wake(void *arg, struct conn *c, long due)
{
	struct admission *a = arg;

	admission_wait_push(a, c, due);
	wake_signal(a->wakefd);
}

struct conn *
admission_wait_pop(struct admission *a, long now_ms)
{
	struct conn *c;

	pthread_mutex_lock(&a->wait_mu);
	if ((c = a->wait_head) != NULL && c->wait_due <= now_ms) {
		a->wait_head = c->wait_next;
		if (a->wait_head == NULL)
			a->wait_tail = NULL;
	} else {
		c = NULL;
	}
	pthread_mutex_unlock(&a->wait_mu);
	return c;
}

long
admission_wait_timeout(struct admission *a, long now_ms)
{
	long t = -1;

	/* Pushed with the same wait, in order, so the head is the first due
	 * (a retry pushed later with a short wait is at most that late). */
	pthread_mutex_lock(&a->wait_mu);
	if (a->wait_head != NULL)
		t = a->wait_head->wait_due > now_ms ? a->wait_head->wait_due - now_ms : 0;
	pthread_mutex_unlock(&a->wait_mu);
	return t;
}
