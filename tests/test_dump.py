"""IDS programs on a memory dump of a real guest: QEMU's dump-guest-memory (through QMP,
paging=false, ELF) of a running guest, served by `llview agent serve --image DUMP`, must give
what the live host agent gives for the same guest just before and just after the dump.

Two guests: the session guest, whose QEMU has no vmcoreinfo device, so its dump has no
VMCOREINFO note and the agent scans the dump's RAM for it; and one started here with
`vmcoreinfo=True` (-device vmcoreinfo, qemu_fw_cfg loaded in the guest), whose dump carries the
note and is served from it without a scan.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import agent_proc

from llview.paths import REPO
from llview.vm.initramfs import known_comms
from llview.vm.qemu import DEFAULT_TASKS, VM

pytestmark = pytest.mark.guest

IDS_DIR = REPO / "ids_programs"


@pytest.fixture(scope="module")
def ids(tmp_path_factory) -> dict[str, Path]:
    out_dir = tmp_path_factory.mktemp("dump-ids")
    built = {}
    for name in ("os_version", "pslist"):
        result = subprocess.run([sys.executable, "-m", "llview.cli", "build",
                                 str(IDS_DIR / f"{name}.c"), "-o", str(out_dir / name)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        built[name] = out_dir / name
    return built


@pytest.fixture(scope="module")
def vmcoreinfo_guest(kernel_profile):
    vm = VM.start(f"pytest-dump-{os.getpid()}", kernel=str(kernel_profile.directory),
                  tasks=DEFAULT_TASKS, quiet=True, vmcoreinfo=True)
    try:
        yield vm
    finally:
        vm.stop(quiet=True)


def run_ids(binary: Path, port: int, key_file: Path) -> str:
    result = subprocess.run([str(binary), "--agent", f"tcp://127.0.0.1:{port}", "--key",
                             str(key_file)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def tasks(stdout: str) -> dict[int, tuple[int, str]]:
    out = {}
    for line in stdout.splitlines():
        fields = dict(part.split("=", 1) for part in line.split(" ", 2))
        out[int(fields["pid"])] = (int(fields["ppid"]), fields["comm"])
    return out


class ServedDump:
    """`llview agent serve --image DUMP` in the background on a free port."""

    def __init__(self, dump: Path, key_file: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llview.cli", "agent", "serve", "--image", str(dump),
             "--key", str(key_file), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(f"the agent did not serve the dump: {line!r} "
                                 f"{self.proc.communicate()[1]}")
        self.ready_line = line.strip()
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self) -> str:
        self.proc.terminate()
        return self.proc.communicate(timeout=10)[1]


@dataclass
class DumpRun:
    vm: VM
    before: dict[int, tuple[int, str]]
    after: dict[int, tuple[int, str]]
    from_dump: dict[int, tuple[int, str]]
    os_version: str
    proc_version: str
    agent_log: str
    ready_line: str
    live_ready_line: str


def dump_and_serve(vm: VM, ids: dict[str, Path], key_file: Path, directory: Path,
                   use_cli: bool) -> DumpRun:
    live = agent_proc.Agent(["--ram", vm.ram_path, "--ram-size", str(vm.ram_size),
                             "--key-file", str(key_file)])
    dump = directory / f"{vm.name}.elf"
    try:
        before = tasks(run_ids(ids["pslist"], live.port, key_file))
        if use_cli:
            done = subprocess.run([sys.executable, "-m", "llview.cli", "vm", "dump", vm.name,
                                   str(dump)], capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            assert "MiB ELF core" in done.stdout
        else:
            result = vm.dump(dump)
            assert result.size == dump.stat().st_size > vm.ram_size
        after = tasks(run_ids(ids["pslist"], live.port, key_file))
    finally:
        live.stop()
    with open(dump, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    served = ServedDump(dump, key_file)
    try:
        from_dump = tasks(run_ids(ids["pslist"], served.port, key_file))
        os_version = run_ids(ids["os_version"], served.port, key_file)
    finally:
        log = served.stop()
    rc, proc_version = vm.exec("cat /proc/version")
    assert rc == 0
    dump.unlink()
    return DumpRun(vm, before, after, from_dump, os_version, proc_version, log,
                   served.ready_line, live.ready_line)


@pytest.fixture(scope="module", params=["scan", "note"])
def run(request, guest, ids, key_file, tmp_path_factory) -> DumpRun:
    directory = tmp_path_factory.mktemp(f"dump-{request.param}")
    if request.param == "scan":
        return dump_and_serve(guest, ids, key_file, directory, use_cli=False)
    return dump_and_serve(request.getfixturevalue("vmcoreinfo_guest"), ids, key_file,
                          directory, use_cli=True)


def test_dump_lists_the_stable_processes(run):
    stable = {pid: v for pid, v in run.before.items() if run.after.get(pid) == v}
    assert len(stable) > 200, "the guest runs about 250 tasks"
    assert {pid: run.from_dump.get(pid) for pid in stable} == stable
    # Nothing invented: each task in the dump was seen live, as it was then.
    for pid, v in run.from_dump.items():
        assert v in (run.before.get(pid), run.after.get(pid)), (pid, v)
    comms = {comm for _, comm in run.from_dump.values()}
    assert set(known_comms()) <= comms
    assert run.from_dump[1] == run.before[1]


def test_dump_os_version_is_proc_version(run):
    assert run.os_version.strip() == run.proc_version.strip()
    assert run.os_version.startswith(f"Linux version {run.vm.kernel_release} ")


def test_dump_kernel_found_as_in_the_live_guest(run):
    """Same release, KASLR slide, paging levels and symbol count as the live RAM file."""
    assert run.ready_line.split(", listening")[0] == run.live_ready_line.split(", listening")[0]
    assert "ELF core, " in run.agent_log and "PT_LOAD segments" in run.agent_log


def test_vmcoreinfo_note_or_scan(run):
    if run.vm.vmcoreinfo:
        assert "VMCOREINFO note" in run.agent_log and "no VMCOREINFO note" not in run.agent_log
        assert "VMCOREINFO from the dump's ELF note" in run.agent_log
    else:
        assert "no VMCOREINFO note" in run.agent_log
        assert "VMCOREINFO at physical 0x" in run.agent_log


def test_guest_keeps_running_after_the_dump(run):
    assert run.vm.alive()
    rc, out = run.vm.exec("echo still-here")
    assert (rc, out.strip()) == (0, "still-here")


def test_dump_refuses_to_overwrite(guest, tmp_path):
    existing = tmp_path / "exists.elf"
    existing.write_bytes(b"keep")
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "llview.cli", "vm", "dump", guest.name,
                             str(existing)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "exists" in result.stderr
    assert existing.read_bytes() == b"keep" and time.monotonic() - began < 30
