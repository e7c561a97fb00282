/*
 * os_version.c - prints the monitored kernel's version banner, the string
 * /proc/version shows inside the guest, read straight from guest memory.
 */
#include <linux/printk.h>
#include <linux/utsname.h>
#include <llview/ids.h>

int main(void)
{
	struct new_utsname *uts = &init_uts_ns.name;

	if (llview_json()) {
		llview_record_begin("os");
		llview_field_str("banner", linux_banner);
		llview_field_str("sysname", uts->sysname);
		llview_field_str("release", uts->release);
		llview_field_str("version", uts->version);
		llview_field_str("machine", uts->machine);
		llview_record_end();
		return 0;
	}
	pr_info("%s", linux_banner);
	return 0;
}
