/*
 * llview/kernel_library.h - force-included (after kernel_overrides.h) when
 * `llview build` compiles the kernel's own library code (lib/rbtree.c,
 * lib/maple_tree.c, ... from Debian's linux-source package) for an IDS.
 * The sources are compiled unchanged with the IDS's flags; these are the
 * only differences, each a switch the kernel itself provides.
 */
#ifndef LLVIEW_KERNEL_LIBRARY_H
#define LLVIEW_KERNEL_LIBRARY_H

/*
 * EXPORT_SYMBOL() emits __ksymtab entries as top-level inline assembly; the
 * kernel turns exports off this way for code that is not part of vmlinux
 * (the boot decompressor, the vDSO).
 */
#define __DISABLE_EXPORTS

/*
 * Tracepoints (trace_ma_read() ...) are static-branch inline assembly and
 * tracefs registration, kernel-only; NOTRACE is the kernel's documented way
 * to make them empty inline functions (linux/tracepoint.h).
 */
#define NOTRACE

#endif /* LLVIEW_KERNEL_LIBRARY_H */
