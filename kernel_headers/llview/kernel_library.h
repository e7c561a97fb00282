/*
 * llview/kernel_library.h - force-included (after kernel_overrides.h) when
 * `llview build` compiles the kernel's own library code (lib/rbtree.c,
 * lib/maple_tree.c, ... from Debian's linux-source package) for an IDS.
 * The sources are compiled unchanged with the IDS's flags; these are the
 * only differences, each a switch or a definition the kernel itself has.
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

/*
 * x86 bitops are inline assembly: __ffs() is "rep; bsf" and a test_bit()
 * of a variable bit is "bt" with the bitmap as a memory operand, a guest
 * read llview could not see. These are the kernel's own C forms of the same
 * operations (the constant-argument branch of x86's __ffs(), and
 * asm-generic's generic_test_bit(), whose read is instrumented).
 */
#include <linux/bitops.h>
#undef __ffs
#define __ffs(word) ((unsigned long)__builtin_ctzl(word))
#undef test_bit
#define test_bit(nr, addr) generic_test_bit(nr, addr)

/*
 * WARN_ON() is a ud2 trap that the kernel's trap handler turns into a
 * report before it goes on. Here the condition is still evaluated and
 * returned, and the caller goes on as it does in the kernel; only the report
 * is lost. BUG() and WARN() with a message stay kernel-only (refused).
 */
#include <asm/bug.h>
#undef __WARN_FLAGS
#define __WARN_FLAGS(flags) do { } while (0)

#endif /* LLVIEW_KERNEL_LIBRARY_H */
