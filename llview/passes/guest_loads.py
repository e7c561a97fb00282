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

from llview.irtext import Inst, ModuleView
from llview.passes.context import PassContext, PassStats
from llview.passes.pointers import PointerAnalysis
from llview.runtime_abi import RuntimeFunction, runtime_abi

NAME = "guest_loads"

# libc-named functions the kernel headers declare -> their runtime replacement, which takes the
# same arguments and a site (the type the IDS's declaration must have is read from llview_rt.h)
STRING_FUNCTIONS = {
    "strlen": "__llview_strlen",
    "strnlen": "__llview_strnlen",
    "strcmp": "__llview_strcmp",
    "strncmp": "__llview_strncmp",
    "memcmp": "__llview_memcmp",
    "bcmp": "__llview_memcmp",
    "memcpy": "__llview_memcpy",
    "memmove": "__llview_memmove",
    "memset": "__llview_memset",
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
    fetched = ctx.fresh("g")
    old = view.replace_pointer_operand(inst, fetched)
    view.insert_call(inst, "ptr", ctx.declare(view, "__llview_load"),
                     [f"ptr {old}", f"i64 {store_size(inst.ref.type, target)}",
                      f"i32 {ctx.site(view, inst)}"], name=fetched)
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
    return view.insert_instruction(inst, f"{extend} {ty} {text} to i64", name=ctx.fresh("n"))


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
    view.replace_with_call(inst, "ptr", callee,
                           [f"ptr {view.value_text(inst.func, dst)}",
                            f"ptr {view.value_text(inst.func, src)}", f"i64 {n}", f"i32 {site}"],
                           name=ctx.fresh("r"))
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
        byte = view.insert_instruction(
            inst, f"zext i8 {view.value_text(inst.func, value)} to i32", name=ctx.fresh("c"))
    n = _length_i64(view, ctx, inst, length)
    site = ctx.site(view, inst)
    view.replace_with_call(inst, "ptr", ctx.declare(view, "__llview_memset"),
                           [f"ptr {view.value_text(inst.func, dst)}", f"i32 {byte}",
                            f"i64 {n}", f"i32 {site}"], name=ctx.fresh("r"))
    stats.count("memsets redirected")


def _string_call(view: ModuleView, ctx: PassContext, inst: Inst, name: str,
                 stats: PassStats) -> None:
    replacement = STRING_FUNCTIONS[name]
    expected = _without_site(runtime_abi().function(replacement))
    declared = str(view.declarations[name].global_value_type)
    if declared != expected:
        ctx.error(view, inst, f"'{name}' is declared as '{declared}', not the C library's "
                              f"'{expected}'; llview cannot redirect it to guest-safe code")
        return
    args = [_DEREFERENCEABLE.sub("", a) for a in view.call_arguments(inst)]
    site = ctx.site(view, inst)
    view.replace_call(inst, ctx.declare(view, replacement), [*args, f"i32 {site}"])
    stats.count("string calls redirected")


def _without_site(runtime: RuntimeFunction) -> str:
    """The C library function type a runtime string function stands in for: its own without
    the trailing site argument."""
    return f"{runtime.returns} ({', '.join(runtime.params[:-1])})"
