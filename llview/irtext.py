"""Textual LLVM IR editing on top of llvmlite's read-only parsed view.

llvmlite can parse, verify and print a module but not edit it. A ModuleView
parses IR text, prints it back in llvmlite's canonical form (one instruction
per line, in the order the parsed module reports them), pairs every
instruction of the parsed module with its line, and collects edits.
render() applies the edits and returns new IR text, which the pipeline parses
and verifies again before the next pass.

The edits are ModuleView's one editing layer, the only code that cuts IR
text; passes say what to change and never split a line themselves:
    instructions  insert_instruction, insert_call, insert_at_entry,
                  replace_with_call, replace_call (+ call_arguments),
                  replace_pointer_operand, replace_operand,
                  replace_phi_incoming (+ phi_incoming), delete,
                  delete_debug_records
    module        add_type, add_global, add_declaration, remove_global,
                  remove_declaration, rename
    lines         insert_before, replace_line, current (what the rest is
                  built on; still there for passes written against them)

Also here: small bracket- and quote-aware scanners for the pieces of LLVM
assembly the editing layer reads (typed values, constant expressions, call
argument lists) and the reading of DILocation chains for source locations.
"""

from __future__ import annotations

import ctypes
import re
import weakref
from dataclasses import dataclass, field

import llvmlite.binding as llvm

from llview.paths import LlviewError

_OPEN = "([{<"
_CLOSE = ")]}>"

# A local or global identifier as LLVM prints it: %name, %12, @"quoted name".
IDENT_RE = r'[%@](?:[-a-zA-Z$._0-9]+|"[^"]*")'
_IDENT_AT_START = re.compile(IDENT_RE)
_RESULT_RE = re.compile(r"^\s+(" + IDENT_RE + r") = ")
_DBG_RE = re.compile(r", !dbg (![0-9]+)")
_BLOCK_LABEL_RE = re.compile(r'^(?:[-a-zA-Z$._0-9]+|"[^"]*"):')
_MD_DEF_RE = re.compile(r"^(![0-9]+) = ")


def address(ref: llvm.ValueRef) -> int:
    """Identity of an LLVM value (llvmlite wrappers are fresh objects on every access)."""
    return ctypes.cast(ref._ptr, ctypes.c_void_p).value  # noqa: SLF001


def global_ref(name: str) -> str:
    """How LLVM spells a reference to the global `name`."""
    if re.fullmatch(r"[-a-zA-Z$._][-a-zA-Z$._0-9]*", name):
        return "@" + name
    return '@"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\{ord(c):02X}"
                          for c in name) + '"'


def c_string(text: str) -> tuple[str, int]:
    """An LLVM c"..." literal for `text` (NUL-terminated) and its length in bytes."""
    data = text.encode() + b"\0"
    body = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:02X}" for b in data)
    return f'c"{body}"', len(data)


# -- scanning LLVM assembly text ------------------------------------------------------------------

def match_close(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start` (any of ([{<), quotes respected."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = text.index('"', i + 1)
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced brackets in IR text: {text!r}")


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` at bracket depth 0 outside quotes; parts are stripped."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = text.index('"', i + 1)
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    last = text[start:].strip()
    if last or parts:
        parts.append(last)
    return parts


def split_type(text: str) -> tuple[str, str]:
    """Split 'TYPE VALUE...' into the leading type and the rest."""
    text = text.strip()
    if not text:
        raise ValueError("empty typed value")
    if text[0] in "[{<":
        end = match_close(text, 0) + 1
    elif text.startswith('%"'):
        end = text.index('"', 2) + 1
    else:
        end = 0
        while end < len(text) and text[end] not in " ,)":
            end += 1
    if text.startswith(" addrspace(", end):
        end = match_close(text, end + len(" addrspace")) + 1
    return text[:end], text[end:].strip()


CONSTEXPR_OPS = {
    "getelementptr", "ptrtoint", "inttoptr", "bitcast", "addrspacecast", "trunc", "zext",
    "sext", "add", "sub", "mul", "xor", "shl", "and", "or", "extractelement", "insertelement",
    "shufflevector", "icmp", "fcmp", "select",
}
CAST_OPS = {"ptrtoint", "inttoptr", "bitcast", "addrspacecast", "trunc", "zext", "sext"}
BINARY_OPS = {"add", "sub", "mul", "xor", "shl", "and", "or"}


def parse_value(text: str) -> tuple[str, str]:
    """Read one (untyped) value from the start of `text`; return it and what follows."""
    text = text.lstrip()
    if not text:
        raise ValueError("expected a value")
    m = _IDENT_AT_START.match(text)
    if m:
        return m.group(0), text[m.end():].lstrip()
    c = text[0]
    if c in "[{<":
        end = match_close(text, 0) + 1
        return text[:end], text[end:].lstrip()
    if text.startswith('c"'):
        end = text.index('"', 2) + 1
        return text[:end], text[end:].lstrip()
    m = re.match(r"[-a-zA-Z0-9_.+]+", text)
    if not m:
        raise ValueError(f"cannot read a value from {text!r}")
    word = m.group(0)
    i = m.end()
    if word not in CONSTEXPR_OPS and word not in ("blockaddress", "dso_local_equivalent",
                                                  "no_cfi", "ptrauth"):
        return word, text[i:].lstrip()
    # constant expression: opcode, flags (some with attached "(...)"), then "(operands)"
    while i < len(text):
        while i < len(text) and text[i] == " ":
            i += 1
        if i >= len(text):
            break
        if text[i] == "(":
            end = match_close(text, i) + 1
            return text[:end], text[end:].lstrip()
        if text[i] in "@%":
            m = _IDENT_AT_START.match(text, i)
            assert m is not None
            return text[:m.end()], text[m.end():].lstrip()
        m = re.compile(r"[a-zA-Z_0-9]+").match(text, i)
        if not m:
            break
        i = m.end()
        if i < len(text) and text[i] == "(":
            i = match_close(text, i) + 1
    raise ValueError(f"cannot read a constant expression from {text!r}")


@dataclass
class ConstExpr:
    """A parsed constant expression: `op flags (operands)`."""
    op: str
    flags: list[str]
    operands: list[str]          # typed values (for getelementptr, operands[0] is the source type)
    dest_type: str | None = None  # casts only


def parse_constexpr(text: str) -> ConstExpr:
    m = re.match(r"([a-z_]+)\s*", text)
    if not m or m.group(1) not in CONSTEXPR_OPS:
        raise ValueError(f"not a constant expression: {text!r}")
    op = m.group(1)
    rest = text[m.end():]
    open_at = None
    i = 0
    flags: list[str] = []
    while i < len(rest):
        if rest[i] == "(":
            open_at = i
            break
        fm = re.compile(r"[a-zA-Z_0-9]+").match(rest, i)
        if not fm:
            i += 1
            continue
        j = fm.end()
        if j < len(rest) and rest[j] == "(":
            j = match_close(rest, j) + 1
        flags.append(rest[i:j])
        i = j
    if open_at is None:
        raise ValueError(f"constant expression without operands: {text!r}")
    inner = rest[open_at + 1:match_close(rest, open_at)]
    if op in CAST_OPS:
        k = inner.rfind(" to ")
        while k >= 0 and _depth_at(inner, k) != 0:
            k = inner.rfind(" to ", 0, k)
        if k < 0:
            raise ValueError(f"cast without destination type: {text!r}")
        return ConstExpr(op, flags, [inner[:k].strip()], inner[k + 4:].strip())
    return ConstExpr(op, flags, split_top(inner))


def _depth_at(text: str, pos: int) -> int:
    depth = 0
    in_quote = False
    for c in text[:pos]:
        if c == '"':
            in_quote = not in_quote
        elif not in_quote and c in _OPEN:
            depth += 1
        elif not in_quote and c in _CLOSE:
            depth -= 1
    return depth


def call_args_span(line: str, callee: str) -> tuple[int, int]:
    """(start, end) of the argument list text of the call of `callee` in `line`."""
    at = line.find(callee + "(")
    if at < 0:
        raise ValueError(f"no call of {callee} in {line!r}")
    open_at = at + len(callee)
    return open_at + 1, match_close(line, open_at)


def aggregate_elements(value: str) -> tuple[list[str], bool]:
    """The typed elements of a constant aggregate ({...}, <{...}>, [...], <...>) and whether it
    is a vector."""
    if value.startswith("<{"):
        return split_top(value[2:-2]), False
    return split_top(value[1:-1]), value.startswith("<")


def _call_text(returns: str, callee: str, args: list[str]) -> str:
    return f"call {returns} {callee}({', '.join(args)})"


def outside_quotes_sub(pattern: re.Pattern[str], repl, line: str) -> str:
    """re.sub applied only to the parts of `line` outside double quotes."""
    pieces = line.split('"')
    for k in range(0, len(pieces), 2):
        pieces[k] = pattern.sub(repl, pieces[k])
    return '"'.join(pieces)


# -- the parsed module paired with its text -------------------------------------------------------

@dataclass(eq=False)
class Block:
    func: Function
    insts: list[Inst] = field(default_factory=list)
    ref: llvm.ValueRef | None = None   # set by Function.bind()

    @property
    def terminator(self) -> Inst:
        return self.insts[-1]


_CALL_PREFIXES = ("tail", "musttail", "notail")
_FAST_MATH_FLAGS = ("nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc", "fast")
_CALLEE_RE = re.compile(r"\s(" + IDENT_RE + r")\(")


@dataclass(eq=False)
class Inst:
    opcode: str
    line: int            # index into ModuleView.lines
    name: str | None     # "%13", "%x" or None for void results
    func: Function
    block: Block
    _ref: llvm.ValueRef | None = None

    @property
    def ref(self) -> llvm.ValueRef:
        """llvmlite's view of this instruction (the function is bound on first use)."""
        if self._ref is None:
            self.func.bind()
        assert self._ref is not None
        return self._ref

    @property
    def text(self) -> str:
        return self.func.view.lines[self.line]

    def operands(self) -> list[llvm.ValueRef]:
        return list(self.ref.operands)

    def dbg(self) -> str | None:
        m = _DBG_RE.search(self.text)
        return m.group(1) if m else None

    def direct_callee(self) -> str | None:
        """For a call of a named function, its name, read from the canonical text."""
        text = self.text
        at = text.find(" call ")
        if at < 0:
            return None
        m = _CALLEE_RE.search(text, at)
        if not m or not m.group(1).startswith("@") or " asm " in text[at:m.start() + 1]:
            return None
        return _unquote(m.group(1)[1:])


@dataclass(eq=False)
class Function:
    ref: llvm.ValueRef
    name: str
    view: ModuleView
    define_line: int
    blocks: list[Block] = field(default_factory=list)
    insts: list[Inst] = field(default_factory=list)
    value_names: dict[int, str] = field(default_factory=dict)   # address -> "%x"
    by_address: dict[int, Inst] = field(default_factory=dict)
    block_by_address: dict[int, Block] = field(default_factory=dict)
    bound: bool = False

    @property
    def subprogram(self) -> str | None:
        m = re.search(r"!dbg (![0-9]+)", self.view.lines[self.define_line])
        return m.group(1) if m else None

    def bind(self) -> None:
        """Pair the text's instructions with llvmlite's (done lazily: a pass that only needs
        the text of a function never pays for walking it through llvmlite)."""
        if self.bound:
            return
        self.bound = True
        head = self.view.lines[self.define_line]
        start, end = call_args_span(head, global_ref(self.name))
        params = [p for p in split_top(head[start:end]) if p != "..."]
        args = list(self.ref.arguments)
        if len(args) != len(params):
            raise IRError(f"internal: cannot read the parameters of @{self.name}")
        for arg, param in zip(args, params, strict=True):
            self.value_names[address(arg)] = param.split()[-1]
        brefs = list(self.ref.blocks)
        if len(brefs) != len(self.blocks):
            raise IRError(f"internal: the blocks of @{self.name} do not match its text")
        for bref, block in zip(brefs, self.blocks, strict=True):
            block.ref = bref
            self.block_by_address[address(bref)] = block
            irefs = list(bref.instructions)
            if len(irefs) != len(block.insts):
                raise IRError(f"internal: a block of @{self.name} does not match its text")
            for iref, inst in zip(irefs, block.insts, strict=True):
                inst._ref = iref
                addr = address(iref)
                self.by_address[addr] = inst
                if inst.name:
                    self.value_names[addr] = inst.name


@dataclass
class Location:
    file: str
    line: int
    column: int
    inlined_from: str | None = None   # innermost inlined function, if the site is inside one


class IRError(LlviewError):
    """IR text that llvmlite rejects (message carries llvmlite's explanation)."""


def parse_module(text: str, verify: bool = True) -> tuple[llvm.ModuleRef, llvm.ContextRef]:
    """Parse (and verify) IR in a context of its own: in llvmlite's global context, every
    re-parse would rename the module's struct types (%struct.x.1, %struct.x.2, ...)."""
    context = llvm.create_context()
    try:
        mod = llvm.parse_assembly(text, context=context)
    except RuntimeError as e:
        context.close()
        raise IRError(f"invalid LLVM IR: {str(e).strip()}") from None
    if verify:
        try:
            mod.verify()
        except RuntimeError as e:
            _dispose(mod, context)
            raise IRError(f"LLVM IR does not verify: {str(e).strip()}") from None
    return mod, context


def _dispose(module: llvm.ModuleRef, context: llvm.ContextRef) -> None:
    """Free a module before its context (garbage collection alone could do it the other way
    round when both sit in a reference cycle, which crashes LLVM)."""
    module.close()
    context.close()


class ModuleView:
    """A parsed module, its canonical text, the instruction <-> line pairing, and pending edits."""

    def __init__(self, text: str, verify: bool = True) -> None:
        self.module, context = parse_module(text, verify)
        weakref.finalize(self, _dispose, self.module, context)
        self.lines = str(self.module).split("\n")
        self.functions: list[Function] = []
        self.declarations: dict[str, llvm.ValueRef] = {}    # declared-only functions
        self.defined_functions: set[str] = set()
        self.global_lines: dict[str, int] = {}               # global name -> its line
        self.global_declared: dict[str, bool] = {}           # global variable -> is declaration
        self.metadata: dict[str, str] = {}                   # "!12" -> its definition text
        self._locations: dict[str, Location] = {}
        self.before: dict[int, list[str]] = {}
        self.replace: dict[int, str | None] = {}
        self.added_top: list[str] = []     # types (emitted before everything else)
        self.added_globals: list[str] = []
        self._next_md: int | None = None
        self.added_declarations: set[str] = set()   # functions add_declaration() was asked for
        self._pair_lines()
        self.source_filename = self._source_filename()

    # -- construction --

    def _pair_lines(self) -> None:
        lines = self.lines
        define_lines = []
        for i, ln in enumerate(lines):
            if ln.startswith("@"):
                m = _IDENT_AT_START.match(ln)
                if m:
                    self.global_lines[_unquote(m.group(0)[1:])] = i
            elif ln.startswith("!"):
                m = _MD_DEF_RE.match(ln)
                if m:
                    self.metadata[m.group(1)] = ln[m.end():]
            elif ln.startswith("define "):
                define_lines.append(i)
        for g in self.module.global_variables:
            self.global_declared[g.name] = bool(g.is_declaration)
        defined = []
        for f in self.module.functions:
            if f.is_declaration:
                self.declarations[f.name] = f
            else:
                self.defined_functions.add(f.name)
                defined.append(f)
        if len(defined) != len(define_lines):
            raise IRError("internal: cannot pair functions with their text")
        for fref, dline in zip(defined, define_lines, strict=True):
            func = Function(fref, fref.name, self, dline)
            self._read_function(func)
            self.functions.append(func)

    def _read_function(self, func: Function) -> None:
        """Blocks and instructions of a function body, from the canonical text alone."""
        lines = self.lines
        i = func.define_line + 1
        block: Block | None = None
        while True:
            ln = lines[i]
            if ln == "}":
                break
            if ln.startswith("  ") and not ln.startswith(("    #dbg_", "  ;")):
                if block is None:  # an entry block without a label
                    block = Block(func)
                    func.blocks.append(block)
                m = _RESULT_RE.match(ln)
                words = ln[m.end():].split(" ", 2) if m else ln.split(None, 2)
                opcode = words[1] if words[0] in _CALL_PREFIXES else words[0]
                inst = Inst(opcode, i, m.group(1) if m else None, func, block)
                block.insts.append(inst)
                func.insts.append(inst)
                if opcode == "switch" and ln.endswith("["):
                    # One case per line, up to "  ]" (with debug info: "  ], !dbg !12").
                    while not lines[i + 1].startswith("  ]"):
                        i += 1
                    i += 1
            elif _BLOCK_LABEL_RE.match(ln):
                block = Block(func)
                func.blocks.append(block)
            i += 1

    def _source_filename(self) -> str:
        for ln in self.lines[:8]:
            m = re.match(r'source_filename = "(.*)"', ln)
            if m:
                return _unescape(m.group(1))
        return "<unknown>"

    # -- values --

    def value_text(self, func: Function, ref: llvm.ValueRef) -> str:
        """The untyped spelling of an operand as it appears in `func`'s text."""
        kind = ref.value_kind
        if kind in (llvm.ValueKind.instruction, llvm.ValueKind.argument):
            return func.value_names[address(ref)]
        if kind in (llvm.ValueKind.global_variable, llvm.ValueKind.function,
                    llvm.ValueKind.global_alias):
            return global_ref(ref.name)
        if kind == llvm.ValueKind.basic_block:
            raise ValueError("basic block operand")
        return split_type(str(ref))[1]

    def typed_text(self, func: Function, ref: llvm.ValueRef) -> str:
        return f"{ref.type} {self.value_text(func, ref)}"

    def global_definition(self, name: str) -> str:
        """What follows `@name = ` on global `name`'s line (linkage, type, initializer...)."""
        return self.lines[self.global_lines[name]].split(" = ", 1)[1]

    def is_constant_global(self, name: str) -> bool:
        """True for a global defined with `constant` (string literals, const tables)."""
        m = re.search(r"\b(global|constant)\b", self.global_definition(name))
        return bool(m and m.group(1) == "constant")

    def has_type(self, name: str) -> bool:
        return any(ln.startswith(name + " = type ") for ln in self.lines)

    # -- debug locations --

    def location(self, inst: Inst) -> Location:
        """Outermost source location of `inst` (inlinedAt chain followed to the end)."""
        dbg = inst.dbg()
        if dbg is not None:
            return self.location_of(dbg)
        return self.function_location(inst.func)

    def function_location(self, func: Function) -> Location:
        """Where `func` is defined (its DISubprogram), or the module's file."""
        sp = func.subprogram
        if sp is None:
            return Location(self.source_filename, 0, 0)
        return Location(self._file_of(sp), _md_int(self.metadata.get(sp, ""), "line") or 0, 0)

    def location_of(self, dbg: str) -> Location:
        cached = self._locations.get(dbg)
        if cached:
            return cached
        node = dbg
        text = self.metadata.get(node, "")
        inner_scope = _md_ref(text, "scope")
        inlined = False
        while True:
            parent = _md_ref(text, "inlinedAt")
            if parent is None:
                break
            inlined = True
            node = parent
            text = self.metadata.get(node, "")
        inlined_from = self._subprogram_name(inner_scope) if inlined and inner_scope else None
        loc = Location(self._file_of(_md_ref(text, "scope")), _md_int(text, "line") or 0,
                       _md_int(text, "column") or 0, inlined_from)
        self._locations[dbg] = loc
        return loc

    def _file_of(self, scope: str | None) -> str:
        seen = 0
        while scope is not None and seen < 64:
            text = self.metadata.get(scope, "")
            if "!DIFile(" in text:
                m = re.search(r'filename: "((?:[^"\\]|\\.)*)"', text)
                return _unescape(m.group(1)) if m else self.source_filename
            file_ref = _md_ref(text, "file")
            if file_ref is not None:
                scope = file_ref
            else:
                scope = _md_ref(text, "scope")
            seen += 1
        return self.source_filename

    def _subprogram_name(self, scope: str) -> str | None:
        seen = 0
        while scope is not None and seen < 64:
            text = self.metadata.get(scope, "")
            if "!DISubprogram(" in text:
                m = re.search(r'name: "((?:[^"\\]|\\.)*)"', text)
                return _unescape(m.group(1)) if m else None
            scope = _md_ref(text, "scope")
            seen += 1
        return None

    def dbg_suffix(self, inst: Inst) -> str:
        """`, !dbg !N` for an instruction inserted next to `inst` (calls need one when the
        function has debug info, or the later inlining of the runtime's fast path fails)."""
        dbg = inst.dbg()
        if dbg is None:
            sp = inst.func.subprogram
            if sp is None:
                return ""
            dbg = self.new_metadata(f"!DILocation(line: 0, scope: {sp})", key=("loc0", sp))
        return f", !dbg {dbg}"

    def new_metadata(self, text: str, key: object = None) -> str:
        """A new numbered metadata node (deduplicated by key)."""
        if not hasattr(self, "_new_md"):
            self._new_md: dict[object, str] = {}
        key = key if key is not None else text
        if key in self._new_md:
            return self._new_md[key]
        if self._next_md is None:
            self._next_md = 1 + max((int(k[1:]) for k in self.metadata), default=-1)
        ref = f"!{self._next_md}"
        self._next_md += 1
        self._new_md[key] = ref
        self.added_globals.append(f"{ref} = {text}")
        return ref

    # -- edits: the one place IR text is cut ------------------------------------------------
    #
    # Passes change the module only through the methods below; each reads the line as this
    # pass left it so far (current()), so edits of one instruction compose. The first three
    # are the line-level primitives the others are made of (and an API passes may still use).

    def insert_before(self, line: int, new_lines: list[str], first: bool = False) -> None:
        """Insert lines before `line` (after earlier insertions, or ahead of them if first)."""
        pending = self.before.setdefault(line, [])
        if first:
            pending[:0] = new_lines
        else:
            pending.extend(new_lines)

    def replace_line(self, line: int, new_text: str | None) -> None:
        self.replace[line] = new_text

    def current(self, line: int) -> str:
        """A line with the replacement already made by this pass, if any."""
        text = self.replace.get(line, self.lines[line])
        if text is None:
            raise ValueError(f"line {line} was deleted")
        return text

    # instructions

    def insert_instruction(self, before: Inst, text: str, *, name: str | None = None,
                           dbg_from: Inst | None = None) -> str | None:
        """Insert `name = text` ahead of `before`, with `dbg_from`'s debug location if given;
        return `name`."""
        head = f"  {name} = " if name else "  "
        tail = self.dbg_suffix(dbg_from) if dbg_from is not None else ""
        self.insert_before(before.line, [head + text + tail])
        return name

    def insert_at_entry(self, func: Function, texts: list[str]) -> None:
        """Instructions (`%x = ...` without indentation) that run first in `func`, ahead of
        anything else inserted there."""
        self.insert_before(func.blocks[0].insts[0].line, ["  " + t for t in texts], first=True)

    def insert_call(self, before: Inst, returns: str, callee: str, args: list[str], *,
                    name: str | None = None) -> str | None:
        """Insert `[name =] call returns callee(args)` ahead of `before`, at its debug location;
        return `name`."""
        return self.insert_instruction(before, _call_text(returns, callee, args), name=name,
                                       dbg_from=before)

    def replace_with_call(self, inst: Inst, returns: str, callee: str, args: list[str], *,
                          name: str | None = None) -> None:
        """Replace `inst` by `[name =] call returns callee(args)` at its debug location."""
        head = f"  {name} = " if name else "  "
        self.replace_line(inst.line, head + _call_text(returns, callee, args)
                          + self.dbg_suffix(inst))

    def call_arguments(self, inst: Inst) -> list[str]:
        """The typed arguments of direct call `inst` (`ptr noundef %a`, ...)."""
        line = self.current(inst.line)
        start, end = call_args_span(line, self._callee_ref(inst))
        return split_top(line[start:end])

    def replace_call(self, inst: Inst, callee: str, args: list[str]) -> None:
        """Make direct call `inst` call `callee` with typed `args`; its result, attributes and
        metadata stay."""
        line = self.current(inst.line)
        old = self._callee_ref(inst)
        start, end = call_args_span(line, old)
        self.replace_line(inst.line, f"{line[:start - 1 - len(old)]}{callee}({', '.join(args)})"
                                     f"{line[end + 1:]}")

    def _callee_ref(self, inst: Inst) -> str:
        name = inst.direct_callee()
        if name is None:
            raise ValueError(f"not a direct call: {inst.text!r}")
        return global_ref(name)

    def replace_pointer_operand(self, inst: Inst, new_value: str) -> str:
        """Make load or store `inst` access `new_value` (its type and flags stay); return the
        pointer it accessed."""
        if inst.opcode not in ("load", "store"):
            raise ValueError(f"no pointer operand to replace in {inst.opcode}")
        line = self.current(inst.line)
        result = _RESULT_RE.match(line)   # (a value may be named %load)
        at = (result.end() if result else len(line) - len(line.lstrip())) + len(inst.opcode) + 1
        parts = split_top(line[at:])
        pointer_type, after = split_type(parts[1])  # `T value, ptr %p, ...` in both
        old, tail = parse_value(after)
        parts[1] = f"{pointer_type} {new_value}" + (f" {tail}" if tail else "")
        self.replace_line(inst.line, line[:at] + ", ".join(parts))
        return old

    def replace_operand(self, inst: Inst, old: str, new: str) -> None:
        """Replace every use of value `old` in `inst`: a global (`@x`, whole names only,
        outside string literals) or a constant's exact text."""
        line = self.current(inst.line)
        if old.startswith("@"):
            line = outside_quotes_sub(_whole_name(old), lambda _m: new, line)
        else:
            line = line.replace(old, new)
        self.replace_line(inst.line, line)

    def phi_incoming(self, inst: Inst) -> tuple[str, list[str]]:
        """The type of phi `inst` and its incoming values, in the order of incoming_blocks."""
        _, ty, incoming, _ = self._phi_parts(inst)
        return ty, [value for value, _ in incoming]

    def replace_phi_incoming(self, inst: Inst, values: list[str]) -> None:
        """Give phi `inst` new incoming values (one per incoming block, in order)."""
        head, ty, incoming, metadata = self._phi_parts(inst)
        pairs = [f"[ {v}, {label} ]" for v, (_, label) in zip(values, incoming, strict=True)]
        self.replace_line(inst.line, f"{head}{ty} " + ", ".join(pairs + metadata))

    def _phi_parts(self, inst: Inst) -> tuple[str, str, list[tuple[str, str]], list[str]]:
        """(`  %x = phi [flags ]`, type, [(value, label)], trailing metadata parts)."""
        line = self.current(inst.line)
        head, rest = line.split(" = phi ", 1)
        head += " = phi "
        words = rest.split(" ")
        while words and words[0] in _FAST_MATH_FLAGS:
            head += words.pop(0) + " "
        ty, rest = split_type(" ".join(words))
        incoming: list[tuple[str, str]] = []
        metadata: list[str] = []
        for part in split_top(rest):
            if part.startswith("["):
                value, label = split_top(part[1:-1].strip())
                incoming.append((value, label))
            else:
                metadata.append(part)
        return head, ty, incoming, metadata

    def delete(self, inst: Inst) -> None:
        self.replace_line(inst.line, None)

    def delete_debug_records(self, naming: re.Pattern[str]) -> None:
        """Drop the #dbg_ records whose text `naming` matches (they may not name a global
        that is going away)."""
        for i, ln in enumerate(self.lines):
            if ln.lstrip().startswith("#dbg_") and naming.search(ln):
                self.replace_line(i, None)

    # module level

    def add_type(self, name: str, body: str) -> None:
        """Define type `name` (`%struct.x`) as `body` unless the module has it."""
        if not self.has_type(name) and not any(t.startswith(name + " = type ")
                                               for t in self.added_top):
            self.added_top.append(f"{name} = type {body}")

    def add_global(self, text: str) -> None:
        """A module-level line after everything else: a global, a declaration, metadata."""
        self.added_globals.append(text)

    def add_declaration(self, name: str, declaration: str) -> str:
        """`declaration` (`declare ... @name(...)`) unless the module has function `name`
        (declared, defined or added); return @name."""
        if name not in self.added_declarations:
            self.added_declarations.add(name)
            if name not in self.declarations and name not in self.defined_functions:
                self.add_global(declaration)
        return "@" + name

    def remove_global(self, name: str) -> None:
        """Delete the definition or declaration of global variable `name`."""
        self.replace_line(self.global_lines[name], None)

    def remove_declaration(self, name: str) -> None:
        """Delete the `declare` line of function `name`."""
        ref = global_ref(name) + "("
        line = next((i for i, ln in enumerate(self.lines)
                     if ln.startswith("declare ") and ref in ln), None)
        if line is None:
            raise ValueError(f"no declaration of {name}")
        self.replace_line(line, None)

    def rename(self, old: str, new: str) -> None:
        """Rename global or function `old` to `new` everywhere it is named (not inside string
        literals or metadata)."""
        old_ref, new_ref = global_ref(old), global_ref(new)
        pattern = _whole_name(old_ref)
        for i, ln in enumerate(self.lines):
            deleted = i in self.replace and self.replace[i] is None
            if old_ref in ln and not ln.startswith("!") and not deleted:
                self.replace_line(i, outside_quotes_sub(pattern, lambda _m: new_ref,
                                                        self.current(i)))

    def render(self) -> str:
        out: list[str] = []
        first_body = next((i for i, ln in enumerate(self.lines)
                           if ln.startswith(("@", "define ", "declare "))), len(self.lines))
        for i, ln in enumerate(self.lines):
            if i == first_body:
                out.extend(self.added_top)
            if i in self.before:
                out.extend(self.before[i])
            if i in self.replace:
                new = self.replace[i]
                if new is not None:
                    out.append(new)
            else:
                out.append(ln)
        if first_body >= len(self.lines):
            out.extend(self.added_top)
        out.extend(self.added_globals)
        return "\n".join(out) + "\n"


def _whole_name(ref: str) -> re.Pattern[str]:
    """Global reference `ref` (@x) as a whole name, not the start of @x2 or @x.y."""
    return re.compile(re.escape(ref) + r"(?![-\w.$])")


def _md_ref(text: str, field_name: str) -> str | None:
    m = re.search(r"\b" + field_name + r": (![0-9]+)", text)
    return m.group(1) if m else None


def _md_int(text: str, field_name: str) -> int | None:
    m = re.search(r"\b" + field_name + r": ([0-9]+)", text)
    return int(m.group(1)) if m else None


def _unquote(name: str) -> str:
    if name.startswith('"') and name.endswith('"'):
        return _unescape(name[1:-1])
    return name


def _unescape(text: str) -> str:
    """Undo LLVM's \\XX escapes (the bytes are UTF-8)."""
    if "\\" not in text:
        return text
    raw = re.sub(rb"\\([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                 text.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "replace")
