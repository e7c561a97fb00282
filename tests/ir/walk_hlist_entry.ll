; hlist_for_each_entry after the optimiser: the loop value is the entry, `L ? L - 16 : NULL`
; for the node pointer L read from the guest. The agent follows the raw node pointers, so the
; walk's link and footprint are given from L: link = 16 - 16 = 0, the field at entry+4 is at
; L-12, merged with the link at L+0 into one 8-byte aligned range [-16,+8).
; RUN: llview-opt --passes=guest_loads,footprints %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@bucket = external global ptr

; CHECK: @llview.walk.0 = private unnamed_addr constant [5 x i32] [i32 0, i32 1, i32 0, i32 -16, i32 24]
; CHECK: call void @__llview_walk(ptr @bucket, ptr @llview.walk.0, i32 0)
define i32 @count() !dbg !5 {
entry:
  %l0 = load ptr, ptr @bucket, align 8, !dbg !8
  %null0 = icmp eq ptr %l0, null
  %e0.p = getelementptr i8, ptr %l0, i64 -16
  %e0 = select i1 %null0, ptr null, ptr %e0.p
  %empty = icmp eq ptr %e0, null
  br i1 %empty, label %done, label %loop

loop:
  %e = phi ptr [ %en, %loop ], [ %e0, %entry ]
  %acc = phi i32 [ %acc.next, %loop ], [ 0, %entry ]
  %v.p = getelementptr i8, ptr %e, i64 4
  %v = load i32, ptr %v.p, align 4, !dbg !8
  %acc.next = add i32 %acc, %v
  %next.p = getelementptr i8, ptr %e, i64 16
  %l = load ptr, ptr %next.p, align 8, !dbg !8
  %null = icmp eq ptr %l, null
  %en.p = getelementptr i8, ptr %l, i64 -16
  %en = select i1 %null, ptr null, ptr %en.p
  %end = icmp eq ptr %en, null
  br i1 %end, label %done, label %loop

done:
  %r = phi i32 [ 0, %entry ], [ %acc.next, %loop ]
  ret i32 %r
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "count", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 3, scope: !5)
