/*
 * syscall_table.c - every entry of sys_call_table (and ia32_sys_call_table,
 * where the kernel has it) must be the kernel's own handler for that
 * number: the handler the kernel's build put there, named by the same
 * generated list (asm/syscalls_64.h, asm/syscalls_32.h) and looked up in
 * the running kernel's kallsyms. A changed entry is an alert naming the
 * number, the syscall, the target and the module (listed or hidden) whose
 * memory holds it.
 *
 * Since the BHI fix (backported to 6.1), x86-64 dispatches through the
 * generated x64_sys_call() switch, so a changed entry no longer diverts a
 * syscall; it still proves tampering, and it is what most public rootkits
 * write. The switch itself (x64_sys_call, ia32_sys_call) must still jump to
 * every handler: a rewritten jump is an alert naming the syscall and the
 * module code it now reaches. Cannot see: an inline hook in a handler's
 * code, a rewritten jump to other core-kernel code that still leaves every
 * handler reachable, an ftrace hook (kernel_hooks.c).
 */
#include <linux/kallsyms.h>
#include <asm/syscall.h>
#include <asm/unistd.h>
#include <llview/detect.h>

#define __SYSCALL(nr, sym) [nr] = "__x64_" #sym,
static const char *const x64_handlers[] = {
#include <asm/syscalls_64.h>
};
#undef __SYSCALL

/* The 32-bit table holds the compat entry points where there are any. */
#define __SYSCALL(nr, sym) [nr] = "__ia32_" #sym,
#define __SYSCALL_WITH_COMPAT(nr, native, compat) __SYSCALL(nr, compat)
static const char *const ia32_handlers[] = {
#include <asm/syscalls_32.h>
};
#undef __SYSCALL
#undef __SYSCALL_WITH_COMPAT

#define MAX_NR 1024

/* One system call ABI: its table, its dispatch function, the handlers the
 * kernel's build put in both. */
struct abi {
	const char *table;
	const char *dispatch;
	const char *const *handlers;
	unsigned int n;
	unsigned long expected[MAX_NR];
};

static struct abi abis[] = {
	{ "sys_call_table", "x64_sys_call", x64_handlers, ARRAY_SIZE(x64_handlers) },
	{ "ia32_sys_call_table", "ia32_sys_call", ia32_handlers, ARRAY_SIZE(ia32_handlers) },
};

static struct llview_modules owners;

/* "sys_kill" for "__x64_sys_kill" or "__ia32_sys_kill". */
static const char *syscall_name(const char *handler)
{
	const char *p = handler + 2;

	while (*p && *p != '_')
		p++;
	return *p ? p + 1 : handler;
}

static void take_owners(void)
{
	if (!owners.views_taken)
		llview_modules_all_views(&owners);
}

static void check_table(const struct abi *abi, unsigned long at)
{
	const sys_call_ptr_t *entry = (const sys_call_ptr_t *)at;
	static unsigned long found[MAX_NR];
	unsigned int nr;

	for (nr = 0; nr < abi->n; nr++)
		found[nr] = (unsigned long)entry[nr];
	for (nr = 0; nr < abi->n; nr++) {
		const char *name = syscall_name(abi->handlers[nr]);
		struct llview_owner o;
		char object[64];

		/* Numbers the kernel leaves out hold sys_ni_syscall under another name. */
		if (found[nr] == abi->expected[nr])
			continue;
		take_owners();
		llview_alert_begin("syscall_table_hook");
		scnprintf(object, sizeof(object), "%s[%u]", abi->table, nr);
		llview_field_object(object, at + nr * sizeof(*entry));
		llview_field_str("table", abi->table);
		llview_field_uint("number", nr);
		llview_field_str("syscall", name);
		llview_field_str("expected_symbol", abi->handlers[nr]);
		llview_field_hex("expected", abi->expected[nr]);
		llview_field_pointer(&owners, "target", found[nr], &o);
		llview_alert_end("%s[%u] (%s) points to %px in %s, not to %s", abi->table, nr, name,
				 (void *)found[nr],
				 o.mod ? o.name : o.kind == LLVIEW_OWNER_UNKNOWN ? "unknown memory"
									: "the core kernel",
				 abi->handlers[nr]);
	}
	llview_record_begin("table");
	llview_field_str("table", abi->table);
	llview_field_uint("entries", abi->n);
	llview_record_end();
}

static unsigned char code[65536];
static struct llview_addr_set targets;

/* The targets of the direct jumps and calls (e9/e8 rel32) in code: bytes
 * that only look like one add a target no handler has, never remove one. */
static void direct_targets(unsigned long at, unsigned long size)
{
	unsigned long i;

	llview_set_clear(&targets);
	for (i = 0; i + 5 <= size; i++) {
		int rel;

		if (code[i] != 0xe9 && code[i] != 0xe8)
			continue;
		memcpy(&rel, &code[i + 1], sizeof(rel));
		*llview_set_add(&targets, at + i + 5 + rel) = at + i;
	}
}

/* The jumps from the dispatch function into module memory: "x64_sys_call+0x1a3
 * -> rk_kill+0x0 [lvrootkit]; ..." (which one replaced which handler takes
 * decoding the switch; the kernel-code check will). */
static void module_jumps(const char *dispatch, unsigned long at, char *list, size_t len)
{
	size_t used = 0;
	unsigned int i;

	list[0] = 0;
	for (i = 0; i < LLVIEW_SET_SLOTS; i++) {
		unsigned long target = targets.slot[i];
		struct llview_owner o;
		char sym[160];

		if (!target)
			continue;
		llview_owner_of(&owners, target, &o);
		if (o.kind != LLVIEW_OWNER_MODULE_TEXT && o.kind != LLVIEW_OWNER_MODULE_DATA)
			continue;
		llview_module_symbol(o.mod, target, sym, sizeof(sym));
		used += scnprintf(list + used, len - used, "%s%s+0x%lx -> %s [%s]", used ? "; " : "",
				  dispatch, targets.value[i] - at, sym[0] ? sym : "?", o.name);
	}
}

/*
 * Since the BHI fix the kernel dispatches through a generated switch,
 * x64_sys_call(), that jumps straight to each handler: every handler must
 * still be the target of a direct jump or call there. Rewriting one of
 * those rel32 (what rootkits do since the table stopped mattering) takes
 * the handler out and puts module code in.
 */
static void check_dispatch(const struct abi *abi, unsigned long at)
{
	static char jumps[1024];
	struct llview_symbol fn;
	unsigned int nr;
	int listed = 0;

	if (llview_symbolize(at, &fn) || fn.start != at || fn.size > sizeof(code)) {
		llview_alert("%s at %px is not a core-kernel function llview can read whole",
			     abi->dispatch, (void *)at);
		return;
	}
	memcpy(code, (void *)at, fn.size);
	direct_targets(at, fn.size);
	for (nr = 0; nr < abi->n; nr++) {
		const char *name = syscall_name(abi->handlers[nr]);

		if (llview_set_has(&targets, abi->expected[nr]))
			continue;
		take_owners();
		if (!listed++)
			module_jumps(abi->dispatch, at, jumps, sizeof(jumps));
		llview_alert_begin("syscall_dispatch_hook");
		llview_field_object(abi->dispatch, at);
		llview_field_uint("number", nr);
		llview_field_str("syscall", name);
		llview_field_str("expected_symbol", abi->handlers[nr]);
		llview_field_hex("expected", abi->expected[nr]);
		llview_field_str("jumps_into_modules", jumps);
		llview_alert_end("%s no longer jumps to %s (syscall %u, %s)%s%s", abi->dispatch,
				 abi->handlers[nr], nr, name, jumps[0] ? "; it jumps to " : "",
				 jumps);
	}
	llview_record_begin("dispatch");
	llview_field_str("function", abi->dispatch);
	llview_field_uint("bytes", fn.size);
	llview_field_uint("handlers", abi->n);
	llview_record_end();
}

int main(void)
{
	unsigned int i;

	BUILD_BUG_ON(ARRAY_SIZE(x64_handlers) > MAX_NR || ARRAY_SIZE(ia32_handlers) > MAX_NR);
	for (i = 0; i < ARRAY_SIZE(abis); i++) {
		struct abi *abi = &abis[i];
		const char *names[] = { abi->table, abi->dispatch };
		unsigned long at[2];

		llview_lookup_names(names, 2, at);
		llview_lookup_names(abi->handlers, abi->n, abi->expected);
		/* Kernels keep the table, the switch, or both (6.1 with the BHI fix:
		 * sys_call_table, x64_sys_call and ia32_sys_call). */
		if (at[0])
			check_table(abi, at[0]);
		if (at[1])
			check_dispatch(abi, at[1]);
	}
	return 0;
}
