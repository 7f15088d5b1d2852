/*
 * The one clock of the server's timers, limits and rate-limited logs:
 * CLOCK_MONOTONIC, which no change of the wall clock moves.
 */
#ifndef MONO_H
#define MONO_H

#include <time.h>

static inline long long
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline long
mono_ms(void)
{
	return (long)(mono_ns() / 1000000);
}

#endif /* MONO_H */
