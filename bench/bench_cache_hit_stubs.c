/*
 * bench_cache_hit_stubs.c - the cache and an out-of-line miss path for
 * bench_cache_hit.c, in their own object as in an IDS binary. The benchmark
 * installs every page it reads, so a miss is a bug in it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "llview_rt.h"

struct __llview_cache_slot __llview_cache[__LLVIEW_CACHE_SLOTS];
long __llview_read_budget;

void *__llview_load_miss(const void *addr, __llview_u64 size, __llview_u32 site)
{
	fprintf(stderr, "unexpected miss at %p size %lu site %u\n", addr, size, site);
	if (getenv("LLVIEW_BENCH_NEVER")) /* never set: keeps the compiler from assuming noreturn */
		return (void *)addr;
	exit(1);
}

void __llview_store_refused(const void *addr, __llview_u32 site)
{
	fprintf(stderr, "unexpected store refusal at %p site %u\n", addr, site);
	exit(1);
}
