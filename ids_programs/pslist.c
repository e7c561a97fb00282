/*
 * pslist.c - lists every process of the monitored kernel (pid, parent's
 * pid, command name) by walking init_task's task list, as the kernel's own
 * for_each_process() does.
 */
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <llview/ids.h>

int main(void)
{
	struct task_struct *p;

	rcu_read_lock();
	for_each_process(p) {
		/* As /proc/PID/stat: ppid is the tgid of the real parent. */
		pid_t ppid = rcu_dereference(p->real_parent)->tgid;

		llview_record_begin("task");
		llview_field_int("pid", p->pid);
		llview_field_int("ppid", ppid);
		llview_field_str("comm", p->comm);
		llview_record_end();
	}
	rcu_read_unlock();
	return 0;
}
