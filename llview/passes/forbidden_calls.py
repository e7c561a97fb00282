"""forbidden_calls: calls that cannot run outside the kernel are compile errors.

- A call of a function the module declares without a body, which the runtime
  does not supply either, is kernel code: "call to kernel function 'X', which
  has no body outside the kernel" at the call's source line.
- A call through a function pointer (one read from the guest, or otherwise not
  provably one of the IDS's own functions) cannot run here either.
- Inline assembly runs only in the kernel (per-CPU reads, privileged
  instructions): diagnosed with its text, except the empty `asm("")` barrier,
  which is dropped (it only orders the compiler) or, with operands, kept (it
  is a no-op).
- LLVM intrinsics are fine, except the few that read or write memory in ways
  llview cannot instrument (masked/vector-predicated loads and stores, atomic
  element-wise memcpy); llvm.prefetch is dropped (a prefetch of a guest
  address would only touch the IDS's own address space).
"""

from __future__ import annotations

import re

import llvmlite.binding as llvm

from llview.irtext import Inst, ModuleView
from llview.passes.context import PassContext, PassStats
from llview.passes.pointers import PointerAnalysis

NAME = "forbidden_calls"

UNINSTRUMENTABLE_INTRINSICS = ("llvm.masked.", "llvm.vp.", "llvm.experimental.vp.",
                                "llvm.matrix.column.major.", "llvm.memcpy.element.unordered",
                                "llvm.memmove.element.unordered", "llvm.memset.element.unordered")
_DROPPED_INTRINSICS = ("llvm.prefetch",)
ASM_RE = re.compile(r'\basm (?:sideeffect |alignstack |inteldialect |unwind )*"([^"]*)", '
                     r'"([^"]*)"')


def run(view: ModuleView, ctx: PassContext) -> PassStats:
    stats = PassStats(NAME)
    pointers = PointerAnalysis(view, ctx)
    for func in view.functions:
        for inst in func.insts:
            if inst.opcode not in ("call", "invoke", "callbr"):
                continue
            name = inst.direct_callee()
            if name is not None:
                _direct(view, ctx, inst, name, stats)
                continue
            callee = list(inst.ref.operands)[-1]
            kind = callee.value_kind
            if kind == llvm.ValueKind.function:
                _direct(view, ctx, inst, callee.name, stats)
            elif kind == llvm.ValueKind.inline_asm:
                _inline_asm(view, ctx, inst, str(callee), stats)
            else:
                where = pointers.origins(func, callee)
                if where and all(k == "function" and n in view.defined_functions
                                 for k, n in where):
                    # a select/phi of the IDS's own functions: its own code either way
                    stats.skip("indirect call of the IDS's own functions")
                    continue
                ctx.error(view, inst, "call through a function pointer cannot run outside the "
                                      "kernel (the function it points to is kernel code)"
                          + _inside(view, inst))
                stats.count("indirect calls diagnosed")
    return stats


def _inside(view: ModuleView, inst: Inst) -> str:
    helper = view.location(inst).inlined_from
    return f" (in inlined kernel helper '{helper}')" if helper else ""


def _direct(view: ModuleView, ctx: PassContext, inst: Inst, name: str, stats: PassStats) -> None:
    if name in view.defined_functions:
        stats.skip("defined in the IDS")   # its own code, instrumented like the rest
    elif name.startswith("llvm."):
        if name.startswith(_DROPPED_INTRINSICS):
            view.delete(inst)
            stats.count("prefetches dropped")
        elif name.startswith(UNINSTRUMENTABLE_INTRINSICS):
            ctx.error(view, inst, f"LLVM intrinsic '{name}' accesses memory in a way llview "
                                  "cannot instrument")
            stats.count("intrinsics diagnosed")
        else:
            stats.skip("LLVM intrinsic")   # arithmetic, lifetime, debug, memcpy (guest_loads)
    elif name.startswith("__llview_"):
        stats.skip("llview runtime (added by the passes)")
    elif ctx.is_supplied(name):
        stats.skip("supplied by the runtime")   # e.g. _printk, __rcu_read_lock, llview_*
    else:
        ctx.error(view, inst, f"call to kernel function '{name}', which has no body outside the "
                              "kernel" + _inside(view, inst))
        stats.count("kernel calls diagnosed")


def _inline_asm(view: ModuleView, ctx: PassContext, inst: Inst, asm_text: str,
                stats: PassStats) -> None:
    m = ASM_RE.search(asm_text)
    template = m.group(1) if m else asm_text
    if template.strip() == "":
        if inst.name is None and inst.opcode == "call" and \
                not list(inst.ref.operands)[:-1]:
            view.delete(inst)   # barrier(): a compiler-only fence
            stats.count("empty asm barriers dropped")
        else:
            stats.skip("empty asm with operands (a no-op)")
        return
    shown = template.replace("\\0A", "; ").replace("\\09", " ")
    ctx.error(view, inst, f"inline assembly '{shown}' cannot run outside the kernel"
                          + _inside(view, inst))
    stats.count("inline asm diagnosed")
