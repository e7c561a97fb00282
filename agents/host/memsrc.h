/*
 * memsrc.h - where guest physical memory comes from. A small driver table
 * in the style of LibVMI's drivers and memflow's connectors: each source
 * opens itself and serves one 4 KiB physical page at a time; everything
 * above (page walk, kallsyms, the server) goes through llv_mem_page().
 * Sources:
 *   "q35-ram":  a QEMU memory-backend-file of a q35 machine (RAM below
 *               4 GiB up to the low-memory split, the rest from 4 GiB up);
 *               live: the agent sees the running guest;
 *   "image":    a memory image, its format told by its first bytes:
 *     "elf":    an ELF64 core (QEMU dump-guest-memory, a kdump vmcore):
 *               each PT_LOAD places p_filesz bytes of the file at physical
 *               p_paddr (up to p_memsz, the rest reads as zeros); physical
 *               memory no PT_LOAD covers is outside RAM; a PT_NOTE named
 *               VMCOREINFO, when present, locates the kernel directly;
 *     "flat":   anything else, a raw image where file offset == physical
 *               address.
 */
#ifndef LLVIEW_MEMSRC_H
#define LLVIEW_MEMSRC_H

#include <stddef.h>
#include "llview_proto.h"

#define LLV_NO_PHYS (~0ull) /* phys_of(): the file offset holds no guest RAM */

struct llv_mem;

struct llv_mem_driver {
	const char *name;
	/* Maps path; ram_size 0 means the whole file. 0 or -1 with err set. */
	int (*open)(struct llv_mem *m, const char *path, u64 ram_size, char *err, size_t errlen);
	/* The page at guest physical page number pfn, or NULL: no RAM there. */
	const u8 *(*page)(const struct llv_mem *m, u64 pfn);
	/* Guest physical address of file offset off, or LLV_NO_PHYS. */
	u64 (*phys_of)(const struct llv_mem *m, u64 off);
	void (*close)(struct llv_mem *m);
};

/* One PT_LOAD of an ELF core. */
struct llv_mem_seg {
	u64 pa, filesz, memsz, off;
};

struct llv_mem {
	const struct llv_mem_driver *driver;
	const u8 *map;    /* the whole file, read-only */
	u64 map_size;
	u64 ram_size;     /* bytes of guest RAM served */
	u64 low_size;     /* q35: RAM at physical 0..low_size; the rest at 4 GiB */
	int fd;           /* kept open to notice the file being removed or shrunk */
	int live;         /* a running guest's RAM: its kernel may still be booting */
	char what[160];   /* how the source was understood, for the log */
	/* ELF core: segments sorted by physical address; pages only partly
	 * covered by segments get private zero-padded copies (part_pfn sorted) */
	struct llv_mem_seg *segs;
	size_t nsegs;
	u64 *part_pfn;
	u8 *part_pages;
	size_t nparts;
	const char *vmcoreinfo; /* the text of a VMCOREINFO note in the file, or NULL */
	size_t vmcoreinfo_len;
};

extern const struct llv_mem_driver llv_mem_q35_ram;
extern const struct llv_mem_driver llv_mem_image;
extern const struct llv_mem_driver llv_mem_elf;
extern const struct llv_mem_driver llv_mem_flat;

/* Finds a driver by name, or NULL. */
const struct llv_mem_driver *llv_mem_driver_named(const char *name);

/* Opens path with driver d; "image" picks "elf" or "flat" itself (so
 * m->driver afterwards names the real one). */
int llv_mem_open(struct llv_mem *m, const struct llv_mem_driver *d, const char *path,
		 u64 ram_size, char *err, size_t errlen);
void llv_mem_close(struct llv_mem *m);

/* 0 while the file still backs the mapping; -1 with err set once it was
 * removed (the VM stopped: the agent would serve a frozen copy) or shrunk
 * (reads past its end would fault). */
int llv_mem_check(const struct llv_mem *m, char *err, size_t errlen);

static inline const u8 *llv_mem_page(const struct llv_mem *m, u64 pfn)
{
	return m->driver->page(m, pfn);
}

static inline u64 llv_mem_phys_of(const struct llv_mem *m, u64 off)
{
	return m->driver->phys_of(m, off);
}

/* Adapter for llv_translate's callback. */
const u8 *llv_mem_page_cb(void *mem, u64 pfn);

#endif /* LLVIEW_MEMSRC_H */
