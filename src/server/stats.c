/* Sharded counters; see stats.h. */
#include "config.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "stats.h"

/*
 * The first SHARDS threads to count each own a shard and add to it with a
 * plain load and store (relaxed atomics, so that the reader sees whole
 * values, but no locked instruction: a fan-out to a thousand clients adds
 * four times per client).  Threads beyond those share one more shard, with
 * locked adds.  The server's threads (the workers, the accept loop, the
 * bus and metrics threads) are far fewer than SHARDS.
 */
#define SHARDS 64

struct shard {
	_Alignas(64) atomic_llong v[STATS_N];
};

static struct shard shards[SHARDS + 1]; /* [SHARDS]: the shared one */
static atomic_llong set_values[STATS_N];
static atomic_uint next_shard;
static _Thread_local struct shard *mine;
static _Thread_local bool shared;

void
stats_add(enum stats_id id, int64_t n)
{
	atomic_llong *v;

	if (mine == NULL) {
		unsigned k = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed);

		shared = k >= SHARDS;
		mine = &shards[shared ? SHARDS : k];
	}
	v = &mine->v[id];
	if (shared)
		atomic_fetch_add_explicit(v, (long long)n, memory_order_relaxed);
	else
		atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
		                      memory_order_relaxed);
}

void
stats_set(enum stats_id id, int64_t v)
{
	atomic_store_explicit(&set_values[id], (long long)v, memory_order_relaxed);
}

int64_t
stats_get(enum stats_id id)
{
	long long sum = atomic_load_explicit(&set_values[id], memory_order_relaxed);

	for (int i = 0; i <= SHARDS; i++)
		sum += atomic_load_explicit(&shards[i].v[id], memory_order_relaxed);
	return (int64_t)sum;
}
