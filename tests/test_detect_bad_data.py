"""Detection programs on hostile guest data: a module list that points into unmapped memory,
one that loops forever, a module kset pointing nowhere. Each must end with an error naming the
address and the source line (exit 2), or a finding: never a crash, never a hang.

The guest here is synthetic (tests/helpers/fake_kernel.py: page tables, VMCOREINFO and kallsyms
in RAM, served by the real host-side agent), because no real kernel would keep running with
these lists; the programs are the shipped ones, built for the real profile.
"""

from __future__ import annotations

import re
import struct
import subprocess

import pytest
from helpers import agent_proc
from helpers.fake_kernel import FakeKernel
from helpers.pagetables import GuestMemory
from test_e2e import IDS_DIR, llview_build

UNMAPPED = 0xFFFFC90000123000  # vmalloc space: nothing maps it in the fake guest


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("detect-bad-data")
    built = {}
    for name in ("lsmod", "hidden_modules"):
        result = llview_build(IDS_DIR / f"{name}.c", out / name)
        assert result.returncode == 0, result.stderr
        built[name] = out / name
    return built


def serve(tmp_path, key, kernel_profile, lists: dict[str, tuple[int, int]]):
    """A fake kernel whose `name` symbols hold the two pointers given (list_head next, prev)."""
    kernel = FakeKernel(release=kernel_profile.release)
    t = kernel.text
    at = {name: t + 0x310000 + i * 0x1000 for i, name in enumerate(lists)}
    kernel.symbols = [*kernel.default_symbols(),
                      *(("D", name, addr) for name, addr in at.items())]
    mem = GuestMemory(16 << 20, 4, table_base=0x900000)
    kernel.build(mem)
    for name, (nxt, prev) in lists.items():
        mem.fill(kernel.va_to_pa(at[name]), struct.pack("<QQ", nxt, prev))
    image = tmp_path / "fake.img"
    image.write_bytes(mem.mem)
    agent = agent_proc.Agent(["--image", str(image), "--key-file", key[0], "--wait", "30"])
    return agent, kernel


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "key.bin"
    return str(path), agent_proc.write_key(path)


def run(binary, agent, key, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), "--agent", f"tcp://127.0.0.1:{agent.port}", "--key",
                           key[0], *extra], capture_output=True, text=True, timeout=60)


def test_module_list_into_unmapped_memory(programs, tmp_path, key, kernel_profile):
    agent, _ = serve(tmp_path, key, kernel_profile, {"modules": (UNMAPPED, UNMAPPED)})
    try:
        done = run(programs["lsmod"], agent, key)
    finally:
        agent.stop()
    assert done.returncode == 2
    # The module around the list entry starts just below it (container_of).
    assert re.search(r"cannot read guest address 0x(ffffc9000012[0-3][0-9a-f]{3}) \(unmapped\) "
                     r"at ids_programs/lsmod\.c:\d+:\d+", done.stderr), done.stderr


def test_self_loop_hits_the_read_limit(programs, tmp_path, key, kernel_profile):
    kernel = FakeKernel(release=kernel_profile.release)
    # Two symbols whose list_heads point at each other, and neither back to `modules`.
    a, b = kernel.text + 0x311000, kernel.text + 0x312000
    agent, _ = serve(tmp_path, key, kernel_profile,
                     {"modules": (a, a), "loop_a": (b, b), "loop_b": (a, a)})
    try:
        done = run(programs["lsmod"], agent, key, "--max-reads", "20000")
    finally:
        agent.stop()
    assert done.returncode == 2
    assert "read limit of 20000 reads reached at" in done.stderr and "lsmod.c:" in done.stderr


def test_hidden_modules_with_a_kset_pointing_nowhere(programs, tmp_path, key, kernel_profile):
    """A walk that cannot go on is an error naming the address, even mid-way through views."""
    kernel = FakeKernel(release=kernel_profile.release)
    head = kernel.text + 0x310000  # `modules`, the first of the lists below: empty
    agent, _ = serve(tmp_path, key, kernel_profile,
                     {"modules": (head, head), "module_kset": (UNMAPPED, 0),
                      "mod_tree": (0, 0)})
    try:
        done = run(programs["hidden_modules"], agent, key)
    finally:
        agent.stop()
    assert done.returncode == 2, done.stdout
    expected = f"cannot read guest address 0x{UNMAPPED:016x} (unmapped) at ids_programs/"
    assert expected + "hidden_modules.c:" in done.stderr, done.stderr
