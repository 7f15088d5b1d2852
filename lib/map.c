/*
 * tp_map: Executor.map for C.  Built on submit, result and cancel; of the
 * pool's insides it reads only max_queue (immutable) and uses the deadline
 * helpers of tp_internal.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "tp_internal.h"

/*
 * Submit ahead and collect in argument order.  Futures are collected (and
 * released) as soon as their turn comes, so a bounded queue makes map wait
 * for room instead of failing.
 */
int
tp_map(tp_pool *pool, tp_fn fn, void *const args[], size_t n, void *results[], long timeout_ms)
{
	struct timespec deadline;
	tp_future **fs;
	size_t next_sub = 0, next_res = 0, i;
	int rc = 0;

	if (pool == NULL || fn == NULL)
		return -EINVAL;
	if (tp__orphaned(pool))
		return -EOWNERDEAD;
	if (results != NULL)
		for (i = 0; i < n; i++)
			results[i] = NULL;
	if (n == 0)
		return 0;
	if (n > SIZE_MAX / sizeof(*fs) || (fs = calloc(n, sizeof(*fs))) == NULL)
		return -ENOMEM;
	tp__deadline(&deadline, timeout_ms);

	while (next_res < n) {
		void *res = NULL;
		long left;

		if (next_sub < n) {
			rc = tp_submit(pool, fn, args ? args[next_sub] : NULL, &fs[next_sub]);
			if (rc == 0) {
				next_sub++;
				continue;
			}
			/* Only a full bounded queue is worth waiting out. */
			if (rc != -EAGAIN || pool->max_queue == 0 || next_sub == next_res)
				goto fail;
		}
		left = timeout_ms < 0 ? -1 : tp__remaining_ms(&deadline);
		rc = tp_future_result(fs[next_res], left, &res);
		if (rc != 0)
			goto fail;
		if (results != NULL)
			results[next_res] = res;
		tp_future_release(fs[next_res]);
		fs[next_res++] = NULL;
	}
	free(fs);
	return 0;

fail:
	for (i = next_res; i < next_sub; i++) {
		tp_future_cancel(fs[i]);
		tp_future_release(fs[i]);
	}
	free(fs);
	return rc;
}
