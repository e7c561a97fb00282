/*
 * hidden_modules.c - the loaded modules seen four ways: the `modules` list
 * (what lsmod shows), the kobjects of module_kset (/sys/module), the
 * mod_tree the kernel uses to map an address to its module, and module
 * memory itself (a struct module carved from mod_tree's address range,
 * recognised because its mkobj.mod points back at it). A live module
 * missing from a view is hiding from it: rootkits unlink themselves from
 * the list (list_del), then from sysfs (kobject_del) and mod_tree.
 *
 * Cannot see: a module that also wipes its struct module (or moves it
 * outside the module area) and every other view.
 */
#include <linux/module.h>
#include <llview/detect.h>

static struct llview_modules set;

int main(void)
{
	unsigned int i;

	llview_modules_all_views(&set);
	for (i = 0; i < set.n; i++) {
		struct module *mod = set.m[i].mod;
		unsigned int missing = LLVIEW_ALL_VIEWS & ~set.m[i].views;
		char seen[64], absent[64];

		/* Modules still loading or unloading come and go from the views. */
		if (mod->state != MODULE_STATE_LIVE || !missing)
			continue;
		llview_alert_begin("hidden_module");
		llview_field_object(mod->name, (unsigned long)mod);
		llview_field_str("module", mod->name);
		llview_field_hex("base", (unsigned long)mod->core_layout.base);
		llview_field_uint("size", mod->core_layout.size);
		llview_field_str("seen_in", llview_views_text(set.m[i].views, seen, sizeof(seen)));
		llview_field_str("missing_from", llview_views_text(missing, absent, sizeof(absent)));
		llview_alert_end("module %s is hidden from %s (seen in %s)", mod->name, absent, seen);
	}
	llview_record_begin("summary");
	llview_field_uint("modules", set.n);
	llview_record_end();
	return 0;
}
