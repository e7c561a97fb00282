// SPDX-License-Identifier: GPL-2.0
/*
 * requests.c - the in-kernel agent's memory source for the request core
 * shared with the host agent (protocol/llview_core.c, which decodes, checks
 * and answers every request): kernel virtual memory backed by RAM, copied
 * without faulting; addresses from this kernel's own kallsyms; the
 * core-kernel symbol holding an address; INFO (release, KASLR offset,
 * direct-map base, paging levels).
 */
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/ioport.h>
#include <linux/kprobes.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/utsname.h>
#include <asm/page.h>
#include <asm/pgtable.h>
#include <asm/pgtable_types.h>

#include "agent.h"
#include "llview_core.h"

/* kallsyms_lookup_name is no longer exported (5.7+); a kprobe on it reveals its address. */
typedef unsigned long (*kallsyms_lookup_name_fn)(const char *name);
static kallsyms_lookup_name_fn lookup_name;
/* Where _text is: kaslr_offset() needs it, and modules cannot link against it. */
static unsigned long text_start;
/* SYMBOLIZE answers for the core kernel's image, _stext.._end, as the host agent does. */
typedef const char *(*kallsyms_lookup_fn)(unsigned long addr, unsigned long *size,
					  unsigned long *offset, char **modname, char *namebuf);
static kallsyms_lookup_fn lookup_addr;
static unsigned long image_start, image_end;

int llv_symbols_init(void)
{
	struct kprobe probe = { .symbol_name = "kallsyms_lookup_name" };
	int rc = register_kprobe(&probe);

	if (rc < 0) {
		pr_err("llview_agent: cannot locate kallsyms_lookup_name (kprobe: %d)\n", rc);
		return rc;
	}
	lookup_name = (kallsyms_lookup_name_fn)probe.addr;
	unregister_kprobe(&probe);
	text_start = lookup_name ? lookup_name("_text") : 0;
	if (!text_start) {
		pr_err("llview_agent: kallsyms does not know _text\n");
		return -ENOENT;
	}
	lookup_addr = (kallsyms_lookup_fn)lookup_name("kallsyms_lookup");
	image_start = lookup_name("_stext");
	image_end = lookup_name("_end");
	if (!lookup_addr || !image_start || image_end <= image_start) {
		pr_err("llview_agent: kallsyms does not know kallsyms_lookup, _stext or _end\n");
		return -ENOENT;
	}
	return 0;
}

static unsigned int paging_levels(void)
{
	return pgtable_l5_enabled() ? 5 : 4;
}

/* Status of one READ address before touching it; LLV_OK means "try it". */
static u32 address_status(u64 addr)
{
	unsigned int bits = paging_levels() == 5 ? 57 : 48;
	s64 extended = (s64)(addr << (64 - bits)) >> (64 - bits);

	if ((u64)extended != addr)
		return LLV_NONCANONICAL;
	if (!(addr >> 63))
		return LLV_USER_ADDRESS;
	return LLV_OK;
}

/*
 * Whether the page at a canonical kernel address is mapped, and to RAM. Only
 * RAM is read: a mapping of device memory (ioremap, fixmap) could have side
 * effects when read, so it gets LLV_OUTSIDE_RAM, as the host agent answers
 * for an address that translates outside guest RAM.
 */
static u32 backing_status(unsigned long addr)
{
	unsigned int level;
	pte_t *pte = lookup_address(addr, &level);
	unsigned long pfn;

	if (!pte || !pte_present(*pte))
		return LLV_UNMAPPED;
	switch (level) {
	case PG_LEVEL_1G:
		pfn = pud_pfn(*(pud_t *)pte) + ((addr & ~PUD_MASK) >> PAGE_SHIFT);
		break;
	case PG_LEVEL_2M:
		pfn = pmd_pfn(*(pmd_t *)pte) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
		break;
	default:
		pfn = pte_pfn(*pte);
	}
	return page_is_ram(pfn) ? LLV_OK : LLV_OUTSIDE_RAM;
}

/* ---- the memory source of the request core (protocol/llview_core.c) ---- */

/* len bytes at addr, within one page: only canonical kernel addresses mapped
 * to RAM are read, and the copy itself must not fault either (the page
 * tables may change under us): a fault it catches is an unmapped page,
 * never an oops. */
static u32 src_read(void *ctx, u64 addr, u32 len, u8 *out)
{
	u32 st = address_status(addr);

	if (st == LLV_OK)
		st = backing_status(addr);
	if (st == LLV_OK && copy_from_kernel_nofault(out, (const void *)addr, len))
		st = LLV_UNMAPPED;
	return st;
}

static u64 src_lookup(void *ctx, const char *name)
{
	return lookup_name(name);
}

/* The core kernel's image only, _stext.._end, as the host agent answers. */
static int src_symbolize(void *ctx, u64 addr, u64 *start, u64 *size, char *name, u32 cap)
{
	unsigned long sym_size = 0, offset = 0;
	char *modname = NULL;
	const char *found;

	BUILD_BUG_ON(KSYM_NAME_LEN > LLV_SYM_NAME_MAX);
	if (addr < image_start || addr >= image_end)
		return -1;
	found = lookup_addr(addr, &sym_size, &offset, &modname, name); /* name: cap >= KSYM_NAME_LEN */
	if (!found || modname)
		return -1;
	if (found != name)
		strscpy(name, found, cap);
	*start = addr - offset;
	*size = sym_size;
	return 0;
}

static void src_info(void *ctx, struct llv_info *info)
{
	info->kaslr_offset = text_start - __START_KERNEL;
	info->page_offset_base = page_offset_base;
	info->paging_levels = paging_levels();
	strscpy(info->release, utsname()->release, sizeof(info->release));
}

static void src_yield(void *ctx)
{
	cond_resched();
}

static const struct llv_source_ops source_ops = {
	.read = src_read, .lookup = src_lookup, .symbolize = src_symbolize, .info = src_info,
	.yield = src_yield,
};

int llv_handle_request(const u8 *req, u32 len, u8 *out, char *why)
{
	u32 rep_len = 0;
	int rc = llv_core_serve(&source_ops, NULL, req, len, out, &rep_len, why);

	return rc ? rc : (int)rep_len;
}
