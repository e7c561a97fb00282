; Every instrumented operation (load, store check, memcpy, string call) gets an index into
; @__llview_sites, shared across passes; operations at the same source location share an
; entry; a site inside an inlined header helper is reported at its outermost IDS line.
; RUN: llview-opt --passes=guest_loads,store_guard %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

; CHECK: @__llview_site_file.0 = private unnamed_addr constant [6 x i8] c"ids.c\00"
; CHECK: @__llview_sites = constant [3 x %struct.__llview_site] [%struct.__llview_site { ptr @__llview_site_file.0, i32 10, i32 5 }, %struct.__llview_site { ptr @__llview_site_file.0, i32 14, i32 2 }, %struct.__llview_site { ptr @__llview_site_file.0, i32 11, i32 3 }]
; CHECK: @__llview_nsites = constant i32 3

; CHECK-LABEL: define i64 @f(ptr %p, ptr %q)
; CHECK:  call ptr @__llview_load(ptr %p, i64 4, i32 0)
; CHECK:  call ptr @__llview_load(ptr %q, i64 8, i32 0)
; CHECK:  call ptr @__llview_load(ptr %p, i64 8, i32 1)
; CHECK:  call i64 @__llview_strlen(ptr %q, i32 1)
; CHECK:  call void @__llview_store_check(ptr %p, i32 2)
define i64 @f(ptr %p, ptr %q) !dbg !5 {
  %a = load i32, ptr %p, align 4, !dbg !8
  %b = load i64, ptr %q, align 8, !dbg !8
  %c = load i64, ptr %p, align 8, !dbg !13
  %n = call i64 @strlen(ptr %q), !dbg !13
  store i32 %a, ptr %p, align 4, !dbg !9
  %s = add i64 %b, %c
  %t = add i64 %s, %n
  ret i64 %t
}

declare i64 @strlen(ptr)

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 10, column: 5, scope: !5)
!9 = !DILocation(line: 11, column: 3, scope: !5)
!13 = !DILocation(line: 180, column: 2, scope: !14, inlinedAt: !16)
!14 = distinct !DISubprogram(name: "task_name", scope: !15, file: !15, line: 170, type: !6, scopeLine: 171, spFlags: DISPFlagLocalToUnit | DISPFlagDefinition, unit: !0)
!15 = !DIFile(filename: "include/linux/sched.h", directory: "/usr/src/linux-headers-common")
!16 = distinct !DILocation(line: 14, column: 2, scope: !5)
