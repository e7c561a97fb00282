"""Source-level call checks (llview/diagnose.py) on IDS programs compiled against the real kernel
headers: calls that reach kernel code with no body, or go through a function pointer, are errors
at the IDS call site in clang's format; what the runtime supplies and dead code are not.

Most tests run the front end in-process with an explicit set of supplied functions, so they
do not depend on what the runtime happens to define; the CLI tests use the real runtime.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from llview import build, frontend

# What the checks are told the runtime supplies, for the in-process tests.
SUPPLIED = {"_printk", "__rcu_read_lock", "__rcu_read_unlock", "llview_record_begin",
            "llview_field_int", "llview_field_str", "llview_record_end"}
HEADERS = """\
#include <linux/delay.h>
#include <linux/printk.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <llview/ids.h>
"""


def check(profile, tmp_path: Path, body: str, supplied: set[str] = SUPPLIED,
          name: str = "ids.c", precompiled: bool = True) -> tuple[build.FrontEndResult, str]:
    """The front end of `llview build` (clang, libclang, call checks) on HEADERS + body."""
    source = tmp_path / name
    text = HEADERS + body
    source.write_text(text)
    flags = frontend.kernel_flags(profile)
    pch = frontend.precompiled_preamble(text, flags, profile) if precompiled else []
    assert bool(pch) == precompiled
    result = build.front_end(source, flags, lambda: supplied,
                             [profile.headers_common, profile.headers], pch=pch)
    return result, text


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based line and byte column of the first `needle` in `text` (as clang counts them)."""
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def test_call_to_kernel_function_without_body_is_an_error_at_the_call(kernel_profile, tmp_path):
    result, text = check(kernel_profile, tmp_path, """
int main(void)
{
	pr_info("before\\n");
	schedule();
	return 0;
}
""")
    assert result.ir_text is not None, result.clang_messages
    line, col = position(text, "schedule();")
    assert [str(d) for d in result.diagnostics] == [
        f"{tmp_path}/ids.c:{line}:{col}: error: call to kernel function 'schedule', which has "
        "no body outside the kernel"]


def test_call_through_inline_function_names_the_chain(kernel_profile, tmp_path):
    result, text = check(kernel_profile, tmp_path, """
int main(void)
{
	ssleep(1);
	return 0;
}
""")
    line, col = position(text, "ssleep(1)")
    [diagnostic] = result.diagnostics
    assert (diagnostic.line, diagnostic.column) == (line, col)
    assert diagnostic.message == \
        "call to kernel function 'msleep', which has no body outside the kernel"
    [note] = diagnostic.notes
    # The note names the header line inside ssleep() that calls msleep().
    header = kernel_profile.headers_common / "include/linux/delay.h"
    lines = header.read_text().splitlines()
    start = next(i for i, s in enumerate(lines) if re.match(r"static inline void ssleep\(", s))
    call_line = next(i for i in range(start, len(lines)) if "msleep(" in lines[i]) + 1
    assert str(note) == (f"{tmp_path}/ids.c:{line}:{col}: note: via inline function 'ssleep' "
                         f"(include/linux/delay.h:{call_line})")


def test_call_through_function_pointer_read_from_a_task(kernel_profile, tmp_path):
    result, text = check(kernel_profile, tmp_path, """
int main(void)
{
	struct restart_block *rb = &init_task.restart_block;

	return (int)rb->fn(rb);
}
""")
    line, col = position(text, "rb->fn(rb)")
    [diagnostic] = result.diagnostics
    assert (diagnostic.line, diagnostic.column) == (line, col)
    assert diagnostic.message.startswith("call through function pointer 'fn'")


def test_every_error_is_reported_and_supplied_calls_are_not(kernel_profile, tmp_path):
    result, text = check(kernel_profile, tmp_path, """
extern int helper_nobody_defines(int);

int main(void)
{
	struct task_struct *p;

	rcu_read_lock();
	for_each_process(p)
		pr_info("%d %s\\n", p->pid, p->comm);
	rcu_read_unlock();
	msleep(1);
	return helper_nobody_defines(2);
}
""")
    assert [(d.line, d.column, d.message) for d in result.diagnostics] == [
        (*position(text, "msleep(1)"),
         "call to kernel function 'msleep', which has no body outside the kernel"),
        (*position(text, "helper_nobody_defines(2)"),
         "call to function 'helper_nobody_defines', which is declared but never defined"),
    ]


def test_rcu_read_lock_needs_the_runtime_to_supply_its_kernel_half(kernel_profile, tmp_path):
    body = """
int main(void)
{
	rcu_read_lock();
	rcu_read_unlock();
	return 0;
}
"""
    result, _ = check(kernel_profile, tmp_path, body, supplied=SUPPLIED - {"__rcu_read_lock"})
    assert [d.message for d in result.diagnostics] == [
        "call to kernel function '__rcu_read_lock', which has no body outside the kernel"]
    assert result.diagnostics[0].notes[0].message.startswith("via inline function 'rcu_read_lock'")


def test_dead_calls_and_own_functions_are_not_errors(kernel_profile, tmp_path):
    result, _ = check(kernel_profile, tmp_path, """
static int depth(const struct task_struct *t)
{
	int n = 0;

	while (t != &init_task && n < 100) {
		t = t->real_parent;
		n++;
	}
	return n;
}

int main(void)
{
	if (IS_ENABLED(CONFIG_LLVIEW_NO_SUCH_OPTION))
		schedule();
	return depth(&init_task);
}
""")
    assert result.ir_text is not None, result.clang_messages
    assert result.diagnostics == []


def test_llview_api_function_missing_from_runtime(kernel_profile, tmp_path):
    result, text = check(kernel_profile, tmp_path, """
int main(void)
{
	llview_alert("odd task %d", 1);
	return 0;
}
""")
    assert [(d.line, d.column, d.message) for d in result.diagnostics] == [
        (*position(text, "llview_alert("),
         "call to llview function 'llview_alert', which the runtime does not provide")]


def test_warnings_come_from_the_ids_file_only(kernel_profile, tmp_path):
    result, text = check(kernel_profile, tmp_path, """
int main(void)
{
	int unused_variable;

	pr_info("%d\\n", "not a number");
	return 0;
}
""")
    warnings = [line for line in result.clang_messages.splitlines() if ": warning: " in line]
    assert len(warnings) == 2, result.clang_messages
    assert all(w.startswith(f"{tmp_path}/ids.c:") for w in warnings), warnings
    assert any("unused_variable" in w for w in warnings)
    assert any("-Wformat" in w for w in warnings)


def _llview_build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llview.cli", "build", *args],
                          capture_output=True, text=True, timeout=120)


def test_build_reports_clang_errors_verbatim(kernel_profile, tmp_path):
    source = tmp_path / "broken.c"
    source.write_text(HEADERS + "int main(void)\n{\n\treturn init_task.no_such_field\n}\n")
    done = _llview_build(str(source), "-o", str(tmp_path / "out"),
                         "--kernel", str(kernel_profile.directory))
    assert done.returncode == 1
    line = HEADERS.count("\n") + 3
    assert f"{source}:{line}:" in done.stderr
    assert re.search(rf"^{re.escape(str(source))}:{line}:\d+: error: no member named "
                     "'no_such_field' in 'struct task_struct'$", done.stderr, re.M), done.stderr
    assert "error: expected ';'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("call, callee", [("schedule()", "schedule"), ("msleep(1)", "msleep"),
                                          ("ssleep(1)", "msleep")])
def test_build_fails_on_call_without_body(kernel_profile, tmp_path, call, callee):
    source = tmp_path / "ids.c"
    text = HEADERS + f"int main(void)\n{{\n\t{call};\n\treturn 0;\n}}\n"
    source.write_text(text)
    done = _llview_build(str(source), "-o", str(tmp_path / "out"),
                         "--kernel", str(kernel_profile.directory))
    line, col = position(text, call)
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"{source}:{line}:{col}: error: call to kernel function '{callee}', which has no body "
        "outside the kernel\n"), done.stderr
    assert done.stderr.endswith("1 error generated.\n")
    assert not (tmp_path / "out").exists()



def test_call_inside_a_macro_argument_points_at_the_argument(kernel_profile, tmp_path):
    """As clang does: the call spelled inside pr_info(...)'s arguments, not pr_info itself;
    a call made by a macro's own body (get_task_comm) points at the macro's use."""
    result, text = check(kernel_profile, tmp_path, """
int main(void)
{
	char comm[TASK_COMM_LEN];

	pr_info("%d\\n", idle_cpu(task_cpu(&init_task)));
	get_task_comm(comm, &init_task);
	return 0;
}
""")
    assert [(d.line, d.column, d.message) for d in result.diagnostics] == [
        (*position(text, "idle_cpu("),
         "call to kernel function 'idle_cpu', which has no body outside the kernel"),
        (*position(text, "get_task_comm("),
         "call to kernel function '__get_task_comm', which has no body outside the kernel"),
    ]


def test_precompiled_preamble_changes_nothing(kernel_profile, tmp_path):
    body = """
int main(void)
{
	struct task_struct *p;
	int unused;

	for_each_process(p)
		pr_info("%d %s\\n", task_tgid_vnr(p), p->comm);
	ssleep(1);
	return 0;
}
"""
    with_pch, _ = check(kernel_profile, tmp_path, body, name="a.c", precompiled=True)
    without, _ = check(kernel_profile, tmp_path, body, name="a.c", precompiled=False)
    assert len(with_pch.diagnostics) == 2
    assert [str(d) for d in with_pch.diagnostics] == [str(d) for d in without.diagnostics]
    assert with_pch.clang_messages == without.clang_messages
    assert "unused" in with_pch.clang_messages
    assert with_pch.ir_text == without.ir_text


@pytest.mark.parametrize("text, includes", [
    ("/* banner\n * more */\n#include <linux/sched.h>\n// x\n\n#include <llview/ids.h> // api\n"
     "int x;\n#include <linux/fs.h>\n", ["#include <linux/sched.h>", "#include <llview/ids.h>"]),
    ('#define pr_fmt(fmt) "ids: " fmt\n#include <linux/printk.h>\n', []),
    ('#include <linux/sched.h>\n#include "local.h"\n#include <linux/fs.h>\n',
     ["#include <linux/sched.h>"]),
    ("#include <linux/sched.h> /* unterminated\n#include <linux/fs.h>\n", []),
    ("#ifdef X\n#include <linux/sched.h>\n#endif\n", []),
])
def test_preamble_is_the_leading_run_of_system_includes(text, includes):
    assert frontend.preamble_includes(text) == includes
