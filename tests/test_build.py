"""`llview build` and `llview opt` end to end on the real kernel headers and the real runtime:
the IR the passes leave, the executable (fast path inlined, PIE), the options and the errors."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from llview import runtime_lib
from llview.paths import REPO

PROCESS_LIST = """\
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <llview/ids.h>

int main(void)
{
	struct task_struct *p;

	rcu_read_lock();
	for_each_process(p) {
		llview_record_begin("task");
		llview_field_int("pid", p->pid);
		llview_field_int("ppid", rcu_dereference(p->real_parent)->tgid);
		llview_field_str("comm", p->comm);
		llview_record_end();
	}
	rcu_read_unlock();
	pr_info("%s\\n", linux_banner);
	return 0;
}
"""


def llview(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llview.cli", *args], capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def runtime_dir() -> Path:
    return runtime_lib.ensure_runtime()


@pytest.fixture(scope="module")
def pslist(tmp_path_factory, kernel_profile, runtime_dir) -> dict[str, Path]:
    """The process-list IDS, built once as IR (--emit-llvm) and once as an executable."""
    work = tmp_path_factory.mktemp("build")
    source = work / "pslist.c"
    source.write_text(PROCESS_LIST)
    kernel = ["--kernel", str(kernel_profile.directory)]
    done = llview("build", str(source), "-o", str(work / "pslist.ll"), "--emit-llvm", *kernel)
    assert done.returncode == 0, done.stderr
    done = llview("build", str(source), "-o", str(work / "pslist"), *kernel)
    assert done.returncode == 0, done.stderr
    return {"source": source, "ir": work / "pslist.ll", "exe": work / "pslist"}


def test_emit_llvm_routes_guest_reads_through_the_runtime(pslist):
    ir = pslist["ir"].read_text()
    assert re.search(r"call ptr @__llview_load\(ptr [^,]+, i64 \d+, i32 \d+\)", ir)
    # Kernel globals are resolved at run time, never left for the linker.
    assert not re.search(r"^@init_task = ", ir, re.M)
    assert not re.search(r"^@linux_banner = ", ir, re.M)
    assert re.search(r"^define .*@__llview_ids_main\(", ir, re.M)
    assert not re.search(r"^define .*@main\(", ir, re.M)


def _function_disassembly(exe: Path, function: str) -> str:
    out = subprocess.run(["llvm-objdump-19", "-d", "--no-show-raw-insn", str(exe)],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(rf"^[0-9a-f]+ <{re.escape(function)}>:\n(.*?)(?:\n\n|\Z)", out, re.M | re.S)
    assert match, f"{function} not in {exe}"
    return match[1]


def test_executable_inlines_the_cache_hit_path(pslist):
    main = _function_disassembly(pslist["exe"], "__llview_ids_main")
    calls = re.findall(r"\bcall[q]?\s+\S+\s+<([^>+]+)", main)
    assert "__llview_load_miss" in calls, calls
    assert "__llview_load" not in calls, calls
    symbols = subprocess.run(["llvm-nm-19", str(pslist["exe"])], capture_output=True, text=True,
                             check=True).stdout.split()
    assert "__llview_load" not in symbols  # inlined everywhere, no copy left behind


def test_executable_is_a_pie(pslist):
    header = pslist["exe"].read_bytes()[:18]
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[16:18], "little") == 3  # ET_DYN: position independent


def test_stats_lists_each_pass(kernel_profile, pslist, tmp_path):
    from llview.passes import PASSES

    done = llview("build", str(pslist["source"]), "-o", str(tmp_path / "x.ll"), "--emit-llvm",
                  "--stats", "--kernel", str(kernel_profile.directory))
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["pass", "done", "skipped"]
    names = [row.split()[0] for row in rows]
    assert [n for n in names if n in PASSES] == list(PASSES), names
    # The process list reads guest memory: some pass counted instrumented loads.
    assert any(re.search(r"(^|  |, )[1-9]\d* [^,]*\bloads?\b", row) for row in rows), done.stdout


def test_include_dirs_and_defines_reach_clang(kernel_profile, tmp_path, runtime_dir):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "local.h").write_text("#define LOCAL_VALUE (LLVIEW_TEST_BASE + 1)\n")
    source = tmp_path / "ids.c"
    source.write_text('#include "local.h"\nint main(void)\n{\n\treturn LOCAL_VALUE;\n}\n')
    kernel = ["--kernel", str(kernel_profile.directory)]
    without = llview("build", str(source), "-o", str(tmp_path / "a.ll"), "--emit-llvm", *kernel)
    assert without.returncode == 1
    assert "fatal error: 'local.h' file not found" in without.stderr
    with_dirs = llview("build", str(source), "-o", str(tmp_path / "a.ll"), "--emit-llvm",
                       "-I", str(tmp_path / "inc"), "-D", "LLVIEW_TEST_BASE=41", *kernel)
    assert with_dirs.returncode == 0, with_dirs.stderr
    assert re.search(r"ret i32 42\b", (tmp_path / "a.ll").read_text())


def test_missing_source_is_a_clear_error(tmp_path):
    done = llview("build", str(tmp_path / "nope.c"), "-o", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr == f"llview: error: {tmp_path}/nope.c: no such file\n"


def test_opt_runs_named_passes_on_an_ir_file(kernel_profile, pslist, tmp_path, runtime_dir):
    from llview import frontend

    clang_ir = tmp_path / "clang.ll"
    subprocess.run([frontend.CLANG, *frontend.kernel_flags(kernel_profile), "-O2", "-S",
                    "-emit-llvm", "-o", str(clang_ir), str(pslist["source"])], check=True,
                   capture_output=True)
    assert re.search(r"^@init_task = external", clang_ir.read_text(), re.M)
    done = llview("opt", "--passes", "kernel_symbols", str(clang_ir))
    assert done.returncode == 0, done.stderr
    assert not re.search(r"^@init_task = ", done.stdout, re.M)
    assert "@__llview_load(" not in done.stdout  # guest_loads was not asked for
    done = llview("opt", "--passes", "kernel_symbols,guest_loads", str(clang_ir))
    assert done.returncode == 0, done.stderr
    assert "@__llview_load(" in done.stdout


def test_opt_with_no_input_file_is_a_clear_error(tmp_path):
    done = llview("opt", str(tmp_path / "missing.ll"), "--supplied", "")
    assert done.returncode == 1
    assert done.stderr.startswith(f"llview: error: cannot read {tmp_path}/missing.ll")


def test_repo_pslist_builds(kernel_profile, tmp_path, runtime_dir):
    """The shipped process-list IDS compiles cleanly (no warnings, no diagnostics)."""
    done = llview("build", str(REPO / "ids_programs/pslist.c"), "-o", str(tmp_path / "pslist"),
                  "--kernel", str(kernel_profile.directory))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert (tmp_path / "pslist").stat().st_mode & 0o111


def test_sprintf_family_goes_to_the_runtime(kernel_profile, tmp_path, runtime_dir):
    """snprintf/sprintf are kernel code; the runtime's guest-aware versions are called instead,
    and clang does not turn sprintf(dst, "%s", guest_string) into an uninstrumented strcpy."""
    source = tmp_path / "ids.c"
    source.write_text("""\
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/sched/task.h>

int main(void)
{
	char name[64], copy[32];

	snprintf(name, sizeof(name), "%s-%d", init_task.comm, init_task.pid);
	sprintf(copy, "%s", init_task.comm);
	pr_info("%s %s\\n", name, copy);
	return 0;
}
""")
    done = llview("build", str(source), "-o", str(tmp_path / "ids.ll"), "--emit-llvm",
                  "--kernel", str(kernel_profile.directory))
    assert done.returncode == 0, done.stderr
    ir = (tmp_path / "ids.ll").read_text()
    called = set(re.findall(r"\bcall\b[^@\n]*@([\w.$]+)\(", ir))
    assert {"__llview_snprintf", "__llview_sprintf"} <= called, called
    assert not called & {"snprintf", "sprintf", "strcpy", "stpcpy"}, called


def test_kernel_pid_helpers_link_llview_compat(tmp_path):
    """An IDS calling task_ppid_nr() gets no diagnostic: __task_pid_nr_ns comes from
    kernel_headers/llview/compat.c, linked in (internal) with its guest reads instrumented."""
    source = tmp_path / "ppid.c"
    source.write_text("#include <linux/sched.h>\n#include <linux/sched/task.h>\n"
                      "int main(void)\n{\n\treturn task_ppid_nr(&init_task);\n}\n")
    result = subprocess.run([sys.executable, "-m", "llview.cli", "build", str(source), "-o",
                             str(tmp_path / "ppid.ll"), "--emit-llvm"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ir = (tmp_path / "ppid.ll").read_text()
    body = ir.split("define internal i32 @__llview_task_pid_nr_ns(", 1)[1].split("\n}\n", 1)[0]
    assert "call ptr @__llview_load(" in body
    assert 'c"init_pid_ns\\00"' in ir  # resolved in the guest like any kernel global
