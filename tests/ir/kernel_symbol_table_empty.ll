; With no kernel symbol the tables are still emitted, empty, so the runtime links either way.
; RUN: llview-opt --passes=kernel_symbols,guest_loads %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

; CHECK: %struct.__llview_ksym = type { ptr, ptr }
; CHECK: @__llview_ksyms = global [0 x %struct.__llview_ksym] zeroinitializer, align 8
; CHECK: @__llview_nksyms = constant i32 0
; CHECK: @__llview_sites = constant [0 x %struct.__llview_site] zeroinitializer, align 8
; CHECK: @__llview_nsites = constant i32 0
; CHECK-LABEL: define i32 @main()
; CHECK-NEXT:    ret i32 0
define i32 @main() {
  ret i32 0
}
