/*
 * cache.c - the page cache behind __llview_load: the miss path, guest page
 * fetches (batched, with read-ahead of the next page), reads that straddle
 * a page boundary, the per-scan read budget and scan boundaries.
 *
 * The cache is direct-mapped by page number (llview_rt.h). A slot holds
 * either a guest page, copied into that slot's own 4 KiB buffer in `pool`,
 * or an identity mapping of a page of the IDS's own memory (data = the
 * page itself), so native pointers take the inline hit path too. A scan
 * never sees data older than its own start: llview_scan_begin empties the
 * cache, and the runtime's main calls it before the IDS's main.
 *
 * Footprints: the bytes a list walk (__llview_walk) or a range read brought
 * are kept apart, as parts of pages in 8-byte units marked in a bitmap.
 * They are not in the table the inline hit path reads; the miss path serves
 * a read from them when every unit the read touches is there, and fetches
 * the whole page otherwise.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <llview/ids.h>

#include "rt_internal.h"

struct __llview_cache_slot __llview_cache[__LLVIEW_CACHE_SLOTS] = {
	[0 ... __LLVIEW_CACHE_SLOTS - 1] = { ~0UL, 0 },
};
long __llview_read_budget = RT_DEFAULT_MAX_READS;

#pragma GCC visibility push(hidden)
long rt_max_reads = RT_DEFAULT_MAX_READS;
struct rt_stats rt_stats;
#pragma GCC visibility pop

/* Guest page buffers, one per slot, reserved once and touched lazily. */
static u8 *pool;
/* Where straddling reads are assembled; grown for larger reads. */
static u8 bounce_small[2 * __LLVIEW_PAGE_SIZE] __attribute__((aligned(64)));
static u8 *bounce_big;
static size_t bounce_big_size;

/* A read within the last READ_AHEAD_TAIL bytes of a page also fetches the
 * next page in the same request: objects (task_struct is ~10 KiB) often
 * continue there, and a second page costs far less than a second round
 * trip. */
#define READ_AHEAD_TAIL 1024u

#pragma GCC visibility push(hidden)
/* A miss also fetches the rest of the aligned block of this many pages
 * around it (a power of two; 1 = just the page): kernel objects come from
 * slabs of 2^order pages, so neighbouring objects (the next task_struct of
 * a list) are often in the same block. */
unsigned int rt_read_ahead = RT_DEFAULT_READ_AHEAD;
#pragma GCC visibility pop

static inline struct __llview_cache_slot *slot_of(uint64_t page)
{
	return &__llview_cache[page & (__LLVIEW_CACHE_SLOTS - 1)];
}

static inline u8 *buffer_of(uint64_t page)
{
	return pool + (page & (__LLVIEW_CACHE_SLOTS - 1)) * __LLVIEW_PAGE_SIZE;
}

/* Parts of pages (what walks and range reads brought), in 8-byte units, in
 * a table of their own, open-addressed by page number: a scan's footprints
 * touch hundreds of pages, and in a direct-mapped table some of them would
 * always share a slot and push each other out. */
#define UNIT_SHIFT 3
#define UNITS_PER_PAGE (__LLVIEW_PAGE_SIZE >> UNIT_SHIFT)
#define PARTS_SHIFT 14
#define PARTS (1u << PARTS_SHIFT)
#define PARTS_MAX (PARTS / 4 * 3) /* beyond this a scan's parts are dropped: read by page */
struct page_part {
	uint64_t page; /* ~0: empty */
	uint64_t units[UNITS_PER_PAGE / 64];
};
static struct page_part parts[PARTS] = { [0 ... PARTS - 1] = { .page = ~0UL } };
static unsigned int parts_used;
static u8 *parts_pool; /* PARTS pages, reserved once and touched lazily */

/* The part of `page` (NULL: none), made when `make` and there is room. */
static struct page_part *part_of(uint64_t page, int make)
{
	size_t i = (size_t)((page * 0x9e3779b97f4a7c15ULL) >> (64 - PARTS_SHIFT));

	while (parts[i].page != page) {
		if (parts[i].page == ~0UL) {
			if (!make || parts_used >= PARTS_MAX)
				return NULL;
			parts[i].page = page;
			memset(parts[i].units, 0, sizeof(parts[i].units));
			parts_used++;
			break;
		}
		i = (i + 1) & (PARTS - 1);
	}
	return &parts[i];
}

static inline u8 *part_data(const struct page_part *part)
{
	return parts_pool + (size_t)(part - parts) * __LLVIEW_PAGE_SIZE;
}

static void forget_all_parts(void)
{
	if (!parts_used)
		return;
	for (size_t i = 0; i < PARTS; i++)
		parts[i].page = ~0UL;
	parts_used = 0;
}

/* Bytes available in the cache from addr on, up to the end of its page
 * (all of them for a whole page, the run of units present for a part of
 * one); *data points at them. 0: nothing there. */
static uint64_t cached_run(uint64_t addr, const u8 **data)
{
	uint64_t page = addr >> __LLVIEW_PAGE_SHIFT, off = addr & RT_PAGE_MASK;

	if (slot_of(page)->page == page) {
		*data = (const u8 *)slot_of(page)->data + off;
		return __LLVIEW_PAGE_SIZE - off;
	}
	const struct page_part *part = parts_used ? part_of(page, 0) : NULL;
	if (!part)
		return 0;
	uint64_t unit = off >> UNIT_SHIFT;

	while (unit < UNITS_PER_PAGE && (part->units[unit / 64] >> (unit % 64) & 1))
		unit++;
	if ((unit << UNIT_SHIFT) <= off)
		return 0;
	*data = part_data(part) + off;
	return (unit << UNIT_SHIFT) - off;
}

/* Keeps n bytes of guest memory at addr (within one page) that a range
 * record brought. Only whole 8-byte units are marked present. */
static void keep_bytes(uint64_t addr, const u8 *bytes, uint64_t n)
{
	uint64_t page = addr >> __LLVIEW_PAGE_SHIFT, off = addr & RT_PAGE_MASK;
	uint64_t first = (off + (1u << UNIT_SHIFT) - 1) >> UNIT_SHIFT;
	uint64_t last = (off + n) >> UNIT_SHIFT; /* one past */
	struct page_part *part;

	if (slot_of(page)->page == page || first >= last)
		return; /* the whole page is here already, or no whole unit */
	if (!(part = part_of(page, 1)))
		return; /* the table is full: the page path serves these reads */
	memcpy(part_data(part) + off, bytes, n);
	for (uint64_t unit = first; unit < last; unit++)
		part->units[unit / 64] |= 1UL << (unit % 64);
}

/* Pages the agent refused in this scan (unmapped, outside RAM, ...): asked
 * again within the scan they would be refused again, so a prober (module
 * memory carved with copy_from_kernel_nofault, full of guard pages) pays
 * one request per hole. Direct-mapped; llview_scan_begin empties it. */
#define UNSERVED_SLOTS 1024
struct unserved_page {
	uint64_t page;
	uint32_t status;
};
static struct unserved_page unserved[UNSERVED_SLOTS] = {
	[0 ... UNSERVED_SLOTS - 1] = { ~0UL, 0 },
};

static inline struct unserved_page *unserved_slot(uint64_t page)
{
	return &unserved[page & (UNSERVED_SLOTS - 1)];
}

#pragma GCC visibility push(hidden)
enum rt_fetch rt_fetch = RT_FETCH_WALKS;
#pragma GCC visibility pop

/* Walks already made in this scan (a loop entered again for the same list,
 * e.g. a program that lists twice, asks the agent once). */
#define WALKS_REMEMBERED 64
static struct {
	uint64_t first;
	const int *walk;
} walks_made[WALKS_REMEMBERED];
static unsigned int walks_done;
/* Most nodes one __llview_walk follows over all its requests: a corrupted,
 * cyclic list costs a bounded prefetch, and the loop's own reads (bounded
 * by the read budget) report it. */
#define WALK_NODES_MAX (4 * LLV_MAX_WALK_NODES)

static void keep_record(void *arg, const struct llv_range_data *rec, const u8 *data)
{
	(void)arg;
	if (!data || !rt_is_guest(rec->addr))
		return; /* the loop's own read reports what could not be read */
	rt_stats.footprint_bytes += rec->len;
	for (uint64_t addr = rec->addr, left = rec->len; left;) {
		uint64_t room = __LLVIEW_PAGE_SIZE - (addr & RT_PAGE_MASK);
		uint64_t n = left < room ? left : room;

		keep_bytes(addr, data, n);
		data += n;
		addr += n;
		left -= n;
	}
}

void __llview_walk(const void *first, const int *walk, __llview_u32 site)
{
	struct llv_walk_range ranges[LLV_MAX_WALK_RANGES];
	struct llv_walk_deref derefs[LLV_MAX_WALK_DEREFS];
	struct llv_walk req = { 0 };
	uint64_t nodes = 0;

	(void)site;
	if (rt_fetch < RT_FETCH_WALKS || !rt_is_guest((uint64_t)first))
		return;
	for (unsigned int i = 0; i < walks_done && i < WALKS_REMEMBERED; i++)
		if (walks_made[i].first == (uint64_t)first && walks_made[i].walk == walk)
			return;
	if (walks_done < WALKS_REMEMBERED) {
		walks_made[walks_done].first = (uint64_t)first;
		walks_made[walks_done].walk = walk;
	}
	walks_done++;
	rt_cache_init();
	/* The compiler's description (llview_rt.h), within the protocol's limits
	 * (footprints.py emits nothing else). */
	req.link = (u32)walk[0];
	req.nranges = (u16)walk[1];
	req.nderefs = (u16)walk[2];
	if (req.nranges > LLV_MAX_WALK_RANGES || req.nderefs > LLV_MAX_WALK_DEREFS)
		return;
	for (u16 i = 0; i < req.nranges; i++) {
		ranges[i].offset = walk[3 + 2 * i];
		ranges[i].len = (u32)walk[4 + 2 * i];
	}
	for (u16 i = 0; i < req.nderefs; i++) {
		const int *d = walk + 3 + 2 * req.nranges + 3 * i;

		derefs[i].pointer = d[0];
		derefs[i].offset = d[1];
		derefs[i].len = (u32)d[2];
		derefs[i].reserved = 0;
	}
	/* A list_head loop ends where it started: at the head, whose next
	 * pointer is at first (hlist heads are never reached: NULL ends those). */
	req.first = (uint64_t)first;
	req.stop = (uint64_t)first - req.link;
	while (nodes < WALK_NODES_MAX) {
		struct llv_walk_end end;

		req.max_nodes = LLV_MAX_WALK_NODES;
		int rc = rt_walk(&req, ranges, derefs, &end, keep_record, NULL);
		if (rc)
			rt_transport_fail(rc);
		rt_stats.walks++;
		rt_stats.walk_nodes += end.nodes;
		nodes += end.nodes;
		if ((end.reason != LLV_WALK_FULL && end.reason != LLV_WALK_LIMIT) || !end.nodes)
			break;
		req.first = end.next;
	}
}

/* Object footprints the code announced (__llview_footprint), most recent
 * first: a miss inside one of them fetches its fields. */
#define HINTS 32
static struct {
	uint64_t base;
	const int *footprint;
	int64_t lo, hi; /* the span of its ranges, from base */
} hints[HINTS];
static unsigned int hint_next;

/* Where each announcing site's objects were found: when a site's objects sit
 * closer together than a read-ahead block (creds in their slab, a table in
 * .data), one block of pages brings several of them for one round trip,
 * which beats a round trip per object however few its bytes: from then on
 * that site's misses take the page path. Kept for the life of the process
 * (the kernel's allocation pattern does not change between scans). */
#define SITES 64
#define SITE_BLOCKS 8
static struct {
	const int *footprint;
	uint64_t blocks[SITE_BLOCKS]; /* recent blocks fetched by footprint */
	unsigned int n;
	int packed;
} sites[SITES];

/* Whether the objects of this footprint site should be fetched by footprint;
 * notes the block of the one at addr. */
static int sparse_site(const int *footprint, uint64_t addr)
{
	size_t i = ((uintptr_t)footprint >> 2) % SITES;
	uint64_t block = (addr >> __LLVIEW_PAGE_SHIFT) / rt_read_ahead;

	if (sites[i].footprint != footprint) {
		sites[i].footprint = footprint;
		sites[i].n = 0;
		sites[i].packed = 0;
	}
	if (sites[i].packed)
		return 0;
	for (unsigned int k = 0; k < sites[i].n && k < SITE_BLOCKS; k++)
		if (sites[i].blocks[k] == block)
			return !(sites[i].packed = 1);
	sites[i].blocks[sites[i].n++ % SITE_BLOCKS] = block;
	return 1;
}

void __llview_footprint(const void *base, const int *footprint)
{
	unsigned int last = (hint_next + HINTS - 1) % HINTS;
	int n = footprint[0];

	if (rt_fetch < RT_FETCH_OBJECTS || !rt_is_guest((uint64_t)base) || n <= 0 ||
	    n > (int)LLV_MAX_WALK_RANGES)
		return;
	if (hints[last].base == (uint64_t)base && hints[last].footprint == footprint)
		return; /* announced again, e.g. in a loop */
	hints[hint_next].base = (uint64_t)base;
	hints[hint_next].footprint = footprint;
	hints[hint_next].lo = footprint[1];
	hints[hint_next].hi = (int64_t)footprint[2 * n - 1] + footprint[2 * n];
	hint_next = (hint_next + 1) % HINTS;
}

/* A miss at addr inside an announced footprint: fetches its fields (those not
 * cached yet) in one READ_RANGES and forgets the hint. Returns whether it
 * asked for anything. */
static int fetch_footprint(uint64_t addr)
{
	struct llv_range ranges[2 * LLV_MAX_WALK_RANGES];
	uint32_t n = 0;

	for (unsigned int k = 1; k <= HINTS; k++) {
		unsigned int h = (hint_next + HINTS - k) % HINTS;
		const int *fp = hints[h].footprint;

		if (!fp || addr < hints[h].base + hints[h].lo || addr >= hints[h].base + hints[h].hi)
			continue;
		for (int i = 0; i < fp[0]; i++) {
			uint64_t at = hints[h].base + fp[1 + 2 * i], end = at + (uint32_t)fp[2 + 2 * i];

			while (at < end && n < 2 * LLV_MAX_WALK_RANGES) { /* split at pages */
				uint64_t room = __LLVIEW_PAGE_SIZE - (at & RT_PAGE_MASK);
				uint64_t len = end - at < room ? end - at : room;
				const u8 *kept;

				if (rt_is_guest(at) && cached_run(at, &kept) < len) {
					ranges[n].addr = at;
					ranges[n].len = (u32)len;
					ranges[n].reserved = 0;
					n++;
				}
				at += len;
			}
		}
		hints[h].footprint = NULL;
		if (!sparse_site(fp, addr))
			return 0;
		break;
	}
	if (!n)
		return 0;
	int rc = rt_read_ranges(ranges, n, keep_record, NULL);
	if (rc)
		rt_transport_fail(rc);
	rt_stats.footprints++;
	return 1;
}

void rt_cache_init(void)
{
	if (pool)
		return;
	pool = mmap(NULL, (size_t)__LLVIEW_CACHE_SLOTS * __LLVIEW_PAGE_SIZE,
		    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pool == MAP_FAILED)
		rt_die("cannot reserve the page cache: %s", strerror(errno));
	parts_pool = mmap(NULL, (size_t)PARTS * __LLVIEW_PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (parts_pool == MAP_FAILED)
		rt_die("cannot reserve the footprint cache: %s", strerror(errno));
}

void llview_scan_begin(void)
{
	rt_cache_init();
	for (size_t i = 0; i < __LLVIEW_CACHE_SLOTS; i++) {
		__llview_cache[i].page = ~0UL;
		__llview_cache[i].data = NULL;
	}
	for (size_t i = 0; i < UNSERVED_SLOTS; i++)
		unserved[i].page = ~0UL;
	forget_all_parts();
	walks_done = 0;
	for (size_t i = 0; i < HINTS; i++)
		hints[i].footprint = NULL;
	__llview_read_budget = rt_max_reads;
}

void rt_budget_spent(uint32_t site)
{
	rt_die("read limit of %ld reads reached at %s (corrupted or cyclic list?); raise with "
	       "--max-reads",
	       rt_max_reads, rt_site_text(site));
}

/*
 * One request for the pages of [*next, stop) missing from the cache, at
 * most LLV_MAX_PAGES of them; *next moves past the pages looked at. Pages
 * outside [need_lo, need_hi) are fetched opportunistically (their failures
 * are ignored). Returns 0, or the first needed page the agent could not
 * serve (its status in *status).
 */
static uint64_t request_missing(uint64_t *next, uint64_t stop, uint64_t need_lo,
				uint64_t need_hi, uint32_t *status)
{
	uint64_t want[LLV_MAX_PAGES];
	u8 *out[LLV_MAX_PAGES];
	uint32_t statuses[LLV_MAX_PAGES];
	uint32_t count = 0, known_status = 0;
	uint64_t known_bad = 0, failed = 0;

	for (; *next < stop && count < LLV_MAX_PAGES; (*next)++) {
		uint64_t page = *next;
		struct unserved_page *u = unserved_slot(page);

		if (slot_of(page)->page == page)
			continue;
		if (u->page == page) { /* refused earlier in this scan: not asked again */
			if (page >= need_lo && page < need_hi) {
				known_bad = page;
				known_status = u->status;
				(*next)++;
				break;
			}
			continue;
		}
		/* The slot's old page is dropped before the fetch, so a failed
		 * fetch never leaves stale data behind. */
		slot_of(page)->page = ~0UL;
		want[count] = page << __LLVIEW_PAGE_SHIFT;
		out[count] = buffer_of(page);
		count++;
	}
	if (count) {
		int rc = rt_read_pages(want, count, out, statuses);

		if (rc)
			rt_transport_fail(rc);
	}
	/* Every page served is kept, also those after a failed one. */
	for (uint32_t i = 0; i < count; i++) {
		uint64_t got = want[i] >> __LLVIEW_PAGE_SHIFT;

		if (statuses[i] == LLV_OK) {
			rt_stats.pages_fetched++;
			slot_of(got)->data = (char *)out[i];
			slot_of(got)->page = got;
			continue;
		}
		unserved_slot(got)->page = got;
		unserved_slot(got)->status = statuses[i];
		if (!failed && got >= need_lo && got < need_hi) {
			*status = statuses[i];
			failed = got;
		}
	}
	if (!failed && known_bad) {
		*status = known_status;
		failed = known_bad;
	}
	return failed;
}

/*
 * Makes pages [first, first + n) of guest memory present in the cache,
 * fetching the missing ones in requests of at most LLV_MAX_PAGES. `extra`
 * more pages after them are fetched opportunistically in the same request
 * (their failures are ignored). Returns 0, or the page number of the first
 * of the n pages the agent could not serve (status in *status).
 */
static uint64_t fetch_pages(uint64_t first, uint64_t n, uint64_t extra, uint32_t *status)
{
	uint64_t page = first, end = first + n;

	rt_cache_init();
	while (page < end) {
		uint64_t failed = request_missing(&page, end + extra, first, end, status);

		if (failed)
			return failed;
	}
	return 0;
}

/* Fetches the missing pages of the aligned block [block, block + n) in
 * one request; only `needed` must be served. Returns fetch_pages's value. */
static uint64_t fetch_block(uint64_t block, uint64_t needed, uint64_t n, uint32_t *status)
{
	uint64_t next = block;

	if (n <= 1)
		return fetch_pages(needed, 1, 0, status);
	return request_missing(&next, block + n, needed, needed + 1, status);
}

/* Whether the IDS process has [page, page + 4 KiB) mapped (a native
 * pointer that is not: a corrupted pointer read from the guest). */
static int native_page_mapped(uint64_t page)
{
	unsigned char vec;

	return mincore((void *)(page << __LLVIEW_PAGE_SHIFT), __LLVIEW_PAGE_SIZE, &vec) == 0 ||
	       errno != ENOMEM;
}

/* Installs identity slots for the IDS's own pages under [addr, addr+size).
 * Returns 0, or the first address there that the IDS has not mapped. */
static uint64_t install_native(uint64_t addr, uint64_t size)
{
	uint64_t last = (addr + (size ? size - 1 : 0)) >> __LLVIEW_PAGE_SHIFT;

	for (uint64_t page = addr >> __LLVIEW_PAGE_SHIFT; page <= last; page++) {
		if (slot_of(page)->page == page)
			continue;
		if (!native_page_mapped(page))
			return page == addr >> __LLVIEW_PAGE_SHIFT ? addr : page << __LLVIEW_PAGE_SHIFT;
		slot_of(page)->data = (char *)(page << __LLVIEW_PAGE_SHIFT);
		slot_of(page)->page = page;
		rt_stats.native_pages++;
	}
	return 0;
}

static __attribute__((noreturn)) void unreadable(uint64_t addr, uint32_t status, uint32_t site)
{
	if (addr < RT_NULL_LIMIT)
		rt_die("NULL pointer dereference reading 0x%lx at %s", (unsigned long)addr,
		       rt_site_text(site));
	if (!rt_is_guest(addr))
		rt_die("cannot read address 0x%lx at %s: neither guest memory nor mapped in the IDS "
		       "(a corrupted pointer?)",
		       (unsigned long)addr, rt_site_text(site));
	rt_die("cannot read guest address 0x%016lx (%s) at %s", (unsigned long)addr,
	       rt_status_text(status), rt_site_text(site));
}

int rt_copy_in(void *dst, uint64_t addr, uint64_t n, uint64_t *bad, uint32_t *status)
{
	u8 *to = dst;

	if (!n)
		return 0;
	*status = LLV_UNMAPPED;
	*bad = addr;
	if (addr < RT_NULL_LIMIT || addr + n < addr)
		return -1;
	if (!rt_is_guest(addr)) {
		if ((*bad = install_native(addr, n)))
			return -1;
		memcpy(dst, (const void *)addr, n);
		return 0;
	}
	while (n) {
		uint64_t page = addr >> __LLVIEW_PAGE_SHIFT;
		uint64_t pages = ((addr & RT_PAGE_MASK) + n + RT_PAGE_MASK) >> __LLVIEW_PAGE_SHIFT;
		uint64_t in_page = __LLVIEW_PAGE_SIZE - (addr & RT_PAGE_MASK);
		const u8 *kept;

		if (in_page > n)
			in_page = n;
		if (pool && cached_run(addr, &kept) >= in_page) {
			/* all of this page's part is cached (a whole page or a footprint) */
			memcpy(to, kept, in_page);
			to += in_page;
			addr += in_page;
			n -= in_page;
			continue;
		}
		if (pages > LLV_MAX_PAGES)
			pages = LLV_MAX_PAGES;
		uint64_t failed = fetch_pages(page, pages, 0, status);
		if (failed) {
			*bad = failed == page ? addr : failed << __LLVIEW_PAGE_SHIFT;
			return -1;
		}
		for (uint64_t i = 0; i < pages && n; i++) {
			uint64_t off = addr & RT_PAGE_MASK;
			uint64_t chunk = __LLVIEW_PAGE_SIZE - off < n ? __LLVIEW_PAGE_SIZE - off : n;

			memcpy(to, slot_of(page + i)->data + off, chunk);
			to += chunk;
			addr += chunk;
			n -= chunk;
		}
	}
	return 0;
}

void rt_copy_in_or_die(void *dst, uint64_t addr, uint64_t n, uint32_t site)
{
	uint32_t status;
	uint64_t bad;

	if (rt_copy_in(dst, addr, n, &bad, &status))
		unreadable(bad, status, site);
}

long rt_read_string(uint64_t addr, char *dst, size_t cap)
{
	size_t len = 0;

	if (!cap)
		return -1;
	dst[0] = 0;
	if (addr < RT_NULL_LIMIT)
		return -1;
	while (len + 1 < cap) {
		/* Read up to the end of the current page at a time. */
		uint64_t room = __LLVIEW_PAGE_SIZE - (addr & RT_PAGE_MASK);
		uint64_t want = cap - 1 - len < room ? cap - 1 - len : room;
		uint32_t status;
		uint64_t bad;
		const u8 *kept;
		uint64_t have = pool ? cached_run(addr, &kept) : 0;

		if (have) {
			/* What a footprint brought may hold the whole string: a
			 * page is fetched only when it does not. */
			if (have > want)
				have = want;
			memcpy(dst + len, kept, have);
			char *nul = memchr(dst + len, 0, have);

			if (nul)
				return nul - dst;
			len += have;
			addr += have;
			continue;
		}
		if (rt_copy_in(dst + len, addr, want, &bad, &status)) {
			if (!len)
				return -1;
			break;
		}
		char *nul = memchr(dst + len, 0, want);

		if (nul)
			return nul - dst;
		len += want;
		addr += want;
	}
	dst[len] = 0;
	return (long)len;
}

static void *bounce(uint64_t size)
{
	if (size <= sizeof(bounce_small))
		return bounce_small;
	if (size > bounce_big_size) {
		free(bounce_big);
		bounce_big = aligned_alloc(64, (size + 63) & ~63UL);
		if (!bounce_big)
			rt_die("out of memory for a %lu-byte read", (unsigned long)size);
		bounce_big_size = size;
	}
	return bounce_big;
}

void *__llview_load_miss(const void *p, __llview_u64 size, __llview_u32 site)
{
	uint64_t addr = (uint64_t)p;
	uint64_t off = addr & RT_PAGE_MASK;
	uint32_t status = LLV_OK;

	rt_stats.misses++;
	if (__llview_read_budget < 0)
		rt_budget_spent(site);
	if (addr < RT_NULL_LIMIT)
		unreadable(addr, LLV_UNMAPPED, site);
	if (!rt_is_guest(addr)) {
		uint64_t bad = install_native(addr, size);

		if (bad)
			unreadable(bad, LLV_UNMAPPED, site);
		return (void *)p;
	}
	if (addr + size < addr)
		unreadable(addr, LLV_NONCANONICAL, site);
	if (off + size <= __LLVIEW_PAGE_SIZE) {
		uint64_t page = addr >> __LLVIEW_PAGE_SHIFT;
		uint64_t block = page & ~(uint64_t)(rt_read_ahead - 1);
		const u8 *kept;

		if (pool && cached_run(addr, &kept) >= size) {
			rt_stats.partial_hits++;
			return (void *)kept;
		}
		if (pool && fetch_footprint(addr) && cached_run(addr, &kept) >= size) {
			rt_stats.partial_hits++;
			return (void *)kept;
		}

		if (rt_read_ahead == 1 && off + size > __LLVIEW_PAGE_SIZE - READ_AHEAD_TAIL) {
			if (fetch_pages(page, 1, 1, &status))
				unreadable(addr, status, site);
		} else if (fetch_block(block, page, rt_read_ahead, &status)) {
			unreadable(addr, status, site);
		}
		return slot_of(page)->data + off;
	}
	/* Straddles a page boundary: assemble a copy. */
	rt_stats.straddles++;
	void *buf = bounce(size);
	uint64_t bad;
	if (rt_copy_in(buf, addr, size, &bad, &status))
		unreadable(bad, status, site);
	return buf;
}

void __llview_store_refused(const void *addr, __llview_u32 site)
{
	rt_die("store to guest memory refused at %s (address 0x%016lx)", rt_site_text(site),
	       (unsigned long)addr);
}
