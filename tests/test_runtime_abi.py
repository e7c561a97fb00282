"""The passes speak llview_rt.h: llview.runtime_abi reads the header as clang does, and every
runtime declaration, struct type and runtime-owned global the pipeline emits is what the header
states. clang's own lowering of the header (clang-19 -emit-llvm) is the reference."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from llview.passes import PASSES
from llview.passes.context import CompileError
from llview.paths import REPO, LlviewError
from llview.pipeline import run_passes
from llview.runtime_abi import HEADER, RuntimeABI, runtime_abi

IR_DIR = Path(__file__).parent / "ir"
SUPPLIED = {"_printk", "__rcu_read_lock", "__rcu_read_unlock", "llview_record_begin",
            "llview_field_int", "llview_field_str", "llview_record_end"}
CLANG = "clang-19"


@cache
def clang_lowering() -> tuple[dict[str, str], dict[str, str], dict[str, tuple[str, bool]]]:
    """What clang makes of the header: function name -> type (`ptr (ptr, i64, i32)`), struct
    tag -> body, variable name -> (IR type, declared constant)."""
    abi = runtime_abi()
    names = [*abi.functions, *abi.variables]
    source = (f'#include "{HEADER}"\n'
              "void *const __llview_abi_refs[] = {"
              + ", ".join(f"(void *)&{n}" for n in names) + "};\n")
    done = subprocess.run([CLANG, "-target", "x86_64-pc-linux-gnu", "-S", "-emit-llvm", "-O0",
                           "-x", "c", "-", "-o", "-"], input=source, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    module = _parse(done.stdout)
    functions = {f.name: str(f.global_value_type) for f in module.functions}
    structs = {t.name.removeprefix("struct."): "{ " + ", ".join(map(str, t.elements)) + " }"
               for t in module.struct_types}
    variables = {g.name: (str(g.global_value_type), _is_constant(g))
                 for g in module.global_variables if g.name in abi.variables}
    return functions, structs, variables


def _parse(text: str) -> llvm.ModuleRef:
    """In a context of its own: in the global one, %struct.__llview_site becomes ...site.0."""
    return llvm.parse_assembly(text, context=llvm.create_context())


def _is_constant(g: llvm.ValueRef) -> bool:
    return re.search(r"\b(constant|global)\b", str(g).split(" = ", 1)[1]).group(1) == "constant"


def test_the_header_reads_as_clang_lowers_it() -> None:
    abi = runtime_abi()
    functions, structs, variables = clang_lowering()
    assert {n: f.function_type for n, f in abi.functions.items()} == functions
    assert {t: abi.struct_body(t) for t in abi.structs} == structs
    assert {n: (f"[0 x {v.type}]" if v.unsized_array else v.type, v.constant)
            for n, v in abi.variables.items()} == variables


def test_declarations_are_spelled_as_the_passes_emit_them() -> None:
    abi = runtime_abi()
    assert abi.declaration("__llview_load") == "declare ptr @__llview_load(ptr, i64, i32)"
    assert abi.declaration("__llview_memset") == \
        "declare ptr @__llview_memset(ptr, i32, i64, i32)"
    assert abi.struct_body("__llview_site") == "{ ptr, i32, i32 }"
    assert abi.struct_body("__llview_cache_slot") == "{ i64, ptr }"


def _pipeline_outputs() -> list[str]:
    """The pipeline's output for every golden module that compiles: the whole pipeline (with
    a kernel release, so that global is emitted too) and each pass on its own."""
    outputs = []
    for path in sorted(IR_DIR.glob("*.ll")):
        text = path.read_text()
        for passes in [None, *([name] for name in PASSES)]:
            try:
                out, _ = run_passes(text, supplied=SUPPLIED, passes=passes,
                                    kernel_release="6.1.0-test")
            except CompileError:
                continue  # a golden file about diagnostics
            outputs.append(out)
    return outputs


def test_everything_the_pipeline_emits_is_stated_by_the_header() -> None:
    functions, structs, variables = clang_lowering()
    declared: set[str] = set()
    emitted_globals: set[str] = set()
    for out in _pipeline_outputs():
        module = _parse(out)
        for f in module.functions:
            if f.name.startswith("__llview_"):
                assert str(f.global_value_type) == functions.get(f.name), \
                    f"@{f.name} is not what llview_rt.h declares: {f}"
                if f.is_declaration:
                    declared.add(f.name)
        for t in module.struct_types:
            tag = t.name.removeprefix("struct.")
            if tag.startswith("__llview_"):
                assert "{ " + ", ".join(map(str, t.elements)) + " }" == structs.get(tag), \
                    f"%{t.name} is not llview_rt.h's struct {tag}"
        for g in module.global_variables:
            if g.name.startswith("__llview_") and g.linkage != llvm.Linkage.private:
                want = variables.get(g.name)
                assert want is not None, f"@{g.name} is not declared in llview_rt.h"
                ty = str(g.global_value_type)
                if want[0].startswith("[0 x "):  # the header's x[]: any length of its element
                    ty = re.sub(r"^\[[0-9]+ x ", "[0 x ", ty)
                assert (ty, _is_constant(g)) == want, f"@{g.name} does not match llview_rt.h"
                emitted_globals.add(g.name)
    # the golden files exercise every kind of runtime call and table (else this proves little)
    from llview.passes.guest_loads import STRING_FUNCTIONS
    assert {"__llview_load", "__llview_store_check", *STRING_FUNCTIONS.values()} <= declared
    assert {"__llview_sites", "__llview_nsites", "__llview_ksyms", "__llview_nksyms",
            "__llview_kernel_release"} <= emitted_globals


def test_every_runtime_name_in_the_passes_is_in_the_header() -> None:
    """A name the passes write (a function to declare, a table to emit) must be declared in the
    header; names followed by `.` are the passes' own private globals (@__llview_site_file.0)."""
    abi = runtime_abi()
    known = set(abi.functions) | set(abi.variables) | set(abi.structs)
    sources = [*sorted((REPO / "llview" / "passes").glob("*.py")), REPO / "llview" / "pipeline.py"]
    for source in sources:
        for name in re.findall(r"\b__llview_[a-z0-9_]*[a-z0-9](?![\w.])", source.read_text()):
            assert name in known, f"{source.name} names {name}, which llview_rt.h does not declare"


def test_a_header_the_passes_cannot_spell_is_refused(tmp_path: Path) -> None:
    header = tmp_path / "rt.h"
    header.write_text(HEADER.read_text().replace(
        "int __llview_ids_main(void);", "int __llview_ids_main(void);\n"
        "double __llview_ratio(double x);"))
    with pytest.raises(LlviewError, match="__llview_ratio: .*cannot spell C type 'double'"):
        runtime_abi(header)
    header.write_text(HEADER.read_text().replace("__llview_nksyms", "__llview_ksym_count"))
    with pytest.raises(LlviewError, match="does not declare __llview_nksyms"):
        runtime_abi(header)


def test_runtime_abi_is_read_once() -> None:
    assert runtime_abi() is runtime_abi()
    assert isinstance(runtime_abi(), RuntimeABI)
