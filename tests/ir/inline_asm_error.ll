; Inline assembly other than the empty barrier runs only in the kernel: get_current()'s
; %gs-relative read is diagnosed with its text, at the IDS line that used "current".
; RUN: not llview-opt --passes=forbidden_calls %s
; ERROR: ids.c:9:14: error: inline assembly 'movq %gs:${1:P}, $0' cannot run outside the kernel (in inlined kernel helper 'get_current')

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@current_task = external global ptr, align 8

define ptr @me() !dbg !5 {
  %cur = call ptr asm "movq %gs:${1:P}, $0", "=r,p,~{dirflag},~{fpsr},~{flags}"(ptr @current_task), !dbg !8
  ret ptr %cur
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 19, column: 9, scope: !9, inlinedAt: !11)
!9 = distinct !DISubprogram(name: "get_current", scope: !10, file: !10, line: 15, type: !6, scopeLine: 16, spFlags: DISPFlagLocalToUnit | DISPFlagDefinition, unit: !0)
!10 = !DIFile(filename: "arch/x86/include/asm/current.h", directory: "/usr/src/linux-headers-common")
!11 = distinct !DILocation(line: 9, column: 14, scope: !5)
