/*
 * clang_pslist.c - source of clang_pslist.ll, a real clang-19 -O2 module for the golden
 * tests: walks init_task.tasks, reads through READ_ONCE/rcu_dereference, copies a guest
 * struct and a guest string, prints linux_banner and the release with pr_info.
 * Regenerate with tests/ir/regenerate_clang_fixture (needs the kernel headers).
 */
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/printk.h>
#include <linux/string.h>
#include <linux/utsname.h>
#include <llview/ids.h>

extern const char linux_banner[];

static int count_threads(struct task_struct *p)
{
	struct task_struct *t;
	int n = 0;

	for_each_thread(p, t)
		n++;
	return n;
}

int main(void)
{
	struct task_struct *p;
	struct list_head first;
	char comm[TASK_COMM_LEN];
	int tasks = 0;

	pr_info("%s", linux_banner);
	pr_info("release %s\n", init_uts_ns.name.release);
	first = init_task.tasks;
	rcu_read_lock();
	for_each_process(p) {
		pid_t ppid = rcu_dereference(p->real_parent)->tgid;

		memcpy(comm, p->comm, sizeof(comm));
		comm[sizeof(comm) - 1] = 0;
		llview_record_begin("task");
		llview_field_int("pid", p->pid);
		llview_field_int("ppid", ppid);
		llview_field_int("threads", count_threads(p));
		llview_field_int("comm_len", strlen(comm));
		llview_field_str("comm", p->comm);
		llview_record_end();
		tasks++;
	}
	rcu_read_unlock();
	return tasks == 0 || first.next == &init_task.tasks;
}
