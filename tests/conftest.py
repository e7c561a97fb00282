"""Shared pytest fixtures: the monitored guest, booted once per test session.

`guest` fetches the current kernel profile through the product code (`llview kernel fetch`'s
Python API; a no-op when already fetched), boots a QEMU guest under a name unique to this run,
yields its llview.vm.qemu.VM and stops it at the end. Tests using it carry @pytest.mark.guest.
"""

import os

import pytest

from llview.kernel.profile import Profile, fetch
from llview.vm.qemu import VM

GUEST_TASKS = 250


@pytest.fixture(scope="session")
def kernel_profile() -> Profile:
    """The default kernel profile, fetched with apt if the cache lacks it."""
    return fetch(quiet=True)


@pytest.fixture(scope="session")
def guest(kernel_profile: Profile):
    vm = VM.start(f"pytest-{os.getpid()}", kernel=str(kernel_profile.directory),
                  tasks=GUEST_TASKS, quiet=True)
    try:
        yield vm
    finally:
        vm.stop(quiet=True)
