; The IDS's int main(void) becomes @__llview_ids_main (the runtime owns the real main),
; including references to it; a string mentioning @main is untouched.
; RUN: llview-opt --passes=entry %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@.str = private unnamed_addr constant [6 x i8] c"@main\00", align 1
; CHECK: @.str = private unnamed_addr constant [6 x i8] c"@main\00"
; CHECK: @entry_ptr = global ptr @__llview_ids_main
@entry_ptr = global ptr @main, align 8

; CHECK-LABEL: define i32 @__llview_ids_main()
; CHECK-NEXT:    %r = call i32 @__llview_ids_main()
; CHECK-NOT: @main
define i32 @main() {
  %r = call i32 @main()
  ret i32 0
}
