/*
 * llview/kernel_overrides.h - source-level replacements for kernel functions
 * an IDS may call, force-included (clang -include) before any kernel header
 * by `llview build`, `llview layout` and the diagnostics alike.
 *
 * The kernel's sprintf family is out-of-line kernel code; the runtime
 * supplies guest-aware versions with the same prototypes under __llview_
 * names (a %s argument may be a guest string; the runtime's own libc
 * snprintf must keep its meaning, hence the prefix). Renaming the calls
 * here, rather than in the IR, also stops clang from turning
 * sprintf(dst, "%s", src) into a strcpy that would read guest memory
 * behind the runtime's back.
 */
#ifndef LLVIEW_KERNEL_OVERRIDES_H
#define LLVIEW_KERNEL_OVERRIDES_H

#define sprintf __llview_sprintf
#define snprintf __llview_snprintf
#define vsprintf __llview_vsprintf
#define vsnprintf __llview_vsnprintf

/* Out-of-line kernel functions llview supplies in llview/compat.c. */
#define pid_nr_ns __llview_pid_nr_ns
#define pid_vnr __llview_pid_vnr
#define __task_pid_nr_ns __llview_task_pid_nr_ns

#endif /* LLVIEW_KERNEL_OVERRIDES_H */
