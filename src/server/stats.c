/* Sharded counters; see stats.h. */
#include "config.h"

#include <stdatomic.h>

#include "stats.h"

/* More shards than a pool has workers, as a rule; two threads sharing
 * one are still correct, only slower. */
#define SHARDS 16

struct shard {
	_Alignas(64) atomic_llong v[STATS_N];
};

static struct shard shards[SHARDS];
static atomic_llong set_values[STATS_N];
static atomic_uint next_shard;
static _Thread_local int my_shard = -1;

void
stats_add(enum stats_id id, int64_t n)
{
	if (my_shard < 0)
		my_shard = (int)(atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) %
		                 SHARDS);
	atomic_fetch_add_explicit(&shards[my_shard].v[id], (long long)n, memory_order_relaxed);
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

	for (int i = 0; i < SHARDS; i++)
		sum += atomic_load_explicit(&shards[i].v[id], memory_order_relaxed);
	return (int64_t)sum;
}
