; A call through a function pointer read from the guest cannot run outside the kernel;
; calling one of the IDS's own functions through a select/phi is fine.
; RUN: not llview-opt --passes=forbidden_calls %s
; ERROR: ids.c:12:5: error: call through a function pointer cannot run outside the kernel

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

define void @run_op(ptr %ops, i1 %c) !dbg !5 {
  %fn = load ptr, ptr %ops, align 8
  call void %fn(ptr %ops), !dbg !8
  %own = select i1 %c, ptr @mine, ptr @also_mine
  call void %own(ptr %ops), !dbg !9
  ret void
}

define internal void @mine(ptr %p) {
  ret void
}

define internal void @also_mine(ptr %p) {
  ret void
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 12, column: 5, scope: !5)
!9 = !DILocation(line: 13, column: 5, scope: !5)
