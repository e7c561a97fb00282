"""End to end on the real guest, IDS programs calling the kernel's own library code (compiled into
them from the profile's linux-source): ids_programs/vmas.c walks every process's maple tree with
for_each_vma() (lib/maple_tree.c's mas_find()) and must count, for every idle user process,
exactly the lines of its /proc/PID/maps; ids_programs/pid_table.c walks the pid IDR with
idr_for_each_entry() (lib/idr.c, lib/radix-tree.c) and must find every thread /proc shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llview.paths import REPO

pytestmark = pytest.mark.guest

# Long-lived guest processes with more mappings than the idle sleepers' 10: awk holding N
# large strings (each its own mmap) while it waits for a child. Mappings that touch may merge,
# so only the kernel knows the exact counts; the IDS must agree with it.
EXTRA_PROCESSES = (1, 3, 8)
START_MAPPER = ("(awk 'BEGIN {{ for (i = 0; i < {n}; i++) s[i] = sprintf(\"%\" (200000 * (i + 1)) "
                "\"s\", i); system(\"exec sleep 100000\") }}' </dev/null >/dev/null 2>&1 &)")
# One awk over every maps file: pid -> lines. The gate VMA ([vsyscall], when the kernel shows
# one) is a per-system page outside every mm's maple tree, so it is not counted. getline, not
# awk's own file loop: a process that exits between the glob and the read must not abort it.
COUNT_MAPS_LINES = ("awk 'BEGIN { for (i = 1; i < ARGC; i++) { n = 0; "
                    "while ((getline line < ARGV[i]) > 0) if (line !~ /\\[vsyscall\\]$/) n++; "
                    "close(ARGV[i]); if (n) print ARGV[i], n } }' /proc/[0-9]*/maps")


def build(name: str, directory: Path) -> Path:
    out = directory / name
    done = subprocess.run([sys.executable, "-m", "llview.cli", "build",
                           str(REPO / f"ids_programs/{name}.c"), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def vmas_binary(tmp_path_factory) -> Path:
    return build("vmas", tmp_path_factory.mktemp("vmas"))


def run_json(binary: Path, agent_url: str, key_file: Path) -> list[dict]:
    done = subprocess.run([str(binary), "--agent", agent_url, "--key", str(key_file), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def maps_lines(guest) -> dict[int, int]:
    """pid -> lines of /proc/PID/maps, for every process that has any (user processes)."""
    rc, out = guest.exec(COUNT_MAPS_LINES)
    assert rc == 0, out
    counts = {}
    for line in out.splitlines():
        path, count = line.split()
        counts[int(path.split("/")[2])] = int(count)
    return counts


def test_vma_counts_equal_proc_maps(guest, vmas_binary, agent_url, key_file):
    for n in EXTRA_PROCESSES:
        rc, out = guest.exec(START_MAPPER.format(n=n))
        assert rc == 0, out
    before = maps_lines(guest)
    records = run_json(vmas_binary, agent_url, key_file)
    after = maps_lines(guest)
    seen = {record["pid"]: record["vmas"] for record in records}

    # Idle processes (the same count in both snapshots) must agree exactly.
    idle = {pid: count for pid, count in before.items() if after.get(pid) == count}
    assert len(idle) > 150, f"the test guest should run about 200 user processes: {before} {after}"
    differing = {pid: (count, seen.get(pid)) for pid, count in idle.items()
                 if seen.get(pid) != count}
    assert not differing, f"pid: (/proc/PID/maps lines, IDS's VMA count): {differing}"
    # The extra processes are among them, so the counts are not all the sleepers' value.
    assert len(set(idle.values())) >= 3, sorted(set(idle.values()))
    # Nothing listed that has no address space (kernel threads) or never existed: at most the
    # exec server's short-lived shells and awk, which come and go between the snapshots.
    invented = set(seen) - set(before) - set(after)
    assert len(invented) <= 2, f"processes the guest never showed: {invented}"


def guest_threads(guest) -> dict[int, int]:
    """thread id -> thread group id, from the guest's /proc/TGID/task/TID."""
    rc, out = guest.exec("ls -d /proc/[0-9]*/task/[0-9]*")
    assert rc == 0, out
    threads = {}
    for path in out.split():
        _, _, tgid, _, tid = path.split("/")
        threads[int(tid)] = int(tgid)
    return threads


def test_pid_table_equals_proc_threads(guest, agent_url, key_file, tmp_path):
    binary = build("pid_table", tmp_path)
    before = guest_threads(guest)
    records = run_json(binary, agent_url, key_file)
    after = guest_threads(guest)
    seen = {record["pid"]: record["tgid"] for record in records}

    stable = {tid: tgid for tid, tgid in before.items() if after.get(tid) == tgid}
    assert len(stable) > 200, "the test guest should run about 250 tasks"
    differing = {tid: (tgid, seen.get(tid)) for tid, tgid in stable.items()
                 if seen.get(tid) != tgid}
    assert not differing, f"tid: (tgid in /proc, tgid from the pid table): {differing}"
    invented = set(seen) - set(before) - set(after)
    assert len(invented) <= 2, f"pids the guest never showed: {invented}"
