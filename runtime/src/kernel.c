/*
 * kernel.c - user-space stand-ins for the out-of-line kernel functions the
 * headers' inline helpers call, and the guest-aware string and memory
 * functions the compiler redirects libc calls to (__llview_str*, mem*).
 *
 * An IDS reads a live guest from outside: it can take no guest lock and
 * needs no RCU grace period, so locking and RCU are no-ops; consistency
 * comes from the scan's page snapshot and the per-scan read bound.
 */
#include <string.h>
#include <sys/types.h>

#include <llview/ids.h>

#include "rt_internal.h"

/* ---- RCU and locking: nothing to do from outside the guest ---- */

void __rcu_read_lock(void) {}
void __rcu_read_unlock(void) {}
int rcu_read_lock_held(void) { return 1; }
int rcu_read_lock_any_held(void) { return 1; }
int rcu_read_lock_bh_held(void) { return 1; }
int rcu_read_lock_sched_held(void) { return 1; }
int debug_lockdep_rcu_enabled(void) { return 0; }

void _raw_spin_lock(void *lock) { (void)lock; }
void _raw_spin_unlock(void *lock) { (void)lock; }
void _raw_spin_lock_irq(void *lock) { (void)lock; }
void _raw_spin_unlock_irq(void *lock) { (void)lock; }
void _raw_spin_lock_bh(void *lock) { (void)lock; }
void _raw_spin_unlock_bh(void *lock) { (void)lock; }
unsigned long _raw_spin_lock_irqsave(void *lock) { (void)lock; return 0; }
void _raw_spin_unlock_irqrestore(void *lock, unsigned long flags) { (void)lock; (void)flags; }
int _raw_spin_trylock(void *lock) { (void)lock; return 1; }
void _raw_read_lock(void *lock) { (void)lock; }
void _raw_read_unlock(void *lock) { (void)lock; }
void _raw_write_lock(void *lock) { (void)lock; }
void _raw_write_unlock(void *lock) { (void)lock; }
void mutex_lock(void *lock) { (void)lock; }
void mutex_unlock(void *lock) { (void)lock; }
int mutex_trylock(void *lock) { (void)lock; return 1; }
void down_read(void *sem) { (void)sem; }
void up_read(void *sem) { (void)sem; }
int down_read_trylock(void *sem) { (void)sem; return 1; }

/* CONFIG_FORTIFY_SOURCE helpers call this when a bound check fails. */
__attribute__((noreturn)) void fortify_panic(const char *name)
{
	rt_die("buffer overflow detected in %s", name);
}

/* ---- guest-aware string and memory functions ---- */

#define CHUNK 256 /* bytes compared per step */

/* One budget unit per chunk of a guest string or buffer, so an unbounded
 * walk over guest memory ends like any other runaway read. */
static inline void charge(uint32_t site)
{
	if (--__llview_read_budget < 0)
		rt_budget_spent(site);
}

static inline int is_native(const void *p)
{
	return !rt_is_guest((uint64_t)p) && (uint64_t)p >= RT_NULL_LIMIT;
}

static void null_check(const void *p, uint32_t site)
{
	if ((uint64_t)p < RT_NULL_LIMIT)
		rt_die("NULL pointer dereference reading 0x%lx at %s", (unsigned long)p,
		       rt_site_text(site));
}

static void refuse_guest(const void *dst, uint32_t site)
{
	if (rt_is_guest((uint64_t)dst))
		__llview_store_refused(dst, site);
	if ((uint64_t)dst < RT_NULL_LIMIT)
		rt_die("NULL pointer dereference writing 0x%lx at %s", (unsigned long)dst,
		       rt_site_text(site));
}

/* Reads up to `max` bytes at addr, stopping at the end of its page, into
 * buf; returns how many. */
static uint64_t read_chunk(char *buf, uint64_t addr, uint64_t max, uint32_t site)
{
	uint64_t room = __LLVIEW_PAGE_SIZE - (addr & RT_PAGE_MASK);
	uint64_t n = max < room ? max : room;

	charge(site);
	rt_copy_in_or_die(buf, addr, n, site);
	return n;
}

__llview_u64 __llview_strnlen(const char *s, __llview_u64 max, __llview_u32 site)
{
	char buf[__LLVIEW_PAGE_SIZE];
	uint64_t len = 0;

	if (!max)
		return 0;
	null_check(s, site);
	if (is_native(s))
		return strnlen(s, max);
	while (len < max) {
		uint64_t n = read_chunk(buf, (uint64_t)s + len, max - len, site);
		const char *nul = memchr(buf, 0, n);

		if (nul)
			return len + (uint64_t)(nul - buf);
		len += n;
	}
	return max;
}

__llview_u64 __llview_strlen(const char *s, __llview_u32 site)
{
	null_check(s, site);
	if (is_native(s))
		return strlen(s);
	return __llview_strnlen(s, ~0UL, site);
}

int __llview_strncmp(const char *a, const char *b, __llview_u64 n, __llview_u32 site)
{
	char ca[CHUNK], cb[CHUNK];

	if (!n)
		return 0;
	null_check(a, site);
	null_check(b, site);
	if (is_native(a) && is_native(b))
		return strncmp(a, b, n);
	for (uint64_t done = 0; done < n;) {
		uint64_t want = n - done < CHUNK ? n - done : CHUNK;
		uint64_t na = read_chunk(ca, (uint64_t)a + done, want, site);
		uint64_t nb = read_chunk(cb, (uint64_t)b + done, na, site);

		for (uint64_t i = 0; i < nb; i++) {
			unsigned char x = (unsigned char)ca[i], y = (unsigned char)cb[i];

			if (x != y)
				return x < y ? -1 : 1;
			if (!x)
				return 0;
		}
		done += nb;
	}
	return 0;
}

int __llview_strcmp(const char *a, const char *b, __llview_u32 site)
{
	null_check(a, site);
	null_check(b, site);
	if (is_native(a) && is_native(b))
		return strcmp(a, b);
	return __llview_strncmp(a, b, ~0UL, site);
}

int __llview_memcmp(const void *a, const void *b, __llview_u64 n, __llview_u32 site)
{
	char ca[CHUNK], cb[CHUNK];

	if (!n)
		return 0;
	null_check(a, site);
	null_check(b, site);
	if (is_native(a) && is_native(b))
		return memcmp(a, b, n);
	for (uint64_t done = 0; done < n;) {
		uint64_t want = n - done < CHUNK ? n - done : CHUNK;
		uint64_t na = read_chunk(ca, (uint64_t)a + done, want, site);
		uint64_t nb = read_chunk(cb, (uint64_t)b + done, na, site);
		int diff = memcmp(ca, cb, nb);

		if (diff)
			return diff < 0 ? -1 : 1;
		done += nb;
	}
	return 0;
}

void *__llview_memcpy(void *dst, const void *src, __llview_u64 n, __llview_u32 site)
{
	if (!n)
		return dst;
	refuse_guest(dst, site);
	null_check(src, site);
	if (is_native(src))
		return memcpy(dst, src, n);
	charge(site);
	rt_copy_in_or_die(dst, (uint64_t)src, n, site);
	return dst;
}

void *__llview_memmove(void *dst, const void *src, __llview_u64 n, __llview_u32 site)
{
	if (!n)
		return dst;
	refuse_guest(dst, site);
	null_check(src, site);
	if (is_native(src))
		return memmove(dst, src, n);
	/* A guest source never overlaps the IDS's own destination. */
	charge(site);
	rt_copy_in_or_die(dst, (uint64_t)src, n, site);
	return dst;
}

void *__llview_memset(void *dst, int c, __llview_u64 n, __llview_u32 site)
{
	if (!n)
		return dst;
	refuse_guest(dst, site);
	return memset(dst, c, n);
}

/* lib/string.c: copies at most size - 1 bytes and always terminates;
 * returns the length copied, or -E2BIG when src did not fit. */
ssize_t strscpy(char *dst, const char *src, size_t size)
{
	if (!size)
		return -7; /* -E2BIG */
	refuse_guest(dst, RT_NO_SITE);
	uint64_t len = __llview_strnlen(src, size, RT_NO_SITE);

	if (len == size) {
		__llview_memcpy(dst, src, size - 1, RT_NO_SITE);
		dst[size - 1] = 0;
		return -7;
	}
	__llview_memcpy(dst, src, len + 1, RT_NO_SITE);
	return (ssize_t)len;
}

/* mm/maccess.c: a read that may fail. An IDS probing memory it cannot
 * vouch for (carving module memory, a pointer from a hostile guest) gets
 * -EFAULT for what the agent cannot serve instead of the end of its scan. */
long copy_from_kernel_nofault(void *dst, const void *src, size_t size)
{
	uint64_t bad;
	uint32_t status;

	if (!size)
		return 0;
	refuse_guest(dst, RT_NO_SITE);
	return rt_copy_in(dst, (uint64_t)src, size, &bad, &status) ? -14 /* -EFAULT */ : 0;
}
