/*
 * tp-bench: libthreadpool throughput and latency, side by side with GLib's
 * GThreadPool and libuv's uv_queue_work when configure found them.
 *
 *   throughput  N tasks through a new pool (create, submit all, shut down
 *               and wait), for 1, 2 and 4 workers, for tasks that do
 *               nothing and tasks that spin about 1 us and 10 us (what
 *               callers feel): ours fire-and-forget and with futures,
 *               GThreadPool and libuv fire-and-forget (they have no
 *               futures), and the ratios ours/theirs.  Each figure is the
 *               median of --runs runs, all interleaved so that every
 *               library sees the same machine.  libuv sizes its pool once
 *               per process (UV_THREADPOOL_SIZE), so its runs are a child
 *               process of ours (tp-bench --uv-child), timed inside.
 *   latency     submit-to-start of one task on an idle pool of 2, p50 and
 *               p99, with the submitter waiting for each task.
 *   bursts      tasks that block (sleep 200 us), one per worker of a
 *               default-sized pool, each burst waited for: all should run
 *               at once, whatever the pool learnt from the short tasks
 *               before (it keeps no more workers awake than CPUs for those).
 *   handoff     how long a cache line takes to pass from one thread to
 *               another and back, measured before and after the rest: a
 *               virtual machine's host may move its vCPUs apart, and then
 *               everything that shares memory between threads slows down
 *               (on the CI kind, 45 ns became 210 ns for minutes at a
 *               time).  Figures from runs with different handoffs are not
 *               comparable.  Each row of the tables is measured between
 *               two handoffs of its own, printed at its end, since the
 *               machine may change in the middle of a run.
 *
 * A benchmark, not a test: it prints figures and asserts nothing.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifdef HAVE_GLIB
#include <glib.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

#include "threadpool.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- the machine's state: cache-line handoff ---------------------------- */

enum { HANDOFF_ROUNDS = 1000000 };

static _Alignas(64) _Atomic long handoff_turn;

/* Take the odd turns: wait for each odd value, pass on the next. */
static void *
handoff_peer(void *arg)
{
	(void)arg;
	for (long i = 1; i < 2 * HANDOFF_ROUNDS; i += 2) {
		while (atomic_load_explicit(&handoff_turn, memory_order_acquire) != i)
			;
		atomic_store_explicit(&handoff_turn, i + 1, memory_order_release);
	}
	return NULL;
}

/* Nanoseconds for a cache line to go from one thread to another (one way). */
static double
handoff_ns(void)
{
	pthread_t t;
	double t0;
	int rc;

	atomic_store(&handoff_turn, 0);
	if ((rc = pthread_create(&t, NULL, handoff_peer, NULL)) != 0)
		return -rc;
	t0 = now_s();
	for (long i = 0; i < 2 * HANDOFF_ROUNDS; i += 2) {
		while (atomic_load_explicit(&handoff_turn, memory_order_acquire) != i)
			;
		atomic_store_explicit(&handoff_turn, i + 1, memory_order_release);
	}
	pthread_join(t, NULL);
	return (now_s() - t0) / (2.0 * HANDOFF_ROUNDS) * 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
die(const char *what, int rc)
{
	fprintf(stderr, "tp-bench: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

/* --- throughput ---------------------------------------------------------- */

/* Microseconds each task spins: 0 is an empty task. */
static double work_us;

/* About work_us of CPU, on the clock: the same for every library. */
static void
spin(void)
{
	double end;

	if (work_us <= 0)
		return;
	end = now_s() + work_us / 1e6;
	while (now_s() < end)
		;
}

static int
task_empty(void *arg, void **result)
{
	spin();
	return 0;
}

static tp_pool *
make_pool(unsigned workers)
{
	struct tp_options o = { TP_OPTIONS_INIT, .max_workers = workers };
	tp_pool *p;
	int rc;

	if ((rc = tp_pool_create(&p, &o)) != 0)
		die("tp_pool_create", rc);
	return p;
}

/* Tasks per second, fire-and-forget. */
static double
ours_fire(unsigned workers, long n)
{
	double t0 = now_s();
	tp_pool *p = make_pool(workers);
	long i;
	int rc;

	for (i = 0; i < n; i++)
		if ((rc = tp_submit(p, task_empty, NULL, NULL)) != 0)
			die("tp_submit", rc);
	tp_pool_free(p);
	return n / (now_s() - t0);
}

/* Submit fn n times with a future each (into fs), then wait for and
 * release each in turn: one batch. */
static void
submit_and_collect(tp_pool *p, tp_fn fn, tp_future **fs, long n)
{
	int rc;

	for (long k = 0; k < n; k++)
		if ((rc = tp_submit(p, fn, NULL, &fs[k])) != 0)
			die("tp_submit", rc);
	for (long k = 0; k < n; k++) {
		if ((rc = tp_future_result(fs[k], -1, NULL)) != 0)
			die("tp_future_result", rc);
		tp_future_release(fs[k]);
	}
}

/* Tasks per second with a future each, collected in batches. */
static double
ours_futures(unsigned workers, long n)
{
	enum { BATCH = 1024 };
	static tp_future *fs[BATCH];
	double t0 = now_s();
	tp_pool *p = make_pool(workers);

	for (long i = 0; i < n; i += BATCH)
		submit_and_collect(p, task_empty, fs, n - i < BATCH ? n - i : BATCH);
	tp_pool_free(p);
	return n / (now_s() - t0);
}

#ifdef HAVE_GLIB
static void
glib_empty(gpointer data, gpointer user)
{
	spin();
}

static double
glib_fire(unsigned workers, long n)
{
	double t0 = now_s();
	GError *err = NULL;
	GThreadPool *p = g_thread_pool_new(glib_empty, NULL, (gint)workers, FALSE, &err);
	long i;

	if (p == NULL) {
		fprintf(stderr, "tp-bench: g_thread_pool_new: %s\n", err->message);
		exit(1);
	}
	for (i = 0; i < n; i++)
		g_thread_pool_push(p, GINT_TO_POINTER(1), NULL); /* NULL is not allowed */
	g_thread_pool_free(p, FALSE, TRUE);
	return n / (now_s() - t0);
}
#endif

/* --- libuv, in a child process (its pool size is fixed per process) ------ */

static const char *self; /* argv[0], to run the children */

#ifdef HAVE_LIBUV
static void
uv_work(uv_work_t *req)
{
	spin();
}

static void
uv_after(uv_work_t *req, int status)
{
}

/* tp-bench --uv-child N WORK_US: N tasks through libuv's pool, whose size
 * the parent set in UV_THREADPOOL_SIZE; prints tasks per second.  The
 * loop and the pool are warm before the clock starts, as our pool's and
 * GLib's threads are not: that favours libuv, if anything. */
static int
uv_child(long n)
{
	uv_loop_t loop;
	uv_work_t *reqs = calloc((size_t)n, sizeof(*reqs));
	double t0;
	long i;

	if (reqs == NULL || uv_loop_init(&loop) != 0)
		die("libuv", ENOMEM);
	t0 = now_s();
	for (i = 0; i < n; i++)
		if (uv_queue_work(&loop, &reqs[i], uv_work, uv_after) != 0)
			die("uv_queue_work", EINVAL);
	uv_run(&loop, UV_RUN_DEFAULT);
	printf("%.0f\n", n / (now_s() - t0));
	uv_loop_close(&loop);
	free(reqs);
	return 0;
}


static double
uv_fire(unsigned workers, long n)
{
	char cmd[4096];
	double tps = 0;
	FILE *fp;

	snprintf(cmd, sizeof(cmd), "UV_THREADPOOL_SIZE=%u '%s' --uv-child %ld %g", workers, self,
	         n, work_us);
	if ((fp = popen(cmd, "r")) == NULL || fscanf(fp, "%lf", &tps) != 1)
		die("tp-bench --uv-child", EIO);
	pclose(fp);
	return tps;
}
#endif

/* --- latency ------------------------------------------------------------- */

/*
 * Submit-to-start time of one task on an idle pool of 2, in two ways:
 *   wait     the submitter waits for each task before the next (Python's
 *            submit(...).result()): it sleeps while the worker wakes;
 *   nowait   the submitter goes on (it sleeps 100 us between tasks, so
 *            that the pool is idle again at each one) and never waits.
 */
#define GAP_NS 100000

struct stamp {
	double submitted, started;
};

static void
gap(void)
{
	struct timespec ts = { 0, GAP_NS };

	nanosleep(&ts, NULL);
}

/* p50 and p99 in microseconds of s[i].started - s[i].submitted. */
static void
percentiles(struct stamp *s, int n, double *p50, double *p99)
{
	double *lat = malloc(n * sizeof(*lat));

	if (lat == NULL)
		die("malloc", ENOMEM);
	for (int i = 0; i < n; i++)
		lat[i] = s[i].started - s[i].submitted;
	median(lat, n);
	*p50 = lat[n / 2] * 1e6;
	*p99 = lat[(int)(n * 0.99)] * 1e6;
	free(lat);
}

static int
task_stamp(void *arg, void **result)
{
	((struct stamp *)arg)->started = now_s();
	return 0;
}

static void
ours_latency(bool wait, struct stamp *s, int n)
{
	tp_pool *p = make_pool(2);
	int rc;

	for (int i = 0; i < n; i++) {
		tp_future *f;

		s[i].submitted = now_s();
		if ((rc = tp_submit(p, task_stamp, &s[i], wait ? &f : NULL)) != 0)
			die("tp_submit", rc);
		if (wait) {
			tp_future_result(f, -1, NULL);
			tp_future_release(f);
		} else {
			gap();
		}
	}
	tp_pool_free(p);
}

#ifdef HAVE_GLIB
struct glib_done {
	GMutex mu;
	GCond cv;
	int done;
};

static void
glib_stamp(gpointer data, gpointer user)
{
	struct glib_done *d = user;

	((struct stamp *)data)->started = now_s();
	if (d == NULL)
		return;
	g_mutex_lock(&d->mu);
	d->done = 1;
	g_cond_signal(&d->cv);
	g_mutex_unlock(&d->mu);
}

static void
glib_latency(bool wait, struct stamp *s, int n)
{
	struct glib_done d;
	GThreadPool *p;

	g_mutex_init(&d.mu);
	g_cond_init(&d.cv);
	p = g_thread_pool_new(glib_stamp, wait ? &d : NULL, 2, FALSE, NULL);
	for (int i = 0; i < n; i++) {
		d.done = 0;
		s[i].submitted = now_s();
		g_thread_pool_push(p, &s[i], NULL);
		if (wait) {
			g_mutex_lock(&d.mu);
			while (!d.done)
				g_cond_wait(&d.cv, &d.mu);
			g_mutex_unlock(&d.mu);
		} else {
			gap();
		}
	}
	g_thread_pool_free(p, FALSE, TRUE);
	g_cond_clear(&d.cv);
	g_mutex_clear(&d.mu);
}
#endif

#ifdef HAVE_LIBUV
static void
uv_stamp(uv_work_t *req)
{
	((struct stamp *)req->data)->started = now_s();
}

/* Waiting is running the loop until the request's after-callback; not
 * waiting is queueing and going on, the loop run once at the end.  The
 * pool's size comes from UV_THREADPOOL_SIZE (the parent sets 2). */
static void
uv_latency(bool wait, struct stamp *s, int n)
{
	uv_loop_t loop;
	uv_work_t *reqs = calloc((size_t)n, sizeof(*reqs));

	if (reqs == NULL || uv_loop_init(&loop) != 0)
		die("libuv", ENOMEM);
	for (int i = 0; i < n; i++) {
		reqs[i].data = &s[i];
		s[i].submitted = now_s();
		if (uv_queue_work(&loop, &reqs[i], uv_stamp, uv_after) != 0)
			die("uv_queue_work", EINVAL);
		if (wait)
			uv_run(&loop, UV_RUN_DEFAULT);
		else
			gap();
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	free(reqs);
}
#endif

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: tp-bench [-n TASKS] [-r RUNS] [-l SAMPLES] [--json]\n"
	            "  -n, --tasks N     tasks per throughput run (default 1000000)\n"
	            "  -r, --runs N      runs per figure; the median is reported (default 5)\n"
	            "  -l, --latency N   latency samples (default 20000)\n"
	            "  -j, --json        also print one JSON line of results\n");
}

static long
parse_positive(const char *s, const char *name)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < 1) {
		fprintf(stderr, "tp-bench: %s: not a positive number: %s\n", name, s);
		usage(stderr);
		exit(2);
	}
	return v;
}

/* The latency of lib ("ours:wait", "glib:nowait", ...) in a child process. */
static void
child_latency(const char *lib, int samples, double *p50, double *p99)
{
	char cmd[4096];
	FILE *fp;

	snprintf(cmd, sizeof(cmd), "UV_THREADPOOL_SIZE=2 '%s' --latency-child %s -l %d", self, lib,
	         samples);
	if ((fp = popen(cmd, "r")) == NULL || fscanf(fp, "%lf %lf", p50, p99) != 2)
		die("tp-bench --latency-child", EIO);
	pclose(fp);
}

/* CPU seconds this process used while a pool of 2 sat idle for a
 * second, its workers started: an idle pool must cost nothing. */
static double
idle_cpu(void)
{
	struct rusage a, b;
	struct timespec one = { 1, 0 };
	tp_pool *p = make_pool(2);
	tp_future *f[2];

	for (int i = 0; i < 2; i++)
		if (tp_submit(p, task_empty, NULL, &f[i]) != 0)
			die("tp_submit", EINVAL);
	for (int i = 0; i < 2; i++) {
		tp_future_result(f[i], -1, NULL);
		tp_future_release(f[i]);
	}
	getrusage(RUSAGE_SELF, &a);
	nanosleep(&one, NULL);
	getrusage(RUSAGE_SELF, &b);
	tp_pool_free(p);
	return (b.ru_utime.tv_sec - a.ru_utime.tv_sec) + (b.ru_stime.tv_sec - a.ru_stime.tv_sec) +
	       ((b.ru_utime.tv_usec - a.ru_utime.tv_usec) + (b.ru_stime.tv_usec - a.ru_stime.tv_usec)) /
	               1e6;
}

static int
task_sleep_200us(void *arg, void **result)
{
	struct timespec t = { 0, 200000 };

	nanosleep(&t, NULL);
	return 0;
}

/*
 * Bursts of tasks that block, on a pool of the default size (more workers
 * than CPUs: CPUs + 4), after a phase of empty tasks has the pool keep no
 * more workers awake than CPUs: then each burst submits one 200 us sleep
 * per worker and waits for them all.  All should run at once, a burst
 * taking little more than one such task alone; a pool that kept workers
 * asleep under its cap for blocking tasks took twice that.  Returns us a
 * burst; *workers is the pool's size, *alone_us the same for one task
 * alone (a sleep of 200 us takes longer: timer slack, and the wake).
 */
static double
blocking_bursts_us(int bursts, unsigned *workers, double *alone_us)
{
	enum { BATCH = 1024 };
	static tp_future *fs[BATCH];
	struct tp_stats st = { TP_STATS_INIT };
	tp_pool *p;
	double t0;
	unsigned w;
	int rc;

	if ((rc = tp_pool_create(&p, NULL)) != 0)
		die("tp_pool_create", rc);
	if ((rc = tp_pool_stats(p, &st)) != 0)
		die("tp_pool_stats", rc);
	w = st.max_workers < BATCH ? st.max_workers : BATCH;
	for (int b = 0; b < 20; b++)
		submit_and_collect(p, task_empty, fs, BATCH);
	for (int pass = 0; pass < 2; pass++) {
		unsigned n = pass == 0 ? 1 : w; /* first one task alone: the reference */

		t0 = now_s();
		for (int b = 0; b < bursts; b++)
			submit_and_collect(p, task_sleep_200us, fs, n);
		t0 = (now_s() - t0) / bursts * 1e6;
		if (pass == 0)
			*alone_us = t0;
	}
	tp_pool_free(p);
	*workers = w;
	return t0;
}

/* Tasks per run for a workload: fewer as tasks grow, so that each run
 * takes a fraction of a second whatever the task. */
static long
tasks_for(long n, double us)
{
	long cap = us > 0 ? (long)(200000 / us) : n;

	return cap < n ? cap : n;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "tasks", required_argument, NULL, 'n' },
		{ "runs", required_argument, NULL, 'r' },
		{ "latency", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "uv-child", no_argument, NULL, 'U' },
		{ "latency-child", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	static const unsigned workers[] = { 1, 2, 4 };
	static const double works[] = { 0, 1, 10 };
	long n = 1000000;
	int runs = 5, samples = 20000, json = 0, uvchild = 0, c, w, r, k;
	unsigned burst_workers;
	double burst_us, alone_us = 0;
	const char *latchild = NULL;
	double fire[3][3], fut[3][3], glib[3][3], uv[3][3], lat50[3][2], lat99[3][2], handoff[2];
	double rowho[3][3][2]; /* each row's handoff, before and after */
	double *v1, *v2, *v3, *v4;

	while ((c = getopt_long(argc, argv, "n:r:l:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': n = parse_positive(optarg, "--tasks"); break;
		case 'r': runs = (int)parse_positive(optarg, "--runs"); break;
		case 'l': samples = (int)parse_positive(optarg, "--latency"); break;
		case 'j': json = 1; break;
		case 'U': uvchild = 1; break;
		case 'L': latchild = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (latchild != NULL) {
		/* tp-bench --latency-child LIB:MODE: a fresh process, so that
		 * no library has threads left over from the throughput runs
		 * (GLib keeps unused threads process-wide). */
		struct stamp *st = calloc((size_t)samples, sizeof(*st));
		bool wait = strstr(latchild, ":wait") != NULL;

		if (st == NULL)
			die("calloc", ENOMEM);
		if (strncmp(latchild, "ours:", 5) == 0)
			ours_latency(wait, st, samples);
#ifdef HAVE_GLIB
		else if (strncmp(latchild, "glib:", 5) == 0)
			glib_latency(wait, st, samples);
#endif
#ifdef HAVE_LIBUV
		else if (strncmp(latchild, "libuv:", 6) == 0)
			uv_latency(wait, st, samples);
#endif
		else
			die("--latency-child: ours, glib or libuv, :wait or :nowait", EINVAL);
		percentiles(st, samples, &lat50[0][0], &lat99[0][0]);
		printf("%.2f %.2f\n", lat50[0][0], lat99[0][0]);
		free(st);
		return 0;
	}
	if (uvchild) {
#ifdef HAVE_LIBUV
		if (argc - optind != 2)
			die("--uv-child N WORK_US", EINVAL);
		work_us = atof(argv[optind + 1]);
		return uv_child(parse_positive(argv[optind], "--uv-child"));
#else
		die("--uv-child: built without libuv", ENOTSUP);
#endif
	}
	if (optind != argc) {
		fprintf(stderr, "tp-bench: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	self = argv[0];
	v1 = calloc(runs, sizeof(double));
	v2 = calloc(runs, sizeof(double));
	v3 = calloc(runs, sizeof(double));
	v4 = calloc(runs, sizeof(double));
	if (v1 == NULL || v2 == NULL || v3 == NULL || v4 == NULL)
		die("calloc", ENOMEM);

	handoff[0] = handoff_ns();
	printf("tp-bench: tasks per second, median of %d runs, every library interleaved\n", runs);
	printf("cache-line handoff between two threads: %.0f ns\n", handoff[0]);
	for (k = 0; k < 3; k++) {
		long nk = tasks_for(n, works[k]);

		work_us = works[k];
		printf("\n%s tasks (%ld a run):\n",
		       k == 0 ? "empty" : k == 1 ? "~1 us" : "~10 us", nk);
		printf("%-8s %12s %12s %12s %12s %9s %9s %9s %11s\n", "workers", "ours fire",
		       "ours futures", "GThreadPool", "libuv", "/GLib", "/libuv", "fut/fire",
		       "handoff ns");
		for (w = 0; w < 3; w++) {
			rowho[k][w][0] = handoff_ns();
			for (r = 0; r < runs; r++) {
				v1[r] = ours_fire(workers[w], nk);
				v2[r] = ours_futures(workers[w], nk);
#ifdef HAVE_GLIB
				v3[r] = glib_fire(workers[w], nk);
#else
				v3[r] = 0;
#endif
#ifdef HAVE_LIBUV
				v4[r] = uv_fire(workers[w], nk);
#else
				v4[r] = 0;
#endif
			}
			fire[k][w] = median(v1, runs);
			fut[k][w] = median(v2, runs);
			glib[k][w] = median(v3, runs);
			uv[k][w] = median(v4, runs);
			printf("%-8u %12.0f %12.0f %12.0f %12.0f", workers[w], fire[k][w], fut[k][w],
			       glib[k][w], uv[k][w]);
			if (glib[k][w] > 0)
				printf(" %8.2fx", fire[k][w] / glib[k][w]);
			else
				printf(" %9s", "-");
			if (uv[k][w] > 0)
				printf(" %8.2fx", fire[k][w] / uv[k][w]);
			else
				printf(" %9s", "-");
			rowho[k][w][1] = handoff_ns();
			printf(" %8.2fx %5.0f-%-5.0f\n", fut[k][w] / fire[k][w], rowho[k][w][0],
			       rowho[k][w][1]);
		}
	}
	work_us = 0;

	printf("\nsubmit-to-start latency on an idle pool of 2, %d samples, each library in a "
	       "fresh process (p50 / p99, us):\n",
	       samples);
	printf("  %-12s %22s %22s\n", "", "submitter waits", "submitter goes on");
	for (k = 0; k < 3; k++) {
		static const char *const libs[] = { "ours", "glib", "libuv" };
		static const char *const names[] = { "ours", "GThreadPool", "libuv" };
		char what[32];
		bool have = k == 0;

#ifdef HAVE_GLIB
		have = have || k == 1;
#endif
#ifdef HAVE_LIBUV
		have = have || k == 2;
#endif
		lat50[k][0] = lat99[k][0] = lat50[k][1] = lat99[k][1] = 0;
		if (!have)
			continue;
		snprintf(what, sizeof(what), "%s:wait", libs[k]);
		child_latency(what, samples, &lat50[k][0], &lat99[k][0]);
		snprintf(what, sizeof(what), "%s:nowait", libs[k]);
		child_latency(what, samples, &lat50[k][1], &lat99[k][1]);
		printf("  %-12s %10.1f / %-9.1f %10.1f / %-9.1f\n", names[k], lat50[k][0],
		       lat99[k][0], lat50[k][1], lat99[k][1]);
	}
	burst_us = blocking_bursts_us(300, &burst_workers, &alone_us);
	printf("\nbursts of %u tasks that each sleep 200 us, on a pool of %u after empty tasks: "
	       "%.0f us a burst; one such task alone: %.0f us\n",
	       burst_workers, burst_workers, burst_us, alone_us);
	printf("CPU used by an idle pool of 2 over one second: %.3f ms\n", idle_cpu() * 1e3);
	handoff[1] = handoff_ns();
	printf("cache-line handoff between two threads, at the end: %.0f ns%s\n", handoff[1],
	       handoff[1] > 1.5 * handoff[0] || handoff[0] > 1.5 * handoff[1]
	               ? " (the machine changed during the run: do not compare its figures)"
	               : "");

	if (json) {
		printf("{\"bench\":\"tp-bench\",\"tasks\":%ld,\"runs\":%d,\"handoff_ns\":[%.0f,%.0f]",
		       n, runs, handoff[0], handoff[1]);
		for (k = 0; k < 3; k++)
			for (w = 0; w < 3; w++)
				printf(",\"work%g_w%u\":{\"fire\":%.0f,\"futures\":%.0f,\"glib\":%.0f,"
				       "\"libuv\":%.0f,\"handoff_ns\":[%.0f,%.0f]}",
				       works[k], workers[w], fire[k][w], fut[k][w], glib[k][w], uv[k][w],
				       rowho[k][w][0], rowho[k][w][1]);
		printf(",\"latency_us\":{\"ours_wait\":[%.1f,%.1f],\"ours_nowait\":[%.1f,%.1f],"
		       "\"glib_wait\":[%.1f,%.1f],\"glib_nowait\":[%.1f,%.1f],"
		       "\"libuv_wait\":[%.1f,%.1f],\"libuv_nowait\":[%.1f,%.1f]},"
		       "\"blocking_burst_us\":[%.0f,%.0f]}\n",
		       lat50[0][0], lat99[0][0], lat50[0][1], lat99[0][1], lat50[1][0], lat99[1][0],
		       lat50[1][1], lat99[1][1], lat50[2][0], lat99[2][0], lat50[2][1], lat99[2][1],
		       burst_us, alone_us);
	}
	free(v1);
	free(v2);
	free(v3);
	free(v4);
	return 0;
}
