/*
 * Internal contract between threadpool.c (pool, queue, workers, map),
 * future.c (future states, result, cancel, callbacks) and wait.c (tp_wait,
 * tp_as_completed).  Nothing here is exported.
 *
 * Locking
 * -------
 * Two mutexes per pool.  pool->mu guards the workers' side of the queue
 * (the batch), the worker counters AND the state of every future created
 * by that pool; a worker takes it once per task, whether or not the task
 * has a future.  pool->inmu guards the submitters' side (the inbox): once
 * every worker is started, a submit takes inmu alone, so a submitter and a
 * worker meet only when the worker swaps the inbox in, or sleeps.  A waiter
 * (struct tp_waiter, one per tp_wait/tp_as_completed call) has its own
 * mutex, taken while a pool's mu is held when a future completes.
 *
 * Lock order: pool->mu -> pool->inmu, and pool->mu -> waiter->mu (and a
 * tp_sleeper's mu, taken alone).  No user code (task, initializer, done
 * callback) ever runs with any of them held.  No thread that needs
 * pool->mu once awake is woken with pool->mu held: whoever decides, under
 * the lock, that a sleeping worker must be woken claims it there (nwaking,
 * or watcher_claimed) and signals work_cv (or watch_cv) after unlocking;
 * whoever finishes a future moves its sleepers (tp_future_result callers)
 * to a list of its own and wakes them after unlocking.  So the woken
 * thread never queues for a lock its waker still holds.  (tp_wait and
 * tp_as_completed callers sleep on their waiter's own mutex, and are
 * signalled under pool->mu.)  A submit on the
 * fast path learns that a worker sleeps from want_wake, read after a full
 * fence (the handshake in worker_main).
 *
 * Spinning (threadpool.c) shares three things without the lock: a spinning
 * worker watches in_len (and pool->kick, which shutdown bumps);
 * a spinning caller of tp_future_result watches its future's state, and
 * sets f->awaited, which the worker reads when the task ends; a caller that
 * finds its last task done sets pool->asked, which the next worker to
 * finish a task reads and clears.  All three are hints (relaxed): a stale
 * one costs a spin or a sleep, never a lost task or result.
 *
 * One read needs no lock: a future's state is atomic, and DONE is final.
 * err and result are written before the (release) store of DONE and never
 * again, so whoever loads DONE (acquire) may read them without pool->mu.
 * tp_future_result on a finished future, and the state queries, thus never
 * contend with the workers for the pool's lock.
 *
 * Lifetimes
 * ---------
 * The pool struct is reference counted: the handle from tp_pool_create, each
 * live worker thread, and each future (its lock lives in the pool) hold one.
 * A future is reference counted too: the caller's reference, the queue's
 * (dropped by whoever takes the task off the queue), and one per
 * tp_as_completed iterator.
 */
#ifndef TP_INTERNAL_H
#define TP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "threadpool.h"

enum tp_fstate {
	TP_F_PENDING, /* queued, not started */
	TP_F_RUNNING, /* a worker runs its task */
	TP_F_DONE     /* finished, failed or cancelled: err says which */
};

struct tp_cb {
	void (*fn)(tp_future *f, void *arg);
	void *arg;
};

/* One tp_wait or tp_as_completed call waiting on many futures. */
struct tp_waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled on every completion; CLOCK_MONOTONIC */
	size_t ndone;      /* guarded by mu: completions seen */
	size_t nfailed;    /* guarded by mu: completions with an error (not cancel) */
	tp_future **fifo;  /* guarded by mu: as_completed's queue, or NULL */
	size_t fifo_head, fifo_tail;
};

/* Links one waiter into one future's list of waiters. */
struct tp_wnode {
	struct tp_wnode *prev, *next; /* guarded by the future's pool->mu */
	struct tp_waiter *w;          /* immutable */
	tp_future *f;                 /* immutable */
	bool linked;                  /* guarded by the future's pool->mu */
};

/*
 * A thread asleep in tp_future_result, on its own stack (future.c).  It
 * sleeps on a mutex of its own, not the pool's, so that the thread that
 * finishes the future can wake it after releasing pool->mu and the woken
 * thread never queues for a lock its waker holds.  While linked to the
 * future it belongs to the future (pool->mu); whoever unlinks it (the
 * finisher, or the sleeper giving up) owns it from then on, and the
 * finisher's last touch is the unlock of mu after setting woken.
 */
struct tp_sleeper {
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* CLOCK_MONOTONIC */
	bool woken;              /* guarded by mu */
	struct tp_sleeper *next; /* see above */
};

/*
 * A program that uses futures makes and frees one per task, so a future is
 * kept small enough for malloc's fast path: glibc serves blocks of up to
 * 15 words from its fast bins whatever their number, and bigger ones from
 * bins that slow down as more are in use (a calloc and free of 136 bytes
 * cost 50 to 80 ns in a batch of 1,024 to 4,096, bench/tp-bench's futures
 * workload).  That is why a waiter brings its own condition variable
 * (struct tp_sleeper) instead of each future carrying one.  Most futures
 * do not reach malloc at all: see the per-thread cache in future.c.
 */
struct tp_future {
	struct tp_pool *pool; /* immutable; holds a pool reference */
	atomic_uint refs;

	/* Written under pool->mu; see "One read needs no lock" above. */
	_Atomic enum tp_fstate state;
	int err;             /* when DONE: 0, a task's code (> 0), -ECANCELED, -ENOTRECOVERABLE */
	atomic_bool awaited; /* someone spun in tp_future_result; read by its worker */
	void *result;        /* when DONE and err == 0 */

	/* Guarded by pool->mu. */
	struct tp_sleeper *sleepers; /* threads in tp_future_result, each signalled when DONE */
	struct tp_wnode *waiters;    /* tp_wait and tp_as_completed calls */

	/*
	 * Done callbacks.  Appended under pool->mu while not DONE.  Once DONE,
	 * nobody appends any more, and the one thread that made it DONE owns
	 * the array: it runs and frees it with no lock held.
	 */
	struct tp_cb *cbs;
	size_t ncbs, capcbs;

	/* Chain of futures finished together (shutdown, broken pool); owned
	 * by the thread that built the chain. */
	tp_future *next_done;
};

_Static_assert(sizeof(struct tp_future) <= 15 * sizeof(void *),
               "a future outgrows malloc's fast bins (see above)");

struct tp_work {
	tp_fn fn;
	void *arg;
	tp_future *f; /* NULL for fire-and-forget */
};

/*
 * A pool's fields fall in three groups, each on cache lines of its own:
 * what every thread reads and almost nobody writes; the workers' side,
 * under mu; the submitters' side, under inmu.  A worker popping tasks
 * and a thread submitting them then write to no line the other reads on
 * every task, which is where most of the cost of a shared queue goes.
 */
#define TP_CACHE_LINE 64

struct tp_pool {
	/* Immutable after tp_pool_create. */
	unsigned forks; /* tp__forks when made: another value means a forked child */
	unsigned max_workers;
	size_t max_queue;
	int (*initializer)(void *initarg);
	void *initarg;
	char prefix[16];
	long spin_ns; /* how long an idle worker or a waiter spins before sleeping; 0: never */
	unsigned ncpu; /* CPUs the creating thread may use: the cap on awake workers */

	/* Written with both mu and inmu held, so either lock reads them. */
	bool shutdown;
	bool broken;

	/* Set once nthreads == max_workers: from then on a submit needs no
	 * spawn decision, and takes the fast path (inmu only). */
	atomic_bool all_started;

	/* Whether a submit must wake a sleeping worker: some sleep, and none
	 * is on its way (claim_sleeper_locked).  Written under mu whenever
	 * nsleeping, nwaking or nspinning change; read without it by a submit
	 * on the fast path, after its push (the handshake is in worker_main). */
	atomic_bool want_wake;

	/* Set by tp_future_result when it finds the task its caller submitted
	 * last already done (a sequential caller slower than its tasks);
	 * read and cleared by the worker that finishes the next one. */
	atomic_bool asked;

	/* Bumped (under mu) by shutdown: a spinning worker watches it, and
	 * in_len, without the lock. */
	atomic_uint kick;

	/* The workers' side. */
	_Alignas(TP_CACHE_LINE) pthread_mutex_t mu;
	pthread_cond_t work_cv; /* workers sleep here for work or shutdown */
	pthread_cond_t exit_cv; /* tp_shutdown(TP_WAIT) sleeps here until nlive == 0 */
	pthread_cond_t watch_cv; /* the watcher's timed sleep (threadpool.c, "The cap") */

	/*
	 * The queue is two arrays.  Submitters append to the inbox under inmu;
	 * workers pop from the batch under mu, and when it is empty swap the
	 * two (taking inmu for that moment).  Every batch entry is older than
	 * every inbox entry, so tasks still leave in submission order, and a
	 * submitter and a worker share no lock but for the swap.  Both arrays
	 * hold tasks cancelled while queued too: a worker discards such an
	 * entry when it reaches it, and a push that finds the inbox full drops
	 * them if they are half of it (inbox_push).
	 */
	struct tp_work *batch; /* guarded by mu: entries batch[batch_head..batch_len) */
	size_t batch_cap, batch_head, batch_len;
	/* Tasks no longer queued: started, cancelled while queued, or
	 * drained.  Written under mu; read without it by a submit checking
	 * max_queue, where a stale value only overstates the queue.  The
	 * tasks queued are pushed - out. */
	_Atomic uint64_t out;

	/* Guarded by mu. */
	pthread_t *threads;   /* every worker ever started; grows to max_workers */
	unsigned threads_cap; /* allocated length of threads */
	unsigned nthreads;    /* threads started */
	unsigned njoined;     /* threads[0..njoined) joined or detached by someone */
	unsigned nlive;       /* workers that have not exited */
	unsigned nidle;       /* live workers not running a task (see worker_main) */
	unsigned nsleeping;   /* workers blocked on work_cv */
	unsigned nwaking;     /* of those, the ones a submit has signalled already */
	unsigned nrunning;    /* tasks running */
	unsigned nspinning;   /* idle workers spinning instead of sleeping (0 or 1) */
	bool watching;        /* a worker sleeps on watch_cv, so the cap holds */
	bool lifted;          /* no cap: see "The cap" in threadpool.c */
	bool watcher_claimed; /* the watcher is signalled to work (cap lifted) */
	uint64_t look_done;   /* completed + failed at the watcher's last look */
	int64_t look_ns;      /* CLOCK_MONOTONIC of that look */
	double rate_lifted;   /* tasks a ms at the last look while lifted */
	unsigned probe_wait;  /* looks to wait before trying the cap again */
	unsigned probe_backoff; /* the wait after the next failed try */
	unsigned spin_credit; /* > 0: callers wait for each result, so spin (worker_main) */
	uint64_t completed, failed, cancelled;
	uint64_t discarded; /* of failed and cancelled: those without a future */

	/* The submitters' side.  Guarded by inmu. */
	_Alignas(TP_CACHE_LINE) pthread_mutex_t inmu;
	struct tp_work *inbox;
	size_t in_cap;
	atomic_size_t in_len; /* also read without inmu: see worker_main */
	uint64_t pushed;      /* tasks ever queued (tp_stats.submitted) */

	/* Taken and dropped by each future, mostly by the thread that submits
	 * and collects (a worker, only when it frees the future): a line of
	 * its own. */
	_Alignas(TP_CACHE_LINE) atomic_uint refs;
};

/*
 * fork(): a child has none of the parent's workers, and any lock of a pool
 * may have been held by one of them at the fork, frozen for ever in the
 * child.  So in a child every call on a pool (or its futures) made before
 * the fork returns -EOWNERDEAD at once, touching nothing; pools made in the
 * child work.  tp__forks counts the forks of this process's lineage
 * (pthread_atfork's child handler, threadpool.c).
 */
extern atomic_uint tp__forks;

static inline bool
tp__orphaned(const struct tp_pool *pool)
{
	return pool->forks != atomic_load_explicit(&tp__forks, memory_order_relaxed);
}

/* pool->mu held: one more task is off the queue (started, cancelled while
 * queued, or drained).  Only ever written under mu, so a plain add. */
static inline void
tp__count_out_locked(struct tp_pool *pool)
{
	atomic_store_explicit(&pool->out, atomic_load_explicit(&pool->out, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

/* threadpool.c */
void tp__pool_ref(struct tp_pool *pool);
void tp__pool_unref(struct tp_pool *pool);
int tp__cond_init_monotonic(pthread_cond_t *cv);
void tp__deadline(struct timespec *ts, long timeout_ms);
long tp__remaining_ms(const struct timespec *deadline);

/* The future this thread submitted last (threadpool.c): a caller waiting
 * for that one is running tasks one at a time, and worth a spin; one
 * waiting for an older one submitted ahead, and sleeps at once, so that
 * the worker runs ahead of it instead of in step with it.  An address
 * reused after a free can only cost one needless spin. */
extern _Thread_local const tp_future *tp__last_submitted;

/* Spin, pausing the CPU between looks, until ready(arg) or ns nanoseconds
 * pass.  Returns whether ready(arg) came true. */
bool tp__spin(bool (*ready)(const void *arg), const void *arg, long ns);

/* future.c */
tp_future *tp__future_new(struct tp_pool *pool);
/* With pool->mu held: make f DONE, notify its tp_wait/tp_as_completed
 * waiters, and move its sleepers onto *wake.  The caller then, with no
 * lock held, calls tp__wake_sleepers(*wake) and then
 * tp__future_run_callbacks(f) (callbacks run after waiters are woken). */
void tp__future_finish_locked(tp_future *f, int err, void *result, struct tp_sleeper **wake);
void tp__wake_sleepers(struct tp_sleeper *list);
void tp__future_run_callbacks(tp_future *f);
void tp__future_ref(tp_future *f);

/* wait.c */
void tp__waiter_notify(struct tp_waiter *w, tp_future *f);

#endif /* TP_INTERNAL_H */
