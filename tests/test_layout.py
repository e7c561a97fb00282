"""Struct layouts: clang with llview's flags (the IDS compiler), libclang (`llview layout`) and
gcc-12 (the compiler Debian builds the kernel with) must agree on every offset and size, or an
IDS would read the wrong bytes of guest memory.

Offsets are taken from each compiler the way the kernel's asm-offsets.c does: constants printed
into the assembly output as `->name value`, so nothing is run and no value is hard-coded here.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from llview import frontend, layout

# Structs an IDS walks, with the header that defines them; every field of each is compared.
STRUCTS = {
    "task_struct": "linux/sched.h",
    "signal_struct": "linux/sched/signal.h",
    "cred": "linux/cred.h",
    "mm_struct": "linux/mm_types.h",
    "file": "linux/fs.h",
    "inode": "linux/fs.h",
    "dentry": "linux/dcache.h",
    "module": "linux/module.h",
    "uts_namespace": "linux/utsname.h",
    "pid": "linux/pid.h",
    "list_head": "linux/types.h",
}
ASM_OFFSETS_MACRO = ('#define DEFINE(sym, val) '
                     'asm volatile("\\n.ascii \\"->" #sym " %c0\\"" : : "i" (val))\n')


def _gcc_flags(profile) -> list[str]:
    """llview's flags with gcc's own freestanding headers in place of clang's."""
    clang_include = str(frontend.clang_resource_dir() / "include")
    gcc_include = subprocess.run(["gcc-12", "-print-file-name=include"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    return [gcc_include if f == clang_include else f for f in frontend.kernel_flags(profile)]


def compiled_constants(compiler: str, flags: list[str], headers: list[str],
                       constants: dict[str, str], tmp_path: Path) -> dict[str, int]:
    """Compiles `name -> C constant expression` with the compiler and reads the values back."""
    source = tmp_path / f"offsets-{compiler}.c"
    lines = [f"#include <{h}>" for h in ["linux/stddef.h", *headers]]
    lines.append(ASM_OFFSETS_MACRO + "void llview_offsets(void)\n{")
    lines += [f"\tDEFINE({name}, {expr});" for name, expr in constants.items()]
    source.write_text("\n".join(lines) + "\n}\n")
    done = subprocess.run([compiler, *flags, "-S", "-o", "-", str(source)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"{compiler} failed: {shlex.join([compiler, *flags])}\n" \
                                 f"{done.stderr[-3000:]}"
    values = {m[1]: int(m[2]) for m in re.finditer(r'"->(\S+) (-?\d+)"', done.stdout)}
    assert set(values) == set(constants), f"{compiler} printed {len(values)} of {len(constants)}"
    return values


@pytest.fixture(scope="module")
def layout_tu(kernel_profile):
    return layout.parse_headers(kernel_profile, sorted(set(STRUCTS.values())))


def _field_constants(tu) -> dict[str, str]:
    """offsetof/sizeof expressions for every named, non-bitfield field of STRUCTS."""
    constants = {}
    for struct in STRUCTS:
        _, fields = layout.lookup(tu, struct)
        assert len(fields) > 1, f"{struct}: libclang found {len(fields)} fields"
        constants[f"{struct}.SIZE"] = f"sizeof(struct {struct})"
        for f in fields:
            if f.bit_width is not None:
                continue
            member = f.path.split(".", 1)[1]
            constants[f"{f.path}.offset"] = f"offsetof(struct {struct}, {member})"
            if f.size_bytes >= 0:
                constants[f"{f.path}.size"] = f"sizeof(((struct {struct} *)0)->{member})"
    return constants


def test_clang_and_gcc_agree_on_kernel_struct_layouts(kernel_profile, layout_tu, tmp_path):
    constants = _field_constants(layout_tu)
    assert len(constants) > 500
    headers = sorted(set(STRUCTS.values()))
    clang = compiled_constants(frontend.CLANG, frontend.kernel_flags(kernel_profile), headers,
                               constants, tmp_path)
    gcc = compiled_constants("gcc-12", _gcc_flags(kernel_profile), headers, constants, tmp_path)
    differ = {k: (clang[k], gcc[k]) for k in constants if clang[k] != gcc[k]}
    assert not differ, f"clang and gcc disagree (clang, gcc): {differ}"


def test_libclang_layouts_match_gcc(kernel_profile, layout_tu, tmp_path):
    """What `llview layout` reports (libclang) is what gcc built the kernel with."""
    constants = _field_constants(layout_tu)
    gcc = compiled_constants("gcc-12", _gcc_flags(kernel_profile), sorted(set(STRUCTS.values())),
                             constants, tmp_path)
    for struct in STRUCTS:
        record, fields = layout.lookup(layout_tu, struct)
        assert record.type.get_size() == gcc[f"{struct}.SIZE"], struct
        for f in fields:
            if f.bit_width is not None:
                continue
            assert f.offset_bits % 8 == 0 and f.offset_bits // 8 == gcc[f"{f.path}.offset"], f.path
            if f.size_bytes >= 0:
                assert f.size_bytes == gcc[f"{f.path}.size"], f.path


def _llview(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llview.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("spec", ["task_struct.comm", "task_struct.tasks", "task_struct.pid",
                                  "task_struct.thread_group", "task_struct.se.vruntime"])
def test_layout_command_matches_gcc_offsetof(kernel_profile, spec, tmp_path):
    done = _llview("layout", spec, "--kernel", str(kernel_profile.directory))
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(rf"{re.escape(spec)}: offset (\d+), size (\d+), type (.+)\n",
                         done.stdout)
    assert match, done.stdout
    struct, member = spec.split(".", 1)
    gcc = compiled_constants(
        "gcc-12", _gcc_flags(kernel_profile), ["linux/sched.h"],
        {"off": f"offsetof(struct {struct}, {member})",
         "size": f"sizeof(((struct {struct} *)0)->{member})"}, tmp_path)
    assert (int(match[1]), int(match[2])) == (gcc["off"], gcc["size"])
    if spec == "task_struct.comm":
        assert match[3] == f"char[{gcc['size']}]"


def test_layout_of_whole_struct_lists_every_field(kernel_profile):
    done = _llview("layout", "struct list_head", "--kernel", str(kernel_profile.directory))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "struct list_head: size 16, align 8, 2 fields",
        "  list_head.next: offset 0, size 8, type struct list_head *",
        "  list_head.prev: offset 8, size 8, type struct list_head *",
    ]


@pytest.mark.parametrize("spec, message", [
    ("task_struct.comms",
     "task_struct (struct task_struct) has no field 'comms'; did you mean comm?"),
    ("task_strct.comm", "no struct or union 'task_strct' in the headers searched; did you mean "
                        "task_struct"),
    ("task_struct.comm.len", "task_struct.comm is not a struct or union (type char[16])"),
])
def test_layout_errors_name_what_is_wrong(kernel_profile, spec, message):
    done = _llview("layout", spec, "--kernel", str(kernel_profile.directory))
    assert done.returncode == 1
    assert done.stderr.startswith(f"llview: error: {message}"), done.stderr
    assert "Traceback" not in done.stderr
