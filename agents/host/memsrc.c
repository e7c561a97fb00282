/*
 * memsrc.c - guest physical memory sources (see memsrc.h). The file is
 * mapped read-only and shared, so the agent sees the running guest's RAM
 * live and can never write to it; every page request is bounds-checked
 * against the RAM size before a pointer is formed.
 */
#include "memsrc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096ull
#define FOUR_GIB 0x100000000ull

static int map_file(struct llv_mem *m, const char *path, u64 ram_size, char *err, size_t errlen)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open guest memory: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size < (off_t)PAGE) {
		snprintf(err, errlen, "%s: too small to be guest memory (%lld bytes)", path,
			 (long long)st.st_size);
		close(fd);
		return -1;
	}
	if (ram_size == 0)
		ram_size = (u64)st.st_size;
	if (ram_size > (u64)st.st_size || ram_size % PAGE) {
		snprintf(err, errlen,
			 "%s: RAM size %llu must be a multiple of 4096 and at most the file size %lld",
			 path, (unsigned long long)ram_size, (long long)st.st_size);
		close(fd);
		return -1;
	}
	p = mmap(NULL, ram_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "%s: cannot map guest memory: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	m->fd = fd;
	m->map = p;
	m->map_size = ram_size;
	m->ram_size = ram_size;
	m->low_size = ram_size;
	return 0;
}

static void unmap_file(struct llv_mem *m)
{
	if (m->map)
		munmap((void *)m->map, m->map_size);
	if (m->fd >= 0)
		close(m->fd);
	m->map = NULL;
	m->fd = -1;
}

/* QEMU's q35 (hw/i386/pc_q35.c): with 2.75 GiB of RAM or more, only the
 * first 2 GiB sit below 4 GiB (the rest of that range is the PCI hole);
 * smaller guests have all their RAM below. The backend file holds low RAM
 * first, then high RAM. */
static int q35_open(struct llv_mem *m, const char *path, u64 ram_size, char *err, size_t errlen)
{
	if (map_file(m, path, ram_size, err, errlen))
		return -1;
	m->low_size = m->ram_size >= 0xb0000000ull ? 0x80000000ull : m->ram_size;
	return 0;
}

static const u8 *q35_page(const struct llv_mem *m, u64 pfn)
{
	u64 pa = pfn * PAGE;

	if (pfn >= (1ull << 40)) /* beyond 52-bit physical: pa would overflow */
		return NULL;
	if (pa < m->low_size)
		return m->map + pa;
	if (pa >= FOUR_GIB && pa - FOUR_GIB < m->ram_size - m->low_size)
		return m->map + m->low_size + (pa - FOUR_GIB);
	return NULL;
}

static int flat_open(struct llv_mem *m, const char *path, u64 ram_size, char *err, size_t errlen)
{
	return map_file(m, path, ram_size, err, errlen);
}

static const u8 *flat_page(const struct llv_mem *m, u64 pfn)
{
	return pfn < m->ram_size / PAGE ? m->map + pfn * PAGE : NULL;
}

const struct llv_mem_driver llv_mem_q35_ram = { "q35-ram", q35_open, q35_page, unmap_file };
const struct llv_mem_driver llv_mem_flat = { "flat", flat_open, flat_page, unmap_file };

static const struct llv_mem_driver *const drivers[] = { &llv_mem_q35_ram, &llv_mem_flat };

const struct llv_mem_driver *llv_mem_driver_named(const char *name)
{
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (!strcmp(drivers[i]->name, name))
			return drivers[i];
	return NULL;
}

int llv_mem_open(struct llv_mem *m, const struct llv_mem_driver *d, const char *path,
		 u64 ram_size, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	m->driver = d;
	m->fd = -1;
	return d->open(m, path, ram_size, err, errlen);
}

int llv_mem_check(const struct llv_mem *m, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(m->fd, &st) < 0 || st.st_nlink == 0) {
		snprintf(err, errlen, "the guest memory file was removed (the VM stopped?)");
		return -1;
	}
	if ((u64)st.st_size < m->map_size) {
		snprintf(err, errlen, "the guest memory file shrank to %lld bytes", (long long)st.st_size);
		return -1;
	}
	return 0;
}

void llv_mem_close(struct llv_mem *m)
{
	if (m->driver)
		m->driver->close(m);
}

const u8 *llv_mem_page_cb(void *mem, u64 pfn)
{
	return llv_mem_page(mem, pfn);
}
