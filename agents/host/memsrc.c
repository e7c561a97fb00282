/*
 * memsrc.c - guest physical memory sources (see memsrc.h). The file is
 * mapped read-only and shared, so the agent sees the running guest's RAM
 * live and can never write to it; every page request is bounds-checked
 * against the RAM size before a pointer is formed. An ELF core is mapped,
 * never read whole, and every program header is checked against the file
 * size at open, so no later page request can point past the mapping.
 */
#include "memsrc.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096ull
#define FOUR_GIB 0x100000000ull
#define MAX_PHYS (1ull << 52)    /* x86-64 MAXPHYADDR at most 52 */
#define MAX_PHDRS (1u << 20)     /* real cores have a handful; bounds the allocation */
#define MAX_PARTS 4096           /* partly covered pages kept as copies: 16 MiB at most */

static int open_file(const char *path, int *fdp, u64 *size, char *err, size_t errlen)
{
	struct stat st;
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
	*fdp = fd;
	*size = (u64)st.st_size;
	return 0;
}

static int map_fd(struct llv_mem *m, const char *path, int fd, u64 size, char *err, size_t errlen)
{
	void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		snprintf(err, errlen, "%s: cannot map guest memory: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	m->fd = fd;
	m->map = p;
	m->map_size = size;
	return 0;
}

static int map_file(struct llv_mem *m, const char *path, u64 ram_size, char *err, size_t errlen)
{
	u64 size;
	int fd;

	if (open_file(path, &fd, &size, err, errlen))
		return -1;
	if (size < PAGE) {
		snprintf(err, errlen, "%s: too small to be guest memory (%llu bytes)", path,
			 (unsigned long long)size);
		close(fd);
		return -1;
	}
	if (ram_size == 0)
		ram_size = size;
	if (ram_size > size || ram_size % PAGE) {
		snprintf(err, errlen,
			 "%s: RAM size %llu must be a multiple of 4096 and at most the file size %llu",
			 path, (unsigned long long)ram_size, (unsigned long long)size);
		close(fd);
		return -1;
	}
	if (map_fd(m, path, fd, ram_size, err, errlen))
		return -1;
	m->ram_size = ram_size;
	m->low_size = ram_size;
	m->live = 1;
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

/* ---- q35 RAM file ------------------------------------------------------ */

/* QEMU's q35 (hw/i386/pc_q35.c): with 2.75 GiB of RAM or more, only the
 * first 2 GiB sit below 4 GiB (the rest of that range is the PCI hole);
 * smaller guests have all their RAM below. The backend file holds low RAM
 * first, then high RAM. */
static int q35_open(struct llv_mem *m, const char *path, u64 ram_size, char *err, size_t errlen)
{
	if (map_file(m, path, ram_size, err, errlen))
		return -1;
	m->low_size = m->ram_size >= 0xb0000000ull ? 0x80000000ull : m->ram_size;
	snprintf(m->what, sizeof(m->what), "q35 RAM file, %llu MiB",
		 (unsigned long long)(m->ram_size >> 20));
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

static u64 q35_phys_of(const struct llv_mem *m, u64 off)
{
	if (off < m->low_size)
		return off;
	return off < m->ram_size ? off - m->low_size + FOUR_GIB : LLV_NO_PHYS;
}

/* ---- raw image --------------------------------------------------------- */

static int flat_open(struct llv_mem *m, const char *path, u64 ram_size, char *err, size_t errlen)
{
	if (map_file(m, path, ram_size, err, errlen))
		return -1;
	snprintf(m->what, sizeof(m->what), "raw image, %llu MiB",
		 (unsigned long long)(m->ram_size >> 20));
	return 0;
}

static const u8 *flat_page(const struct llv_mem *m, u64 pfn)
{
	return pfn < m->ram_size / PAGE ? m->map + pfn * PAGE : NULL;
}

static u64 flat_phys_of(const struct llv_mem *m, u64 off)
{
	return off < m->ram_size ? off : LLV_NO_PHYS;
}

/* ---- ELF core ---------------------------------------------------------- */

static const u8 zero_page[PAGE];

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

static int cmp_seg(const void *a, const void *b)
{
	const struct llv_mem_seg *x = a, *y = b;

	return x->pa < y->pa ? -1 : x->pa > y->pa;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/* Index of the last segment starting at or below pa, or -1. */
static long seg_at_or_below(const struct llv_mem *m, u64 pa)
{
	size_t lo = 0, hi = m->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->segs[mid].pa <= pa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (long)lo - 1;
}

/* Walks a PT_NOTE's notes (already bounds-checked as a whole) and keeps
 * the VMCOREINFO one. A note that runs past its segment is corruption. */
static int scan_notes(struct llv_mem *m, const char *path, unsigned int ph, u64 off, u64 size,
		      char *err, size_t errlen)
{
	u64 pos = 0;

	while (size - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		u64 name_at, desc_at, name_sz, desc_sz;

		memcpy(&nh, m->map + off + pos, sizeof(nh));
		name_sz = (nh.n_namesz + 3ull) & ~3ull;
		desc_sz = (nh.n_descsz + 3ull) & ~3ull;
		name_at = pos + sizeof(nh);
		desc_at = name_at + name_sz;
		if (name_sz > size - name_at || nh.n_descsz > size - desc_at)
			FAIL("%s: program header %u (PT_NOTE): the note at offset %llu (name %u bytes, "
			     "data %u bytes) runs past its segment of %llu bytes",
			     path, ph, (unsigned long long)(off + pos), nh.n_namesz, nh.n_descsz,
			     (unsigned long long)size);
		if (nh.n_namesz == sizeof("VMCOREINFO") &&
		    !memcmp(m->map + off + name_at, "VMCOREINFO", sizeof("VMCOREINFO")) &&
		    !m->vmcoreinfo) {
			m->vmcoreinfo = (const char *)m->map + off + desc_at;
			m->vmcoreinfo_len = nh.n_descsz;
		}
		if (desc_sz >= size - desc_at)
			break;
		pos = desc_at + desc_sz;
	}
	return 0;
}

/* Copies into the private page of pfn whatever file bytes segments place
 * there; the rest stays zero. */
static void fill_part(const struct llv_mem *m, u64 pfn, u8 *out)
{
	u64 start = pfn * PAGE, end = start + PAGE;
	long i = seg_at_or_below(m, start);

	for (size_t j = i < 0 ? 0 : (size_t)i; j < m->nsegs && m->segs[j].pa < end; j++) {
		const struct llv_mem_seg *s = &m->segs[j];
		u64 lo = s->pa > start ? s->pa : start;
		u64 hi = s->pa + s->filesz < end ? s->pa + s->filesz : end;

		if (lo < hi)
			memcpy(out + (lo - start), m->map + s->off + (lo - s->pa), hi - lo);
	}
}

static int build_parts(struct llv_mem *m, const char *path, char *err, size_t errlen)
{
	u64 *pfn = malloc((3 * m->nsegs + 1) * sizeof(*pfn));
	size_t n = 0, uniq = 0;

	if (!pfn)
		FAIL("%s: out of memory for %zu segments", path, m->nsegs);
	for (size_t i = 0; i < m->nsegs; i++) {
		const struct llv_mem_seg *s = &m->segs[i];

		if (s->pa % PAGE)
			pfn[n++] = s->pa / PAGE;
		if ((s->pa + s->memsz) % PAGE)
			pfn[n++] = (s->pa + s->memsz) / PAGE;
		if (s->filesz < s->memsz && (s->pa + s->filesz) % PAGE)
			pfn[n++] = (s->pa + s->filesz) / PAGE;
	}
	qsort(pfn, n, sizeof(*pfn), cmp_u64);
	for (size_t i = 0; i < n; i++)
		if (!uniq || pfn[uniq - 1] != pfn[i])
			pfn[uniq++] = pfn[i];
	if (uniq > MAX_PARTS) {
		free(pfn);
		FAIL("%s: %zu pages are only partly covered by PT_LOAD segments (at most %u): "
		     "not a memory dump?", path, uniq, MAX_PARTS);
	}
	m->part_pfn = pfn;
	m->nparts = uniq;
	if (uniq) {
		m->part_pages = calloc(uniq, PAGE);
		if (!m->part_pages)
			FAIL("%s: out of memory for %zu partial pages", path, uniq);
		for (size_t i = 0; i < uniq; i++)
			fill_part(m, pfn[i], m->part_pages + i * PAGE);
	}
	return 0;
}

static int elf_parse(struct llv_mem *m, const char *path, char *err, size_t errlen)
{
	const u64 size = m->map_size;
	Elf64_Ehdr eh;
	u64 phnum;

	memcpy(&eh, m->map, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG))
		FAIL("%s: not an ELF file", path);
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
		FAIL("%s: ELF class %u, data %u: only little-endian ELF64 cores are served", path,
		     eh.e_ident[EI_CLASS], eh.e_ident[EI_DATA]);
	if (eh.e_type != ET_CORE)
		FAIL("%s: ELF type %u is not a core dump (ET_CORE)", path, eh.e_type);
	if (eh.e_machine != EM_X86_64)
		FAIL("%s: ELF machine %u is not x86-64", path, eh.e_machine);
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		FAIL("%s: program header size %u, expected %zu", path, eh.e_phentsize,
		     sizeof(Elf64_Phdr));
	phnum = eh.e_phnum;
	if (phnum == PN_XNUM) { /* more than 65534: the count is in section header 0 */
		Elf64_Shdr sh;

		if (eh.e_shoff == 0 || eh.e_shoff > size || size - eh.e_shoff < sizeof(sh))
			FAIL("%s: e_phnum is PN_XNUM but section header 0 (offset %llu) is not in "
			     "the file (%llu bytes)", path, (unsigned long long)eh.e_shoff,
			     (unsigned long long)size);
		memcpy(&sh, m->map + eh.e_shoff, sizeof(sh));
		phnum = sh.sh_info;
	}
	if (phnum == 0)
		FAIL("%s: the ELF core has no program headers", path);
	if (phnum > MAX_PHDRS)
		FAIL("%s: %llu program headers: implausible for a memory dump (at most %u)", path,
		     (unsigned long long)phnum, MAX_PHDRS);
	if (eh.e_phoff > size || phnum > (size - eh.e_phoff) / sizeof(Elf64_Phdr))
		FAIL("%s: %llu program headers at offset %llu end past the end of the file (%llu "
		     "bytes): truncated?", path, (unsigned long long)phnum,
		     (unsigned long long)eh.e_phoff, (unsigned long long)size);
	m->segs = malloc(phnum * sizeof(*m->segs));
	if (!m->segs)
		FAIL("%s: out of memory for %llu program headers", path, (unsigned long long)phnum);

	for (u64 i = 0; i < phnum; i++) {
		Elf64_Phdr ph;
		char kind[48];

		memcpy(&ph, m->map + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_NULL) /* an unused entry: its fields mean nothing */
			continue;
		if (ph.p_type == PT_LOAD)
			snprintf(kind, sizeof(kind), "PT_LOAD at physical 0x%llx",
				 (unsigned long long)ph.p_paddr);
		else if (ph.p_type == PT_NOTE)
			snprintf(kind, sizeof(kind), "PT_NOTE");
		else
			snprintf(kind, sizeof(kind), "type 0x%x", ph.p_type);
		/* Every header, even of a type not used here: a damaged table shows. */
		if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)
			FAIL("%s: program header %llu (%s): its %llu bytes at file offset %llu end "
			     "past the end of the file (%llu bytes): truncated dump?", path,
			     (unsigned long long)i, kind, (unsigned long long)ph.p_filesz,
			     (unsigned long long)ph.p_offset, (unsigned long long)size);
		if (ph.p_type == PT_NOTE) {
			if (scan_notes(m, path, (unsigned int)i, ph.p_offset, ph.p_filesz, err, errlen))
				return -1;
			continue;
		}
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			FAIL("%s: program header %llu (PT_LOAD at physical 0x%llx): p_filesz %llu "
			     "exceeds p_memsz %llu", path, (unsigned long long)i,
			     (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_filesz,
			     (unsigned long long)ph.p_memsz);
		if (ph.p_paddr >= MAX_PHYS || ph.p_memsz > MAX_PHYS - ph.p_paddr)
			FAIL("%s: program header %llu (PT_LOAD at physical 0x%llx, %llu bytes) ends "
			     "beyond the 52-bit physical address space", path, (unsigned long long)i,
			     (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
		if (ph.p_memsz == 0)
			continue;
		m->segs[m->nsegs++] = (struct llv_mem_seg){ ph.p_paddr, ph.p_filesz, ph.p_memsz,
							    ph.p_offset };
		m->ram_size += ph.p_memsz;
	}
	if (m->nsegs == 0)
		FAIL("%s: the ELF core has no PT_LOAD segment: it holds no guest memory", path);
	qsort(m->segs, m->nsegs, sizeof(*m->segs), cmp_seg);
	for (size_t i = 1; i < m->nsegs; i++) {
		const struct llv_mem_seg *a = &m->segs[i - 1], *b = &m->segs[i];

		if (a->pa + a->memsz > b->pa)
			FAIL("%s: PT_LOAD segments at physical 0x%llx (%llu bytes) and 0x%llx overlap "
			     "(a dump taken with paging=true? take it with paging=false)", path,
			     (unsigned long long)a->pa, (unsigned long long)a->memsz,
			     (unsigned long long)b->pa);
	}
	if (build_parts(m, path, err, errlen))
		return -1;
	snprintf(m->what, sizeof(m->what),
		 "ELF core, %zu PT_LOAD segments, %llu MiB of RAM up to physical 0x%llx, %s",
		 m->nsegs, (unsigned long long)(m->ram_size >> 20),
		 (unsigned long long)(m->segs[m->nsegs - 1].pa + m->segs[m->nsegs - 1].memsz),
		 m->vmcoreinfo ? "VMCOREINFO note" : "no VMCOREINFO note");
	return 0;
}

#undef FAIL

static void elf_close(struct llv_mem *m)
{
	free(m->segs);
	free(m->part_pfn);
	free(m->part_pages);
	m->segs = NULL;
	m->part_pfn = NULL;
	m->part_pages = NULL;
	m->nsegs = m->nparts = 0;
	m->vmcoreinfo = NULL;
	unmap_file(m);
}

static int elf_open(struct llv_mem *m, const char *path, u64 ram_size, char *err, size_t errlen)
{
	u64 size;
	int fd;

	if (ram_size) {
		snprintf(err, errlen, "%s: --ram-size does not apply to an ELF core (its program "
			 "headers give the RAM layout)", path);
		return -1;
	}
	if (open_file(path, &fd, &size, err, errlen))
		return -1;
	if (size < sizeof(Elf64_Ehdr)) {
		snprintf(err, errlen, "%s: truncated ELF header: %llu of %zu bytes", path,
			 (unsigned long long)size, sizeof(Elf64_Ehdr));
		close(fd);
		return -1;
	}
	if (map_fd(m, path, fd, size, err, errlen))
		return -1;
	if (elf_parse(m, path, err, errlen)) {
		elf_close(m);
		return -1;
	}
	return 0;
}

static const u8 *elf_page(const struct llv_mem *m, u64 pfn)
{
	u64 pa = pfn * PAGE;
	long i;
	size_t lo = 0, hi = m->nparts;

	if (pfn >= (1ull << 40))
		return NULL;
	i = seg_at_or_below(m, pa);
	if (i >= 0 && pa + PAGE <= m->segs[i].pa + m->segs[i].memsz) {
		const struct llv_mem_seg *s = &m->segs[i];

		if (pa + PAGE <= s->pa + s->filesz)
			return m->map + s->off + (pa - s->pa);
		if (pa >= s->pa + s->filesz)
			return zero_page; /* p_memsz beyond p_filesz: zeros, as ELF defines */
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->part_pfn[mid] == pfn)
			return m->part_pages + mid * PAGE;
		if (m->part_pfn[mid] < pfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static u64 elf_phys_of(const struct llv_mem *m, u64 off)
{
	for (size_t i = 0; i < m->nsegs; i++)
		if (off >= m->segs[i].off && off - m->segs[i].off < m->segs[i].filesz)
			return m->segs[i].pa + (off - m->segs[i].off);
	return LLV_NO_PHYS;
}

/* ---- "image": the format told by the file's first bytes ------------------ */

static int image_open(struct llv_mem *m, const char *path, u64 ram_size, char *err,
		      size_t errlen)
{
	u8 magic[16] = { 0 };
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open guest memory: %s", path, strerror(errno));
		return -1;
	}
	n = pread(fd, magic, sizeof(magic), 0);
	close(fd);
	if (n >= SELFMAG && !memcmp(magic, ELFMAG, SELFMAG)) {
		m->driver = &llv_mem_elf;
	} else if (n >= 8 && !memcmp(magic, "KDUMP   ", 8)) {
		snprintf(err, errlen, "%s: a compressed kdump file (makedumpfile's default format, or "
			 "dump-guest-memory's kdump-zlib/lzo/snappy): give an ELF core instead "
			 "(makedumpfile -E, or dump-guest-memory's default ELF format)", path);
		return -1;
	} else if (n >= 12 && !memcmp(magic, "makedumpfile", 12)) {
		snprintf(err, errlen, "%s: makedumpfile's flattened format: rebuild it first "
			 "(makedumpfile -R OUT < FILE)", path);
		return -1;
	} else {
		m->driver = &llv_mem_flat; /* physical 0 is the real-mode IVT: never a magic */
	}
	return m->driver->open(m, path, ram_size, err, errlen);
}

static const u8 *no_page(const struct llv_mem *m, u64 pfn)
{
	(void)m;
	(void)pfn;
	return NULL;
}

static u64 no_phys(const struct llv_mem *m, u64 off)
{
	(void)m;
	(void)off;
	return LLV_NO_PHYS;
}

const struct llv_mem_driver llv_mem_q35_ram = { "q35-ram", q35_open, q35_page, q35_phys_of,
						unmap_file };
const struct llv_mem_driver llv_mem_image = { "image", image_open, no_page, no_phys,
					      unmap_file };
const struct llv_mem_driver llv_mem_elf = { "elf", elf_open, elf_page, elf_phys_of, elf_close };
const struct llv_mem_driver llv_mem_flat = { "flat", flat_open, flat_page, flat_phys_of,
					     unmap_file };

static const struct llv_mem_driver *const drivers[] = { &llv_mem_q35_ram, &llv_mem_image,
							&llv_mem_elf, &llv_mem_flat };

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
		snprintf(err, errlen, m->live ? "the guest memory file was removed (the VM stopped?)"
					      : "the dump file was removed");
		return -1;
	}
	if ((u64)st.st_size < m->map_size) {
		snprintf(err, errlen, "the %s shrank to %lld bytes",
			 m->live ? "guest memory file" : "dump file", (long long)st.st_size);
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
