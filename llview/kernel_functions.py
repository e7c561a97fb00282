"""Kernel functions llview supplies to an IDS: compiled from C, linked in only when called.

One mechanism for two kinds of source:
- kernel_headers/llview/compat.c, llview's own versions of out-of-line kernel functions an IDS
  reaches through the kernel's inline helpers (task_ppid_nr() -> __task_pid_nr_ns(), ...),
  renamed to __llview_ names by kernel_overrides.h;
- the kernel's own library code (KERNEL_LIBRARY_FILES: the rbtree, xarray, maple tree, radix
  tree and IDR readers), unchanged from the profile's Debian linux-source package, compiled with
  the IDS's flags plus kernel_headers/llview/kernel_library.h.

Each source is compiled once per profile and flags and cached with an index: what it defines
and what every function refers to, with source lines. supplied() gives the call checks the
functions an IDS may call; one that reaches something only the kernel can do (a function with
no body outside it such as kmem_cache_alloc, inline assembly such as WARN_ON's trap, a call
through a function pointer, a variable of the library's own) is refused at the IDS's call site,
with the chain of calls that leads there. link() links the sources the IDS's calls reach into
its module before llview's passes, so their guest reads are instrumented like the IDS's own,
makes their definitions internal and drops whatever the IDS does not reach.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llview.diagnose import Refusal, SuppliedFunctions, redirected_functions
from llview.passes.forbidden_calls import ASM_RE, UNINSTRUMENTABLE_INTRINSICS
from llview.paths import KERNEL_HEADERS_DIR, LlviewError, cache_dir

if TYPE_CHECKING:
    from llview.kernel.profile import Profile

# The kernel's library files an IDS may call into: readers of the kernel's generic data
# structures. Their writers allocate or lock and are refused where an IDS calls them.
KERNEL_LIBRARY_FILES = ("lib/rbtree.c", "lib/xarray.c", "lib/maple_tree.c", "lib/radix-tree.c",
                        "lib/idr.c")
COMPAT_SOURCE = KERNEL_HEADERS_DIR / "llview" / "compat.c"
LIBRARY_PRELUDE = KERNEL_HEADERS_DIR / "llview" / "kernel_library.h"
_INDEX_FORMAT = 3  # bump when the index's shape changes: old cache entries are then ignored

_LINKAGE = re.compile(r"^define (?:(internal|private|available_externally|linkonce|linkonce_odr|"
                      r"weak|weak_odr|extern_weak|common) )?")
# A global named in an instruction. C identifiers never need LLVM's quoted form, and quoted
# text (asm templates and constraints such as "={@ccc}") is skipped before matching.
_GLOBAL_NAME = re.compile(r"@([-a-zA-Z$._][-a-zA-Z$._0-9]*)")


@dataclass(frozen=True)
class SupplySource:
    """One C file whose functions an IDS may call."""

    label: str  # how diagnostics name it: "llview/compat.c", "lib/maple_tree.c"
    path: Path
    prelude: Path | None = None  # force-included after the kernel flags' own

    def compile_flags(self, flags: Sequence[str]) -> list[str]:
        return [*flags, "-include", str(self.prelude)] if self.prelude else list(flags)


def supply_sources(profile: Profile) -> list[SupplySource]:
    """compat.c, then the kernel library files the profile has."""
    sources = [SupplySource("llview/compat.c", COMPAT_SOURCE)]
    if profile.kernel_source is not None:
        for relative in KERNEL_LIBRARY_FILES:
            path = profile.kernel_source / relative
            if path.is_file():
                sources.append(SupplySource(relative, path, LIBRARY_PRELUDE))
    return sources


def missing_library_hint(profile: Profile) -> str | None:
    """Why the kernel's library functions are not available, when they are not."""
    from llview.kernel.profile import has_kernel_library

    if has_kernel_library(profile):
        return None
    return (f"kernel profile {profile.release} has no kernel library source "
            f"({', '.join(KERNEL_LIBRARY_FILES)}); `llview kernel fetch` adds it")


# ---- compiling and indexing, cached ------------------------------------------------------------


@dataclass
class CompiledSource:
    source: SupplySource
    ir_path: Path
    # name -> {"external": bool, "refs": [[kind, target, line], ...]}; kind is
    # "name" (a global named: function or variable), "asm" (template) or "indirect"
    functions: dict[str, dict[str, Any]]
    variables: dict[str, bool]  # defined variable -> mutable
    external_variables: list[str]  # defined with external linkage
    declared_functions: set[str]
    error: str | None = None  # clang's first error when the source does not compile

    def ir_text(self) -> str:
        return self.ir_path.read_text()


def _cache_key(source: SupplySource, flags: Sequence[str]) -> str:
    from llview.frontend import KERNEL_OVERRIDES_HEADER

    parts = [str(_INDEX_FORMAT).encode(), source.label.encode(), source.path.read_bytes(),
             KERNEL_OVERRIDES_HEADER.read_bytes(),
             source.prelude.read_bytes() if source.prelude else b"",
             *(f.encode() for f in flags)]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:24]


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)  # concurrent builds each write a whole file


def compile_sources(sources: Sequence[SupplySource], flags: Sequence[str]) -> list[CompiledSource]:
    """Each source as IR for these flags plus its index, compiled (in parallel) when not cached."""
    from llview import frontend

    directory = cache_dir() / "kernel_functions"
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    runs = {}
    try:
        for source in sources:
            key = _cache_key(source, flags)
            stem = f"{Path(source.label).stem}-{key}"
            ir_path, index_path = directory / f"{stem}.ll", directory / f"{stem}.json"
            paths[source] = (ir_path, index_path)
            if not index_path.is_file():
                runs[source] = frontend.start_compile_to_ir(source.path,
                                                            source.compile_flags(flags))
        for source, run in runs.items():
            ir_text, messages = run.finish()
            ir_path, index_path = paths[source]
            if ir_text is None:
                # Remembered (for these flags) rather than fatal: the other sources still serve,
                # and an IDS that needs this one is told why it is missing.
                first = next((m for m in messages.splitlines() if ": error: " in m), messages)
                index = {"error": first.strip()}
            else:
                index, linkable = _index(ir_text, source)
                _write_atomically(ir_path, linkable)  # before the index that marks it done
            _write_atomically(index_path, json.dumps(index))
    finally:
        for run in runs.values():
            run.cancel()
    compiled = []
    for source in sources:
        ir_path, index_path = paths[source]
        index = json.loads(index_path.read_text())
        if "error" in index:
            compiled.append(CompiledSource(source, ir_path, {}, {}, [], set(), index["error"]))
            continue
        compiled.append(CompiledSource(source, ir_path, index["functions"], index["variables"],
                                       index["external_variables"],
                                       set(index["declared_functions"])))
    return compiled


# Lists of globals kept for the kernel's own linker and tools (__ADDRESSABLE() of static calls,
# tracepoint strings): an IDS has no use for them, and they would keep alive what the IDS does
# not reach, kernel symbol addresses in initialisers included.
_KEPT_FOR_THE_KERNEL = ("llvm.used", "llvm.compiler.used")


def _index(ir_text: str, source: SupplySource) -> tuple[dict[str, Any], str]:
    """What the module defines and, per function, every global, asm and indirect call it uses;
    and the module's text to link (without _KEPT_FOR_THE_KERNEL)."""
    from llview.irtext import IRError, ModuleView

    try:
        view = ModuleView(ir_text)
    except IRError as e:
        raise LlviewError(f"internal error: clang's IR for {source.label} is invalid: {e}") \
            from None
    for name in _KEPT_FOR_THE_KERNEL:
        if name in view.global_lines:
            view.replace_line(view.global_lines[name], None)
    variables: dict[str, bool] = {}
    external_variables = []
    for name, declared in view.global_declared.items():
        if declared or name.startswith("llvm."):
            continue
        variables[name] = not view.is_constant_global(name)
        linkage = view.lines[view.global_lines[name]].split(" = ", 1)[1]
        if not linkage.startswith(("internal ", "private ")):
            external_variables.append(name)
    functions = {}
    for func in view.functions:
        match = _LINKAGE.match(view.lines[func.define_line])
        refs: list[list[Any]] = []
        for inst in func.insts:
            text = inst.text
            line = view.location(inst).line
            unquoted = text.split('"')[::2]
            if inst.opcode in ("call", "invoke", "callbr"):
                asm = ASM_RE.search(text)
                if asm:
                    if asm.group(1).strip():  # asm("") is a compiler barrier, dropped later
                        refs.append(["asm", asm.group(1), line])
                elif inst.direct_callee() is None:
                    refs.append(["indirect", "", line])
            for piece in unquoted:
                refs.extend(["name", m.group(1), line] for m in _GLOBAL_NAME.finditer(piece))
        functions[func.name] = {"external": match is not None and match.group(1) is None,
                                "refs": refs}
    index = {"functions": functions, "variables": variables,
             "external_variables": external_variables,
             "declared_functions": sorted(view.declarations)}
    return index, view.render()


# ---- what the IDS may call, and what each supplied function reaches ---------------------------

Node = tuple[int, str]  # (index into the compiled sources, function name)


@dataclass
class _Problem:
    kind: str  # "function" (no body outside the kernel), "asm", "indirect", "variable", "intrinsic"
    target: str
    message: str  # completes "it ..."
    short: str  # for a list of what else is reached


@dataclass
class KernelFunctions:
    """The compiled sources and the call graph through them."""

    compiled: list[CompiledSource]
    runtime: set[str]  # what the runtime defines: never taken from a source
    provider: dict[str, int] = field(default_factory=dict)  # external function -> source
    _refusals: dict[str, Refusal | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, compiled in enumerate(self.compiled):
            for name, function in compiled.functions.items():
                if function["external"] and name not in self.runtime:
                    self.provider.setdefault(name, i)
        self._fine = set(self.runtime) | redirected_functions()

    def _step(self, node: Node, name: str) -> Node | _Problem | None:
        """What a reference to `name` from `node`'s body leads to: another supplied function, a
        problem, or nothing to follow (the runtime's, a constant, a guest variable)."""
        compiled = self.compiled[node[0]]
        if name in compiled.functions:
            return (node[0], name)
        if name in compiled.variables:
            if compiled.variables[name]:
                return _Problem("variable", name,
                                f"uses '{name}', a variable of {compiled.source.label} whose "
                                "value only the running kernel has", f"variable '{name}'")
            return None
        if name in self.provider:
            return (self.provider[name], name)
        if name.startswith("llvm."):
            if name.startswith(UNINSTRUMENTABLE_INTRINSICS):
                return _Problem("intrinsic", name, f"uses LLVM intrinsic '{name}', which llview "
                                                   "cannot instrument", name)
            return None
        if name in self._fine or name.startswith("__llview_"):
            return None
        if name in compiled.declared_functions:
            return _Problem("function", name,
                            f"calls '{name}', which has no body outside the kernel", name)
        return None  # a kernel variable: read from the guest like the IDS's own

    def _asm_problem(self, template: str) -> _Problem:
        if "__bug_table" in template:  # x86 WARN_ON()/BUG_ON(): a ud2 trap into the kernel
            return _Problem("asm", "bug", "reaches a WARN_ON()/BUG_ON(), whose inline assembly "
                                          "traps into the kernel", "WARN_ON()/BUG_ON()")
        shown = template.replace("\\0A", "; ").replace("\\09", " ").strip("; ")
        return _Problem("asm", template, f"runs inline assembly '{shown}', which cannot run "
                                         "outside the kernel", f"inline assembly '{shown}'")

    def _walk(self, roots: Iterable[str]) -> tuple[dict[Node, tuple[Node, int] | None],
                                                    list[tuple[_Problem, Node, int]]]:
        """Breadth first from the supplied functions `roots`: how each reachable function is
        reached (parent, line of the reference) and the problems met (nearest first)."""
        parents: dict[Node, tuple[Node, int] | None] = {}
        queue: deque[Node] = deque()
        for name in roots:
            if name in self.provider:
                node = (self.provider[name], name)
                parents.setdefault(node, None)
                queue.append(node)
        problems: list[tuple[_Problem, Node, int]] = []
        seen_problems: set[tuple[str, str]] = set()
        while queue:
            node = queue.popleft()
            for kind, target, line in self.compiled[node[0]].functions[node[1]]["refs"]:
                if kind == "name":
                    step = self._step(node, target)
                elif kind == "asm":
                    step = self._asm_problem(target)
                else:
                    step = _Problem("indirect", "", "calls through a function pointer, whose "
                                                    "target may be kernel code",
                                    "calls through function pointers")
                if isinstance(step, _Problem):
                    if (step.kind, step.target) not in seen_problems:
                        seen_problems.add((step.kind, step.target))
                        problems.append((step, node, line))
                elif step is not None and step not in parents:
                    parents[step] = (node, line)
                    queue.append(step)
        return parents, problems

    def _chain(self, parents: dict[Node, tuple[Node, int] | None], node: Node,
               line: int) -> list[tuple[str, str, int]]:
        steps = [(node[1], self.compiled[node[0]].source.label, line)]
        while (parent := parents[node]) is not None:
            node, line = parent
            steps.append((node[1], self.compiled[node[0]].source.label, line))
        return steps[::-1]

    def failures(self) -> list[str]:
        return [f"{c.source.label} does not compile against this kernel's headers, so none of "
                f"its functions is supplied: {c.error}" for c in self.compiled if c.error]

    def refusal(self, name: str) -> Refusal | None:
        """Why supplied function `name` cannot run outside the kernel (None: it can)."""
        if name not in self._refusals:
            parents, problems = self._walk([name])
            if not problems:
                self._refusals[name] = None
            else:
                # A body-less kernel function (allocation, locking) says most about why.
                problem, node, line = next((p for p in problems if p[0].kind == "function"),
                                           problems[0])
                others = [p.short for p, _, _ in problems if p is not problem]
                self._refusals[name] = Refusal(problem.message,
                                               self._chain(parents, node, line),
                                               list(dict.fromkeys(others)))
        return self._refusals[name]

    def sources_reached(self, called: Iterable[str]) -> dict[int, set[str]]:
        """Source index -> its external functions that the IDS's calls reach (directly or from
        another source): the sources to link and what must stay visible while linking."""
        parents, _ = self._walk(called)
        reached: dict[int, set[str]] = {}
        for index, name in parents:
            reached.setdefault(index, set())
            if self.compiled[index].functions[name]["external"]:
                reached[index].add(name)
        return reached


def load(profile: Profile, flags: Sequence[str], runtime: set[str]) -> KernelFunctions:
    return KernelFunctions(compile_sources(supply_sources(profile), flags), set(runtime))


def supplied(profile: Profile, flags: Sequence[str], runtime: set[str]) -> SuppliedFunctions:
    """What an IDS may call without defining it: the runtime's symbols and the supplied kernel
    functions (compiled or read from the cache only when the checks ask about another name)."""
    return SuppliedFunctions(runtime, lambda: load(profile, flags, runtime),
                             missing_library_hint(profile))


def _may_need_supplying(name: str, runtime: set[str]) -> bool:
    """Not the runtime's, not an LLVM intrinsic, not a C string function the passes redirect
    (compat.c's __llview_ names may need supplying: the passes add no calls before linking)."""
    return not (name in runtime or name.startswith("llvm.") or name in redirected_functions())


# ---- linking into the IDS module ---------------------------------------------------------------


def link(ids_ir: str, profile: Profile, flags: Sequence[str], runtime: set[str]) -> str:
    """The IDS module with the supplied functions it calls linked in (as is when it calls none).

    Linked definitions become internal; what the IDS does not reach is dropped (global DCE), so
    the passes see only code that runs."""
    from llview.build import adopt_module_flags
    from llview.frontend import called_external_functions

    called = {name for name in called_external_functions(ids_ir)
              if _may_need_supplying(name, runtime)}
    if not called:
        return ids_ir  # nothing to look up: no source is even compiled or read
    functions = load(profile, flags, runtime)
    reached = functions.sources_reached(called)
    if not reached:
        return ids_ir
    import llvmlite.binding as llvm

    context = llvm.create_context()
    module = llvm.parse_assembly(ids_ir, context=context)
    try:
        for index, visible in sorted(reached.items()):
            compiled = functions.compiled[index]
            library = llvm.parse_assembly(adopt_module_flags(compiled.ir_text(), ids_ir),
                                          context=context)
            # Internal before linking: the rest of the file can never clash with the IDS's
            # own names; what other files need stays visible until all are linked.
            for name, function in compiled.functions.items():
                if function["external"] and name not in visible:
                    library.get_function(name).linkage = "internal"
            for name in compiled.external_variables:
                library.get_global_variable(name).linkage = "internal"
            module.link_in(library)
        for visible in reached.values():
            for name in visible:
                module.get_function(name).linkage = "internal"
        _drop_unreached(module)
        module.verify()
        return str(module)
    except RuntimeError as e:
        raise LlviewError(f"internal error: linking the supplied kernel functions: {e}") \
            from None
    finally:
        module.close()


def _drop_unreached(module) -> None:
    """Global dead-code elimination: the functions and variables of the linked files that the
    IDS does not reach, and the declarations only they used."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    target = llvm.Target.from_triple(module.triple or llvm.get_default_triple())
    builder = llvm.create_pass_builder(target.create_target_machine(),
                                       llvm.create_pipeline_tuning_options())
    passes = llvm.create_new_module_pass_manager()
    passes.add_global_dead_code_eliminate_pass()
    passes.add_strip_dead_prototype_pass()
    passes.run(module, builder)
