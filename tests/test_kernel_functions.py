"""The kernel's own library code called from an IDS (llview/kernel_functions.py): the readers of
lib/rbtree.c, lib/xarray.c, lib/maple_tree.c (from the profile's Debian linux-source package)
build and are linked in, only when called, with their guest reads instrumented; writers that
allocate are compile errors at the IDS's call site; a profile without the source says how to
get it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llview import kernel_functions, runtime_lib
from llview.kernel import profile as kprofile
from llview.paths import REPO

READERS = """\
#include <linux/maple_tree.h>
#include <linux/mm_types.h>
#include <linux/rbtree.h>
#include <linux/sched/task.h>
#include <linux/sched.h>
#include <linux/xarray.h>
#include <llview/ids.h>

extern struct rb_root llview_test_tree;
extern struct xarray llview_test_array;

int main(void)
{
	MA_STATE(mas, &init_task.active_mm->mm_mt, 0, 0);
	struct vm_area_struct *vma;
	struct rb_node *node;
	long nodes = 0, vmas = 0;

	for (node = rb_first(&llview_test_tree); node; node = rb_next(node))
		nodes++;
	mas_for_each(&mas, vma, ULONG_MAX)
		vmas++;
	llview_field_int("nodes", nodes);
	llview_field_int("vmas", vmas);
	llview_field_hex("entry", (unsigned long)xa_load(&llview_test_array, 1));
	return 0;
}
"""

WRITER = """\
#include <linux/maple_tree.h>
#include <linux/mm_types.h>
#include <linux/sched/task.h>
#include <llview/ids.h>

int main(void)
{
	MA_STATE(mas, &init_task.active_mm->mm_mt, 0, 0);

	mas_store(&mas, NULL);
	return 0;
}
"""


def llview(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llview.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def runtime_dir() -> Path:
    return runtime_lib.ensure_runtime()


def emit_llvm(source: Path, kernel: Path, out: Path) -> str:
    done = llview("build", str(source), "-o", str(out), "--emit-llvm", "--kernel", str(kernel))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return out.read_text()


def body_of(ir: str, function: str) -> str:
    match = re.search(rf"^define internal [^@\n]*@{function}\(.*?\n}}\n", ir, re.M | re.S)
    assert match, f"{function} is not defined (internal) in the IDS module"
    return match[0]


def defined(ir: str) -> set[str]:
    return set(re.findall(r"^define [^@\n]*@([\w.$]+)\(", ir, re.M))


def test_profile_has_the_kernel_library_source(kernel_profile):
    assert kprofile.has_kernel_library(kernel_profile)
    meta = json.loads((kernel_profile.directory / kprofile.PROFILE_FILE).read_text())
    assert meta["kernel_source"].startswith("root/usr/src/linux-source-")
    # The same kernel version as the image: the file Debian built the running kernel from.
    source = kernel_profile.kernel_source / "lib/maple_tree.c"
    assert "void *mas_find(struct ma_state *mas, unsigned long max)" in source.read_text()


def test_readers_build_with_the_kernels_own_code(kernel_profile, tmp_path, runtime_dir):
    source = tmp_path / "readers.c"
    source.write_text(READERS)
    ir = emit_llvm(source, kernel_profile.directory, tmp_path / "readers.ll")
    assert {"rb_first", "rb_next", "xa_load", "mas_find"} <= defined(ir)
    for function in ("rb_next", "xas_load", "mas_find", "mas_next_entry"):
        # Compiled from lib/*.c, then instrumented by the passes like the IDS's own code.
        assert "call ptr @__llview_load(" in body_of(ir, function)
    # What the IDS does not reach is gone: no writer, no allocator, nothing of lib/idr.c.
    assert not defined(ir) & {"mas_store", "mas_alloc_nodes", "xa_store", "rb_erase",
                              "idr_find"}
    assert not re.search(r"^declare .*@kmem_cache_alloc", ir, re.M)
    files = set(re.findall(r'c"[^"]*/(lib/[\w-]+\.c)\\00"', ir))  # the site table's files
    assert files == {"lib/rbtree.c", "lib/xarray.c", "lib/maple_tree.c"}


ITERATORS = """\
#include <linux/idr.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/xarray.h>
#include <llview/ids.h>

extern struct xarray llview_test_array;

int main(void)
{
	unsigned long index;
	struct pid *pid;
	void *entry;
	int nr;

	idr_for_each_entry(&init_pid_ns.idr, pid, nr)
		llview_field_int("level", pid->level);
	xa_for_each(&llview_test_array, index, entry)
		llview_field_hex("entry", (unsigned long)entry);
	return 0;
}
"""


def test_idr_and_xarray_iterators_build(kernel_profile, tmp_path, runtime_dir):
    """idr_get_next() (through the radix tree) and xa_find(): their x86 bitops and WARN_ON()s
    compile to C (kernel_headers/llview/kernel_library.h), so nothing is refused."""
    source = tmp_path / "iterators.c"
    source.write_text(ITERATORS)
    ir = emit_llvm(source, kernel_profile.directory, tmp_path / "iterators.ll")
    assert {"idr_get_next", "radix_tree_next_chunk", "xa_find", "xa_find_after"} <= defined(ir)
    assert "call ptr @__llview_load(" in body_of(ir, "radix_tree_next_chunk")
    assert " asm " not in ir.replace('asm sideeffect "", "~{memory}', "")


def test_for_each_vma_builds(kernel_profile, tmp_path, runtime_dir):
    """ids_programs/vmas.c: for_each_vma() is vma_next(), an inline calling mas_find()."""
    done = llview("build", str(REPO / "ids_programs/vmas.c"), "-o", str(tmp_path / "vmas"),
                  "--kernel", str(kernel_profile.directory))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    symbols = subprocess.run(["llvm-nm-19", str(tmp_path / "vmas")], capture_output=True,
                             text=True, check=True).stdout
    assert not re.search(r" [TtWw] mas_store\b", symbols)


def test_build_calling_none_links_none(kernel_profile, tmp_path, runtime_dir):
    ir = emit_llvm(REPO / "ids_programs/pslist.c", kernel_profile.directory,
                   tmp_path / "pslist.ll")
    assert defined(ir) == {"__llview_ids_main"}
    files = re.findall(r'!DIFile\(filename: "([^"]*)"', ir)
    assert files and not [f for f in files if "/linux-source-" in f], files


def test_library_compiled_once_and_only_when_needed(kernel_profile, tmp_path, runtime_dir):
    """In an empty cache: a build calling none of the supplied functions compiles none of them;
    the first build calling one compiles them (into the cache), the next reuses them."""
    home = tmp_path / "home"
    env = {"LLVIEW_HOME": str(home)}
    kernel = ["--kernel", str(kernel_profile.directory)]
    cache = home / "kernel_functions"

    def build(name: str) -> None:
        done = subprocess.run([sys.executable, "-m", "llview.cli", "build",
                               str(REPO / f"ids_programs/{name}.c"), "-o", str(tmp_path / name),
                               *kernel], capture_output=True, text=True, timeout=300,
                              env={**os.environ, **env})
        assert done.returncode == 0, done.stderr

    build("pslist")
    assert not cache.exists() or not any(cache.iterdir())
    build("vmas")
    compiled = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert any(name.startswith("maple_tree-") and name.endswith(".ll") for name in compiled)
    build("vmas")
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == compiled


def test_link_leaves_a_module_calling_none_as_it_is(kernel_profile):
    ir = ('define i32 @main() {\n  %1 = call i32 @llview_field_int(ptr null, i64 1)\n'
          '  ret i32 0\n}\ndeclare i32 @llview_field_int(ptr, i64)\n')
    assert kernel_functions.link(ir, kernel_profile, [], runtime_lib.supplied_symbols()) is ir


def position(text: str, needle: str) -> tuple[int, int]:
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def test_allocating_writer_is_an_error_at_the_ids_call_site(kernel_profile, tmp_path,
                                                            runtime_dir):
    source = tmp_path / "writer.c"
    source.write_text(WRITER)
    done = llview("build", str(source), "-o", str(tmp_path / "writer"),
                  "--kernel", str(kernel_profile.directory))
    assert done.returncode == 1
    line, column = position(WRITER, "mas_store(")
    head, *notes, summary = done.stderr.splitlines()
    assert re.fullmatch(rf"{re.escape(str(source))}:{line}:{column}: error: call to kernel "
                        r"function 'mas_store', which cannot run outside the kernel: it calls "
                        r"'\w+', which has no body outside the kernel", head), done.stderr
    assert notes[0].startswith(f"{source}:{line}:{column}: note: via kernel function "
                               "'mas_store' (lib/maple_tree.c:")
    # Every allocator on the way is named somewhere in the error.
    assert "kmem_cache_alloc" in done.stderr
    assert summary == "1 error generated."
    assert not (tmp_path / "writer").exists()


def test_writer_behind_an_inline_helper_names_both(kernel_profile, tmp_path, runtime_dir):
    text = ("#include <linux/xarray.h>\n#include <llview/ids.h>\n\n"
            "extern struct xarray llview_test_array;\n\nint main(void)\n{\n"
            "\txa_store_bh(&llview_test_array, 1, NULL, GFP_KERNEL);\n\treturn 0;\n}\n")
    source = tmp_path / "inline.c"
    source.write_text(text)
    done = llview("build", str(source), "-o", str(tmp_path / "inline"),
                  "--kernel", str(kernel_profile.directory))
    assert done.returncode == 1
    line, column = position(text, "xa_store_bh(")
    where = f"{source}:{line}:{column}"
    assert f"{where}: error: call to kernel function '__xa_store', which cannot run outside " \
           "the kernel: it " in done.stderr
    assert re.search(rf"^{re.escape(where)}: note: via inline function 'xa_store_bh' "
                     r"\(include/linux/xarray\.h:\d+\)\n"
                     rf"{re.escape(where)}: note: via kernel function '__xa_store' "
                     r"\(lib/xarray\.c:\d+\)$", done.stderr, re.M), done.stderr


def test_profile_without_the_library_says_how_to_get_it(kernel_profile, tmp_path, runtime_dir):
    """A profile fetched before the kernel library was needed: what needs it is an error that
    names `llview kernel fetch` (which adds it); what does not still builds."""
    meta = kernel_profile.to_json()
    del meta["kernel_source"]
    for key in ("root", "vmlinuz", "config", "headers", "headers_common", "modules"):
        meta[key] = str(getattr(kernel_profile, key))  # absolute: this profile lives elsewhere
    old = tmp_path / "old-profile"
    old.mkdir()
    (old / kprofile.PROFILE_FILE).write_text(json.dumps(meta))
    assert not kprofile.has_kernel_library(kprofile.load_profile(str(old)))
    done = llview("build", str(REPO / "ids_programs/vmas.c"), "-o", str(tmp_path / "vmas"),
                  "--kernel", str(old))
    assert done.returncode == 1
    assert "error: call to kernel function 'mas_find', which has no body outside the kernel" \
        in done.stderr
    assert f"note: kernel profile {kernel_profile.release} has no kernel library source " \
        in done.stderr
    assert "`llview kernel fetch` adds it" in done.stderr
    done = llview("build", str(REPO / "ids_programs/pslist.c"), "-o", str(tmp_path / "pslist"),
                  "--kernel", str(old))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("release, package", [("6.1.0-57-amd64", "linux-source-6.1"),
                                              ("6.12.9-1-cloud-amd64", "linux-source-6.12")])
def test_kernel_source_package_name(release, package):
    assert kprofile.kernel_source_package(release) == package


def test_profile_json_records_the_kernel_source(tmp_path):
    root = tmp_path / "p" / "root"
    for part in ("boot", "usr/src/linux-headers-9.8.0-7-amd64/include",
                 "usr/src/linux-headers-9.8.0-7-common/include", "lib/modules/9.8.0-7-amd64",
                 "usr/src/linux-source-9.8/lib"):
        (root / part).mkdir(parents=True)
    (root / "boot/vmlinuz-9.8.0-7-amd64").write_bytes(b"MZ")
    (root / "boot/config-9.8.0-7-amd64").write_text("CONFIG_X=y\n")
    found = kprofile.profile_from_root(root, directory=tmp_path / "p", version="9.8.1-1")
    found.kernel_source = root / "usr/src/linux-source-9.8"
    (tmp_path / "p" / kprofile.PROFILE_FILE).write_text(json.dumps(found.to_json()))
    assert found.to_json()["kernel_source"] == "root/usr/src/linux-source-9.8"
    loaded = kprofile.load_profile(str(tmp_path / "p"))
    assert loaded.kernel_source == found.kernel_source.resolve()
    assert not kprofile.has_kernel_library(loaded)  # the directory, but not the files
    for name in kernel_functions.KERNEL_LIBRARY_FILES:
        (loaded.kernel_source / name).write_text("/* */\n")
    assert kprofile.has_kernel_library(loaded)


def test_a_source_that_does_not_compile_is_named_not_fatal(kernel_profile, tmp_path,
                                                           monkeypatch):
    """Another kernel's lib/*.c may not compile with llview's flags: its functions are then
    not supplied, the others still are, and the error says why."""
    from llview import frontend

    monkeypatch.setenv("LLVIEW_HOME", str(tmp_path / "home"))
    broken = tmp_path / "lib" / "broken.c"
    broken.parent.mkdir()
    broken.write_text("int broken_reader(void) { return no_such_thing; }\n")
    sources = [kernel_functions.SupplySource("lib/broken.c", broken),
               kernel_functions.SupplySource("lib/rbtree.c",
                                             kernel_profile.kernel_source / "lib/rbtree.c",
                                             kernel_functions.LIBRARY_PRELUDE)]
    flags = frontend.kernel_flags(kernel_profile)
    for _ in range(2):  # compiled, then from the cache
        functions = kernel_functions.KernelFunctions(
            kernel_functions.compile_sources(sources, flags), runtime_lib.supplied_symbols())
        assert "rb_next" in functions.provider and "broken_reader" not in functions.provider
        [failure] = functions.failures()
        assert failure.startswith("lib/broken.c does not compile against this kernel's headers")
        assert "use of undeclared identifier 'no_such_thing'" in failure
