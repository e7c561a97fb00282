"""llview's IR pipeline: clang's IR for an IDS program in, instrumented IR out.

run_passes() parses and verifies the IR with llvmlite, runs the passes of
llview/passes in registry order (or the ones asked for, in the order given),
parsing and verifying again at every hand-off, then emits the site table
(@__llview_sites, @__llview_nsites) shared by all passes. Every diagnostic
the passes find is collected; if there is any, CompileError carries them all.

Also a small CLI for the golden tests and for debugging:
    python -m llview.pipeline [--passes a,b] [--supplied f,g] [--stats] FILE.ll|-
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from llview.irtext import IRError, ModuleView, c_string
from llview.passes import PASSES
from llview.passes.context import CompileError, Diagnostic, PassContext, PassStats
from llview.paths import LlviewError
from llview.runtime_abi import (
    KERNEL_RELEASE,
    SITE_COUNT,
    SITE_STRUCT,
    SITE_TABLE,
    runtime_abi,
    struct_type_name,
)

__all__ = ["PASS_NAMES", "CompileError", "Diagnostic", "PassStats", "run_passes"]

PASS_NAMES: list[str] = list(PASSES)
SITE_TYPE = struct_type_name(SITE_STRUCT)


def run_passes(ir_text: str, *, supplied: set[str], passes: list[str] | None = None,
               verify: bool = True, kernel_release: str | None = None
               ) -> tuple[str, list[PassStats]]:
    """Rewrite `ir_text`; return the new IR (canonical llvmlite text) and per-pass statistics.

    kernel_release (uname -r of the headers' kernel) becomes @__llview_kernel_release, so the
    runtime refuses a guest running another kernel, whose struct layouts need not match."""
    names = PASS_NAMES if passes is None else passes
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise LlviewError(f"unknown pass {', '.join(map(repr, unknown))} "
                          f"(passes: {', '.join(PASS_NAMES)})")
    try:
        view = ModuleView(ir_text, verify)
    except IRError as e:
        raise LlviewError(f"cannot read the IDS's IR: {e}") from None
    ctx = PassContext(supplied)
    all_stats: list[PassStats] = []
    for name in names:
        try:
            all_stats.append(PASSES[name](view, ctx))
        except (IRError, ValueError, KeyError, IndexError, StopIteration) as e:
            # a construct the text rewriting does not understand: say where, do not crash
            raise LlviewError(f"internal error in llview pass {name}: {e!r}") from e
        view = _hand_off(view, verify, f"after pass {name}")
    if ctx.diagnostics:
        # in source order, as clang reports; those without a line (globals, main) last
        raise CompileError(sorted(ctx.diagnostics, key=lambda d: (d.line == 0, d.file, d.line,
                                                                   d.column)))
    all_stats.append(_emit_sites(view, ctx))
    if kernel_release:
        literal, size = c_string(kernel_release)
        view.add_global(f"@{KERNEL_RELEASE} = constant [{size} x i8] {literal}, align 1")
    view = _hand_off(view, verify, "after emitting the site table")
    return str(view.module), all_stats


def _hand_off(view: ModuleView, verify: bool, when: str) -> ModuleView:
    text = view.render()
    try:
        return ModuleView(text, verify)
    except IRError as e:
        raise LlviewError(f"internal error in llview's passes: the IR {when} is invalid: "
                          f"{e}") from None


def _emit_sites(view: ModuleView, ctx: PassContext) -> PassStats:
    """The site table: where each instrumented operation sits in the IDS source."""
    if SITE_TABLE in view.global_lines:
        raise CompileError([Diagnostic(view.source_filename, 0, 0,
                                       f"module already has @{SITE_TABLE}: it was processed "
                                       "by llview before")])
    view.add_type(SITE_TYPE, runtime_abi().struct_body(SITE_STRUCT))
    file_refs: dict[str, str] = {}
    entries = []
    for file, line, column in ctx.sites:
        ref = file_refs.get(file)
        if ref is None:
            ref = f"@__llview_site_file.{len(file_refs)}"
            file_refs[file] = ref
            literal, size = c_string(file)
            view.add_global(
                f"{ref} = private unnamed_addr constant [{size} x i8] {literal}, align 1")
        entries.append(f"{SITE_TYPE} {{ ptr {ref}, i32 {line}, i32 {column} }}")
    array = f"[{len(entries)} x {SITE_TYPE}]"
    init = "[" + ", ".join(entries) + "]" if entries else "zeroinitializer"
    view.add_global(f"@{SITE_TABLE} = constant {array} {init}, align 8")
    view.add_global(f"@{SITE_COUNT} = constant i32 {len(entries)}, align 4")
    return PassStats("sites", {"sites": len(entries), "source files": len(file_refs)})


def format_stats(stats: list[PassStats]) -> str:
    lines = []
    for s in stats:
        parts = [f"{v} {k}" for k, v in s.counts.items()]
        parts += [f"{v} skipped: {k}" for k, v in s.skipped.items()]
        lines.append(f"{s.name}: " + ("; ".join(parts) if parts else "nothing to do"))
    return "\n".join(lines)


def cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI; return (exit status, stdout text, stderr text)."""
    parser = argparse.ArgumentParser(prog="llview-opt",
                                     description="Run llview's IR passes on an IR file.")
    parser.add_argument("file", help="LLVM IR text file, or - for stdin")
    parser.add_argument("--passes", help=f"comma-separated, in order (default: "
                                         f"{','.join(PASS_NAMES)})")
    parser.add_argument("--supplied", default="",
                        help="comma-separated names of functions the runtime defines")
    parser.add_argument("--no-verify", action="store_true", help="skip the LLVM verifier")
    parser.add_argument("--stats", action="store_true", help="print per-pass counts to stderr")
    usage_errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage_errors):
            args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0), "", usage_errors.getvalue()
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except OSError as e:
        return 1, "", f"llview-opt: error: cannot read {args.file}: {e.strerror}\n"
    passes = [p for p in args.passes.split(",") if p] if args.passes is not None else None
    supplied = {s for s in args.supplied.split(",") if s}
    try:
        out, stats = run_passes(text, supplied=supplied, passes=passes,
                                verify=not args.no_verify)
    except CompileError as e:
        return 1, "", "".join(f"{d}\n" for d in e.diagnostics)
    except LlviewError as e:
        return 1, "", f"llview-opt: error: {e}\n"
    return 0, out, (format_stats(stats) + "\n") if args.stats else ""


def main() -> int:
    status, out, err = cli(sys.argv[1:])
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main())
