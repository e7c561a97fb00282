"""Source-level checks of an IDS program with libclang: calls that cannot work outside the kernel.

Starting from every function the IDS file defines, each call is followed into the inline functions
of the kernel headers, transitively. A call that reaches a function with no body (the kernel
defines it out of line) and that the runtime does not supply is an error at the IDS call site,
with one note per inline function on the way; so is a call through a function pointer (its target
may be kernel code). A kernel function llview supplies from C (llview/kernel_functions.py: compat.c
and the kernel's own lib/*.c) that itself reaches kernel-only code (allocation, inline assembly,
...) is refused the same way, with notes for the calls inside the kernel's files that lead there.
Calls the optimiser removed (dead branches such as IS_ENABLED(...) or __builtin_constant_p(...)
arms) are not reported: the caller passes the external functions the optimised IR still calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import subprocess
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from llview.paths import LlviewError

# libclang's Python bindings (clang==19.1.7) must load the same major version of the library.
LIBCLANG_MAJOR = 19


def redirected_functions() -> frozenset[str]:
    """C library functions the passes redirect to the runtime's guest-aware versions
    (strlen -> __llview_strlen, ...): an IDS may call them although the runtime does not define
    them under these names. The passes' own table is the source of truth."""
    from llview.passes.guest_loads import STRING_FUNCTIONS

    return frozenset(STRING_FUNCTIONS)


@dataclass
class Note:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: note: {self.message}"


@dataclass
class Diagnostic:
    """An error at a source position, printed as clang prints its own."""

    file: str
    line: int
    column: int
    message: str
    notes: list[Note] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.file}:{self.line}:{self.column}: error: {self.message}"
        return "\n".join([head, *map(str, self.notes)])


@dataclass
class Refusal:
    """Why a function llview supplies (kernel library code) cannot run outside the kernel."""

    reason: str  # "calls 'kmem_cache_alloc', which has no body outside the kernel"
    chain: list[tuple[str, str, int]]  # (function, file, line of the next step): called one first
    others: list[str] = field(default_factory=list)  # what else it reaches that only the kernel can


class KernelFunctionSet(Protocol):
    """Functions llview supplies from C (llview.kernel_functions.KernelFunctions)."""

    provider: Mapping[str, int]  # the names

    def refusal(self, name: str) -> Refusal | None: ...

    def failures(self) -> list[str]: ...  # sources that did not compile, and why


class SuppliedFunctions:
    """Functions an IDS may call without a body in the headers: the runtime's symbols, then the
    kernel functions llview supplies from C, loaded (compiled, on a cold cache) only when a
    name is not the runtime's. refusal(name) says why a supplied one cannot run here; hints()
    go with "no body outside the kernel" errors (the profile lacks the library, a source did not
    compile)."""

    def __init__(self, runtime: Iterable[str],
                 load_kernel_functions: Callable[[], KernelFunctionSet], hint: str | None = None):
        self.runtime = frozenset(runtime)
        self._load = load_kernel_functions
        self._kernel: KernelFunctionSet | None = None
        self.hint = hint

    def hints(self) -> list[str]:
        return [*([self.hint] if self.hint else []), *self._kernel_functions().failures()]

    def _kernel_functions(self) -> KernelFunctionSet:
        if self._kernel is None:
            self._kernel = self._load()
        return self._kernel

    def __contains__(self, name: object) -> bool:
        return name in self.runtime or name in self._kernel_functions().provider

    def refusal(self, name: str) -> Refusal | None:
        return None if name in self.runtime else self._kernel_functions().refusal(name)


# ---- loading libclang -----------------------------------------------------------------------


def _libclang_candidates() -> Iterator[str]:
    """Paths to try, most specific first (lazily: llvm-config is only run when needed)."""
    chosen = os.environ.get("LLVIEW_LIBCLANG")
    if chosen:
        if not os.path.exists(chosen):
            raise LlviewError(f"LLVIEW_LIBCLANG={chosen}: no such file")
        yield chosen
        return
    default_dir = f"/usr/lib/llvm-{LIBCLANG_MAJOR}/lib"
    yield f"{default_dir}/libclang-{LIBCLANG_MAJOR}.so.1"
    libdirs = [default_dir]
    try:
        out = subprocess.run([f"llvm-config-{LIBCLANG_MAJOR}", "--libdir"], capture_output=True,
                             text=True, check=False).stdout.strip()
        if out:
            libdirs.insert(0, out)
    except FileNotFoundError:
        pass
    for libdir in [*libdirs, "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"]:
        yield from sorted(glob.glob(f"{libdir}/libclang-{LIBCLANG_MAJOR}.so*"))
        yield from sorted(glob.glob(f"{libdir}/libclang.so.{LIBCLANG_MAJOR}*"))
    by_ldconfig = ctypes.util.find_library(f"clang-{LIBCLANG_MAJOR}")
    if by_ldconfig:
        yield by_ldconfig  # a bare soname: the dynamic loader finds it


def cindex():
    """The clang.cindex module, its library loaded (once) from the first candidate that exists."""
    import clang.cindex as ci

    if not ci.Config.loaded:
        path = next((c for c in _libclang_candidates() if os.path.exists(c) or "/" not in c),
                    None)
        if path is None:
            raise LlviewError(f"libclang {LIBCLANG_MAJOR} not found (looked for "
                              f"/usr/lib/llvm-{LIBCLANG_MAJOR}/lib/libclang-{LIBCLANG_MAJOR}.so.1;"
                              f" apt-get install libclang-{LIBCLANG_MAJOR}-dev or set "
                              "LLVIEW_LIBCLANG)")
        ci.Config.set_library_file(path)
    # Not wrapped by the bindings; much faster than comparing file names per declaration.
    is_from_main_file = ci.conf.lib.clang_Location_isFromMainFile
    if is_from_main_file.argtypes is None:
        is_from_main_file.argtypes = [ci.SourceLocation]
        is_from_main_file.restype = ctypes.c_int
    return ci


def parse(source: Path, flags: Sequence[str]):
    """Parses `source` with the compile flags; returns the libclang TranslationUnit."""
    ci = cindex()
    try:
        return ci.Index.create().parse(str(source), args=["-x", "c", *flags])
    except ci.TranslationUnitLoadError as e:
        raise LlviewError(f"libclang could not parse {source}: {e}") from None


def _file_location(location, main_file: str) -> tuple[str, int, int] | None:
    """clang_getFileLocation (not wrapped by the bindings): a macro argument's spelling position,
    a macro body's expansion position. None unless that lands in the main file."""
    ci = cindex()
    get_file_location = ci.conf.lib.clang_getFileLocation
    if get_file_location.argtypes is None:
        get_file_location.argtypes = [ci.SourceLocation, ctypes.POINTER(ci.c_object_p),
                                      ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                                      ctypes.POINTER(ctypes.c_uint)]
        get_file_location.restype = None
    file, line, column, offset = ci.c_object_p(), ctypes.c_uint(), ctypes.c_uint(), \
        ctypes.c_uint()
    get_file_location(location, ctypes.byref(file), ctypes.byref(line), ctypes.byref(column),
                      ctypes.byref(offset))
    if not file:
        return None
    name = ci.File(file).name
    return (name, line.value, column.value) if name == main_file else None


def functions_defined_in_main_file(tu) -> list:
    """Function definitions of the IDS file itself. A raw visitor: the kernel headers put
    thousands of declarations at the top level, and the bindings' get_children() is slow."""
    ci = cindex()
    lib = ci.conf.lib
    function_decl = ci.CursorKind.FUNCTION_DECL.value
    found = []

    def visit(child, _parent, _data) -> int:
        if (lib.clang_Location_isFromMainFile(lib.clang_getCursorLocation(child))
                and lib.clang_getCursorKind(child) == function_decl
                and lib.clang_isCursorDefinition(child)):
            child._tu = tu  # keeps the TU alive as long as the cursor, as the bindings do
            found.append(child)
        return 1  # CXChildVisit_Continue

    lib.clang_visitChildren(tu.cursor, ci.callbacks["cursor_visit"](visit), None)
    return found


# ---- the call check ---------------------------------------------------------------------------

_INDIRECT_CALL = re.compile(r"\bcall\b[^@\n]*?\s%[-\w.$]+\(")


def ir_has_indirect_calls(ir_text: str) -> bool:
    return _INDIRECT_CALL.search(ir_text) is not None


@dataclass
class _Reach:
    """What calling one header function leads to: functions without a body (errors unless
    supplied) and indirect calls, each with the chain of (function name, call-site cursor) steps
    inside the headers."""

    missing: dict[str, list[tuple[str, object]]] = field(default_factory=dict)
    indirect: list[tuple[str, object]] | None = None


class CallChecker:
    def __init__(self, tu, allowed: Iterable[str] | SuppliedFunctions, called: set[str] | None,
                 indirect_calls_survive: bool, display_roots: Sequence[Path]):
        self.ci = cindex()
        self.tu = tu
        supplied = isinstance(allowed, SuppliedFunctions)
        self.allowed: Container[str] = allowed if supplied else frozenset(allowed)
        self.redirected = redirected_functions()
        self.refusal = allowed.refusal if supplied else None
        self.hints = allowed.hints if supplied else list  # list(): no hints
        self.called = called
        self.indirect_calls_survive = indirect_calls_survive
        self.display_roots = [str(Path(r)) + "/" for r in display_roots]
        self.reach: dict[tuple[int, str], _Reach] = {}

    def _calls(self, function):
        kind = self.ci.CursorKind.CALL_EXPR
        return [c for c in function.walk_preorder() if c.kind == kind]

    def _is_builtin(self, decl) -> bool:
        return decl.location.file is None or decl.spelling.startswith(("__builtin_", "__sync_",
                                                                       "__atomic_"))

    def _header_reach(self, definition) -> _Reach:
        """Missing functions and indirect calls reachable from a header function's body."""
        key = (definition.hash, definition.spelling)  # Cursor itself is not hashable
        if key in self.reach:
            return self.reach[key]
        result = _Reach()
        self.reach[key] = result  # a recursive call sees the partial result
        name = definition.spelling
        for call in self._calls(definition):
            callee = call.referenced
            if callee is None or callee.kind != self.ci.CursorKind.FUNCTION_DECL:
                if result.indirect is None:
                    result.indirect = [(name, call)]
                continue
            body = callee.get_definition()
            if body is None:
                # Whether it may be called is asked only of what the IDS's IR still calls.
                if not self._is_builtin(callee):
                    result.missing.setdefault(callee.spelling, [(name, call)])
                continue
            deeper = self._header_reach(body)
            for missing, chain in deeper.missing.items():
                result.missing.setdefault(missing, [(name, call), *chain])
            if deeper.indirect is not None and result.indirect is None:
                result.indirect = [(name, call), *deeper.indirect]
        return result

    def _may_call(self, name: str) -> bool:
        """A body-less function the IDS may call: supplied, and (if supplied kernel code) not
        reaching anything only the kernel can do."""
        if name in self.redirected:
            return True
        return name in self.allowed and (self.refusal is None or self.refusal(name) is None)

    def _kernel_call(self, site: tuple[str, int, int], name: str,
                     header_notes: list[Note]) -> Diagnostic:
        """The error for calling kernel function `name` (directly or through header inlines)."""
        refusal = self.refusal(name) if self.refusal and name in self.allowed else None
        if refusal is None:
            notes = [*header_notes, *(Note(*site, hint) for hint in self.hints())]
            return Diagnostic(*site, f"call to kernel function '{name}', which has no body "
                                     "outside the kernel", notes)
        notes = [*header_notes, *(Note(*site, f"via kernel function '{function}' "
                                               f"({self._short(file)}:{line})")
                                  for function, file, line in refusal.chain)]
        if refusal.others:
            shown = ", ".join(refusal.others[:6]) + (", ..." if len(refusal.others) > 6 else "")
            notes.append(Note(*site, f"'{name}' also reaches: {shown}"))
        return Diagnostic(*site, f"call to kernel function '{name}', which cannot run outside "
                                 f"the kernel: it {refusal.reason}", notes)

    def _where(self, cursor) -> tuple[str, int, int]:
        """Where clang would point: inside a macro argument written in the IDS file (the
        `task_tgid_vnr(p)` in `pr_info("%d", task_tgid_vnr(p))`), else where the macro is used."""
        file_location = _file_location(cursor.location, self.tu.spelling)
        if file_location is not None:
            return file_location
        loc = cursor.location
        return (loc.file.name if loc.file else "<unknown>", loc.line, loc.column)

    def _short(self, path: str) -> str:
        for root in self.display_roots:
            if path.startswith(root):
                return path[len(root):]
        return path

    def _notes(self, site: tuple[str, int, int], chain: list[tuple[str, object]]) -> list[Note]:
        notes = []
        for function, call in chain:
            file, line, _ = self._where(call)
            notes.append(Note(*site, f"via inline function '{function}' "
                                     f"({self._short(file)}:{line})"))
        return notes

    def _declared_in_main_file(self, decl) -> bool:
        return bool(self.ci.conf.lib.clang_Location_isFromMainFile(decl.location))

    def check(self) -> list[Diagnostic]:
        diagnostics: list[Diagnostic] = []
        for function in functions_defined_in_main_file(self.tu):
            for call in self._calls(function):
                site = self._where(call)
                callee = call.referenced
                if callee is None or callee.kind != self.ci.CursorKind.FUNCTION_DECL:
                    diagnostics.append(Diagnostic(*site, _indirect_message(call)))
                    continue
                body = callee.get_definition()
                if body is None:
                    if self.called is not None and callee.spelling not in self.called:
                        continue
                    if self._is_builtin(callee) or self._may_call(callee.spelling):
                        continue
                    diagnostics.append(self._missing(site, callee))
                    continue
                if self._declared_in_main_file(body):
                    continue  # the IDS's own function: checked on its own
                reach = self._header_reach(body)
                for missing, chain in sorted(reach.missing.items()):
                    if self.called is not None and missing not in self.called:
                        continue
                    if self._may_call(missing):
                        continue
                    diagnostics.append(self._kernel_call(site, missing,
                                                         self._notes(site, chain)))
                if reach.indirect is not None and self.indirect_calls_survive:
                    diagnostics.append(Diagnostic(
                        *site, "call through a function pointer, whose target may be kernel "
                               f"code (inside inline function '{reach.indirect[-1][0]}')",
                        self._notes(site, reach.indirect)))
        return diagnostics

    def _missing(self, site: tuple[str, int, int], callee) -> Diagnostic:
        name = callee.spelling
        declared_in = callee.location.file.name if callee.location.file else ""
        if self._declared_in_main_file(callee):
            return Diagnostic(*site, f"call to function '{name}', which is declared but never "
                                     "defined")
        if "/llview/" in declared_in and name.startswith("llview_"):
            return Diagnostic(*site, f"call to llview function '{name}', which the runtime "
                                     "does not provide")
        return self._kernel_call(site, name, [])


def _indirect_message(call) -> str:
    callee = call.referenced
    what = f" '{callee.spelling}'" if callee is not None and callee.spelling else ""
    return (f"call through function pointer{what}, whose target may be kernel code; "
            "an IDS may only call functions it defines, inline functions of the headers and "
            "what llview supplies")


def check_calls(tu, allowed: Iterable[str] | SuppliedFunctions, called: set[str] | None = None,
                indirect_calls_survive: bool = True,
                display_roots: Sequence[Path] = ()) -> list[Diagnostic]:
    """Errors for calls from the IDS file that reach kernel code (see the module comment).

    allowed: functions that may be called without a body (the runtime's symbols, or a
    SuppliedFunctions with the supplied kernel functions too).
    called: external functions the optimised IR still calls; None reports every reachable call.
    indirect_calls_survive: whether the optimised IR has any indirect call; if not, indirect
    calls found in header functions were in dead code and are not reported.
    display_roots: header tree roots stripped from paths in notes.
    """
    return CallChecker(tu, allowed, called, indirect_calls_survive, display_roots).check()
