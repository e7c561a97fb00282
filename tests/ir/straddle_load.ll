; A misaligned 8-byte read may straddle a page boundary: the runtime is told its full size
; (it serves page-crossing reads on the miss path), not just the address.
; RUN: llview-opt --passes=guest_loads %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

; CHECK-LABEL: define i64 @unaligned(ptr %p)
; CHECK-NEXT:    %q = getelementptr inbounds i8, ptr %p, i64 4093
; CHECK-NEXT:    [[G:%llview.g.[0-9]+]] = call ptr @__llview_load(ptr %q, i64 8, i32 0)
; CHECK-NEXT:    %v = load i64, ptr [[G]], align 1
define i64 @unaligned(ptr %p) !dbg !5 {
  %q = getelementptr inbounds i8, ptr %p, i64 4093
  %v = load i64, ptr %q, align 1, !dbg !8
  ret i64 %v
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 7, scope: !5)
