; A loop that follows a list through its node (list_for_each_entry after the optimiser): one
; __llview_walk before the read of the first node pointer, with the node's footprint (fields at
; constant offsets from the node, merged and 8-byte aligned) and one level of pointers.
; RUN: llview-opt --passes=guest_loads,footprints %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@head = external global [16 x i8]

; link +0; node: next [+0,+8), pid and tgid [+224,+232), real_parent [+240,+248) (merged with
; them: closer than 16 bytes); via real_parent: tgid at +2420 (4 bytes -> [+2416,+2424))
; CHECK: @llview.walk.0 = private unnamed_addr constant [10 x i32] [i32 0, i32 2, i32 1, i32 0, i32 8, i32 224, i32 24, i32 240, i32 2416, i32 8]
; CHECK-LABEL: define i32 @sum(
; CHECK:         call void @__llview_walk(ptr @head, ptr @llview.walk.0, i32 0)
; CHECK-NEXT:    call ptr @__llview_load(ptr @head, i64 8, i32 0)
; CHECK-NOT:     __llview_walk
; CHECK:         declare void @__llview_walk(ptr, ptr, i32)
define i32 @sum() !dbg !5 {
entry:
  %first = load volatile ptr, ptr @head, align 8, !dbg !8
  %empty = icmp eq ptr %first, @head
  br i1 %empty, label %done, label %loop

loop:
  %node = phi ptr [ %next, %loop ], [ %first, %entry ]
  %acc = phi i32 [ %acc.next, %loop ], [ 0, %entry ]
  %pid.p = getelementptr i8, ptr %node, i64 224
  %pid = load i32, ptr %pid.p, align 4, !dbg !9
  %tgid.p = getelementptr i8, ptr %node, i64 228
  %tgid = load i32, ptr %tgid.p, align 4, !dbg !9
  %parent.p = getelementptr i8, ptr %node, i64 240
  %parent = load volatile ptr, ptr %parent.p, align 8, !dbg !9
  %ptgid.p = getelementptr inbounds i8, ptr %parent, i64 2420
  %ptgid = load i32, ptr %ptgid.p, align 4, !dbg !9
  %a = add i32 %acc, %pid
  %b = add i32 %a, %tgid
  %acc.next = add i32 %b, %ptgid
  %next = load volatile ptr, ptr %node, align 8, !dbg !8
  %end = icmp eq ptr %next, @head
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
!5 = distinct !DISubprogram(name: "sum", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 3, scope: !5)
!9 = !DILocation(line: 6, column: 7, scope: !5)
