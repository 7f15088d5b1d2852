/*
 * Admission: who gets in, and the way out.  The accept loop accepts; this
 * module decides, for each new connection, whether it is taken
 * (--max-clients, --max-per-ip), tells the ones it refuses why, sheds
 * connections when the process is out of descriptors, and at the other
 * end reaps connections whose job has ended, giving back what admission
 * counted for them.
 *
 * Churn: each address has a budget of joins announced at once
 * (JOIN_BURST, refilled at JOIN_RATE a second).  A connection admitted
 * while its address's budget is spent is quiet (conn.quiet): its join is
 * announced only once it has stayed CONN_QUIET_MS, and its departure only
 * if its join was (a churner that speaks before it goes is heard, its
 * join and departure not).  So one address
 * reconnecting hundreds of times a second costs the room a few notices a
 * second, and the log a line every ten seconds instead of two per
 * connection; while many clients behind one address that stay (a
 * classroom behind NAT, a test on 127.0.0.1) are all announced, the late
 * ones within about CONN_QUIET_MS.  Quiet clients are members like any
 * other: in /who, and their lines relayed.
 */
#ifndef ACCEPT_H
#define ACCEPT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>

#include "broadcast.h"
#include "cloak.h"
#include "conn.h"
#include "handshake.h"
#include "ipcount.h"
#include "linger.h"
#include "log.h"

struct relay;
struct tls_ctx;

struct admission {
	/* Set before the loop runs, immutable after. */
	size_t max_clients;
	unsigned max_per_ip; /* 0: no limit */
	size_t max_sendq;
	int epfd;
	int wakefd; /* written when a connection is pushed for reaping */
	struct broadcast *bc;
	struct relay *relay;
	struct handshake *hs; /* TLS handshakes in progress; NULL: no TLS port */
	const atomic_bool *stopping;
	const struct cloak *cloak; /* --cloak: what others see of an address; NULL: itself */

	/* The accept loop's. */
	struct ipcount *perip;    /* connections and churn budget per address */
	struct flood_limit joins; /* immutable: the budget of joins announced at once */
	struct log_limit quiet_log;
	long last_quiet_ms; /* when the last quiet connection was admitted */
	int spare_fd;       /* held open so that EMFILE can still be shed */
	struct log_limit full_log, perip_log, emfile_log, hs_log;

	pthread_mutex_t reap_mu;
	struct conn *reap_head; /* reap_mu: connections whose job has ended */

	pthread_mutex_t wait_mu; /* joins waiting for a first line (conn.joining) */
	struct conn *wait_head, *wait_tail;
};

/* The fields above the accept loop's are the caller's to set; this opens
 * the spare descriptor and the table.  Returns 0 or a negative errno. */
int admission_init(struct admission *a);
void admission_destroy(struct admission *a);

/*
 * Take or refuse one accepted, non-blocking descriptor (ownership passes
 * here).  Plain (tls NULL): a connection taken is a member of the
 * registry, watched by epoll disarmed and busy, with two references: the
 * loop's (kept until it is reaped) and one for its first job, which the
 * caller starts.  TLS (the current tls_ctx): it is in handshake
 * (handshake.h), not yet a member, armed for input, with the loop's
 * reference only.  Either way its address is counted now, before any
 * cryptography.  NULL if it was refused (a plain one is told why; a TLS
 * one could not read it) or could not be set up.
 */
struct conn *admission_admit(struct admission *a, int fd, const struct sockaddr *peer,
                             struct tls_ctx *tls);

/*
 * accept4() on lfd until it would block, a batch of max is taken, or the
 * process is out of descriptors (then one connection is shed: told and
 * closed).  Plain connections taken go to out, for their announce job;
 * TLS ones (tls not NULL) wait for their handshake.  Returns the number
 * put in out.
 */
size_t admission_accept(struct admission *a, int lfd, struct tls_ctx *tls, struct conn **out,
                        size_t max);

/* Any thread (the relay's reap hook, arg is the admission): c's job has
 * ended and gives its reference; the loop reaps c after this batch. */
void admission_reap_push(void *arg, struct conn *c);

/* The loop, between event batches (an event still to be handled could
 * name a connection freed here): each reaped connection gives back its
 * per-address slot and goes to l to be closed politely. */
void admission_reap(struct admission *a, struct linger_set *l, long now_ms);

/* The loop, about once a second: forget addresses with nothing left to
 * count. */
void admission_tick(struct admission *a);

/* The loop: whether a quiet connection may still be waiting for its late
 * announcement (admitted quiet within the last few seconds). */
bool admission_quiet_waiting(const struct admission *a, long now_ms);

/*
 * Nick before join: a new connection (not quiet) is announced when its
 * first line comes, under the nick that line takes if it is /nick NAME,
 * or after CONN_NICK_WAIT_MS without one, under its address.  The waiting
 * list holds those joins, in the order they began to wait, each with a
 * reference.  Push from any thread (the accept loop; a TLS handshake's
 * job, which then wakes the loop); pop and the timeout are the loop's.
 */
void admission_wait_push(struct admission *a, struct conn *c, long due);
/* The same from another thread (a TLS handshake's job, arg the
 * admission): the loop is woken to see the new deadline. */
void admission_wait_push_wake(void *arg, struct conn *c, long due);
/* The first waiting join whose time is up by now, with its reference; NULL
 * if none. */
struct conn *admission_wait_pop(struct admission *a, long now_ms);
/* Milliseconds until the first waiting join is due (0: now), -1 if none. */
long admission_wait_timeout(struct admission *a, long now_ms);

/* Give back what admission counted for c (its per-address slot), when it
 * leaves other than by its job (shutdown).  Idempotent. */
void admission_release(struct admission *a, struct conn *c);

#endif /* ACCEPT_H */
