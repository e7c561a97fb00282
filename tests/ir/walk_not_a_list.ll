; Loops that do not follow a list through their node get no walk: the next pointer read from
; another object (an array of pointers), and a phi fed only from inside the loop.
; RUN: llview-opt --passes=guest_loads,footprints %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@table = external global [64 x ptr]

; CHECK-NOT: __llview_walk
define i32 @array(i64 %n) !dbg !5 {
entry:
  br label %loop

loop:
  %i = phi i64 [ 0, %entry ], [ %i.next, %loop ]
  %acc = phi i32 [ 0, %entry ], [ %acc.next, %loop ]
  %slot = getelementptr ptr, ptr @table, i64 %i
  %obj = load ptr, ptr %slot, align 8, !dbg !8
  %field.p = getelementptr i8, ptr %obj, i64 16
  %field = load i32, ptr %field.p, align 4, !dbg !8
  %acc.next = add i32 %acc, %field
  %i.next = add i64 %i, 1
  %end = icmp eq i64 %i.next, %n
  br i1 %end, label %done, label %loop

done:
  ret i32 %acc.next
}

define i32 @other_base(ptr %a, ptr %b) !dbg !5 {
entry:
  %first = load ptr, ptr %a, align 8, !dbg !8
  br label %loop

loop:
  %node = phi ptr [ %next, %loop ], [ %first, %entry ]
  %v.p = getelementptr i8, ptr %node, i64 8
  %v = load i32, ptr %v.p, align 4, !dbg !8
  %next = load ptr, ptr %b, align 8, !dbg !8
  %end = icmp eq i32 %v, 0
  br i1 %end, label %done, label %loop

done:
  ret i32 %v
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 3, scope: !5)
