"""The pass pipeline's API (llview.pipeline.run_passes) beyond the golden files: its contract
with the driver, error handling, speed, and the product of a live clang compile when a kernel
profile is available (the output must compile to an object whose only undefined symbols are
the runtime's)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from llview.paths import LlviewError
from llview.pipeline import PASS_NAMES, CompileError, Diagnostic, PassStats, run_passes
from llview.runtime_abi import runtime_abi

IR_DIR = Path(__file__).parent / "ir"
CLANG_FIXTURE = IR_DIR / "clang_pslist.ll"
SUPPLIED = {"_printk", "__rcu_read_lock", "__rcu_read_unlock", "llview_record_begin",
            "llview_field_int", "llview_field_str", "llview_record_end"}

HEADER = ('source_filename = "ids.c"\n'
          'target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-'
          'f80:128-n8:16:32:64-S128"\n'
          'target triple = "x86_64-pc-linux-gnu"\n')
DEBUG_FOOTER = """
!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "main", scope: !1, file: !1, line: 3, type: !6, \
scopeLine: 3, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !7)
!7 = !{}
!8 = !DILocation(line: 6, column: 9, scope: !5)
!9 = !DILocation(line: 7, column: 2, scope: !5)
"""


def _stat(stats: list[PassStats], name: str) -> PassStats:
    return next(s for s in stats if s.name == name)


def test_registry_order_is_pipeline_order() -> None:
    assert PASS_NAMES == ["kernel_symbols", "guest_loads", "footprints", "store_guard",
                          "forbidden_calls",
                          "entry"]


def test_clang_module_through_whole_pipeline() -> None:
    out, stats = run_passes(CLANG_FIXTURE.read_text(), supplied=SUPPLIED)
    llvm.parse_assembly(out).verify()  # an independent parse of the result
    assert "external global" not in out and "@init_task" not in out
    assert out.count("call ptr @__llview_load(") == 8
    assert [s.name for s in stats] == [*PASS_NAMES, "sites"]
    assert _stat(stats, "kernel_symbols").counts["kernel symbols resolved"] == 3
    loads = _stat(stats, "guest_loads")
    assert loads.counts["loads instrumented"] == 8
    assert loads.counts["memcpys redirected"] == 1
    assert loads.skipped == {"kernel symbol table": 3}
    assert _stat(stats, "store_guard").skipped == {"stack (alloca)": 1}
    assert _stat(stats, "sites").counts["sites"] == 8
    assert re.search(r"@__llview_nsites = constant i32 8\b", out)


def test_all_diagnostics_of_all_passes_are_collected() -> None:
    ir = HEADER + """
@jiffies = external global i64, align 8

define i32 @scan(ptr %ops) !dbg !5 {
  store i64 0, ptr @jiffies, align 8, !dbg !8
  call void @schedule(), !dbg !9
  %fn = load ptr, ptr %ops, align 8
  call void %fn(), !dbg !9
  ret i32 0
}

declare void @schedule()
""" + DEBUG_FOOTER
    with pytest.raises(CompileError) as caught:
        run_passes(ir, supplied=set())
    lines = [str(d) for d in caught.value.diagnostics]
    assert lines == [
        "ids.c:6:9: error: store to guest memory (jiffies) is not allowed: the IDS may only "
        "read the guest",
        "ids.c:7:2: error: call to kernel function 'schedule', which has no body outside the "
        "kernel",
        "ids.c:7:2: error: call through a function pointer cannot run outside the kernel (the "
        "function it points to is kernel code)",
        "ids.c:0:0: error: the IDS program has no 'int main(void)' (its entry point)",
    ]
    assert all(isinstance(d, Diagnostic) for d in caught.value.diagnostics)
    assert str(caught.value) == "\n".join(lines)


def test_unknown_pass_is_named() -> None:
    with pytest.raises(LlviewError, match="unknown pass 'guest_load'.*guest_loads"):
        run_passes(HEADER, supplied=set(), passes=["guest_load"])


def test_invalid_ir_is_a_clear_error() -> None:
    with pytest.raises(LlviewError, match=r"(?s)cannot read the IDS's IR: invalid LLVM IR: .*"
                                          r"use of undefined value '%q'"):
        run_passes(HEADER + "define i32 @main() {\n  %v = load i32, ptr %q\n  ret i32 %v\n}\n",
                   supplied=set())


def test_ir_that_does_not_verify_is_a_clear_error() -> None:
    with pytest.raises(LlviewError, match="(?s)does not verify.*does not dominate"):
        run_passes(HEADER + "define i32 @main() {\n  %a = add i32 %b, 1\n  %b = add i32 1, 1\n"
                            "  ret i32 %a\n}\n", supplied=set())


def test_output_cannot_be_processed_twice() -> None:
    out, _ = run_passes(CLANG_FIXTURE.read_text(), supplied=SUPPLIED)
    with pytest.raises(CompileError, match="processed by llview before"):
        run_passes(out, supplied=SUPPLIED)


def test_verify_false_skips_the_verifier_only() -> None:
    out, _ = run_passes(CLANG_FIXTURE.read_text(), supplied=SUPPLIED, verify=False)
    llvm.parse_assembly(out).verify()


def _many_functions_module(copies: int) -> str:
    """The clang fixture's main, cloned into `copies` functions (a ~1000-line module)."""
    text = CLANG_FIXTURE.read_text()
    start = text.index("\ndefine dso_local") + 1
    body = text[start:text.index("\n}\n", start) + 3]
    # a DISubprogram belongs to one function: the clones go without debug locations
    plain = re.sub(r",? !dbg ![0-9]+", "", body)
    clones = [plain.replace("@main()", f"@walk{k}()") for k in range(copies)]
    return text.replace(body, body + "\n" + "\n".join(clones))


def test_speed_of_a_thousand_line_module() -> None:
    """CPU time, not wall time: the suite shares the machine with a QEMU guest."""
    ir = _many_functions_module(12)
    assert len(ir.splitlines()) >= 1000
    run_passes(ir, supplied=SUPPLIED)  # warm up imports and caches
    best = min(_cpu_time(lambda: run_passes(ir, supplied=SUPPLIED)) for _ in range(3))
    assert best < 0.3, f"the pipeline took {best:.3f} s of CPU on {len(ir.splitlines())} lines"


def _cpu_time(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _live_ir(source: Path) -> str:
    """clang's IR for `source` through the driver's own front end and the fetched profile."""
    try:
        from llview import frontend
        from llview.kernel import load_profile
        profile = load_profile(None)
    except (ImportError, LlviewError) as e:
        pytest.skip(f"no kernel profile / front end: {e}")
    ir, messages = frontend.start_compile_to_ir(source, frontend.kernel_flags(profile)).finish()
    assert ir is not None, messages
    return ir


def test_live_clang_compile_links_only_against_the_runtime(tmp_path: Path) -> None:
    out, stats = run_passes(_live_ir(IR_DIR / "clang_pslist.c"), supplied=SUPPLIED)
    assert _stat(stats, "guest_loads").counts["loads instrumented"] >= 6
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(out)
    machine = llvm.Target.from_default_triple().create_target_machine(reloc="pic")
    obj = tmp_path / "ids.o"
    obj.write_bytes(machine.emit_object(module))
    nm = subprocess.run(["llvm-nm-19", "--undefined-only", "--format=just-symbols", str(obj)],
                        capture_output=True, text=True, check=True)
    undefined = set(nm.stdout.split())
    allowed = SUPPLIED | set(runtime_abi().functions) | {"memcpy", "memmove", "memset",
                                                  "_GLOBAL_OFFSET_TABLE_"}
    assert undefined <= allowed, f"undefined symbols outside the runtime: {undefined - allowed}"
    assert "__llview_load" in undefined
    defined = subprocess.run(["llvm-nm-19", "--defined-only", "--format=just-symbols", str(obj)],
                             capture_output=True, text=True, check=True).stdout.split()
    for symbol in ("__llview_ids_main", "__llview_ksyms", "__llview_nksyms", "__llview_sites",
                   "__llview_nsites"):
        assert symbol in defined
