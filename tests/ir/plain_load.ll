; A plain load through a pointer that may be guest memory goes through __llview_load
; with the loaded type's size and a site index; the load then reads the fetched copy.
; RUN: llview-opt --passes=guest_loads %s | FileCheck %s

source_filename = "ids.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

; CHECK-LABEL: define i32 @pid_of(ptr %task)
; CHECK-NEXT:    %pid = getelementptr inbounds i8, ptr %task, i64 2416
; CHECK-NEXT:    [[G:%llview.g.[0-9]+]] = call ptr @__llview_load(ptr %pid, i64 4, i32 0), !dbg [[LOC:![0-9]+]]
; CHECK-NEXT:    %v = load i32, ptr [[G]], align 16, !dbg [[LOC]], !tbaa [[TBAA:![0-9]+]]
; CHECK-NEXT:    ret i32 %v
define i32 @pid_of(ptr %task) !dbg !5 {
  %pid = getelementptr inbounds i8, ptr %task, i64 2416
  %v = load i32, ptr %pid, align 16, !tbaa !10, !dbg !8
  ret i32 %v, !dbg !8
}

; The runtime function is declared once.
; CHECK: declare ptr @__llview_load(ptr, i64, i32)
; CHECK-NOT: declare ptr @__llview_load

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "pid_of", scope: !1, file: !1, line: 3, type: !6, scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 4, column: 12, scope: !5)
!10 = !{!11, !11, i64 0}
!11 = !{!"int", !12, i64 0}
!12 = !{!"omnipotent char", !13, i64 0}
!13 = !{!"Simple C/C++ TBAA"}
