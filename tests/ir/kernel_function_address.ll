; A kernel function used as a value (fn == do_no_restart_syscall) is a kernel symbol too;
; calls of kernel functions are left to forbidden_calls.
; RUN: llview-opt --passes=kernel_symbols %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

; CHECK: @__llview_ksym_name.0 = private unnamed_addr constant [22 x i8] c"do_no_restart_syscall\00"
; CHECK-LABEL: define i1 @is_default(ptr %fn)
; CHECK-NEXT:    %llview.ksym.do_no_restart_syscall = load ptr, {{.*}} @__llview_ksyms, i64 0, i64 0, i32 1)
; CHECK-NEXT:    %c = icmp eq ptr %fn, %llview.ksym.do_no_restart_syscall
define i1 @is_default(ptr %fn) {
  %c = icmp eq ptr %fn, @do_no_restart_syscall
  ret i1 %c
}
; CHECK-NOT: declare {{.*}} @do_no_restart_syscall
declare i64 @do_no_restart_syscall(ptr)
