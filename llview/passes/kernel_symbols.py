"""kernel_symbols: resolve the kernel's globals at run time.

Every global variable the module declares but does not define (init_task,
linux_banner, init_uts_ns, ...) is a kernel symbol, and so is a kernel function
whose address the IDS uses as a value (`fn == do_no_restart_syscall`). The
pass emits the table the runtime fills before main (llview_rt.h):

    @__llview_ksyms  = global [N x %struct.__llview_ksym] [{ptr name, ptr null}, ...]
    @__llview_nksyms = constant i32 N

and in every function that names a kernel symbol it loads the symbol's
address from its slot at entry (%llview.ksym.<name>) and replaces each use
with that value. Uses inside constant expressions
(`getelementptr inbounds (i8, ptr @init_task, i64 2192)`, nested ones,
ptrtoint, constant aggregates) are expanded into instructions, so
`p != &init_task` compares against the true, KASLR-slid address. Finally the
declarations go: the native link must not see undefined kernel symbols.

A kernel symbol in the initializer of one of the IDS's own globals cannot be
resolved (the table is filled after static initialisation): that is a
diagnostic asking the author to take the address inside a function.
"""

from __future__ import annotations

import re

import llvmlite.binding as llvm

from llview.irtext import (
    BINARY_OPS,
    CAST_OPS,
    Function,
    Inst,
    ModuleView,
    address,
    aggregate_elements,
    c_string,
    global_ref,
    parse_constexpr,
    split_type,
)
from llview.passes.context import (
    KSYM_TABLE,
    KSYM_VALUE_PREFIX,
    PassContext,
    PassStats,
    kernel_functions,
    kernel_globals,
)
from llview.runtime_abi import KSYM_COUNT, KSYM_STRUCT, runtime_abi, struct_type_name

NAME = "kernel_symbols"
KSYM_TYPE = struct_type_name(KSYM_STRUCT)


class _Unsupported(Exception):
    pass


def run(view: ModuleView, ctx: PassContext) -> PassStats:
    stats = PassStats(NAME)
    if not view.global_declared.get(KSYM_TABLE, True):
        ctx.error(view, None,
                  f"module already has @{KSYM_TABLE}: it was processed by llview before")
        return stats
    data_symbols = kernel_globals(view, ctx)
    function_symbols = kernel_functions(view, ctx)
    ref_re = _reference_pattern(data_symbols, function_symbols)
    rewriter = _Rewriter(view, ctx, ref_re)

    unresolvable = _check_global_initializers(view, ctx, ref_re)
    for func in view.functions:
        rewriter.rewrite_function(func)
    if ref_re is not None:
        view.delete_debug_records(ref_re)   # they cannot name a symbol that is gone

    used = sorted(rewriter.used)
    array = _emit_table(view, used)
    slot = {name: k for k, name in enumerate(used)}
    for func, names in rewriter.entry_loads:
        view.insert_at_entry(func, [
            f"{ksym_value(name)} = load ptr, ptr getelementptr inbounds ({array}, "
            f"ptr @{KSYM_TABLE}, i64 0, i64 {slot[name]}, i32 1), align 8"
            for name in names])
    # The declarations go, except where a diagnosed use still needs them (the module stays valid)
    # and for functions the IDS also calls (forbidden_calls reports those).
    for name in data_symbols - unresolvable:
        view.remove_global(name)
    for name in (function_symbols & rewriter.used) - unresolvable - rewriter.called:
        view.remove_declaration(name)
    stats.count("kernel symbols resolved", len(used))
    stats.count("uses rewritten", rewriter.uses)
    stats.count("constant expressions expanded", rewriter.expanded)
    unused = len(data_symbols - set(used) - unresolvable)
    if unused:
        stats.skip("declared but never used (declaration dropped)", unused)
    return stats


def ksym_value(name: str) -> str:
    """The SSA value holding kernel symbol `name`'s run-time address in a function."""
    return "%" + global_ref(KSYM_VALUE_PREFIX + name)[1:]


def _reference_pattern(data: set[str], functions: set[str]) -> re.Pattern[str] | None:
    """Matches a use of a kernel symbol (for functions: not in callee position, `@f(`)."""
    alternatives = []
    if data:
        alternatives.append("(?:" + "|".join(re.escape(global_ref(n)) for n in sorted(data))
                            + r")(?![-\w.$])")
    if functions:
        alternatives.append("(?:" + "|".join(re.escape(global_ref(n)) for n in sorted(functions))
                            + r")(?![-\w.$(])")
    return re.compile("|".join(alternatives)) if alternatives else None


def _symbol_name(ref_text: str) -> str:
    text = ref_text[1:]
    return text[1:-1] if text.startswith('"') else text


def _check_global_initializers(view: ModuleView, ctx: PassContext,
                               ref_re: re.Pattern[str] | None) -> set[str]:
    """Diagnose kernel symbols in the IDS's own global initializers; return those symbols."""
    found: set[str] = set()
    if ref_re is None:
        return found
    for name in view.global_lines:
        if view.global_declared.get(name, False):
            continue
        init = re.sub(r'"[^"]*"', '""', view.global_definition(name))
        for m in ref_re.finditer(init):
            symbol = _symbol_name(m.group(0))
            found.add(symbol)
            ctx.error(view, None,
                      f"global '{name}' is initialised with the address of kernel symbol "
                      f"'{symbol}', which is only known at run time; take the address inside a "
                      "function instead")
    return found


def _emit_table(view: ModuleView, used: list[str]) -> str:
    """Add the symbol table and its length; return the table's array type."""
    view.add_type(KSYM_TYPE, runtime_abi().struct_body(KSYM_STRUCT))
    entries = []
    for k, name in enumerate(used):
        literal, size = c_string(name)
        string = f"@__llview_ksym_name.{k}"
        view.add_global(
            f"{string} = private unnamed_addr constant [{size} x i8] {literal}, align 1")
        entries.append(f"{KSYM_TYPE} {{ ptr {string}, ptr null }}")
    array = f"[{len(used)} x {KSYM_TYPE}]"
    init = "[" + ", ".join(entries) + "]" if entries else "zeroinitializer"
    view.add_global(f"@{KSYM_TABLE} = global {array} {init}, align 8")
    view.add_global(f"@{KSYM_COUNT} = constant i32 {len(used)}, align 4")
    return array


class _Rewriter:
    """Replaces kernel-symbol uses in one function after another."""

    def __init__(self, view: ModuleView, ctx: PassContext,
                 ref_re: re.Pattern[str] | None) -> None:
        self.view = view
        self.ctx = ctx
        self.ref_re = ref_re
        self.used: set[str] = set()
        self.called: set[str] = set()
        self.uses = 0
        self.expanded = 0
        self.entry_loads: list[tuple[Function, list[str]]] = []  # symbols to load at entry

    def rewrite_function(self, func: Function) -> None:
        if self.ref_re is None:
            return
        used_here: set[str] = set()
        memo: dict[tuple[int, str], str] = {}
        for inst in func.insts:
            text = inst.text
            if not self.ref_re.search(text):
                if inst.opcode == "call":
                    self._note_callee(inst)
                continue
            try:
                if inst.opcode == "phi":
                    self._rewrite_phi(inst, used_here, memo)
                else:
                    self._rewrite_operands(inst, used_here, memo)
            except _Unsupported as e:
                self.ctx.error(self.view, inst, str(e))
            if inst.opcode == "call":
                self._note_callee(inst)
        if used_here:
            self.entry_loads.append((func, sorted(used_here)))
            self.used |= used_here

    def _note_callee(self, inst: Inst) -> None:
        callee = inst.direct_callee()
        if callee is not None:
            self.called.add(callee)

    # -- instructions --

    def _rewrite_operands(self, inst: Inst, used: set[str], memo: dict) -> None:
        assert self.ref_re is not None
        operands = list(inst.ref.operands)
        if inst.opcode in ("call", "invoke", "callbr"):
            operands = operands[:-1]  # the callee is forbidden_calls' business
        replacements: dict[str, str] = {}
        for ref in operands:
            kind = ref.value_kind
            if kind in (llvm.ValueKind.global_variable, llvm.ValueKind.function):
                text = global_ref(ref.name)
                if self.ref_re.fullmatch(text):
                    replacements[text] = self._lower("ptr", text, inst, inst, used, memo)
            elif kind in (llvm.ValueKind.constant_expr, llvm.ValueKind.constant_array,
                          llvm.ValueKind.constant_struct, llvm.ValueKind.constant_vector):
                ty, text = split_type(str(ref))
                if self.ref_re.search(text) and text not in replacements:
                    replacements[text] = self._lower(ty, text, inst, inst, used, memo)
        for old in sorted(replacements, key=len, reverse=True):  # a longer text may hold a shorter
            self.view.replace_operand(inst, old, replacements[old])
            self.uses += 1

    def _rewrite_phi(self, inst: Inst, used: set[str], memo: dict) -> None:
        assert self.ref_re is not None
        ty, values = self.view.phi_incoming(inst)
        blocks = [inst.func.block_by_address[address(b)] for b in inst.ref.incoming_blocks]
        for k, value in enumerate(values):
            if self.ref_re.search(value):
                at = blocks[k].terminator
                values[k] = self._lower(ty, value, at, at, used, memo)
                self.uses += 1
        self.view.replace_phi_incoming(inst, values)

    # -- constants to instructions --

    def _lower(self, ty: str, value: str, inst: Inst, at: Inst, used: set[str],
               memo: dict) -> str:
        """An SSA value equal to constant `value` (of type `ty`) with kernel symbols resolved,
        computed by instructions inserted before `at`, at the debug location of `inst`."""
        assert self.ref_re is not None
        if not self.ref_re.search(value):
            return value
        if value.startswith("@"):
            name = _symbol_name(value)
            used.add(name)
            return ksym_value(name)
        key = (at.line, value)
        if key in memo:
            return memo[key]
        if value[0] in "[{<":
            result = self._lower_aggregate(ty, value, inst, at, used, memo)
        else:
            try:
                expr = parse_constexpr(value)
            except ValueError:
                raise _Unsupported(f"cannot resolve kernel symbol in constant '{value}'") from None
            result = self.ctx.fresh("ce")   # named before its operands: numbering stays stable
            if expr.op == "getelementptr":
                flags = " ".join(f for f in expr.flags if not f.startswith("inrange"))
                args = [expr.operands[0]]
                for typed in expr.operands[1:]:
                    t, v = split_type(typed)
                    args.append(f"{t} {self._lower(t, v, inst, at, used, memo)}")
                text = f"getelementptr {flags} {', '.join(args)}".replace("  ", " ")
            elif expr.op in CAST_OPS:
                t, v = split_type(expr.operands[0])
                text = (f"{expr.op} {t} {self._lower(t, v, inst, at, used, memo)} "
                        f"to {expr.dest_type}")
            elif expr.op in BINARY_OPS:
                (t, a), (_, b) = (split_type(x) for x in expr.operands)
                flags = "".join(f + " " for f in expr.flags)
                a = self._lower(t, a, inst, at, used, memo)
                b = self._lower(t, b, inst, at, used, memo)
                text = f"{expr.op} {flags}{t} {a}, {b}"
            else:
                raise _Unsupported(f"cannot resolve kernel symbol in constant expression "
                                   f"'{expr.op}'")
            self.view.insert_instruction(at, text, name=result, dbg_from=inst)
            self.expanded += 1
        memo[key] = result
        return result

    def _lower_aggregate(self, ty: str, value: str, inst: Inst, at: Inst, used: set[str],
                         memo: dict) -> str:
        elements, vector = aggregate_elements(value)
        lowered = []
        for element in elements:   # the elements' own instructions first, then the inserts
            et, ev = split_type(element)
            lowered.append((et, self._lower(et, ev, inst, at, used, memo), self.ctx.fresh("agg")))
        current = "poison"
        for index, (et, ev, name) in enumerate(lowered):
            insert = (f"insertelement {ty} {current}, {et} {ev}, i32 {index}" if vector
                      else f"insertvalue {ty} {current}, {et} {ev}, {index}")
            current = self.view.insert_instruction(at, insert, name=name)
        self.expanded += 1
        return current
