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
 * write. Cannot see: a rewritten call inside x64_sys_call() itself, an
 * inline hook in a handler's code, an ftrace hook (kernel_hooks.c).
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

static struct llview_modules owners;

static void check_table(const char *table, unsigned long at, const char *const *handlers,
			unsigned int n)
{
	const sys_call_ptr_t *entry = (const sys_call_ptr_t *)at;
	static unsigned long found[MAX_NR], expected[MAX_NR];
	unsigned int nr;

	llview_lookup_names(handlers, n, expected);
	for (nr = 0; nr < n; nr++)
		found[nr] = (unsigned long)entry[nr];
	for (nr = 0; nr < n; nr++) {
		struct llview_owner o;
		char object[64];

		/* Numbers the kernel leaves out hold sys_ni_syscall under another name. */
		if (found[nr] == expected[nr])
			continue;
		if (!owners.views_taken)
			llview_modules_all_views(&owners);
		llview_alert_begin("syscall_table_hook");
		scnprintf(object, sizeof(object), "%s[%u]", table, nr);
		llview_field_object(object, at + nr * sizeof(*entry));
		llview_field_str("table", table);
		llview_field_uint("number", nr);
		llview_field_str("syscall", handlers[nr] + strlen("__x64_"));
		llview_field_str("expected_symbol", handlers[nr]);
		llview_field_hex("expected", expected[nr]);
		llview_field_pointer(&owners, "target", found[nr], &o);
		llview_alert_end("%s[%u] (%s) points to %px in %s, not to %s", table, nr,
				 handlers[nr] + strlen("__x64_"), (void *)found[nr],
				 o.mod ? o.name : o.kind == LLVIEW_OWNER_UNKNOWN ? "unknown memory"
									: "the core kernel",
				 handlers[nr]);
	}
	llview_record_begin("table");
	llview_field_str("table", table);
	llview_field_uint("entries", n);
	llview_record_end();
}

int main(void)
{
	unsigned long ia32 = kallsyms_lookup_name("ia32_sys_call_table");

	BUILD_BUG_ON(ARRAY_SIZE(x64_handlers) > MAX_NR || ARRAY_SIZE(ia32_handlers) > MAX_NR);
	check_table("sys_call_table", (unsigned long)sys_call_table, x64_handlers,
		    ARRAY_SIZE(x64_handlers));
	if (ia32)
		check_table("ia32_sys_call_table", ia32, ia32_handlers, ARRAY_SIZE(ia32_handlers));
	return 0;
}
