/*
 * kernel.h - finding the guest kernel in its RAM: the VMCOREINFO note
 * (release, page-table root, phys_base, KASLR offset, paging mode, where
 * the kallsyms tables are), virtual reads through the guest's own page
 * tables, and the kernel's symbol table decoded from kallsyms.
 */
#ifndef LLVIEW_KERNEL_H
#define LLVIEW_KERNEL_H

#include <stddef.h>
#include "memsrc.h"
#include "pagewalk.h"

/* The VMCOREINFO fields the agent uses (0 where the note lacks them). */
struct llv_vmcoreinfo {
	char release[64];
	u64 init_top_pgt, stext;
	long long phys_base; /* printed signed by the kernel; can be negative */
	u64 kernel_offset;   /* KERNELOFFSET: the KASLR slide */
	int l5;              /* NUMBER(pgtable_l5_enabled) */
	u64 sme_mask;        /* SME/SEV C-bit in page-table entries */
	u64 kallsyms_names, kallsyms_num_syms, kallsyms_token_table, kallsyms_token_index;
	u64 kallsyms_offsets, kallsyms_relative_base;
	u64 found_at;        /* guest physical address of the note's text, or
			      * LLV_NO_PHYS when it came from a dump's ELF note */
};

struct llv_kernel {
	const struct llv_mem *mem;
	const struct llv_paging_mode *mode;
	u64 root;     /* physical address of the top-level page table */
	u64 pte_clear;
	int have_vmcoreinfo;
	struct llv_vmcoreinfo vi;
	/* symbols: nsyms entries; name i is names + name_off[i] */
	u32 nsyms;
	char *names;
	u32 *name_off;
	u64 *addr;
	char *type;
	u8 *dup;     /* another symbol has the same name */
	u32 *by_addr; /* symbol indices sorted by address, then by index (aliases in order) */
	u32 *bucket; /* open-addressing hash: symbol index + 1, 0 empty */
	u32 nbuckets;
	double decode_ms;
	u64 page_offset_base;
};

/* Scans guest RAM for the next VMCOREINFO text at or after file offset
 * *cursor (start with 0) and advances *cursor past it. Text that only
 * looks like the note (the format strings in the kernel image), or that
 * lies outside RAM (an ELF core's own headers and notes), is skipped.
 * 0, or -1 with err set when there is no further note. */
int llv_find_vmcoreinfo(const struct llv_mem *m, u64 *cursor, struct llv_vmcoreinfo *vi,
			char *err, size_t errlen);

/* Parses VMCOREINFO text given directly (an ELF core's note): 0 if it holds
 * the fields the agent needs, else -1. */
int llv_parse_vmcoreinfo(const char *text, size_t len, struct llv_vmcoreinfo *vi);

/* Sets up k from a VMCOREINFO note: paging mode, page-table root, then
 * decodes kallsyms and checks _stext against the note. 0 or -1 with err. */
int llv_kernel_from_vmcoreinfo(struct llv_kernel *k, const struct llv_mem *m,
			       const struct llv_vmcoreinfo *vi, char *err, size_t errlen);

/* Raw mode: explicit page-table root and paging levels, no symbols. */
int llv_kernel_raw(struct llv_kernel *k, const struct llv_mem *m, u64 root, int levels,
		   char *err, size_t errlen);

void llv_kernel_free(struct llv_kernel *k);

/* Translates va; returns an enum llv_status. */
int llv_kernel_translate(const struct llv_kernel *k, u64 va, u64 *pa);

/* Pointer to the 4 KiB guest page holding va, or NULL with *status set. */
const u8 *llv_kernel_page(const struct llv_kernel *k, u64 va, int *status);

/* Copies len bytes of guest virtual memory; returns an enum llv_status. */
int llv_kernel_read(const struct llv_kernel *k, u64 va, void *dst, size_t len);

/* Address of a kernel symbol, or 0 if unknown. */
u64 llv_kernel_symbol(const struct llv_kernel *k, const char *name);

/* The core-kernel symbol holding va, as the kernel's kallsyms_lookup()
 * finds it: the first of the aliases at the highest start <= va, sized up to
 * the next higher start (or _end). NULL when va lies outside _stext.._end
 * or the kernel has no symbols; else its name, with *start and *size set. */
const char *llv_kernel_symbolize(const struct llv_kernel *k, u64 va, u64 *start, u64 *size);

/* Compares every symbol of a System.map (link-time addresses) plus the
 * KASLR slide with kallsyms. Prints a summary to stderr; returns the number
 * of mismatches, or -1 if the file cannot be read. */
long llv_kernel_check_system_map(const struct llv_kernel *k, const char *path);

#endif /* LLVIEW_KERNEL_H */
