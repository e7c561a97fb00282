; A pointer into the node handed to a runtime call (a string field, llview_field_str(p->comm))
; counts as its first 64 bytes; a pointer read from the node handed to one counts as 64 bytes
; behind it. Offsets may be negative: the node (the list_head) sits inside its object.
; RUN: llview-opt --passes=guest_loads,footprints %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@modules = external global [16 x i8]
@.key = private constant [5 x i8] c"name\00"

; state [-8,-4), next [0,8), name [16,80), src [88,96): closer than 16 bytes, one range [-8,96)
; CHECK: @llview.walk.0 = private unnamed_addr constant [8 x i32] [i32 0, i32 1, i32 1, i32 -8, i32 104, i32 88, i32 0, i32 64]
; CHECK: call void @__llview_walk(ptr @modules, ptr @llview.walk.0, i32 0)
define void @names() !dbg !5 {
entry:
  %first = load ptr, ptr @modules, align 8, !dbg !8
  br label %loop

loop:
  %node = phi ptr [ %next, %loop ], [ %first, %entry ]
  %state.p = getelementptr i8, ptr %node, i64 -8
  %state = load i32, ptr %state.p, align 4, !dbg !9
  %name = getelementptr i8, ptr %node, i64 16
  call void @llview_field_str(ptr @.key, ptr %name), !dbg !9
  %src.p = getelementptr i8, ptr %node, i64 88
  %src = load ptr, ptr %src.p, align 8, !dbg !9
  call void @llview_field_str(ptr @.key, ptr %src), !dbg !9
  %next = load ptr, ptr %node, align 8, !dbg !8
  %end = icmp eq ptr %next, @modules
  br i1 %end, label %done, label %loop

done:
  ret void
}

declare void @llview_field_str(ptr, ptr)

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "names", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 3, scope: !5)
!9 = !DILocation(line: 6, column: 7, scope: !5)
