/*
 * pagewalk.h - x86-64 guest page-table walker (4-level and 5-level/LA57,
 * 2 MiB and 1 GiB pages). Paging modes are data: a table of levels, each
 * with its index shift and width and whether it may map a large page
 * (the approach of Volatility's intel.py), so one loop walks every mode.
 * The walker reads guest physical memory only through a callback, so the
 * agent drives it on guest RAM and the tests on synthetic page tables.
 */
#ifndef LLVIEW_PAGEWALK_H
#define LLVIEW_PAGEWALK_H

#include <stddef.h>
#include "llview_proto.h"

struct llv_paging_level {
	const char *name; /* the SDM's name for the table this level indexes */
	u8 shift;         /* lowest virtual-address bit of this level's index */
	u8 bits;          /* index width: 9 on x86-64 */
	u8 large_ok;      /* an entry here with PS set maps a page of 1 << shift */
};

struct llv_paging_mode {
	const char *name;
	u8 va_bits; /* 48 or 57: the sign bit of a canonical address is va_bits - 1 */
	u8 nlevels;
	struct llv_paging_level levels[5]; /* top level first */
};

extern const struct llv_paging_mode llv_paging_4level;
extern const struct llv_paging_mode llv_paging_5level;

/* Returns the mode for 4 or 5 levels, or NULL. */
const struct llv_paging_mode *llv_paging_mode_for(int levels);

/* Returns a pointer to the 4 KiB guest physical page number pfn, or NULL
 * when the guest has no RAM there. */
typedef const u8 *(*llv_phys_page_fn)(void *ctx, u64 pfn);

/*
 * Translates the kernel virtual address va through the page tables rooted
 * at physical address root (CR3 without flags). Returns an enum llv_status;
 * on LLV_OK *pa is the physical address of va. entry_mask_clear names PTE
 * bits that are not part of the address (the SME/SEV C-bit), 0 if none.
 * The walk is bounded by the mode's level count, so no input can make it
 * loop, and every table read goes through phys_page.
 */
int llv_translate(const struct llv_paging_mode *mode, u64 root, u64 entry_mask_clear,
		  u64 va, llv_phys_page_fn phys_page, void *ctx, u64 *pa);

/* Tiny API for tests (ctypes): translate on a flat image where file
 * offset == physical address. levels is 4 or 5; returns an enum llv_status,
 * or -1 for a bad levels value. */
int llv_translate_flat(const u8 *image, u64 image_size, u64 root, int levels, u64 va, u64 *pa);

#endif /* LLVIEW_PAGEWALK_H */
