"""End to end on the four paths of the paper: IDS binaries built by `llview build` fetch guest
memory through the host-side agent or the in-kernel agent (llview_agent.ko), each over TCP or
shared memory, and what they print is compared with the guest's own view (`vm exec`).

All four paths use ONE guest (conftest's kernel_guest: `vm start --agent kernel --shm
--confine`): the host-side agent reads that guest's RAM file and serves a region file of its
own; the in-kernel agent serves the guest's ivshmem region and its forwarded TCP port. The IDS
program is the same binary on every path; only --agent changes. A path whose transport is not
built yet (no shm: in the runtime, no --shm in the host agent, no ivshmem driver in the module)
is skipped with the reason, never faked.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import agent_proc
from helpers.kernel_guest import ensure_agent, reload_agent
from test_e2e import (
    BAD_ADDRESS,
    IDS_DIR,
    guest_out,
    guest_processes,
    llview_build,
    parse_text_tasks,
    run_ids,
    same_task,
)

from llview.agent_cli import AgentProcess
from llview.paths import RUNTIME_DIR
from llview.vm.qemu import VM

pytestmark = pytest.mark.guest

PATHS = ["host-tcp", "host-shm", "kernel-tcp", "kernel-shm"]
IVSHMEM_ID = ("0x1af4", "0x1110")  # Red Hat / Qumranet vendor, ivshmem device

# An IDS that never stops walking the task list (a fresh scan each time, so every pass
# fetches from the agent): something to kill, or to pull the agent from under, mid-request.
# A walk racing with exiting tasks can follow a stale pointer into a cycle: each pass stops
# after MAX_TASKS steps, so the read limit never ends the program first.
ENDLESS_SCAN = """\
#include <linux/sched/signal.h>
#include <llview/ids.h>

#define MAX_TASKS 5000

void llview_scan_begin(void);

int main(void)
{
	for (;;) {
		struct task_struct *p;
		long total = 0, steps = 0;

		llview_scan_begin();
		for_each_process(p) {
			total += p->pid;
			if (++steps == MAX_TASKS)
				break;
		}
		if (total == 0)
			break;
	}
	return 0;
}
"""


def runtime_has_shm() -> bool:
    return any('.scheme = "shm"' in source.read_text()
               for source in (RUNTIME_DIR / "src").glob("*.c"))


def host_agent_has_shm() -> bool:
    done = subprocess.run([str(agent_proc.AGENT), "--help"], capture_output=True, text=True)
    return "--shm" in done.stdout + done.stderr


def ivshmem_driver(vm: VM) -> str:
    """The module bound to the guest's ivshmem device ("" when none is)."""
    vendor, device = IVSHMEM_ID
    out = guest_out(vm, "for d in /sys/bus/pci/devices/*; do "
                        f"if [ \"$(cat $d/vendor)\" = {vendor} ] && "
                        f"[ \"$(cat $d/device)\" = {device} ]; then "
                        "readlink -f $d/driver/module; fi; done; true")
    return out.strip().rsplit("/", 1)[-1]


@dataclass
class AgentPath:
    kind: str  # one of PATHS
    url: str
    vm: VM
    key_file: Path


@pytest.fixture(scope="module")
def ids_binaries(tmp_path_factory) -> dict[str, Path]:
    out_dir = tmp_path_factory.mktemp("ids-paths")
    sources = {name: IDS_DIR / f"{name}.c" for name in ("os_version", "pslist")}
    for name, text in (("bad_read", BAD_ADDRESS), ("endless_scan", ENDLESS_SCAN)):
        sources[name] = out_dir / f"{name}.c"
        sources[name].write_text(text)
    built = {}
    for name, source in sources.items():
        result = llview_build(source, out_dir / name)
        assert result.returncode == 0, result.stderr
        built[name] = out_dir / name
    return built


@pytest.fixture(scope="module")
def host_agent(kernel_guest: VM, kernel_key_file: Path):
    """The host-side agent on the kernel guest's RAM: TCP, and its own region file if it can."""
    agent_proc.build()
    region = Path(f"/dev/shm/llview-pytest-{os.getpid()}-host.shm")
    region.unlink(missing_ok=True)
    shm = str(region) if host_agent_has_shm() else None
    agent = AgentProcess(["--ram", kernel_guest.ram_path, "--ram-size",
                          str(kernel_guest.ram_size), "--key-file", str(kernel_key_file)],
                         binary=agent_proc.AGENT, shm=shm)
    try:
        yield agent
    finally:
        agent.stop()
        region.unlink(missing_ok=True)


@pytest.fixture(params=PATHS)
def path(request, kernel_guest: VM, kernel_key_file: Path) -> AgentPath:
    kind = request.param
    if kind.endswith("-shm") and not runtime_has_shm():
        pytest.skip("the IDS runtime has no shm: transport yet (runtime/src)")
    if kind.startswith("host-"):
        agent = request.getfixturevalue("host_agent")
        if kind == "host-tcp":
            url = f"tcp://127.0.0.1:{agent.port}"
        elif agent.shm:
            url = f"shm:{agent.shm}"
        else:
            pytest.skip("the host agent has no --shm yet (agents/host)")
    else:
        ensure_agent(kernel_guest, kernel_key_file.read_bytes())
        if kind == "kernel-tcp":
            url = kernel_guest.tcp_url
        elif ivshmem_driver(kernel_guest) == "llview_agent":
            url = kernel_guest.shm_url
        else:
            pytest.skip("llview_agent.ko does not serve the ivshmem device yet (agents/kmod)")
    return AgentPath(kind, url, kernel_guest, kernel_key_file)


def ids(binary: Path, path: AgentPath, *extra: str, check: bool = True):
    return run_ids(binary, path.url, path.key_file, *extra, check=check)


# ---- the skeleton's end-to-end tests, on every path ---------------------------------------


def test_os_version_equals_proc_version(path: AgentPath, ids_binaries):
    result = ids(ids_binaries["os_version"], path)
    assert result.stdout.strip() == guest_out(path.vm, "cat /proc/version").strip()
    record = json.loads(ids(ids_binaries["os_version"], path, "--json").stdout)
    assert record["release"] == guest_out(path.vm, "uname -r").strip()


def test_pslist_equals_guest_view(path: AgentPath, ids_binaries):
    before = guest_processes(path.vm)
    seen = parse_text_tasks(ids(ids_binaries["pslist"], path).stdout)
    after = guest_processes(path.vm)
    stable = {pid: v for pid, v in before.items() if after.get(pid) == v}
    assert len(stable) > 200, "the test guest should run about 250 tasks"
    mismatched = {pid: (v, seen.get(pid)) for pid, v in stable.items()
                  if not same_task(v, seen.get(pid))}
    assert not mismatched
    invented = set(seen) - set(before) - set(after)
    assert len(invented) <= 2, f"tasks the guest never showed: {invented}"
    if path.kind.startswith("kernel-"):  # the agent's own kernel threads are on the list too
        assert "llview_agent" in {comm for _, comm in seen.values()}


def confined_tasks(vm: VM) -> dict[int, tuple[int, str, int]]:
    """Tasks outside the initial pid namespace, as the initial namespace sees them:
    pid -> (ppid, comm, the pid the task has inside its own namespace)."""
    listing = guest_out(vm, "ls -l /proc/1/ns/pid /proc/[0-9]*/ns/pid 2>/dev/null; true")
    links = dict(re.findall(r"/proc/(\d+)/ns/pid -> (\S+)", listing))
    initial = links.pop("1")
    pids = [pid for pid, ns in links.items() if ns != initial]
    assert pids, "no task runs outside the initial pid namespace"
    out = guest_out(vm, f"for p in {' '.join(pids)}; do "
                        "echo \"$(grep NSpid /proc/$p/status) @ $(cat /proc/$p/stat)\"; "
                        "done 2>/dev/null; true")
    tasks = {}
    for line in out.splitlines():
        found = re.match(r"NSpid:\s+(\d+)\s+(\d+)\s+@ (\d+) \((.*)\) \S (\d+) ", line)
        if found:  # a task that exited between the two commands prints nothing usable
            outer, inner, _, comm, ppid = found.groups()
            tasks[int(outer)] = (int(ppid), comm, int(inner))
    return tasks


def test_confined_tasks_listed_with_initial_namespace_pids(path: AgentPath, ids_binaries):
    confined = confined_tasks(path.vm)
    comms = {comm for _, comm, _ in confined.values()}
    assert set(path.vm.confined_comms) <= comms, (path.vm.confined_comms, comms)
    container_init = [pid for pid, (_, comm, _) in confined.items() if comm == "llv-container"]
    assert len(container_init) == 1 and confined[container_init[0]][2] == 1
    seen = parse_text_tasks(ids(ids_binaries["pslist"], path).stdout)
    for pid, (ppid, comm, inner) in confined.items():
        assert pid != inner  # the namespace numbers them afresh: the two views differ
        assert same_task((ppid, comm), seen.get(pid)), (pid, comm, seen.get(pid))
    # pid 1 in the IDS's list is the guest's init, not the container's.
    assert seen[1][1] == "init"


def test_unmapped_address_names_address_and_line(path: AgentPath, ids_binaries):
    result = ids(ids_binaries["bad_read"], path, check=False)
    assert result.returncode == 2, result.stderr
    assert "0xffffffffe0000000" in result.stderr
    assert "bad_read.c:5:" in result.stderr


def test_read_limit_ends_a_runaway_scan(path: AgentPath, ids_binaries):
    result = ids(ids_binaries["pslist"], path, "--max-reads", "50", check=False)
    assert result.returncode != 0
    assert "read limit" in result.stderr and "pslist.c:" in result.stderr


def region_owner(path: AgentPath) -> int | None:
    """The pid holding the shm region (llv_shm_control.owner), None on TCP paths."""
    if not path.url.startswith("shm:"):
        return None
    with open(path.url[4:], "rb") as region:
        return struct.unpack_from("<I", region.read(16), 12)[0]


def start_endless_scan(path: AgentPath, ids_binaries) -> subprocess.Popen:
    proc = subprocess.Popen([str(ids_binaries["endless_scan"]), "--agent", path.url, "--key",
                             str(path.key_file)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    assert proc.poll() is None, f"the scanning IDS ended early: {proc.stderr.read()}"
    if path.url.startswith("shm:"):
        assert region_owner(path) == proc.pid  # connected, and holding the region
    return proc


def test_ids_killed_mid_request_then_a_new_one_connects(path: AgentPath, ids_binaries):
    proc = start_endless_scan(path, ids_binaries)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stderr.close()
    began = time.monotonic()
    result = ids(ids_binaries["os_version"], path, check=False)
    assert result.returncode == 0, f"after a killed IDS ({time.monotonic() - began:.1f} s): " \
                                   f"{result.stderr}"
    assert result.stdout.strip() == guest_out(path.vm, "cat /proc/version").strip()


# ---- last: pulling the in-kernel agent from under a connected IDS ----------------------------


@pytest.mark.parametrize("path", ["kernel-tcp", "kernel-shm"], indirect=True)
def test_rmmod_while_connected_gives_the_ids_an_error(path: AgentPath, ids_binaries):
    proc = start_endless_scan(path, ids_binaries)
    try:
        guest_out(path.vm, "rmmod llview_agent")
        _, stderr = proc.communicate(timeout=60)  # an error, never a hang
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert re.search(r"^error: agent at ", stderr, re.M), stderr
    # The guest goes on, without the module, and takes it back.
    assert "llview_agent" not in guest_out(path.vm, "cat /proc/modules")
    tainted = int(guest_out(path.vm, "cat /proc/sys/kernel/tainted"))
    assert tainted & ~((1 << 12) | (1 << 13)) == 0, f"unexpected taint {tainted:#x}"
    assert not re.search(r"Oops|BUG:|general protection|Call Trace",
                         guest_out(path.vm, "dmesg"))
    reload_agent(path.vm, path.key_file.read_bytes())
    result = ids(ids_binaries["os_version"], path)
    assert result.stdout.startswith("Linux version ")
