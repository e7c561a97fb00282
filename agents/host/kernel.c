/*
 * kernel.c - the guest kernel as seen from its RAM: the VMCOREINFO note,
 * address translation through the kernel's own page tables (init_top_pgt),
 * and the kallsyms symbol table decoded once at start into a hash table.
 *
 * Everything read here comes from guest memory an intruder may control, so
 * every count and length is bounded and every read goes through the
 * bounds-checked page source.
 */
#define _GNU_SOURCE
#include "kernel.h"

#include <ctype.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define START_KERNEL_MAP 0xffffffff80000000ull
#define NOTE_MAX 4096          /* VMCOREINFO_BYTES: the note is one page */
#define KSYM_NAME_LEN 512
#define MAX_SYMS (2u << 20)    /* far above any real kernel (~100k-200k) */
#define MAX_TOKEN_LEN 256

/* ---- VMCOREINFO ---------------------------------------------------- */

static int parse_hex(const char *v, u64 *out)
{
	char *end;

	if (!isxdigit((unsigned char)*v))
		return -1;
	errno = 0;
	*out = strtoull(v, &end, 16);
	return errno || *end ? -1 : 0;
}

static int parse_dec(const char *v, long long *out)
{
	char *end;

	if (!(isdigit((unsigned char)*v) || (*v == '-' && isdigit((unsigned char)v[1]))))
		return -1;
	errno = 0;
	*out = strtoll(v, &end, 10);
	return errno || *end ? -1 : 0;
}

/* Parses the note text starting at text (at most len bytes, NUL or a
 * non-text byte ends it). Returns 0 if it holds the required fields. */
static int parse_note(const char *text, size_t len, struct llv_vmcoreinfo *vi)
{
	char line[256];
	size_t pos = 0;
	int have_root = 0, have_phys_base = 0;

	memset(vi, 0, sizeof(*vi));
	while (pos < len && text[pos]) {
		size_t n = 0;
		char *eq;
		u64 hex;
		long long dec;

		while (pos + n < len && text[pos + n] != '\n' && text[pos + n]) {
			if (!isprint((unsigned char)text[pos + n]) || n >= sizeof(line) - 1)
				return -1;
			line[n] = text[pos + n];
			n++;
		}
		if (pos + n >= len || text[pos + n] != '\n')
			break; /* a note line always ends with a newline */
		line[n] = 0;
		pos += n + 1;
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = 0;
		const char *key = line, *val = eq + 1;

		if (!strcmp(key, "OSRELEASE")) {
			if (!*val || strchr(val, '%') || strlen(val) >= sizeof(vi->release))
				return -1; /* the format string in the kernel image, not the note */
			strcpy(vi->release, val);
		} else if (!strncmp(key, "SYMBOL(", 7) && !parse_hex(val, &hex)) {
			static const struct { const char *name; size_t off; } syms[] = {
#define F(n) { "SYMBOL(" #n ")", offsetof(struct llv_vmcoreinfo, n) }
				F(init_top_pgt), F(kallsyms_names), F(kallsyms_num_syms),
				F(kallsyms_token_table), F(kallsyms_token_index),
				F(kallsyms_offsets), F(kallsyms_relative_base),
				{ "SYMBOL(_stext)", offsetof(struct llv_vmcoreinfo, stext) },
#undef F
			};
			for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
				if (!strcmp(key, syms[i].name))
					memcpy((char *)vi + syms[i].off, &hex, sizeof(hex));
			if (!strcmp(key, "SYMBOL(init_top_pgt)"))
				have_root = 1;
		} else if (!strcmp(key, "NUMBER(phys_base)") && !parse_dec(val, &dec)) {
			vi->phys_base = dec;
			have_phys_base = 1;
		} else if (!strcmp(key, "NUMBER(pgtable_l5_enabled)") && !parse_dec(val, &dec)) {
			vi->l5 = dec == 1;
		} else if (!strcmp(key, "NUMBER(sme_mask)") && !parse_dec(val, &dec)) {
			vi->sme_mask = (u64)dec;
		} else if (!strcmp(key, "KERNELOFFSET") && !parse_hex(val, &hex)) {
			vi->kernel_offset = hex;
		}
	}
	return vi->release[0] && have_root && have_phys_base ? 0 : -1;
}

int llv_find_vmcoreinfo(const struct llv_mem *m, u64 *cursor, struct llv_vmcoreinfo *vi,
			char *err, size_t errlen)
{
	static const char key[] = "OSRELEASE=";

	while (*cursor < m->map_size) {
		const char *hit = memmem(m->map + *cursor, m->map_size - *cursor, key, sizeof(key) - 1);
		u64 off;

		if (!hit)
			break;
		off = (u64)((const u8 *)hit - m->map);
		*cursor = off + 1;
		/* An ELF core's headers and notes are in the file but not in RAM. */
		if (llv_mem_phys_of(m, off) == LLV_NO_PHYS)
			continue;
		if (!parse_note(hit, m->map_size - off < NOTE_MAX ? m->map_size - off : NOTE_MAX, vi)) {
			vi->found_at = llv_mem_phys_of(m, off);
			return 0;
		}
	}
	*cursor = m->map_size;
	snprintf(err, errlen, "no VMCOREINFO note in guest RAM (is the guest kernel still booting?)");
	return -1;
}

int llv_parse_vmcoreinfo(const char *text, size_t len, struct llv_vmcoreinfo *vi)
{
	if (parse_note(text, len < NOTE_MAX ? len : NOTE_MAX, vi))
		return -1;
	vi->found_at = LLV_NO_PHYS;
	return 0;
}

/* ---- translation and reads ------------------------------------------ */

int llv_kernel_translate(const struct llv_kernel *k, u64 va, u64 *pa)
{
	return llv_translate(k->mode, k->root, k->pte_clear, va, llv_mem_page_cb, (void *)k->mem, pa);
}

const u8 *llv_kernel_page(const struct llv_kernel *k, u64 va, int *status)
{
	u64 pa;

	*status = llv_kernel_translate(k, va, &pa);
	return *status == LLV_OK ? llv_mem_page(k->mem, pa >> 12) : NULL;
}

int llv_kernel_read(const struct llv_kernel *k, u64 va, void *dst, size_t len)
{
	u8 *out = dst;

	while (len) {
		int status;
		const u8 *page = llv_kernel_page(k, va, &status);
		size_t in_page = 4096 - (va & 4095), n = len < in_page ? len : in_page;

		if (!page)
			return status;
		memcpy(out, page + (va & 4095), n);
		out += n;
		va += n;
		len -= n;
	}
	return LLV_OK;
}

/* Byte-at-a-time reader over guest virtual memory that translates once per
 * page: kallsyms_names is a few MiB read one byte at a time. */
struct vcursor {
	const struct llv_kernel *k;
	u64 page_va;
	const u8 *page;
};

static int vbyte(struct vcursor *c, u64 va, u8 *out)
{
	if (!c->page || (va & ~4095ull) != c->page_va) {
		int status;

		c->page = llv_kernel_page(c->k, va, &status);
		if (!c->page)
			return status;
		c->page_va = va & ~4095ull;
	}
	*out = c->page[va & 4095];
	return LLV_OK;
}

/* ---- symbols -------------------------------------------------------- */

static u32 name_hash(const char *s)
{
	u32 h = 2166136261u;

	while (*s)
		h = (h ^ (u8)*s++) * 16777619u;
	return h;
}

static void hash_insert(struct llv_kernel *k, u32 i)
{
	const char *name = k->names + k->name_off[i];
	u32 mask = k->nbuckets - 1;

	for (u32 b = name_hash(name) & mask;; b = (b + 1) & mask) {
		u32 j = k->bucket[b];

		if (!j) {
			k->bucket[b] = i + 1;
			return;
		}
		if (!strcmp(k->names + k->name_off[j - 1], name)) {
			/* Same name twice (static functions): prefer a global. */
			k->dup[j - 1] = k->dup[i] = 1;
			if (islower((unsigned char)k->type[j - 1]) && isupper((unsigned char)k->type[i]))
				k->bucket[b] = i + 1;
			return;
		}
	}
}

static long symbol_index(const struct llv_kernel *k, const char *name)
{
	u32 mask = k->nbuckets - 1;

	if (!k->nbuckets)
		return -1;
	for (u32 b = name_hash(name) & mask;; b = (b + 1) & mask) {
		u32 j = k->bucket[b];

		if (!j)
			return -1;
		if (!strcmp(k->names + k->name_off[j - 1], name))
			return j - 1;
	}
}

u64 llv_kernel_symbol(const struct llv_kernel *k, const char *name)
{
	long i = symbol_index(k, name);

	return i < 0 ? 0 : k->addr[i];
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); goto fail; } while (0)

/* qsort has no context argument: the kernel being indexed (decoding is single-threaded). */
static const struct llv_kernel *sorting;

static int by_address(const void *a, const void *b)
{
	u32 i = *(const u32 *)a, j = *(const u32 *)b;
	u64 x = sorting->addr[i], y = sorting->addr[j];

	return x < y ? -1 : x > y ? 1 : (i > j) - (i < j);
}

static int decode_kallsyms(struct llv_kernel *k, char *err, size_t errlen)
{
	const struct llv_vmcoreinfo *vi = &k->vi;
	double t0 = now_ms();
	struct vcursor c = { .k = k };
	u16 token_index[256];
	char *tokens = NULL; /* 256 NUL-terminated expansions */
	u32 token_off[256], token_len[256], n = 0;
	size_t names_cap, names_len = 0;
	int32_t *offsets = NULL;
	u64 relative_base = 0, pos;
	long stext_index = -1;
	int st;

	if ((st = llv_kernel_read(k, vi->kallsyms_num_syms, &n, sizeof(n))))
		FAIL("cannot read kallsyms_num_syms at 0x%llx (status %d)",
		     (unsigned long long)vi->kallsyms_num_syms, st);
	if (n == 0 || n > MAX_SYMS)
		FAIL("kallsyms_num_syms = %u is not plausible", n);
	if ((st = llv_kernel_read(k, vi->kallsyms_token_index, token_index, sizeof(token_index))) ||
	    (st = llv_kernel_read(k, vi->kallsyms_relative_base, &relative_base,
				  sizeof(relative_base))))
		FAIL("cannot read kallsyms_token_index/relative_base (status %d)", st);

	tokens = malloc(256 * (MAX_TOKEN_LEN + 1));
	offsets = malloc((size_t)n * sizeof(*offsets));
	k->name_off = malloc((size_t)n * sizeof(*k->name_off));
	k->addr = malloc((size_t)n * sizeof(*k->addr));
	k->type = malloc(n);
	k->dup = calloc(n, 1);
	names_cap = (size_t)n * 24;
	k->names = malloc(names_cap);
	if (!tokens || !offsets || !k->name_off || !k->addr || !k->type || !k->dup || !k->names)
		FAIL("out of memory for %u symbols", n);

	for (int t = 0, used = 0; t < 256; t++) {
		u32 len = 0;
		u8 ch = 1;

		token_off[t] = used;
		while (len <= MAX_TOKEN_LEN) {
			if ((st = vbyte(&c, vi->kallsyms_token_table + token_index[t] + len, &ch)))
				FAIL("cannot read kallsyms_token_table (status %d)", st);
			if (!ch)
				break;
			tokens[used + len++] = (char)ch;
		}
		if (ch)
			FAIL("kallsyms token %d is not terminated", t);
		tokens[used + len] = 0;
		token_len[t] = len;
		used += len + 1;
	}

	pos = vi->kallsyms_names;
	for (u32 i = 0; i < n; i++) {
		char name[KSYM_NAME_LEN];
		u32 len, name_len = 0;
		u8 b;

		if ((st = vbyte(&c, pos++, &b)))
			FAIL("cannot read kallsyms_names (symbol %u, status %d)", i, st);
		len = b;
		if (b & 0x80) { /* "big" symbol: 14-bit length over two bytes */
			if ((st = vbyte(&c, pos++, &b)))
				FAIL("cannot read kallsyms_names (symbol %u, status %d)", i, st);
			len = (len & 0x7f) | ((u32)b << 7);
		}
		if (len == 0)
			FAIL("kallsyms symbol %u has an empty name", i);
		for (u32 j = 0; j < len; j++) {
			if ((st = vbyte(&c, pos++, &b)))
				FAIL("cannot read kallsyms_names (symbol %u, status %d)", i, st);
			if (name_len + token_len[b] >= sizeof(name))
				FAIL("kallsyms symbol %u is longer than %d bytes", i, KSYM_NAME_LEN);
			memcpy(name + name_len, tokens + token_off[b], token_len[b]);
			name_len += token_len[b];
		}
		name[name_len] = 0;
		if (name_len < 2)
			FAIL("kallsyms symbol %u has no name after its type", i);
		if (names_len + name_len > names_cap) {
			char *grown = realloc(k->names, names_cap * 2);

			if (!grown)
				FAIL("out of memory for symbol names");
			k->names = grown;
			names_cap *= 2;
		}
		k->type[i] = name[0];
		k->name_off[i] = (u32)names_len;
		memcpy(k->names + names_len, name + 1, name_len); /* includes the NUL */
		names_len += name_len;
		if (stext_index < 0 && !strcmp(name + 1, "_stext"))
			stext_index = i;
	}

	if ((st = llv_kernel_read(k, vi->kallsyms_offsets, offsets, (size_t)n * sizeof(*offsets))))
		FAIL("cannot read kallsyms_offsets (status %d)", st);
	/* CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86-64): non-negative offsets are
	 * absolute (per-cpu symbols), negative ones count down from the base.
	 * Without it every offset is relative. _stext decides which one holds. */
	int absolute_percpu = 1;

	if (stext_index >= 0 && vi->stext) {
		int32_t o = offsets[stext_index];
		u64 absolute = o >= 0 ? (u64)o : relative_base - 1 - o;
		u64 relative = relative_base + (u32)o;

		if (absolute != vi->stext && relative != vi->stext)
			FAIL("kallsyms gives _stext = 0x%llx (or 0x%llx) but VMCOREINFO says 0x%llx",
			     (unsigned long long)absolute, (unsigned long long)relative,
			     (unsigned long long)vi->stext);
		absolute_percpu = absolute == vi->stext;
	} else if (vi->stext) {
		FAIL("kallsyms has no _stext to check against VMCOREINFO");
	}
	for (u32 i = 0; i < n; i++) {
		int32_t o = offsets[i];

		k->addr[i] = !absolute_percpu ? relative_base + (u32)o
			     : o >= 0	      ? (u64)o
					      : relative_base - 1 - o;
	}

	k->nsyms = n;
	/* kallsyms is sorted by address already (scripts/kallsyms), but the
	 * agent does not take a guest's word for it: SYMBOLIZE searches this. */
	k->by_addr = malloc((size_t)n * sizeof(*k->by_addr));
	if (!k->by_addr)
		FAIL("out of memory for the address index");
	for (u32 i = 0; i < n; i++)
		k->by_addr[i] = i;
	sorting = k;
	qsort(k->by_addr, n, sizeof(*k->by_addr), by_address);
	for (k->nbuckets = 1; k->nbuckets < 2 * n; k->nbuckets <<= 1)
		;
	k->bucket = calloc(k->nbuckets, sizeof(*k->bucket));
	if (!k->bucket)
		FAIL("out of memory for the symbol hash table");
	for (u32 i = 0; i < n; i++)
		hash_insert(k, i);
	free(tokens);
	free(offsets);
	k->decode_ms = now_ms() - t0;
	return 0;
fail:
	free(tokens);
	free(offsets);
	return -1;
}

const char *llv_kernel_symbolize(const struct llv_kernel *k, u64 va, u64 *start, u64 *size)
{
	u64 stext = llv_kernel_symbol(k, "_stext"), end = llv_kernel_symbol(k, "_end");
	const u32 *idx = k->by_addr;
	u32 lo = 0, hi = k->nsyms;

	if (!k->nsyms || !idx || !stext || va < stext || va >= end || k->addr[idx[0]] > va)
		return NULL;
	/* The last entry <= va, then back to the first of its aliases. */
	while (hi - lo > 1) {
		u32 mid = lo + (hi - lo) / 2;

		if (k->addr[idx[mid]] <= va)
			lo = mid;
		else
			hi = mid;
	}
	while (lo && k->addr[idx[lo - 1]] == k->addr[idx[lo]])
		lo--;
	*start = k->addr[idx[lo]];
	*size = end - *start;
	for (u32 i = lo + 1; i < k->nsyms; i++) {
		if (k->addr[idx[i]] > *start) {
			*size = k->addr[idx[i]] - *start;
			break;
		}
	}
	return k->names + k->name_off[idx[lo]];
}

void llv_kernel_free(struct llv_kernel *k)
{
	free(k->names);
	free(k->name_off);
	free(k->addr);
	free(k->type);
	free(k->dup);
	free(k->by_addr);
	free(k->bucket);
	memset(k, 0, sizeof(*k));
}

int llv_kernel_raw(struct llv_kernel *k, const struct llv_mem *m, u64 root, int levels,
		   char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->mem = m;
	k->mode = llv_paging_mode_for(levels);
	k->root = root & ~4095ull;
	if (!k->mode) {
		snprintf(err, errlen, "--levels must be 4 or 5, not %d", levels);
		return -1;
	}
	if (!llv_mem_page(m, k->root >> 12)) {
		snprintf(err, errlen, "page-table root 0x%llx is outside guest RAM",
			 (unsigned long long)root);
		return -1;
	}
	return 0;
}

int llv_kernel_from_vmcoreinfo(struct llv_kernel *k, const struct llv_mem *m,
			       const struct llv_vmcoreinfo *vi, char *err, size_t errlen)
{
	u64 pa = 0;
	int st;

	memset(k, 0, sizeof(*k));
	k->mem = m;
	k->vi = *vi;
	k->have_vmcoreinfo = 1;
	k->mode = vi->l5 ? &llv_paging_5level : &llv_paging_4level;
	k->pte_clear = vi->sme_mask;
	k->root = (vi->init_top_pgt - START_KERNEL_MAP + (u64)vi->phys_base) & ~4095ull;
	if (!llv_mem_page(m, k->root >> 12))
		FAIL("VMCOREINFO puts init_top_pgt at physical 0x%llx, outside guest RAM",
		     (unsigned long long)k->root);
	/* The kernel maps its own page tables: init_top_pgt must translate to
	 * the very page we walk from, or the note does not match this RAM. */
	st = llv_kernel_translate(k, vi->init_top_pgt, &pa);
	if (st != LLV_OK || (pa & ~4095ull) != k->root)
		FAIL("init_top_pgt 0x%llx does not translate to its own page 0x%llx (status %d, got "
		     "0x%llx): stale VMCOREINFO?",
		     (unsigned long long)vi->init_top_pgt, (unsigned long long)k->root, st,
		     (unsigned long long)pa);
	if (!vi->kallsyms_names || !vi->kallsyms_num_syms || !vi->kallsyms_token_table ||
	    !vi->kallsyms_token_index || !vi->kallsyms_offsets || !vi->kallsyms_relative_base) {
		fprintf(stderr, "llview-agent: warning: VMCOREINFO does not locate kallsyms; "
				"symbol look-ups will answer 0\n");
		return 0;
	}
	if (decode_kallsyms(k, err, errlen))
		goto fail;
	u64 pob = llv_kernel_symbol(k, "page_offset_base");

	if (pob && llv_kernel_read(k, pob, &k->page_offset_base, sizeof(k->page_offset_base)))
		k->page_offset_base = 0;
	return 0;
fail:
	llv_kernel_free(k);
	return -1;
}

long llv_kernel_check_system_map(const struct llv_kernel *k, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024], name[KSYM_NAME_LEN], type;
	unsigned long long addr;
	long compared = 0, mismatched = 0;

	if (!f) {
		fprintf(stderr, "llview-agent: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		long i;

		if (sscanf(line, "%llx %c %511s", &addr, &type, name) != 3)
			continue;
		/* Per-cpu and absolute symbols do not move with KASLR. */
		if (addr < START_KERNEL_MAP || (i = symbol_index(k, name)) < 0 || k->dup[i])
			continue;
		compared++;
		if (addr + k->vi.kernel_offset != k->addr[i]) {
			if (mismatched++ < 5)
				fprintf(stderr,
					"llview-agent: System.map: %s at 0x%llx + slide != kallsyms 0x%llx\n",
					name, addr, (unsigned long long)k->addr[i]);
		}
	}
	fclose(f);
	fprintf(stderr, "llview-agent: System.map cross-check: %ld symbols compared, %ld mismatched%s\n",
		compared, mismatched,
		compared ? "" : " (a placeholder System.map? Debian's real one is in the -dbg package)");
	return mismatched;
}
