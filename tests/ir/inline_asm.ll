; barrier() (empty asm with a memory clobber) is dropped, an empty asm with operands is a
; no-op and kept, llvm.prefetch is dropped; real inline assembly (here: reading "current"
; through %gs) is diagnosed with its text.
; RUN: llview-opt --passes=forbidden_calls %s --stats 2>&1 | FileCheck %s
; CHECK-LABEL: define i64 @fences(ptr %p, i64 %v)
; CHECK-NOT:     asm sideeffect "", "~{memory}"
; CHECK-NOT:     llvm.prefetch
; CHECK:         %hidden = call i64 asm "", "=r,0"(i64 %v)
; CHECK-NEXT:    ret i64 %hidden
; CHECK: forbidden_calls: 1 empty asm barriers dropped; 1 prefetches dropped; 1 skipped: empty asm with operands (a no-op)

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

define i64 @fences(ptr %p, i64 %v) !dbg !5 {
  call void asm sideeffect "", "~{memory}"(), !dbg !8
  call void @llvm.prefetch.p0(ptr %p, i32 0, i32 3, i32 1)
  %hidden = call i64 asm "", "=r,0"(i64 %v)
  ret i64 %hidden
}

declare void @llvm.prefetch.p0(ptr, i32, i32, i32)

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 5, column: 7, scope: !5)
