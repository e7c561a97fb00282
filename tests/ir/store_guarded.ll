; A store through a pointer that may be guest memory gets a run-time check naming its
; site; stores to the stack and to the IDS's own globals are left alone.
; RUN: llview-opt --passes=store_guard --stats %s 2>&1 | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@count = global i32 0, align 4

; CHECK-LABEL: define void @fill(ptr %out, ptr %task)
; CHECK-NEXT:    %local = alloca i32
; CHECK-NEXT:    store i32 1, ptr %local
; CHECK-NEXT:    store i32 2, ptr @count
; CHECK-NEXT:    %next = load ptr, ptr %task
; CHECK-NEXT:    call void @__llview_store_check(ptr %next, i32 0), !dbg [[L:![0-9]+]]
; CHECK-NEXT:    store i32 3, ptr %next, align 4, !dbg [[L]]
; CHECK-NEXT:    call void @__llview_store_check(ptr %out, i32 1), !dbg
; CHECK-NEXT:    %old = atomicrmw xchg ptr %out, i64 5 seq_cst
define void @fill(ptr %out, ptr %task) !dbg !5 {
  %local = alloca i32, align 4
  store i32 1, ptr %local, align 4, !dbg !8
  store i32 2, ptr @count, align 4, !dbg !8
  %next = load ptr, ptr %task, align 8
  store i32 3, ptr %next, align 4, !dbg !9
  %old = atomicrmw xchg ptr %out, i64 5 seq_cst, !dbg !10
  ret void
}
; CHECK: declare void @__llview_store_check(ptr, i32)
; CHECK: store_guard: 2 stores guarded at run time; 1 skipped: stack (alloca); 1 skipped: IDS global

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 7, scope: !5)
!9 = !DILocation(line: 6, column: 9, scope: !5)
!10 = !DILocation(line: 7, column: 9, scope: !5)
