; A store (or atomicrmw, cmpxchg, memset) provably into a kernel global is a compile-time
; error at its source line, whether the symbol is still a constant or already resolved.
; RUN: not llview-opt --passes=store_guard %s
; RUN: not llview-opt --passes=kernel_symbols,guest_loads,store_guard %s 2>&1 | FileCheck %s
; ERROR: ids.c:7:17: error: store to guest memory (init_task) is not allowed: the IDS may only read the guest
; ERROR: ids.c:8:3: error: store to guest memory (jiffies) is not allowed
; ERROR: ids.c:9:3: error: store to guest memory (init_task) is not allowed
; ERROR: ids.c:10:3: error: store to guest memory (jiffies) is not allowed
; CHECK-COUNT-4: error: store to guest memory

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@init_task = external global [4096 x i8], align 64
@jiffies = external global i64, align 8

define void @tamper(i1 %c) !dbg !5 {
  store i32 0, ptr getelementptr inbounds (i8, ptr @init_task, i64 2416), align 16, !dbg !8
  %old = atomicrmw add ptr @jiffies, i64 1 seq_cst, !dbg !9
  call void @llvm.memset.p0.i64(ptr getelementptr inbounds (i8, ptr @init_task, i64 2976), i8 0, i64 16, i1 false), !dbg !10
  %pair = cmpxchg ptr @jiffies, i64 0, i64 1 seq_cst seq_cst, !dbg !11
  ret void
}

declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 7, column: 17, scope: !5)
!9 = !DILocation(line: 8, column: 3, scope: !5)
!10 = !DILocation(line: 9, column: 3, scope: !5)
!11 = !DILocation(line: 10, column: 3, scope: !5)
