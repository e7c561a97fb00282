"""A long-lived IDS on the real guest: `pslist --interval ... --changes --json` against the
host-side agent sees a process started and one killed in the guest between its scans; and
with the agent killed and restarted on its port (the guest keeps running) it reports the
agent lost, then reconnected, and lists the guest's processes correctly after (over TCP and
shared memory); the in-kernel agent's module reloaded in the guest likewise."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import agent_proc
from helpers.running_ids import RunningIds
from test_e2e import IDS_DIR, guest_processes, llview_build, same_task

from llview.agent_cli import AgentProcess

pytestmark = pytest.mark.guest


@pytest.fixture(scope="module")
def pslist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ids") / "pslist"
    result = llview_build(IDS_DIR / "pslist.c", out)
    assert result.returncode == 0, result.stderr
    return out


def LongLived(binary: Path, agent_url: str, key_file: Path, *extra: str) -> RunningIds:
    """An IDS binary running with --json against agent_url."""
    return RunningIds([str(binary), "--agent", agent_url, "--key", str(key_file), "--json",
                       *extra], timeout=60)


def watch_until(ids: RunningIds, predicate, what: str, scans: int = 30) -> list[dict]:
    """Scans until one whose records satisfy `predicate`; returns those records."""
    for _ in range(scans):
        records, scan = ids.next_scan()
        assert "error" not in scan, scan
        if predicate(records):
            return records
    raise AssertionError(f"{what} not seen in {scans} scans")


def test_changes_see_a_process_start_and_end(guest, pslist, agent_url, key_file):
    ids = LongLived(pslist, agent_url, key_file, "--interval", "1", "--changes")
    try:
        first, scan = ids.next_scan()
        assert "error" not in scan and scan["scan"] == 1
        assert all(rec["change"] == "new" and rec["kind"] == "task" for rec in first)
        assert len(first) > 200 and scan["new"] == len(first)
        assert {1, 2} <= {rec["pid"] for rec in first}

        rc, text = guest.exec("sleep 1000 >/dev/null 2>&1 </dev/null & echo $!")
        assert rc == 0, text
        pid = int(text.strip())
        # the child may be seen between its fork and its exec (comm "sh"), then as changed
        view: dict[str, str] = {}

        def started(records: list[dict]) -> bool:
            for rec in records:
                if rec["pid"] == pid and rec["change"] in ("new", "changed"):
                    view["comm"] = rec["comm"]
            return view.get("comm") == "sleep"

        watch_until(ids, started, f"sleep (pid {pid}) started")
        rc, text = guest.exec(f"kill {pid}")
        assert rc == 0, text
        gone = watch_until(ids, lambda recs: any(r["pid"] == pid for r in recs),
                           f"sleep (pid {pid}) ended")
        mine = [rec for rec in gone if rec["pid"] == pid]
        assert [(rec["change"], rec["comm"]) for rec in mine] == [("gone", "sleep")]
        # a task that did not change is never printed again: pid 1 was only in scan 1
        records, scan = ids.next_scan()
        assert 1 not in {rec["pid"] for rec in records}
        assert ids.stop() == 0
    finally:
        ids.kill()
    assert not [line for line in ids.err if line.startswith("error")], ids.err


@pytest.mark.parametrize("transport", ["tcp", "shm"])
def test_agent_restart_is_reconnected(guest, pslist, key_file, transport):
    agent_proc.build()
    ram = ["--ram", guest.ram_path, "--ram-size", str(guest.ram_size), "--key-file",
           str(key_file)]
    region = f"/dev/shm/llview-pytest-{os.getpid()}-longlived.shm"
    shm = region if transport == "shm" else None
    agent = AgentProcess(ram, binary=agent_proc.AGENT, shm=shm)
    port = agent.port
    url = f"tcp://127.0.0.1:{port}" if transport == "tcp" else f"shm:{region}"
    ids = LongLived(pslist, url, key_file, "--interval", "0.5")
    try:
        records, scan = ids.next_scan()
        assert "error" not in scan and len(records) > 200
        agent.stop()  # by its pid; the guest keeps running
        upto_lost = ids.until(lambda rec: rec.get("kind") == "agent")
        lost = upto_lost[-1]
        assert lost["event"] == "lost" and lost["error"].startswith(f"agent at {url}"), lost
        # the scan that found the agent gone failed, saying why, just before
        assert upto_lost[-2]["kind"] == "scan" and "agent at" in upto_lost[-2]["error"]
        time.sleep(2)  # reconnection attempts fail meanwhile (connection refused)
        assert ids.proc.poll() is None, ids.err
        before = guest_processes(guest)
        agent = AgentProcess([*ram, "--listen", f"127.0.0.1:{port}"], binary=agent_proc.AGENT,
                             shm=shm)
        assert agent.port == port
        back = ids.until(lambda rec: rec.get("kind") == "agent")[-1]
        assert back["event"] == "reconnected", back
        records, scan = ids.next_scan()
        assert "error" not in scan, scan
        after = guest_processes(guest)
        tasks = {rec["pid"]: (rec["ppid"], rec["comm"]) for rec in records
                 if rec.get("kind") == "task"}
        stable = {pid: v for pid, v in before.items() if after.get(pid) == v}
        assert len(stable) > 200
        assert not {pid: (v, tasks.get(pid)) for pid, v in stable.items()
                    if not same_task(v, tasks.get(pid))}
        assert ids.stop() == 0
    finally:
        ids.kill()
        agent.stop()


def test_in_kernel_agent_reloaded_is_reconnected(kernel_agent, kernel_key_file, pslist):
    """The in-kernel agent's module unloaded and loaded again in the running guest: the
    connection it held is gone; the IDS reconnects to the new one."""
    from helpers.kernel_guest import reload_agent

    url = f"tcp://127.0.0.1:{kernel_agent.host_port}"
    ids = LongLived(pslist, url, kernel_key_file, "--interval", "1", "--changes",
                    "--timeout", "20")
    try:
        first, scan = ids.next_scan(timeout=120)
        assert "error" not in scan and len(first) > 200
        pids = {rec["pid"] for rec in first}
        reload_agent(kernel_agent, kernel_key_file.read_bytes())
        upto = ids.until(lambda rec: rec.get("event") == "reconnected", timeout=120)
        events = [rec["event"] for rec in upto if rec.get("kind") == "agent"]
        assert events == ["lost", "reconnected"], upto
        lost = next(rec for rec in upto if rec.get("event") == "lost")
        assert lost["error"].startswith(f"agent at {url}")
        records, scan = ids.next_scan(timeout=120)
        assert "error" not in scan, scan
        # compared with the last good scan: the reload's own shells and insmod came and went,
        # the long-lived tasks are still there (no "gone" among them)
        gone = {rec["pid"] for rec in records if rec["change"] == "gone"}
        assert 1 not in gone and len(gone & pids) < 20, records
        assert ids.stop() == 0
    finally:
        ids.kill()
