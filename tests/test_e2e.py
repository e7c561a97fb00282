"""End to end on the real guest: `llview build` an IDS program, run it against the host-side
agent over encrypted TCP, and compare what it prints with the guest's own view of itself
(`llview vm exec`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llview.paths import REPO

pytestmark = pytest.mark.guest

IDS_DIR = REPO / "ids_programs"


def llview_build(source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llview.cli", "build", str(source), "-o",
                           str(out), *extra], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def ids_binaries(tmp_path_factory) -> dict[str, Path]:
    out_dir = tmp_path_factory.mktemp("ids")
    built = {}
    for name in ("os_version", "pslist"):
        out = out_dir / name
        result = llview_build(IDS_DIR / f"{name}.c", out)
        assert result.returncode == 0, result.stderr
        built[name] = out
    return built


def run_ids(binary: Path, agent_url: str, key_file: Path, *extra: str,
            check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(binary), "--agent", agent_url, "--key", str(key_file), *extra],
                            capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def guest_out(guest, command: str) -> str:
    rc, out = guest.exec(command)
    assert rc == 0, f"{command!r} failed in the guest: {out}"
    return out


def guest_processes(guest) -> dict[int, tuple[int, str]]:
    """pid -> (ppid, comm) as the guest's /proc shows them."""
    out = guest_out(guest, "for f in /proc/[0-9]*/stat; do cat $f 2>/dev/null; echo; done")
    procs = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        pid, rest = line.split(" (", 1)
        comm, fields = rest.rsplit(") ", 1)
        procs[int(pid)] = (int(fields.split()[1]), comm)
    return procs


def test_os_version_equals_proc_version(guest, ids_binaries, agent_url, key_file):
    result = run_ids(ids_binaries["os_version"], agent_url, key_file)
    assert result.stdout.strip() == guest_out(guest, "cat /proc/version").strip()


def test_os_version_json_fields(guest, ids_binaries, agent_url, key_file):
    result = run_ids(ids_binaries["os_version"], agent_url, key_file, "--json")
    record = json.loads(result.stdout)
    assert record["release"] == guest_out(guest, "uname -r").strip()
    assert record["machine"] == "x86_64"
    assert record["banner"].startswith(f"Linux version {record['release']} ")


def parse_text_tasks(stdout: str) -> dict[int, tuple[int, str]]:
    tasks = {}
    for line in stdout.splitlines():
        fields = dict(part.split("=", 1) for part in line.split(" ", 2))
        tasks[int(fields["pid"])] = (int(fields["ppid"]), fields["comm"])
    return tasks


TASK_COMM_LEN = 16


def same_task(proc_view: tuple[int, str], ids_view: tuple[int, str] | None) -> bool:
    """Whether the IDS's (ppid, task->comm) agrees with /proc's (ppid, name).

    /proc prints more than task->comm for kernel threads (proc_task_name): a kthread's full
    name where comm holds its first 15 bytes, and a kworker's current workqueue after a '-'.
    """
    if ids_view is None or ids_view[0] != proc_view[0]:
        return False
    name, comm = proc_view[1], ids_view[1]
    if name == comm:
        return True
    truncated = len(comm) == TASK_COMM_LEN - 1 and name.startswith(comm)
    kworker = comm.startswith("kworker/") and name.startswith(comm + "-")
    return truncated or kworker


def test_pslist_equals_guest_view(guest, ids_binaries, agent_url, key_file):
    before = guest_processes(guest)
    result = run_ids(ids_binaries["pslist"], agent_url, key_file)
    after = guest_processes(guest)
    seen = parse_text_tasks(result.stdout)

    # Processes present and unchanged in both guest snapshots must be listed exactly.
    stable = {pid: v for pid, v in before.items() if after.get(pid) == v}
    assert len(stable) > 200, "the test guest should run about 250 tasks"
    mismatched = {pid: (v, seen.get(pid)) for pid, v in stable.items()
                  if not same_task(v, seen.get(pid))}
    assert not mismatched
    # And the IDS must not invent tasks: anything it lists existed in one snapshot
    # (the exec loop's own short-lived shells come and go between them).
    invented = set(seen) - set(before) - set(after)
    assert len(invented) <= 2, f"tasks the guest never showed: {invented}"
    assert seen[1][1] == before[1][1]


def test_pslist_json_matches_text(ids_binaries, agent_url, key_file):
    text = parse_text_tasks(run_ids(ids_binaries["pslist"], agent_url, key_file).stdout)
    records = [json.loads(line) for line in
               run_ids(ids_binaries["pslist"], agent_url, key_file, "--json").stdout.splitlines()]
    assert all(r["kind"] == "task" for r in records)
    as_json = {r["pid"]: (r["ppid"], r["comm"]) for r in records}
    common = set(text) & set(as_json)
    assert len(common) > 200
    assert all(text[pid] == as_json[pid] for pid in common)


def test_read_limit_ends_a_runaway_scan(ids_binaries, agent_url, key_file):
    result = run_ids(ids_binaries["pslist"], agent_url, key_file, "--max-reads", "50",
                     check=False)
    assert result.returncode != 0
    assert "read limit" in result.stderr
    assert "pslist.c:" in result.stderr


BAD_ADDRESS = """\
#include <linux/printk.h>
int main(void)
{
	const unsigned long *hole = (const unsigned long *)0xffffffffe0000000UL;
	pr_info("%lu\\n", *hole);
	return 0;
}
"""

GUEST_STORE = """\
#include <linux/sched/task.h>
int main(void)
{
	struct task_struct *first = list_first_entry(&init_task.tasks, struct task_struct, tasks);
	first->pid = 4242;
	return 0;
}
"""


def test_unmapped_address_names_address_and_line(tmp_path, agent_url, key_file):
    source = tmp_path / "bad_read.c"
    source.write_text(BAD_ADDRESS)
    built = llview_build(source, tmp_path / "bad_read")
    assert built.returncode == 0, built.stderr
    result = run_ids(tmp_path / "bad_read", agent_url, key_file, check=False)
    assert result.returncode == 2, result.stderr
    assert "0xffffffffe0000000" in result.stderr
    assert "bad_read.c:5:" in result.stderr


def test_store_to_guest_refused_at_run_time(guest, tmp_path, agent_url, key_file):
    source = tmp_path / "guest_store.c"
    source.write_text(GUEST_STORE)
    built = llview_build(source, tmp_path / "guest_store")
    assert built.returncode == 0, built.stderr
    result = run_ids(tmp_path / "guest_store", agent_url, key_file, check=False)
    assert result.returncode != 0
    assert "guest_store.c:5:" in result.stderr
    # Whole fields only: the stat line's addresses may hold the digits 4242 by chance.
    fields = guest_out(guest, "cat /proc/1/stat").split()
    assert fields[0] == "1" and "4242" not in fields


def test_broken_program_gets_compiler_diagnostic(tmp_path):
    source = tmp_path / "sleepy.c"
    source.write_text("#include <linux/delay.h>\nint main(void)\n{\n\tmsleep(10);\n"
                      "\treturn 0;\n}\n")
    result = llview_build(source, tmp_path / "sleepy")
    assert result.returncode == 1
    assert f"{source}:4:2: error:" in result.stderr or "sleepy.c:4:2: error:" in result.stderr
    assert "msleep" in result.stderr
    assert not (tmp_path / "sleepy").exists()


PID_HELPERS = """\
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <llview/ids.h>

int main(void)
{
	struct task_struct *p;

	for_each_process(p) {
		llview_record_begin("task");
		llview_field_int("pid", task_tgid_vnr(p));
		llview_field_int("ppid", task_ppid_nr(p));
		llview_field_str("comm", p->comm);
		llview_record_end();
	}
	return 0;
}
"""


def test_kernel_pid_helpers_match_guest_view(guest, tmp_path, agent_url, key_file):
    """task_tgid_vnr()/task_ppid_nr() reach out-of-line kernel code (__task_pid_nr_ns), which
    llview supplies from kernel_headers/llview/compat.c: same answers as the guest's /proc."""
    source = tmp_path / "pid_helpers.c"
    source.write_text(PID_HELPERS)
    built = llview_build(source, tmp_path / "pid_helpers")
    assert built.returncode == 0, built.stderr
    before = guest_processes(guest)
    seen = parse_text_tasks(run_ids(tmp_path / "pid_helpers", agent_url, key_file).stdout)
    after = guest_processes(guest)
    stable = {pid: v for pid, v in before.items() if after.get(pid) == v}
    assert len(stable) > 200
    assert not {pid: (v, seen.get(pid)) for pid, v in stable.items()
                if not same_task(v, seen.get(pid))}
