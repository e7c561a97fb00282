/*
 * llview_rt.h - the interface between llview's compiler passes and its runtime.
 *
 * The passes rewrite an IDS program's LLVM IR so that every read that may
 * touch guest memory goes through the functions below; the runtime
 * (runtime/src, linked into every IDS binary) serves them from a page cache
 * filled by an agent. This header is self-contained (no includes) and every
 * name in it starts with __llview_, so it can be included by the runtime, by
 * runtime/src/fastpath.c (compiled to IR and inlined at every load site) and
 * read by the passes as the one place the contract is written down.
 *
 * Addresses: the guest is a 64-bit Linux kernel, so every guest address the
 * IDS can name is in the upper canonical half (bit 63 set). Addresses in the
 * lower half belong to the IDS process itself and are read natively; the
 * cache maps them to themselves so they also take the inline hit path.
 */
#ifndef LLVIEW_RT_H
#define LLVIEW_RT_H

typedef unsigned long __llview_u64;
typedef unsigned int __llview_u32;

#define __LLVIEW_PAGE_SHIFT 12
#define __LLVIEW_PAGE_SIZE (1UL << __LLVIEW_PAGE_SHIFT)
#define __LLVIEW_CACHE_SLOTS 8192 /* power of two: direct-mapped by page number */

/* One slot of the direct-mapped translation cache: the page number it holds
 * (address >> 12) and where that page's bytes live in the IDS process. */
struct __llview_cache_slot {
	__llview_u64 page;
	char *data;
};

/* The cache the inline hit path reads. Slots start with page = ~0UL, which
 * no address maps to. */
extern struct __llview_cache_slot __llview_cache[__LLVIEW_CACHE_SLOTS];

/* Per-scan bound on instrumented reads: the hit path decrements it and takes
 * the miss path when it runs out, which ends the scan with a clear message
 * (a corrupted or cyclic list cannot make the IDS loop forever). */
extern long __llview_read_budget;

/* Where an instrumented operation sits in the IDS source; the passes emit
 * the table (@__llview_sites, @__llview_nsites) and pass indices into it. */
struct __llview_site {
	const char *file;
	__llview_u32 line;
	__llview_u32 column;
};
extern const struct __llview_site __llview_sites[];
extern const __llview_u32 __llview_nsites;

/* A kernel global named by the IDS (init_task, linux_banner, ...). The passes
 * emit the table (@__llview_ksyms, @__llview_nksyms); the runtime fills every
 * addr with the symbol's address in the running guest (KASLR slide applied)
 * before the IDS's main runs, or stops with an error naming the symbol. */
struct __llview_ksym {
	const char *name;
	void *addr;
};
extern struct __llview_ksym __llview_ksyms[];
extern const __llview_u32 __llview_nksyms;

/* Optional (weak): the release (uname -r) of the kernel whose headers the
 * IDS was built against, e.g. "6.1.0-56-amd64". When the passes emit it, the
 * runtime asks the agent which release the guest runs and refuses to scan
 * another one, whose struct layouts need not match. */
extern const char __llview_kernel_release[] __attribute__((weak));

/* Inline fast path (runtime/src/fastpath.c, inlined by the optimiser):
 * returns a pointer in the IDS process from which `size` bytes of `addr`
 * can be read. Calls __llview_load_miss when the page is not cached, the
 * read straddles a page boundary or the read budget is spent. */
void *__llview_load(const void *addr, __llview_u64 size, __llview_u32 site);

/* Miss path: fetches the page(s) from the agent. A read the agent cannot
 * serve ends the scan with an error naming the address and the site; it
 * never returns in that case. */
void *__llview_load_miss(const void *addr, __llview_u64 size, __llview_u32 site);

/* A list walk the compiler found (llview/passes/footprints.py): a loop
 * that follows node = *(node + link), starting from the node pointer at
 * `first`, and reads a known footprint of every node. The call, placed
 * before the loop reads *first, lets the runtime fetch the whole list's
 * footprint in one request (the agent follows the links); the loop's own
 * reads then find their bytes in the cache. It never fails: anything it
 * could not fetch is read, and reported, by the loop itself. `walk` is an
 * array of ints:
 *   link, nranges, nderefs,
 *   nranges x {offset, len}            bytes at node + offset
 *   nderefs x {pointer, offset, len}   bytes at *(node + pointer) + offset
 * (offsets from the node, signed: a list node often sits inside its object). */
void __llview_walk(const void *first, const int *walk, __llview_u32 site);

/* An object's footprint (llview/passes/footprints.py): the fields the code
 * after this call reads at constant offsets from `base`, an int array
 *   nranges, nranges x {offset, len}
 * A hint only: the first of those reads that misses the cache fetches the
 * whole footprint in one request, instead of the block of pages around it. */
void __llview_footprint(const void *base, const int *footprint);

/* Inline store guard (fastpath.c): the IDS may not write guest memory.
 * Calls __llview_store_refused, which does not return, for a guest address. */
void __llview_store_check(const void *addr, __llview_u32 site);
void __llview_store_refused(const void *addr, __llview_u32 site);

/* Bulk and string reads that may touch guest memory (the passes redirect
 * llvm.memcpy/memmove/memset and calls to the C string functions here). */
void *__llview_memcpy(void *dst, const void *src, __llview_u64 n, __llview_u32 site);
void *__llview_memmove(void *dst, const void *src, __llview_u64 n, __llview_u32 site);
void *__llview_memset(void *dst, int c, __llview_u64 n, __llview_u32 site);
int __llview_memcmp(const void *a, const void *b, __llview_u64 n, __llview_u32 site);
__llview_u64 __llview_strlen(const char *s, __llview_u32 site);
__llview_u64 __llview_strnlen(const char *s, __llview_u64 max, __llview_u32 site);
int __llview_strcmp(const char *a, const char *b, __llview_u32 site);
int __llview_strncmp(const char *a, const char *b, __llview_u64 n, __llview_u32 site);

/* The IDS program's own `int main(void)`, renamed by the passes; the runtime
 * owns the process's real main and its options. */
int __llview_ids_main(void);

#endif /* LLVIEW_RT_H */
