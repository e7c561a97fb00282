// SPDX-License-Identifier: GPL-2.0
/*
 * requests.c - what the in-kernel agent answers: READ (whole 4 KiB pages of
 * kernel virtual memory backed by RAM, copied without faulting), SYMS (addresses from this
 * kernel's own kallsyms), SYMBOLIZE (the core-kernel symbol holding an
 * address) and INFO (release, KASLR offset, direct-map base, paging levels). Bad requests become enum llv_error codes for the caller.
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
#include <asm/unaligned.h>

#include "agent.h"

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

/* A request whose body is count u64 addresses (READ, SYMBOLIZE): at most
 * max of them, and exactly that many bytes. */
static int check_addresses(const struct llv_msg *req, u32 len, u32 max, const char **why,
			   const char *too_many, const char *bad_length)
{
	if (req->count > max) {
		*why = too_many;
		return -LLV_E_TOO_LARGE;
	}
	if (len != sizeof(*req) + (u64)req->count * sizeof(u64)) {
		*why = bad_length;
		return -LLV_E_MALFORMED;
	}
	return 0;
}

static int handle_read(const struct llv_msg *req, u32 len, u8 *out, const char **why)
{
	const u8 *addrs = (const u8 *)(req + 1);
	struct llv_msg *rep = (struct llv_msg *)out;
	u32 *status = (u32 *)(rep + 1);
	u8 *page;
	u32 i;
	int rc;

	rc = check_addresses(req, len, LLV_MAX_PAGES, why, "READ names more pages than LLV_MAX_PAGES",
			     "READ length does not match its page count");
	if (rc)
		return rc;
	page = (u8 *)(status + req->count);
	for (i = 0; i < req->count; i++) {
		u64 addr = get_unaligned_le64(addrs + i * sizeof(u64));
		u32 st = address_status(addr);

		if (st == LLV_OK)
			st = backing_status(addr);
		/* The page tables may change under us: the copy itself must not fault
		 * either, and a fault it catches is an unmapped page, never an oops. */
		if (st == LLV_OK &&
		    copy_from_kernel_nofault(page, (const void *)(addr & PAGE_MASK), PAGE_SIZE))
			st = LLV_UNMAPPED;
		put_unaligned_le32(st, &status[i]);
		if (st == LLV_OK)
			page += PAGE_SIZE;
		cond_resched();
	}
	rep->type = LLV_REP_READ;
	rep->flags = 0;
	rep->count = req->count;
	return page - out;
}

static int handle_syms(const struct llv_msg *req, u32 len, u8 *out, const char **why)
{
	const char *name = (const char *)(req + 1);
	const char *end = (const char *)req + len;
	struct llv_msg *rep = (struct llv_msg *)out;
	u8 *addr = (u8 *)(rep + 1);
	u32 i;

	if (req->count > (LLV_MAX_PAYLOAD - sizeof(*rep)) / sizeof(u64)) {
		*why = "SYMS names more symbols than one reply can carry";
		return -LLV_E_TOO_LARGE;
	}
	for (i = 0; i < req->count; i++) {
		size_t n = strnlen(name, end - name);

		if (name + n == end) {
			*why = "SYMS names fewer NUL-terminated symbols than its count";
			return -LLV_E_MALFORMED;
		}
		put_unaligned_le64(n ? lookup_name(name) : 0, addr + i * sizeof(u64));
		name += n + 1;
		cond_resched(); /* each look-up scans all of kallsyms */
	}
	if (name != end) {
		*why = "SYMS has bytes after its last symbol";
		return -LLV_E_MALFORMED;
	}
	rep->type = LLV_REP_SYMS;
	rep->flags = 0;
	rep->count = req->count;
	return sizeof(*rep) + req->count * sizeof(u64);
}

static int handle_symbolize(const struct llv_msg *req, u32 len, u8 *out, const char **why)
{
	const u8 *addrs = (const u8 *)(req + 1);
	struct llv_msg *rep = (struct llv_msg *)out;
	struct llv_symbol *sym = (struct llv_symbol *)(rep + 1);
	char *names = (char *)(sym + req->count);
	char namebuf[KSYM_NAME_LEN];
	u32 i;
	int rc;

	rc = check_addresses(req, len, LLV_MAX_SYMBOLIZE, why,
			     "SYMBOLIZE names more addresses than LLV_MAX_SYMBOLIZE",
			     "SYMBOLIZE length does not match its address count");
	if (rc)
		return rc;
	BUILD_BUG_ON(KSYM_NAME_LEN > LLV_SYM_NAME_MAX);
	for (i = 0; i < req->count; i++) {
		unsigned long addr = get_unaligned_le64(addrs + i * sizeof(u64));
		unsigned long size = 0, offset = 0;
		const char *name = NULL;
		char *modname = NULL;
		size_t n;

		if (addr >= image_start && addr < image_end)
			name = lookup_addr(addr, &size, &offset, &modname, namebuf);
		if (!name || modname) {
			name = "";
			size = offset = 0;
		}
		put_unaligned_le64(*name ? addr - offset : 0, &sym[i].start);
		put_unaligned_le64(size, &sym[i].size);
		n = strnlen(name, KSYM_NAME_LEN - 1);
		memcpy(names, name, n);
		names[n] = 0;
		names += n + 1;
	}
	rep->type = LLV_REP_SYMBOLIZE;
	rep->flags = 0;
	rep->count = req->count;
	return (u8 *)names - out;
}

static int handle_info(const struct llv_msg *req, u32 len, u8 *out, const char **why)
{
	struct llv_msg *rep = (struct llv_msg *)out;
	struct llv_info *info = (struct llv_info *)(rep + 1);

	if (len != sizeof(*rep)) {
		*why = "INFO carries a body";
		return -LLV_E_MALFORMED;
	}
	memset(info, 0, sizeof(*info));
	info->kaslr_offset = text_start - __START_KERNEL;
	info->page_offset_base = page_offset_base;
	info->paging_levels = paging_levels();
	strscpy(info->release, utsname()->release, sizeof(info->release));
	rep->type = LLV_REP_INFO;
	rep->flags = 0;
	rep->count = req->count; /* echoed, as every reply does */
	return sizeof(*rep) + sizeof(*info);
}

int llv_handle_request(const u8 *req, u32 len, u8 *out, const char **why)
{
	const struct llv_msg *msg = (const struct llv_msg *)req;

	if (len < sizeof(*msg)) {
		*why = "frame shorter than a message header";
		return -LLV_E_MALFORMED;
	}
	switch (msg->type) {
	case LLV_REQ_READ:
		return handle_read(msg, len, out, why);
	case LLV_REQ_SYMS:
		return handle_syms(msg, len, out, why);
	case LLV_REQ_INFO:
		return handle_info(msg, len, out, why);
	case LLV_REQ_SYMBOLIZE:
		return handle_symbolize(msg, len, out, why);
	default:
		*why = "unknown message type";
		return -LLV_E_BAD_TYPE;
	}
}
