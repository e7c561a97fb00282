/*
 * test_ids.c - a hand-made "IDS" for the runtime tests: it does by hand
 * what the compiler passes do (site and kernel-symbol tables, loads through
 * __llview_load, string calls through __llview_*) and picks a scenario from
 * the LLVIEW_TEST_SCENARIO environment variable. tests/test_runtime.py runs
 * it against a Python test-double agent serving synthetic guest pages.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "fastpath.c" /* the inline hit path, as the driver inlines it */
#include "llview_rt.h"
#include <llview/ids.h>

int _printk(const char *fmt, ...);
int __llview_snprintf(char *buf, unsigned long size, const char *fmt, ...);
long strscpy(char *dst, const char *src, unsigned long size);
long copy_from_kernel_nofault(void *dst, const void *src, unsigned long size);

const char __llview_kernel_release[] = "6.1.0-test";

const struct __llview_site __llview_sites[] = {
	{ "ids.c", 10, 3 },  /* 0: ordinary reads */
	{ "ids.c", 42, 7 },  /* 1: the unmapped read */
	{ "ids.c", 50, 9 },  /* 2: the NULL read */
	{ "ids.c", 60, 11 }, /* 3: the cyclic walk */
	{ "ids.c", 70, 13 }, /* 4: the store */
};
const __llview_u32 __llview_nsites = 5;

struct __llview_ksym __llview_ksyms[] = {
	{ "linux_banner", 0 },
	{ "test_list", 0 },
	{ "test_cycle", 0 },
	{ "test_counter", 0 },
	{ "test_page_end", 0 },
};
const __llview_u32 __llview_nksyms = 5;

#define SYM(i) ((const char *)__llview_ksyms[i].addr)
#define LOAD(type, addr, site) (*(const type *)__llview_load((const void *)(addr), sizeof(type), (site)))

/* The guest's list nodes (see make_guest in test_runtime.py). */
struct node {
	unsigned long next;
	unsigned long value;
	char name[16];
};

static int walk_list(void)
{
	unsigned long node = LOAD(unsigned long, SYM(1), 0);

	while (node) {
		char name[16];
		const struct node *n = (const struct node *)node;

		__llview_memcpy(name, n->name, sizeof(name), 0);
		llview_record_begin("node");
		llview_field_hex("addr", node);
		/* an aggregate-sized read through the fast path (may straddle) */
		llview_field_uint("value", LOAD(unsigned long, &n->value, 0));
		llview_field_int("neg", -(long long)LOAD(unsigned long, &n->value, 0));
		llview_field_str("name", n->name); /* a guest pointer */
		llview_field_str("copy", name);    /* a local copy */
		llview_record_end();
		node = LOAD(unsigned long, &n->next, 0);
	}
	return 0;
}

static int printk_formats(void)
{
	static const unsigned char ip[4] = { 192, 168, 1, 2 };
	static const unsigned char mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };

	_printk("\0016hello %d %i %u %x %lx %lu %llx %lld %zu %c %s %%\n", -5, 7, 4000000000u,
		255, 0xdeadbeefcafeUL, ULONG_MAX, 0x1234567890ULL, -1234567890123LL, (size_t)42, 'Z',
		"str");
	_printk("\0014[%5d] [%-5d] [%05d] [%+d] [%#x] [%#o] [%8.3s] [%-8s] [%.*s] [%X]\n", 42, 42,
		42, 42, 255, 8, "abcdef", "ab", 2, "xyz", 0xabcU);
	_printk("%hhd %hu %ld %5.2d\n", 300, 70000, -1L, 7);
	_printk("banner: %s", SYM(0));
	_printk("short: [%.5s] [%10.5s]\n", SYM(0), SYM(0));
	_printk("null: %s bad: %s wild: %s\n", (char *)0, (char *)0xffffffff90000000UL,
		(char *)0x0000100000001230UL);
	_printk("ptr: %p %px %pK %pS\n", (void *)0xffff888012345678UL, (void *)0xffff888012345678UL,
		(void *)0xffff888012345678UL, (void *)0xffffffff81000000UL);
	_printk("sym: %pS %ps\n", (char *)SYM(0) + 4, (char *)SYM(0) + 4);
	_printk("net: %pI4 %pM %pMR %*ph %*phC %*phN\n", ip, mac, mac, 3, mac, 2, mac, 4, mac);
	_printk("\0016a");
	_printk("\001c" "b\n");
	_printk("\0016c");
	_printk("\0016d\n");
	char buf[16];
	int n = __llview_snprintf(buf, sizeof(buf), "%s|%d", SYM(0), 12345);
	_printk("snprintf: %d [%s]\n", n, buf);
	return 0;
}

static int strings(void)
{
	const char *banner = SYM(0);
	unsigned long node = LOAD(unsigned long, SYM(1), 0);
	const char *name = ((const struct node *)node)->name;
	char copy[8];

	_printk("strlen %lu\n", __llview_strlen(banner, 0));
	_printk("strnlen %lu\n", __llview_strnlen(banner, 5, 0));
	_printk("strcmp %d %d %d\n", __llview_strcmp(name, "first", 0) == 0,
		__llview_strcmp(name, "firsu", 0) < 0, __llview_strcmp("firss", name, 0) < 0);
	_printk("strncmp %d %d\n", __llview_strncmp(banner, "Linux version", 13, 0),
		__llview_strncmp(banner, "Linux versioN", 13, 0) > 0);
	_printk("memcmp %d %d\n", __llview_memcmp(banner, "Linux", 5, 0),
		__llview_memcmp(banner, "Linus", 5, 0) > 0);
	long r = strscpy(copy, banner, sizeof(copy));
	_printk("strscpy %ld [%s]\n", r, copy);
	r = strscpy(copy, name, sizeof(copy));
	_printk("strscpy %ld [%s]\n", r, copy);
	/* A string that crosses a page boundary in the guest. */
	_printk("page_end %lu [%s]\n", __llview_strlen(SYM(4), 0), SYM(4));
	return 0;
}

static int cache_behaviour(void)
{
	const char *banner = SYM(0);
	unsigned long sum = 0;

	/* Many reads of one page: one fetch. */
	for (int i = 0; i < 1000; i++)
		sum += LOAD(unsigned char, banner + (i % 40), 0);
	/* A read near a page end reads ahead into the next page ... */
	const char *page_end = SYM(4);
	sum += LOAD(unsigned char, page_end, 0);
	/* ... so reading the next page needs no request. */
	sum += LOAD(unsigned char, page_end + 64, 0);
	_printk("sum %lu\n", sum);
	return 0;
}

static int straddle(void)
{
	/* test_page_end points 6 bytes before a page boundary. */
	const char *p = SYM(4);
	unsigned long v = LOAD(unsigned long, p, 0);
	struct big {
		char bytes[6000];
	};
	const struct big *b = __llview_load(p - 3000, sizeof(struct big), 0);
	unsigned long sum = 0;

	for (int i = 0; i < 6000; i++)
		sum += (unsigned char)b->bytes[i];
	_printk("straddle %016lx big %lu\n", v, sum);
	return 0;
}

static int freshness(void)
{
	const char *counter = SYM(3);
	unsigned long first = LOAD(unsigned long, counter, 0);
	unsigned long again = LOAD(unsigned long, counter, 0);

	llview_scan_begin();
	unsigned long next_scan = LOAD(unsigned long, counter, 0);
	_printk("counter %lu %lu %lu\n", first, again, next_scan);
	return 0;
}

static int native(void)
{
	static unsigned long table[2048];
	unsigned long sum = 0;

	for (int i = 0; i < 2048; i++)
		table[i] = (unsigned long)i * 3;
	for (int i = 0; i < 2048; i++)
		sum += LOAD(unsigned long, &table[i], 0);
	const char *text = "native text";
	_printk("native %lu %lu %s\n", sum, __llview_strlen(text, 0), text);
	return 0;
}

static int cycle(void)
{
	unsigned long node = LOAD(unsigned long, SYM(2), 3);
	unsigned long steps = 0;

	while (node) {
		node = LOAD(unsigned long, node, 3);
		steps++;
	}
	_printk("steps %lu\n", steps);
	return 0;
}

/* What the footprints pass would emit for walk_list: the link at +0, the
 * whole node (next, value, name) as one range. */
static const int node_walk[] = { 0, 1, 0, 0, (int)sizeof(struct node) };
/* ... and an object footprint of a node: value and name. */
static const int node_fields[] = { 2, 8, 8, 16, 16 };

static int footprint_object(void)
{
	unsigned long node = LOAD(unsigned long, SYM(1), 0);
	const struct node *n = (const struct node *)node;

	__llview_footprint(n, node_fields);
	_printk("value %lu\n", LOAD(unsigned long, &n->value, 0));
	_printk("name %s\n", n->name);
	return 0;
}

/* Records whose first field changes from run to run (under --interval) and
 * whose "name" does not; two share a name. */
static int keyed(int declare)
{
	static int runs;
	static const char *const names[] = { "a", "a", "b" };

	runs++;
	if (declare)
		llview_record_key("name");
	for (int i = 0; i < 3; i++) {
		llview_record_begin("item");
		llview_field_int("run", runs);
		llview_field_str("name", names[i]);
		llview_field_int("i", i);
		llview_record_end();
	}
	return 0;
}

int __llview_ids_main(void)
{
	const char *scenario = getenv("LLVIEW_TEST_SCENARIO");

	if (!scenario)
		return 99;
	if (!strcmp(scenario, "walk"))
		return walk_list();
	if (!strcmp(scenario, "footprint_walk")) {
		__llview_walk(SYM(1), node_walk, 0);
		return walk_list();
	}
	if (!strcmp(scenario, "footprint_object"))
		return footprint_object();
	if (!strcmp(scenario, "footprint_cycle")) {
		__llview_walk(SYM(2), node_walk, 3);
		return cycle();
	}
	if (!strcmp(scenario, "printk"))
		return printk_formats();
	if (!strcmp(scenario, "strings"))
		return strings();
	if (!strcmp(scenario, "cache"))
		return cache_behaviour();
	if (!strcmp(scenario, "straddle"))
		return straddle();
	if (!strcmp(scenario, "keyed") || !strcmp(scenario, "unkeyed"))
		return keyed(!strcmp(scenario, "keyed"));
	if (!strcmp(scenario, "fresh"))
		return freshness();
	if (!strcmp(scenario, "native"))
		return native();
	if (!strcmp(scenario, "cycle"))
		return cycle();
	if (!strcmp(scenario, "unmapped")) {
		_printk("before\n");
		return (int)LOAD(unsigned long, 0xffffffff90000008UL, 1);
	}
	if (!strcmp(scenario, "null"))
		return (int)LOAD(unsigned long, (void *)0x18, 2);
	if (!strcmp(scenario, "wild"))
		return (int)LOAD(unsigned long, (void *)0x0000100000001230UL, 0);
	if (!strcmp(scenario, "uninstrumented")) /* a guest read the passes missed */
		return (int)*(volatile unsigned long *)SYM(0);
	if (!strcmp(scenario, "store")) {
		__llview_store_check(SYM(0), 4);
		return 0;
	}
	if (!strcmp(scenario, "memset")) {
		__llview_memset((void *)SYM(0), 0, 4, 4);
		return 0;
	}
	if (!strcmp(scenario, "store_local")) {
		char local[4];

		__llview_store_check(local, 4);
		__llview_memset(local, 'x', 3, 4);
		local[3] = 0;
		_printk("%s\n", local);
		return 0;
	}
	if (!strcmp(scenario, "alert")) {
		llview_alert("suspicious task %s pid %d\n", SYM(0), 1234);
		return 0;
	}
	if (!strcmp(scenario, "nofault")) {
		/* The banner and list pages are mapped; the pages around them are not. */
		static char buf[2 * 4096];
		const char *base = (const char *)((unsigned long)SYM(0) & ~4095UL);
		long before = copy_from_kernel_nofault(buf, base - 4096, sizeof(buf));
		long kept = copy_from_kernel_nofault(buf, base, 4096);
		long after = copy_from_kernel_nofault(buf, base + 4096, sizeof(buf));
		long again = copy_from_kernel_nofault(buf, base - 4096, 8);

		llview_scan_begin();
		_printk("%ld %ld %ld %ld %ld\n", before, kept, after, again,
			copy_from_kernel_nofault(buf, base - 4096, 8));
		return 0;
	}
	if (!strcmp(scenario, "structured_alert")) {
		llview_alert_begin("syscall_table_hook");
		llview_field_uint("number", 62);
		llview_field_str("banner", SYM(0)); /* evidence read from the guest */
		llview_alert_end("entry %d points to %s", 62, "unknown memory");
		/* An alert left open by a record is ended, not merged into it. */
		llview_alert_begin("unfinished");
		llview_field_int("n", 1);
		llview_record_begin("after");
		llview_field_int("m", 2);
		llview_record_end();
		return 0;
	}
	if (!strcmp(scenario, "exit")) { /* exit() from the IDS: the open record is still written */
		llview_record_begin("last");
		llview_field_int("n", 7);
		exit(4);
	}
	if (!strcmp(scenario, "warn")) { /* what WARN(1, ...) in a kernel header does */
		void __warn_printk(const char *fmt, ...);

		_printk("before\n");
		__warn_printk("bad state %d\n", 5);
		__asm__ volatile("ud2");
	}
	if (!strcmp(scenario, "status3"))
		return 3;
	return 98;
}
