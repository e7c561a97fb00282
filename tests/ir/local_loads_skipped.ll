; Loads that provably stay in the IDS's own memory are left alone: the stack (through GEPs,
; phi and select of allocas), globals the module defines, constants and string literals.
; A phi that mixes a local and a may-be-guest pointer is instrumented.
; RUN: llview-opt --passes=guest_loads %s | FileCheck %s
; RUN: llview-opt --passes=guest_loads --stats %s 2>&1 | FileCheck %s --check-prefix=STATS

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@counter = global i32 0, align 4
@table = internal constant [4 x i64] [i64 1, i64 2, i64 3, i64 4], align 16
@.str = private unnamed_addr constant [6 x i8] c"hello\00", align 1

; CHECK-LABEL: define i64 @locals(i1 %c, i64 %i, ptr %guest)
; CHECK-NOT:     __llview_load
; CHECK:         %z = load i32, ptr %p,
; CHECK-NEXT:    [[G:%llview.g.[0-9]+]] = call ptr @__llview_load(ptr %mixed, i64 4, i32 0)
; CHECK-NEXT:    %m = load i32, ptr [[G]]
; CHECK-NOT:     __llview_load
; CHECK:         ret i64
define i64 @locals(i1 %c, i64 %i, ptr %guest) !dbg !5 {
entry:
  %a = alloca [16 x i32], align 16
  %b = alloca i32, align 4
  %ai = getelementptr inbounds [16 x i32], ptr %a, i64 0, i64 %i
  %x = load i32, ptr %ai, align 4, !dbg !8
  %sel = select i1 %c, ptr %ai, ptr %b
  %y = load i32, ptr %sel, align 4, !dbg !8
  %g = load i32, ptr @counter, align 4, !dbg !8
  %ti = getelementptr inbounds [4 x i64], ptr @table, i64 0, i64 %i
  %t = load i64, ptr %ti, align 8, !dbg !8
  %ch = load i8, ptr getelementptr inbounds (i8, ptr @.str, i64 1), align 1, !dbg !8
  br i1 %c, label %loop, label %other

other:
  br label %loop

loop:
  %p = phi ptr [ %b, %entry ], [ %ai, %other ], [ %p.next, %loop ]
  %mixed = phi ptr [ %b, %entry ], [ %guest, %other ], [ %mixed, %loop ]
  %z = load i32, ptr %p, align 4, !dbg !8
  %m = load i32, ptr %mixed, align 4, !dbg !9
  %p.next = getelementptr inbounds i32, ptr %p, i64 1
  %done = icmp eq i32 %z, 0
  br i1 %done, label %exit, label %loop

exit:
  %s1 = add i32 %x, %y
  %s2 = add i32 %s1, %g
  %s3 = add i32 %s2, %m
  %s4 = sext i32 %s3 to i64
  %s5 = add i64 %s4, %t
  %chw = zext i8 %ch to i64
  %s6 = add i64 %s5, %chw
  ret i64 %s6
}

; STATS: guest_loads: 1 loads instrumented; 3 skipped: stack (alloca); 1 skipped: IDS global; 2 skipped: constant

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 7, scope: !5)
!9 = !DILocation(line: 9, column: 3, scope: !5)
