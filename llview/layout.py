"""`llview layout STRUCT[.FIELD...]`: where a field sits in a kernel struct, as the IDS compiler
sees it (libclang with the same flags as `llview build`): offset, size and type, or every field
of a whole struct."""

from __future__ import annotations

import argparse
import ctypes
import difflib
import re
from dataclasses import dataclass

from llview.paths import LlviewError

# Headers parsed when looking a struct up: they define the structs IDS programs usually walk
# (tasks, credentials, files, mounts, modules, namespaces, sockets). --include adds more.
DEFAULT_HEADERS = [
    "linux/sched.h", "linux/sched/signal.h", "linux/cred.h", "linux/fs.h", "linux/fdtable.h",
    "linux/dcache.h", "linux/mm_types.h", "linux/module.h", "linux/utsname.h",
    "linux/pid_namespace.h", "linux/nsproxy.h", "net/sock.h", "linux/netdevice.h",
]
QUICK_HEADERS = ["linux/sched/signal.h"]
_SOURCE_NAME = "llview-layout.c"


@dataclass
class FieldLayout:
    path: str  # task_struct.se.vruntime
    offset_bits: int
    size_bytes: int  # -1 when the type has no size (flexible array)
    type_name: str
    bit_width: int | None  # bitfields only

    def describe(self) -> str:
        if self.bit_width is not None:
            return (f"offset {self.offset_bits // 8} (bit {self.offset_bits % 8}), "
                    f"size {self.bit_width} bit{'s' if self.bit_width != 1 else ''}, "
                    f"type {self.type_name}")
        size = "none (flexible array)" if self.size_bytes < 0 else str(self.size_bytes)
        return f"offset {self.offset_bits // 8}, size {size}, type {self.type_name}"


def parse_headers(profile, headers: list[str]):
    """A libclang TU that includes the given kernel headers, with `llview build`'s flags."""
    from llview import diagnose, frontend

    ci = diagnose.cindex()
    source = "".join(f"#include <{h}>\n" for h in headers)
    flags = frontend.kernel_flags(profile)
    # The same precompiled-preamble cache as `llview build`: the second lookup is fast.
    pch = frontend.precompiled_preamble(source, flags, profile)
    try:
        tu = ci.Index.create().parse(_SOURCE_NAME, args=[*frontend.compile_flags(flags), *pch],
                                     unsaved_files=[(_SOURCE_NAME, source)])
    except ci.TranslationUnitLoadError as e:
        raise LlviewError(f"libclang could not parse the kernel headers: {e}") from None
    errors = [d for d in tu.diagnostics if d.severity >= 3]
    if errors:
        first = errors[0]
        where = f"{first.location.file}:{first.location.line}" if first.location.file else ""
        raise LlviewError(f"the kernel headers do not parse ({where}: {first.spelling}); "
                          "check the --include names")
    return tu


class UnknownRecord(LlviewError):
    """No struct or union of that name in the headers parsed."""


def find_record(tu, name: str):
    """The definition of struct/union `name` (or of the record a typedef `name` names)."""
    from llview.diagnose import cindex

    kinds = cindex().CursorKind
    records, typedefs = {}, {}
    for cursor in tu.cursor.get_children():
        if cursor.kind in (kinds.STRUCT_DECL, kinds.UNION_DECL) and cursor.is_definition():
            records.setdefault(cursor.spelling, cursor)
        elif cursor.kind == kinds.TYPEDEF_DECL:
            typedefs.setdefault(cursor.spelling, cursor)
    if name in records:
        return records[name]
    if name in typedefs:
        target = typedefs[name].underlying_typedef_type.get_canonical().get_declaration()
        if target.kind in (kinds.STRUCT_DECL, kinds.UNION_DECL):
            definition = target.get_definition()
            if definition is not None:
                return definition
    close = difflib.get_close_matches(name, list(records), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownRecord(f"no struct or union '{name}' in the headers searched{hint} "
                        "(--include HEADER searches more)")


def _record_type(cursor_type):
    """The record declaration behind a field's type (through typedefs), or None."""
    from llview.diagnose import cindex

    kinds = cindex().CursorKind
    declaration = cursor_type.get_canonical().get_declaration()
    if declaration.kind in (kinds.STRUCT_DECL, kinds.UNION_DECL):
        return declaration.get_definition() or declaration
    return None


def _is_anonymous_member(field) -> bool:
    """A C11 anonymous struct/union member (`union { ... };`), whose fields belong to the outer
    record; not a named member of an unnamed type (`union { ... } d_u;`)."""
    from llview.diagnose import cindex

    ci = cindex()
    is_anonymous_record = ci.conf.lib.clang_Cursor_isAnonymousRecordDecl
    if is_anonymous_record.argtypes is None:
        is_anonymous_record.argtypes = [ci.Cursor]
        is_anonymous_record.restype = ctypes.c_uint
    declaration = field.type.get_declaration()
    return declaration.kind != ci.CursorKind.NO_DECL_FOUND and bool(
        is_anonymous_record(declaration))


def _fields(record, base_bits: int = 0):
    """(name, offset in bits, field cursor) for each field, anonymous members flattened."""
    for field in record.type.get_fields():
        offset = base_bits + field.get_field_offsetof()
        if _is_anonymous_member(field):
            inner = _record_type(field.type)
            if inner is not None:
                yield from _fields(inner, offset)
                continue
        if field.spelling:  # unnamed bitfields are padding
            yield field.spelling, offset, field


_UNNAMED_TYPE = re.compile(r"\((?:unnamed|anonymous) (?:struct |union )?at (?:\S*?/)?"
                           r"((?:include|arch)/[^)]*)\)")


def _type_name(field) -> str:
    """The field's type as clang spells it, unnamed types shortened to their header line."""
    return _UNNAMED_TYPE.sub(r"{unnamed, \1}", field.type.spelling)


def _layout_of(path: str, offset_bits: int, field) -> FieldLayout:
    width = field.get_bitfield_width() if field.is_bitfield() else None
    return FieldLayout(path, offset_bits, field.type.get_size(), _type_name(field), width)


def lookup(tu, spec: str) -> tuple[object, list[FieldLayout]]:
    """Resolves "task_struct.se.vruntime" (one layout) or "task_struct" (every field)."""
    name, *path = spec.removeprefix("struct ").removeprefix("union ").strip().split(".")
    record = find_record(tu, name)
    if not path:
        return record, [_layout_of(f"{name}.{n}", off, f) for n, off, f in _fields(record)]
    offset, where = 0, name
    for step, member in enumerate(path):
        fields = {n: (off, f) for n, off, f in _fields(record)}
        if member not in fields:
            close = difflib.get_close_matches(member, list(fields), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise LlviewError(f"{where} ({record.type.spelling}) has no field '{member}'{hint}")
        member_offset, field = fields[member]
        offset += member_offset
        where = f"{where}.{member}"
        if step == len(path) - 1:
            return record, [_layout_of(where, offset, field)]
        record = _record_type(field.type)
        if record is None:
            raise LlviewError(f"{where} is not a struct or union (type {field.type.spelling}); "
                              "cannot look inside it")
    raise AssertionError("unreachable")


def cmd_layout(args: argparse.Namespace) -> int:
    from llview.kernel import load_profile

    profile = load_profile(args.kernel)
    # The small set first (most lookups are about tasks); the whole set when that lacks the
    # struct.
    for headers in (QUICK_HEADERS, DEFAULT_HEADERS):
        tu = parse_headers(profile, headers + args.include)
        try:
            record, layouts = lookup(tu, args.spec)
            break
        except UnknownRecord:
            if headers is DEFAULT_HEADERS:
                raise
    if len(layouts) == 1 and "." in args.spec:
        print(f"{layouts[0].path}: {layouts[0].describe()}")
        return 0
    print(f"{record.type.spelling}: size {record.type.get_size()}, "
          f"align {record.type.get_align()}, {len(layouts)} fields")
    for layout in layouts:
        print(f"  {layout.path}: {layout.describe()}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    layout = sub.add_parser(
        "layout", help="print the offset, size and type of a kernel struct field",
        description="Print where a field lies in a kernel struct as llview build compiles it "
                    "(e.g. task_struct.comm, task_struct.se.vruntime), or every field of a "
                    "struct (task_struct or 'struct task_struct').")
    layout.add_argument("spec", metavar="STRUCT[.FIELD...]")
    layout.add_argument("--kernel", metavar="SPEC",
                        help="kernel profile name or directory (default: the one fetched last)")
    layout.add_argument("--include", action="append", default=[], metavar="HEADER",
                        help="also parse this header, e.g. linux/bpf.h (repeatable)")
    layout.set_defaults(func=cmd_layout)
