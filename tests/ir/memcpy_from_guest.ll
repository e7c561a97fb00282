; llvm.memcpy/memmove that may read guest memory, and llvm.memset that may write it, become
; runtime calls with a site; a 32-bit length is widened.
; RUN: llview-opt --passes=guest_loads --stats %s 2>&1 | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

%struct.task_comm = type { [16 x i8] }

; CHECK-LABEL: define void @copy_comm(ptr %task, i32 %n, i8 %byte)
; CHECK-NEXT:    %buf = alloca %struct.task_comm, align 1
; CHECK-NEXT:    %comm = getelementptr inbounds i8, ptr %task, i64 2976
; CHECK-NEXT:    %llview.r.{{[0-9]+}} = call ptr @__llview_memcpy(ptr %buf, ptr %comm, i64 16, i32 0), !dbg
; CHECK-NEXT:    [[N:%llview.n.[0-9]+]] = zext i32 %n to i64
; CHECK-NEXT:    %llview.r.{{[0-9]+}} = call ptr @__llview_memmove(ptr %buf, ptr %comm, i64 [[N]], i32 1), !dbg
; CHECK-NEXT:    %llview.r.{{[0-9]+}} = call ptr @__llview_memset(ptr %task, i32 255, i64 8, i32 1)
; CHECK-NEXT:    [[C:%llview.c.[0-9]+]] = zext i8 %byte to i32
; CHECK-NEXT:    %llview.r.{{[0-9]+}} = call ptr @__llview_memset(ptr %comm, i32 [[C]], i64 4, i32 1)
; CHECK-NEXT:    %llview.r.{{[0-9]+}} = call ptr @__llview_memcpy(ptr %task, ptr %buf, i64 16, i32 1)
; CHECK-NEXT:    ret void
define void @copy_comm(ptr %task, i32 %n, i8 %byte) !dbg !5 {
  %buf = alloca %struct.task_comm, align 1
  %comm = getelementptr inbounds i8, ptr %task, i64 2976
  call void @llvm.memcpy.p0.p0.i64(ptr align 1 %buf, ptr align 1 %comm, i64 16, i1 false), !dbg !8
  call void @llvm.memmove.p0.p0.i32(ptr %buf, ptr %comm, i32 %n, i1 false), !dbg !9
  call void @llvm.memset.p0.i64(ptr %task, i8 -1, i64 8, i1 false), !dbg !9
  call void @llvm.memset.p0.i64(ptr %comm, i8 %byte, i64 4, i1 false), !dbg !9
  call void @llvm.memcpy.p0.p0.i64(ptr %task, ptr %buf, i64 16, i1 false), !dbg !9
  ret void
}
; Each runtime function is declared once.
; CHECK: declare ptr @__llview_memcpy(ptr, ptr, i64, i32)
; CHECK-NOT: declare ptr @__llview_memcpy
; CHECK: guest_loads: 2 memcpys redirected; 1 memmoves redirected; 2 memsets redirected

declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memmove.p0.p0.i32(ptr, ptr, i32, i1)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

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
