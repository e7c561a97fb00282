; Kernel globals resolve at run time: their addresses come from @__llview_ksyms slots
; loaded at function entry, and constant expressions over them (GEP, nested GEP, ptrtoint,
; icmp operands, phi incoming values, constant vectors) become instructions, so that
; p != &init_task.tasks compares against the true, KASLR-slid address.
; RUN: llview-opt --passes=kernel_symbols %s | FileCheck %s
; RUN: llview-opt --passes=kernel_symbols %s | FileCheck %s --check-prefix=GONE

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@init_task = external global [4096 x i8], align 64
@linux_banner = external constant [0 x i8], align 1
@jiffies = external global i64, align 8
@unused_symbol = external global i32

; CHECK-DAG: @__llview_ksym_name.0 = private unnamed_addr constant [10 x i8] c"init_task\00"
; CHECK-DAG: @__llview_ksym_name.1 = private unnamed_addr constant [8 x i8] c"jiffies\00"
; CHECK-DAG: @__llview_ksym_name.2 = private unnamed_addr constant [13 x i8] c"linux_banner\00"
; CHECK: @__llview_ksyms = global [3 x %struct.__llview_ksym] [%struct.__llview_ksym { ptr @__llview_ksym_name.0, ptr null }, %struct.__llview_ksym { ptr @__llview_ksym_name.1, ptr null }, %struct.__llview_ksym { ptr @__llview_ksym_name.2, ptr null }], align 8
; CHECK: @__llview_nksyms = constant i32 3

; The declarations are gone (the native link must not see them), used or not.
; GONE-NOT: @init_task =
; GONE-NOT: @linux_banner =
; GONE-NOT: @jiffies =
; GONE-NOT: @unused_symbol

; CHECK-LABEL: define i1 @is_init_tasks(ptr %p)
; CHECK-NEXT:    %llview.ksym.init_task = load ptr, ptr getelementptr inbounds ([3 x %struct.__llview_ksym], ptr @__llview_ksyms, i64 0, i64 0, i32 1), align 8
; CHECK-NEXT:    [[T:%llview.ce.[0-9]+]] = getelementptr inbounds i8, ptr %llview.ksym.init_task, i64 2192
; CHECK-NEXT:    %c = icmp ne ptr %p, [[T]]
define i1 @is_init_tasks(ptr %p) {
  %c = icmp ne ptr %p, getelementptr inbounds (i8, ptr @init_task, i64 2192)
  ret i1 %c
}

; CHECK-LABEL: define i64 @nested()
; CHECK-NEXT:    %llview.ksym.init_task = load ptr, {{.*}} i64 0, i32 1)
; CHECK-NEXT:    %llview.ksym.linux_banner = load ptr, {{.*}} i64 2, i32 1)
; CHECK-NEXT:    [[IN:%llview.ce.[0-9]+]] = getelementptr i8, ptr %llview.ksym.init_task, i64 8
; CHECK-NEXT:    [[OUT:%llview.ce.[0-9]+]] = getelementptr inbounds i8, ptr [[IN]], i64 2192
; CHECK-NEXT:    [[I:%llview.ce.[0-9]+]] = ptrtoint ptr [[OUT]] to i64
; CHECK-NEXT:    %v = add i64 [[I]], 1
; CHECK-NEXT:    [[B:%llview.ce.[0-9]+]] = ptrtoint ptr %llview.ksym.linux_banner to i64
; CHECK-NEXT:    %w = add i64 %v, [[B]]
define i64 @nested() {
  %v = add i64 ptrtoint (ptr getelementptr inbounds (i8, ptr getelementptr (i8, ptr @init_task, i64 8), i64 2192) to i64), 1
  %w = add i64 %v, ptrtoint (ptr @linux_banner to i64)
  ret i64 %w
}

; A constant incoming value of a phi is computed at the end of its predecessor block.
; CHECK-LABEL: define ptr @phi_incoming(i1 %c)
; CHECK:       a:
; CHECK-NEXT:    [[T:%llview.ce.[0-9]+]] = getelementptr inbounds i8, ptr %llview.ksym.init_task, i64 2192
; CHECK-NEXT:    br label %join
; CHECK:       join:
; CHECK-NEXT:    %p = phi ptr [ [[T]], %a ], [ %llview.ksym.linux_banner, %b ]
define ptr @phi_incoming(i1 %c) {
entry:
  br i1 %c, label %a, label %b
a:
  br label %join
b:
  br label %join
join:
  %p = phi ptr [ getelementptr inbounds (i8, ptr @init_task, i64 2192), %a ], [ @linux_banner, %b ]
  ret ptr %p
}

; Kernel addresses stored, passed and built into vectors.
; CHECK-LABEL: define void @addresses(ptr %out)
; CHECK:         store ptr %llview.ksym.jiffies, ptr %out
; CHECK-NEXT:    [[V0:%llview.agg.[0-9]+]] = insertelement <2 x ptr> poison, ptr %llview.ksym.init_task, i32 0
; CHECK-NEXT:    [[V1:%llview.agg.[0-9]+]] = insertelement <2 x ptr> [[V0]], ptr %llview.ksym.jiffies, i32 1
; CHECK-NEXT:    store <2 x ptr> [[V1]], ptr %out
; CHECK-NEXT:    call void @use(ptr %llview.ksym.jiffies, ptr %llview.ksym.jiffies)
define void @addresses(ptr %out) {
  store ptr @jiffies, ptr %out
  store <2 x ptr> <ptr @init_task, ptr @jiffies>, ptr %out
  call void @use(ptr @jiffies, ptr @jiffies)
  ret void
}

; CHECK-LABEL: define i32 @no_symbols(i32 %x)
; CHECK-NEXT:    ret i32 %x
define i32 @no_symbols(i32 %x) {
  ret i32 %x
}

declare void @use(ptr, ptr)
