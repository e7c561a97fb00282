"""Where a pointer can point: the underlying objects of a pointer operand.

A pointer is traced back through getelementptr, casts, phi and select (like
LLVM's getUnderlyingObjects) to the objects it is derived from. It is *local*
(the IDS's own memory, read natively) when every object is an alloca, a global
defined in the module, a constant, a function or the kernel-symbol table; it
is *kernel* when every object is a kernel global (or the run-time address of
one, %llview.ksym.<name>); anything else (a loaded pointer, an argument, a
call result, inttoptr) may point into the guest.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.binding as llvm

from llview.irtext import Function, ModuleView, address, parse_constexpr, split_type
from llview.passes.context import (
    KSYM_TABLE,
    KSYM_VALUE_PREFIX,
    PassContext,
    kernel_functions,
    kernel_globals,
)

# local object kind -> the reason reported when a load from it is left alone
LOCAL_REASONS = {
    "stack": "stack (alloca)",
    "global": "IDS global",
    "constant": "constant",
    "ksymtab": "kernel symbol table",
    "function": "function",
    "cache": "already fetched",
}
# Intrinsics that return (a pointer derived from) their first argument.
_PASS_THROUGH_CALLS = {"llvm.ptrmask", "llvm.launder.invariant.group",
                       "llvm.strip.invariant.group"}
_MAX_VISITS = 512


@dataclass(frozen=True)
class PointerClass:
    kind: str          # "local", "kernel" or "unknown"
    detail: str = ""   # local: the reason; kernel: the kernel globals, comma-separated


UNKNOWN = PointerClass("unknown")


class PointerAnalysis:
    def __init__(self, view: ModuleView, ctx: PassContext) -> None:
        self.view = view
        self.kernel = kernel_globals(view, ctx) | kernel_functions(view, ctx)
        self._memo: dict[tuple[str, int], PointerClass] = {}

    def classify(self, func: Function, ref: llvm.ValueRef) -> PointerClass:
        key = (func.name, address(ref))
        found = self._memo.get(key)
        if found is None:
            found = self._classify(self.origins(func, ref))
            self._memo[key] = found
        return found

    @staticmethod
    def _classify(origins: set[tuple[str, str]]) -> PointerClass:
        kinds = {kind for kind, _ in origins}
        if "unknown" in kinds or not kinds:
            return UNKNOWN
        if kinds == {"null"}:
            return PointerClass("local", "null pointer")
        kinds.discard("null")
        if kinds <= LOCAL_REASONS.keys():
            first = next(k for k in LOCAL_REASONS if k in kinds)
            return PointerClass("local", LOCAL_REASONS[first])
        if kinds == {"kernel"}:
            return PointerClass("kernel", ", ".join(sorted(n for k, n in origins if k == "kernel")))
        return UNKNOWN  # a mix of kernel and local objects: only the run time can tell

    def origins(self, func: Function, ref: llvm.ValueRef) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        visited: set[int] = set()
        work: list[llvm.ValueRef | str] = [ref]
        while work:
            if len(visited) > _MAX_VISITS:
                found.add(("unknown", "too deep"))
                break
            item = work.pop()
            if isinstance(item, str):
                self._text_origins(item, found, work)
                continue
            kind = item.value_kind
            if kind == llvm.ValueKind.instruction:
                addr = address(item)
                if addr in visited:
                    continue  # a phi cycle adds no new object
                visited.add(addr)
                self._instruction_origins(func, addr, found, work)
            elif kind == llvm.ValueKind.global_variable:
                found.add(self._global_kind(item.name))
            elif kind == llvm.ValueKind.function:
                found.add(self._function_kind(item.name))
            elif kind == llvm.ValueKind.constant_expr:
                work.append(split_type(str(item))[1])
            elif kind in (llvm.ValueKind.constant_pointer_null, llvm.ValueKind.undef_value,
                          llvm.ValueKind.poison_value):
                found.add(("null", ""))
            else:  # argument, inline asm, integer constants...
                found.add(("unknown", kind.name))
        return found

    def _instruction_origins(self, func: Function, addr: int, found: set[tuple[str, str]],
                             work: list[llvm.ValueRef | str]) -> None:
        inst = func.by_address[addr]
        op = inst.opcode
        if op == "alloca":
            found.add(("stack", ""))
        elif op in ("getelementptr", "bitcast", "addrspacecast", "freeze"):
            work.append(next(iter(inst.ref.operands)))
        elif op == "phi":
            work.extend(inst.ref.operands)
        elif op == "select":
            work.extend(list(inst.ref.operands)[1:])
        elif op == "load" and inst.name and inst.name.strip('%"').startswith(KSYM_VALUE_PREFIX):
            found.add(("kernel", inst.name.strip('%"')[len(KSYM_VALUE_PREFIX):]))
        elif op == "call":
            name = inst.direct_callee() or ""
            if name.startswith(tuple(_PASS_THROUGH_CALLS)):
                work.append(next(iter(inst.ref.operands)))
            elif name == "__llview_load":
                found.add(("cache", ""))
            else:
                found.add(("unknown", "call result"))
        else:
            found.add(("unknown", op))

    def _text_origins(self, text: str, found: set[tuple[str, str]],
                      work: list[llvm.ValueRef | str]) -> None:
        if text.startswith("@"):
            name = text[1:]
            if name.startswith('"'):
                name = name[1:-1]
            if name in self.view.defined_functions or name in self.view.declarations:
                found.add(self._function_kind(name))
            else:
                found.add(self._global_kind(name))
        elif text in ("null", "undef", "poison", "zeroinitializer"):
            found.add(("null", ""))
        else:
            try:
                expr = parse_constexpr(text)
            except ValueError:
                found.add(("unknown", "constant"))
                return
            if expr.op == "getelementptr":
                work.append(split_type(expr.operands[1])[1])
            elif expr.op in ("bitcast", "addrspacecast"):
                work.append(split_type(expr.operands[0])[1])
            else:
                found.add(("unknown", expr.op))

    def _function_kind(self, name: str) -> tuple[str, str]:
        return ("kernel", name) if name in self.kernel else ("function", name)

    def _global_kind(self, name: str) -> tuple[str, str]:
        if name == KSYM_TABLE:
            return ("ksymtab", name)
        if name in self.kernel:
            return ("kernel", name)
        if self.view.global_declared.get(name, True):
            return ("global", name)   # runtime-supplied data (e.g. __llview_cache)
        if self.view.is_constant_global(name):
            return ("constant", name)
        return ("global", name)
