/*
 * One client connection: its descriptor and address, the carry of its
 * unfinished input line, and its send queue of shared messages.
 *
 * Ownership and locks
 * -------------------
 * - refs (atomic): the registry, the accept loop, a job in flight (or the
 *   park, while it waits there), and any thread about to flush the queue
 *   each hold one.  conn_unref() dropping the last one closes the
 *   descriptor (exactly once) and frees.
 * - in, bucket, held, eof, eof_err, joined_online: owned by
 *   the one job in flight.  The accept loop registers the descriptor with
 *   EPOLLONESHOT and submits a job only after conn_job_begin() succeeds,
 *   so there is never more than one.  A job out of flood tokens parks the
 *   connection (park.h) still busy; its next job takes these over.
 * - mu guards the send queue, busy and dead.  Lock order (see broadcast.c):
 *   registry lock -> conn mu.  The writer lets go of mu for the sendmsg
 *   itself (see flush_locked()), so queueing never waits for a write.
 *
 * Who writes the queue: a fan-out only queues, and notes the recipient for
 * the broadcast module's next write pass (broadcast_flush()), so that the
 * lines of many fan-outs leave in one writev.  A write that finds the
 * socket full marks the connection blocked; from then on EPOLLOUT, not the
 * write pass, is what resumes it.
 *
 * The descriptor in epoll: the one rule
 * ------------------------------------
 * Every change of a connection's epoll registration is made here, by
 * rearm_locked() under mu, except its first and last, which the accept
 * loop makes: EPOLL_CTL_ADD at admission (accept.c, disarmed and busy)
 * and, once the connection has left, the level-triggered watch of its
 * polite close and EPOLL_CTL_DEL (linger.c).  Between the two:
 *
 *   state                     who may re-arm               how
 *   busy (job in flight,      only that job, at its end     conn_job_end()
 *     parked, announcing)
 *   not busy, socket full     whoever holds mu and finds    flush_locked():
 *                             the socket full               EPOLLOUT added
 *   not busy, otherwise       nobody: armed for input       (ONESHOT)
 *   lingering (left)          the accept loop only          linger.c
 *
 * Busy is taken by conn_job_begin() (the accept loop on an event, or its
 * tick for a quiet join) and kept for good by conn_linger_begin().  An
 * event that arrives while busy is ignored by the accept loop: the job's
 * re-arm covers it, since the registration is level-triggered ONESHOT.
 */
#ifndef CONN_H
#define CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>

#include "flood.h"
#include "io.h"
#include "line.h"
#include "mono.h"
#include "msg.h"
#include "net.h"
#include "telnet.h"

/* A quiet connection (accept.h) that stays this long is announced. */
#define CONN_QUIET_MS 2000
/* How long a new connection's join waits for a first line that may name
 * it (/nick NAME), before it is announced under its address. */
#define CONN_NICK_WAIT_MS 1000

/* The longest nick a client may take. */
#define CONN_NICK_MAX 16

struct relay;
struct room;

struct conn {
	struct io io;               /* immutable: the transport; io.fd is what
	                             * epoll watches; closed by the last unref */
	int epfd;                   /* immutable */
	char addr[NET_ADDRSTRLEN];  /* immutable: "127.0.0.1:52842", for the log */
	char shown[NET_ADDRSTRLEN]; /* immutable once a member: what others see
	                             * of it, addr or its cloak (cloak.h) */
	size_t max_sendq;           /* immutable: bytes */
	const atomic_bool *no_read; /* immutable: set when the server stops reading */
	struct relay *relay;        /* immutable: the jobs' shared state (relay.h) */
	atomic_uint refs;
	atomic_long last_heard_ms; /* CLOCK_MONOTONIC ms of its last input */
	unsigned char ipkey[16];   /* accept loop only: its address (ipcount.h) */
	bool counted;              /* accept loop only: ipkey is counted */
	long joined_ms;            /* immutable: CLOCK_MONOTONIC ms of its admission */
	bool quiet;                /* immutable once its first job runs: its join is
	                            * announced late, if at all (accept.h, churn) */
	/* TLS (handshake.h): set at admission, cleared by the job that
	 * finishes the handshake, before it joins the registry.  Read by the
	 * accept loop only after conn_job_begin() (mu orders the two). */
	atomic_bool handshaking;
	long hs_due;                    /* handshake.h's mu: CLOCK_MONOTONIC ms deadline */
	struct conn *hs_prev, *hs_next; /* handshake.h's mu: connections in handshake */
	struct conn *hs_ready_next;     /* handshake.h's mu: waiting for a handshake lane */

	/* Owned by the job in flight. */
	struct line_buf in;
	struct telnet telnet;       /* telnet commands cut between reads */
	struct flood_bucket bucket; /* its flood budget */
	struct flood_hold held;     /* lines read beyond that budget */
	bool eof;                   /* input ended (after what is held) */
	bool joining;               /* its first line may still name it: its join
	                             * is not announced yet (CONN_NICK_WAIT_MS) */
	bool nick_hold;             /* that first line asked the cluster for a
	                             * nick: what follows is held for the answer */
	int eof_err;                /* why, if an error: an errno */
	atomic_bool announced;      /* the join notice went out: written by the
	                             * job in flight, read by the loop's tick */
	size_t joined_online;       /* clients online when it joined */

	/*
	 * Written by the connection's own job under the registry's write lock
	 * (broadcast_set_nick); read by that job freely and by others under
	 * the registry's read lock.
	 */
	char nick[CONN_NICK_MAX + 1];                  /* "" until /nick */
	char name[CONN_NICK_MAX + 1 + NET_ADDRSTRLEN];    /* "alice@" shown, or shown */
	char logname[CONN_NICK_MAX + 1 + NET_ADDRSTRLEN]; /* the same with addr: the log's */

	size_t reg_index;       /* guarded by the registry's lock */
	struct room *room;      /* the room it is in, with a reference: written by
	                         * its own job (broadcast_move) or join and leave,
	                         * under the registry's write lock; read by its own
	                         * job freely, by others under the lock */
	size_t room_index;      /* the registry's lock: its place in room->conns */
	uint64_t join_seq;      /* set once under the registry's write lock: join order */
	struct conn *out_next;  /* guarded by the registry's out_mu: ... */
	bool out_listed;        /* ... noted for the next write pass */
	struct conn *reap_next; /* guarded by the server's reap lock */
	struct conn *wait_next; /* guarded by admission's wait_mu: joins waiting */
	long wait_due;          /* ... and when the wait is over */

	/* The accept loop's alone, once the connection has left (linger.h). */
	bool lingering;
	bool linger_rd_done; /* its input has ended: no more EPOLLIN */
	bool linger_wr_done; /* its queue is written and its write side shut */
	long linger_due;     /* CLOCK_MONOTONIC ms when it is closed anyway */
	struct conn *linger_prev, *linger_next;

	pthread_mutex_t mu;
	struct msg **q; /* mu: ring of queued messages */
	size_t qcap, qhead, qlen;
	size_t qoff;   /* mu: bytes of q[qhead] already sent */
	size_t qbytes; /* mu: bytes queued and not yet sent */
	bool busy;     /* mu: a job is in flight */
	bool blocked;  /* mu: the socket was full with output left: wait for EPOLLOUT */
	bool want_out; /* mu: the job ended waiting to write (a TLS handshake step) */
	bool writing;  /* mu: a thread is in sendmsg for it, without mu */
	bool dead;     /* mu: no more output; queue emptied */
	char why[96];  /* mu: why it died, for the log */
	bool why_warn; /* mu: worth a warning (not a mere departure) */

	/* mu: a nick asked of the cluster (bus.h claim_nick) and its answer,
	 * which only the connection's own job applies (conn_take_nick). */
	int nick_state; /* enum conn_nick */
	char nick_offer[CONN_NICK_MAX + 1];
};

/* Where a nick asked of the cluster stands. */
enum conn_nick {
	CONN_NICK_NONE,    /* nothing asked */
	CONN_NICK_PENDING, /* asked, no answer yet */
	CONN_NICK_GRANTED, /* the cluster gave it: apply it */
	CONN_NICK_TAKEN,   /* someone on another server has it */
	CONN_NICK_FAILED,  /* the link went down before the answer */
	CONN_NICK_REVOKED, /* its nick went to someone else while this server
	                    * was cut off: give it up */
};

/*
 * A connection over io, the transport of an accepted, non-blocking socket
 * (io_init() for plain, io_tls_init() for TLS).  Takes ownership of the
 * transport (closed on failure too).  One reference, for the caller.
 * Returns 0 or -ENOMEM.
 */
int conn_new(struct conn **out, struct io *io, const struct sockaddr *peer, int epfd,
             size_t max_sendq, const atomic_bool *no_read, struct relay *relay);
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* Queued bytes past which a connection that is not blocked is written at
 * once rather than at the next write pass (at most half of max_sendq). */
#define CONN_WRITE_NOW (64 * 1024)

/*
 * Append n messages (taking a reference on each).  Returns 1 if the queue
 * was empty, so the caller must see that it is flushed (outside any
 * registry lock); 2 if the queue has grown past CONN_WRITE_NOW while its
 * socket still takes data, so the caller should flush it now: the server,
 * not the client, is behind, and the client must not reach max_sendq for
 * that; 0 if someone else will; -EPIPE if the connection is dead;
 * -ENOBUFS if this would pass max_sendq with the queue not empty, in
 * which case the connection is dropped (its queue freed, its socket shut
 * down) and nothing is queued.  An empty queue takes any message.
 */
int conn_enqueue(struct conn *c, struct msg *const *msgs, size_t n);

/*
 * Write what is queued (one sendmsg for up to 64 messages) until done or
 * the socket is full; then the connection is blocked and waits for
 * EPOLLOUT.  Returns 0, or a negative errno if the connection died (it is
 * then dropped).
 */
int conn_flush(struct conn *c);

/*
 * Queue n messages to c and see that they are written: conn_enqueue, then
 * conn_flush when the queue was empty (or past CONN_WRITE_NOW).  For a
 * message to one client; fan-outs leave the write to the write pass.
 * Returns what conn_enqueue or conn_flush returned, 0 or a negative errno.
 */
int conn_send(struct conn *c, struct msg *const *msgs, size_t n);

/* Mark a job in flight.  False if one already is (ignore the event). */
bool conn_job_begin(struct conn *c);
/* The job is done: re-arm for input (unless the server stopped reading)
 * and for output if the socket was full. */
void conn_job_end(struct conn *c);
/* The same, armed for output too: the transport must write before it can
 * go on (a TLS handshake step that found the socket full). */
void conn_job_end_want_out(struct conn *c);

/*
 * Input for the job in flight (or the accept loop, once the connection
 * lingers): what io_read returns, 0 at end of input or a negative errno.
 */
ssize_t conn_read(struct conn *c, void *buf, size_t len);

/* Input the transport holds that epoll cannot see (io.h: pending). */
bool conn_input_buffered(struct conn *c);

/* For the accept loop, when c has left for good: c is busy from now on,
 * so that nobody but the linger re-arms its descriptor. */
void conn_linger_begin(struct conn *c);

/* End our output after what is sent (the peer sees end of input). */
void conn_shutdown_write(struct conn *c);

/* Drop the connection: free its queue, shut its socket down so that its
 * own job sees end of input and leaves.  The first reason is kept; warn
 * says whether it deserves a warning in the log. */
void conn_drop(struct conn *c, const char *why, bool warn);

/* True if dropped; copies the reason and whether it deserves a warning
 * (why and warn may be NULL). */
bool conn_is_dead(struct conn *c, char *why, size_t len, bool *warn);

/* Bytes queued and not yet sent. */
size_t conn_pending(struct conn *c);

/* Mark nick as asked of the cluster: 0, or -EBUSY if one already is. */
int conn_ask_nick(struct conn *c, const char *nick);
/* The answer (state > CONN_NICK_PENDING), from the bus's thread.  Returns
 * true if the question was still open (the answer is recorded). */
bool conn_answer_nick(struct conn *c, enum conn_nick state);
/* From the bus: c must give up nick (CONN_NICK_REVOKED), unless another
 * question is open.  Returns true if recorded. */
bool conn_revoke_nick(struct conn *c, const char *nick);
/* For c's own job: an answer waiting (its nick copied to nick, the state
 * returned and cleared), or CONN_NICK_NONE / CONN_NICK_PENDING. */
enum conn_nick conn_take_nick(struct conn *c, char *nick, size_t len);
/* The nick asked of the cluster and not yet applied, if any (copied to
 * nick; "" if none): what a departure must release too. */
void conn_asked_nick(struct conn *c, char *nick, size_t len);
/* Whether an answer waits for c's job (for the bus, to see it was taken). */
bool conn_nick_answered(struct conn *c);

#endif /* CONN_H */
