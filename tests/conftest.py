"""Shared pytest fixtures: the monitored guest, booted once per test session.

`kernel_profile` fetches the current kernel profile through the product code (a no-op when the
cache has it). `guest` boots a QEMU guest under a name unique to this run, yields its
llview.vm.qemu.VM (exec(), ram_path, ram_size, host_port, profile()) and stops it at the end.
`kernel_guest` boots ONE more guest per session with the in-kernel agent, the ivshmem region
and the confined workload (`vm start --agent kernel --shm --confine`), keyed with
`kernel_key_file`; `kernel_agent` is that guest with its agent checked (and reloaded if a
test unloaded it or changed its key) before each test. Guest boots are slow under TCG: every
test needing the in-kernel agent should share this one. Tests using them carry
@pytest.mark.guest. `key_file` and `agent_url` give a test module a key of its own and the
host-side agent on `guest` over TCP.
"""

import os
import re
from pathlib import Path

import pytest
from helpers import agent_proc

from llview.kernel.profile import Profile, fetch
from llview.keys import generate_key_file
from llview.vm.qemu import VM

GUEST_TASKS = 250
_TEST_VM_NAME = re.compile(r"^pytest-(?:life-|kmod-|dump-)?(\d+)$")


def _stop_orphaned_test_guests() -> None:
    """Stops guests left by test runs whose pytest process is gone (killed mid-run)."""
    for vm in VM.list():
        match = _TEST_VM_NAME.match(vm.name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            vm.stop(quiet=True)


@pytest.fixture(scope="session")
def kernel_profile() -> Profile:
    """The default kernel profile, fetched with apt if the cache lacks it."""
    return fetch(quiet=True)


@pytest.fixture(scope="session")
def guest(kernel_profile: Profile):
    _stop_orphaned_test_guests()
    vm = VM.start(f"pytest-{os.getpid()}", kernel=str(kernel_profile.directory),
                  tasks=GUEST_TASKS, quiet=True)
    try:
        yield vm
    finally:
        vm.stop(quiet=True)


@pytest.fixture(scope="session")
def kernel_key_file(tmp_path_factory) -> Path:
    """The in-kernel agent's key for this session (mode 0600, in a private directory)."""
    directory = tmp_path_factory.mktemp("kernel-agent-key")
    directory.chmod(0o700)
    path = directory / "key.bin"
    generate_key_file(path)
    return path


@pytest.fixture(scope="session")
def kernel_guest(kernel_profile: Profile, kernel_key_file: Path):
    _stop_orphaned_test_guests()
    vm = VM.start(f"pytest-kmod-{os.getpid()}", kernel=str(kernel_profile.directory),
                  tasks=GUEST_TASKS, quiet=True, agent="kernel",
                  key=kernel_key_file.read_bytes(), shm=True, confine=True)
    try:
        yield vm
    finally:
        vm.stop(quiet=True)


@pytest.fixture
def kernel_agent(kernel_guest: VM, kernel_key_file: Path) -> VM:
    """kernel_guest, with its agent serving the session key (reloaded if it is not)."""
    from helpers.kernel_guest import ensure_agent  # imported here: only these tests need it

    ensure_agent(kernel_guest, kernel_key_file.read_bytes())
    return kernel_guest


@pytest.fixture(scope="module")
def key_file(tmp_path_factory) -> Path:
    """A fresh key (mode 0600) for the host-side agents one test module starts."""
    path = tmp_path_factory.mktemp("key") / "key.bin"
    agent_proc.write_key(path)
    return path


@pytest.fixture(scope="module")
def agent_url(guest, key_file: Path):
    """The host-side agent on `guest`'s RAM, over TCP, for one test module."""
    agent_proc.build()
    agent = agent_proc.Agent(["--ram", guest.ram_path, "--ram-size", str(guest.ram_size),
                              "--key-file", str(key_file)])
    yield f"tcp://127.0.0.1:{agent.port}"
    agent.stop()
