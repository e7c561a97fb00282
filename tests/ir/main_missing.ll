; An IDS without main, or with a main that takes arguments, is diagnosed.
; RUN: not llview-opt --passes=entry %s
; ERROR: ids.c:0:0: error: the IDS program has no 'int main(void)' (its entry point)

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

define i32 @scan() {
  ret i32 0
}
