/*
 * creds.c - credential anomalies. A fork gets its own struct cred
 * (copy_creds: only threads of one process share theirs), so two thread
 * groups sharing one cred means someone pointed a task at another's: the
 * privilege-escalation rootkits give a process the kernel's own init_cred
 * (or root's cred) that way. Alerts: a user process running with init_cred,
 * and any cred shared by tasks of different thread groups, naming both.
 *
 * Cannot see: a cred whose uid fields were rewritten in place (it still
 * belongs to its process alone); compare with what the process was started
 * as for that.
 */
#include <linux/cred.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <llview/detect.h>

/* kernel/cred.c: the credentials of init_task and of kernel threads. */
extern struct cred init_cred;

static struct llview_addr_set owner_of_cred; /* cred -> first task using it */

static void alert_task(const char *technique, struct task_struct *t, const struct cred *c)
{
	char object[64];

	llview_alert_begin(technique);
	scnprintf(object, sizeof(object), "pid %d (%s)", t->pid, t->comm);
	llview_field_object(object, (unsigned long)t);
	llview_field_int("pid", t->pid);
	llview_field_int("tgid", t->tgid);
	llview_field_str("comm", t->comm);
	llview_field_hex("cred", (unsigned long)c);
	llview_field_uint("uid", c->uid.val);
	llview_field_uint("euid", c->euid.val);
}

static void check(struct task_struct *t, const struct cred *c)
{
	unsigned long *first;
	struct task_struct *other;

	if (c == &init_cred) {
		if (t->flags & PF_KTHREAD)
			return;
		alert_task("init_cred", t, c);
		llview_alert_end("process %d (%s) runs with the kernel's own init_cred", t->pid,
				 t->comm);
		return;
	}
	first = llview_set_add(&owner_of_cred, (unsigned long)c);
	if (!first)
		return;
	if (!*first) {
		*first = (unsigned long)t;
		return;
	}
	other = (struct task_struct *)*first;
	if (other->tgid == t->tgid)
		return;
	alert_task("shared_cred", t, c);
	llview_field_int("shared_with_pid", other->pid);
	llview_field_str("shared_with_comm", other->comm);
	llview_alert_end("process %d (%s) shares its credentials with process %d (%s)", t->pid,
			 t->comm, other->pid, other->comm);
}

int main(void)
{
	struct task_struct *p, *t;
	unsigned long tasks = 0;

	for_each_process_thread(p, t) {
		const struct cred *real = rcu_dereference(t->real_cred);
		const struct cred *cred = rcu_dereference(t->cred);

		check(t, real);
		/* An overriding cred (override_creds()) is the task's own business. */
		if (cred != real && cred == &init_cred && !(t->flags & PF_KTHREAD))
			check(t, cred);
		tasks++;
	}
	llview_record_begin("summary");
	llview_field_uint("tasks", tasks);
	llview_field_uint("creds", owner_of_cred.n);
	llview_record_end();
	return 0;
}
