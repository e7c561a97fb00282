; An atomic load keeps its ordering (and syncscope) and reads the fetched copy.
; RUN: llview-opt --passes=guest_loads %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

; CHECK-LABEL: define i64 @atomic_read(ptr %p, ptr %q)
; CHECK-NEXT:    [[G1:%llview.g.[0-9]+]] = call ptr @__llview_load(ptr %p, i64 8, i32 0)
; CHECK-NEXT:    %a = load atomic i64, ptr [[G1]] seq_cst, align 8
; CHECK-NEXT:    [[G2:%llview.g.[0-9]+]] = call ptr @__llview_load(ptr %q, i64 4, i32 1)
; CHECK-NEXT:    %b = load atomic volatile i32, ptr [[G2]] syncscope("singlethread") acquire, align 4
define i64 @atomic_read(ptr %p, ptr %q) !dbg !5 {
  %a = load atomic i64, ptr %p seq_cst, align 8, !dbg !8
  %b = load atomic volatile i32, ptr %q syncscope("singlethread") acquire, align 4, !dbg !9
  %bw = zext i32 %b to i64
  %s = add i64 %a, %bw
  ret i64 %s
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
!9 = !DILocation(line: 6, column: 7, scope: !5)
