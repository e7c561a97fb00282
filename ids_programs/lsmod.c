/*
 * lsmod.c - the modules on the kernel's `modules` list, as lsmod and
 * /proc/modules show them: name, base and size of the core layout, state
 * and taint flags. A module that unlinks itself from the list is not here:
 * hidden_modules.c looks for those.
 */
#include <linux/module.h>
#include <llview/detect.h>

static const char *const state_names[] = {
	[MODULE_STATE_LIVE] = "live",
	[MODULE_STATE_COMING] = "coming",
	[MODULE_STATE_GOING] = "going",
	[MODULE_STATE_UNFORMED] = "unformed",
};

int main(void)
{
	struct module *mod;

	list_for_each_entry(mod, &modules, list) {
		unsigned int state = mod->state;

		llview_record_begin("module");
		llview_field_str("name", mod->name);
		llview_field_hex("base", (unsigned long)mod->core_layout.base);
		llview_field_uint("size", mod->core_layout.size);
		llview_field_str("state", state < ARRAY_SIZE(state_names) ? state_names[state] : "?");
		llview_field_hex("taints", mod->taints);
		llview_record_end();
	}
	return 0;
}
