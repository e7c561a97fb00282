/*
 * pagewalk.c - x86-64 guest page-table walk driven by a table of paging
 * levels (see pagewalk.h). Entries are read through a physical-page
 * callback, so a page table pointing outside guest RAM yields
 * LLV_OUTSIDE_RAM instead of a wild read.
 */
#include "pagewalk.h"

#include <string.h>

#define PTE_PRESENT (1ull << 0)
#define PTE_LARGE (1ull << 7) /* PS: this entry maps a page, not a table */
/* Physical-address bits of an entry (MAXPHYADDR up to 52). Bits 63..52
 * are NX, protection keys and software bits. */
#define PTE_ADDR_MASK 0x000ffffffffff000ull

const struct llv_paging_mode llv_paging_4level = {
	.name = "4-level", .va_bits = 48, .nlevels = 4,
	.levels = {
		{ "PML4", 39, 9, 0 },
		{ "PDPT", 30, 9, 1 }, /* 1 GiB pages */
		{ "PD", 21, 9, 1 },   /* 2 MiB pages */
		{ "PT", 12, 9, 0 },
	},
};

const struct llv_paging_mode llv_paging_5level = {
	.name = "5-level", .va_bits = 57, .nlevels = 5,
	.levels = {
		{ "PML5", 48, 9, 0 },
		{ "PML4", 39, 9, 0 },
		{ "PDPT", 30, 9, 1 },
		{ "PD", 21, 9, 1 },
		{ "PT", 12, 9, 0 },
	},
};

const struct llv_paging_mode *llv_paging_mode_for(int levels)
{
	return levels == 4 ? &llv_paging_4level : levels == 5 ? &llv_paging_5level : NULL;
}

int llv_translate(const struct llv_paging_mode *mode, u64 root, u64 entry_mask_clear,
		  u64 va, llv_phys_page_fn phys_page, void *ctx, u64 *pa)
{
	/* Canonical: every bit from va_bits - 1 up to 63 equals the sign bit. */
	u64 high = va >> (mode->va_bits - 1);
	u64 addr_mask = PTE_ADDR_MASK & ~entry_mask_clear;
	u64 table = root & addr_mask;

	if (high != 0 && high != (~0ull >> (mode->va_bits - 1)))
		return LLV_NONCANONICAL;
	if (high == 0)
		return LLV_USER_ADDRESS;

	for (unsigned int i = 0; i < mode->nlevels; i++) {
		const struct llv_paging_level *lv = &mode->levels[i];
		u64 index = (va >> lv->shift) & ((1ull << lv->bits) - 1);
		const u8 *page = phys_page(ctx, table >> 12);
		u64 entry, page_size = 1ull << lv->shift;

		if (!page)
			return LLV_OUTSIDE_RAM;
		memcpy(&entry, page + index * 8, sizeof(entry));
		if (!(entry & PTE_PRESENT))
			return LLV_UNMAPPED;
		if (i == mode->nlevels - 1u || (lv->large_ok && (entry & PTE_LARGE))) {
			/* A large page's own low address bits hold PAT, so mask by size. */
			u64 base = entry & addr_mask & ~(page_size - 1);

			*pa = base | (va & (page_size - 1));
			return phys_page(ctx, *pa >> 12) ? LLV_OK : LLV_OUTSIDE_RAM;
		}
		table = entry & addr_mask;
	}
	return LLV_UNMAPPED; /* not reached: the last level always maps */
}

struct flat_image {
	const u8 *base;
	u64 size;
};

static const u8 *flat_page(void *ctx, u64 pfn)
{
	const struct flat_image *img = ctx;

	if (pfn >= img->size / 4096)
		return NULL;
	return img->base + pfn * 4096;
}

int llv_translate_flat(const u8 *image, u64 image_size, u64 root, int levels, u64 va, u64 *pa)
{
	struct flat_image img = { image, image_size };
	const struct llv_paging_mode *mode = llv_paging_mode_for(levels);

	if (!mode)
		return -1;
	return llv_translate(mode, root, 0, va, flat_page, &img, pa);
}
