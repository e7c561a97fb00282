"""`llview build` (IDS C file -> instrumented executable) and `llview opt` (run the passes on IR).

build: clang-19 compiles the file to optimised IR while libclang parses it for the source-level
call checks (the two overlap: they are the slow steps); llvmlite parses and verifies the IR;
llview's passes rewrite it; the runtime's fast path (runtime/build/fastpath.ll) is linked in;
the O2 pipeline inlines it at every load; llvmlite emits a PIC object; clang links it with the
runtime library and libcrypto into a PIE.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llview.paths import LlviewError

if TYPE_CHECKING:
    from llview.diagnose import SuppliedFunctions

LINK_LIBRARIES = ["-lcrypto"]


class _Timer:
    """Step timings for --verbose."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.last = self.start = time.perf_counter()

    def step(self, what: str) -> None:
        now = time.perf_counter()
        if self.enabled:
            print(f"llview: {what}: {(now - self.last) * 1000:.0f} ms", file=sys.stderr)
        self.last = now

    def total(self) -> None:
        if self.enabled:
            total = (time.perf_counter() - self.start) * 1000
            print(f"llview: total: {total:.0f} ms", file=sys.stderr)


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        raise LlviewError(f"cannot write {path}: {e.strerror}") from None


def _print_diagnostics(diagnostics: list) -> int:
    for diagnostic in diagnostics:
        print(diagnostic, file=sys.stderr)
    count = len(diagnostics)
    print(f"{count} error{'s' if count != 1 else ''} generated.", file=sys.stderr)
    return 1


def _load_pipeline() -> tuple[Callable, type]:
    try:
        from llview.pipeline import CompileError, run_passes
    except ModuleNotFoundError as e:
        if e.name != "llview.pipeline":
            raise
        raise LlviewError("llview's IR passes (llview/pipeline.py) are not installed") from None
    return run_passes, CompileError


def _parse_ir(llvm, text: str, stage: str):
    try:
        module = llvm.parse_assembly(text)
        module.verify()
    except RuntimeError as e:
        raise LlviewError(f"internal error: the IR {stage} is not valid LLVM IR: {e}") from None
    return module


def format_stats(stats: list) -> str:
    """One row per pass: what it did (counts) and what it left alone, and why (skipped)."""

    def cell(values: dict) -> str:
        return ", ".join(f"{value} {key}" for key, value in values.items()) or "-"

    rows = [("pass", "done", "skipped")]
    rows += [(s.name, cell(s.counts), cell(s.skipped)) for s in stats]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows)


_MODULE_FLAG = re.compile(r'^(![0-9]+) = !\{i32 ([0-9]+), !"([^"]+)", (.*)\}$', re.M)
_MODULE_FLAG_ERROR_ON_MISMATCH = "1"


def adopt_module_flags(runtime_ir: str, ids_ir: str) -> str:
    """The runtime IR with its must-match module flags set to the IDS module's values.

    IDS modules are compiled with the kernel's -fshort-wchar (wchar_size 2), the fast path is
    not; the linker refuses such a mismatch although the fast path uses no wchar_t."""
    ids_flags = {m[3]: m[4] for m in _MODULE_FLAG.finditer(ids_ir)}

    def adopt(m: re.Match) -> str:
        if m[2] == _MODULE_FLAG_ERROR_ON_MISMATCH and ids_flags.get(m[3], m[4]) != m[4]:
            return f'{m[1]} = !{{i32 {m[2]}, !"{m[3]}", {ids_flags[m[3]]}}}'
        return m[0]

    return _MODULE_FLAG.sub(adopt, runtime_ir)


def optimise_and_emit(module, fastpath: Path, object_path: Path) -> None:
    """Links the fast path into the rewritten module (llvmlite ModuleRef, consumed), runs LLVM's
    O2 pipeline (which inlines the fast path at every load) and writes a PIC object file."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    try:
        runtime_ir = fastpath.read_text()
    except OSError as e:
        raise LlviewError(f"cannot read the runtime fast path {fastpath}: {e}") from None
    runtime_module = _parse_ir(llvm, adopt_module_flags(runtime_ir, str(module)),
                               f"in {fastpath}")
    fast_functions = [f.name for f in runtime_module.functions if not f.is_declaration]
    try:
        module.link_in(runtime_module)
    except RuntimeError as e:
        raise LlviewError(f"cannot link the runtime fast path {fastpath}: {e}") from None
    # Internal: once inlined everywhere they are dropped, leaving no copy to clash with anything.
    for name in fast_functions:
        module.get_function(name).linkage = "internal"
    try:
        module.verify()
    except RuntimeError as e:
        raise LlviewError(f"internal error: linking {fastpath} gave invalid IR: {e}") from None
    target = llvm.Target.from_triple(module.triple or llvm.get_default_triple())
    machine = target.create_target_machine(opt=2, reloc="pic", codemodel="default")
    tuning = llvm.create_pipeline_tuning_options(speed_level=2)
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(module, builder)
    object_path.write_bytes(machine.emit_object(module))


def link_executable(object_path: Path, runtime_archive: Path, output: Path) -> None:
    import subprocess

    from llview.frontend import CLANG

    cmd = [CLANG, str(object_path), str(runtime_archive), *LINK_LIBRARIES, "-o", str(output)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LlviewError(f"linking {output} failed:\n{(done.stderr + done.stdout).strip()}")


@dataclass
class FrontEndResult:
    ir_text: str | None  # None when clang failed
    clang_messages: str  # clang's warnings and errors, verbatim
    diagnostics: list  # llview's source-level errors (diagnose.Diagnostic)


def front_end(source: Path, flags: list[str],
              supplied: Callable[[], set[str] | SuppliedFunctions],
              display_roots: list[Path], timer: _Timer | None = None,
              pch: list[str] | None = None) -> FrontEndResult:
    """clang-19 to optimised IR, overlapped with the libclang parse for the call checks.

    flags: frontend.kernel_flags(...); pch: frontend.precompiled_preamble(...) or None.
    `supplied` (what the runtime defines; may build it) is called while both run."""
    from llview import frontend

    timer = timer or _Timer(False)
    if pch:
        result = _front_end(source, flags, pch, supplied, display_roots, timer)
        if result.ir_text is not None or not frontend.is_pch_failure(result.clang_messages):
            return result
        Path(pch[-1]).unlink(missing_ok=True)  # stale or corrupt: rebuilt next time
    return _front_end(source, flags, [], supplied, display_roots, timer)


def _front_end(source: Path, flags: list[str], pch: list[str],
               supplied: Callable[[], set[str] | SuppliedFunctions], display_roots: list[Path],
               timer: _Timer) -> FrontEndResult:
    from llview import diagnose, frontend

    clang_run = frontend.start_compile_to_ir(source, flags, pch)
    try:
        # libclang releases the GIL while parsing, so the runtime check runs alongside it.
        with ThreadPoolExecutor(max_workers=1) as pool:
            allowed_future = pool.submit(supplied)
            tu = diagnose.parse(source, [*frontend.compile_flags(flags), *pch])
            timer.step("libclang parse")
            allowed = allowed_future.result()
        ir_text, clang_messages = clang_run.finish()
    finally:
        clang_run.cancel()  # only does something when an error cut the overlap short
    timer.step("runtime check and clang to IR (beyond the parse)")
    if ir_text is None:
        return FrontEndResult(None, clang_messages, [])
    diagnostics = diagnose.check_calls(
        tu, allowed, called=frontend.called_external_functions(ir_text),
        indirect_calls_survive=diagnose.ir_has_indirect_calls(ir_text),
        display_roots=display_roots)
    timer.step("call checks")
    return FrontEndResult(ir_text, clang_messages, diagnostics)


def cmd_build(args: argparse.Namespace) -> int:
    from llview import frontend, kernel_functions, runtime_lib
    from llview.kernel import load_profile

    timer = _Timer(args.verbose)
    source = Path(args.file)
    if not source.is_file():
        raise LlviewError(f"{source}: no such file")
    output = Path(args.output)
    profile = load_profile(args.kernel)
    flags = frontend.kernel_flags(profile, args.include_dirs, args.defines)
    try:
        source_text = source.read_text(errors="replace")
    except OSError as e:
        raise LlviewError(f"cannot read {source}: {e.strerror}") from None
    # User -I directories may change under the same names: no cached preamble then.
    pch = frontend.precompiled_preamble(source_text, flags, profile,
                                        cacheable=not args.include_dirs)
    timer.step("precompiled preamble")
    def supplied() -> SuppliedFunctions:  # the runtime's, then the supplied kernel functions
        return kernel_functions.supplied(profile, flags, runtime_lib.supplied_symbols())

    result = front_end(source, flags, supplied, [profile.headers_common, profile.headers],
                       timer, pch)
    sys.stderr.write(result.clang_messages)
    if result.ir_text is None:
        return 1
    if result.diagnostics:
        return _print_diagnostics(result.diagnostics)
    run_passes, compile_error = _load_pipeline()
    import llvmlite.binding as llvm

    try:  # run_passes parses and verifies clang's IR itself
        linked = kernel_functions.link(result.ir_text, profile, flags,
                                       runtime_lib.supplied_symbols())
        rewritten, stats = run_passes(linked, supplied=runtime_lib.supplied_symbols(),
                                      kernel_release=profile.release)
    except compile_error as e:
        return _print_diagnostics(e.diagnostics)
    module = _parse_ir(llvm, rewritten, "after llview's passes")
    timer.step("passes")
    to_stdout = args.emit_llvm and args.output == "-"
    if args.stats:
        print(format_stats(stats), file=sys.stderr if to_stdout else sys.stdout)
    if to_stdout:
        sys.stdout.write(rewritten)
    elif args.emit_llvm:
        _write_text(output, rewritten)
        timer.total()
        return 0
    with tempfile.TemporaryDirectory(prefix="llview-build-") as work:
        object_path = Path(work) / (source.stem + ".o")
        optimise_and_emit(module, runtime_lib.FASTPATH_IR, object_path)
        timer.step("optimise and emit object")
        link_executable(object_path, runtime_lib.RUNTIME_ARCHIVE, output)
        timer.step("link")
    timer.total()
    return 0


def cmd_opt(args: argparse.Namespace) -> int:
    from llview import runtime_lib

    run_passes, compile_error = _load_pipeline()
    try:
        ir_text = Path(args.file).read_text() if args.file != "-" else sys.stdin.read()
    except OSError as e:
        raise LlviewError(f"cannot read {args.file}: {e.strerror}") from None
    if args.supplied is not None:
        supplied = {name for name in args.supplied.split(",") if name}
    else:
        supplied = runtime_lib.supplied_symbols()
    passes = [p for p in args.passes.split(",") if p] if args.passes is not None else None
    try:
        rewritten, stats = run_passes(ir_text, supplied=supplied, passes=passes)
    except compile_error as e:
        return _print_diagnostics(e.diagnostics)
    if args.stats:
        print(format_stats(stats), file=sys.stderr)
    if args.output and args.output != "-":
        _write_text(Path(args.output), rewritten)
    else:
        sys.stdout.write(rewritten)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    build = sub.add_parser(
        "build", help="compile an IDS program (C against kernel headers) into an executable",
        description="Compile an IDS program written in C against the monitored kernel's headers "
                    "into an executable whose every guest-memory read goes through the llview "
                    "runtime. Run the result with --agent URL --key FILE.")
    build.add_argument("file", metavar="FILE.c", help="the IDS program; entry point int main(void)")
    build.add_argument("-o", dest="output", required=True, metavar="OUT",
                       help="the executable to write (with --emit-llvm: the IR file, - for "
                            "stdout)")
    build.add_argument("--kernel", metavar="SPEC",
                       help="kernel profile name or directory (default: the one fetched last)")
    build.add_argument("--emit-llvm", action="store_true",
                       help="write to OUT the LLVM IR as llview's passes leave it (before the "
                            "runtime fast path is linked in and the module is optimised) "
                            "instead of an executable")
    build.add_argument("--stats", action="store_true",
                       help="print what each pass did: loads instrumented, skipped and why")
    build.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR",
                       help="add DIR to the include path (searched before the kernel headers)")
    build.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME[=VALUE]",
                       help="define a preprocessor macro")
    build.add_argument("-v", "--verbose", action="store_true", help="print the time of each step")
    build.set_defaults(func=cmd_build)

    opt = sub.add_parser("opt", help="run llview's passes on an LLVM IR file and print the result",
                         description="Run llview's IR passes on FILE.ll (as clang emits it for an "
                                     "IDS) and print the rewritten IR (used by the golden tests).")
    opt.add_argument("file", metavar="FILE.ll", help="LLVM IR text, or - for stdin")
    opt.add_argument("--passes", metavar="A,B",
                     help="comma-separated passes to run, in this order (default: all)")
    opt.add_argument("--supplied", metavar="NAMES",
                     help="comma-separated functions the runtime supplies (default: the symbols "
                          "of runtime/build/libllview_rt.a)")
    opt.add_argument("--stats", action="store_true", help="print per-pass counts to stderr")
    opt.add_argument("-o", dest="output", metavar="OUT", help="write the IR here (default: stdout)")
    opt.set_defaults(func=cmd_opt)
