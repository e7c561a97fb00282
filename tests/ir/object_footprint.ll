; A pointer read through at two or more constant offsets in a block gets an object footprint
; hint before the first read; one read through a pointer gets none (its miss fetches no more).
; RUN: llview-opt --passes=guest_loads,footprints %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

; state [+0,+4) and refcnt [+8,+12) merge into [+0,+16); name [+64,+72) stays apart
; CHECK: @llview.footprint.0 = private unnamed_addr constant [5 x i32] [i32 2, i32 0, i32 16, i32 64, i32 8]
; CHECK-LABEL: define i64 @fields(ptr %mod, ptr %other)
; CHECK-NEXT:    call void @__llview_footprint(ptr %mod, ptr @llview.footprint.0)
; CHECK-NEXT:    call ptr @__llview_load(ptr %mod, i64 4, i32 0)
; CHECK-NOT:     __llview_footprint
; CHECK:         declare void @__llview_footprint(ptr, ptr)
define i64 @fields(ptr %mod, ptr %other) !dbg !5 {
  %state = load i32, ptr %mod, align 4, !dbg !8
  %ref.p = getelementptr i8, ptr %mod, i64 8
  %ref = load i32, ptr %ref.p, align 4, !dbg !8
  %name.p = getelementptr i8, ptr %mod, i64 64
  %name = load i64, ptr %name.p, align 8, !dbg !8
  %o = load i64, ptr %other, align 8, !dbg !8
  %a = add i32 %state, %ref
  %w = zext i32 %a to i64
  %b = add i64 %w, %name
  %c = add i64 %b, %o
  ret i64 %c
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "fields", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 3, scope: !5)
