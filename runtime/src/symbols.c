/*
 * symbols.c - address -> core-kernel symbol, for llview_symbolize() and
 * printk's %pS/%ps: SYMBOLIZE requests to the agent (which answers from the
 * running kernel's own kallsyms), batched by llview_symbolize_prefetch and
 * kept for the life of the process (the core kernel's symbols do not move
 * while it runs); and name -> address at run time (llview_lookup_names,
 * kallsyms_lookup_name) over SYMS, as the IDS's own kernel symbols are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llview/ids.h>

#include "rt_internal.h"

struct known_symbol {
	uint64_t addr; /* the address asked about; 0 = empty entry */
	uint64_t start, size;
	const char *name;
};

static struct known_symbol *known;
static size_t known_cap, known_used;

static size_t slot_index(uint64_t addr)
{
	return (size_t)((addr * 0x9e3779b97f4a7c15ull) >> 20) & (known_cap - 1);
}

static struct known_symbol *find(uint64_t addr)
{
	if (!known_cap)
		return NULL;
	for (size_t i = slot_index(addr);; i = (i + 1) & (known_cap - 1)) {
		if (known[i].addr == addr)
			return &known[i];
		if (!known[i].addr)
			return NULL;
	}
}

static void grow(void)
{
	struct known_symbol *old = known;
	size_t old_cap = known_cap;

	known_cap = known_cap ? known_cap * 2 : 1024;
	known = calloc(known_cap, sizeof(*known));
	if (!known)
		rt_die("out of memory for %zu symbol answers", known_cap);
	for (size_t i = 0; i < old_cap; i++) {
		if (!old[i].addr)
			continue;
		size_t j = slot_index(old[i].addr);

		while (known[j].addr)
			j = (j + 1) & (known_cap - 1);
		known[j] = old[i];
	}
	free(old);
}

static void remember(uint64_t addr, const struct llv_symbol *sym, const char *name)
{
	if (2 * (known_used + 1) > known_cap)
		grow();
	size_t i = slot_index(addr);

	while (known[i].addr && known[i].addr != addr)
		i = (i + 1) & (known_cap - 1);
	if (!known[i].addr)
		known_used++;
	known[i].addr = addr;
	known[i].start = sym->start;
	known[i].size = sym->start ? sym->size : 0;
	known[i].name = sym->start ? strdup(name) : "";
	if (!known[i].name)
		rt_die("out of memory for a symbol name");
}

void rt_symbols_forget(void)
{
	for (size_t i = 0; i < known_cap; i++)
		if (known[i].addr && known[i].start)
			free((char *)known[i].name);
	free(known);
	known = NULL;
	known_cap = known_used = 0;
}

void llview_symbolize_prefetch(const unsigned long *addrs, unsigned long n)
{
	static struct llv_symbol syms[LLV_MAX_SYMBOLIZE];
	static char names[LLV_MAX_SYMBOLIZE][LLV_SYM_NAME_MAX];
	uint64_t want[LLV_MAX_SYMBOLIZE];
	unsigned long i = 0;

	while (i < n) {
		uint32_t count = 0;

		/* Only addresses not yet answered (NULL never is a symbol). */
		for (; i < n && count < LLV_MAX_SYMBOLIZE; i++) {
			uint64_t a = addrs[i];
			int dup = 0;

			for (uint32_t k = 0; k < count && !dup; k++)
				dup = want[k] == a;
			if (a && !dup && !find(a))
				want[count++] = a;
		}
		if (!count)
			continue;
		int rc = rt_symbolize(want, count, syms, names);
		if (rc)
			rt_transport_fail(rc);
		for (uint32_t k = 0; k < count; k++)
			remember(want[k], &syms[k], names[k]);
	}
}

int llview_symbolize(unsigned long addr, struct llview_symbol *sym)
{
	struct known_symbol *k = addr ? find(addr) : NULL;

	if (addr && !k) {
		llview_symbolize_prefetch(&addr, 1);
		k = find(addr);
	}
	sym->start = k ? k->start : 0;
	sym->size = k ? k->size : 0;
	sym->name = k ? k->name : "";
	return sym->start ? 0 : -1;
}

const char *rt_symbol_text(uint64_t addr, char *buf, size_t cap)
{
	struct llview_symbol sym;

	if (llview_symbolize(addr, &sym))
		return NULL;
	snprintf(buf, cap, "%s+0x%lx/0x%lx", sym.name, (unsigned long)(addr - sym.start),
		 sym.size);
	return buf;
}

void llview_lookup_names(const char *const *names, unsigned long n, unsigned long *addrs)
{
	if (!n)
		return;
	for (unsigned long i = 0; i < n; i++)
		if (rt_is_guest((uint64_t)names[i]))
			rt_die("llview_lookup_names: name %lu is in guest memory, not the IDS's", i);
	_Static_assert(sizeof(unsigned long) == sizeof(uint64_t), "addresses are u64");
	int rc = rt_lookup_symbols(names, (uint32_t)n, (uint64_t *)addrs);
	if (rc)
		rt_transport_fail(rc);
}

unsigned long kallsyms_lookup_name(const char *name)
{
	unsigned long addr = 0;

	llview_lookup_names(&name, 1, &addr);
	return addr;
}
