/*
 * memsrc.h - where guest physical memory comes from. A small driver table
 * in the style of LibVMI's drivers: each source opens itself and serves one
 * 4 KiB physical page at a time; everything above (page walk, kallsyms,
 * the server) goes through llv_mem_page(). Sources:
 *   "q35-ram":  a QEMU memory-backend-file of a q35 machine (RAM below
 *               4 GiB up to the low-memory split, the rest from 4 GiB up);
 *   "flat":     a raw memory image where file offset == physical address.
 */
#ifndef LLVIEW_MEMSRC_H
#define LLVIEW_MEMSRC_H

#include <stddef.h>
#include "../common/llview_proto.h"

struct llv_mem;

struct llv_mem_driver {
	const char *name;
	/* Maps path; ram_size 0 means the whole file. 0 or -1 with err set. */
	int (*open)(struct llv_mem *m, const char *path, u64 ram_size, char *err, size_t errlen);
	/* The page at guest physical page number pfn, or NULL: no RAM there. */
	const u8 *(*page)(const struct llv_mem *m, u64 pfn);
	void (*close)(struct llv_mem *m);
};

struct llv_mem {
	const struct llv_mem_driver *driver;
	const u8 *map;    /* the whole file, read-only */
	u64 map_size;
	u64 ram_size;     /* bytes of guest RAM served */
	u64 low_size;     /* q35: RAM at physical 0..low_size; the rest at 4 GiB */
	int fd;           /* kept open to notice the file being removed or shrunk */
};

extern const struct llv_mem_driver llv_mem_q35_ram;
extern const struct llv_mem_driver llv_mem_flat;

/* Finds a driver by name, or NULL. */
const struct llv_mem_driver *llv_mem_driver_named(const char *name);

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

/* Adapter for llv_translate's callback. */
const u8 *llv_mem_page_cb(void *mem, u64 pfn);

#endif /* LLVIEW_MEMSRC_H */
