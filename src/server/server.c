/*
 * The accept loop; see server.h.
 *
 * Threads: this loop runs in the main thread and is the only one that
 * accepts, adds or removes descriptors in epoll, and reaps connections.
 * Workers run relay jobs (relay.c).  Every epoll registration of a client
 * is EPOLLONESHOT and carries the struct conn; the loop holds a reference
 * on each connection from accept until it reaps it, so that an event it
 * has already received can never point at freed memory.
 */
#define _GNU_SOURCE /* accept4, signalfd, eventfd, strsignal */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "threadpool.h"

#include "broadcast.h"
#include "conn.h"
#include "ipcount.h"
#include "log.h"
#include "net.h"
#include "park.h"
#include "relay.h"
#include "server.h"

#define MAX_LISTEN 8
#define MAX_EVENTS 256
/* Descriptors kept free beyond those the server holds once set up (see
 * default_max_clients()): room for the C library's own needs. */
#define FD_SLACK 4
/* How long shutdown waits for clients to take what is queued for them. */
#define FLUSH_MS 2000

struct server {
	struct server_config cfg;
	int epfd, sigfd, wakefd;
	int spare_fd; /* held open so that EMFILE can still be shed */
	int lfds[MAX_LISTEN];
	size_t nlisten;
	tp_pool *pool;
	struct broadcast bc;
	struct relay relay;
	struct park park; /* clients waiting for flood tokens */
	bool bc_ready, park_ready;
	atomic_bool stopping;

	pthread_mutex_t reap_mu;
	struct conn *reap_head; /* reap_mu: connections whose job has ended */

	time_t last_emfile_log, last_full_log, last_perip_log;
	struct ipcount *perip; /* NULL unless --max-per-ip */

	/* epoll markers for the descriptors that are not clients */
	char tag_signal, tag_wake, tag_listen[MAX_LISTEN];
};

#define now_ms conn_now_ms

/* --- reaping ---------------------------------------------------------------- */

/* From a worker: the connection's job is over; it gives us its reference. */
static void
reap_push(void *arg, struct conn *c)
{
	struct server *s = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&s->reap_mu);
	c->reap_next = s->reap_head;
	s->reap_head = c;
	pthread_mutex_unlock(&s->reap_mu);
	if (write(s->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("cannot wake the accept loop: %s", strerror(errno));
}

/* After a whole batch of events, never in the middle of one: an event still
 * to be handled could name a connection we are about to free. */
static void
reap_all(struct server *s)
{
	struct conn *c, *next;

	pthread_mutex_lock(&s->reap_mu);
	c = s->reap_head;
	s->reap_head = NULL;
	pthread_mutex_unlock(&s->reap_mu);
	for (; c != NULL; c = next) {
		next = c->reap_next;
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		if (c->counted)
			ipcount_del(s->perip, c->ipkey);
		conn_unref(c); /* the job's */
		conn_unref(c); /* ours; the descriptor closes with the last */
	}
}

/* --- accepting ---------------------------------------------------------------- */

/* Submit the relay job of a busy connection, giving it a reference. */
static void
start_job(struct server *s, struct conn *c)
{
	int rc;

	relay_submitted(&s->relay);
	rc = tp_submit(s->pool, relay_job, c, NULL);
	if (rc != 0) {
		relay_unsubmitted(&s->relay);
		conn_unref(c);
		conn_job_end(c); /* try again on the next event */
		log_error("%s: cannot submit its relay job: %s", c->addr, strerror(-rc));
	}
}

static void
submit_job(struct server *s, struct conn *c)
{
	conn_ref(c);
	start_job(s, c);
}

/* Connections whose flood budget has a token again (all of them when
 * everything is due, at shutdown) get their job back, with the reference
 * they parked with. */
static size_t
unpark(struct server *s, long now)
{
	struct conn *c;
	size_t n = 0;

	if (park_collect(&s->park) != 0)
		log_error("out of memory: parked clients wait");
	while ((c = park_pop(&s->park, now)) != NULL) {
		start_job(s, c);
		n++;
	}
	return n;
}

/* How long the loop may sleep: until the next parked connection is due,
 * or the next idle sweep; -1 for as long as it takes. */
static int
loop_timeout(struct server *s, long next_sweep)
{
	long now = now_ms(), t = park_timeout(&s->park, now);

	if (s->cfg.idle_timeout > 0) {
		long sweep = next_sweep > now ? next_sweep - now : 0;

		if (t < 0 || sweep < t)
			t = sweep;
	}
	return t > INT_MAX ? INT_MAX : (int)t;
}

/*
 * Out of descriptors.  The pending connection cannot be accepted, so the
 * listener stays readable and epoll would report it again at once, for
 * ever: a spinning CPU.  Free the spare descriptor, accept the connection
 * with it, close it, and take the spare back.
 */
static void
shed_connection(struct server *s, int lfd)
{
	time_t now = time(NULL);
	int fd;

	if (s->spare_fd >= 0) {
		close(s->spare_fd);
		s->spare_fd = -1;
	}
	if ((fd = accept(lfd, NULL, NULL)) >= 0) {
		/* Polite, not silent: a client (or a person on nc) learns
		 * why, and that trying later may work.  Best effort: the
		 * socket is new, its buffer empty. */
		static const char busy[] =
		        "* server busy: out of file descriptors, try again later\r\n";

		if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug("refusal not sent: %s", strerror(errno));
		close(fd);
	}
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (now != s->last_emfile_log) {
		s->last_emfile_log = now;
		log_warn("out of file descriptors: refusing connections (%zu online)",
		         broadcast_online(&s->bc));
	}
}

/*
 * Connections from this address that have left but are not reaped yet
 * (reaping waits for the end of the event batch): they no longer count.
 */
static size_t
leaving_from(struct server *s, const unsigned char *key)
{
	size_t n = 0;

	pthread_mutex_lock(&s->reap_mu);
	for (struct conn *c = s->reap_head; c != NULL; c = c->reap_next)
		if (c->counted && memcmp(c->ipkey, key, sizeof(c->ipkey)) == 0)
			n++;
	pthread_mutex_unlock(&s->reap_mu);
	return n;
}

/*
 * Tell a connection we will not take it why, close it, and log that (at
 * most once every ten seconds per reason, *last being its clock).
 */
static void refuse(int fd, time_t *last, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
refuse(int fd, time_t *last, const char *fmt, ...)
{
	char text[128], line[160];
	time_t now = time(NULL);
	va_list ap;
	int n;

	va_start(ap, fmt);
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		text[0] = '\0';
	va_end(ap);
	n = snprintf(line, sizeof(line), "* %s\r\n", text);
	/* Best effort: the socket is new, its buffer empty. */
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("refusal not sent: %s", strerror(errno));
	close(fd);
	if (now - *last >= 10) {
		*last = now;
		log_warn("refusing connections: %s", text);
	}
}

/*
 * Register an accepted connection, busy and disarmed.  Returns it, with a
 * reference for its first job (ours stays until reap), or NULL if it was
 * refused or failed.
 */
static struct conn *
admit(struct server *s, int fd, const struct sockaddr *peer)
{
	struct epoll_event ev;
	struct conn *c;
	size_t online = broadcast_online(&s->bc);
	int one = 1, rc;

	unsigned char key[IPCOUNT_KEYLEN];

	if (online >= s->cfg.max_clients) {
		refuse(fd, &s->last_full_log, "server full (%zu online)", online);
		return NULL;
	}
	if (s->perip != NULL) {
		ipcount_key(peer, key);
		if (ipcount_get(s->perip, key) - leaving_from(s, key) >= s->cfg.max_per_ip) {
			refuse(fd, &s->last_perip_log,
			       "too many connections from your address (%u)", s->cfg.max_per_ip);
			return NULL;
		}
	}
	/* Chat lines are small and wanted now: no Nagle delay.  Keepalive
	 * finds peers that vanished without a word. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));

	if ((rc = conn_new(&c, fd, peer, s->epfd, s->cfg.max_sendq, &s->stopping, &s->relay)) !=
	    0) {
		log_warn("cannot accept a connection: %s", strerror(-rc));
		return NULL;
	}
	if ((rc = broadcast_join(&s->bc, c, &online)) != 0) {
		log_warn("%s: cannot register: %s", c->addr, strerror(-rc));
		conn_unref(c);
		return NULL;
	}
	c->joined_online = online;
	if (s->perip != NULL) {
		memcpy(c->ipkey, key, sizeof(c->ipkey));
		c->counted = ipcount_add(s->perip, key) == 0;
	}
	/* Registered disarmed and busy: the job that announces its join arms
	 * it, so none of its lines can overtake the announcement. */
	conn_job_begin(c);
	ev.events = EPOLLONESHOT;
	ev.data.ptr = c;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_warn("%s: cannot watch: %s", c->addr, strerror(errno));
		broadcast_leave(&s->bc, c);
		conn_unref(c);
		return NULL;
	}
	log_info("%s connected (%zu online)", c->addr, online);
	conn_ref(c);
	return c;
}

/* Hand the connections admitted in one wake-up to one announce job. */
static void
announce(struct server *s, struct relay_joins *j)
{
	int rc;

	relay_submitted(&s->relay);
	rc = tp_submit(s->pool, relay_announce_job, j, NULL);
	if (rc == 0)
		return;
	relay_unsubmitted(&s->relay);
	log_error("cannot submit the join announcement: %s", strerror(-rc));
	/* Arm them unannounced: their own first job announces them. */
	for (size_t i = 0; i < j->n; i++) {
		conn_job_end(j->conns[i]);
		conn_unref(j->conns[i]);
	}
	free(j);
}

static void
accept_some(struct server *s, int lfd)
{
	struct relay_joins *j = malloc(sizeof(*j));

	if (j != NULL)
		j->n = 0;
	for (int i = 0; i < RELAY_JOIN_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			struct conn *c = admit(s, fd, (struct sockaddr *)&ss);

			if (c == NULL)
				continue;
			if (j != NULL) {
				j->conns[j->n++] = c;
			} else {
				/* No memory for a batch: its own job announces it. */
				conn_job_end(c);
				conn_unref(c);
			}
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			shed_connection(s, lfd);
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			log_warn("accept: %s", strerror(errno));
		break;
	}
	if (j != NULL && j->n > 0)
		announce(s, j);
	else
		free(j);
}

/* --- signals ---------------------------------------------------------------- */

/* Returns the signal read, or 0. */
static int
read_signal(struct server *s)
{
	struct signalfd_siginfo si;

	if (read(s->sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return 0;
	return (int)si.ssi_signo;
}

static void
drain_wake(struct server *s)
{
	uint64_t v;

	while (read(s->wakefd, &v, sizeof(v)) > 0)
		;
}

/* While shutting down: a second signal means now. */
static void
second_signal(struct server *s)
{
	int sig = read_signal(s);

	if (sig != 0) {
		log_warn("%s again: exiting at once", strsignal(sig));
		_exit(1);
	}
}

/* --- idle clients ---------------------------------------------------------------- */

/* Close, with a word of why, every client silent for --idle-timeout.  Once
 * a second is precise enough for a limit counted in seconds. */
static void
sweep_idle(struct server *s)
{
	long limit = (long)s->cfg.idle_timeout * 1000L, now = now_ms();
	struct conn **all;
	size_t n;

	all = broadcast_snapshot(&s->bc, &n);
	for (size_t i = 0; i < n; i++) {
		struct conn *c = all[i];

		if (now - atomic_load_explicit(&c->last_heard_ms, memory_order_relaxed) > limit) {
			char why[64];

			snprintf(why, sizeof(why), "idle for %u seconds", s->cfg.idle_timeout);
			msg_tell(c, msg_notice("%s: disconnecting", why));
			conn_drop(c, why, false); /* its own job sees the end and leaves */
		}
		conn_unref(c);
	}
	free(all);
}

/* --- the loop ------------------------------------------------------------------ */

static void
handle_conn_event(struct server *s, struct conn *c)
{
	if (atomic_load(&s->stopping)) {
		conn_flush(c); /* shutdown: only output, and only by us */
		return;
	}
	if (conn_job_begin(c))
		submit_job(s, c);
	/* else a job is in flight and will re-arm it */
}

static void
run_loop(struct server *s)
{
	struct epoll_event evs[MAX_EVENTS];

	long next_sweep = now_ms() + 1000;

	while (!atomic_load(&s->stopping)) {
		int n;

		unpark(s, now_ms());
		n = epoll_wait(s->epfd, evs, MAX_EVENTS, loop_timeout(s, next_sweep));

		if (s->cfg.idle_timeout > 0 && now_ms() >= next_sweep) {
			sweep_idle(s);
			next_sweep = now_ms() + 1000;
		}

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			atomic_store(&s->stopping, true);
			break;
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &s->tag_signal) {
				int sig = read_signal(s);

				if (sig != 0) {
					log_info("%s: shutting down", strsignal(sig));
					atomic_store(&s->stopping, true);
				}
			} else if (p == &s->tag_wake) {
				drain_wake(s);
			} else if (p >= (void *)s->tag_listen &&
			           p < (void *)(s->tag_listen + MAX_LISTEN)) {
				if (!atomic_load(&s->stopping))
					accept_some(s, s->lfds[(char *)p - s->tag_listen]);
			} else {
				handle_conn_event(s, p);
			}
		}
		reap_all(s);
	}
}

/* Wait for events up to ms milliseconds, handling what shutdown needs. */
static void
shutdown_poll(struct server *s, int ms)
{
	struct epoll_event evs[MAX_EVENTS];
	int n = epoll_wait(s->epfd, evs, MAX_EVENTS, ms < 0 ? 0 : ms);

	for (int i = 0; i < n; i++) {
		void *p = evs[i].data.ptr;

		if (p == &s->tag_signal)
			second_signal(s);
		else if (p == &s->tag_wake)
			drain_wake(s);
		else if (!(p >= (void *)s->tag_listen && p < (void *)(s->tag_listen + MAX_LISTEN)))
			handle_conn_event(s, p);
	}
	reap_all(s);
}

/*
 * Orderly shutdown: no more accepting or reading; let the jobs in flight
 * finish fanning out what they read; then tell everyone, flush for up to
 * FLUSH_MS, and close.
 */
static void
stop(struct server *s)
{
	struct conn **all;
	size_t n, i;
	long deadline;
	struct msg *m;

	for (i = 0; i < s->nlisten; i++) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfds[i], NULL);
		close(s->lfds[i]);
	}
	s->nlisten = 0;

	/* Every line read before the signal is fanned out before the
	 * goodbye, so nobody who keeps reading misses one: the jobs in
	 * flight finish, and parked connections run once more, relaying
	 * what they hold without waiting for tokens.  A job parks before it
	 * ends: so if none was running, and then none was parked, none is
	 * left. */
	for (;;) {
		bool none_running = atomic_load(&s->relay.inflight) == 0;

		if (unpark(s, LONG_MAX) == 0 && none_running)
			break;
		shutdown_poll(s, 100);
	}

	if ((m = msg_notice("server shutting down")) != NULL) {
		broadcast_send(&s->bc, NULL, &m, 1);
		msg_unref(m);
	}
	broadcast_flush(&s->bc);
	all = broadcast_snapshot(&s->bc, &n);
	for (i = 0; i < n; i++)
		conn_flush(all[i]); /* arms EPOLLOUT where something is left */
	deadline = now_ms() + FLUSH_MS;
	for (;;) {
		size_t pending = 0;

		for (i = 0; i < n; i++)
			if (!conn_is_dead(all[i], NULL, 0, NULL))
				pending += conn_pending(all[i]);
		if (pending == 0 || now_ms() >= deadline)
			break;
		shutdown_poll(s, (int)(deadline - now_ms()));
	}

	for (i = 0; i < n; i++) {
		struct conn *c = all[i];

		broadcast_leave(&s->bc, c);
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		conn_unref(c); /* ours, from accept */
		conn_unref(c); /* the snapshot's: the descriptor closes */
	}
	free(all);
	reap_all(s);
	log_info("shut down: %zu clients were online", n);
}

/* --- set-up ------------------------------------------------------------------- */

/* Raise the soft open-file limit to the hard one; returns the limit. */
static rlim_t
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;

		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

/*
 * The clients the descriptor limit allows: the limit less what the server
 * holds once set up (standard streams, listeners, epoll, signalfd, eventfd,
 * the spare kept for shedding), counted rather than guessed, and a few
 * spare.  Every client costs one descriptor, and nothing else opens any
 * while the server runs (the spare covers shedding), so at this count the
 * server says "server full" before it could run out.
 */
static size_t
default_max_clients(rlim_t nofile)
{
	size_t used = 0;
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");

	if (d != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				used++;
		closedir(d);
		if (used > 0)
			used--; /* the directory's own descriptor */
	} else {
		used = 16 + MAX_LISTEN; /* no /proc: a guess on the safe side */
	}
	used += FD_SLACK;
	return nofile > used ? (size_t)(nofile - used) : 1;
}

static int
watch(struct server *s, int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * One worker per online CPU.  Not libthreadpool's default (CPUs + 4, for
 * jobs that may block): a relay job never blocks, so more threads than
 * cores only contend for the cores and the locks.  Measured in
 * docs/performance.md: on 2 cores, p99 latency of workload (c) halves
 * from 6 workers to 2 with the same throughput.
 */
static unsigned
default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 32 ? 32 : (unsigned)n;
}

int
server_run(const struct server_config *cfg)
{
	struct server s;
	struct tp_options popts = { 0 };
	struct tp_stats st;
	struct sigaction sa;
	sigset_t sigs;
	char err[256], addr[NET_ADDRSTRLEN];
	rlim_t nofile;
	size_t i;
	int rc, status = 1;

	memset(&s, 0, sizeof(s));
	s.cfg = *cfg;
	s.epfd = s.sigfd = s.wakefd = s.spare_fd = -1;
	atomic_init(&s.stopping, false);
	pthread_mutex_init(&s.reap_mu, NULL);
	tzset(); /* localtime_r in the workers relies on it */

	nofile = raise_nofile();

	/* Signals: SIGINT and SIGTERM through a signalfd, blocked before any
	 * thread starts so that no worker ever takes them; SIGPIPE ignored
	 * as well as avoided (MSG_NOSIGNAL). */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	rc = net_listen(s.cfg.bind, s.cfg.port, SOMAXCONN, s.lfds, MAX_LISTEN, &s.nlisten, err,
	                sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "chat-server: %s\n", err);
		goto out;
	}
	if ((s.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (s.sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    (s.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    (s.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "chat-server: cannot set up the event loop: %s\n", strerror(errno));
		goto out;
	}
	if (watch(&s, s.sigfd, &s.tag_signal) < 0 || watch(&s, s.wakefd, &s.tag_wake) < 0)
		goto out_errno;
	for (i = 0; i < s.nlisten; i++)
		if (watch(&s, s.lfds[i], &s.tag_listen[i]) < 0)
			goto out_errno;

	popts.max_workers = s.cfg.workers > 0 ? s.cfg.workers : default_workers();
	popts.thread_name_prefix = "relay";
	if ((rc = tp_pool_create(&s.pool, &popts)) != 0 ||
	    (rc = broadcast_init(&s.bc, s.cfg.history)) != 0) {
		fprintf(stderr, "chat-server: cannot start: %s\n", strerror(-rc));
		goto out;
	}
	s.bc_ready = true;
	if ((rc = park_init(&s.park)) != 0) {
		fprintf(stderr, "chat-server: cannot start: %s\n", strerror(-rc));
		goto out;
	}
	s.park_ready = true;
	if (s.cfg.max_per_ip > 0 && (rc = ipcount_new(&s.perip)) != 0) {
		fprintf(stderr, "chat-server: cannot start: %s\n", strerror(-rc));
		goto out;
	}
	s.relay.bc = &s.bc;
	s.relay.max_line = s.cfg.max_line;
	s.relay.cmd.bc = &s.bc;
	s.relay.cmd.max_line = s.cfg.max_line;
	flood_limit_init(&s.relay.flood, s.cfg.flood_rate, s.cfg.flood_burst);
	s.relay.park = &s.park;
	s.relay.stopping = &s.stopping;
	s.relay.reap = reap_push;
	s.relay.reap_arg = &s;
	s.relay.wakefd = s.wakefd;
	atomic_init(&s.relay.inflight, 0);
	atomic_init(&s.relay.unwritten, 0);

	if (s.cfg.max_clients == 0)
		s.cfg.max_clients = default_max_clients(nofile);
	tp_pool_stats(s.pool, &st);
	for (i = 0; i < s.nlisten; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (getsockname(s.lfds[i], (struct sockaddr *)&ss, &len) == 0)
			net_format_addr((struct sockaddr *)&ss, addr, sizeof(addr));
		else
			snprintf(addr, sizeof(addr), "?");
		/* Stable, documented: scripts read the port from this line. */
		log_info("listening on %s (%u workers)", addr, st.max_workers);
	}
	log_info("limits: %zu clients, %zu bytes of send queue each", s.cfg.max_clients,
	         s.cfg.max_sendq);

	run_loop(&s);
	stop(&s);
	status = 0;
	goto out;

out_errno:
	fprintf(stderr, "chat-server: cannot set up the event loop: %s\n", strerror(errno));
out:
	if (s.pool != NULL)
		tp_pool_free(s.pool); /* waits for any job still running */
	if (s.bc_ready)
		broadcast_destroy(&s.bc);
	if (s.park_ready)
		park_destroy(&s.park);
	ipcount_free(s.perip);
	for (i = 0; i < s.nlisten; i++)
		close(s.lfds[i]);
	if (s.spare_fd >= 0)
		close(s.spare_fd);
	if (s.wakefd >= 0)
		close(s.wakefd);
	if (s.sigfd >= 0)
		close(s.sigfd);
	if (s.epfd >= 0)
		close(s.epfd);
	pthread_mutex_destroy(&s.reap_mu);
	return status;
}
