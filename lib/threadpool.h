/*
 * libthreadpool: a fixed pool of worker threads with futures, in the manner
 * of Python's concurrent.futures.ThreadPoolExecutor.
 *
 * Conventions (see threadpool(3) for the full contract):
 *  - Functions that can fail return 0 or a negative errno value.
 *  - A task (tp_fn) returns 0 on success or a positive error code, which
 *    plays the role of a Python exception: tp_future_result() hands it back.
 *  - timeout_ms < 0 waits forever, 0 polls, > 0 waits at most that long.
 *  - Every function is safe to call from any thread.
 *  - In a child process made by fork(), every call on a pool made before
 *    the fork (or on its futures) returns -EOWNERDEAD at once, touching
 *    nothing; pools made in the child work.
 */
#ifndef THREADPOOL_H
#define THREADPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TP_API __attribute__((visibility("default")))
#else
#define TP_API
#endif

#define TP_VERSION_MAJOR 0
#define TP_VERSION_MINOR 1
#define TP_VERSION_PATCH 0
/* The header's version as one number, MAJOR * 10000 + MINOR * 100 + PATCH;
 * tp_version() is the library's, which may be newer. */
#define TP_VERSION (TP_VERSION_MAJOR * 10000 + TP_VERSION_MINOR * 100 + TP_VERSION_PATCH)

typedef struct tp_pool tp_pool;
typedef struct tp_future tp_future;

/*
 * A task.  It runs on a worker thread, may store a value in *result, and
 * returns 0 on success or a positive error code on failure.  A negative
 * return is taken as its absolute value (a task written in the -errno style
 * still reports a positive code).
 */
typedef int (*tp_fn)(void *arg, void **result);

/*
 * Options and statistics are structs that may grow in later versions.  Each
 * begins with its size, set by TP_OPTIONS_INIT / TP_STATS_INIT:
 *
 *     struct tp_options o = { TP_OPTIONS_INIT, .max_workers = 4 };
 *     struct tp_stats st = { TP_STATS_INIT };
 *
 * so that the library knows which fields the caller was compiled with.  A
 * field the caller's struct lacks takes its default (zero); a size of 0 (a
 * struct not made with the macro) is refused with -EINVAL.
 */
#define TP_OPTIONS_INIT .size = sizeof(struct tp_options)
#define TP_STATS_INIT .size = sizeof(struct tp_stats)

struct tp_options {
	size_t size;                       /* TP_OPTIONS_INIT */
	unsigned max_workers;              /* 0: min(32, online CPUs + 4), as Python */
	const char *thread_name_prefix;    /* NULL: "tp"; workers are "<prefix>-<n>" */
	int (*initializer)(void *initarg); /* run first in each worker; nonzero breaks the pool */
	void *initarg;
	size_t max_queue; /* 0: unbounded; else tp_submit fails with -EAGAIN when full */
	long spin_us;     /* how long a worker that has just served a waiting caller, and
	                     a caller in tp_future_result, spin before they sleep:
	                     0 the default (20, or none on one CPU), TP_NO_SPIN never */
};

#define TP_NO_SPIN (-1L)

struct tp_stats {
	size_t size;          /* TP_STATS_INIT */
	unsigned max_workers; /* the most workers the pool will start */
	unsigned workers;     /* worker threads alive */
	unsigned idle;        /* workers not running a task */
	unsigned running;     /* tasks running now */
	size_t queued;        /* tasks waiting to start (cancelled ones excluded) */
	uint64_t submitted;   /* tasks accepted by tp_submit since creation */
	uint64_t completed;   /* tasks that ran and returned 0 */
	uint64_t failed;      /* tasks that returned an error, or never ran on a broken pool */
	uint64_t cancelled;   /* tasks cancelled before they started */
	uint64_t discarded;   /* of those cancelled or failed, the ones submitted without a
	                         future: dropped by TP_CANCEL_FUTURES or a broken pool, told
	                         to nobody */
	unsigned sleeping;    /* workers asleep: nothing to do, or held back while
	                         tasks are tiny (threadpool(3), "Workers awake at once") */
	unsigned awake_cap;   /* the most workers kept awake now (the usable CPUs),
	                         or 0: no cap */
};

enum tp_return_when { TP_FIRST_COMPLETED, TP_FIRST_EXCEPTION, TP_ALL_COMPLETED };

#define TP_WAIT 1u           /* tp_shutdown: block until the workers have exited */
#define TP_CANCEL_FUTURES 2u /* tp_shutdown: cancel every task not yet started */

/* The library's version at run time, as TP_VERSION: a program can check
 * that the library it runs with is at least the header it was built with. */
TP_API unsigned tp_version(void);

/*
 * Create a pool.  opts may be NULL for the defaults.  No thread starts until
 * the first submit.  Worker threads block every asynchronous signal (not
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT), so signals
 * reach the application's own threads and a crash handler still runs.
 * Returns 0, -EINVAL (pool NULL, or opts without TP_OPTIONS_INIT), -E2BIG
 * (opts from a newer header sets a field this library does not know), or
 * -ENOMEM.
 */
TP_API int tp_pool_create(tp_pool **pool, const struct tp_options *opts);

/*
 * Queue fn(arg).  Tasks start in submission order.  If future is not NULL,
 * *future receives a new future holding one reference for the caller, to be
 * dropped with tp_future_release(); with future == NULL nothing is allocated
 * for a future (fire and forget).
 * Returns 0, -EINVAL (pool or fn NULL), -ESHUTDOWN (after tp_shutdown),
 * -EAGAIN (the bounded queue is full, or no worker thread could be started
 * at all), -ENOMEM, or -ENOTRECOVERABLE (the pool is broken).
 */
TP_API int tp_submit(tp_pool *pool, tp_fn fn, void *arg, tp_future **future);

/*
 * Run fn over args[0..n-1] on the pool and store each result in results[i]
 * (in argument order).  args may be NULL (every task gets NULL); results may
 * be NULL.  timeout_ms bounds the whole call.  With a bounded queue, map
 * waits for earlier results to make room rather than failing.
 * Returns 0; or at the first task error (in argument order) or timeout, it
 * cancels every task that has not started and returns that error: the
 * task's positive code, -ETIMEDOUT, -ECANCELED, or any tp_submit error.
 * results[] of tasks that did not finish are set to NULL.
 */
TP_API int tp_map(tp_pool *pool, tp_fn fn, void *const args[], size_t n, void *results[],
                  long timeout_ms);

/*
 * Stop accepting work.  Queued tasks still run unless TP_CANCEL_FUTURES,
 * which cancels every task not yet started.  With TP_WAIT, blocks until the
 * workers have exited.  Calling it again is safe.
 * Returns 0, -EINVAL (bad pool or flags), or -EDEADLK when TP_WAIT is asked
 * from one of this pool's own workers (the shutdown itself still happens).
 */
TP_API int tp_shutdown(tp_pool *pool, unsigned flags);

/*
 * tp_shutdown(pool, TP_WAIT) if not done yet, join the workers and drop the
 * caller's handle.  Futures obtained from the pool stay valid until
 * released.  Called from one of the pool's own workers it does not wait: the
 * workers finish the queue and the pool is freed when the last one exits.
 */
TP_API void tp_pool_free(tp_pool *pool);

/* A consistent snapshot of the pool's counters, as far as st->size
 * reaches.  Returns 0 or -EINVAL (NULL, or st without TP_STATS_INIT). */
TP_API int tp_pool_stats(tp_pool *pool, struct tp_stats *st);

/*
 * Wait for the task and return its outcome: 0 (and *result, if result is not
 * NULL), the task's positive error code, -ETIMEDOUT, -ECANCELED, or
 * -ENOTRECOVERABLE (the pool broke before the task ran).  -EINVAL for NULL f.
 */
TP_API int tp_future_result(tp_future *f, long timeout_ms, void **result);

/*
 * Wait as tp_future_result() does, and return 0 if the task succeeded, its
 * positive error code if it failed, or a negative errno as above.
 */
TP_API int tp_future_exception(tp_future *f, long timeout_ms);

/*
 * Cancel a task that has not started.  Returns true if the future is now
 * cancelled (also when it already was), false if it is running or finished.
 * A cancelled task never runs; its waiters wake and its done callbacks run
 * at once, in the calling thread.
 */
TP_API bool tp_future_cancel(tp_future *f);
TP_API bool tp_future_cancelled(tp_future *f);
TP_API bool tp_future_running(tp_future *f);
TP_API bool tp_future_done(tp_future *f); /* finished, failed or cancelled */

/*
 * Call cb(f, arg) once when the future is done, in the thread that completes
 * it (a worker, or the thread that cancels it).  Callbacks run in the order
 * they were added; added to a done future, cb runs at once in the caller's
 * thread.  A callback may release the future or submit new work; it runs
 * with no library lock held.  Returns 0, -EINVAL or -ENOMEM.
 */
TP_API int tp_future_add_done_callback(tp_future *f, void (*cb)(tp_future *f, void *arg),
                                       void *arg);

/*
 * Drop the caller's reference.  Releasing a pending future does not cancel
 * it; the task still runs.  NULL is ignored.
 */
TP_API void tp_future_release(tp_future *f);

/*
 * Wait until the condition holds for the distinct futures of fs (any done;
 * any failed with an error, or all done; all done), or the timeout passes.
 * Returns the number of distinct futures of fs that are done (compare with
 * tp_future_done() for the split), or -EINVAL / -ENOMEM.  fs may hold
 * futures of different pools.
 */
TP_API int tp_wait(tp_future *const fs[], size_t n, enum tp_return_when when, long timeout_ms);

/*
 * Iterate over futures as they complete.  tp_as_completed_new() takes its own
 * reference on each distinct future of fs; tp_as_completed_next() stores in
 * *f each of them once, in completion order (those already done first, in
 * argument order), then returns -ENOENT.  It returns -ETIMEDOUT when nothing
 * completes in time.  The future stored in *f is borrowed: it stays valid
 * until tp_as_completed_free().
 */
struct tp_completion;
TP_API int tp_as_completed_new(struct tp_completion **c, tp_future *const fs[], size_t n);
TP_API int tp_as_completed_next(struct tp_completion *c, long timeout_ms, tp_future **f);
TP_API void tp_as_completed_free(struct tp_completion *c);

#ifdef __cplusplus
}
#endif

#endif /* THREADPOOL_H */
