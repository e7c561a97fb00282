; Real clang-19 -O2 -gline-tables-only output for clang_pslist.c (an IDS walking init_task's
; task list) through the whole pipeline: the result parses and verifies, kernel symbols
; (also in constant expressions and as a bare icmp operand) resolve through the table, every
; guest read is instrumented with its outermost source line, local reads are left alone,
; and kernel functions the runtime does not supply are diagnosed in clang's format.
; RUN: llview-opt --supplied=_printk,__rcu_read_lock,__rcu_read_unlock,llview_record_begin,llview_field_int,llview_field_str,llview_record_end %s | FileCheck %s
; RUN: llview-opt --supplied=_printk,__rcu_read_lock,__rcu_read_unlock,llview_record_begin,llview_field_int,llview_field_str,llview_record_end %s | FileCheck %s --check-prefix=GONE
; RUN: not llview-opt --supplied=_printk,llview_record_begin,llview_field_int,llview_field_str,llview_record_end %s
; ERROR: clang_pslist.c:37:2: error: call to kernel function '__rcu_read_lock', which has no body outside the kernel (in inlined kernel helper 'rcu_read_lock')
; ERROR: clang_pslist.c:52:2: error: call to kernel function '__rcu_read_unlock', which has no body outside the kernel (in inlined kernel helper 'rcu_read_unlock')
;
; CHECK: @__llview_ksyms = global [3 x %struct.__llview_ksym] [%struct.__llview_ksym { ptr @__llview_ksym_name.0, ptr null }, %struct.__llview_ksym { ptr @__llview_ksym_name.1, ptr null }, %struct.__llview_ksym { ptr @__llview_ksym_name.2, ptr null }]
; CHECK: @__llview_sites = constant [8 x %struct.__llview_site] [%struct.__llview_site { ptr @__llview_site_file.0, i32 36, i32 20 }, %struct.__llview_site { ptr @__llview_site_file.0, i32 38, i32 2 }, {{.*}}, %struct.__llview_site { ptr @__llview_site_file.0, i32 46, i32 31 }, %struct.__llview_site { ptr @__llview_site_file.0, i32 47, i32 32 }]
; GONE-NOT: external {{(global|constant)}}
; GONE-NOT: @init_task
; GONE: define {{.*}} @__llview_ids_main()
; GONE-NOT: @main(
; CHECK-LABEL: define dso_local range(i32 0, 2) i32 @__llview_ids_main()
; CHECK-NEXT:    %llview.ksym.init_task = load ptr
; CHECK:         %2 = tail call i32 (ptr, ...) @_printk(ptr noundef nonnull @.str, ptr noundef nonnull %llview.ksym.linux_banner)
; first = init_task.tasks: a read of a kernel global through a constant expression
; CHECK:         [[TASKS:%llview.ce.[0-9]+]] = getelementptr inbounds i8, ptr %llview.ksym.init_task, i64 2192
; CHECK-NEXT:    [[G:%llview.g.[0-9]+]] = call ptr @__llview_load(ptr [[TASKS]], i64 8, i32 0)
; CHECK-NEXT:    %4 = load ptr, ptr [[G]], align 16
; for_each_process: READ_ONCE of the list link, compared with the true &init_task
; CHECK:         %5 = load volatile ptr, ptr %llview.g.{{[0-9]+}}, align 16
; CHECK:         %7 = icmp eq ptr %6, %llview.ksym.init_task
; CHECK:         %13 = load volatile ptr, ptr %llview.g.{{[0-9]+}}, align 64
; CHECK:         call ptr @__llview_load(ptr %14, i64 4, i32 3)
; memcpy(comm, p->comm, 16) reads the guest; the store into the local copy is not checked
; CHECK:         call ptr @__llview_memcpy(ptr %1, ptr %16, i64 16, i32 4)
; CHECK-NEXT:    store i8 0, ptr %9, align 1
; for_each_thread inlined from count_threads(): sited at the call in main (line 46)
; CHECK:         call ptr @__llview_load(ptr %26, i64 8, i32 6)
; CHECK:         call i64 @__llview_strlen(ptr noundef nonnull %1, i32 7)
; CHECK:         %37 = icmp eq ptr %4, %llview.ce.{{[0-9]+}}
; CHECK-NOT: __llview_store_check
; CHECK: declare ptr @__llview_load(ptr, i64, i32)
; ModuleID = 'clang_pslist.c'
source_filename = "clang_pslist.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

%struct.uts_namespace = type { %struct.new_utsname, ptr, ptr, %struct.ns_common }
%struct.new_utsname = type { [65 x i8], [65 x i8], [65 x i8], [65 x i8], [65 x i8], [65 x i8] }
%struct.ns_common = type { %struct.atomic64_t, ptr, i32, %struct.refcount_struct }
%struct.atomic64_t = type { i64 }
%struct.refcount_struct = type { %struct.atomic_t }
%struct.atomic_t = type { i32 }
%struct.task_struct = type { %struct.thread_info, i32, ptr, %struct.refcount_struct, i32, i32, i32, %struct.__call_single_node, i32, i64, ptr, i32, i32, i32, i32, i32, i32, i32, %struct.sched_entity, %struct.sched_rt_entity, %struct.sched_dl_entity, ptr, ptr, [32 x i8], %struct.sched_statistics, %struct.hlist_head, i32, i32, i32, ptr, ptr, %struct.cpumask, ptr, i16, i16, i32, %union.rcu_special, %struct.list_head, ptr, i64, i8, i8, i32, %struct.list_head, i32, i32, %union.rcu_special, %struct.list_head, %struct.list_head, i32, %struct.sched_info, %struct.list_head, %struct.plist_node, %struct.rb_node, ptr, ptr, %struct.task_rss_stat, i32, i32, i32, i32, i64, i32, i8, [3 x i8], i16, i64, %struct.restart_block, i32, i32, i64, ptr, ptr, %struct.list_head, %struct.list_head, ptr, %struct.list_head, %struct.list_head, ptr, [4 x %struct.hlist_node], %struct.list_head, %struct.list_head, ptr, ptr, ptr, ptr, i64, i64, i64, %struct.prev_cputime, %struct.vtime, %struct.atomic_t, i64, i64, i64, i64, i64, i64, %struct.posix_cputimers, %struct.posix_cputimers_work, ptr, ptr, ptr, ptr, [16 x i8], ptr, %struct.sysv_sem, %struct.sysv_shm, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, %struct.sigset_t, %struct.sigset_t, %struct.sigset_t, %struct.sigpending, i64, i64, i32, ptr, ptr, %struct.kuid_t, i32, %struct.seccomp, %struct.syscall_user_dispatch, i64, i64, %struct.spinlock, %struct.raw_spinlock, %struct.wake_q_node, %struct.rb_root_cached, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, i64, ptr, %struct.task_io_accounting, i32, i64, i64, i64, %struct.nodemask_t, %struct.seqcount_spinlock, i32, i32, ptr, %struct.list_head, i32, i32, ptr, ptr, %struct.list_head, ptr, %struct.mutex, i32, [2 x ptr], %struct.mutex, %struct.list_head, ptr, i16, i16, i32, i32, i32, i32, i64, i64, i64, i64, %struct.callback_head, ptr, ptr, i64, [3 x i64], i64, ptr, i32, i64, %struct.tlbflush_unmap_batch, %union.anon.9, ptr, %struct.page_frag, ptr, i32, i32, i64, i64, i64, i32, i32, ptr, i64, %struct.atomic_t, %struct.atomic_t, i64, ptr, i32, i32, i32, ptr, ptr, ptr, i32, i32, i32, ptr, %struct.timer_list, ptr, %struct.refcount_struct, i32, ptr, ptr, ptr, i32, ptr, i64, i64, i64, %struct.callback_head, i32, %struct.llist_head, %struct.llist_head, %struct.callback_head, [40 x i8], %struct.thread_struct }
%struct.thread_info = type { i64, i64, i32, i32 }
%struct.__call_single_node = type { %struct.llist_node, %union.anon, i16, i16 }
%struct.llist_node = type { ptr }
%union.anon = type { i32 }
%struct.sched_entity = type { %struct.load_weight, %struct.rb_node, %struct.list_head, i32, i64, i64, i64, i64, i64, i32, ptr, ptr, ptr, i64, [48 x i8], %struct.sched_avg }
%struct.load_weight = type { i64, i32 }
%struct.sched_avg = type { i64, i64, i64, i32, i32, i64, i64, i64, %struct.util_est }
%struct.util_est = type { i32, i32 }
%struct.sched_rt_entity = type { %struct.list_head, i64, i64, i32, i16, i16, ptr }
%struct.sched_dl_entity = type { %struct.rb_node, i64, i64, i64, i64, i64, i64, i64, i32, i8, %struct.hrtimer, %struct.hrtimer, ptr }
%struct.hrtimer = type { %struct.timerqueue_node, i64, ptr, ptr, i8, i8, i8, i8 }
%struct.timerqueue_node = type { %struct.rb_node, i64 }
%struct.sched_statistics = type { i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, [32 x i8] }
%struct.hlist_head = type { ptr }
%struct.cpumask = type { [128 x i64] }
%union.rcu_special = type { i32 }
%struct.sched_info = type { i64, i64, i64, i64 }
%struct.plist_node = type { i32, %struct.list_head, %struct.list_head }
%struct.rb_node = type { i64, ptr, ptr }
%struct.task_rss_stat = type { i32, [4 x i32] }
%struct.restart_block = type { i64, ptr, %union.anon.0 }
%union.anon.0 = type { %struct.anon.1 }
%struct.anon.1 = type { ptr, i32, i32, i32, i64, ptr }
%struct.hlist_node = type { ptr, ptr }
%struct.prev_cputime = type { i64, i64, %struct.raw_spinlock }
%struct.vtime = type { %struct.seqcount, i64, i32, i32, i64, i64, i64 }
%struct.seqcount = type { i32 }
%struct.posix_cputimers = type { [3 x %struct.posix_cputimer_base], i32, i32 }
%struct.posix_cputimer_base = type { i64, %struct.timerqueue_head }
%struct.timerqueue_head = type { %struct.rb_root_cached }
%struct.posix_cputimers_work = type { %struct.callback_head, %struct.mutex, i32 }
%struct.sysv_sem = type { ptr }
%struct.sysv_shm = type { %struct.list_head }
%struct.sigset_t = type { [1 x i64] }
%struct.sigpending = type { %struct.list_head, %struct.sigset_t }
%struct.kuid_t = type { i32 }
%struct.seccomp = type { i32, %struct.atomic_t, ptr }
%struct.syscall_user_dispatch = type { ptr, i64, i64, i8 }
%struct.spinlock = type { %union.anon.8 }
%union.anon.8 = type { %struct.raw_spinlock }
%struct.raw_spinlock = type { %struct.qspinlock }
%struct.qspinlock = type { %union.anon.5 }
%union.anon.5 = type { %struct.atomic_t }
%struct.wake_q_node = type { ptr }
%struct.rb_root_cached = type { %struct.rb_root, ptr }
%struct.rb_root = type { ptr }
%struct.task_io_accounting = type { i64, i64, i64, i64, i64, i64, i64 }
%struct.nodemask_t = type { [16 x i64] }
%struct.seqcount_spinlock = type { %struct.seqcount }
%struct.mutex = type { %struct.atomic64_t, %struct.raw_spinlock, %struct.optimistic_spin_queue, %struct.list_head }
%struct.optimistic_spin_queue = type { %struct.atomic_t }
%struct.list_head = type { ptr, ptr }
%struct.tlbflush_unmap_batch = type { %struct.arch_tlbflush_unmap_batch, i8, i8 }
%struct.arch_tlbflush_unmap_batch = type { %struct.cpumask }
%union.anon.9 = type { %struct.callback_head }
%struct.page_frag = type { ptr, i32, i32 }
%struct.timer_list = type { %struct.hlist_node, i64, ptr, i32 }
%struct.llist_head = type { ptr }
%struct.callback_head = type { ptr, ptr }
%struct.thread_struct = type { [3 x %struct.desc_struct], i64, i16, i16, i16, i16, i64, i64, [4 x ptr], i64, i64, i64, i64, i64, ptr, i64, i8, i32, [40 x i8], %struct.fpu }
%struct.desc_struct = type { i16, i16, i32 }
%struct.fpu = type { i32, i64, ptr, ptr, %struct.fpu_state_perm, %struct.fpu_state_perm, %struct.fpstate }
%struct.fpu_state_perm = type { i64, i32, i32 }
%struct.fpstate = type { i32, i32, i64, i64, i64, i8, [31 x i8], %union.fpregs_state }
%union.fpregs_state = type { %struct.xregs_state, [3520 x i8] }
%struct.xregs_state = type { %struct.fxregs_state, %struct.xstate_header, [0 x i8] }
%struct.fxregs_state = type { i16, i16, i16, i16, %union.anon.10, i32, i32, [32 x i32], [64 x i32], [12 x i32], %union.anon.13 }
%union.anon.10 = type { %struct.anon.11 }
%struct.anon.11 = type { i64, i64 }
%union.anon.13 = type { [12 x i32] }
%struct.xstate_header = type { i64, i64, [6 x i64] }

@.str = private unnamed_addr constant [5 x i8] c"\016%s\00", align 1
@linux_banner = external constant [0 x i8], align 1
@.str.1 = private unnamed_addr constant [14 x i8] c"\016release %s\0A\00", align 1
@init_uts_ns = external global %struct.uts_namespace, align 8
@init_task = external global %struct.task_struct, align 64
@.str.2 = private unnamed_addr constant [5 x i8] c"task\00", align 1
@.str.3 = private unnamed_addr constant [4 x i8] c"pid\00", align 1
@.str.4 = private unnamed_addr constant [5 x i8] c"ppid\00", align 1
@.str.5 = private unnamed_addr constant [8 x i8] c"threads\00", align 1
@.str.6 = private unnamed_addr constant [9 x i8] c"comm_len\00", align 1
@.str.7 = private unnamed_addr constant [5 x i8] c"comm\00", align 1

; Function Attrs: nounwind uwtable
define dso_local range(i32 0, 2) i32 @main() local_unnamed_addr #0 !dbg !9 {
  %1 = alloca [16 x i8], align 16
  call void @llvm.lifetime.start.p0(i64 16, ptr nonnull %1) #6, !dbg !12
  %2 = tail call i32 (ptr, ...) @_printk(ptr noundef nonnull @.str, ptr noundef nonnull @linux_banner) #7, !dbg !13
  %3 = tail call i32 (ptr, ...) @_printk(ptr noundef nonnull @.str.1, ptr noundef nonnull getelementptr inbounds (i8, ptr @init_uts_ns, i64 130)) #7, !dbg !14
  %4 = load ptr, ptr getelementptr inbounds (i8, ptr @init_task, i64 2192), align 16, !dbg !15
  tail call void @__rcu_read_lock() #6, !dbg !16
  %5 = load volatile ptr, ptr getelementptr inbounds (i8, ptr @init_task, i64 2192), align 16, !dbg !20
  %6 = getelementptr inbounds i8, ptr %5, i64 -2192, !dbg !20
  %7 = icmp eq ptr %6, @init_task, !dbg !20
  br i1 %7, label %36, label %8, !dbg !20

8:                                                ; preds = %0
  %9 = getelementptr inbounds i8, ptr %1, i64 15
  br label %10, !dbg !20

10:                                               ; preds = %8, %30
  %11 = phi ptr [ %5, %8 ], [ %33, %30 ]
  %12 = getelementptr inbounds i8, ptr %11, i64 240, !dbg !21
  %13 = load volatile ptr, ptr %12, align 64, !dbg !21
  %14 = getelementptr inbounds i8, ptr %13, i64 2420, !dbg !22
  %15 = load i32, ptr %14, align 4, !dbg !22
  %16 = getelementptr inbounds i8, ptr %11, i64 784, !dbg !23
  call void @llvm.memcpy.p0.p0.i64(ptr noundef nonnull align 16 dereferenceable(16) %1, ptr noundef nonnull align 32 dereferenceable(16) %16, i64 16, i1 false), !dbg !24
  store i8 0, ptr %9, align 1, !dbg !25
  tail call void @llview_record_begin(ptr noundef nonnull @.str.2) #6, !dbg !26
  %17 = getelementptr inbounds i8, ptr %11, i64 224, !dbg !27
  %18 = load i32, ptr %17, align 16, !dbg !27
  %19 = sext i32 %18 to i64, !dbg !28
  tail call void @llview_field_int(ptr noundef nonnull @.str.3, i64 noundef %19) #6, !dbg !29
  %20 = sext i32 %15 to i64, !dbg !30
  tail call void @llview_field_int(ptr noundef nonnull @.str.4, i64 noundef %20) #6, !dbg !31
  %21 = getelementptr inbounds i8, ptr %11, i64 880, !dbg !32
  %22 = load ptr, ptr %21, align 64, !dbg !32
  %23 = getelementptr inbounds i8, ptr %22, i64 16, !dbg !32
  br label %24, !dbg !32

24:                                               ; preds = %24, %10
  %25 = phi i32 [ 0, %10 ], [ %29, %24 ], !dbg !35
  %26 = phi ptr [ %23, %10 ], [ %27, %24 ]
  %27 = load volatile ptr, ptr %26, align 8, !dbg !32
  %28 = icmp eq ptr %27, %23, !dbg !32
  %29 = add nuw nsw i32 %25, 1, !dbg !36
  br i1 %28, label %30, label %24, !dbg !32, !llvm.loop !37

30:                                               ; preds = %24
  %31 = zext nneg i32 %25 to i64, !dbg !39
  tail call void @llview_field_int(ptr noundef nonnull @.str.5, i64 noundef %31) #6, !dbg !40
  %32 = call i64 @strlen(ptr noundef nonnull dereferenceable(1) %1) #6, !dbg !41
  tail call void @llview_field_int(ptr noundef nonnull @.str.6, i64 noundef %32) #6, !dbg !42
  tail call void @llview_field_str(ptr noundef nonnull @.str.7, ptr noundef nonnull %16) #6, !dbg !43
  tail call void @llview_record_end() #6, !dbg !44
  %33 = load volatile ptr, ptr %11, align 16, !dbg !20
  %34 = getelementptr inbounds i8, ptr %33, i64 -2192, !dbg !20
  %35 = icmp eq ptr %34, @init_task, !dbg !20
  br i1 %35, label %36, label %10, !dbg !20, !llvm.loop !45

36:                                               ; preds = %30, %0
  tail call void @__rcu_read_unlock() #6, !dbg !47
  %37 = icmp eq ptr %4, getelementptr inbounds (i8, ptr @init_task, i64 2192), !dbg !50
  %38 = select i1 %7, i1 true, i1 %37, !dbg !50
  %39 = zext i1 %38 to i32, !dbg !50
  call void @llvm.lifetime.end.p0(i64 16, ptr nonnull %1) #6, !dbg !51
  ret i32 %39, !dbg !52
}

; Function Attrs: mustprogress nocallback nofree nosync nounwind willreturn memory(argmem: readwrite)
declare void @llvm.lifetime.start.p0(i64 immarg, ptr nocapture) #1

; Function Attrs: cold
declare !dbg !53 i32 @_printk(ptr noundef, ...) local_unnamed_addr #2

; Function Attrs: mustprogress nocallback nofree nounwind willreturn memory(argmem: readwrite)
declare void @llvm.memcpy.p0.p0.i64(ptr noalias nocapture writeonly, ptr noalias nocapture readonly, i64, i1 immarg) #3

; Function Attrs: mustprogress nocallback nofree nosync nounwind willreturn memory(argmem: readwrite)
declare void @llvm.lifetime.end.p0(i64 immarg, ptr nocapture) #1

declare !dbg !55 void @llview_record_begin(ptr noundef) local_unnamed_addr #4

declare !dbg !57 void @llview_field_int(ptr noundef, i64 noundef) local_unnamed_addr #4

; Function Attrs: mustprogress nofree nounwind willreturn memory(argmem: read)
declare !dbg !58 i64 @strlen(ptr nocapture noundef) local_unnamed_addr #5

declare !dbg !60 void @llview_field_str(ptr noundef, ptr noundef) local_unnamed_addr #4

declare !dbg !61 void @llview_record_end() local_unnamed_addr #4

declare !dbg !62 void @__rcu_read_lock() local_unnamed_addr #4

declare !dbg !63 void @__rcu_read_unlock() local_unnamed_addr #4

attributes #0 = { nounwind uwtable "min-legal-vector-width"="0" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #1 = { mustprogress nocallback nofree nosync nounwind willreturn memory(argmem: readwrite) }
attributes #2 = { cold "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #3 = { mustprogress nocallback nofree nounwind willreturn memory(argmem: readwrite) }
attributes #4 = { "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #5 = { mustprogress nofree nounwind willreturn memory(argmem: read) "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #6 = { nounwind }
attributes #7 = { cold nounwind }

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2, !3, !4, !5, !6, !7}
!llvm.ident = !{!8}

!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, producer: "Debian clang version 19.1.7 (3~deb12u1)", isOptimized: true, runtimeVersion: 0, emissionKind: LineTablesOnly, splitDebugInlining: false, nameTableKind: None)
!1 = !DIFile(filename: "clang_pslist.c", directory: ".", checksumkind: CSK_MD5, checksum: "387fe03d46872b3dde953b99f19b8add")
!2 = !{i32 7, !"Dwarf Version", i32 5}
!3 = !{i32 2, !"Debug Info Version", i32 3}
!4 = !{i32 1, !"wchar_size", i32 2}
!5 = !{i32 8, !"PIC Level", i32 2}
!6 = !{i32 7, !"PIE Level", i32 2}
!7 = !{i32 7, !"uwtable", i32 2}
!8 = !{!"Debian clang version 19.1.7 (3~deb12u1)"}
!9 = distinct !DISubprogram(name: "main", scope: !1, file: !1, line: 27, type: !10, scopeLine: 28, flags: DIFlagPrototyped | DIFlagAllCallsDescribed, spFlags: DISPFlagDefinition | DISPFlagOptimized, unit: !0)
!10 = !DISubroutineType(types: !11)
!11 = !{}
!12 = !DILocation(line: 31, column: 2, scope: !9)
!13 = !DILocation(line: 34, column: 2, scope: !9)
!14 = !DILocation(line: 35, column: 2, scope: !9)
!15 = !DILocation(line: 36, column: 20, scope: !9)
!16 = !DILocation(line: 789, column: 2, scope: !17, inlinedAt: !19)
!17 = distinct !DISubprogram(name: "rcu_read_lock", scope: !18, file: !18, line: 787, type: !10, scopeLine: 788, flags: DIFlagPrototyped | DIFlagAllCallsDescribed, spFlags: DISPFlagLocalToUnit | DISPFlagDefinition | DISPFlagOptimized, unit: !0)
!18 = !DIFile(filename: "/usr/src/linux-headers-6.1.0-56-common/include/linux/rcupdate.h", directory: "", checksumkind: CSK_MD5, checksum: "7b6f866232b4ce2cfdc9145730089178")
!19 = distinct !DILocation(line: 37, column: 2, scope: !9)
!20 = !DILocation(line: 38, column: 2, scope: !9)
!21 = !DILocation(line: 39, column: 16, scope: !9)
!22 = !DILocation(line: 39, column: 49, scope: !9)
!23 = !DILocation(line: 41, column: 19, scope: !9)
!24 = !DILocation(line: 41, column: 3, scope: !9)
!25 = !DILocation(line: 42, column: 26, scope: !9)
!26 = !DILocation(line: 43, column: 3, scope: !9)
!27 = !DILocation(line: 44, column: 30, scope: !9)
!28 = !DILocation(line: 44, column: 27, scope: !9)
!29 = !DILocation(line: 44, column: 3, scope: !9)
!30 = !DILocation(line: 45, column: 28, scope: !9)
!31 = !DILocation(line: 45, column: 3, scope: !9)
!32 = !DILocation(line: 22, column: 2, scope: !33, inlinedAt: !34)
!33 = distinct !DISubprogram(name: "count_threads", scope: !1, file: !1, line: 17, type: !10, scopeLine: 18, flags: DIFlagPrototyped | DIFlagAllCallsDescribed, spFlags: DISPFlagLocalToUnit | DISPFlagDefinition | DISPFlagOptimized, unit: !0)
!34 = distinct !DILocation(line: 46, column: 31, scope: !9)
!35 = !DILocation(line: 0, scope: !33, inlinedAt: !34)
!36 = !DILocation(line: 23, column: 4, scope: !33, inlinedAt: !34)
!37 = distinct !{!37, !32, !36, !38}
!38 = !{!"llvm.loop.mustprogress"}
!39 = !DILocation(line: 46, column: 31, scope: !9)
!40 = !DILocation(line: 46, column: 3, scope: !9)
!41 = !DILocation(line: 47, column: 32, scope: !9)
!42 = !DILocation(line: 47, column: 3, scope: !9)
!43 = !DILocation(line: 48, column: 3, scope: !9)
!44 = !DILocation(line: 49, column: 3, scope: !9)
!45 = distinct !{!45, !20, !46, !38}
!46 = !DILocation(line: 51, column: 2, scope: !9)
!47 = !DILocation(line: 823, column: 2, scope: !48, inlinedAt: !49)
!48 = distinct !DISubprogram(name: "rcu_read_unlock", scope: !18, file: !18, line: 818, type: !10, scopeLine: 819, flags: DIFlagPrototyped | DIFlagAllCallsDescribed, spFlags: DISPFlagLocalToUnit | DISPFlagDefinition | DISPFlagOptimized, unit: !0)
!49 = distinct !DILocation(line: 52, column: 2, scope: !9)
!50 = !DILocation(line: 53, column: 20, scope: !9)
!51 = !DILocation(line: 54, column: 1, scope: !9)
!52 = !DILocation(line: 53, column: 2, scope: !9)
!53 = !DISubprogram(name: "_printk", scope: !54, file: !54, line: 155, type: !10, flags: DIFlagPrototyped, spFlags: DISPFlagOptimized)
!54 = !DIFile(filename: "/usr/src/linux-headers-6.1.0-56-common/include/linux/printk.h", directory: "", checksumkind: CSK_MD5, checksum: "ee2bcb72b01dc0c3c4d65c4bf8f5f29d")
!55 = !DISubprogram(name: "llview_record_begin", scope: !56, file: !56, line: 20, type: !10, flags: DIFlagPrototyped, spFlags: DISPFlagOptimized)
!56 = !DIFile(filename: "/work/main/kernel_headers/llview/ids.h", directory: "", checksumkind: CSK_MD5, checksum: "f4b6854d694c146756477642759e90d3")
!57 = !DISubprogram(name: "llview_field_int", scope: !56, file: !56, line: 21, type: !10, flags: DIFlagPrototyped, spFlags: DISPFlagOptimized)
!58 = !DISubprogram(name: "strlen", scope: !59, file: !59, line: 129, type: !10, flags: DIFlagPrototyped, spFlags: DISPFlagOptimized)
!59 = !DIFile(filename: "/usr/src/linux-headers-6.1.0-56-common/include/linux/string.h", directory: "", checksumkind: CSK_MD5, checksum: "4f1bd42ea90f55a06d5d56e1db1c36c2")
!60 = !DISubprogram(name: "llview_field_str", scope: !56, file: !56, line: 24, type: !10, flags: DIFlagPrototyped, spFlags: DISPFlagOptimized)
!61 = !DISubprogram(name: "llview_record_end", scope: !56, file: !56, line: 25, type: !10, flags: DIFlagPrototyped, spFlags: DISPFlagOptimized)
!62 = !DISubprogram(name: "__rcu_read_lock", scope: !18, file: !18, line: 74, type: !10, flags: DIFlagPrototyped, spFlags: DISPFlagOptimized)
!63 = !DISubprogram(name: "__rcu_read_unlock", scope: !18, file: !18, line: 75, type: !10, flags: DIFlagPrototyped, spFlags: DISPFlagOptimized)
