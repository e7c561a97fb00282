"""State shared by llview's IR passes: diagnostics, per-pass statistics, the site table,
fresh value names and the declarations of the runtime functions the passes call."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from llview.irtext import Inst, Location, ModuleView
from llview.paths import LlviewError


@dataclass
class PassStats:
    name: str
    counts: dict[str, int] = field(default_factory=dict)    # e.g. {"loads instrumented": 12}
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> count

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


@dataclass
class Diagnostic:
    file: str
    line: int
    column: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


class CompileError(LlviewError):
    """The IDS program cannot be compiled; carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


# The runtime functions the passes call, declared once per module (llview_rt.h has the C side).
RUNTIME_DECLS = {
    "__llview_load": "declare ptr @__llview_load(ptr, i64, i32)",
    "__llview_store_check": "declare void @__llview_store_check(ptr, i32)",
    "__llview_walk": "declare void @__llview_walk(ptr, ptr, i32)",
    "__llview_footprint": "declare void @__llview_footprint(ptr, ptr)",
    "__llview_memcpy": "declare ptr @__llview_memcpy(ptr, ptr, i64, i32)",
    "__llview_memmove": "declare ptr @__llview_memmove(ptr, ptr, i64, i32)",
    "__llview_memset": "declare ptr @__llview_memset(ptr, i32, i64, i32)",
    "__llview_memcmp": "declare i32 @__llview_memcmp(ptr, ptr, i64, i32)",
    "__llview_strlen": "declare i64 @__llview_strlen(ptr, i32)",
    "__llview_strnlen": "declare i64 @__llview_strnlen(ptr, i64, i32)",
    "__llview_strcmp": "declare i32 @__llview_strcmp(ptr, ptr, i32)",
    "__llview_strncmp": "declare i32 @__llview_strncmp(ptr, ptr, i64, i32)",
}

RUNTIME_PREFIX = "__llview_"
KSYM_TABLE = "__llview_ksyms"
KSYM_VALUE_PREFIX = "llview.ksym."   # %llview.ksym.<name>: a kernel symbol's run-time address


class PassContext:
    """One pipeline run: what the runtime supplies, the sites and diagnostics collected."""

    def __init__(self, supplied: set[str]) -> None:
        self.supplied = set(supplied)
        self.sites: list[tuple[str, int, int]] = []
        self._site_index: dict[tuple[str, int, int], int] = {}
        self.diagnostics: list[Diagnostic] = []
        self._diag_seen: set[tuple[str, int, int, str]] = set()
        self._names = Counter[str]()

    def site(self, view: ModuleView, inst: Inst) -> int:
        """Index into @__llview_sites for the source location of `inst`."""
        loc = view.location(inst)
        key = (loc.file, loc.line, loc.column)
        index = self._site_index.get(key)
        if index is None:
            index = len(self.sites)
            self.sites.append(key)
            self._site_index[key] = index
        return index

    def error(self, view: ModuleView, at: Inst | Location | None, message: str) -> None:
        """Record a diagnostic at an instruction's outermost source location (or `at`)."""
        if isinstance(at, Inst):
            at = view.location(at)
        where = (at.file, at.line, at.column) if at else (view.source_filename, 0, 0)
        key = (*where, message)
        if key not in self._diag_seen:
            self._diag_seen.add(key)
            self.diagnostics.append(Diagnostic(*where, message))

    def fresh(self, tag: str) -> str:
        """A new local value name, %llview.<tag>.<n> (named so no numbered value shifts)."""
        n = self._names[tag]
        self._names[tag] += 1
        return f"%llview.{tag}.{n}"

    def declare(self, view: ModuleView, name: str) -> str:
        """Make sure runtime function `name` is declared in the module; return @name."""
        if name not in view.runtime_declared:
            view.runtime_declared.add(name)
            if name not in view.declarations and name not in view.defined_functions:
                view.added_globals.append(RUNTIME_DECLS[name])
        return "@" + name

    def is_supplied(self, name: str) -> bool:
        return name in self.supplied or name.startswith(RUNTIME_PREFIX)


def kernel_globals(view: ModuleView, ctx: PassContext) -> set[str]:
    """External global variables the IDS names: the kernel's (init_task, linux_banner...)."""
    return {name for name, declared in view.global_declared.items()
            if declared and not ctx.is_supplied(name)}


def kernel_functions(view: ModuleView, ctx: PassContext) -> set[str]:
    """Functions declared without a body that the runtime does not supply: the kernel's."""
    return {name for name in view.declarations
            if not ctx.is_supplied(name) and not name.startswith("llvm.")}
