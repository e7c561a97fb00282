; The C string functions the kernel headers declare (and bcmp, which LLVM creates) go to
; their __llview_ versions with a site argument; dereferenceable() on the guest pointer goes.
; RUN: llview-opt --passes=guest_loads %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

; CHECK-LABEL: define i32 @strings(ptr %a, ptr %b, ptr %buf)
; CHECK-NEXT:    %n = tail call i64 @__llview_strlen(ptr noundef nonnull %a, i32 0)
; CHECK-NEXT:    %m = call i64 @__llview_strnlen(ptr %a, i64 16, i32 0)
; CHECK-NEXT:    %c = call i32 @__llview_strcmp(ptr %a, ptr %b, i32 0)
; CHECK-NEXT:    %d = call i32 @__llview_strncmp(ptr %a, ptr %b, i64 %n, i32 0)
; CHECK-NEXT:    %e = call i32 @__llview_memcmp(ptr %a, ptr %b, i64 8, i32 0)
; CHECK-NEXT:    %f = call i32 @__llview_memcmp(ptr %a, ptr %b, i64 %m, i32 0)
; CHECK-NEXT:    %g = call ptr @__llview_memcpy(ptr %buf, ptr %a, i64 16, i32 0)
; CHECK-NEXT:    %h = call ptr @__llview_memmove(ptr %buf, ptr %a, i64 16, i32 0)
; CHECK-NEXT:    %i = call ptr @__llview_memset(ptr %buf, i32 0, i64 16, i32 0)
define i32 @strings(ptr %a, ptr %b, ptr %buf) !dbg !5 {
  %n = tail call i64 @strlen(ptr noundef nonnull dereferenceable(1) %a), !dbg !8
  %m = call i64 @strnlen(ptr %a, i64 16), !dbg !8
  %c = call i32 @strcmp(ptr %a, ptr %b), !dbg !8
  %d = call i32 @strncmp(ptr %a, ptr %b, i64 %n), !dbg !8
  %e = call i32 @memcmp(ptr %a, ptr %b, i64 8), !dbg !8
  %f = call i32 @bcmp(ptr %a, ptr %b, i64 %m), !dbg !8
  %g = call ptr @memcpy(ptr %buf, ptr %a, i64 16), !dbg !8
  %h = call ptr @memmove(ptr %buf, ptr %a, i64 16), !dbg !8
  %i = call ptr @memset(ptr %buf, i32 0, i64 16), !dbg !8
  ret i32 %c
}

declare i64 @strlen(ptr)
declare i64 @strnlen(ptr, i64)
declare i32 @strcmp(ptr, ptr)
declare i32 @strncmp(ptr, ptr, i64)
declare i32 @memcmp(ptr, ptr, i64)
declare i32 @bcmp(ptr, ptr, i64)
declare ptr @memcpy(ptr, ptr, i64)
declare ptr @memmove(ptr, ptr, i64)
declare ptr @memset(ptr, i32, i64)

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 7, scope: !5)
