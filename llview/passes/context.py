"""State shared by llview's IR passes: diagnostics, per-pass statistics, the site table,
fresh value names and the declarations of the runtime functions the passes call (taken from
llview_rt.h by llview.runtime_abi)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from llview.irtext import Inst, Location, ModuleView
from llview.paths import LlviewError
from llview.runtime_abi import KSYM_TABLE as KSYM_TABLE  # (the passes import it from here)
from llview.runtime_abi import runtime_abi


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


RUNTIME_PREFIX = "__llview_"
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
        """Make sure runtime function `name` is declared in the module, as llview_rt.h states
        it; return @name."""
        return view.add_declaration(name, runtime_abi().declaration(name))

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
