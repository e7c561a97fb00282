; A list walked inside another walk's loop (for_each_thread inside for_each_process) gets no
; walk of its own: only the outer list is walked; the inner loop's reads take the page path.
; RUN: llview-opt --passes=guest_loads,footprints --stats %s 2>&1 | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@head = external global [16 x i8]

; CHECK: @llview.walk.0 = private unnamed_addr constant
; CHECK-NOT: @llview.walk.1
; CHECK: call void @__llview_walk(ptr @head, ptr @llview.walk.0, i32 0)
; CHECK-NOT: call void @__llview_walk(
; CHECK: footprints: 1 list walks{{.*}}1 skipped: list walk inside another walk
define i32 @threads() !dbg !5 {
entry:
  %first = load ptr, ptr @head, align 8, !dbg !8
  br label %outer

outer:
  %p = phi ptr [ %p.next, %outer.latch ], [ %first, %entry ]
  %acc = phi i32 [ %acc.out, %outer.latch ], [ 0, %entry ]
  %sig.p = getelementptr i8, ptr %p, i64 64
  %sig = load ptr, ptr %sig.p, align 8, !dbg !8
  %t0 = load ptr, ptr %sig, align 8, !dbg !8
  br label %inner

inner:
  %t = phi ptr [ %t.next, %inner ], [ %t0, %outer ]
  %acc.in = phi i32 [ %acc.add, %inner ], [ %acc, %outer ]
  %pid.p = getelementptr i8, ptr %t, i64 -16
  %pid = load i32, ptr %pid.p, align 4, !dbg !8
  %acc.add = add i32 %acc.in, %pid
  %t.next = load ptr, ptr %t, align 8, !dbg !8
  %t.end = icmp eq ptr %t.next, %sig
  br i1 %t.end, label %outer.latch, label %inner

outer.latch:
  %acc.out = phi i32 [ %acc.add, %inner ]
  %p.next = load ptr, ptr %p, align 8, !dbg !8
  %p.end = icmp eq ptr %p.next, @head
  br i1 %p.end, label %done, label %outer

done:
  ret i32 %acc.out
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "threads", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 3, scope: !5)
