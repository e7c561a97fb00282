"""The planted rootkit (tests/rootkit/lvrootkit.c) for detection tests: build it for the
guest's kernel profile (cached), load it into a running guest with parameters, drive it through
its control file /proc/lvrootkit, and take it out again.

    from helpers.rootkit import Rootkit

    def test_detects_hidden_module(guest):            # any running VM (conftest's guests)
        with Rootkit.load(guest, hide=1) as rk:       # insmod lvrootkit.ko hide=1
            assert rk.status()["hide"][0] == "1"
            ... run the IDS, expect an alert ...
            rk.undo("hide")                           # or rk.command("plant syscalls 2")
            ... run the IDS, expect no alert ...
        # leaving the block: `undo all` then rmmod, and dmesg is checked for kernel warnings

Each technique's status line is "NAME VALUE [key=value ...]"; VALUE 0 means not planted
(for the pid techniques it is the pid, for tcp_seq the hidden port).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType

from llview import kmod
from llview.kernel.profile import Profile
from llview.vm.qemu import VM

ROOTKIT_DIR = Path(__file__).resolve().parent.parent / "rootkit"
MODULE = "lvrootkit"
CONTROL = "/proc/lvrootkit"
TECHNIQUES = ("hide", "syscalls", "ftrace", "hide_pid", "unlink_pid", "tcp_seq", "keylogger",
              "cred_pid", "flag_pid")
SIG_TABLE = 61  # kill(pid, 61) -> EMEDIUMTYPE while `syscalls 2` is planted
SIG_FTRACE = 62  # kill(pid, 62) -> ENOTUNIQ while `ftrace` is planted
HIDE_PREFIX = "lvrk_"  # getdents64 drops these names while `syscalls 2` is planted
DEFAULT_PORT = 31337  # `plant tcp_seq` hides this local port from /proc/net/tcp
# What a kernel says when something went wrong; none may appear after planting and undoing.
KERNEL_TROUBLE = re.compile(r"BUG|WARNING|Oops|general protection|list_del corruption|"
                            r"list_add corruption|Call Trace|RIP:")


def build_rootkit(profile: Profile, quiet: bool = True) -> Path:
    """lvrootkit.ko for the profile's kernel, without debug info (cached by source hash)."""
    return kmod.build_external_module(profile, kmod.source_files(ROOTKIT_DIR, "rootkit"),
                                      "rootkit", MODULE, what="the test rootkit",
                                      strip_debug=True, quiet=quiet)


def kernel_trouble(log: str) -> list[str]:
    """The lines of a kernel log that report a bug, warning or oops."""
    return [line for line in log.splitlines() if KERNEL_TROUBLE.search(line)]


class Rootkit:
    """lvrootkit loaded in a running guest."""

    def __init__(self, vm: VM, log_lines: int = 0):
        self.vm = vm
        self.log_lines = log_lines  # kernel log lines from before the load

    def new_log(self) -> str:
        """The guest's kernel log since the rootkit was loaded."""
        rc, out = self.vm.exec(f"dmesg | tail -n +{self.log_lines + 1}")
        return out

    @classmethod
    def load(cls, vm: VM, profile: Profile | None = None, **params: int) -> Rootkit:
        """Builds the rootkit for the guest's kernel and insmods it with params (hide=1,
        syscalls=2, hide_pid=PID, ...). Fails if it is already loaded."""
        unknown = set(params) - set(TECHNIQUES)
        if unknown:
            raise ValueError(f"unknown rootkit parameters: {', '.join(sorted(unknown))}")
        ko = build_rootkit(profile or vm.profile())
        rc, out = vm.exec("dmesg | wc -l")
        rootkit = cls(vm, int(out.strip()) if rc == 0 and out.strip().isdigit() else 0)
        vm.insmod(ko, dict(params))
        if params:
            rootkit.wait_planted(params)
        return rootkit

    def wait_planted(self, params: dict[str, int]) -> None:
        """Parameters are planted by a work item once the module is live: wait for it."""
        rc, out = self.vm.exec(
            "i=0; while [ $i -lt 100 ]; do "
            + " && ".join(f"grep -q '^{k} [1-9]' {CONTROL}" for k in params)
            + " && exit 0; sleep 0.1; i=$((i + 1)); done; cat " + CONTROL + "; exit 1")
        assert rc == 0, f"rootkit parameters {params} not planted: {out}\n{self.vm.dmesg_tail()}"

    def command(self, line: str) -> None:
        """Writes one command to /proc/lvrootkit ("plant hide_pid 123", "undo all", "unhide");
        a refused command raises AssertionError with the kernel's errno text."""
        rc, out = self.vm.exec(f"echo '{line}' > {CONTROL}")
        assert rc == 0, f"rootkit command {line!r} refused: {out.strip()}"

    def plant(self, technique: str, arg: int | None = None) -> None:
        self.command(f"plant {technique}" + ("" if arg is None else f" {arg}"))

    def undo(self, technique: str = "all") -> None:
        self.command(f"undo {technique}")

    def status(self) -> dict[str, list[str]]:
        """{technique: [value, key=value, ...]} from /proc/lvrootkit."""
        rc, out = self.vm.exec(f"cat {CONTROL}")
        assert rc == 0, f"cannot read {CONTROL}: {out}"
        return {words[0]: words[1:] for words in (line.split() for line in out.splitlines())
                if words}

    def planted(self) -> dict[str, str]:
        """{technique: value} of what is planted now."""
        return {k: v[0] for k, v in self.status().items() if v and v[0] != "0"}

    def remove(self) -> None:
        """Undoes everything and unloads the module."""
        self.undo("all")
        self.vm.rmmod(MODULE)

    def __enter__(self) -> Rootkit:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.vm.alive():
            return
        self.remove()
        if kind is None:
            trouble = kernel_trouble(self.new_log())
            assert not trouble, "kernel trouble after the rootkit:\n" + "\n".join(trouble)
