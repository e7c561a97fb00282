/*
 * fastpath.c - the cache hit path, inlined at every instrumented load.
 *
 * The Makefile compiles this file to LLVM IR (runtime/build/fastpath.ll);
 * the compiler driver links it into each IDS module and the optimiser
 * inlines it, so a load whose page is cached costs a slot lookup, two
 * compares and a budget decrement, with no call. Everything else is in
 * __llview_load_miss (cache.c). The definitions are ordinary external ones
 * so an IDS never has an unresolved reference even where nothing inlined.
 */
#include "llview_rt.h"

#define PAGE_MASK (__LLVIEW_PAGE_SIZE - 1)

__attribute__((always_inline)) void *__llview_load(const void *addr, __llview_u64 size,
						   __llview_u32 site)
{
	__llview_u64 a = (__llview_u64)addr;
	__llview_u64 page = a >> __LLVIEW_PAGE_SHIFT;
	struct __llview_cache_slot *slot = &__llview_cache[page & (__LLVIEW_CACHE_SLOTS - 1)];
	/* Every instrumented read costs one unit, hit or miss; the miss path
	 * reports the spent budget. */
	long budget = --__llview_read_budget;

	if (__builtin_expect(slot->page == page && (a & PAGE_MASK) + size <= __LLVIEW_PAGE_SIZE &&
				     budget >= 0,
			     1))
		return slot->data + (a & PAGE_MASK);
	return __llview_load_miss(addr, size, site);
}

__attribute__((always_inline)) void __llview_store_check(const void *addr, __llview_u32 site)
{
	if (__builtin_expect((long)addr < 0, 0))
		__llview_store_refused(addr, site);
}
