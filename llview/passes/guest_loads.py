"""guest_loads: route every read that may touch guest memory through the runtime.

    %v = load T, ptr %p, ...
becomes
    %llview.g.N = call ptr @__llview_load(ptr %p, i64 <store size of T>, i32 <site>)
    %v = load T, ptr %llview.g.N, ...          ; volatile/atomic/align/metadata kept

for plain, volatile, atomic, aggregate and vector loads alike (the runtime
serves reads that straddle a page from the size it is given). A load whose
pointer provably stays in the IDS's own memory (alloca, a global the module
defines, a constant, the kernel-symbol table) is left alone and counted by
reason. llvm.memcpy/memmove with a source or destination that may be guest
memory become __llview_memcpy/__llview_memmove, llvm.memset to such a
destination becomes __llview_memset (refused at run time for guest memory),
and calls of the C string functions the kernel headers declare (strlen,
strcmp, memcmp, bcmp, memcpy, ...) go to their __llview_ versions, which take
a site argument.
"""

from __future__ import annotations

import re

import llvmlite.binding as llvm

from llview.irtext import Inst, ModuleView, call_args_span, global_ref, parse_value, split_top
from llview.irtext import split_type as split_typed
from llview.passes.context import PassContext, PassStats
from llview.passes.pointers import PointerAnalysis

NAME = "guest_loads"

# libc-named functions the kernel headers declare -> (runtime replacement, expected IR type)
STRING_FUNCTIONS = {
    "strlen": ("__llview_strlen", "i64 (ptr)"),
    "strnlen": ("__llview_strnlen", "i64 (ptr, i64)"),
    "strcmp": ("__llview_strcmp", "i32 (ptr, ptr)"),
    "strncmp": ("__llview_strncmp", "i32 (ptr, ptr, i64)"),
    "memcmp": ("__llview_memcmp", "i32 (ptr, ptr, i64)"),
    "bcmp": ("__llview_memcmp", "i32 (ptr, ptr, i64)"),
    "memcpy": ("__llview_memcpy", "ptr (ptr, ptr, i64)"),
    "memmove": ("__llview_memmove", "ptr (ptr, ptr, i64)"),
    "memset": ("__llview_memset", "ptr (ptr, i32, i64)"),
}
_DEREFERENCEABLE = re.compile(r" dereferenceable(?:_or_null)?\([0-9]+\)")


def store_size(ty: llvm.TypeRef, target: llvm.TargetData) -> int:
    """Bytes a load of `ty` reads (LLVM's store size: i1 -> 1, x86_fp80 -> 10)."""
    if ty.is_struct or ty.is_array or ty.is_pointer:
        return target.get_abi_size(ty)
    bits = ty.type_width
    if bits:
        return (bits + 7) // 8
    return target.get_abi_size(ty)  # vectors of pointers


def run(view: ModuleView, ctx: PassContext) -> PassStats:
    stats = PassStats(NAME)
    pointers = PointerAnalysis(view, ctx)
    target = llvm.create_target_data(view.module.data_layout)
    for func in view.functions:
        for inst in func.insts:
            if inst.opcode == "load":
                _load(view, ctx, pointers, target, inst, stats)
            elif inst.opcode == "call":
                name = inst.direct_callee()
                if name is None:
                    continue  # indirect calls and inline asm: forbidden_calls diagnoses them
                # (string calls are redirected even on local buffers: the __llview_ versions
                # read those natively, and the kernel's declarations have no body to call)
                if name.startswith(("llvm.memcpy.", "llvm.memmove.")) and \
                        ".element.unordered.atomic" not in name:
                    _transfer(view, ctx, pointers, inst, name, stats)
                elif name.startswith("llvm.memset.") and ".element.unordered.atomic" not in name:
                    _memset(view, ctx, pointers, inst, stats)
                elif name in STRING_FUNCTIONS and name in view.declarations:
                    _string_call(view, ctx, inst, name, stats)
    return stats


def _load(view: ModuleView, ctx: PassContext, pointers: PointerAnalysis,
          target: llvm.TargetData, inst: Inst, stats: PassStats) -> None:
    pointer = next(iter(inst.ref.operands))
    where = pointers.classify(inst.func, pointer)
    if where.kind == "local":
        stats.skip(where.detail)   # the IDS's own memory (stack, own globals): read natively
        return
    if str(pointer.type) != "ptr":
        # %gs-relative per-CPU reads and other address spaces have no meaning outside the kernel
        ctx.error(view, inst, f"load through '{pointer.type}' (a per-CPU or other special "
                              "address space) cannot run outside the kernel")
        return
    line = view.current(inst.line)
    head, rest = line.split(" = load ", 1)
    parts = split_top(rest)
    ptr_type, after = split_typed(parts[1])
    old, tail = parse_value(after)
    fetched = ctx.fresh("g")
    parts[1] = f"{ptr_type} {fetched}" + (f" {tail}" if tail else "")
    size = store_size(inst.ref.type, target)
    site = ctx.site(view, inst)
    view.insert_before(inst.line, [
        f"  {fetched} = call ptr {ctx.declare(view, '__llview_load')}(ptr {old}, i64 {size}, "
        f"i32 {site}){view.dbg_suffix(inst)}"])
    view.replace_line(inst.line, f"{head} = load " + ", ".join(parts))
    stats.count("loads instrumented")
    if where.kind == "kernel":
        stats.count("loads from kernel symbols")


def _length_i64(view: ModuleView, ctx: PassContext, inst: Inst, ref: llvm.ValueRef,
                extend: str = "zext") -> str:
    """Value text of integer `ref` widened to i64 (constants directly, else a zext/sext)."""
    text = view.value_text(inst.func, ref)
    ty = str(ref.type)
    if ty == "i64":
        return text
    if ref.value_kind == llvm.ValueKind.constant_int:
        return str(ref.get_constant_value(signed_int=extend == "sext"))
    wide = ctx.fresh("n")
    view.insert_before(inst.line, [f"  {wide} = {extend} {ty} {text} to i64"])
    return wide


def _transfer(view: ModuleView, ctx: PassContext, pointers: PointerAnalysis, inst: Inst,
              intrinsic: str, stats: PassStats) -> None:
    dst, src, length = list(inst.ref.operands)[:3]
    kind = "memmove" if intrinsic.startswith("llvm.memmove") else "memcpy"
    src_where = pointers.classify(inst.func, src)
    dst_where = pointers.classify(inst.func, dst)
    if src_where.kind == "local" and dst_where.kind == "local":
        stats.skip(f"{kind} between IDS-local buffers")   # the intrinsic stays: no guest byte
        return
    n = _length_i64(view, ctx, inst, length)
    site = ctx.site(view, inst)
    callee = ctx.declare(view, f"__llview_{kind}")
    result = ctx.fresh("r")
    view.replace_line(inst.line,
                      f"  {result} = call ptr {callee}(ptr {view.value_text(inst.func, dst)}, "
                      f"ptr {view.value_text(inst.func, src)}, i64 {n}, i32 {site})"
                      f"{view.dbg_suffix(inst)}")
    stats.count(f"{kind}s redirected")


def _memset(view: ModuleView, ctx: PassContext, pointers: PointerAnalysis, inst: Inst,
            stats: PassStats) -> None:
    dst, value, length = list(inst.ref.operands)[:3]
    if pointers.classify(inst.func, dst).kind == "local":
        stats.skip("memset of IDS-local memory")   # the intrinsic stays
        return
    if value.value_kind == llvm.ValueKind.constant_int:
        byte = str(value.get_constant_value() & 0xFF)
    else:
        byte = ctx.fresh("c")
        view.insert_before(inst.line, [
            f"  {byte} = zext i8 {view.value_text(inst.func, value)} to i32"])
    n = _length_i64(view, ctx, inst, length)
    site = ctx.site(view, inst)
    result = ctx.fresh("r")
    view.replace_line(inst.line,
                      f"  {result} = call ptr {ctx.declare(view, '__llview_memset')}"
                      f"(ptr {view.value_text(inst.func, dst)}, i32 {byte}, i64 {n}, "
                      f"i32 {site}){view.dbg_suffix(inst)}")
    stats.count("memsets redirected")


def _string_call(view: ModuleView, ctx: PassContext, inst: Inst, name: str,
                 stats: PassStats) -> None:
    replacement, expected = STRING_FUNCTIONS[name]
    declared = str(view.declarations[name].global_value_type)
    if declared != expected:
        ctx.error(view, inst, f"'{name}' is declared as '{declared}', not the C library's "
                              f"'{expected}'; llview cannot redirect it to guest-safe code")
        return
    line = view.current(inst.line)
    start, end = call_args_span(line, global_ref(name))
    args = _DEREFERENCEABLE.sub("", line[start:end])
    site = ctx.site(view, inst)
    callee = ctx.declare(view, replacement)
    head = line[:start - 1 - len(global_ref(name))]
    view.replace_line(inst.line, f"{head}{callee}({args}, i32 {site}){line[end + 1:]}")
    stats.count("string calls redirected")
