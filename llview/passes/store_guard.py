"""store_guard: the IDS may only read the guest.

A store, atomicrmw or cmpxchg (or a memcpy/memmove/memset destination) whose
pointer is provably derived from a kernel symbol is a compile-time error at
its source line. One whose pointer may be guest memory gets
    call void @__llview_store_check(ptr %p, i32 <site>)
in front of it, which refuses a guest address at run time naming the line.
Stores into the IDS's own memory (stack, own globals) are left alone.
"""

from __future__ import annotations

import llvmlite.binding as llvm

from llview.irtext import Inst, ModuleView
from llview.passes.context import PassContext, PassStats
from llview.passes.pointers import PointerAnalysis

NAME = "store_guard"

# call -> index of the destination pointer argument (the runtime's bulk functions refuse guest
# destinations themselves; a provably-kernel one is still worth a compile-time error)
_BULK_DESTINATIONS = ("llvm.memcpy.", "llvm.memmove.", "llvm.memset.", "__llview_memcpy",
                      "__llview_memmove", "__llview_memset")


def run(view: ModuleView, ctx: PassContext) -> PassStats:
    stats = PassStats(NAME)
    pointers = PointerAnalysis(view, ctx)
    for func in view.functions:
        for inst in func.insts:
            op = inst.opcode
            if op == "store":
                target = list(inst.ref.operands)[1]
            elif op in ("atomicrmw", "cmpxchg"):
                target = next(iter(inst.ref.operands))
            elif op == "call":
                callee = inst.direct_callee()
                if callee is None or not callee.startswith(_BULK_DESTINATIONS):
                    continue  # other calls store nothing the IDS compiled
                where = pointers.classify(func, next(iter(inst.ref.operands)))
                if where.kind == "kernel":
                    _refuse(view, ctx, inst, where.detail, stats)
                continue
            else:
                continue
            where = pointers.classify(func, target)
            if where.kind == "local":
                stats.skip(where.detail)   # a store into the IDS's own memory is fine
            elif where.kind == "kernel":
                _refuse(view, ctx, inst, where.detail, stats)
            else:
                _guard(view, ctx, inst, target, stats)
    return stats


def _refuse(view: ModuleView, ctx: PassContext, inst: Inst, symbols: str,
            stats: PassStats) -> None:
    ctx.error(view, inst, f"store to guest memory ({symbols}) is not allowed: the IDS may only "
                          "read the guest")
    stats.count("stores refused at compile time")


def _guard(view: ModuleView, ctx: PassContext, inst: Inst, target: llvm.ValueRef,
           stats: PassStats) -> None:
    if str(target.type) != "ptr":
        ctx.error(view, inst, f"store through '{target.type}' (a per-CPU or other special "
                              "address space) cannot run outside the kernel")
        return
    site = ctx.site(view, inst)
    view.insert_call(inst, "void", ctx.declare(view, "__llview_store_check"),
                     [f"ptr {view.value_text(inst.func, target)}", f"i32 {site}"])
    stats.count("stores guarded at run time")
