/*
 * llview/detect.h - what llview's detection programs share: the views of
 * the loaded modules, who owns an address (core kernel text, a module's
 * text or data, a hidden module, or unknown memory) and the evidence fields
 * an alert carries for a pointer.
 *
 * Everything here is compiled with the IDS, against the monitored kernel's
 * headers, so its reads of guest memory are guest loads like the IDS's own.
 * Definitions the headers do not export (mod_tree's root, kernel/module/
 * internal.h) are restated below for 6.1, each with where it comes from.
 */
#ifndef LLVIEW_DETECT_H
#define LLVIEW_DETECT_H

#include <linux/kobject.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/rbtree.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <asm/sections.h>
#include <llview/ids.h>

/* kernel/module/internal.h (6.1, CONFIG_MODULES_TREE_LOOKUP): the latch tree
 * of every module's layouts and the lowest/highest module address ever used
 * (they never shrink, so a module removed from the tree is still inside). */
struct mod_tree_root {
	struct latch_tree_root root;
	unsigned long addr_min;
	unsigned long addr_max;
};
extern struct mod_tree_root mod_tree;
extern struct list_head modules; /* kernel/module/internal.h */
extern struct kset *module_kset;

/* Where a module was seen. A module absent from any view it should be in
 * is hiding. */
enum llview_view {
	LLVIEW_VIEW_LIST = 1 << 0,   /* the `modules` list (lsmod, /proc/modules) */
	LLVIEW_VIEW_SYSFS = 1 << 1,  /* module_kset's kobjects (/sys/module) */
	LLVIEW_VIEW_TREE = 1 << 2,   /* mod_tree (address -> module look-ups) */
	LLVIEW_VIEW_MEMORY = 1 << 3, /* a struct module carved from module memory */
};
#define LLVIEW_ALL_VIEWS \
	(LLVIEW_VIEW_LIST | LLVIEW_VIEW_SYSFS | LLVIEW_VIEW_TREE | LLVIEW_VIEW_MEMORY)

#define LLVIEW_MAX_MODULES 1024

struct llview_modules {
	unsigned int n;
	unsigned int views_taken; /* which views were walked */
	struct {
		struct module *mod;
		unsigned int views;
	} m[LLVIEW_MAX_MODULES];
};

static inline void llview_module_seen(struct llview_modules *set, struct module *mod,
				      unsigned int view)
{
	unsigned int i;

	for (i = 0; i < set->n; i++) {
		if (set->m[i].mod == mod) {
			set->m[i].views |= view;
			return;
		}
	}
	if (set->n == LLVIEW_MAX_MODULES) {
		llview_alert("more than %d modules: the module views are incomplete",
			     LLVIEW_MAX_MODULES);
		return;
	}
	set->m[set->n].mod = mod;
	set->m[set->n].views = view;
	set->n++;
}

static inline void llview_modules_from_list(struct llview_modules *set)
{
	struct module *mod;

	list_for_each_entry(mod, &modules, list)
		llview_module_seen(set, mod, LLVIEW_VIEW_LIST);
	set->views_taken |= LLVIEW_VIEW_LIST;
}

static inline void llview_modules_from_sysfs(struct llview_modules *set)
{
	struct kobject *k;

	list_for_each_entry(k, &module_kset->list, entry) {
		struct module_kobject *mk = container_of(k, struct module_kobject, kobj);

		/* Built-in code with parameters has a kobject but no module. */
		if (mk->mod)
			llview_module_seen(set, mk->mod, LLVIEW_VIEW_SYSFS);
	}
	set->views_taken |= LLVIEW_VIEW_SYSFS;
}

/* In-order walk of one copy of the latch tree (both copies hold the same
 * nodes); recursion depth is the tree's height, bounded by the read budget. */
static inline void llview_modules_from_rb(struct llview_modules *set, struct rb_node *node)
{
	for (; node; node = node->rb_right) {
		struct mod_tree_node *mtn =
			container_of(node, struct mod_tree_node, node.node[0]);

		llview_modules_from_rb(set, node->rb_left);
		llview_module_seen(set, mtn->mod, LLVIEW_VIEW_TREE);
	}
}

static inline void llview_modules_from_tree(struct llview_modules *set)
{
	llview_modules_from_rb(set, mod_tree.root.tree[0].rb_node);
	set->views_taken |= LLVIEW_VIEW_TREE;
}

/* A struct module in memory points at itself through mkobj.mod; its
 * layout must be plausible and its name a C string. */
static inline int llview_is_module_at(unsigned long addr)
{
	struct module *mod = (struct module *)addr;
	unsigned long self, base;
	unsigned int size;
	char name[MODULE_NAME_LEN];

	if (copy_from_kernel_nofault(&self, &mod->mkobj.mod, sizeof(self)) || self != addr)
		return 0;
	if (copy_from_kernel_nofault(&base, &mod->core_layout.base, sizeof(base)) ||
	    copy_from_kernel_nofault(&size, &mod->core_layout.size, sizeof(size)) ||
	    copy_from_kernel_nofault(name, mod->name, sizeof(name)))
		return 0;
	return addr >= base && addr < base + size && strnlen(name, sizeof(name)) < sizeof(name);
}

/* The struct modules in one page of module memory (at its cache lines). */
static inline void llview_carve_page(struct llview_modules *set, unsigned long page,
				     const unsigned long *word)
{
	const unsigned long self_at = offsetof(struct module, mkobj.mod);
	unsigned long off;

	for (off = 0; off < PAGE_SIZE; off += SMP_CACHE_BYTES) {
		unsigned long at = page + off;

		/* The cheap test first, on the page in hand when it holds the field. */
		if (off + self_at + sizeof(long) <= PAGE_SIZE &&
		    word[(off + self_at) / sizeof(long)] != at)
			continue;
		if (llview_is_module_at(at))
			llview_module_seen(set, (struct module *)at, LLVIEW_VIEW_MEMORY);
	}
}

#define LLVIEW_CARVE_PAGES 32 /* read together; one unmapped page sends us page by page */

/* Carves module memory: every cache line of [mod_tree.addr_min, addr_max)
 * that holds a struct module (the struct is cache-line aligned). Unmapped
 * pages between modules are skipped. */
static inline void llview_modules_from_memory(struct llview_modules *set)
{
	static unsigned long chunk[LLVIEW_CARVE_PAGES][PAGE_SIZE / sizeof(unsigned long)];
	unsigned long lo = mod_tree.addr_min & PAGE_MASK, hi = mod_tree.addr_max, start;

	for (start = lo; lo < hi && start < hi; start += LLVIEW_CARVE_PAGES * PAGE_SIZE) {
		unsigned long pages = min((hi - start + PAGE_SIZE - 1) / PAGE_SIZE,
					  (unsigned long)LLVIEW_CARVE_PAGES);
		int whole = !copy_from_kernel_nofault(chunk, (void *)start, pages * PAGE_SIZE);
		unsigned long i;

		for (i = 0; i < pages; i++) {
			unsigned long page = start + i * PAGE_SIZE;

			if (whole || !copy_from_kernel_nofault(chunk[i], (void *)page, PAGE_SIZE))
				llview_carve_page(set, page, chunk[i]);
		}
	}
	set->views_taken |= LLVIEW_VIEW_MEMORY;
}

static inline void llview_modules_all_views(struct llview_modules *set)
{
	llview_modules_from_list(set);
	llview_modules_from_sysfs(set);
	llview_modules_from_tree(set);
	llview_modules_from_memory(set);
}

/* "list,sysfs" for a set of views. */
static inline const char *llview_views_text(unsigned int views, char *buf, size_t len)
{
	static const char *const names[] = { "list", "sysfs", "mod_tree", "memory" };
	unsigned int i;
	size_t used = 0;

	buf[0] = 0;
	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (views & (1u << i))
			used += scnprintf(buf + used, len - used, "%s%s", used ? "," : "", names[i]);
	return buf;
}

/* ---- who owns an address ---- */

enum llview_owner_kind {
	LLVIEW_OWNER_UNKNOWN,     /* no kernel image, no module: heap, vmalloc, nothing */
	LLVIEW_OWNER_CORE_TEXT,   /* the core kernel's text, _stext.._etext */
	LLVIEW_OWNER_INIT_TEXT,   /* its boot-time text, _sinittext.._einittext (freed) */
	LLVIEW_OWNER_CORE_DATA,   /* the rest of the core kernel's image */
	LLVIEW_OWNER_MODULE_TEXT, /* a module's core or init text */
	LLVIEW_OWNER_MODULE_DATA, /* a module's read-only or writable data */
};

struct llview_owner {
	enum llview_owner_kind kind;
	struct module *mod;        /* for the module kinds */
	unsigned int views;        /* where that module was seen */
	unsigned long offset;      /* from the module's layout base */
	char name[MODULE_NAME_LEN]; /* the module's name */
};

static inline int llview_in_layout(const struct module_layout *l, unsigned long addr,
				   int *text, unsigned long *offset)
{
	unsigned long base = (unsigned long)l->base;

	if (!base || addr < base || addr >= base + l->size)
		return 0;
	*text = addr < base + l->text_size;
	*offset = addr - base;
	return 1;
}

/* Who owns addr. The modules in `set` are asked (walk the views you trust
 * first: a set with the memory view also names hidden modules). */
static inline void llview_owner_of(const struct llview_modules *set, unsigned long addr,
				   struct llview_owner *o)
{
	unsigned int i;

	memset(o, 0, sizeof(*o));
	if (addr >= (unsigned long)_stext && addr < (unsigned long)_etext) {
		o->kind = LLVIEW_OWNER_CORE_TEXT;
		return;
	}
	if (addr >= (unsigned long)_sinittext && addr < (unsigned long)_einittext) {
		o->kind = LLVIEW_OWNER_INIT_TEXT;
		return;
	}
	if (addr >= (unsigned long)_text && addr < (unsigned long)_end) {
		o->kind = LLVIEW_OWNER_CORE_DATA;
		return;
	}
	for (i = 0; i < set->n; i++) {
		struct module *mod = set->m[i].mod;
		int text;

		if (llview_in_layout(&mod->core_layout, addr, &text, &o->offset) ||
		    llview_in_layout(&mod->init_layout, addr, &text, &o->offset)) {
			o->kind = text ? LLVIEW_OWNER_MODULE_TEXT : LLVIEW_OWNER_MODULE_DATA;
			o->mod = mod;
			o->views = set->m[i].views;
			strscpy(o->name, mod->name, sizeof(o->name));
			return;
		}
	}
}

/* A module is listed when lsmod shows it; any other one is hidden. */
static inline int llview_owner_listed(const struct llview_owner *o)
{
	return o->mod && (o->views & LLVIEW_VIEW_LIST);
}

/* "core kernel text", "module ext4 (text)", "hidden module rk (data)", ... */
static inline const char *llview_owner_text(const struct llview_owner *o, char *buf, size_t len)
{
	switch (o->kind) {
	case LLVIEW_OWNER_CORE_TEXT:
		return "core kernel text";
	case LLVIEW_OWNER_INIT_TEXT:
		return "core kernel init text (freed after boot)";
	case LLVIEW_OWNER_CORE_DATA:
		return "core kernel data";
	case LLVIEW_OWNER_MODULE_TEXT:
	case LLVIEW_OWNER_MODULE_DATA:
		scnprintf(buf, len, "%smodule %s (%s)", llview_owner_listed(o) ? "" : "hidden ",
			  o->name, o->kind == LLVIEW_OWNER_MODULE_TEXT ? "text" : "data");
		return buf;
	default:
		return "unknown memory";
	}
}

/* The symbol of a module address from the module's own symbol table
 * (mod->kallsyms): "rk_kill+0x1c", or "" when none holds it. */
static inline void llview_module_symbol(struct module *mod, unsigned long addr, char *buf,
					size_t len)
{
	struct mod_kallsyms *ks = mod->kallsyms;
	unsigned long best = 0;
	unsigned int i, best_i = 0;

	buf[0] = 0;
	if (!ks)
		return;
	for (i = 1; i < ks->num_symtab && i < 65536; i++) {
		const Elf_Sym *sym = &ks->symtab[i];

		if (sym->st_shndx == SHN_UNDEF || sym->st_value > addr || sym->st_value < best)
			continue;
		if (sym->st_size && addr >= sym->st_value + sym->st_size)
			continue;
		best = sym->st_value;
		best_i = i;
	}
	if (best)
		scnprintf(buf, len, "%s+0x%lx", ks->strtab + ks->symtab[best_i].st_name,
			  addr - best);
}

/* What an alert is about, under the same two keys in every program's
 * alerts: "object" (for a person: "sys_call_table[62]", "pid 812 (sleep)")
 * and "address" (where it lives in the guest). */
static inline void llview_field_object(const char *object, unsigned long address)
{
	llview_field_str("object", object);
	llview_field_hex("address", address);
}

/* "name+0x4" for a core-kernel address, else its hex value. */
static inline const char *llview_symbolize_text(unsigned long addr, char *buf, size_t len)
{
	struct llview_symbol ks;

	if (llview_symbolize(addr, &ks))
		scnprintf(buf, len, "%px", (void *)addr);
	else if (addr == ks.start)
		scnprintf(buf, len, "%s", ks.name);
	else
		scnprintf(buf, len, "%s+0x%lx", ks.name, addr - ks.start);
	return buf;
}

/* The evidence for a pointer, as alert fields: KEY (the address),
 * KEY_symbol ("name+0x1c/0x80" in the core kernel, "name+0x1c [module]" in
 * a module) and KEY_owner (llview_owner_text). Returns the owner. */
static inline void llview_field_pointer(const struct llview_modules *set, const char *key,
					unsigned long addr, struct llview_owner *o)
{
	char field[64], text[MODULE_NAME_LEN + 160], sym[160];
	struct llview_symbol ks;

	llview_owner_of(set, addr, o);
	llview_field_hex(key, addr);
	scnprintf(field, sizeof(field), "%s_symbol", key);
	if (!llview_symbolize(addr, &ks)) {
		scnprintf(text, sizeof(text), "%s+0x%lx/0x%lx", ks.name, addr - ks.start, ks.size);
		llview_field_str(field, text);
	} else if (o->mod) {
		llview_module_symbol(o->mod, addr, sym, sizeof(sym));
		scnprintf(text, sizeof(text), "%s [%s]", sym[0] ? sym : "?", o->name);
		llview_field_str(field, text);
	}
	scnprintf(field, sizeof(field), "%s_owner", key);
	llview_field_str(field, llview_owner_text(o, text, sizeof(text)));
	if (o->mod) {
		scnprintf(field, sizeof(field), "%s_module", key);
		llview_field_str(field, o->name);
	}
}

/* cpu_online() without its `bt` instruction, which reads memory the IDS
 * must fetch through llview (inline assembly cannot). */
static inline int llview_cpu_online(unsigned int cpu)
{
	return (cpumask_bits(cpu_online_mask)[cpu / BITS_PER_LONG] >> (cpu % BITS_PER_LONG)) & 1;
}

/* ---- a set of kernel addresses (tasks, creds, ...) ---- */

#define LLVIEW_SET_SLOTS (1u << 16) /* a power of two, twice pid_max's default */

struct llview_addr_set {
	unsigned int n;
	unsigned long slot[LLVIEW_SET_SLOTS];
	unsigned long value[LLVIEW_SET_SLOTS]; /* what the caller attaches */
};

/* The slot holding addr, or the empty one where it goes; NULL when full. */
static inline unsigned long *llview_set_slot(struct llview_addr_set *s, unsigned long addr)
{
	unsigned int i = (unsigned int)((addr >> 6) * 0x9e3779b1u) & (LLVIEW_SET_SLOTS - 1);
	unsigned int probes;

	for (probes = 0; probes < LLVIEW_SET_SLOTS; probes++, i = (i + 1) & (LLVIEW_SET_SLOTS - 1))
		if (s->slot[i] == addr || !s->slot[i])
			return &s->slot[i];
	return NULL;
}

/* Adds addr (non-zero); returns its value slot, or NULL when the set is full. */
static inline unsigned long *llview_set_add(struct llview_addr_set *s, unsigned long addr)
{
	unsigned long *slot = llview_set_slot(s, addr);

	if (!slot || (!*slot && 2 * (s->n + 1) > LLVIEW_SET_SLOTS))
		return NULL;
	if (!*slot) {
		*slot = addr;
		s->n++;
	}
	return &s->value[slot - s->slot];
}

static inline int llview_set_has(struct llview_addr_set *s, unsigned long addr)
{
	unsigned long *slot = llview_set_slot(s, addr);

	return slot && *slot == addr;
}

static inline void llview_set_clear(struct llview_addr_set *s)
{
	memset(s, 0, sizeof(*s));
}

#endif /* LLVIEW_DETECT_H */
