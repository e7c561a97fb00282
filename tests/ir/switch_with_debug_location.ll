; A switch whose closing "]" carries the !dbg location (clang -gline-tables-only writes one;
; lib/rbtree.c and lib/maple_tree.c have such switches): the text pairing reads its case lines
; as part of the switch, and the loads after it are still paired and instrumented.
; RUN: llview-opt --passes=guest_loads %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

; CHECK-LABEL: define i32 @pick(i32 %0, ptr %1)
; CHECK:         switch i32 %0, label %5 [
; CHECK-NEXT:      i32 0, label %3
; CHECK-NEXT:      i32 1, label %5
; CHECK-NEXT:    ], !dbg [[LOC:![0-9]+]]
; CHECK:       3:
; CHECK-NEXT:    [[G:%llview.g.[0-9]+]] = call ptr @__llview_load(ptr %1, i64 4, i32 0), !dbg [[LOC]]
; CHECK-NEXT:    %4 = load i32, ptr [[G]], align 4, !dbg [[LOC]]
define i32 @pick(i32 %0, ptr %1) !dbg !5 {
  switch i32 %0, label %5 [
    i32 0, label %3
    i32 1, label %5
  ], !dbg !8

3:
  %4 = load i32, ptr %1, align 4, !dbg !8
  ret i32 %4, !dbg !8

5:
  ret i32 0, !dbg !8
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!3, !4}

!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, producer: "clang", isOptimized: true, runtimeVersion: 0, emissionKind: LineTablesOnly, splitDebugInlining: false, nameTableKind: None)
!1 = !DIFile(filename: "ids.c", directory: "/tmp")
!2 = !{}
!3 = !{i32 2, !"Debug Info Version", i32 3}
!4 = !{i32 7, !"Dwarf Version", i32 5}
!5 = distinct !DISubprogram(name: "pick", scope: !1, file: !1, line: 1, type: !6, scopeLine: 1, spFlags: DISPFlagDefinition | DISPFlagOptimized, unit: !0)
!6 = !DISubroutineType(types: !2)
!8 = !DILocation(line: 3, column: 7, scope: !5)
