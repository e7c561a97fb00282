/*
 * bench_cache_hit.c - cost of an instrumented load that hits the page cache
 * vs a plain load, measured side by side in one run.
 *
 * The hit path is runtime/src/fastpath.c, included here so clang inlines it
 * exactly as the compiler driver's optimiser does in an IDS. "Guest" memory
 * is a local buffer whose pages are installed in the cache under upper-half
 * (guest) page numbers, so every instrumented load takes the real hit path:
 * slot lookup, page compare, in-page check, budget decrement. Two access
 * patterns, both in L1 so the instrumentation is not hidden by cache misses:
 *   chase: a dependent pointer walk (a list walk: latency-bound)
 *   sum:   independent loads of an array (throughput-bound)
 * Built and run by bench/bench_cache_hit.sh; reports the best of several
 * trials (the machine is shared).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fastpath.c"

/* The cache itself and the miss path live in bench_cache_hit_stubs.c, a
 * separate object, so the compiler knows no more about them than it does in
 * an IDS (the miss path returns, as the real one does). */

#define PAGES 4
#define BYTES (PAGES * 4096)
#define NODES (BYTES / 64)
#define WORDS (BYTES / 8)
#define GUEST_BASE 0xffff888012340000UL /* where the buffer "is" in the guest */

struct node {
	unsigned long next;
	unsigned long pad[7]; /* one node per cache line */
};

static struct node plain_nodes[NODES] __attribute__((aligned(4096)));
static struct node guest_nodes[NODES] __attribute__((aligned(4096)));
static unsigned long words[WORDS] __attribute__((aligned(4096)));

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long to_guest(const void *p, const void *buf)
{
	return GUEST_BASE + (unsigned long)((const char *)p - (const char *)buf);
}

__attribute__((noinline)) static unsigned long chase_plain(unsigned long p, long steps)
{
	for (long i = 0; i < steps; i++)
		p = ((const struct node *)p)->next;
	return p;
}

__attribute__((noinline)) static unsigned long chase_instrumented(unsigned long p, long steps)
{
	for (long i = 0; i < steps; i++)
		p = *(const unsigned long *)__llview_load((const void *)p, 8, 0);
	return p;
}

__attribute__((noinline)) static unsigned long sum_plain(const unsigned long *a, long n)
{
	unsigned long s = 0;

#pragma clang loop vectorize(disable) interleave(disable)
	for (long i = 0; i < n; i++)
		s += a[i];
	return s;
}

__attribute__((noinline)) static unsigned long sum_instrumented(const unsigned long *a, long n)
{
	unsigned long s = 0;

#pragma clang loop vectorize(disable) interleave(disable)
	for (long i = 0; i < n; i++)
		s += *(const unsigned long *)__llview_load(&a[i], 8, 0);
	return s;
}

#define TRIALS 201

/* ns per load of one run of `expr` doing `loads` loads. */
#define TIME_NS(expr, loads, sink)                                    \
	({                                                            \
		double start = now();                                 \
		(sink) += (expr);                                     \
		(now() - start) * 1e9 / (double)(loads);              \
	})
#define KEEP_MIN(best, value) ((best) = (value) < (best) ? (value) : (best))

static unsigned long sum_rounds(unsigned long (*sum)(const unsigned long *, long), long rounds)
{
	unsigned long s = 0;

	for (long r = 0; r < rounds; r++) {
		s += sum(words, WORDS);
		__asm__ volatile("" ::: "memory"); /* no hoisting the pure call */
	}
	return s;
}

int main(void)
{
	unsigned int order[NODES];
	unsigned long sink = 0;
	const long steps = 200000, rounds = 50;

	/* A random cyclic order through the nodes (the same for both). */
	srand(1);
	for (unsigned int i = 0; i < NODES; i++)
		order[i] = i;
	for (unsigned int i = NODES - 1; i > 0; i--) {
		unsigned int j = (unsigned int)rand() % (i + 1), tmp = order[i];

		order[i] = order[j];
		order[j] = tmp;
	}
	for (unsigned int i = 0; i < NODES; i++) {
		unsigned int from = order[i], to = order[(i + 1) % NODES];

		plain_nodes[from].next = (unsigned long)&plain_nodes[to];
		guest_nodes[from].next = to_guest(&guest_nodes[to], guest_nodes);
	}
	for (unsigned int i = 0; i < WORDS; i++)
		words[i] = i;

	/* Install the guest pages, and the words array as IDS memory. */
	for (size_t i = 0; i < __LLVIEW_CACHE_SLOTS; i++)
		__llview_cache[i].page = ~0UL;
	for (int i = 0; i < PAGES; i++) {
		unsigned long page = (GUEST_BASE >> 12) + (unsigned long)i;
		unsigned long native = ((unsigned long)words >> 12) + (unsigned long)i;

		__llview_cache[page & (__LLVIEW_CACHE_SLOTS - 1)].page = page;
		__llview_cache[page & (__LLVIEW_CACHE_SLOTS - 1)].data = (char *)guest_nodes + i * 4096;
		__llview_cache[native & (__LLVIEW_CACHE_SLOTS - 1)].page = native;
		__llview_cache[native & (__LLVIEW_CACHE_SLOTS - 1)].data = (char *)(native << 12);
	}
	__llview_read_budget = 1L << 60;

	/* Plain and instrumented runs alternate, and the best of each is
	 * kept, so both see the same machine (which is shared and noisy). */
	double chase_p = 1e30, chase_i = 1e30, sum_p = 1e30, sum_i = 1e30;

	for (int t = 0; t < TRIALS; t++) {
		KEEP_MIN(chase_p, TIME_NS(chase_plain((unsigned long)&plain_nodes[0], steps), steps,
					 sink));
		KEEP_MIN(chase_i, TIME_NS(chase_instrumented(GUEST_BASE, steps), steps, sink));
		KEEP_MIN(sum_p, TIME_NS(sum_rounds(sum_plain, rounds), rounds * WORDS, sink));
		KEEP_MIN(sum_i, TIME_NS(sum_rounds(sum_instrumented, rounds), rounds * WORDS, sink));
	}

	printf("%-36s %10s %14s %7s\n", "pattern (L1-resident, 16 KiB)", "plain ns", "instrumented ns",
	       "ratio");
	printf("%-36s %10.2f %14.2f %6.2fx\n", "chase: dependent list walk", chase_p, chase_i,
	       chase_i / chase_p);
	printf("%-36s %10.2f %14.2f %6.2fx\n", "sum: independent loads", sum_p, sum_i, sum_i / sum_p);
	printf("(checksum %lu)\n", sink & 0xffff);
	return 0;
}
