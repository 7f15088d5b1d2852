/*
 * Futures: state, result, cancel and done callbacks.  A future's state is
 * guarded by its pool's mutex (see tp_internal.h for why one lock serves
 * both), so f->pool->mu is "the future's lock" throughout this file.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "tp_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define TP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TP_ASAN 1
#endif
#endif
#ifdef TP_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/*
 * Each thread keeps the memory of up to FCACHE_MAX futures it freed, for
 * the next ones it makes: a program that submits a batch and collects it
 * makes and frees one future per task, and a cache of our own costs a
 * few nanoseconds where malloc and free cost 16 past glibc's own cache of
 * 7 blocks (docs/design.md, "A future costs no malloc on the hot path").
 * It holds at most 80 KiB a thread, and goes when the thread exits (a key
 * destructor; the library is linked -z nodelete so that the destructor
 * is still there).  Nothing is shared, so there is no lock.  Under
 * AddressSanitizer a cached future stays poisoned (but for its link): a
 * use after release is still reported.
 */
#define FCACHE_MAX 1024

static _Thread_local struct {
	tp_future *head; /* linked through next_done */
	unsigned n;
	bool armed; /* the key is set, so the destructor will run */
} fcache;

static pthread_key_t fcache_key;
static pthread_once_t fcache_once = PTHREAD_ONCE_INIT;
static bool fcache_usable;

static void
fcache_drain(void *unused)
{
	(void)unused;
	while (fcache.head != NULL) {
		tp_future *f = fcache.head;

		UNPOISON(f, sizeof(*f));
		fcache.head = f->next_done;
		free(f);
	}
	fcache.n = 0;
	/* A future freed after this (another key's destructor) arms the
	 * key again, and the destructor runs once more. */
	fcache.armed = false;
}

static void
fcache_init(void)
{
	fcache_usable = pthread_key_create(&fcache_key, fcache_drain) == 0;
}

static tp_future *
future_alloc(void)
{
	tp_future *f = fcache.head;

	if (f == NULL)
		return malloc(sizeof(*f));
	UNPOISON(f, sizeof(*f));
	fcache.head = f->next_done;
	fcache.n--;
	return f;
}

static void
future_free(tp_future *f)
{
	if (fcache.n == FCACHE_MAX) {
		free(f);
		return;
	}
	if (!fcache.armed) {
		pthread_once(&fcache_once, fcache_init);
		if (!fcache_usable || pthread_setspecific(fcache_key, &fcache) != 0) {
			free(f);
			return;
		}
		fcache.armed = true;
	}
	f->next_done = fcache.head;
	fcache.head = f;
	fcache.n++;
	/* All but the link: LeakSanitizer does not look for pointers in
	 * poisoned memory, and would take the rest of the list for leaks. */
	POISON(f, offsetof(tp_future, next_done));
}

tp_future *
tp__future_new(struct tp_pool *pool)
{
	tp_future *f;

	/* Every field is set below: calloc would also skip glibc's
	 * per-thread cache (28 ns with a free, against 6 to 16 for malloc). */
	if ((f = future_alloc()) == NULL)
		return NULL;
	f->pool = pool;
	/* One reference for the submitter, one for the queue. */
	atomic_init(&f->refs, 2);
	atomic_init(&f->state, TP_F_PENDING);
	f->err = 0;
	atomic_init(&f->awaited, false);
	f->result = NULL;
	f->sleepers = NULL;
	f->waiters = NULL;
	f->cbs = NULL;
	f->ncbs = f->capcbs = 0;
	f->next_done = NULL;
	tp__pool_ref(pool);
	return f;
}

void
tp__future_ref(tp_future *f)
{
	atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void
tp_future_release(tp_future *f)
{
	struct tp_pool *pool;

	if (f == NULL || tp__orphaned(f->pool))
		return;
	/* The last holder (the caller, once its worker has let go) frees
	 * without a locked instruction: nobody else can take a reference
	 * while we hold the only one, and the acquire load pairs with the
	 * release of every earlier drop. */
	if (atomic_load_explicit(&f->refs, memory_order_acquire) != 1 &&
	    atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
	pool = f->pool;
	free(f->cbs);
	future_free(f);
	tp__pool_unref(pool);
}

void
tp__future_finish_locked(tp_future *f, int err, void *result, struct tp_sleeper **wake)
{
	struct tp_wnode *n;
	struct tp_sleeper *s, *next;

	f->err = err;
	f->result = result;
	/* Last: a reader without the lock that sees DONE sees err and result. */
	atomic_store_explicit(&f->state, TP_F_DONE, memory_order_release);
	for (s = f->sleepers; s != NULL; s = next) {
		next = s->next;
		s->next = *wake;
		*wake = s;
	}
	f->sleepers = NULL;
	for (n = f->waiters; n != NULL; n = n->next)
		tp__waiter_notify(n->w, f);
}

void
tp__wake_sleepers(struct tp_sleeper *s)
{
	while (s != NULL) {
		/* Read first: once woken, s may go with its thread's stack. */
		struct tp_sleeper *next = s->next;

		pthread_mutex_lock(&s->mu);
		s->woken = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		s = next;
	}
}

void
tp__future_run_callbacks(tp_future *f)
{
	/* DONE, so nobody appends any more: the array is ours alone. */
	struct tp_cb *cbs = f->cbs;
	size_t i, n = f->ncbs;

	f->cbs = NULL;
	f->ncbs = f->capcbs = 0;
	/* f stays valid throughout: our caller holds a reference. */
	for (i = 0; i < n; i++)
		cbs[i].fn(f, cbs[i].arg);
	free(cbs);
}

static bool
is_done(const void *arg)
{
	const tp_future *f = arg;

	return atomic_load_explicit(&f->state, memory_order_acquire) == TP_F_DONE;
}

/*
 * Sleep until f is DONE.  Waits for ever if timeout_ms < 0, not at all if
 * 0, else until *deadline.  Returns 0 once f is DONE, or -ETIMEDOUT.
 */
static int
wait_done(tp_future *f, long timeout_ms, const struct timespec *deadline)
{
	struct tp_pool *pool = f->pool;
	struct tp_sleeper me, **pp;
	bool woken, unlinked = false;
	int rc;

	if (timeout_ms == 0)
		return is_done(f) ? 0 : -ETIMEDOUT;
	if ((rc = -pthread_mutex_init(&me.mu, NULL)) != 0)
		return rc;
	if ((rc = tp__cond_init_monotonic(&me.cv)) != 0) {
		pthread_mutex_destroy(&me.mu);
		return rc;
	}
	me.woken = false;
	pthread_mutex_lock(&pool->mu);
	if (f->state == TP_F_DONE) {
		pthread_mutex_unlock(&pool->mu);
		goto out;
	}
	me.next = f->sleepers;
	f->sleepers = &me;
	pthread_mutex_unlock(&pool->mu);

	pthread_mutex_lock(&me.mu);
	while (!me.woken) {
		if (timeout_ms < 0)
			pthread_cond_wait(&me.cv, &me.mu);
		else if (pthread_cond_timedwait(&me.cv, &me.mu, deadline) == ETIMEDOUT)
			break;
	}
	woken = me.woken;
	pthread_mutex_unlock(&me.mu);
	if (!woken) {
		/* Timed out.  Unlink, unless the future's finisher has taken
		 * us off its list already: then it is about to wake us, and
		 * our frame must outlive that (tp_internal.h). */
		pthread_mutex_lock(&pool->mu);
		for (pp = &f->sleepers; *pp != NULL && *pp != &me; pp = &(*pp)->next)
			;
		if (*pp == &me) {
			*pp = me.next;
			unlinked = true;
		}
		pthread_mutex_unlock(&pool->mu);
		if (!unlinked) {
			pthread_mutex_lock(&me.mu);
			while (!me.woken)
				pthread_cond_wait(&me.cv, &me.mu);
			pthread_mutex_unlock(&me.mu);
		}
	}
out:
	pthread_cond_destroy(&me.cv);
	pthread_mutex_destroy(&me.mu);
	return is_done(f) ? 0 : -ETIMEDOUT;
}

int
tp_future_result(tp_future *f, long timeout_ms, void **result)
{
	struct timespec deadline = { 0, 0 };
	long spin_ns;
	int rc;

	if (f == NULL)
		return -EINVAL;
	if (tp__orphaned(f->pool))
		return -EOWNERDEAD;
	/* The timeout covers the spin too. */
	if (timeout_ms > 0)
		tp__deadline(&deadline, timeout_ms);
	spin_ns = f->pool->spin_ns;
	if (timeout_ms > 0 && timeout_ms <= spin_ns / 1000000)
		spin_ns = timeout_ms * 1000000;
	if (is_done(f)) {
		/* The caller came back only after its task ended: still one
		 * running tasks in turn, whom the worker should spin for.
		 * (Read before written: no needless cache-line transfer.) */
		if (f == tp__last_submitted && spin_ns > 0 &&
		    !atomic_load_explicit(&f->pool->asked, memory_order_relaxed))
			atomic_store_explicit(&f->pool->asked, true, memory_order_relaxed);
	} else if (timeout_ms != 0 && spin_ns > 0 && f == tp__last_submitted) {
		/* A short task finishes sooner than we could sleep and be
		 * woken: spin a little first (threadpool.c, "Spinning"), and
		 * let its worker know that its caller is right here.  Only
		 * for the task we submitted last (tp_internal.h). */
		atomic_store_explicit(&f->awaited, true, memory_order_relaxed);
		tp__spin(is_done, f, spin_ns);
	}
	if (!is_done(f) && (rc = wait_done(f, timeout_ms, &deadline)) != 0)
		return rc;
	/* DONE is final, and err and result were published before it: no
	 * lock (tp_internal.h). */
	rc = f->err;
	if (rc == 0 && result != NULL)
		*result = f->result;
	return rc;
}

int
tp_future_exception(tp_future *f, long timeout_ms)
{
	return tp_future_result(f, timeout_ms, NULL);
}

bool
tp_future_cancel(tp_future *f)
{
	struct tp_pool *pool;
	struct tp_sleeper *wake = NULL;
	bool cancelled, run_cbs = false;

	if (f == NULL || tp__orphaned(f->pool))
		return false;
	pool = f->pool;
	pthread_mutex_lock(&pool->mu);
	switch (atomic_load_explicit(&f->state, memory_order_relaxed)) { /* under the lock */
	case TP_F_PENDING:
		/* The queue keeps its entry (and reference); the worker that
		 * reaches it sees DONE and discards it. */
		tp__future_finish_locked(f, -ECANCELED, NULL, &wake);
		tp__count_out_locked(pool);
		pool->cancelled++;
		cancelled = run_cbs = true;
		/* Our caller's reference may go in a callback, and the
		 * queue's as soon as we unlock (a worker reaching the entry):
		 * the callbacks after that one still need f. */
		tp__future_ref(f);
		break;
	case TP_F_RUNNING: cancelled = false; break;
	default: cancelled = f->err == -ECANCELED; break;
	}
	pthread_mutex_unlock(&pool->mu);
	tp__wake_sleepers(wake);
	if (run_cbs) {
		tp__future_run_callbacks(f);
		tp_future_release(f);
	}
	return cancelled;
}

/* Read one fact about f (in a forked child: nothing is
 * known of a parent's future, and it is reported as not done, with
 * -EOWNERDEAD, without touching its lock). */
static enum tp_fstate
state_of(tp_future *f, int *err)
{
	enum tp_fstate st;

	if (tp__orphaned(f->pool)) {
		*err = -EOWNERDEAD;
		return TP_F_PENDING;
	}
	/* No lock: err is final once DONE is seen (tp_internal.h). */
	st = atomic_load_explicit(&f->state, memory_order_acquire);
	*err = st == TP_F_DONE ? f->err : 0;
	return st;
}

bool
tp_future_cancelled(tp_future *f)
{
	int err;

	return f != NULL && state_of(f, &err) == TP_F_DONE && err == -ECANCELED;
}

bool
tp_future_running(tp_future *f)
{
	int err;

	return f != NULL && state_of(f, &err) == TP_F_RUNNING;
}

bool
tp_future_done(tp_future *f)
{
	int err;

	return f != NULL && state_of(f, &err) == TP_F_DONE;
}

int
tp_future_add_done_callback(tp_future *f, void (*cb)(tp_future *f, void *arg), void *arg)
{
	if (f == NULL || cb == NULL)
		return -EINVAL;
	if (tp__orphaned(f->pool))
		return -EOWNERDEAD;
	pthread_mutex_lock(&f->pool->mu);
	if (f->state != TP_F_DONE) {
		if (f->ncbs == f->capcbs) {
			size_t cap = f->capcbs ? f->capcbs * 2 : 2;
			struct tp_cb *cbs;

			if (cap > SIZE_MAX / sizeof(*cbs) ||
			    (cbs = realloc(f->cbs, cap * sizeof(*cbs))) == NULL) {
				pthread_mutex_unlock(&f->pool->mu);
				return -ENOMEM;
			}
			f->cbs = cbs;
			f->capcbs = cap;
		}
		f->cbs[f->ncbs].fn = cb;
		f->cbs[f->ncbs].arg = arg;
		f->ncbs++;
		pthread_mutex_unlock(&f->pool->mu);
		return 0;
	}
	pthread_mutex_unlock(&f->pool->mu);
	cb(f, arg);
	return 0;
}
