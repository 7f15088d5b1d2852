/*
 * The accept loop; see server.h.
 *
 * Threads: this loop runs in the main thread and is the only one that
 * accepts, adds or removes descriptors in epoll, reaps connections and
 * closes them (accept.h, linger.h).  Workers run relay jobs (relay.c).
 * Every epoll registration of a client carries the struct conn; the loop
 * holds a reference on each connection from accept until it is closed, so
 * that an event it has already received can never point at freed memory.
 */
#define _GNU_SOURCE /* signalfd, strsignal */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "threadpool.h"

#include "accept.h"
#include "broadcast.h"
#include "cloak.h"
#include "greet.h"
#ifdef HAVE_HIREDIS
#include "cluster.h"
#endif
#include "conn.h"
#include "handshake.h"
#include "linger.h"
#include "metrics.h"
#include "log.h"
#include "mono.h"
#include "net.h"
#include "park.h"
#include "relay.h"
#include "server.h"
#include "settings.h"
#include "stats.h"
#include "systemd.h"
#include "tls.h"
#include "wake.h"

#define MAX_LISTEN SERVER_MAX_LISTEN
#define MAX_EVENTS 256
/* Descriptors kept free beyond those the server holds once set up (see
 * default_max_clients()): room for the C library's own needs. */
#define FD_SLACK 4
/* How long shutdown waits for clients to take what is queued for them,
 * and to close their side. */
#define FLUSH_MS LINGER_MS

struct server {
	struct server_config cfg;
	int epfd, sigfd, wakefd;
	int lfds[MAX_LISTEN];
	bool lfd_tls[MAX_LISTEN]; /* a TLS listener */
	size_t nlisten;
	tp_pool *pool;
	struct broadcast bc;
	struct greet greet; /* what every newcomer gets first (greet.h) */
	struct cloak cloak; /* --cloak's key (cloak.h) */
	struct relay relay;
	struct park park;         /* clients waiting for flood tokens */
	struct admission adm;     /* who gets in; reaping */
	struct linger_set linger; /* departed clients, closed politely */
	struct tls_ctx *tls;      /* the loop's: what new TLS handshakes use; NULL: no TLS */
	struct handshake hs;      /* TLS clients not yet members */
	struct metrics *metrics;  /* --metrics; NULL: none */
	/* Settings a SIGHUP changed: the copies cfg's fields point to. */
	char *motd_own, *tls_cert_own, *tls_key_own;
	bool bc_ready, park_ready, adm_ready, hs_ready, greet_ready;
	atomic_bool stopping;
#ifdef HAVE_HIREDIS
	struct cluster *cluster; /* NULL: standalone */
	atomic_bool flush_queued; /* a write pass for the bus is submitted */
#endif

	/* epoll markers for the descriptors that are not clients */
	char tag_signal, tag_wake, tag_listen[MAX_LISTEN];
};

/* --- jobs ------------------------------------------------------------------------ */

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

/* Hand a batch of joins whose wait is over to one announce job. */
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
	/* Arm them unannounced: their first line announces them. */
	for (size_t i = 0; i < j->n; i++) {
		conn_job_end(j->conns[i]);
		conn_unref(j->conns[i]);
	}
	free(j);
}

/* A batch of joins, put in join order (broadcast_send_except needs it),
 * to one announce job. */
static void
announce_in_order(struct server *s, struct relay_joins *j)
{
	for (size_t i = 1; i < j->n; i++) {
		struct conn *c = j->conns[i];
		size_t k = i;

		for (; k > 0 && j->conns[k - 1]->join_seq > c->join_seq; k--)
			j->conns[k] = j->conns[k - 1];
		j->conns[k] = c;
	}
	announce(s, j);
}

/*
 * Accept what a listener has (TLS clients join once their handshake is
 * done: handshake.h).  Each is a member now, greeted, and armed for its
 * first line; its join is announced when that line comes, or by
 * announce_due() once CONN_NICK_WAIT_MS has passed without one (a quiet
 * one's by announce_quiet()).
 */
static void
accept_some(struct server *s, size_t which)
{
	struct conn *got[RELAY_JOIN_BATCH];
	size_t n = admission_accept(&s->adm, s->lfds[which], s->lfd_tls[which] ? s->tls : NULL, got,
	                            RELAY_JOIN_BATCH);

	for (size_t i = 0; i < n; i++) {
		struct conn *c = got[i];

		if (!c->quiet) {
			c->joining = true; /* before its first job: the job begin orders it */
			admission_wait_push(&s->adm, c, c->joined_ms + CONN_NICK_WAIT_MS);
		}
		conn_flush(c); /* the greeting, at once, before any job */
		conn_job_end(c);
		conn_unref(c);
	}
}

/*
 * Joins whose wait for a first line is over, still unannounced, go to
 * announce jobs in batches (one fan-out per batch), in join order.  One
 * whose job is in flight is looked at again shortly (its job may end
 * without a whole line); one that has left is forgotten.
 */
static void
announce_due(struct server *s)
{
	long now = mono_ms();
	struct relay_joins *j = NULL;
	struct conn *c, *retry = NULL;

	while ((c = admission_wait_pop(&s->adm, now)) != NULL) {
		if (c->lingering || atomic_load_explicit(&c->announced, memory_order_relaxed)) {
			conn_unref(c); /* the list's */
			continue;
		}
		if (!conn_job_begin(c)) {
			c->wait_next = retry; /* busy: after this pass */
			retry = c;
			continue;
		}
		if (j == NULL && (j = malloc(sizeof(*j))) != NULL)
			j->n = 0;
		if (j == NULL) {
			start_job(s, c); /* no memory for a batch: its own job, with our reference */
			continue;
		}
		j->conns[j->n++] = c; /* the list's reference goes to the job */
		if (j->n == RELAY_JOIN_BATCH) {
			announce_in_order(s, j);
			j = NULL;
		}
	}
	if (j != NULL && j->n > 0)
		announce_in_order(s, j);
	else
		free(j);
	for (; retry != NULL; retry = c) {
		c = retry->wait_next;
		admission_wait_push(&s->adm, retry, now + 50);
		conn_unref(retry); /* the push took its own */
	}
}

/* --- idle clients ---------------------------------------------------------------- */

/* Close, with a word of why, every client silent for --idle-timeout. */
static void
sweep_idle(struct server *s)
{
	long limit = (long)s->cfg.idle_timeout * 1000L, now = mono_ms();
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
			stats_add(STATS_DROPS_IDLE, 1);
		}
		conn_unref(c);
	}
	free(all);
}

/* --- the loop ------------------------------------------------------------------ */

/* Returns the signal read, or 0. */
static int
read_signal(struct server *s)
{
	struct signalfd_siginfo si;

	if (read(s->sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return 0;
	return (int)si.ssi_signo;
}

/* Load the certificate and key, and say what they are.  Returns 0 or a
 * negative errno (err says why). */
static int
load_tls(struct server *s, struct tls_ctx **out, char *err, size_t len)
{
	char what[400];
	bool expired;
	int rc = tls_ctx_load(out, s->cfg.tls_cert, s->cfg.tls_key, err, len);

	if (rc != 0)
		return rc;
	tls_ctx_describe(*out, what, sizeof(what), &expired);
	if (expired)
		log_warn("TLS certificate %s: %s: EXPIRED, clients will refuse it", s->cfg.tls_cert,
		         what);
	else
		log_info("TLS certificate %s: %s", s->cfg.tls_cert, what);
	return 0;
}

/*
 * SIGHUP: the settings are read again (the -c file as it is now, under
 * the same command line).  What can change while running does: the log
 * level, the MOTD (its file read again in any case), and the certificate
 * and key (read again in any case, for a renewal: new handshakes use
 * them; sessions under way keep theirs, as OpenSSL holds a reference to
 * the context each began with).  Every other change is named in the log
 * as waiting for a restart.  A file that no longer parses changes no
 * setting, but the MOTD and certificate files are still read again: a
 * certificate renewal must not wait on an unrelated typo.
 */
static bool reload_settings(struct server *s);
static bool reload_files(struct server *s);

static void
reload(struct server *s)
{
	char state[64];
	bool any;

	/* systemd waits for READY=1 before it calls the reload done. */
	snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%lld",
	         (long long)mono_ms() * 1000LL);
	systemd_notify(state);
	any = reload_settings(s);
	if (!reload_files(s) && !any)
		log_info("SIGHUP: nothing to reload (no -c file, --motd or TLS)");
	systemd_notify("READY=1");
}

/* Replace *owned (and the cfg field it backs) with a copy of v. */
static void
take_string(char **owned, const char **field, const char *v)
{
	char *copy = v != NULL ? strdup(v) : NULL;

	if (v != NULL && copy == NULL) {
		log_warn("SIGHUP: out of memory: keeping the old setting");
		return;
	}
	free(*owned);
	*owned = copy;
	*field = copy;
}

struct reload_ctx {
	struct server *s;
	const struct server_config *now;
};

static void
on_change(const char *key, const char *was, const char *now, void *arg)
{
	struct reload_ctx *r = arg;
	struct server *s = r->s;

	if (strcmp(key, "motd") == 0) {
		take_string(&s->motd_own, &s->cfg.motd, r->now->motd);
		log_info("SIGHUP: motd %s (was %s)", now, was);
	} else if ((strcmp(key, "tls-cert") == 0 || strcmp(key, "tls-key") == 0) &&
	           s->tls != NULL && r->now->tls_cert != NULL && r->now->tls_key != NULL) {
		if (key[4] == 'c')
			take_string(&s->tls_cert_own, &s->cfg.tls_cert, r->now->tls_cert);
		else
			take_string(&s->tls_key_own, &s->cfg.tls_key, r->now->tls_key);
		log_info("SIGHUP: %s %s (was %s)", key, now, was);
	} else {
		log_warn("SIGHUP: %s changed from %s to %s: needs a restart, until then %s stays",
		         key, was, now, was);
	}
}

/* Returns whether there was a file to read. */
static bool
reload_settings(struct server *s)
{
	struct settings fresh;
	struct reload_ctx r = { s, &fresh.cfg };
	bool usage_too;
	char err[4400];
	int rc;

	if (s->cfg.argv == NULL)
		return false;
	rc = settings_load(&fresh, s->cfg.argc, s->cfg.argv, &usage_too, err, sizeof(err));
	if (rc == 0) {
		fresh.cfg.passed_fds = s->cfg.passed_fds;
		fresh.cfg.passed_tls = s->cfg.passed_tls;
		fresh.cfg.npassed = s->cfg.npassed;
		rc = settings_check(&fresh.cfg, err, sizeof(err));
	}
	if (rc != 0) {
		log_warn("SIGHUP: %s; the settings stay as they were", err);
		settings_free(&fresh);
		return true;
	}
	if (fresh.level != log_get_level()) {
		log_info("SIGHUP: log-level %s (was %s)", log_level_name(fresh.level),
		         log_level_name(log_get_level()));
		log_set_level(fresh.level);
	}
	if (settings_diff(&s->cfg, &fresh.cfg, on_change, &r) == 0 && fresh.conf_path != NULL)
		log_info("SIGHUP: %s read; no setting changed", fresh.conf_path);
	rc = fresh.conf_path != NULL;
	settings_free(&fresh);
	return rc;
}

/* Returns whether there was a file to read. */
static bool
reload_files(struct server *s)
{
	struct tls_ctx *t;
	char err[512];
	int rc = greet_reload(&s->greet, s->cfg.motd, err, sizeof(err));

	if (rc < 0)
		log_warn("SIGHUP: --motd: %s; keeping the MOTD loaded before", err);
	else if (rc == 0 && s->cfg.motd != NULL)
		log_info("SIGHUP: MOTD reloaded from %s", s->cfg.motd);
	else if (rc == 0)
		log_info("SIGHUP: no MOTD from now on");
	if (s->tls == NULL)
		return rc != 1;
	if (load_tls(s, &t, err, sizeof(err)) != 0) {
		log_warn("SIGHUP: %s; keeping the certificate loaded before", err);
		return true;
	}
	tls_ctx_free(s->tls);
	s->tls = t;
	log_info("SIGHUP: TLS certificate reloaded; new handshakes use it");
	return true;
}

static void
on_signal(struct server *s)
{
	int sig = read_signal(s);

	if (sig == 0)
		return;
	if (sig == SIGHUP) {
		reload(s);
		return;
	}
	if (atomic_load(&s->stopping)) {
		/* While shutting down: a second signal means now. */
		log_warn("%s again: exiting at once", strsignal(sig));
		_exit(1);
	}
	log_info("%s: shutting down", strsignal(sig));
	systemd_notify("STOPPING=1");
	atomic_store(&s->stopping, true);
}

/*
 * A client's event.  Lingering (it has left): the linger's.  Running: the
 * connection's job, unless one is in flight, which re-arms it at its end
 * (epoll is level-triggered here, so nothing is missed).  Stopping: only
 * output, and only by us.
 */
static void
on_conn_event(struct server *s, struct conn *c, uint32_t events)
{
	if (c->lingering)
		linger_event(&s->linger, c, events);
	else if (atomic_load(&s->stopping))
		conn_flush(c);
	else if (conn_job_begin(c)) {
		conn_ref(c);
		if (atomic_load(&c->handshaking))
			handshake_ready(&s->hs, c);
		else
			start_job(s, c);
	}
}

/*
 * Wait up to timeout_ms (-1: for as long as it takes) and handle what came:
 * the one event dispatch, for running and for shutdown alike.  Then, with
 * no event of the batch left to handle, reap and close.
 */
static void
poll_once(struct server *s, int timeout_ms)
{
	struct epoll_event evs[MAX_EVENTS];
	int n = epoll_wait(s->epfd, evs, MAX_EVENTS, timeout_ms);

	if (n < 0 && errno != EINTR) {
		log_error("epoll_wait: %s", strerror(errno));
		atomic_store(&s->stopping, true);
	}
	for (int i = 0; i < n; i++) {
		void *p = evs[i].data.ptr;

		if (p == &s->tag_signal)
			on_signal(s);
		else if (p == &s->tag_wake)
			wake_drain(s->wakefd);
		else if (p >= (void *)s->tag_listen && p < (void *)(s->tag_listen + MAX_LISTEN)) {
			if (!atomic_load(&s->stopping))
				accept_some(s, (size_t)((char *)p - s->tag_listen));
		} else {
			on_conn_event(s, p, evs[i].events);
		}
	}
	admission_reap(&s->adm, &s->linger, mono_ms());
	linger_expire(&s->linger, mono_ms());
}

/* How long the loop may sleep: until the next parked connection is due,
 * the next lingering close, or the next tick. */
static int
loop_timeout(struct server *s, long next_tick)
{
	long now = mono_ms(), t = park_timeout(&s->park, now);
	long l = linger_timeout(&s->linger, now);
	long w = admission_wait_timeout(&s->adm, now);
	long tick = next_tick > now ? next_tick - now : 0;

	if (l >= 0 && (t < 0 || l < t))
		t = l;
	if (w >= 0 && (t < 0 || w < t))
		t = w;
	if (t < 0 || tick < t)
		t = tick;
	return t > INT_MAX ? INT_MAX : (int)t;
}

/*
 * Quiet connections (accept.h) that have stayed CONN_QUIET_MS are
 * announced by a job that holds them busy, so that the announcement cannot
 * cross their departure: those with no job in flight go, in join order, in
 * batches of RELAY_JOIN_BATCH to one announce job each (one fan-out per
 * batch, as at accept: a crowd of quiet joins from one address must not
 * cost a fan-out each).  One in flight, or parked, announces itself when
 * its job runs.
 */
static void
announce_quiet(struct server *s)
{
	long now = mono_ms();
	struct relay_joins *j = NULL;
	struct conn **all;
	size_t n;

	if (!admission_quiet_waiting(&s->adm, now))
		return;
	all = broadcast_snapshot(&s->bc, &n);
	for (size_t i = 0; i < n; i++) {
		struct conn *c = all[i];

		if (c->quiet && now - c->joined_ms >= CONN_QUIET_MS &&
		    !atomic_load_explicit(&c->announced, memory_order_relaxed)) {
			if (j == NULL && (j = malloc(sizeof(*j))) != NULL)
				j->n = 0;
			if (j != NULL && conn_job_begin(c)) {
				conn_ref(c);
				j->conns[j->n++] = c;
			} else if (j == NULL && conn_job_begin(c)) {
				conn_ref(c); /* no memory for a batch: its own job */
				start_job(s, c);
			}
			if (j != NULL && j->n == RELAY_JOIN_BATCH) {
				announce_in_order(s, j);
				j = NULL;
			}
		}
		conn_unref(c);
	}
	if (j != NULL && j->n > 0)
		announce_in_order(s, j);
	else
		free(j);
	free(all);
}

/* Once a second is precise enough for limits counted in seconds. */
static void
tick(struct server *s)
{
	if (s->cfg.idle_timeout > 0)
		sweep_idle(s);
	announce_quiet(s);
	admission_tick(&s->adm);
	if (s->tls != NULL)
		handshake_expire(&s->hs, mono_ms());
}

static void
run_loop(struct server *s)
{
	long next_tick = mono_ms() + 1000;

	while (!atomic_load(&s->stopping)) {
		unpark(s, mono_ms());
		announce_due(s);
		poll_once(s, loop_timeout(s, next_tick));
		if (mono_ms() >= next_tick) {
			tick(s);
			next_tick = mono_ms() + 1000;
		}
	}
}

/*
 * Orderly shutdown: no more accepting or reading; let the jobs in flight
 * finish fanning out what they read; then tell everyone, and close each
 * client politely (linger.h): its queue written, its write side shut, its
 * input drained, within FLUSH_MS.
 */
static void
stop(struct server *s)
{
	struct conn **all;
	size_t n, i;
	long deadline;

	for (i = 0; i < s->nlisten; i++) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfds[i], NULL);
		close(s->lfds[i]);
	}
	s->nlisten = 0;
	/* Joins not announced yet never will be. */
	{
		struct conn *c;

		while ((c = admission_wait_pop(&s->adm, LONG_MAX)) != NULL)
			conn_unref(c);
	}

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
		poll_once(s, 100);
	}
	/* The last jobs may have left their connections for the reaper
	 * after the last poll: no job is left to push more. */
	admission_reap(&s->adm, &s->linger, mono_ms());
	/* TLS clients still in their handshake were never members: closed
	 * without a word (no step runs now: lanes count as jobs). */
	if (s->hs_ready) {
		struct conn *c;

		while ((c = handshake_take(&s->hs)) != NULL) {
			admission_release(&s->adm, c);
			linger_add(&s->linger, c, mono_ms()); /* ours, from accept */
		}
	}

#ifdef HAVE_HIREDIS
	/* These departures are the cluster's goodbye (cluster_stop), not
	 * presence changes one by one. */
	if (s->cluster != NULL)
		cluster_leaving(s->cluster);
#endif
	/* Local only: other servers of a cluster are not stopping. */
	msg_broadcast_local(&s->bc, NULL, msg_notice("server shutting down"));
	broadcast_flush(&s->bc);
	all = broadcast_snapshot(&s->bc, &n);
	for (i = 0; i < n; i++) {
		broadcast_leave(&s->bc, all[i]);
		admission_release(&s->adm, all[i]);
		linger_add(&s->linger, all[i], mono_ms()); /* ours, from accept */
		conn_unref(all[i]);                        /* the snapshot's */
	}
	free(all);
	deadline = mono_ms() + FLUSH_MS;
	while (linger_count(&s->linger) > 0 && mono_ms() < deadline)
		poll_once(s, (int)(deadline - mono_ms()));
	linger_close_all(&s->linger);
	log_info("shut down: %zu client%s online", n, n == 1 ? " was" : "s were");
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
 * spare.  Every client costs one descriptor (a lingering one too, until it
 * is closed), and nothing else opens any while the server runs (the spare
 * covers shedding), so at this count the server says "server full" before
 * it could run out.
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

/*
 * Adopt the listeners systemd passed of one kind (plain or TLS); returns
 * how many.  Either kind passed replaces binding that kind ourselves.
 */
static size_t
passed(struct server *s, bool tls)
{
	size_t n = 0;

	for (size_t i = 0; i < s->cfg.npassed && s->nlisten < MAX_LISTEN; i++) {
		if (s->cfg.passed_tls[i] != tls)
			continue;
		s->lfd_tls[s->nlisten] = tls;
		s->lfds[s->nlisten++] = s->cfg.passed_fds[i];
		n++;
	}
	return n;
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

/* Say where we listen: scripts read the port from these lines. */
static void
log_listening(struct server *s, unsigned workers)
{
	char addr[NET_ADDRSTRLEN];

	for (size_t i = 0; i < s->nlisten; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (getsockname(s->lfds[i], (struct sockaddr *)&ss, &len) == 0)
			net_format_addr((struct sockaddr *)&ss, addr, sizeof(addr));
		else
			snprintf(addr, sizeof(addr), "?");
		if (s->lfd_tls[i])
			log_always(LOG_INFO, "listening on %s (tls)", addr);
		else
			log_always(LOG_INFO, "listening on %s (%u worker%s)", addr, workers,
			           workers == 1 ? "" : "s");
	}
}

#ifdef HAVE_HIREDIS
/*
 * From the bus thread: run c's job soon, for the cluster's answer to its
 * /nick (command_nick_answer).  Through the park, due now, as a job out
 * of flood tokens is: the loop submits it.  A job already in flight or
 * parked takes the answer itself when it runs; the bus asks again until
 * the answer is taken.
 */
static void
kick(void *arg, struct conn *c)
{
	struct server *s = arg;

	if (atomic_load(&s->stopping) || !conn_job_begin(c))
		return;
	conn_ref(c);
	if (park_push(&s->park, c, mono_ms()) != 0) {
		conn_job_end(c);
		conn_unref(c);
		return;
	}
	wake_signal(s->wakefd);
}

/* A write pass on the pool, for what the bus delivered. */
static int
flush_job(void *arg, void **result)
{
	struct server *s = arg;

	(void)result;
	/* Cleared first: what the bus queues from now on gets a pass of
	 * its own, or joins this one. */
	atomic_store(&s->flush_queued, false);
	broadcast_flush(&s->bc);
	return 0;
}

/*
 * From the bus thread: one write pass at a time is submitted; the batches
 * the bus delivers meanwhile leave with it.  If it cannot be submitted the
 * bus thread writes itself.
 */
static void
bus_flush(void *arg)
{
	struct server *s = arg;

	if (atomic_exchange(&s->flush_queued, true))
		return;
	if (tp_submit(s->pool, flush_job, s, NULL) != 0) {
		atomic_store(&s->flush_queued, false);
		broadcast_flush(&s->bc);
	}
}

/* --node's default: this host and the port we listen on. */
static void
default_node(struct server *s, char *out, size_t len)
{
	char host[256];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[NET_ADDRSTRLEN];
	const char *port = "0";

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if (s->nlisten > 0 && getsockname(s->lfds[0], (struct sockaddr *)&ss, &sl) == 0) {
		char *colon;

		net_format_addr((struct sockaddr *)&ss, addr, sizeof(addr));
		if ((colon = strrchr(addr, ':')) != NULL)
			port = colon + 1;
	}
	snprintf(out, len, "%.40s:%s", host, port);
}

static int
start_cluster(struct server *s)
{
	struct cluster_config cc = { 0 };
	char err[200], node[64];
	int rc;

	if (redis_url_parse(s->cfg.redis, &cc.url, err, sizeof(err)) != 0) {
		fprintf(stderr, "chat-server: invalid --redis '%s': %s\n", s->cfg.redis, err);
		return -EINVAL;
	}
	if (s->cfg.node == NULL)
		default_node(s, node, sizeof(node));
	cc.name = s->cfg.cluster;
	cc.node = s->cfg.node != NULL ? s->cfg.node : node;
	cc.backlog = s->cfg.cluster_backlog;
	cc.timeout_ms = s->cfg.redis_timeout * 1000;
	cc.node_timeout_ms = s->cfg.node_timeout * 1000;
	cc.history = s->cfg.history;
	atomic_init(&s->flush_queued, false);
	rc = cluster_start(&s->cluster, &cc, &s->bc, kick, bus_flush, s);
	if (rc != 0)
		fprintf(stderr, "chat-server: cannot start the cluster link: %s\n", strerror(-rc));
	return rc;
}
#endif

int
server_run(const struct server_config *cfg)
{
	struct server s;
	struct tp_options popts = { TP_OPTIONS_INIT };
	struct tp_stats st = { TP_STATS_INIT };
	struct sigaction sa;
	sigset_t sigs;
	char err[256];
	rlim_t nofile;
	size_t i;
	bool want_tls;
	int rc, status = 1;

	memset(&s, 0, sizeof(s));
	s.cfg = *cfg;
	s.epfd = s.sigfd = s.wakefd = -1;
	atomic_init(&s.stopping, false);
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
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	want_tls = s.cfg.tls_port != NULL;
	for (i = 0; i < s.cfg.npassed; i++)
		want_tls = want_tls || s.cfg.passed_tls[i];
	if (want_tls && load_tls(&s, &s.tls, err, sizeof(err)) != 0) {
		fprintf(stderr, "chat-server: %s\n", err);
		goto out;
	}
	if (greet_init(&s.greet, s.cfg.motd, err, sizeof(err)) != 0) {
		fprintf(stderr, "chat-server: --motd: %s\n", err);
		goto out;
	}
	s.greet_ready = true;
	if (s.cfg.cloak && (rc = cloak_init(&s.cloak)) != 0) {
		fprintf(stderr, "chat-server: --cloak: cannot make a key: %s\n", strerror(-rc));
		goto out;
	}
	if (passed(&s, false) == 0 && !s.cfg.no_plain) {
		rc = net_listen(s.cfg.bind, s.cfg.port, SOMAXCONN, s.lfds, MAX_LISTEN, &s.nlisten,
		                err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "chat-server: %s\n", err);
			goto out;
		}
	}
	if (passed(&s, true) == 0 && s.cfg.tls_port != NULL) {
		size_t n = 0;

		rc = net_listen(s.cfg.bind, s.cfg.tls_port, SOMAXCONN, s.lfds + s.nlisten,
		                MAX_LISTEN - s.nlisten, &n, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "chat-server: %s\n", err);
			goto out;
		}
		for (i = s.nlisten; i < s.nlisten + n; i++)
			s.lfd_tls[i] = true;
		s.nlisten += n;
	}
	if ((s.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (s.sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    (s.wakefd = wake_open()) < 0) {
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
	    (rc = broadcast_init(&s.bc, s.cfg.history)) != 0)
		goto out_rc;
	s.bc_ready = true;
	s.bc.greet = &s.greet;
	if (s.cfg.max_rooms > 0)
		s.bc.max_rooms = s.cfg.max_rooms;
	if ((rc = park_init(&s.park)) != 0)
		goto out_rc;
	s.park_ready = true;
	linger_init(&s.linger, s.epfd);

	s.adm.max_per_ip = s.cfg.max_per_ip;
	s.adm.max_sendq = s.cfg.max_sendq;
	s.adm.epfd = s.epfd;
	s.adm.wakefd = s.wakefd;
	s.adm.bc = &s.bc;
	s.adm.relay = &s.relay;
	s.adm.hs = s.tls != NULL ? &s.hs : NULL;
	s.adm.stopping = &s.stopping;
	s.adm.cloak = s.cfg.cloak ? &s.cloak : NULL;
	if ((rc = admission_init(&s.adm)) != 0)
		goto out_rc;
	s.adm_ready = true;
	/* Counted once every descriptor of our own is open. */
	s.adm.max_clients = s.cfg.max_clients > 0 ? s.cfg.max_clients : default_max_clients(nofile);

	s.relay.cmd.bc = &s.bc;
	s.relay.cmd.max_line = s.cfg.max_line;
	flood_limit_init(&s.relay.flood, s.cfg.flood_rate, s.cfg.flood_burst);
	s.relay.park = &s.park;
	s.relay.stopping = &s.stopping;
	s.relay.reap = admission_reap_push;
	s.relay.reap_arg = &s.adm;
	s.relay.join_wait = admission_wait_push_wake;
	s.relay.wakefd = s.wakefd;
	atomic_init(&s.relay.inflight, 0);
	atomic_init(&s.relay.unwritten, 0);

	if (s.tls != NULL) {
		s.hs.max = s.cfg.tls_max_handshakes;
		s.hs.timeout_ms = (long)s.cfg.tls_handshake_timeout * 1000L;
		/* Half the workers at most do handshakes, the rest relay. */
		s.hs.lanes = popts.max_workers > 1 ? popts.max_workers / 2 : 1;
		s.hs.pool = s.pool;
		s.hs.relay = &s.relay;
		if ((rc = handshake_init(&s.hs)) != 0)
			goto out_rc;
		s.hs_ready = true;
	}

#ifdef HAVE_HIREDIS
	if (s.cfg.redis != NULL && start_cluster(&s) != 0)
		goto out;
#endif
	if (s.cfg.metrics_port != NULL) {
		struct metrics_config mc = { .host = s.cfg.metrics_host,
			                     .port = s.cfg.metrics_port,
			                     .pool = s.pool,
			                     .cluster = s.cfg.redis != NULL };

		if (metrics_start(&s.metrics, &mc, err, sizeof(err)) != 0) {
			fprintf(stderr, "chat-server: --metrics: %s\n", err);
			goto out;
		}
	}
	tp_pool_stats(s.pool, &st);
	log_listening(&s, st.max_workers);
	if (s.cfg.npassed > 0)
		log_info("%zu listening socket%s from systemd (socket activation)", s.cfg.npassed,
		         s.cfg.npassed == 1 ? "" : "s");
	log_info("limits: %zu client%s, %zu bytes of send queue each", s.adm.max_clients,
	         s.adm.max_clients == 1 ? "" : "s",
	         s.cfg.max_sendq);
	if (s.cfg.cloak)
		log_info("addresses are cloaked for clients (--cloak); the log shows them");
	if (systemd_notify_open())
		systemd_notify("READY=1\nSTATUS=accepting clients");

	run_loop(&s);
	stop(&s);
#ifdef HAVE_HIREDIS
	if (s.cluster != NULL) {
		struct conn *c;

		cluster_stop(s.cluster); /* says goodbye for our clients */
		s.cluster = NULL;
		/* A kick from the bus (a nick answer) that saw us running just
		 * before we stopped may have parked one more: no job will run
		 * for it now, and the park must give its reference back. */
		if (park_collect(&s.park) == 0)
			while ((c = park_pop(&s.park, LONG_MAX)) != NULL)
				conn_unref(c);
	}
#endif
	status = 0;
	goto out;

out_rc:
	fprintf(stderr, "chat-server: cannot start: %s\n", strerror(-rc));
	goto out;
out_errno:
	fprintf(stderr, "chat-server: cannot set up the event loop: %s\n", strerror(errno));
out:
	metrics_stop(s.metrics); /* before the pool it reads */
#ifdef HAVE_HIREDIS
	if (s.cluster != NULL)
		cluster_stop(s.cluster);
#endif
	if (s.pool != NULL)
		tp_pool_free(s.pool); /* waits for any job still running */
	if (s.bc_ready)
		broadcast_destroy(&s.bc);
	if (s.greet_ready)
		greet_destroy(&s.greet); /* after the queues that shared its MOTD */
	if (s.park_ready)
		park_destroy(&s.park);
	if (s.adm_ready)
		admission_destroy(&s.adm);
	if (s.hs_ready)
		handshake_destroy(&s.hs);
	tls_ctx_free(s.tls);
	for (i = 0; i < s.nlisten; i++)
		close(s.lfds[i]);
	if (s.wakefd >= 0)
		close(s.wakefd);
	if (s.sigfd >= 0)
		close(s.sigfd);
	if (s.epfd >= 0)
		close(s.epfd);
	systemd_notify_close();
	free(s.motd_own);
	free(s.tls_cert_own);
	free(s.tls_key_own);
	return status;
}
