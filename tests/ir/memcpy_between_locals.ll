; memcpy/memset between the IDS's own buffers (stack, own globals) stay plain intrinsics.
; RUN: llview-opt --passes=guest_loads,store_guard --stats %s 2>&1 | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@saved = global [16 x i8] zeroinitializer, align 1

; CHECK-LABEL: define void @locals()
; CHECK-NEXT:    %a = alloca [16 x i8]
; CHECK-NEXT:    %b = alloca [16 x i8]
; CHECK-NEXT:    call void @llvm.memcpy.p0.p0.i64(ptr align 1 %a, ptr align 1 %b, i64 16, i1 false)
; CHECK-NEXT:    call void @llvm.memcpy.p0.p0.i64(ptr align 1 @saved, ptr align 1 %a, i64 16, i1 false)
; CHECK-NEXT:    call void @llvm.memset.p0.i64(ptr align 1 %a, i8 0, i64 16, i1 false)
; CHECK-NEXT:    ret void
; CHECK-NOT: __llview_mem
define void @locals() {
  %a = alloca [16 x i8], align 1
  %b = alloca [16 x i8], align 1
  call void @llvm.memcpy.p0.p0.i64(ptr align 1 %a, ptr align 1 %b, i64 16, i1 false)
  call void @llvm.memcpy.p0.p0.i64(ptr align 1 @saved, ptr align 1 %a, i64 16, i1 false)
  call void @llvm.memset.p0.i64(ptr align 1 %a, i8 0, i64 16, i1 false)
  ret void
}
; CHECK: guest_loads: 2 skipped: memcpy between IDS-local buffers; 1 skipped: memset of IDS-local memory

declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
