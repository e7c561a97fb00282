/*
 * llview/compat.c - kernel functions an IDS reaches through the kernel's
 * own inline helpers (task_pid_vnr(), task_ppid_nr(), pid_vnr(), ...) but
 * whose bodies live in kernel/*.c, rewritten from the kernel's sources
 * against the monitored kernel's headers. `llview build` compiles this once
 * per kernel profile and links it into an IDS module that calls one of
 * them, before llview's passes, so its guest reads are instrumented like
 * the IDS's own. kernel_overrides.h renames each to an __llview_ name, so
 * an IDS never collides with a kernel symbol.
 *
 * An IDS runs outside every task: where the kernel means "the current
 * task's pid namespace" (ns == NULL), these use the initial one, which is
 * how /proc in the guest's initial namespace numbers tasks.
 */
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>

/* kernel/pid.c */
pid_t pid_nr_ns(struct pid *pid, struct pid_namespace *ns)
{
	struct upid *upid;

	if (!pid || ns->level > pid->level)
		return 0;
	upid = &pid->numbers[ns->level];
	return upid->ns == ns ? upid->nr : 0;
}

/* kernel/pid.c */
pid_t pid_vnr(struct pid *pid)
{
	return pid_nr_ns(pid, &init_pid_ns);
}

/* kernel/pid.c (task_pid_ptr inlined) */
pid_t __task_pid_nr_ns(struct task_struct *task, enum pid_type type, struct pid_namespace *ns)
{
	struct pid *pid = type == PIDTYPE_PID ? task->thread_pid : task->signal->pids[type];

	return pid_nr_ns(pid, ns ? ns : &init_pid_ns);
}
