/*
 * The pool: a FIFO ring of tasks, worker threads started lazily up to
 * max_workers, and shutdown (tp_map is in map.c).  Locking and lifetimes
 * are described in tp_internal.h.
 *
 * How many workers: a submit starts a new worker only when the tasks queued
 * (its own included) outnumber the idle workers.  A worker counts as idle
 * from the moment its task returns, *before* it publishes the task's result.
 * So a thread that submits, waits for the result and submits again always
 * finds that worker idle, and sequential use needs one thread, as in Python.
 * The exception is a future with done callbacks: its worker counts as idle
 * only once they have run, since a callback may itself submit and wait.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tp_internal.h"

#define QUEUE_INITIAL 64 /* entries in each of the batch and the inbox at first */

/* The pool whose worker this thread is, if any: detects tp_shutdown(TP_WAIT)
 * and tp_pool_free() called from a pool's own task or callback. */
static _Thread_local struct tp_pool *tls_pool;

_Thread_local const tp_future *tp__last_submitted;

void
tp__pool_ref(struct tp_pool *pool)
{
	atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
}

void
tp__pool_unref(struct tp_pool *pool)
{
	if (atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* Every worker has exited and drained the ring; nothing is queued. */
	pthread_cond_destroy(&pool->watch_cv);
	pthread_cond_destroy(&pool->exit_cv);
	pthread_cond_destroy(&pool->work_cv);
	pthread_mutex_destroy(&pool->inmu);
	pthread_mutex_destroy(&pool->mu);
	free(pool->batch);
	free(pool->inbox);
	free(pool->threads);
	free(pool);
}

int
tp__cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t attr;
	int rc;

	if ((rc = pthread_condattr_init(&attr)) != 0)
		return -rc;
	rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(cv, &attr);
	pthread_condattr_destroy(&attr);
	return -rc;
}

void
tp__deadline(struct timespec *ts, long timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	if (timeout_ms <= 0)
		return;
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

long
tp__remaining_ms(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	     (deadline->tv_nsec - now.tv_nsec) / 1000000;
	if (ms <= 0)
		return 0;
	return ms > LONG_MAX ? LONG_MAX : (long)ms;
}

/*
 * Spinning.  Waking a sleeping thread costs a futex call on the waker's side
 * and, when the sleeper's CPU is idle, an inter-processor interrupt and a
 * trip through the scheduler on the other: 10 to 30 us on a virtual machine.
 * A thread that expects to be needed again very soon (a worker that has just
 * run out of tasks, a caller waiting on a future) therefore spins for a
 * while before it sleeps.  Spinning for about as long as a sleep and a wake
 * cost bounds the CPU wasted to that cost (the classic two-competitive rule
 * for spin-then-block), and a sequential submit(...).result() loop never
 * leaves user space.  Who spins, and what stops it: a caller only for the
 * task it submitted last (future.c); one worker of a pool at a time, only
 * after a task, and only while callers ask for each result in turn
 * (spin_credit, worker_main).  A spin never outlasts spin_ns, so an idle
 * pool sleeps.
 */
#define SPIN_NS 20000L /* the default; tp_options.spin_us */
#define SPIN_ALONE_NS 2000L
#define SPIN_CREDIT 8  /* results nobody waits for before spinning stops (worker_main) */

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause(); /* lets the sibling hyperthread run */
#elif defined(__aarch64__) || defined(__arm__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

bool
tp__spin(bool (*ready)(const void *arg), const void *arg, long ns)
{
	struct timespec start, now;
	int64_t elapsed;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		/* Read the clock once in a while: it costs more than a look. */
		for (int i = 0; i < 32; i++) {
			if (ready(arg))
				return true;
			cpu_relax();
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed = (int64_t)(now.tv_sec - start.tv_sec) * 1000000000 + (now.tv_nsec - start.tv_nsec);
		if (elapsed >= ns)
			return ready(arg);
		/* The thread we wait for may be queued behind us on this
		 * very CPU (the scheduler likes to wake a thread where its
		 * waker ran): past the first microseconds, let it run. */
		if (elapsed >= SPIN_ALONE_NS)
			sched_yield();
	}
}

struct kick_watch {
	const struct tp_pool *pool;
	unsigned seen;
};

/* A spinning worker's wait: a task in the inbox, or shutdown. */
static bool
kicked(const void *arg)
{
	const struct kick_watch *k = arg;

	return atomic_load_explicit(&k->pool->in_len, memory_order_relaxed) > 0 ||
	       atomic_load_explicit(&k->pool->kick, memory_order_relaxed) != k->seen;
}

/* pool->mu held: tell a spinning worker that something changed. */
static void
kick_locked(struct tp_pool *pool)
{
	if (pool->nspinning > 0)
		atomic_store_explicit(&pool->kick,
		                      atomic_load_explicit(&pool->kick, memory_order_relaxed) + 1,
		                      memory_order_relaxed);
}

/* Whether a caller found its last task done since we last looked (a
 * caller slower than its tasks, but still one at a time); clears it. */
static bool
take_asked(struct tp_pool *pool)
{
	if (!atomic_load_explicit(&pool->asked, memory_order_relaxed))
		return false;
	atomic_store_explicit(&pool->asked, false, memory_order_relaxed);
	return true;
}

/*
 * The cap.  A pool may have more workers than CPUs, for tasks that block;
 * but while its tasks are tiny, every worker awake beyond the CPU count
 * only takes turns with the others (and with the thread submitting): each
 * turn costs a context switch, a worker preempted while it holds mu stalls
 * the rest, and each extra wake is a system call, all dearer than the
 * tasks.  With 4 workers on 2 CPUs, tp-bench's futures of empty tasks ran
 * at 15 M/s with all awake and 20 M/s with two (docs/performance.md).  So
 * then no sleeping worker is woken while ncpu workers are awake already.
 *
 * Only then, though.  Tasks that block (on I/O, a lock, or a task still
 * queued behind them) are what more workers than CPUs are for; and tasks
 * of a microsecond or more already pay for the turns, and finish more of a
 * batch at once with more workers (the same futures of 1 and 10 us tasks
 * ran 20% slower under the cap).  So one sleeping worker, the watcher,
 * looks every WATCH_MS at how many tasks finished since the last look, a
 * small hill climb between two states:
 *
 *   - lifted (no cap, where a pool starts): if tasks finish at
 *     SHORT_PER_CPU a millisecond a CPU or more (half a microsecond a task
 *     at most), try the cap;
 *   - capped: if tasks finish 10% slower than they did lifted, the cap
 *     does not pay, or the workers awake are stuck: lift it, and wait
 *     twice as many looks as last time before the next try (up to
 *     PROBE_MAX); if not, it pays, and the next failure waits one look.
 *
 * Stuck workers are thus found within two looks.  A lift that finds tasks
 * queued sends the watcher to work on them; finding more queued, it wakes
 * the next (the chain below).  While lifted, the watcher may be woken for
 * a task like any sleeper (on watch_cv), or a burst as big as the pool
 * would find a worker short; capped, nobody wakes it.  Without a watcher
 * there is no cap.  A worker going to sleep becomes the watcher if there
 * is none and the pool has more workers than CPUs; it stops when a look
 * finds nothing queued or running and nothing finished since the last, so
 * an idle pool sleeps untimed within two looks.
 */
#define WATCH_MS 1          /* a look a millisecond while the pool works */
#define SHORT_PER_CPU 2000  /* tasks a millisecond a CPU that are tiny */
#define PROBE_MAX 1024      /* most looks between tries of the cap */

/* pool->mu held: workers not asleep (on work_cv or as the watcher). */
static unsigned
awake_locked(const struct tp_pool *pool)
{
	return pool->nlive - pool->nsleeping - (pool->watching ? 1 : 0);
}

static bool
capped_locked(const struct tp_pool *pool)
{
	return pool->watching && !pool->lifted && awake_locked(pool) >= pool->ncpu;
}

/* pool->mu held: the watcher may be woken to work, as any sleeper, only
 * while the cap is lifted (or every worker would not be there for tasks
 * that block); capped, it is a worker beyond the cap anyway. */
static bool
watcher_wakeable_locked(const struct tp_pool *pool)
{
	return pool->watching && pool->lifted && !pool->watcher_claimed;
}

/*
 * pool->mu held, a task queued: should a sleeping worker be woken for it?
 * Only if no worker is on its way to the lock already (one spinning, or one
 * signalled and not back yet); that one takes the task and, finding more
 * queued, wakes the next (worker_main).  So a burst wakes the workers it
 * needs one after another, each wake made by a thread that holds no lock,
 * rather than the submitter making a system call per sleeper while it
 * holds the lock every woken worker then queues for.  And not beyond the
 * cap (above).  True means: signal work_cv once the lock is released.
 */
static bool
sleeper_unclaimed_locked(const struct tp_pool *pool)
{
	return (pool->nsleeping > pool->nwaking || watcher_wakeable_locked(pool)) &&
	       pool->nwaking + pool->nspinning + pool->watcher_claimed == 0 && !capped_locked(pool);
}

/* pool->mu held, after nsleeping, nwaking or nspinning changed. */
static void
update_want_wake_locked(struct tp_pool *pool)
{
	bool want = sleeper_unclaimed_locked(pool);

	/* Read before written: no needless cache-line transfer. */
	if (atomic_load_explicit(&pool->want_wake, memory_order_relaxed) != want)
		atomic_store_explicit(&pool->want_wake, want, memory_order_seq_cst);
}

/* pool->mu held, a task queued: claim a sleeper for it if one should be
 * woken (sleeper_unclaimed_locked).  Returns the condition variable to
 * signal once mu is released, or NULL. */
static pthread_cond_t *
claim_sleeper_locked(struct tp_pool *pool)
{
	pthread_cond_t *cv;

	if (!sleeper_unclaimed_locked(pool))
		return NULL;
	if (pool->nsleeping > pool->nwaking) {
		pool->nwaking++;
		cv = &pool->work_cv;
	} else {
		pool->watcher_claimed = true;
		cv = &pool->watch_cv;
	}
	update_want_wake_locked(pool);
	return cv;
}

/* --- the queue ---------------------------------------------------------- */

static bool
cancelled_entry(const struct tp_work *w)
{
	/* Only a cancel (or a drain, which empties the queue) finishes a
	 * future that is still queued. */
	return w->f != NULL &&
	       atomic_load_explicit(&w->f->state, memory_order_relaxed) != TP_F_PENDING;
}

/*
 * pool->inmu held, the inbox full: drop the entries of tasks cancelled
 * while queued, keeping the order of the rest.  A cancel leaves its entry
 * for the worker that reaches it (no search of the queue); this is what
 * keeps those entries, and the futures they hold, from piling up while the
 * workers are busy.  Returns how many went.
 */
static size_t
inbox_compact(struct tp_pool *pool)
{
	size_t i, kept = 0, len = atomic_load_explicit(&pool->in_len, memory_order_relaxed);

	for (i = 0; i < len; i++) {
		if (cancelled_entry(&pool->inbox[i])) {
			/* Never the last pool reference: the submitter holds
			 * the handle.  Its cancel counted it in out already. */
			tp_future_release(pool->inbox[i].f);
			continue;
		}
		pool->inbox[kept++] = pool->inbox[i];
	}
	atomic_store_explicit(&pool->in_len, kept, memory_order_relaxed);
	return len - kept;
}

/* pool->inmu held. */
static int
inbox_push(struct tp_pool *pool, const struct tp_work *w)
{
	size_t len = atomic_load_explicit(&pool->in_len, memory_order_relaxed);

	if (len == pool->in_cap) {
		size_t ncancelled = 0;

		/* A full inbox that is half cancelled entries is compacted
		 * rather than grown: then it stays within twice what is
		 * really pending (and so within max_queue when set), at an
		 * amortised O(1) a push. */
		for (size_t i = 0; i < len; i++)
			ncancelled += cancelled_entry(&pool->inbox[i]);
		if (ncancelled >= len / 2)
			len -= inbox_compact(pool);
	}
	if (len == pool->in_cap) {
		size_t cap = pool->in_cap * 2;
		struct tp_work *inbox;

		if (cap > SIZE_MAX / sizeof(*inbox))
			return -ENOMEM;
		if ((inbox = realloc(pool->inbox, cap * sizeof(*inbox))) == NULL)
			return -ENOMEM;
		pool->inbox = inbox;
		pool->in_cap = cap;
	}
	pool->inbox[len] = *w;
	/* Seen by a worker deciding whether to sleep: see worker_main. */
	atomic_store_explicit(&pool->in_len, len + 1, memory_order_relaxed);
	pool->pushed++;
	return 0;
}

/* pool->mu held: take the next entry, cancelled ones included, swapping in
 * the inbox when the batch is empty.  False if both are empty. */
static bool
queue_pop_locked(struct tp_pool *pool, struct tp_work *w)
{
	if (pool->batch_head == pool->batch_len) {
		struct tp_work *spare = pool->batch;
		size_t spare_cap = pool->batch_cap;

		if (atomic_load_explicit(&pool->in_len, memory_order_relaxed) == 0)
			return false;
		/* Every entry of the batch is gone, and every inbox entry is
		 * newer than those were: taking the whole inbox keeps the
		 * order, and costs the submitters one short wait on inmu. */
		pthread_mutex_lock(&pool->inmu);
		pool->batch = pool->inbox;
		pool->batch_cap = pool->in_cap;
		pool->batch_len = atomic_load_explicit(&pool->in_len, memory_order_relaxed);
		pool->inbox = spare;
		pool->in_cap = spare_cap;
		atomic_store_explicit(&pool->in_len, 0, memory_order_relaxed);
		pthread_mutex_unlock(&pool->inmu);
		pool->batch_head = 0;
		if (pool->batch_len == 0)
			return false;
	}
	*w = pool->batch[pool->batch_head++];
	return true;
}

/* pool->mu held: whether an entry may be waiting (a cancelled one, maybe). */
static bool
queue_nonempty_locked(const struct tp_pool *pool)
{
	return pool->batch_head < pool->batch_len ||
	       atomic_load_explicit(&pool->in_len, memory_order_relaxed) > 0;
}

/* pool->mu held: set shutdown or broken, which a submit reads under inmu
 * alone.  No push happens after this returns. */
static void
close_queue_locked(struct tp_pool *pool, bool *flag)
{
	pthread_mutex_lock(&pool->inmu);
	*flag = true;
	pthread_mutex_unlock(&pool->inmu);
}

/*
 * Empty the queue, finishing every pending future with err (-ECANCELED or
 * -ENOTRECOVERABLE).  pool->mu held, and shutdown or broken set (so no
 * submit adds to the inbox any more).  Returns the chain of futures
 * finished here, their sleepers on *wake: the caller wakes those, then
 * runs the callbacks and drops the queue's references with
 * finish_chain(), with no lock held.
 */
static tp_future *
drain_locked(struct tp_pool *pool, int err, struct tp_sleeper **wake)
{
	tp_future *chain = NULL, **tail = &chain;
	struct tp_work w;

	while (queue_pop_locked(pool, &w)) {
		if (cancelled_entry(&w)) {
			/* Cancelled while queued; already counted. */
			tp_future_release(w.f);
			continue;
		}
		tp__count_out_locked(pool);
		if (err == -ECANCELED)
			pool->cancelled++;
		else
			pool->failed++;
		if (w.f == NULL) {
			pool->discarded++; /* nobody to tell: counted, at least */
			continue;
		}
		tp__future_finish_locked(w.f, err, NULL, wake);
		w.f->next_done = NULL;
		*tail = w.f;
		tail = &w.f->next_done;
	}
	return chain;
}

static void
finish_chain(tp_future *f, struct tp_sleeper *wake)
{
	tp__wake_sleepers(wake);
	while (f != NULL) {
		tp_future *next = f->next_done;

		tp__future_run_callbacks(f);
		tp_future_release(f);
		f = next;
	}
}

/*
 * pool->mu held: a look (see "The cap"), if one is due: the tasks finished
 * a millisecond since the last look, whoever made it.  The watcher looks
 * when it starts and when it wakes; a lifted watcher is often woken for
 * work before its timer, and the look must not wait for a watcher to last
 * a whole WATCH_MS.
 */
static void
look_locked(struct tp_pool *pool)
{
	uint64_t done = pool->completed + pool->failed;
	struct timespec ts;
	int64_t now, elapsed;
	double rate;
	bool lift = pool->lifted;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	elapsed = now - pool->look_ns;
	if (elapsed < WATCH_MS * 1000000L)
		return;
	rate = (double)(done - pool->look_done) * 1e6 / (double)elapsed;
	pool->look_done = done;
	pool->look_ns = now;
	/* With nothing queued or running (between bursts) there is nothing
	 * to judge by: the cap stays as it is. */
	if (pool->nrunning == 0 && !queue_nonempty_locked(pool))
		return;
	if (pool->lifted) {
		pool->rate_lifted = rate;
		if (rate >= (double)SHORT_PER_CPU * pool->ncpu) { /* tiny tasks */
			if (pool->probe_wait > 0)
				pool->probe_wait--;
			else
				lift = false;
		}
	} else if (rate < pool->rate_lifted * 0.9) {
		/* The cap costs throughput, or the workers awake are stuck:
		 * lift it, and try again later, each failure twice as late. */
		lift = true;
		if (pool->probe_backoff < PROBE_MAX)
			pool->probe_backoff *= 2;
		pool->probe_wait = pool->probe_backoff;
	} else {
		pool->probe_backoff = 1; /* it pays */
	}
	if (pool->lifted != lift) {
		pool->lifted = lift;
		update_want_wake_locked(pool);
	}
}

/*
 * pool->mu held, the queue found empty: be the watcher (see "The cap")
 * until the cap is lifted while tasks are queued (then we go to work on
 * them, as when we are woken for a task), the pool goes quiet, or it shuts
 * down.  The caller then looks at the queue again.
 */
static void
watch_locked(struct tp_pool *pool)
{
	uint64_t seen = pool->completed + pool->failed, done;
	struct timespec deadline;
	int rc;

	pool->watching = true;
	/*
	 * As for sleeping (worker_main): we no longer count as awake, which
	 * a submit on the fast path may have relied on to leave its task to
	 * us; it publishes in_len, fences, then reads want_wake, and we
	 * publish want_wake, then read in_len, both seq_cst (which, against
	 * its fence, is as good as a fence of our own, and one that GCC's
	 * ThreadSanitizer supports).  If it did, and the cap does not hold
	 * now, the task is ours; if the cap holds, the workers awake take it.
	 */
	atomic_store_explicit(&pool->want_wake, sleeper_unclaimed_locked(pool), memory_order_seq_cst);
	if (atomic_load_explicit(&pool->in_len, memory_order_seq_cst) > 0 && !capped_locked(pool))
		goto out;
	look_locked(pool);
	if (pool->lifted && queue_nonempty_locked(pool))
		goto out;
	tp__deadline(&deadline, WATCH_MS);
	while (!pool->shutdown) {
		rc = pthread_cond_timedwait(&pool->watch_cv, &pool->mu, &deadline);
		if (pool->watcher_claimed) { /* woken for a task, the cap lifted */
			look_locked(pool);
			break;
		}
		if (rc != ETIMEDOUT)
			continue; /* shutdown, or spurious: the same deadline */
		done = pool->completed + pool->failed;
		if (!queue_nonempty_locked(pool) && pool->nrunning == 0 && done == seen)
			break; /* quiet: nothing to watch over */
		seen = done;
		look_locked(pool);
		if (pool->lifted && queue_nonempty_locked(pool))
			break;
		tp__deadline(&deadline, WATCH_MS);
	}
out:
	pool->watching = false;
	pool->watcher_claimed = false;
	update_want_wake_locked(pool);
}

/* --- workers ------------------------------------------------------------- */

static void
worker_exit_locked(struct tp_pool *pool)
{
	pool->nidle--;
	pool->nlive--;
	if (pool->nlive == 0)
		pthread_cond_broadcast(&pool->exit_cv);
}

static void *
worker_main(void *arg)
{
	struct tp_pool *pool = arg;
	bool may_spin = false; /* see "Spinning" */
	bool watched = false;  /* watched since our last task: sleep next time */
	pthread_cond_t *wake_next;
	/* Threads asleep on futures we finished: woken once mu is released
	 * (the next unlock below), so that none queues for a lock we hold. */
	struct tp_sleeper *woken = NULL;

	tls_pool = pool;
	if (pool->initializer != NULL && pool->initializer(pool->initarg) != 0) {
		struct tp_sleeper *wake = NULL;
		tp_future *chain;

		/* As Python's BrokenThreadPool: fail what is queued and every
		 * later submit. */
		pthread_mutex_lock(&pool->mu);
		close_queue_locked(pool, &pool->broken);
		chain = drain_locked(pool, -ENOTRECOVERABLE, &wake);
		worker_exit_locked(pool);
		pthread_mutex_unlock(&pool->mu);
		finish_chain(chain, wake);
		goto out;
	}

	pthread_mutex_lock(&pool->mu);
	for (;;) {
		struct tp_work w;
		void *result = NULL;
		int rc;

		if (!queue_pop_locked(pool, &w)) {
			/* Every submit made before shutdown was set is in
			 * what we just looked at: both happen under inmu. */
			if (pool->shutdown)
				break;
			if (woken != NULL) {
				pthread_mutex_unlock(&pool->mu);
				tp__wake_sleepers(woken);
				woken = NULL;
				pthread_mutex_lock(&pool->mu);
				continue;
			}
			if (may_spin && pool->nspinning == 0 && pool->spin_ns > 0) {
				struct kick_watch k = { pool, 0 };

				/* A submit that comes while we spin wakes
				 * nobody (we count as on our way): we see
				 * in_len rise; one that comes after we stop
				 * finds us back on the lock.  Shutdown bumps
				 * kick. */
				k.seen = atomic_load_explicit(&pool->kick, memory_order_relaxed);
				pool->nspinning++;
				update_want_wake_locked(pool);
				pthread_mutex_unlock(&pool->mu);
				tp__spin(kicked, &k, pool->spin_ns);
				pthread_mutex_lock(&pool->mu);
				pool->nspinning--;
				update_want_wake_locked(pool);
				may_spin = false; /* once per task: then sleep */
				continue;
			}
			if (!watched && !pool->watching && pool->max_workers > pool->ncpu) {
				watch_locked(pool);
				watched = true;
				continue;
			}
			/*
			 * The handshake with a submit on the fast path, which
			 * stores in_len, then loads want_wake, holding no lock
			 * of ours: we store want_wake, then load in_len.  A
			 * full fence between the two on each side means that
			 * one of us sees the other's store: either it wakes
			 * us, or we see its task and stay up.
			 */
			pool->nsleeping++;
			atomic_store_explicit(&pool->want_wake, sleeper_unclaimed_locked(pool),
			                      memory_order_seq_cst);
			atomic_thread_fence(memory_order_seq_cst);
			if (atomic_load_explicit(&pool->in_len, memory_order_relaxed) == 0) {
				pthread_cond_wait(&pool->work_cv, &pool->mu);
				if (pool->nwaking > 0)
					pool->nwaking--;
			}
			pool->nsleeping--;
			update_want_wake_locked(pool);
			continue;
		}
		if (cancelled_entry(&w)) {
			/* Cancelled while queued: the canceller did the counting.
			 * We hold a pool reference, so this release cannot free
			 * the pool under our feet. */
			tp_future_release(w.f);
			continue;
		}
		tp__count_out_locked(pool);
		pool->nidle--;
		pool->nrunning++;
		may_spin = false;
		watched = false;
		if (w.f != NULL) /* RUNNING publishes nothing else: relaxed */
			atomic_store_explicit(&w.f->state, TP_F_RUNNING, memory_order_relaxed);
		wake_next = NULL;
		if (sleeper_unclaimed_locked(pool) && queue_nonempty_locked(pool))
			wake_next = claim_sleeper_locked(pool);
		pthread_mutex_unlock(&pool->mu);
		tp__wake_sleepers(woken);
		woken = NULL;
		if (wake_next != NULL)
			pthread_cond_signal(wake_next);

		rc = w.fn(w.arg, &result);
		if (rc < 0)
			rc = rc == INT_MIN ? INT_MAX : -rc;

		pthread_mutex_lock(&pool->mu);
		pool->nrunning--;
		if (rc == 0)
			pool->completed++;
		else
			pool->failed++;
		if (w.f == NULL) {
			pool->nidle++;
			continue;
		}
		/* Someone waiting for this very result is a caller running
		 * tasks one at a time, soon back with the next: spin for it.
		 * A caller that submits ahead and collects later must not make
		 * us spin, or we would take each task as it comes, one lock
		 * hand-off each, where a sleeper wakes to find many queued.
		 * So spinning lives on credit that each waited-for result
		 * renews and every other result spends: a fast task sometimes
		 * finishing before its caller asks keeps the credit, a run of
		 * results nobody waits for uses it up. */
		if (w.f->sleepers != NULL || atomic_load_explicit(&w.f->awaited, memory_order_relaxed) ||
		    take_asked(pool))
			pool->spin_credit = SPIN_CREDIT;
		else if (pool->spin_credit > 0)
			pool->spin_credit--;
		may_spin = pool->spin_credit > 0;
		tp__future_finish_locked(w.f, rc, rc == 0 ? result : NULL, &woken);
		if (w.f->ncbs == 0) {
			pool->nidle++;
			tp_future_release(w.f);
			continue;
		}
		/* Done callbacks are the application's code, and may submit
		 * and wait: until they return, this worker is not idle, or
		 * such a submit would start no thread and wait for ever. */
		pthread_mutex_unlock(&pool->mu);
		tp__wake_sleepers(woken);
		woken = NULL;
		tp__future_run_callbacks(w.f);
		tp_future_release(w.f);
		pthread_mutex_lock(&pool->mu);
		pool->nidle++;
	}
	worker_exit_locked(pool);
	pthread_mutex_unlock(&pool->mu);
	tp__wake_sleepers(woken);
out:
	tls_pool = NULL;
	tp__pool_unref(pool);
	return NULL;
}

/* Start one worker.  pool->mu held, which the new thread needs before it
 * can take a task: so its name is set before any task of ours runs on it. */
static int
spawn_locked(struct tp_pool *pool)
{
	sigset_t all, old;
	pthread_t *t;
	int rc;

	if (pool->nthreads == pool->threads_cap) {
		unsigned cap = pool->threads_cap ? pool->threads_cap * 2 : 4;

		if (cap > pool->max_workers || cap < pool->threads_cap)
			cap = pool->max_workers;
		if ((t = realloc(pool->threads, cap * sizeof(*t))) == NULL)
			return -ENOMEM;
		pool->threads = t;
		pool->threads_cap = cap;
	}
	t = &pool->threads[pool->nthreads];

	/* Workers take no asynchronous signals: they belong to the
	 * application's threads (a server's signalfd, say).  Signals raised
	 * by a fault in a task stay unblocked, so that a crash handler (or a
	 * sanitizer's) still runs instead of the kernel killing us silently. */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGTRAP);
	sigdelset(&all, SIGSYS);
	sigdelset(&all, SIGABRT);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	tp__pool_ref(pool);
	rc = pthread_create(t, NULL, worker_main, pool);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_relaxed);
		return -rc;
	}
#ifdef HAVE_PTHREAD_SETNAME_NP
	{
		char name[16]; /* the kernel's limit, NUL included */

		/* A long prefix is cut to fit: a name is a debugging aid,
		 * never a reason to fail. */
		if (snprintf(name, sizeof(name), "%s-%u", pool->prefix, pool->nthreads) >= 0)
			pthread_setname_np(*t, name);
	}
#endif
	pool->nthreads++;
	if (pool->nthreads == pool->max_workers)
		atomic_store_explicit(&pool->all_started, true, memory_order_release);
	pool->nlive++;
	pool->nidle++;
	return 0;
}

/* --- the API ------------------------------------------------------------- */

/*
 * The pool mutex is held only for a few dozen instructions at a time, by
 * submitters and workers alike.  An adaptive mutex spins briefly on
 * contention instead of sleeping in the kernel at once, which is cheaper
 * for hold times that short.  Where it does not exist: a plain mutex.
 */
static int
mutex_init(pthread_mutex_t *mu)
{
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
	pthread_mutexattr_t attr;
	int rc;

	if ((rc = pthread_mutexattr_init(&attr)) != 0)
		return -rc;
	rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	if (rc == 0)
		rc = pthread_mutex_init(mu, &attr);
	pthread_mutexattr_destroy(&attr);
	return -rc;
#else
	return -pthread_mutex_init(mu, NULL);
#endif
}

/*
 * The sizes of the growable structs in 0.1, the first version with a size
 * field: smaller is not a struct made with TP_*_INIT.
 */
#define OPTIONS_SIZE_0_1 (offsetof(struct tp_options, max_queue) + sizeof(size_t))
#define STATS_SIZE_0_1 (offsetof(struct tp_stats, discarded) + sizeof(uint64_t))

/*
 * Copy a caller's struct of caller_size bytes into ours (size bytes,
 * zeroed first), the Linux kernel's rule for extensible structs: fields
 * the caller lacks keep their zero default; fields only the caller knows
 * must be zero, or it asks for something this version cannot do (-E2BIG).
 */
static int
copy_in(void *ours, size_t size, const void *theirs, size_t caller_size, size_t min_size)
{
	const unsigned char *p = theirs;

	if (caller_size < min_size)
		return -EINVAL;
	for (size_t i = size; i < caller_size; i++)
		if (p[i] != 0)
			return -E2BIG;
	memset(ours, 0, size);
	memcpy(ours, theirs, caller_size < size ? caller_size : size);
	return 0;
}

unsigned
tp_version(void)
{
	return TP_VERSION;
}

atomic_uint tp__forks;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
on_fork_child(void)
{
	atomic_fetch_add_explicit(&tp__forks, 1, memory_order_relaxed);
}

static void
register_atfork(void)
{
	/* Fails only for memory; then a child is not protected (the man
	 * page's BUGS says so). */
	(void)pthread_atfork(NULL, NULL, on_fork_child);
}

/*
 * The CPUs this thread may run on (and the workers it starts, which
 * inherit its affinity): fewer than the machine has under taskset or a
 * container's cpuset, and what decides whether spinning can help.
 */
static long
usable_cpus(void)
{
#ifdef CPU_COUNT
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return CPU_COUNT(&set);
#endif
	return sysconf(_SC_NPROCESSORS_ONLN);
}

int
tp_pool_create(tp_pool **out, const struct tp_options *opts_in)
{
	struct tp_pool *pool;
	struct tp_options copy, *opts = NULL;
	const char *prefix = "tp";
	long ncpu, usable;
	int rc;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (opts_in != NULL) {
		if ((rc = copy_in(&copy, sizeof(copy), opts_in, opts_in->size, OPTIONS_SIZE_0_1)) != 0)
			return rc;
		opts = &copy;
	}
	pthread_once(&atfork_once, register_atfork);
	/* Aligned, so that its three groups of fields (tp_internal.h) start
	 * cache lines of their own. */
	if ((pool = aligned_alloc(_Alignof(struct tp_pool), sizeof(*pool))) == NULL)
		return -ENOMEM;
	memset(pool, 0, sizeof(*pool));
	pool->forks = atomic_load_explicit(&tp__forks, memory_order_relaxed);

	if (opts != NULL && opts->max_workers > 0) {
		pool->max_workers = opts->max_workers;
	} else {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		if (ncpu < 1)
			ncpu = 1;
		pool->max_workers = ncpu + 4 < 32 ? (unsigned)ncpu + 4 : 32;
	}
	usable = usable_cpus();
	pool->ncpu = usable < 1 ? 1 : usable > UINT_MAX ? UINT_MAX : (unsigned)usable;
	/* By default none on one CPU, where a spinner only delays the thread
	 * it waits for; the caller may know better either way. */
	if (opts != NULL && opts->spin_us < 0)
		pool->spin_ns = 0;
	else if (opts != NULL && opts->spin_us > 0)
		pool->spin_ns = opts->spin_us < LONG_MAX / 1000 ? opts->spin_us * 1000 : LONG_MAX;
	else
		pool->spin_ns = usable > 1 ? SPIN_NS : 0;
	if (opts != NULL) {
		pool->max_queue = opts->max_queue;
		pool->initializer = opts->initializer;
		pool->initarg = opts->initarg;
		if (opts->thread_name_prefix != NULL)
			prefix = opts->thread_name_prefix;
	}
	/* Room for "-<n>" within the kernel's 15 characters is the caller's
	 * concern; a long prefix is cut, never an error. */
	snprintf(pool->prefix, sizeof(pool->prefix), "%s", prefix);

	pool->batch_cap = pool->in_cap = QUEUE_INITIAL;
	if ((pool->batch = malloc(pool->batch_cap * sizeof(*pool->batch))) == NULL ||
	    (pool->inbox = malloc(pool->in_cap * sizeof(*pool->inbox))) == NULL) {
		rc = -ENOMEM;
		goto fail_queue;
	}
	if ((rc = mutex_init(&pool->mu)) != 0)
		goto fail_queue;
	if ((rc = mutex_init(&pool->inmu)) != 0)
		goto fail_mu;
	if ((rc = -pthread_cond_init(&pool->work_cv, NULL)) != 0)
		goto fail_inmu;
	if ((rc = -pthread_cond_init(&pool->exit_cv, NULL)) != 0)
		goto fail_work_cv;
	if ((rc = tp__cond_init_monotonic(&pool->watch_cv)) != 0)
		goto fail_exit_cv;
	pool->lifted = true; /* until a look finds tiny tasks */
	pool->probe_backoff = 1;
	atomic_init(&pool->refs, 1);
	atomic_init(&pool->kick, 0);
	atomic_init(&pool->asked, false);
	atomic_init(&pool->all_started, false);
	atomic_init(&pool->want_wake, false);
	atomic_init(&pool->out, 0);
	atomic_init(&pool->in_len, 0);
	*out = pool;
	return 0;

fail_exit_cv:
	pthread_cond_destroy(&pool->exit_cv);
fail_work_cv:
	pthread_cond_destroy(&pool->work_cv);
fail_inmu:
	pthread_mutex_destroy(&pool->inmu);
fail_mu:
	pthread_mutex_destroy(&pool->mu);
fail_queue:
	free(pool->batch);
	free(pool->inbox);
	free(pool);
	return rc;
}

/* pool->inmu held: whether a task may be queued now. */
static int
admit_inlocked(struct tp_pool *pool)
{
	if (pool->broken)
		return -ENOTRECOVERABLE;
	if (pool->shutdown)
		return -ESHUTDOWN;
	if (pool->max_queue > 0 &&
	    pool->pushed - atomic_load_explicit(&pool->out, memory_order_relaxed) >= pool->max_queue)
		return -EAGAIN;
	return 0;
}

int
tp_submit(tp_pool *pool, tp_fn fn, void *arg, tp_future **future)
{
	struct tp_work w = { fn, arg, NULL };
	pthread_cond_t *wake = NULL;
	int rc;

	if (future != NULL)
		*future = NULL;
	if (pool == NULL || fn == NULL)
		return -EINVAL;
	if (tp__orphaned(pool))
		return -EOWNERDEAD;
	if (future != NULL && (w.f = tp__future_new(pool)) == NULL)
		return -ENOMEM;

	if (atomic_load_explicit(&pool->all_started, memory_order_acquire)) {
		/* Every worker is started, so there is nothing to decide
		 * under mu: a submit meets the workers only in the inbox's
		 * swap, or when one of them sleeps. */
		pthread_mutex_lock(&pool->inmu);
		if ((rc = admit_inlocked(pool)) == 0)
			rc = inbox_push(pool, &w);
		pthread_mutex_unlock(&pool->inmu);
		/* The submit's half of worker_main's handshake. */
		atomic_thread_fence(memory_order_seq_cst);
		if (rc == 0 && atomic_load_explicit(&pool->want_wake, memory_order_relaxed)) {
			pthread_mutex_lock(&pool->mu);
			wake = claim_sleeper_locked(pool);
			pthread_mutex_unlock(&pool->mu);
		}
	} else {
		pthread_mutex_lock(&pool->mu);
		pthread_mutex_lock(&pool->inmu);
		rc = admit_inlocked(pool);
		if (rc == 0 && pool->pushed - pool->out + 1 > pool->nidle &&
		    pool->nthreads < pool->max_workers) {
			rc = spawn_locked(pool);
			/* Short of threads, the workers we have will get to
			 * it; with none at all, the task could never run. */
			if (rc != 0)
				rc = pool->nlive > 0 ? 0 : rc == -ENOMEM ? -ENOMEM : -EAGAIN;
		}
		if (rc == 0)
			rc = inbox_push(pool, &w);
		pthread_mutex_unlock(&pool->inmu);
		/* Wake a sleeper only for a task that no worker on its way
		 * to the lock will take: a spinning one, or one signalled
		 * already.  Until a signalled worker is back on the lock it
		 * still counts as sleeping, and signalling it again is a
		 * wasted system call.  (A spurious wake-up takes a claim
		 * meant for another sleeper: the next submit signals again;
		 * none is lost, as nwaking never exceeds nsleeping.) */
		if (rc == 0)
			wake = claim_sleeper_locked(pool);
		pthread_mutex_unlock(&pool->mu);
	}
	if (wake != NULL)
		pthread_cond_signal(wake);

	if (rc != 0) {
		/* Never published: both references are ours. */
		tp_future_release(w.f);
		tp_future_release(w.f);
		return rc;
	}
	if (future != NULL) {
		*future = w.f;
		tp__last_submitted = w.f;
	}
	return 0;
}

int
tp_shutdown(tp_pool *pool, unsigned flags)
{
	tp_future *chain = NULL;
	struct tp_sleeper *wake = NULL;
	unsigned from, to;

	if (pool == NULL || (flags & ~(TP_WAIT | TP_CANCEL_FUTURES)) != 0)
		return -EINVAL;
	if (tp__orphaned(pool))
		return -EOWNERDEAD;

	pthread_mutex_lock(&pool->mu);
	close_queue_locked(pool, &pool->shutdown);
	if (flags & TP_CANCEL_FUTURES)
		chain = drain_locked(pool, -ECANCELED, &wake);
	kick_locked(pool);
	pthread_cond_broadcast(&pool->work_cv);
	pthread_cond_broadcast(&pool->watch_cv);
	pthread_mutex_unlock(&pool->mu);
	finish_chain(chain, wake);

	if (!(flags & TP_WAIT))
		return 0;
	if (tls_pool == pool)
		return -EDEADLK;

	pthread_mutex_lock(&pool->mu);
	while (pool->nlive > 0)
		pthread_cond_wait(&pool->exit_cv, &pool->mu);
	/* Claim the threads nobody has joined; a concurrent caller finds
	 * none left to claim.  No thread starts after shutdown, so the array
	 * is stable once we unlock. */
	from = pool->njoined;
	to = pool->nthreads;
	pool->njoined = to;
	pthread_mutex_unlock(&pool->mu);
	for (; from < to; from++)
		pthread_join(pool->threads[from], NULL);
	return 0;
}

void
tp_pool_free(tp_pool *pool)
{
	if (pool == NULL || tp__orphaned(pool))
		return; /* the parent's: its memory goes with this process */
	if (tls_pool == pool) {
		/* From our own worker we cannot join ourselves.  Let the
		 * workers finish the queue; the last one to exit drops the
		 * last reference and frees the pool. */
		tp_shutdown(pool, 0);
		pthread_mutex_lock(&pool->mu);
		for (; pool->njoined < pool->nthreads; pool->njoined++)
			pthread_detach(pool->threads[pool->njoined]);
		pthread_mutex_unlock(&pool->mu);
	} else {
		tp_shutdown(pool, TP_WAIT);
	}
	tp__pool_unref(pool);
}

int
tp_pool_stats(tp_pool *pool, struct tp_stats *st_out)
{
	struct tp_stats st = { TP_STATS_INIT };
	size_t size;

	if (pool == NULL || st_out == NULL || st_out->size < STATS_SIZE_0_1)
		return -EINVAL;
	if (tp__orphaned(pool))
		return -EOWNERDEAD;
	size = st_out->size;
	pthread_mutex_lock(&pool->mu);
	pthread_mutex_lock(&pool->inmu);
	st.queued = pool->pushed - pool->out;
	st.submitted = pool->pushed;
	pthread_mutex_unlock(&pool->inmu);
	st.max_workers = pool->max_workers;
	st.workers = pool->nlive;
	st.idle = pool->nidle;
	st.running = pool->nrunning;
	st.completed = pool->completed;
	st.failed = pool->failed;
	st.cancelled = pool->cancelled;
	st.discarded = pool->discarded;
	st.sleeping = pool->nsleeping + (pool->watching ? 1 : 0);
	st.awake_cap = pool->watching && !pool->lifted ? pool->ncpu : 0;
	pthread_mutex_unlock(&pool->mu);
	/* As much as the caller's struct holds; what only a newer header
	 * knows is zero. */
	st.size = size;
	if (size > sizeof(st)) {
		memset((unsigned char *)st_out + sizeof(st), 0, size - sizeof(st));
		size = sizeof(st);
	}
	memcpy(st_out, &st, size);
	return 0;
}
