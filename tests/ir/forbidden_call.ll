; Calls of kernel functions that have no body outside the kernel are diagnosed at the
; outermost source location in the IDS file (through the inlinedAt chain of a header's
; inline helper), naming the function and the helper; runtime-supplied functions and
; functions the IDS defines are fine.
; RUN: not llview-opt --passes=forbidden_calls --supplied=_printk %s
; ERROR: ids.c:14:2: error: call to kernel function '__rcu_read_lock', which has no body outside the kernel (in inlined kernel helper 'rcu_read_lock')
; ERROR: ids.c:21:9: error: call to kernel function 'schedule', which has no body outside the kernel

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

define i32 @main() !dbg !5 {
  call void @__rcu_read_lock(), !dbg !13
  %r = call i32 (ptr, ...) @_printk(ptr null), !dbg !17
  call void @helper(), !dbg !17
  call void @schedule(), !dbg !18
  ret i32 0
}

define internal void @helper() {
  ret void
}

declare void @__rcu_read_lock()
declare i32 @_printk(ptr, ...)
declare void @schedule()

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!13 = !DILocation(line: 789, column: 2, scope: !14, inlinedAt: !16)
!14 = distinct !DISubprogram(name: "rcu_read_lock", scope: !15, file: !15, line: 787, type: !6, scopeLine: 788, spFlags: DISPFlagLocalToUnit | DISPFlagDefinition, unit: !0)
!15 = !DIFile(filename: "include/linux/rcupdate.h", directory: "/usr/src/linux-headers-common")
!16 = distinct !DILocation(line: 14, column: 2, scope: !5)
!17 = !DILocation(line: 15, column: 2, scope: !5)
!18 = !DILocation(line: 21, column: 9, scope: !5)
