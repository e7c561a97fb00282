; Aggregate, vector and odd-sized scalar loads: the size passed is the type's store size.
; RUN: llview-opt --passes=guest_loads %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

%struct.list_head = type { ptr, ptr }

; CHECK-LABEL: define void @aggregates(ptr %p)
; CHECK:         call ptr @__llview_load(ptr %p, i64 16, i32 0)
; CHECK-NEXT:    %s = load %struct.list_head, ptr
; CHECK:         call ptr @__llview_load(ptr %p, i64 12, i32 0)
; CHECK-NEXT:    %a = load [3 x i32], ptr
; CHECK:         call ptr @__llview_load(ptr %p, i64 16, i32 0)
; CHECK-NEXT:    %v = load <4 x i32>, ptr
; CHECK:         call ptr @__llview_load(ptr %p, i64 10, i32 0)
; CHECK-NEXT:    %f = load x86_fp80, ptr
; CHECK:         call ptr @__llview_load(ptr %p, i64 1, i32 0)
; CHECK-NEXT:    %b = load i1, ptr
; CHECK:         call ptr @__llview_load(ptr %p, i64 3, i32 0)
; CHECK-NEXT:    %t = load i24, ptr
; CHECK:         call ptr @__llview_load(ptr %p, i64 16, i32 0)
; CHECK-NEXT:    %pv = load <2 x ptr>, ptr
define void @aggregates(ptr %p) !dbg !5 {
  %s = load %struct.list_head, ptr %p, align 8, !dbg !8
  %a = load [3 x i32], ptr %p, align 4, !dbg !8
  %v = load <4 x i32>, ptr %p, align 16, !dbg !8
  %f = load x86_fp80, ptr %p, align 16, !dbg !8
  %b = load i1, ptr %p, align 1, !dbg !8
  %t = load i24, ptr %p, align 4, !dbg !8
  %pv = load <2 x ptr>, ptr %p, align 16, !dbg !8
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
!8 = !DILocation(line: 5, column: 7, scope: !5)
