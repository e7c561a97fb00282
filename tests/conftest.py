"""Shared pytest fixtures: the monitored guest, booted once per test session.

`kernel_profile` fetches the current kernel profile through the product code (a no-op when the
cache has it). `guest` boots a QEMU guest under a name unique to this run, yields its
llview.vm.qemu.VM (exec(), ram_path, ram_size, host_port, profile()) and stops it at the end.
Tests using it carry @pytest.mark.guest.
"""

import os
import re

import pytest

from llview.kernel.profile import Profile, fetch
from llview.vm.qemu import VM

GUEST_TASKS = 250
_TEST_VM_NAME = re.compile(r"^pytest-(?:life-)?(\d+)$")


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
