/* Levelled logging; see log.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mono.h"

/* Atomic: SIGHUP may change it while workers log. */
static _Atomic int max_level = LOG_INFO;
static bool journal; /* stderr is journald's stream (log_detect_journal) */
/* syslog(3)'s priorities, as journald reads them from a "<N>" prefix. */
static const int priorities[] = { 3, 4, 6, 7 };

bool
log_detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd.exec(5): the variable names the device and inode of the
	 * stream; stderr is the journal only if it is still that file (not
	 * redirected by a script in between). */
	journal = js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
	          fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	          (unsigned long long)st.st_ino == ino;
	return journal;
}

static const char *const names[] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level level)
{
	atomic_store_explicit(&max_level, (int)level, memory_order_relaxed);
}

const char *
log_level_name(enum log_level level)
{
	return names[level];
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&max_level, memory_order_relaxed);
}

int
log_parse_level(const char *s, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool
log_limit_ok(struct log_limit *l, long interval_ms, unsigned long *suppressed)
{
	long now = mono_ms(), next = atomic_load_explicit(&l->next_ms, memory_order_relaxed);

	/* One thread wins the slot; the others count as held back. */
	if (now < next || !atomic_compare_exchange_strong(&l->next_ms, &next, now + interval_ms)) {
		atomic_fetch_add_explicit(&l->suppressed, 1, memory_order_relaxed);
		return false;
	}
	if (suppressed != NULL)
		*suppressed = atomic_exchange_explicit(&l->suppressed, 0, memory_order_relaxed);
	else
		atomic_store_explicit(&l->suppressed, 0, memory_order_relaxed);
	return true;
}

static void log_v(enum log_level level, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

static void
log_v(enum log_level level, const char *fmt, va_list ap)
{
	char stamp[32], text[1024];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* A longer message is cut: a log line must never fail. */
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		text[0] = '\0';
	/* One call, so that lines from different threads never interleave. */
	if (journal) /* it stamps each line itself */
		fprintf(stderr, "<%d>%s\n", priorities[level], text);
	else
		fprintf(stderr, "%s %s %s\n", stamp, names[level], text);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if ((int)level > atomic_load_explicit(&max_level, memory_order_relaxed))
		return;
	va_start(ap, fmt);
	log_v(level, fmt, ap);
	va_end(ap);
}

void
log_always(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(level, fmt, ap);
	va_end(ap);
}
