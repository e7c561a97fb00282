; A kernel symbol's address in the initializer of the IDS's own global cannot be known
; before the runtime resolves symbols: a diagnostic names the global and the symbol.
; RUN: not llview-opt --passes=kernel_symbols %s
; ERROR: ids.c:0:0: error: global 'head' is initialised with the address of kernel symbol 'init_task', which is only known at run time; take the address inside a function instead

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@init_task = external global [4096 x i8], align 64
@head = internal global ptr getelementptr inbounds (i8, ptr @init_task, i64 2192), align 8
@msg = internal constant [12 x i8] c"@init_task\00\00", align 1

define ptr @get() {
  %h = load ptr, ptr @head, align 8
  ret ptr %h
}
