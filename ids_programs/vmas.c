/*
 * vmas.c - counts the memory mappings (VMAs) of every user process, walking
 * its mm's maple tree with the kernel's own for_each_vma() (mas_find() from
 * lib/maple_tree.c), as /proc/PID/maps does: one line there per VMA here.
 */
#include <linux/mm.h>
#include <linux/mm_types.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <llview/ids.h>

int main(void)
{
	struct task_struct *p;

	rcu_read_lock();
	for_each_process(p) {
		struct mm_struct *mm = p->mm;
		struct vm_area_struct *vma;
		long vmas = 0;

		/* Kernel threads have no address space of their own. */
		if (!mm || (p->flags & PF_KTHREAD))
			continue;
		VMA_ITERATOR(vmi, mm, 0);
		for_each_vma(vmi, vma)
			vmas++;
		llview_record_begin("process");
		llview_field_int("pid", p->pid);
		llview_field_int("vmas", vmas);
		llview_field_str("comm", p->comm);
		llview_record_end();
	}
	rcu_read_unlock();
	return 0;
}
