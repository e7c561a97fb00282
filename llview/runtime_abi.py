"""The runtime's ABI as the passes need it, read from runtime/include/llview_rt.h.

The header is the one place the contract between the passes and the runtime is
written down; nothing here retypes it. runtime_abi() parses the header with
libclang (the library llview/diagnose.py already loads; the header is small and
self-contained, so this takes milliseconds, once per process) and spells its
declarations as LLVM IR:

    void *__llview_load(const void *, __llview_u64, __llview_u32);
        -> declare ptr @__llview_load(ptr, i64, i32)
    struct __llview_site { const char *file; __llview_u32 line, column; };
        -> %struct.__llview_site = type { ptr, i32, i32 }
    extern const __llview_u32 __llview_nsites;   -> a `constant` of type i32

C types map by their canonical kind: any pointer -> ptr, an integer -> iN of its
size (int -> i32, __llview_u64 -> i64; _Bool -> i1), void -> void, a struct -> %struct.<tag>,
an array -> [N x T]. Anything else (floating point, a struct passed by value...)
is refused when the header is read: the passes have no use for it.

tests/test_runtime_abi.py holds the passes to it: every runtime declaration and
struct type the pipeline emits must be what clang itself makes of the header.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from llview.paths import RUNTIME_DIR, LlviewError

HEADER = RUNTIME_DIR / "include" / "llview_rt.h"

# The header's data symbols and structs the passes emit, by role. Only the names are written
# here; runtime_abi() refuses a header that does not declare each of them.
SITE_STRUCT = "__llview_site"
SITE_TABLE = "__llview_sites"
SITE_COUNT = "__llview_nsites"
KSYM_STRUCT = "__llview_ksym"
KSYM_TABLE = "__llview_ksyms"
KSYM_COUNT = "__llview_nksyms"
KERNEL_RELEASE = "__llview_kernel_release"
IDS_MAIN = "__llview_ids_main"
_NAMED_STRUCTS = (SITE_STRUCT, KSYM_STRUCT)
_NAMED_SYMBOLS = (SITE_TABLE, SITE_COUNT, KSYM_TABLE, KSYM_COUNT, KERNEL_RELEASE, IDS_MAIN)
_INTEGER_KINDS = {"CHAR_U", "UCHAR", "CHAR_S", "SCHAR", "USHORT", "SHORT", "UINT", "INT",
                  "ULONG", "LONG", "ULONGLONG", "LONGLONG"}   # clang.cindex TypeKind names


@dataclass(frozen=True)
class RuntimeFunction:
    name: str
    returns: str              # IR type
    params: tuple[str, ...]   # IR types

    @property
    def declaration(self) -> str:
        return f"declare {self.returns} @{self.name}({', '.join(self.params)})"

    @property
    def function_type(self) -> str:
        """As llvmlite prints a function's value type: `ptr (ptr, i64, i32)`."""
        return f"{self.returns} ({', '.join(self.params)})"


@dataclass(frozen=True)
class RuntimeVariable:
    name: str
    type: str        # IR type; for an array of unknown size (`x[]`), its element type
    constant: bool   # declared const: the passes define it `constant`, else `global`
    unsized_array: bool


@dataclass(frozen=True)
class RuntimeABI:
    functions: dict[str, RuntimeFunction]
    structs: dict[str, tuple[str, ...]]   # tag -> field IR types
    variables: dict[str, RuntimeVariable]

    def function(self, name: str) -> RuntimeFunction:
        found = self.functions.get(name)
        if found is None:
            raise LlviewError(f"internal: the passes call {name}, which {HEADER.name} does "
                              "not declare")
        return found

    def declaration(self, name: str) -> str:
        return self.function(name).declaration

    def struct_body(self, tag: str) -> str:
        """The IR of `struct <tag>`: `{ ptr, i32, i32 }`."""
        return "{ " + ", ".join(self.structs[tag]) + " }"


def struct_type_name(tag: str) -> str:
    return f"%struct.{tag}"


@functools.cache
def runtime_abi(header: Path = HEADER) -> RuntimeABI:
    """The declarations of `header` (llview_rt.h unless told), as IR."""
    from llview.diagnose import cindex

    ci = cindex()
    try:
        tu = ci.Index.create().parse(str(header), args=["-x", "c", "-std=gnu11"])
    except ci.TranslationUnitLoadError as e:
        raise LlviewError(f"libclang could not parse {header}: {e}") from None
    errors = [str(d) for d in tu.diagnostics if d.severity >= ci.Diagnostic.Error]
    if errors:
        raise LlviewError(f"{header} does not compile: " + "; ".join(errors))
    kinds = ci.CursorKind
    functions: dict[str, RuntimeFunction] = {}
    structs: dict[str, tuple[str, ...]] = {}
    variables: dict[str, RuntimeVariable] = {}
    for cursor in tu.cursor.get_children():
        name = cursor.spelling
        where = f"{header.name}: {name}"
        if cursor.kind == kinds.FUNCTION_DECL:
            functions[name] = RuntimeFunction(
                name, _value_type(ci, cursor.result_type, where),
                tuple(_value_type(ci, a.type, where) for a in cursor.get_arguments()))
        elif cursor.kind == kinds.STRUCT_DECL and cursor.is_definition():
            structs[name] = tuple(_ir_type(ci, f.type, f"{where}.{f.spelling}")
                                  for f in cursor.type.get_fields())
        elif cursor.kind == kinds.VAR_DECL:
            ty = cursor.type
            unsized = ty.get_canonical().kind == ci.TypeKind.INCOMPLETEARRAY
            # (the declared type's element: the canonical one drops its const)
            element = ty.get_array_element_type() if unsized else ty
            variables[name] = RuntimeVariable(name, _ir_type(ci, element, where),
                                              element.is_const_qualified(), unsized)
    abi = RuntimeABI(functions, structs, variables)
    missing = [n for n in _NAMED_STRUCTS if n not in structs] + \
              [n for n in _NAMED_SYMBOLS if n not in variables and n not in functions]
    if missing:
        raise LlviewError(f"{header} does not declare {', '.join(missing)}, which the passes "
                          "emit")
    return abi


def _value_type(ci, c_type, where: str) -> str:
    """The IR type of a function's parameter or result (a struct by value has a lowering of its
    own in the C ABI, which the passes do not reproduce)."""
    if c_type.get_canonical().kind == ci.TypeKind.RECORD:
        raise LlviewError(f"{where}: llview's passes cannot pass a struct by value")
    return _ir_type(ci, c_type, where)


def _ir_type(ci, c_type, where: str) -> str:
    ty = c_type.get_canonical()
    kinds = ci.TypeKind
    if ty.kind == kinds.POINTER:
        return "ptr"
    if ty.kind == kinds.VOID:
        return "void"
    if ty.kind == kinds.BOOL:
        return "i1"   # as clang passes a _Bool
    if ty.kind.name in _INTEGER_KINDS:
        return f"i{8 * ty.get_size()}"
    if ty.kind == kinds.RECORD:
        return struct_type_name(ty.get_declaration().spelling)
    if ty.kind == kinds.CONSTANTARRAY:
        return f"[{ty.element_count} x {_ir_type(ci, ty.element_type, where)}]"
    raise LlviewError(f"{where}: llview's passes cannot spell C type '{c_type.spelling}' "
                      "in IR")

