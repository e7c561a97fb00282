/*
 * kernel_hooks.c - the function pointers rootkits hijack must point where
 * the kernel put them: into the text of whoever owns the table (the core
 * kernel for its own tables, the owning module for a module's):
 *   - every present IDT gate (idt_table);
 *   - every ftrace_ops on ftrace_ops_list: a callback outside the core
 *     kernel is a module hooking the functions in its filter (reported with
 *     them), the way ftrace-based rootkits hook syscalls and /proc;
 *   - the seq_operations behind /proc/net/{tcp,tcp6,udp,udp6,raw,raw6,unix,
 *     packet} (hiding sockets from netstat/ss);
 *   - the keyboard notifier chain (keyloggers);
 *   - every registered tty line discipline's operations (receive_buf:
 *     terminal sniffers).
 * An alert names the hook, the pointer, its symbol and its owner.
 * Cannot see: inline patches of the code those pointers lead to, and hooks
 * in tables not listed here.
 */
#include <linux/ftrace.h>
#include <linux/kallsyms.h>
#include <linux/notifier.h>
#include <linux/seq_file.h>
#include <linux/tty.h>
#include <linux/tty_ldisc.h>
#include <asm/desc.h>
#include <llview/detect.h>

/* arch/x86/kernel/idt.c, drivers/tty/tty_ldisc.c: static, found in kallsyms. */
extern gate_desc idt_table[IDT_ENTRIES];

/* kernel/trace/trace.h (6.1): a filter hash of ftrace_func_entry. */
struct ftrace_hash {
	unsigned long size_bits;
	struct hlist_head *buckets;
	unsigned long count;
	unsigned long flags;
	struct rcu_head rcu;
};

static struct llview_modules mods;
static unsigned int hooks_checked;

/* Module views for owners: the list always; all four (naming hidden
 * modules) once something points outside the expected text. */
static void owner_of(unsigned long addr, struct llview_owner *o)
{
	llview_owner_of(&mods, addr, o);
	if (o->kind != LLVIEW_OWNER_CORE_TEXT && mods.views_taken != LLVIEW_ALL_VIEWS) {
		llview_modules_all_views(&mods);
		llview_owner_of(&mods, addr, o);
	}
}

/* The pointer `hook` = addr, kept at `slot`, must point into the text of
 * `owner` (NULL: the core kernel). A NULL pointer is an unused slot. */
static void expect_pointer(const char *technique, const char *hook, unsigned long slot,
			   unsigned long addr, struct module *owner)
{
	struct llview_owner o;
	char text[96];

	hooks_checked++;
	if (!addr)
		return;
	owner_of(addr, &o);
	if (owner ? o.kind == LLVIEW_OWNER_MODULE_TEXT && o.mod == owner
		  : o.kind == LLVIEW_OWNER_CORE_TEXT)
		return;
	llview_alert_begin(technique);
	llview_field_object(hook, slot);
	llview_field_str("hook", hook);
	llview_field_pointer(&mods, "target", addr, &o);
	if (owner)
		scnprintf(text, sizeof(text), "module %s (text)", owner->name);
	llview_field_str("expected_owner", owner ? text : "core kernel text");
	llview_alert_end("%s points into %s", hook, llview_owner_text(&o, text, sizeof(text)));
}

/* The same for the pointer kept at slot. */
static void expect_text(const char *technique, const char *hook, const void *slot,
			struct module *owner)
{
	expect_pointer(technique, hook, (unsigned long)slot, *(const unsigned long *)slot, owner);
}

/* arch/x86/kernel/head_64.S: the boot-time exception stubs. */
extern const char early_idt_handler_array[NUM_EXCEPTION_VECTORS][EARLY_IDT_HANDLER_SIZE];

static void check_idt(void)
{
	unsigned long early = (unsigned long)early_idt_handler_array;
	char hook[32];
	unsigned int v;

	for (v = 0; v < IDT_ENTRIES; v++) {
		const gate_desc *g = &idt_table[v];
		/* A gate keeps its handler's address in three pieces. */
		unsigned long target = gate_offset(g);

		if (!g->bits.p)
			continue;
		/* Reserved exception vectors keep their boot-time stub (in init text,
		 * freed after boot): the kernel's own leftover, never reached. */
		if (v < NUM_EXCEPTION_VECTORS && target == early + v * EARLY_IDT_HANDLER_SIZE)
			continue;
		scnprintf(hook, sizeof(hook), "idt_table[%u]", v);
		expect_pointer("idt_hook", hook, (unsigned long)g, target, NULL);
	}
}

/* The functions an ftrace_ops filters on, as one "a,b,c" field. */
static void field_filter(const struct ftrace_ops *op)
{
	struct ftrace_hash *hash = op->func_hash ? op->func_hash->filter_hash : NULL;
	struct ftrace_func_entry *e;
	char list[512] = "", sym[128];
	size_t used = 0;
	unsigned long b;

	if (!hash || !hash->count || hash->size_bits > 16) {
		llview_field_str("filter", hash && hash->count ? "(unreadable)" : "(every function)");
		return;
	}
	for (b = 0; b < (1UL << hash->size_bits); b++) {
		hlist_for_each_entry(e, &hash->buckets[b], hlist) {
			if (!used || used < sizeof(list) - 1)
				used += scnprintf(list + used, sizeof(list) - used, "%s%s",
						  used ? "," : "",
						  llview_symbolize_text(e->ip, sym, sizeof(sym)));
		}
	}
	llview_field_str("filter", list);
}

static void check_ftrace(void)
{
	struct ftrace_ops *op;
	unsigned int n = 0;

	for (op = rcu_dereference(ftrace_ops_list); op && op != &ftrace_list_end && n < 4096;
	     op = rcu_dereference(op->next), n++) {
		struct llview_owner o;
		char text[96];

		hooks_checked++;
		owner_of((unsigned long)op->func, &o);
		if (o.kind == LLVIEW_OWNER_CORE_TEXT)
			continue;
		llview_alert_begin("ftrace_hook");
		llview_field_object("ftrace_ops_list", (unsigned long)op);
		llview_field_pointer(&mods, "callback", (unsigned long)op->func, &o);
		field_filter(op);
		llview_field_hex("flags", op->flags);
		llview_alert_end("an ftrace callback in %s hooks kernel functions",
				 llview_owner_text(&o, text, sizeof(text)));
	}
}

static const char *const seq_ops_names[] = {
	"tcp4_seq_ops", "tcp6_seq_ops", "udp_seq_ops", "udp6_seq_ops",
	"raw_seq_ops",	"raw6_seq_ops", "unix_seq_ops", "packet_seq_ops",
};

static void check_seq_ops(void)
{
	unsigned long at[ARRAY_SIZE(seq_ops_names)];
	char hook[64];
	unsigned int i;

	llview_lookup_names(seq_ops_names, ARRAY_SIZE(seq_ops_names), at);
	for (i = 0; i < ARRAY_SIZE(seq_ops_names); i++) {
		const struct seq_operations *ops = (const struct seq_operations *)at[i];

		if (!ops) /* not in this kernel (a protocol built as a module, not loaded) */
			continue;
#define CHECK(member)                                                                   \
	do {                                                                            \
		scnprintf(hook, sizeof(hook), "%s.%s", seq_ops_names[i], #member);       \
		expect_text("proc_net_seq_ops_hook", hook, &ops->member, NULL);                \
	} while (0)
		CHECK(start);
		CHECK(next);
		CHECK(stop);
		CHECK(show);
#undef CHECK
	}
}

static void check_keyboard_notifiers(void)
{
	struct atomic_notifier_head *chain =
		(struct atomic_notifier_head *)kallsyms_lookup_name("keyboard_notifier_list");
	struct notifier_block *nb;
	unsigned int n = 0;
	char hook[64];

	if (!chain) /* no VT keyboard in this kernel */
		return;
	for (nb = rcu_dereference(chain->head); nb && n < 4096; nb = rcu_dereference(nb->next)) {
		scnprintf(hook, sizeof(hook), "keyboard_notifier_list[%u]", n++);
		expect_text("keyboard_notifier", hook, &nb->notifier_call, NULL);
	}
}

static void check_ldiscs(void)
{
	struct tty_ldisc_ops **ldiscs =
		(struct tty_ldisc_ops **)kallsyms_lookup_name("tty_ldiscs");
	char hook[64];
	unsigned int i;

	if (!ldiscs)
		return;
	for (i = 0; i < NR_LDISCS; i++) {
		struct tty_ldisc_ops *ops = ldiscs[i];

		if (!ops)
			continue;
#define CHECK(member)                                                                    \
	do {                                                                             \
		scnprintf(hook, sizeof(hook), "tty_ldiscs[%u].%s", i, #member);           \
		expect_text("tty_ldisc_hook", hook, &ops->member, ops->owner);                \
	} while (0)
		CHECK(open);
		CHECK(close);
		CHECK(read);
		CHECK(write);
		CHECK(ioctl);
		CHECK(receive_buf);
		CHECK(receive_buf2);
		CHECK(write_wakeup);
#undef CHECK
	}
}

int main(void)
{
	llview_modules_from_list(&mods);
	check_idt();
	check_ftrace();
	check_seq_ops();
	check_keyboard_notifiers();
	check_ldiscs();
	llview_record_begin("summary");
	llview_field_uint("hooks_checked", hooks_checked);
	llview_record_end();
	return 0;
}
