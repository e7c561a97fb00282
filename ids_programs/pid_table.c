/*
 * pid_table.c - lists the kernel's pid table: every struct pid of the
 * initial pid namespace's IDR, walked with the kernel's own
 * idr_for_each_entry() (lib/idr.c and lib/radix-tree.c), with the task it
 * names, as Volatility's pidhashtable does. A task found here but not by
 * for_each_process() (pslist.c) is hidden from the task list.
 */
#include <linux/idr.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <llview/ids.h>

int main(void)
{
	struct pid *pid;
	int nr;

	rcu_read_lock();
	idr_for_each_entry(&init_pid_ns.idr, pid, nr) {
		struct hlist_node *first = READ_ONCE(pid->tasks[PIDTYPE_PID].first);
		struct task_struct *task;

		/* A pid that names only a process group or a session now. */
		if (!first)
			continue;
		task = hlist_entry(first, struct task_struct, pid_links[PIDTYPE_PID]);
		llview_record_begin("pid");
		llview_field_int("pid", nr);
		llview_field_int("tgid", task->tgid);
		llview_field_str("comm", task->comm);
		llview_record_end();
	}
	rcu_read_unlock();
	return 0;
}
