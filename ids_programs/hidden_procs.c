/*
 * hidden_procs.c - every task seen three ways: the task list
 * (for_each_process_thread, what /proc lists in most tools), the pid table
 * (init_pid_ns.idr -> struct pid -> pid->tasks[PIDTYPE_PID], what every pid
 * look-up, kill() and /proc/PID use) and what each CPU runs right now
 * (per-CPU current_task). Rootkits unlink a task from one of them: from the
 * pid table (hlist_del of its pid_links) or from the task list (list_del
 * of its tasks). A task in one view and not another is an alert, as is a
 * task whose flags carry bits the kernel does not define (a marker some
 * rootkits use to hide processes from their getdents filter).
 *
 * The guest is live: a task forking or exiting between two views is not
 * hiding, so every finding is confirmed by a second, fresh look.
 * Cannot see: a task unlinked from every view that is not running on a CPU.
 */
#include <linux/idr.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <llview/detect.h>

/* The PF_* bits 6.1 leaves unused; a task carrying one was marked by
 * someone other than the kernel. */
#define PF_UNDEFINED (PF__HOLE__00004000 | PF__HOLE__00010000 | PF__HOLE__01000000 | \
		      PF__HOLE__02000000 | PF__HOLE__20000000 | PF__HOLE__40000000)

enum { IN_LIST = 1, IN_PID_TABLE = 2, ON_CPU = 4 };

static struct llview_addr_set tasks;

static void seen(struct task_struct *t, unsigned long view)
{
	unsigned long *views = llview_set_add(&tasks, (unsigned long)t);

	if (views)
		*views |= view;
	else
		llview_alert("more tasks than hidden_procs can hold: views incomplete");
}

/* kernel/pid.c: pid_task() */
static struct task_struct *pid_task_of(struct pid *pid)
{
	struct hlist_node *first = pid->tasks[PIDTYPE_PID].first;

	return first ? hlist_entry(first, struct task_struct, pid_links[PIDTYPE_PID]) : NULL;
}

static void take_views(void)
{
	struct task_struct *p, *t;
	struct pid *pid;
	unsigned int cpu;
	int nr;

	llview_set_clear(&tasks);
	for_each_process_thread(p, t)
		seen(t, IN_LIST);
	/* The kernel's own idr walk (lib/idr.c); a pid naming only a process
	 * group or session has no task. */
	idr_for_each_entry(&init_pid_ns.idr, pid, nr) {
		t = pid_task_of(pid);
		if (t)
			seen(t, IN_PID_TABLE);
	}
	for (cpu = 0; cpu < nr_cpu_ids; cpu++) {
		if (!llview_cpu_online(cpu))
			continue;
		t = per_cpu(current_task, cpu);
		if (t->pid) /* idle tasks (pid 0) are in neither view */
			seen(t, ON_CPU);
	}
}

/* What is wrong with a task's views, or NULL. */
static const char *anomaly(unsigned long views)
{
	if (!(views & IN_PID_TABLE))
		return views & IN_LIST ? "on the task list but not in the pid table"
				       : "running on a CPU but in neither the task list nor the pid table";
	if (!(views & IN_LIST))
		return "in the pid table but not on the task list";
	return NULL;
}

static unsigned long suspects[64], suspect_views[64];
static unsigned int nsuspects;

int main(void)
{
	unsigned int i, k;

	unsigned long counts[ON_CPU + 1] = { 0 };

	take_views();
	for (i = 0; i < LLVIEW_SET_SLOTS; i++) {
		struct task_struct *t = (struct task_struct *)tasks.slot[i];

		for (k = IN_LIST; k <= ON_CPU; k <<= 1)
			counts[k] += t && (tasks.value[i] & k);
		if (t && (anomaly(tasks.value[i]) || (t->flags & PF_UNDEFINED)) &&
		    nsuspects < ARRAY_SIZE(suspects))
			suspects[nsuspects++] = tasks.slot[i];
	}
	llview_record_begin("summary");
	llview_field_uint("tasks", tasks.n);
	llview_field_uint("task_list", counts[IN_LIST]);
	llview_field_uint("pid_table", counts[IN_PID_TABLE]);
	llview_field_uint("on_cpu", counts[ON_CPU]);
	llview_record_end();
	if (!nsuspects)
		return 0;

	/* A fresh look: a task that was only forking or exiting is gone or whole now. */
	llview_scan_begin();
	take_views();
	for (k = 0; k < nsuspects; k++) {
		struct task_struct *t = (struct task_struct *)suspects[k];
		unsigned long *slot = llview_set_slot(&tasks, suspects[k]);
		const char *why;
		char object[64];

		suspect_views[k] = slot && *slot == suspects[k] ? tasks.value[slot - tasks.slot] : 0;
		why = anomaly(suspect_views[k]);
		if (!suspect_views[k])
			continue;
		scnprintf(object, sizeof(object), "pid %d (%s)", t->pid, t->comm);
		if (why) {
			llview_alert_begin("hidden_process");
			llview_field_object(object, suspects[k]);
			llview_field_int("pid", t->pid);
			llview_field_int("tgid", t->tgid);
			llview_field_str("comm", t->comm);
			llview_field_str("task_list", suspect_views[k] & IN_LIST ? "yes" : "no");
			llview_field_str("pid_table", suspect_views[k] & IN_PID_TABLE ? "yes" : "no");
			llview_field_str("on_cpu", suspect_views[k] & ON_CPU ? "yes" : "no");
			llview_alert_end("task %d (%s) is %s", t->pid, t->comm, why);
		}
		if (t->flags & PF_UNDEFINED) {
			llview_alert_begin("task_flags");
			llview_field_object(object, suspects[k]);
			llview_field_int("pid", t->pid);
			llview_field_str("comm", t->comm);
			llview_field_hex("flags", t->flags);
			llview_field_hex("undefined_bits", t->flags & PF_UNDEFINED);
			llview_alert_end("task %d (%s) carries flag bits %#x the kernel does not define",
					 t->pid, t->comm, t->flags & PF_UNDEFINED);
		}
	}
	return 0;
}
