/*
 * rt_internal.h - what the runtime's own files share and nothing else sees.
 *
 * Every declaration here is hidden: the Makefile combines the runtime into
 * one relocatable object and localises hidden symbols, so the archive's
 * exported names are exactly the ones the compiler may rely on (it treats
 * every defined global symbol of libllview_rt.a as "supplied by llview").
 */
#ifndef LLVIEW_RT_INTERNAL_H
#define LLVIEW_RT_INTERNAL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "llview_proto.h"
#include "llview_rt.h"

#pragma GCC visibility push(hidden)

#define RT_PAGE_MASK (__LLVIEW_PAGE_SIZE - 1)
#define RT_GUEST_BIT (1UL << 63)
#define RT_NULL_LIMIT 0x10000UL /* lower-half addresses below this are NULL derefs */
#define RT_DEFAULT_MAX_READS 10000000L
#define RT_DEFAULT_TIMEOUT 5
#define RT_DEFAULT_READ_AHEAD 8 /* an order-3 slab: 3 task_structs on 6.1 amd64 */
#define RT_NO_SITE 0xffffffffu /* a read made by the runtime itself, not at an IDS site */

static inline int rt_is_guest(uint64_t addr)
{
	return (addr & RT_GUEST_BIT) != 0;
}

/* ---- transport (transport_tcp.c, transport_shm.c) ---- */

/* One way of reaching an agent, picked by the --agent URL's scheme. Every
 * call returns 0 or a negative enum llv_error / llv_wire_error; a message
 * the agent sent with LLV_REP_ERROR is kept in rt_transport_error_text. */
#define RT_E_SEE_MESSAGE (-1000) /* connect failed locally; err says why */

struct rt_transport_ops {
	const char *scheme; /* "tcp", "shm" */
	int (*connect)(const char *where, const u8 key[LLV_KEY_LEN], int timeout_s, char *err,
		       size_t errlen);
	/* Seals and sends req_len bytes of request plaintext, waits for the
	 * reply and opens it: *reply (valid until the next call) holds *len
	 * bytes of plaintext. Counts requests and bytes in rt_stats. */
	int (*exchange)(const u8 *req, u32 req_len, const u8 **reply, u32 *len);
	void (*close)(void);
};

extern const struct rt_transport_ops rt_tcp_transport;
extern const struct rt_transport_ops rt_shm_transport;

/* The requests, over rt_transport (messages.c). Each returns 0 or a
 * negative code, as the transports do. rt_read_pages reads n (<=
 * LLV_MAX_PAGES) pages: out[i] gets the page of addrs[i] when statuses[i] ==
 * LLV_OK; rt_lookup_symbols sets addrs[i] = 0 for an unknown name. */
int rt_read_pages(const uint64_t *addrs, uint32_t n, u8 *const *out, uint32_t *statuses);
int rt_lookup_symbols(const char *const *names, uint32_t n, uint64_t *addrs);
int rt_info(struct llv_info *info);
/* SYMBOLIZE n (<= LLV_MAX_SYMBOLIZE) addresses: syms[i] and names[i] ("" and
 * start 0 where addrs[i] is not in the core kernel's image). */
int rt_symbolize(const uint64_t *addrs, uint32_t n, struct llv_symbol *syms,
		 char (*names)[LLV_SYM_NAME_MAX]);

/* READ_RANGES and WALK hand every record of the reply to a callback: data
 * (rec->len bytes) is NULL when rec->status is not LLV_OK. rt_read_ranges
 * reads n (<= LLV_MAX_RANGES) ranges; rt_walk makes one WALK request and
 * says in *end where and why it stopped. */
typedef void (*rt_record_fn)(void *arg, const struct llv_range_data *rec, const u8 *data);
int rt_read_ranges(const struct llv_range *ranges, uint32_t n, rt_record_fn got, void *arg);
int rt_walk(const struct llv_walk *walk, const struct llv_walk_range *ranges,
	    const struct llv_walk_deref *derefs, struct llv_walk_end *end, rt_record_fn got,
	    void *arg);

struct rt_stats {
	uint64_t requests;
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t pages_fetched;
	uint64_t misses;        /* calls into the miss path */
	uint64_t native_pages;  /* identity slots installed for IDS memory */
	uint64_t straddles;     /* reads that crossed a page boundary */
	uint64_t walks;         /* WALK requests */
	uint64_t footprints;    /* READ_RANGES requests for object footprints */
	uint64_t walk_nodes;    /* list nodes the agent followed */
	uint64_t footprint_bytes; /* guest bytes received in range records */
	uint64_t partial_hits;  /* misses served from bytes of a footprint */
};
extern struct rt_stats rt_stats;

extern const struct rt_transport_ops *rt_transport;
extern const char *rt_agent_url;
extern int rt_timeout_s;
extern char rt_transport_error_text[256];

/* Ends the process (status 2) with "error: agent at URL: ..." for code. */
__attribute__((noreturn)) void rt_transport_fail(int code);

/* ---- cache and guest reads (cache.c) ---- */

extern long rt_max_reads;
extern unsigned int rt_read_ahead;
/* What a miss fetches (--fetch): page blocks only; also the list walks the
 * compiler found, each in one request (the default); also object footprints
 * instead of the block around an object. */
enum rt_fetch { RT_FETCH_PAGES, RT_FETCH_WALKS, RT_FETCH_OBJECTS };
extern enum rt_fetch rt_fetch;

/* The read budget is spent: the status-2 error naming the site. */
__attribute__((noreturn)) void rt_budget_spent(uint32_t site);

/* Copies n bytes at addr (guest or IDS memory) into dst. Returns 0, or -1
 * with the first address that could not be read in *bad and why in
 * *status (addresses below 64 KiB and IDS addresses it has not mapped count
 * as LLV_UNMAPPED). Transport failures end the process. */
int rt_copy_in(void *dst, uint64_t addr, uint64_t n, uint64_t *bad, uint32_t *status);

/* Like rt_copy_in, but ends the process with the usual error naming the
 * address and site when something cannot be read. */
void rt_copy_in_or_die(void *dst, uint64_t addr, uint64_t n, uint32_t site);

/* Reads a NUL-terminated string at addr into dst (capacity cap, always
 * terminated, at most cap - 1 bytes). Returns its length, or -1 when the
 * first byte cannot be read or addr is NULL-ish; a string cut by an
 * unreadable page ends there. */
long rt_read_string(uint64_t addr, char *dst, size_t cap);

void rt_cache_init(void);

/* ---- errors (errors.c) ---- */

/* "ids.c:12:5" for a site index, or "an llview library call" for
 * RT_NO_SITE; points to a static buffer. */
const char *rt_site_text(uint32_t site);
__attribute__((noreturn, format(printf, 1, 2))) void rt_die(const char *fmt, ...);
const char *rt_status_text(uint32_t status);

/* ---- output (output.c, format.c) ---- */

/* A growable output buffer. */
struct rt_buf {
	char *data;
	size_t len, cap;
};
void rt_buf_put(struct rt_buf *b, const char *s, size_t n);
/* One character: inline, as output is built a character at a time. */
static inline void rt_buf_putc(struct rt_buf *b, char c)
{
	if (b->len + 2 <= b->cap) { /* room for c and the NUL rt_buf_put keeps */
		b->data[b->len++] = c;
		b->data[b->len] = 0;
	} else {
		rt_buf_put(b, &c, 1);
	}
}
void rt_buf_free(struct rt_buf *b);

/* Formats with the kernel's printk format language; %s and some %p
 * extensions read guest memory through the cache. */
void rt_vformat(struct rt_buf *b, const char *fmt, va_list ap);

/* "name+0x1c/0x80" for a core-kernel address (symbols.c), or NULL. */
const char *rt_symbol_text(uint64_t addr, char *buf, size_t cap);

extern int rt_json_mode;
extern const char *rt_program; /* argv[0]'s base name: "program" in alerts */
extern uint64_t rt_alerts;
void rt_output_finish(void);
/* Drops an unfinished record or alert (a scan that ended in an error). */
void rt_output_discard(void);

/* ---- --changes (changes.c) ---- */

extern int rt_changes_mode;
/* A finished record (line: len bytes with its '\n'; JSON's "change" goes at
 * offset mark) identified by kind and key; printed at the scan's end if it
 * is new, changed or (later) gone. */
void rt_changes_record(const char *kind, const char *key, size_t key_len, const char *line,
		       size_t len, size_t mark);
/* Whether an alert line is to be printed: not raised by the previous scan
 * nor yet by this one. */
int rt_changes_alert(const char *line, size_t len);
/* Ends a scan: ok prints the differences to the previous one and makes this
 * scan the previous one (counts in new/gone/changed); a failed scan's
 * records are dropped. */
void rt_changes_scan_end(int ok, unsigned long *new_n, unsigned long *gone_n,
			 unsigned long *changed_n);

/* ---- long-lived runs: --interval (loop.c) ---- */

/* While set (a scan or a connection attempt under --interval), rt_die
 * keeps its message in rt_last_error and longjmps to rt_loop_jmp instead
 * of ending the process. */
extern volatile int rt_loop_armed;
extern jmp_buf rt_loop_jmp;
extern char rt_last_error[1024];
/* Set by rt_transport_fail: the connection to the agent is unusable. */
extern int rt_transport_lost;
/* --interval, --count, --changes: whether opt takes a value, and handling
 * it (returns 0 when opt is not one of them). */
int rt_loop_takes_value(const char *opt);
int rt_loop_option(const char *opt, const char *value);
/* Whether --interval was given (after checking the options go together). */
int rt_loop_wanted(void);
/* Runs the scans; returns the exit status. prepare checks the guest and
 * resolves the IDS's kernel symbols (again after each reconnection). */
int rt_loop_run(const char *where, u8 key[LLV_KEY_LEN], void (*prepare)(void), int want_stats);
/* Forgets every symbolize answer (a reconnection may reach a rebooted guest). */
void rt_symbols_forget(void);

#pragma GCC visibility pop

#endif /* LLVIEW_RT_INTERNAL_H */
