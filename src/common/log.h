/*
 * Levelled logging to stderr, one line per call:
 *   2026-11-24T22:31:05Z info listening on [::]:4333 (4 workers)
 * or, to journald: "<6>listening on [::]:4333 (4 workers)".
 * Safe from any thread (each line is one stdio call, which locks the stream).
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/*
 * Under systemd, with stderr connected to the journal (JOURNAL_STREAM
 * names it), lines carry no time of their own and begin with their
 * priority as journald reads it: "<3>" error, "<4>" warn, "<6>" info,
 * "<7>" debug.  Call once at start, before threads; returns whether.
 */
bool log_detect_journal(void);

/* Lines above this level are dropped.  Set once at start, before threads. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* "error", "warn", "info" or "debug". */
const char *log_level_name(enum log_level level);

/* Parse "error", "warn", "info" or "debug".  Returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As log_msg, whatever the level set: for the lines scripts wait for
 * ("listening on ..."). */
void log_always(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A line that may repeat at any rate (refusals, churn): at most one every
 * interval_ms.  Safe from any thread.  Zero-initialised, it lets the first
 * line through.
 */
struct log_limit {
	_Atomic long next_ms;             /* CLOCK_MONOTONIC ms of the next line allowed */
	_Atomic unsigned long suppressed; /* lines held back since the last one */
};

/* True if a line may go now; then *suppressed (if not NULL) receives how
 * many were held back since the last one, and the count starts again. */
bool log_limit_ok(struct log_limit *l, long interval_ms, unsigned long *suppressed);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif /* LOG_H */
