; Robustness of the text pairing: a multi-line switch, debug records (#dbg_value, as
; -g rather than -gline-tables-only produces) naming a kernel symbol, which are dropped with
; the symbol, and an unnamed entry block used as a phi predecessor.
; RUN: llview-opt --passes=kernel_symbols,guest_loads %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@init_task = external global [4096 x i8], align 64

; CHECK-LABEL: define i32 @state(i32 %0, ptr %1)
; CHECK-NEXT:    %llview.ksym.init_task = load ptr
; CHECK-NOT:     #dbg_value(ptr @init_task
; CHECK:         switch i32 %0, label %8 [
; CHECK-NEXT:      i32 0, label %4
; CHECK-NEXT:      i32 1, label %6
; CHECK-NEXT:    ]
; CHECK:       4:
; CHECK-NEXT:    [[G:%llview.g.[0-9]+]] = call ptr @__llview_load(ptr %1, i64 4, i32 0)
; CHECK-NEXT:    %5 = load i32, ptr [[G]], align 4
; CHECK:       6:
; CHECK-NEXT:    [[T:%llview.ce.[0-9]+]] = getelementptr inbounds i8, ptr %llview.ksym.init_task, i64 24
; CHECK-NEXT:    [[G2:%llview.g.[0-9]+]] = call ptr @__llview_load(ptr [[T]], i64 4, i32 1)
; CHECK-NEXT:    %7 = load i32, ptr [[G2]], align 8
; CHECK:       8:
; CHECK-NEXT:    %9 = phi i32 [ %5, %4 ], [ %7, %6 ], [ -1, %2 ]
define i32 @state(i32 %0, ptr %1) !dbg !5 {
  call void @llvm.dbg.value(metadata ptr @init_task, metadata !10, metadata !DIExpression()), !dbg !8
  %3 = add i32 %0, 1
  switch i32 %0, label %8 [
    i32 0, label %4
    i32 1, label %6
  ]

4:
  %5 = load i32, ptr %1, align 4, !dbg !8
  br label %8

6:
  %7 = load i32, ptr getelementptr inbounds (i8, ptr @init_task, i64 24), align 8, !dbg !9
  br label %8

8:
  %9 = phi i32 [ %5, %4 ], [ %7, %6 ], [ -1, %2 ]
  ret i32 %9
}

declare void @llvm.dbg.value(metadata, metadata, metadata)

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: FullDebug)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "state", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0, retainedNodes: !7)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 7, scope: !5)
!9 = !DILocation(line: 6, column: 7, scope: !5)
!10 = !DILocalVariable(name: "t", scope: !5, file: !1, line: 4, type: !11)
!11 = !DIBasicType(name: "long", size: 64, encoding: DW_ATE_signed)
